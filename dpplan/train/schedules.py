"""Learning-rate schedules for DP-SGD training, as frozen specs plus one controller.

A schedule is a frozen value (a *spec*) validated at construction:

* :class:`OneCycle`: Smith's one-cycle policy (super-convergence), the learning rate rising
  from ``max_lr / div_factor`` to ``max_lr`` and annealing to
  ``max_lr / (div_factor * final_div_factor)``, with momentum cycling the opposite way
  between ``max_momentum`` and ``base_momentum``. Stepped after every optimizer step.
* :class:`Plateau`: the conventional baseline of the super-convergence study, multiplying
  the learning rate by ``factor`` when the validation loss stops improving. Stepped after
  every epoch.
* :class:`Constant`: a fixed learning rate.

:func:`make_optimizer` builds the ``torch.optim.SGD`` a spec asks for, and
:func:`make_scheduler` wraps the matching torch scheduler in an :class:`LrController` that
the training loop calls after every optimizer step and after every epoch. Both work on an
Opacus ``DPOptimizer``: it subclasses ``torch.optim.Optimizer`` and proxies
``param_groups`` and ``defaults`` to the SGD it wraps, so torch's schedulers change the
wrapped optimizer's learning rate and momentum.

The learning rate does not affect ε (it is applied after the Gaussian mechanism), which is
why schedules are kept out of ``TrainingPlan``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, TypeAlias

import torch

from dpplan import _validate
from dpplan.errors import PlanError

__all__ = [
    "MAX_LR",
    "SCHEDULES",
    "Constant",
    "LrController",
    "OneCycle",
    "Plateau",
    "ScheduleSpec",
    "make_optimizer",
    "make_scheduler",
    "schedule_from_dict",
]

SCHEDULES: tuple[str, ...] = ("one_cycle", "plateau", "constant")
"""Schedule kinds, as spelled in ``to_dict()["kind"]``."""

MAX_LR = 100.0
"""Largest learning rate a spec accepts. The super-convergence study peaked at 15.62."""

_LR_HINT = f"Learning rates above {MAX_LR:g} are refused as a likely typo."


def _finite_in(
    *,
    low: float,
    high: float | None = None,
    high_open: bool = False,
    hint: str = "",
    **kwargs: object,
) -> float:
    """Return ``value`` as a float if it is finite and in ``[low, high]`` (or ``[low, high)``).

    The comparisons are written so that NaN fails them; bools and non-numbers are refused.

    Raises:
        PlanError: if the value is out of range, NaN, infinite, a bool or not a number.
    """
    ((name, value),) = kwargs.items()
    if high is None:
        expected = f"a finite number >= {low:g}"
    else:
        expected = f"a finite number in [{low:g}, {high:g}{')' if high_open else ']'}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise PlanError(name, value, expected, hint)
    result = float(value)
    in_range = math.isfinite(result) and result >= low
    if high is not None:
        in_range = in_range and (result < high if high_open else result <= high)
    if not in_range:
        raise PlanError(name, value, expected, hint)
    return result


def _momentum(**kwargs: object) -> float:
    return _finite_in(low=0.0, high=1.0, high_open=True, **kwargs)


def _flag(**kwargs: object) -> bool:
    ((name, value),) = kwargs.items()
    if not isinstance(value, bool):
        raise PlanError(name, value, "True or False")
    return value


def _store(spec: object, **values: object) -> None:
    """Write normalised field values into a frozen, slotted dataclass."""
    for name, value in values.items():
        object.__setattr__(spec, name, value)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class OneCycle:
    """Smith's one-cycle learning-rate policy, stepped after every optimizer step.

    Wraps ``torch.optim.lr_scheduler.OneCycleLR`` (cosine annealing, two phases). The
    learning rate starts at ``max_lr / div_factor``, reaches ``max_lr`` at step index
    ``pct_start * total_steps - 1`` and anneals to ``max_lr / (div_factor *
    final_div_factor)`` at the last step. With ``cycle_momentum`` the SGD momentum moves the
    other way: ``max_momentum`` → ``base_momentum`` at the peak → ``max_momentum``, as in
    Smith (2018), "A disciplined approach to neural network hyper-parameters".

    Attributes:
        max_lr: peak learning rate, finite, in (0, 100].
        momentum: SGD momentum in [0, 1), used only when ``cycle_momentum`` is False.
        pct_start: fraction of the steps spent rising, in (0, 1).
        div_factor: ``max_lr / initial learning rate``, finite, >= 1.
        final_div_factor: ``initial learning rate / final learning rate``, finite, >= 1.
        cycle_momentum: whether momentum cycles inversely to the learning rate.
        base_momentum: momentum at the peak learning rate, in [0, 1).
        max_momentum: momentum at the start and the end, in [base_momentum, 1).

    Raises:
        PlanError: naming the field, if any attribute is out of range, NaN, infinite, of
            the wrong type (a bool where a number is expected), or if
            ``base_momentum > max_momentum``.

    Example:
        >>> OneCycle(max_lr=15.62).initial_lr
        0.6248
    """

    kind: ClassVar[str] = "one_cycle"

    max_lr: float
    momentum: float = 0.9
    pct_start: float = 0.25
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    cycle_momentum: bool = True
    base_momentum: float = 0.85
    max_momentum: float = 0.95

    def __post_init__(self) -> None:
        _store(
            self,
            max_lr=_validate.finite_positive(maximum=MAX_LR, hint=_LR_HINT, max_lr=self.max_lr),
            momentum=_momentum(momentum=self.momentum),
            pct_start=_validate.open_interval(low=0.0, high=1.0, pct_start=self.pct_start),
            div_factor=_finite_in(low=1.0, div_factor=self.div_factor),
            final_div_factor=_finite_in(low=1.0, final_div_factor=self.final_div_factor),
            cycle_momentum=_flag(cycle_momentum=self.cycle_momentum),
            base_momentum=_momentum(base_momentum=self.base_momentum),
            max_momentum=_momentum(max_momentum=self.max_momentum),
        )
        if not (self.base_momentum <= self.max_momentum):
            raise PlanError(
                "base_momentum",
                self.base_momentum,
                f"<= max_momentum={self.max_momentum!r}",
                "Momentum cycles between max_momentum (at low learning rates) and "
                "base_momentum (at the peak learning rate).",
            )

    @property
    def initial_lr(self) -> float:
        """The learning rate of the first step, ``max_lr / div_factor``."""
        return self.max_lr / self.div_factor

    @property
    def initial_momentum(self) -> float:
        """The SGD momentum of the first step."""
        return self.max_momentum if self.cycle_momentum else self.momentum

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as a JSON-ready mapping, with ``"kind"`` first.

        Example:
            >>> OneCycle(max_lr=1.0).to_dict()["kind"]
            'one_cycle'
        """
        return _to_dict(self)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Plateau:
    """Reduce the learning rate when the validation loss stops improving.

    Wraps ``torch.optim.lr_scheduler.ReduceLROnPlateau(mode="min")`` with torch's default
    relative threshold (1e-4), stepped after every epoch with that epoch's validation
    loss. The learning rate is multiplied by ``factor`` once ``patience + 1`` epochs in a
    row fail to improve on the best loss so far, and never goes below ``min_lr``.

    Attributes:
        lr: starting learning rate, finite, in (0, 100].
        momentum: SGD momentum in [0, 1).
        factor: multiplier applied on a plateau, in (0, 1).
        patience: number of non-improving epochs tolerated, an integer >= 0.
        min_lr: floor of the learning rate, finite, in [0, lr].

    Raises:
        PlanError: naming the field, if any attribute is out of range, NaN, infinite or of
            the wrong type (a bool or a non-integral float for ``patience``).

    Example:
        >>> Plateau(lr=0.05, factor=0.1).initial_lr
        0.05
    """

    kind: ClassVar[str] = "plateau"

    lr: float
    momentum: float = 0.0
    factor: float = 0.5
    patience: int = 2
    min_lr: float = 1e-5

    def __post_init__(self) -> None:
        lr = _validate.finite_positive(maximum=MAX_LR, hint=_LR_HINT, lr=self.lr)
        _store(
            self,
            lr=lr,
            momentum=_momentum(momentum=self.momentum),
            factor=_validate.open_interval(low=0.0, high=1.0, factor=self.factor),
            patience=_validate.integer(minimum=0, patience=self.patience),
            min_lr=_finite_in(
                low=0.0, high=lr, hint="min_lr is a floor below lr.", min_lr=self.min_lr
            ),
        )

    @property
    def initial_lr(self) -> float:
        """The learning rate of the first epoch, ``lr``."""
        return self.lr

    @property
    def initial_momentum(self) -> float:
        """The SGD momentum, ``momentum``."""
        return self.momentum

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as a JSON-ready mapping, with ``"kind"`` first.

        Example:
            >>> Plateau(lr=0.05).to_dict()["patience"]
            2
        """
        return _to_dict(self)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Constant:
    """A fixed learning rate.

    Attributes:
        lr: the learning rate, finite, in (0, 100].
        momentum: SGD momentum in [0, 1).

    Raises:
        PlanError: naming the field, if either attribute is out of range, NaN, infinite or
            a bool.

    Example:
        >>> Constant(lr=0.1).to_dict()
        {'kind': 'constant', 'lr': 0.1, 'momentum': 0.0}
    """

    kind: ClassVar[str] = "constant"

    lr: float
    momentum: float = 0.0

    def __post_init__(self) -> None:
        _store(
            self,
            lr=_validate.finite_positive(maximum=MAX_LR, hint=_LR_HINT, lr=self.lr),
            momentum=_momentum(momentum=self.momentum),
        )

    @property
    def initial_lr(self) -> float:
        """The learning rate, ``lr``."""
        return self.lr

    @property
    def initial_momentum(self) -> float:
        """The SGD momentum, ``momentum``."""
        return self.momentum

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as a JSON-ready mapping, with ``"kind"`` first.

        Example:
            >>> Constant(lr=0.1).to_dict()["kind"]
            'constant'
        """
        return _to_dict(self)


