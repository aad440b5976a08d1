"""Shared pieces of the command line: exit codes, the parser class, flag converters, plan flags and JSON output."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from dpplan.commands import PLAN_FLAGS
from dpplan.errors import (
    PlanError,
    UsageError,
)
from dpplan.format import json_safe

EXIT_OK, EXIT_FAILURE, EXIT_INVALID, EXIT_INFEASIBLE = 0, 1, 2, 3


PLAN_FIELDS = tuple(flag.field for flag in PLAN_FLAGS)


class Typed:
    """An argparse ``type`` that reads a flag's text into its value at parse time.

    ``read(field, text)`` raises the :class:`PlanError` naming the field; :class:`Parser`
    lets it through as it is (argparse would turn it into an anonymous usage message).
    """

    def __init__(self, field: str, read: Callable[[str, str], Any]) -> None:
        self.field, self.read = field, read

    def __call__(self, text: str) -> Any:
        return self.read(self.field, text)


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError.message_only(f"{message} (see '{self.prog} --help')")

    def _get_value(self, action: argparse.Action, arg_string: str) -> Any:
        if isinstance(action.type, Typed):
            return action.type(arg_string)
        return super()._get_value(action, arg_string)


class DefaultsFormatter(argparse.HelpFormatter):
    """Show a flag's default in its help, unless it has none worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings:
            text += " (default: %(default)s)"
        return text


def read_number(field: str, text: str) -> int | float:
    """Parse a flag value: integers stay ints, anything else numeric becomes a float."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise PlanError(field, text, "a number", f"Pass --{field.replace('_', '-')} NUMBER.")


#: Largest run id: SQLite's INTEGER PRIMARY KEY is a signed 64-bit integer.
_MAX_RUN_ID = 2**63 - 1


def read_run_id(field: str, text: str) -> int:
    """Parse a run id: decimal digits only (``1.7``, ``1e30`` and ``-1`` are refused)."""
    digits = text.strip()
    if (
        digits.isascii()
        and digits.isdigit()
        and len(digits) <= 19
        and 1 <= int(digits) <= _MAX_RUN_ID
    ):
        return int(digits)
    raise PlanError(
        field,
        text,
        f"a run id, a whole number in [1, {_MAX_RUN_ID}]",
        "List the runs and their ids with 'dpplan runs'.",
    )


def read_sweep_id(field: str, text: str) -> int:
    """Parse a sweep id: decimal digits only, like a run id."""
    try:
        return read_run_id(field, text)
    except PlanError:
        raise PlanError(
            field,
            text,
            f"a sweep id, a whole number in [1, {_MAX_RUN_ID}]",
            "List the sweeps and their ids with 'dpplan sweeps'.",
        ) from None


def flag_of(field: str) -> str:
    return f"--{field.replace('_', '-')}"


def plan_values(
    args: argparse.Namespace, *, fixed: dict[str, Any] | None = None, skip: str | None = None
) -> dict[str, Any]:
    """The plan fields of the plan flags in ``args``: those given, and ``fixed``, fields that
    come from elsewhere (a command without the flag), which win over a flag. ``skip`` is a
    field the command has no flag for and does not need (the one ``dpplan solve`` finds).

    Raises:
        PlanError: naming the first missing flag, the message every missing one.
    """
    fixed = fixed or {}
    missing = [
        field
        for field in PLAN_FIELDS
        if field not in ("max_grad_norm", skip)
        and field not in fixed
        and getattr(args, field, None) is None
    ]
    if missing:  # every missing flag at once, not one per try
        raise PlanError(
            missing[0],
            None,
            "given",
            "Missing: " + ", ".join(f"{flag_of(f)} X" for f in missing) + ".",
        )
    values: dict[str, Any] = {}
    for field in PLAN_FIELDS:
        value = getattr(args, field, None)
        if field in fixed:
            values[field] = fixed[field]
        elif value is not None and field != skip:
            values[field] = value
    return values


def plan_from_args(args: argparse.Namespace, *, fixed: dict[str, Any] | None = None):
    """The plan of the plan flags in ``args`` (see :func:`plan_values`)."""
    from dpplan.plan import TrainingPlan

    return TrainingPlan(**plan_values(args, fixed=fixed))


def _plan_file(path: str):
    """A plan from a JSON file: ``{"dataset_size", "delta", "phases": [...]}`` (a one-phase
    file that runs all its epochs is an ordinary TrainingPlan), or a TrainingPlan's dict."""
    from dpplan.phased import PhasedPlan
    from dpplan.plan import TrainingPlan

    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise PlanError("plan", path, "a readable JSON file", str(exc)) from exc
    except ValueError as exc:
        raise PlanError("plan", path, "a JSON file", f"It does not parse: {exc}.") from exc
    if isinstance(data, dict) and "phases" in data:
        plan = PhasedPlan.from_dict(data)
        return plan.phases[0] if len(plan.phases) == 1 and not plan.phase_steps else plan
    return TrainingPlan.from_dict(data)


def plan_or_file(args: argparse.Namespace, *, fixed: dict[str, Any] | None = None):
    """The plan of ``--plan FILE`` (then no plan flag may be given), else of the flags."""
    if getattr(args, "plan", None) is None:
        return plan_from_args(args, fixed=fixed)
    given = [f for f in PLAN_FIELDS if getattr(args, f, None) is not None]
    if given:
        raise PlanError(
            given[0],
            getattr(args, given[0]),
            "absent when --plan FILE is given",
            "Put every plan field in the file, or give the flags without --plan.",
        )
    return _plan_file(args.plan)


def _methods(text: str) -> tuple[str, ...]:
    from dpplan.accounting import METHODS

    return METHODS if text == "all" else (text,)


def output_every(args: argparse.Namespace) -> int:
    from dpplan import _validate

    return _validate.integer(
        minimum=1,
        every=args.every,
        hint="Show every K-th epoch, e.g. --every 10.",
    )


def _json_default(value: object) -> object:
    if hasattr(value, "item"):  # numpy scalars from the libraries' settings
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dump(data: dict[str, Any]) -> str:
    return json.dumps(json_safe(data), indent=2, default=_json_default)


def read_numbers(field: str, text: str) -> list[int | float]:
    """Parse a comma-separated list of numbers (``1,3`` or ``0.5, 2``)."""
    return [read_number(field, item.strip()) for item in text.split(",") if item.strip()]


def given_flags(args: argparse.Namespace) -> list[str]:
    """The destinations of the flags given on the command line of ``args``' subcommand.

    ``--a=b`` and an abbreviation argparse accepted count as the flag they name; a flag
    given with its default value counts as given.

    The subcommand's arguments are parsed again into a namespace whose every value is a
    marker; argparse fills in a default only where nothing was given.
    """
    parser, argv = getattr(args, "parser_", None), getattr(args, "argv", None)
    if parser is None or argv is None:
        return []
    unset = object()
    rest = argv[argv.index(args.command) + 1 :] if args.command in argv else argv
    actions = [a for a in parser._actions if a.option_strings]
    given = parser.parse_args(rest, argparse.Namespace(**{a.dest: unset for a in actions}))
    return [a.dest for a in actions if getattr(given, a.dest, unset) is not unset]
