"""dpplan's exception hierarchy.

Every error dpplan raises for bad input or an unanswerable question is a subclass of
:class:`DpplanError`. The classes also subclass the matching standard-library exception,
so callers that only know ``ValueError`` or ``OSError`` still catch them.
"""

from __future__ import annotations

import math

__all__ = [
    "AccountingError",
    "BudgetExhausted",
    "DataError",
    "DpplanError",
    "InfeasibleTargetError",
    "MissingDependencyError",
    "NotFoundError",
    "PlanError",
    "StateConflictError",
    "StoreError",
    "UsageError",
]


class DpplanError(Exception):
    """Root of every exception dpplan raises on purpose."""


class _FieldError(DpplanError):
    """An error about one named input: a field, the value given, what it must be, a hint."""

    def __init__(self, field: str, value: object, expected: str, hint: str = "") -> None:
        self.field = field
        self.value = value
        self.expected = expected
        self.hint = hint
        message = f"{field}={_shown(value)} is invalid: must be {expected}."
        if hint:
            message += f" {hint}"
        super().__init__(message)

    def to_dict(self) -> dict[str, object]:
        """Return the error as a JSON-ready mapping (used by the CLI's ``--json``)."""
        value = self.value if isinstance(self.value, (int, float, str, bool)) else repr(self.value)
        if isinstance(value, float) and not math.isfinite(value):
            value = repr(self.value)
        if (
            isinstance(value, str)
            and len(value) > SHOWN_VALUE_CHARS
            or (isinstance(value, int) and len(str(value)) > SHOWN_VALUE_CHARS)
        ):
            value = _shown(self.value)
        return {
            "type": type(self).__name__,
            "field": self.field,
            "value": value,
            "expected": self.expected,
            "hint": self.hint,
            "message": str(self),
        }


class PlanError(_FieldError, ValueError):
    """An input field is invalid.

    Attributes:
        field: the name of the offending field, spelled as in ``TrainingPlan`` and the CLI.
        value: the value that was given.
        expected: the allowed range or type, in words.
        hint: what to do about it.
    """


class NotFoundError(_FieldError, LookupError):
    """A stored run or sweep that was asked for does not exist (CLI exit code 2).

    Attributes are those of :class:`PlanError`; ``field`` is ``run_id`` or ``sweep_id``.
    """


class StateConflictError(_FieldError, RuntimeError):
    """A run or sweep is in a state that forbids the action: a run that is already running,
    resuming a sweep whose driver still runs, deleting a run a comparison group counts.

    Attributes are those of :class:`PlanError`; ``expected`` names the state the action needs.
    """


class UsageError(_FieldError, ValueError):
    """Flags that do not go together, or a command line argparse refused.

    Raised with the flag's field like :class:`PlanError` (``field`` is the flag without its
    dashes), or with a message alone (:meth:`message_only`; ``field`` is ``None``).
    """

    @classmethod
    def message_only(cls, message: str) -> UsageError:
        """Return a usage error that is only a message (argparse's)."""
        error = cls.__new__(cls)
        Exception.__init__(error, message)
        error.field, error.value, error.expected, error.hint = None, None, "", ""
        return error

    def to_dict(self) -> dict[str, object]:
        """Return the error as a JSON-ready mapping (used by the CLI's ``--json``)."""
        if self.field is None:
            return {"type": type(self).__name__, "message": str(self)}
        return super().to_dict()


class MissingDependencyError(DpplanError, ImportError):
    """An optional dependency is not installed.

    Attributes:
        package: the module that could not be imported (``ray``, ``streamlit``, ``opacus``).
        extra: dpplan's extra that installs it (``pip install 'dpplan[EXTRA]'``).
    """

    def __init__(self, package: str, *, extra: str, purpose: str = "", hint: str = "") -> None:
        self.package = package
        self.extra = extra
        needed = f" {purpose}" if purpose else ""
        hint = hint or f'Install dpplan\'s {extra!r} extra: pip install -e ".[{extra}]".'
        super().__init__(
            f"{package} is not installed; it is needed{needed}. {hint}",
            name=package,
        )


#: Longest value an error message quotes: a 20,000-character note or a 400-digit number is
#: cut, so the message stays readable.
SHOWN_VALUE_CHARS = 80


def _shown(value: object) -> str:
    text = repr(value)
    if len(text) <= SHOWN_VALUE_CHARS:
        return text
    return f"{text[: SHOWN_VALUE_CHARS - 20]}… ({len(text):,} characters)"


class InfeasibleTargetError(DpplanError, ValueError):
    """No value of the solved-for parameter meets the privacy target."""


class AccountingError(DpplanError, RuntimeError):
    """A wrapped accounting library failed, or a result broke an invariant."""


class DataError(DpplanError, OSError):
    """Training data is missing, unreadable, or fails its checksum."""


class StoreError(DpplanError, OSError):
    """The run store or a run's checkpoint is missing, damaged, read-only or inconsistent.

    The message names the file and says what to do; dpplan never deletes stored records
    because of such a file.
    """


class BudgetExhausted(DpplanError, RuntimeError):
    """Recording more noisy steps would take a ledger's ε over its budget.

    Raised by :meth:`dpplan.Ledger.record` (and dpplan's Opacus accountant before the
    parameters are updated); the ledger is left unchanged.

    Attributes:
        epsilon_before: the ledger's ε (headline upper bound) before the refused record.
        epsilon_after: its ε had the record been accepted.
        budget: the ε budget.
        remaining_steps: how many steps of the refused kind still fit the budget.
        delta: the δ of both ε values.
    """

    def __init__(
        self,
        *,
        epsilon_before: float,
        epsilon_after: float,
        budget: float,
        remaining_steps: int,
        delta: float,
        steps: int,
    ) -> None:
        self.epsilon_before = epsilon_before
        self.epsilon_after = epsilon_after
        self.budget = budget
        self.remaining_steps = remaining_steps
        self.delta = delta
        super().__init__(
            f"recording {steps} more step(s) would take ε from {epsilon_before:.6g} to "
            f"{epsilon_after:.6g} > budget={budget:g} at delta={delta:g}; "
            f"{remaining_steps} step(s) of this kind still fit. Stop training here, or raise "
            "noise_multiplier or lower the batch size for the remaining steps."
        )