ScheduleSpec: TypeAlias = OneCycle | Plateau | Constant
"""Any schedule spec."""

_SPEC_CLASSES: dict[str, type[ScheduleSpec]] = {
    cls.kind: cls for cls in (OneCycle, Plateau, Constant)
}


def _to_dict(spec: ScheduleSpec) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": spec.kind}
    for field in dataclasses.fields(spec):
        data[field.name] = getattr(spec, field.name)
    return data


def schedule_from_dict(data: Mapping[str, object]) -> ScheduleSpec:
    """Rebuild a spec from its :meth:`to_dict` form.

    Args:
        data: a mapping with a ``"kind"`` key (one of :data:`SCHEDULES`) and the spec's
            fields; fields with defaults may be left out.

    Returns:
        The spec, validated as at construction.

    Raises:
        PlanError: if ``data`` is not a mapping (field ``schedule``), if ``kind`` is
            missing or unknown (field ``kind``), if a key is not a field of that kind or a
            required field is missing (field named by the key), or if a value is invalid.

    Example:
        >>> schedule_from_dict({"kind": "plateau", "lr": 0.05, "factor": 0.1})
        Plateau(lr=0.05, momentum=0.0, factor=0.1, patience=2, min_lr=1e-05)
    """
    if not isinstance(data, Mapping):
        raise PlanError("schedule", data, "a mapping with a 'kind' key")
    expected_kinds = "one of " + ", ".join(repr(kind) for kind in SCHEDULES)
    if "kind" not in data:
        raise PlanError("kind", None, expected_kinds, "The schedule mapping has no 'kind' key.")
    kind = data["kind"]
    if not isinstance(kind, str) or kind not in _SPEC_CLASSES:
        raise PlanError("kind", kind, expected_kinds)
    cls = _SPEC_CLASSES[kind]
    fields = {field.name: field for field in dataclasses.fields(cls)}
    for key, value in data.items():
        if key != "kind" and key not in fields:
            raise PlanError(
                str(key),
                value,
                f"a field of {cls.__name__} (one of {', '.join(fields)})",
                "Remove the key or check its spelling.",
            )
    for name, field in fields.items():
        has_default = field.default is not dataclasses.MISSING
        if name not in data and not has_default:
            raise PlanError(name, None, f"given for kind {kind!r}", "The key is required.")
    return cls(**{key: value for key, value in data.items() if key != "kind"})


