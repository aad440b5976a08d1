"""Shared pieces of the command line: exit codes, the argument parser class, typed argument converters, plan flags and JSON output."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any, NoReturn

from dpplan.errors import PlanError, UsageError

EXIT_OK, EXIT_FAILURE, EXIT_INVALID, EXIT_INFEASIBLE = 0, 1, 2, 3


PLAN_FLAGS = ("dataset_size", "batch_size", "noise_multiplier", "epochs", "delta", "max_grad_norm")


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError.message_only(f"{message} (see '{self.prog} --help')")


class DefaultsFormatter(argparse.HelpFormatter):
    """Show a flag's default in its help, unless it has none worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings:
            text += " (default: %(default)s)"
        return text


def number(field: str, text: str) -> int | float:
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


def parse_run_id(field: str, text: str) -> int:
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


def parse_sweep_id(field: str, text: str) -> int:
    """Parse a sweep id: decimal digits only, like a run id."""
    try:
        return parse_run_id(field, text)
    except PlanError:
        raise PlanError(
            field,
            text,
            f"a sweep id, a whole number in [1, {_MAX_RUN_ID}]",
            "List the sweeps and their ids with 'dpplan sweeps'.",
        ) from None


_PLAN_HELP = {
    "dataset_size": "number of training records N",
    "batch_size": "expected batch size B (Poisson sampling, sample rate B/N)",
    "noise_multiplier": "noise multiplier σ (noise std / clipping norm), in [0.01, 1000]",
    "epochs": "number of epochs",
    "delta": "δ of the (ε, δ) guarantee, e.g. 1e-5",
    "max_grad_norm": "per-example clipping norm (default 1.0; does not change ε)",
}


def flag_name(field: str) -> str:
    return f"--{field.replace('_', '-')}"


def add_plan_flags(
    parser: argparse.ArgumentParser,
    *,
    skip: str | None = None,
    required: str | None = "always",
    or_file: bool = False,
) -> None:
    """Add the plan's flags; ``required`` is "always", or the condition under which they are.

    With ``or_file``, ``--plan FILE`` may replace them (checked by ``plan_or_file``).
    """
    group = parser.add_argument_group(
        (
            "plan (required" + (")" if required == "always" else f" {required})")
            if required
            else "plan"
        )
        + (", or --plan FILE" if or_file else "")
    )
    if or_file:
        required = "unless --plan FILE"
    for field in PLAN_FLAGS:
        if field == skip:
            continue
        group.add_argument(
            flag_name(field),
            dest=field,
            metavar="X",
            help=_PLAN_HELP[field],
            required=required == "always" and field != "max_grad_norm",
        )


def plan_from_args(args: argparse.Namespace, *, placeholder: dict[str, Any] | None = None):
    from dpplan.plan import TrainingPlan

    placeholder = placeholder or {}
    values: dict[str, Any] = {}
    missing = [
        field
        for field in PLAN_FLAGS
        if field != "max_grad_norm"
        and field not in placeholder
        and getattr(args, field, None) is None
    ]
    if missing:  # every missing flag at once, not one per try
        raise PlanError(
            missing[0],
            None,
            "given",
            "Missing: " + ", ".join(f"{flag_name(f)} X" for f in missing) + ".",
        )
    for field in PLAN_FLAGS:
        text = getattr(args, field, None)
        if field in placeholder:
            values[field] = placeholder[field]
        elif text is not None:
            values[field] = number(field, text)
    return TrainingPlan(**values)


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


def plan_or_file(args: argparse.Namespace, *, placeholder: dict[str, Any] | None = None):
    """The plan of ``--plan FILE`` (then no plan flag may be given), else of the flags."""
    if getattr(args, "plan", None) is None:
        return plan_from_args(args, placeholder=placeholder)
    given = [f for f in PLAN_FLAGS if getattr(args, f, None) is not None]
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


def _json_default(value: object) -> object:
    if hasattr(value, "item"):  # numpy scalars from the libraries' settings
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dump(data: dict[str, Any]) -> str:
    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(data), indent=2, default=_json_default)


def thread_count(args: argparse.Namespace, default: int | None = None) -> int:
    """The --threads value, else ``default``, else :data:`DEFAULT_THREADS`."""
    from dpplan.train.specs import DEFAULT_THREADS

    if args.threads is not None:
        return number("threads", args.threads)
    return DEFAULT_THREADS if default is None else default


def numbers(field: str, text: str) -> list[int | float]:
    """Parse a comma-separated list of numbers (``1,3`` or ``0.5, 2``)."""
    return [number(field, item.strip()) for item in text.split(",") if item.strip()]


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = round(seconds)
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
        if seconds >= 3600
        else (f"{seconds // 60}m{seconds % 60:02d}s")
    )


def validate_port(text: str) -> int:
    from dpplan import _validate

    return _validate.integer(minimum=1, maximum=65535, port=number("port", text))