def _check_spec(spec: object) -> ScheduleSpec:
    if not isinstance(spec, (OneCycle, Plateau, Constant)):
        raise PlanError("schedule", spec, "a OneCycle, Plateau or Constant spec")
    return spec


def make_optimizer(
    spec: ScheduleSpec, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]]
) -> torch.optim.SGD:
    """Build the SGD optimizer a schedule spec asks for.

    The learning rate is ``spec.initial_lr``; the momentum is ``spec.momentum``, or
    ``max_momentum`` for a :class:`OneCycle` with ``cycle_momentum`` (the value one-cycle
    starts from). Wrap the result in an Opacus ``DPOptimizer`` for DP-SGD, then pass either
    to :func:`make_scheduler`.

    Args:
        spec: the schedule.
        params: the model's parameters, or parameter groups, as ``torch.optim.SGD`` takes.

    Returns:
        A ``torch.optim.SGD``.

    Raises:
        PlanError: if ``spec`` is not a schedule spec (field ``schedule``).

    Example:
        >>> layer = torch.nn.Linear(2, 1)
        >>> make_optimizer(OneCycle(max_lr=1.0), layer.parameters()).param_groups[0]["momentum"]
        0.95
    """
    spec = _check_spec(spec)
    return torch.optim.SGD(params, lr=spec.initial_lr, momentum=spec.initial_momentum)


class LrController:
    """Drives a torch learning-rate scheduler from the training loop.

    Built by :func:`make_scheduler`. Call :meth:`after_step` after every optimizer step and
    :meth:`after_epoch` after every epoch's validation; each forwards to the scheduler only
    for the schedule that needs it (one-cycle per step, plateau per epoch, constant never).

    Attributes:
        spec: the schedule spec.
        total_steps: the number of optimizer steps the run takes.
    """

    def __init__(
        self, spec: ScheduleSpec, optimizer: torch.optim.Optimizer, *, total_steps: int
    ) -> None:
        """Create the scheduler; see :func:`make_scheduler` for the arguments and errors."""
        self.spec = _check_spec(spec)
        self.total_steps = _validate.integer(minimum=1, total_steps=total_steps)
        if not isinstance(optimizer, torch.optim.Optimizer) or "momentum" not in optimizer.defaults:
            raise PlanError(
                "optimizer",
                optimizer,
                "a torch.optim.SGD, or an Opacus DPOptimizer wrapping one",
                "Build it with make_optimizer(spec, params).",
            )
        self._optimizer = optimizer
        self._steps_taken = 0
        for group in optimizer.param_groups:
            group["lr"] = self.spec.initial_lr
            group["momentum"] = self.spec.initial_momentum
        self._one_cycle: torch.optim.lr_scheduler.OneCycleLR | None = None
        self._plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
        if isinstance(self.spec, OneCycle):
            self._one_cycle = torch.optim.lr_scheduler.OneCycleLR(
                optimizer,
                max_lr=self.spec.max_lr,
                total_steps=self.total_steps,
                pct_start=_torch_pct_start(self.spec.pct_start, self.total_steps),
                anneal_strategy="cos",
                cycle_momentum=self.spec.cycle_momentum,
                base_momentum=self.spec.base_momentum,
                max_momentum=self.spec.max_momentum,
                div_factor=self.spec.div_factor,
                final_div_factor=self.spec.final_div_factor,
            )
        elif isinstance(self.spec, Plateau):
            self._plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer,
                mode="min",
                factor=self.spec.factor,
                patience=self.spec.patience,
                min_lr=self.spec.min_lr,
            )

    @property
    def steps_taken(self) -> int:
        """How many times :meth:`after_step` has been called."""
        return self._steps_taken

    def after_step(self) -> None:
        """Advance the schedule by one optimizer step (one-cycle only).

        After the last of ``total_steps`` steps the learning rate stays at its final value.

        Raises:
            PlanError: for one-cycle, if called more than ``total_steps`` times (field
                ``total_steps``).
        """
        self._steps_taken += 1
        if self._one_cycle is None:
            return
        if self._steps_taken > self.total_steps:
            raise PlanError(
                "total_steps",
                self.total_steps,
                f"at least the number of optimizer steps taken ({self._steps_taken})",
                "Pass total_steps = epochs * steps_per_epoch to make_scheduler.",
            )
        if self._steps_taken < self.total_steps:
            self._one_cycle.step()

    def after_epoch(self, validation_loss: float) -> None:
        """Report an epoch's validation loss (plateau only).

        Args:
            validation_loss: the epoch's mean validation loss. NaN and infinities are
                accepted and count as epochs that did not improve.

        Raises:
            PlanError: if ``validation_loss`` is not a real number (field
                ``validation_loss``).
        """
        if isinstance(validation_loss, bool) or not isinstance(validation_loss, numbers.Real):
            raise PlanError("validation_loss", validation_loss, "a real number")
        if self._plateau is not None:
            self._plateau.step(float(validation_loss))

    def state_dict(self) -> dict[str, Any]:
        """Return the controller's state (steps taken and the torch scheduler's state)."""
        state: dict[str, Any] = {"steps_taken": self._steps_taken}
        for name in ("_one_cycle", "_plateau"):
            scheduler = getattr(self, name)
            if scheduler is not None:
                state[name] = scheduler.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (used to resume a run)."""
        self._steps_taken = int(state["steps_taken"])
        for name in ("_one_cycle", "_plateau"):
            scheduler = getattr(self, name)
            if scheduler is not None and name in state:
                scheduler.load_state_dict(state[name])

    def current_lr(self) -> float:
        """Return the learning rate the next optimizer step will use."""
        return float(self._optimizer.param_groups[0]["lr"])

    def current_momentum(self) -> float:
        """Return the momentum the next optimizer step will use."""
        return float(self._optimizer.param_groups[0]["momentum"])


def _torch_pct_start(pct_start: float, total_steps: int) -> float:
    """Return a ``pct_start`` that torch's ``OneCycleLR`` can use for ``total_steps``.

    ``OneCycleLR`` ends the rising phase at step ``pct_start * total_steps - 1`` and divides
    by that number at step 0, so ``pct_start * total_steps == 1`` raises
    ``ZeroDivisionError``. The defined answer is a one-step rise (step 0 at ``max_lr``);
    the largest float below ``pct_start`` gives it to within rounding.
    """
    while float(pct_start * total_steps) - 1 == 0:
        pct_start = math.nextafter(pct_start, 0.0)
    return pct_start


def make_scheduler(
    spec: ScheduleSpec, optimizer: torch.optim.Optimizer, *, total_steps: int
) -> LrController:
    """Attach a schedule to an optimizer.

    Sets every parameter group's learning rate and momentum to the spec's start values
    (``initial_lr`` and ``initial_momentum``). The optimizer may be a plain
    ``torch.optim.SGD`` from :func:`make_optimizer` or an Opacus ``DPOptimizer`` wrapping
    one.

    Args:
        spec: the schedule.
        optimizer: the optimizer whose ``param_groups`` the schedule drives.
        total_steps: the number of optimizer steps in the run, an integer >= 1
            (``epochs * steps_per_epoch``).

    Returns:
        The :class:`LrController` to call from the training loop.

    Raises:
        PlanError: if ``spec`` is not a schedule spec (field ``schedule``), if
            ``optimizer`` is not an SGD-like torch optimizer with a momentum setting
            (field ``optimizer``), or if
            ``total_steps`` is not an integer >= 1 (field ``total_steps``).

    Example:
        >>> layer = torch.nn.Linear(2, 1)
        >>> spec = OneCycle(max_lr=1.0, pct_start=0.5)
        >>> controller = make_scheduler(
        ...     spec, make_optimizer(spec, layer.parameters()), total_steps=10
        ... )
        >>> round(controller.current_lr(), 6)  # max_lr / div_factor
        0.04
    """
    return LrController(spec, optimizer, total_steps=total_steps)
