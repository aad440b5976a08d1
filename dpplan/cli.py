"""The ``dpplan`` command line.

Exit codes: 0 success; 2 invalid input (``error: <field>=<value> ...`` on stderr, or a JSON
``{"error": {...}}`` on stdout with ``--json``); 3 infeasible target; 1 anything else.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from dpplan.errors import (
    DataError,
    DpplanError,
    InfeasibleTargetError,
    MissingDependencyError,
    NotFoundError,
    PlanError,
    StateConflictError,
    StoreError,
    UsageError,
)

__all__ = ["main"]

EXIT_OK, EXIT_FAILURE, EXIT_INVALID, EXIT_INFEASIBLE = 0, 1, 2, 3

_PLAN_FLAGS = ("dataset_size", "batch_size", "noise_multiplier", "epochs", "delta", "max_grad_norm")
_SOLVE_WHAT = {"noise_multiplier": "smallest", "epochs": "most", "batch_size": "largest"}
_SOLVE_TARGETS = {
    "noise-multiplier": "noise_multiplier",
    "epochs": "epochs",
    "batch-size": "batch_size",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError.message_only(f"{message} (see '{self.prog} --help')")


class _DefaultsFormatter(argparse.HelpFormatter):
    """Show a flag's default in its help, unless it has none worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings:
            text += " (default: %(default)s)"
        return text


def _number(field: str, text: str) -> int | float:
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


def _run_id(field: str, text: str) -> int:
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


def _sweep_id(field: str, text: str) -> int:
    """Parse a sweep id: decimal digits only, like a run id."""
    try:
        return _run_id(field, text)
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


def _flag(field: str) -> str:
    return f"--{field.replace('_', '-')}"


def _add_plan_flags(
    parser: argparse.ArgumentParser,
    *,
    skip: str | None = None,
    required: str | None = "always",
    or_file: bool = False,
) -> None:
    """Add the plan's flags; ``required`` is "always", or the condition under which they are.

    With ``or_file``, ``--plan FILE`` may replace them (checked by ``_plan_or_file``).
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
    for field in _PLAN_FLAGS:
        if field == skip:
            continue
        group.add_argument(
            _flag(field),
            dest=field,
            metavar="X",
            help=_PLAN_HELP[field],
            required=required == "always" and field != "max_grad_norm",
        )


def _plan_from_args(args: argparse.Namespace, *, placeholder: dict[str, Any] | None = None):
    from dpplan.plan import TrainingPlan

    placeholder = placeholder or {}
    values: dict[str, Any] = {}
    missing = [
        field
        for field in _PLAN_FLAGS
        if field != "max_grad_norm"
        and field not in placeholder
        and getattr(args, field, None) is None
    ]
    if missing:  # every missing flag at once, not one per try
        raise PlanError(
            missing[0],
            None,
            "given",
            "Missing: " + ", ".join(f"{_flag(f)} X" for f in missing) + ".",
        )
    for field in _PLAN_FLAGS:
        text = getattr(args, field, None)
        if field in placeholder:
            values[field] = placeholder[field]
        elif text is not None:
            values[field] = _number(field, text)
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


def _plan_or_file(args: argparse.Namespace, *, placeholder: dict[str, Any] | None = None):
    """The plan of ``--plan FILE`` (then no plan flag may be given), else of the flags."""
    if getattr(args, "plan", None) is None:
        return _plan_from_args(args, placeholder=placeholder)
    given = [f for f in _PLAN_FLAGS if getattr(args, f, None) is not None]
    if given:
        raise PlanError(
            given[0],
            getattr(args, given[0]),
            "absent when --plan FILE is given",
            "Put every plan field in the file, or give the flags without --plan.",
        )
    return _plan_file(args.plan)


def _phase_lines(plan) -> list[str]:
    """Header lines of a phased plan: one row per phase."""
    lines = [
        (
            f"plan: {len(plan.phases)} phases, dataset_size={plan.dataset_size} "
            f"delta={plan.delta:g} total_steps={plan.total_steps}"
        )
    ]
    for index, (phase, steps) in enumerate(zip(plan.phases, plan.steps_per_phase)):
        lines.append(
            f"      phase {index + 1}: batch_size={phase.batch_size} "
            f"noise_multiplier={phase.noise_multiplier:g} epochs={phase.epochs} "
            f"steps={steps} sample_rate={phase.sample_rate:.6g}"
        )
    return lines


def _methods(text: str) -> tuple[str, ...]:
    from dpplan.accounting import METHODS

    return METHODS if text == "all" else (text,)


def _fmt(value: float) -> str:
    if math.isinf(value):
        return "inf"
    return f"{value:.4f}" if value < 1000 else f"{value:.4g}"


def _plan_lines(plan) -> list[str]:
    if not hasattr(plan, "batch_size"):  # a PhasedPlan
        return _phase_lines(plan)
    return [
        (
            f"plan: dataset_size={plan.dataset_size} batch_size={plan.batch_size} "
            f"noise_multiplier={plan.noise_multiplier:g} epochs={plan.epochs} delta={plan.delta:g} "
            f"max_grad_norm={plan.max_grad_norm:g}"
        ),
        (
            f"      sample_rate={plan.sample_rate:.6g} steps_per_epoch={plan.steps_per_epoch} "
            f"total_steps={plan.total_steps}"
        ),
    ]


def _every(args: argparse.Namespace) -> int:
    from dpplan import _validate

    return _validate.integer(
        minimum=1,
        every=_number("every", args.every),
        hint="Show every K-th epoch, e.g. --every 10.",
    )


def _curve_table(curves, every: int = 1) -> list[str]:
    """Return a per-epoch table of the curves: every ``every``-th epoch and the last."""
    headers = ["epoch", "steps"]
    columns: list[list[float]] = []
    for curve in curves:
        headers.append(f"{curve.method} ε")
        columns.append(list(curve.epsilons))
        if curve.lower is not None:
            headers.append(f"{curve.method} lower")
            columns.append(list(curve.lower))
    plan = curves[0].plan
    last = len(curves[0].epochs) - 1
    rows = [
        [str(epoch), str(plan.steps_after(epoch))] + [_fmt(c[row]) for c in columns]
        for row, epoch in enumerate(curves[0].epochs)
        if not epoch % every or row == last
    ]
    # Columns as wide as their widest cell, so large values never run together.
    widths = [max(7, len(h) + 2, *(len(r[i]) + 2 for r in rows)) for i, h in enumerate(headers)]
    return ["".join(c.rjust(w) for c, w in zip(cells, widths)) for cells in [headers, *rows]]


def _json_default(value: object) -> object:
    if hasattr(value, "item"):  # numpy scalars from the libraries' settings
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _dump(data: dict[str, Any]) -> str:
    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(data), indent=2, default=_json_default)


def _cmd_epsilon(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    if args.method == "rdp":  # RDP needs only dp-accounting's rdp module (~1 s less import)
        from dpplan.accounting._imports import defer_dp_accounting_init

        defer_dp_accounting_init()
    from dpplan.accounting import compare, epsilon_curve

    plan = _plan_or_file(args)
    every = _every(args)
    if args.method == "all":
        result = compare(plan)
        if args.json:
            data = result.to_dict()
            data["method"] = "all"
            data["epsilon"] = result.headline_epsilon
            out(_dump(data))
            return EXIT_OK
        if args.brief:
            lines = [f"{c.method}: ε = {_fmt(c.epsilon)}" for c in result.curves]
        else:
            lines = _plan_lines(plan) + [""] + _curve_table(result.curves, every) + [""]
        for method, message in result.failures.items():
            lines.append(f"{method}: failed: {message}")
        lines.append(
            f"headline: ε = {_fmt(result.headline_epsilon)} at δ = {plan.delta:g} "
            f"({result.headline_method}, the smallest upper bound)"
        )
        out("\n".join(lines))
        return EXIT_OK
    curve = epsilon_curve(plan, method=args.method)
    if args.json:
        data = {"plan": plan.to_dict(), **curve.to_dict(), "delta": plan.delta}
        out(_dump(data))
        return EXIT_OK
    lines = [] if args.brief else _plan_lines(plan) + [""] + _curve_table([curve], every) + [""]
    lines.append(f"ε = {_fmt(curve.epsilon)} at δ = {plan.delta:g} ({curve.method} upper bound)")
    out("\n".join(lines))
    return EXIT_OK


def _cmd_solve(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    from dpplan import solve
    from dpplan.accounting import epsilon_curve

    field = _SOLVE_TARGETS[args.target]
    if args.method == "all":
        raise PlanError(
            "method",
            "all",
            "one of 'best', 'rdp', 'prv', 'pld' for solve",
            "A solved plan is certified by one method; 'best' picks the most favourable.",
        )
    target_epsilon = _number("target_epsilon", args.target_epsilon)
    every = _every(args)
    # The solved field's own value is ignored; give it a valid placeholder.
    placeholder: dict[str, Any] = {}
    if field == "noise_multiplier":
        placeholder["noise_multiplier"] = 1.0
    elif field == "epochs":
        placeholder["epochs"] = 1
    else:
        dataset_size = _number("dataset_size", args.dataset_size) if args.dataset_size else None
        placeholder["batch_size"] = dataset_size if isinstance(dataset_size, int) else 1
    plan = _plan_or_file(args, placeholder=placeholder)
    if hasattr(plan, "phases"):
        return _solve_phased(args, plan, field=field, target_epsilon=target_epsilon, out=out)
    solution = solve.solve_plan(
        plan, field=field, target_epsilon=target_epsilon, method=args.method
    )
    solved = solution.plan
    curve = epsilon_curve(solved, method=solution.method)
    if args.json:
        found = solution.to_dict()
        found.pop("plan")
        data = {
            **found,
            "plan": solved.to_dict(),
            **curve.to_dict(),
            "warnings": [*solution.warnings, *curve.warnings],
            "delta": solved.delta,
        }
        out(_dump(data))
        return EXIT_OK
    how = (
        f"{solution.method}, the most favourable of {', '.join(solve.BEST_ORDER)}"
        if solution.requested_method == solve.BEST
        else solution.method
    )
    lines = [
        f"solved: {field} = {solution.value:.6g} for target ε <= {target_epsilon:g} ({how})",
        solution.bound_note(),
    ]
    lines += [f"warning: {message}" for message in solution.warnings]
    if not args.brief:
        lines += _plan_lines(solved) + [""] + _curve_table([curve], every) + [""]
    lines.append(f"ε = {_fmt(curve.epsilon)} at δ = {solved.delta:g} ({curve.method} upper bound)")
    out("\n".join(lines))
    return EXIT_OK


def _solve_phased(args, plan, *, field: str, target_epsilon: float, out) -> int:
    """``dpplan solve`` for a phased ``--plan FILE``: one σ factor, or the last phase's epochs."""
    from dpplan import solve
    from dpplan.accounting import compare, epsilon_curve

    if field == "batch_size":
        raise PlanError(
            "plan",
            args.plan,
            "a single-phase plan for 'solve batch-size'",
            "Phased plans solve noise-multiplier (one factor for every phase) or epochs "
            "(of the last phase).",
        )
    function = getattr(solve, f"solve_{field}")
    solved = function(plan, target_epsilon=target_epsilon, method=args.method)
    if args.method == solve.BEST:
        curve = min(compare(solved).curves, key=lambda c: c.epsilon)
    else:
        curve = epsilon_curve(solved, method=args.method)
    if args.json:
        data = {
            "solved": field,
            "target_epsilon": target_epsilon,
            "requested_method": args.method,
            "method": curve.method,
            "plan": solved.to_dict(),
            **curve.to_dict(),
            "delta": solved.delta,
        }
        out(_dump(data))
        return EXIT_OK
    value = (
        solved.phases[0].noise_multiplier / plan.phases[0].noise_multiplier
        if field == "noise_multiplier"
        else solved.phases[-1].epochs
    )
    what = "noise factor (every phase)" if field == "noise_multiplier" else "last phase epochs"
    lines = [f"solved: {what} = {value:.6g} for target ε <= {target_epsilon:g} ({curve.method})"]
    if not args.brief:
        lines += _plan_lines(solved) + [""] + _curve_table([curve], _every(args)) + [""]
    lines.append(f"ε = {_fmt(curve.epsilon)} at δ = {solved.delta:g} ({curve.method} upper bound)")
    out("\n".join(lines))
    return EXIT_OK


def _threads(args: argparse.Namespace, default: int | None = None) -> int:
    """The --threads value, else ``default``, else :data:`DEFAULT_THREADS`."""
    from dpplan.train.specs import DEFAULT_THREADS

    if args.threads is not None:
        return _number("threads", args.threads)
    return DEFAULT_THREADS if default is None else default


def _run_options(args: argparse.Namespace, *, seed: int | None = None, threads: int | None = None):
    from dpplan.train import RunOptions

    values: dict[str, Any] = {
        "model": args.model,
        "activation": args.activation,
        "device": args.device,
        "seed": _number("seed", args.seed) if seed is None else seed,
        "data_dir": args.data_dir,
        "validation_size": _number("validation_size", args.validation_size),
        "method": args.method,
        "private": not args.non_private,
        "reproducible": args.reproducible,
        "engine": args.engine,
        "threads": _threads(args, threads),
    }
    for field in ("subset", "test_subset", "target_epsilon"):
        text = getattr(args, field)
        if text is not None:
            values[field] = _number(field, text)
    return RunOptions(**values)


def _train_plan(args: argparse.Namespace, options):
    from dpplan.train import training_set_size

    args.dataset_size = str(training_set_size(options))
    return _plan_from_args(args)


def _schedule(kind: str, args: argparse.Namespace):
    from dpplan import _validate
    from dpplan.train.specs import Constant, OneCycle, Plateau

    lr = _validate.finite_positive(lr=_number("lr", args.lr), hint="Pass --lr, e.g. 0.5.")
    momentum = None if args.momentum is None else _number("momentum", args.momentum)
    if kind == "one_cycle":
        return (
            OneCycle(max_lr=lr)
            if momentum is None
            else OneCycle(max_lr=lr, momentum=momentum, cycle_momentum=False)
        )
    if kind == "plateau":
        return Plateau(lr=lr, momentum=momentum or 0.0)
    return Constant(lr=lr, momentum=momentum or 0.0)


def _epsilon_text(record: Any, method: str) -> str:
    """One epoch's ε as every surface shows it: the smallest upper bound, with its method."""
    from dpplan.run_policy import epoch_epsilon

    value, best = epoch_epsilon(record, method)
    return f"{_fmt(value)} ({best})" if math.isfinite(value) else "inf (non-private)"


def _progress(
    total: int,
    method: str,
    *,
    first_epoch: int = 1,
) -> tuple[Callable[[Any], None], Callable[[int, int], None]]:
    """Return (on_epoch, on_step) callbacks that print a run's progress on stderr.

    ``method`` is the run's recorded method, named for the ε of records that hold no other.
    """
    current = [first_epoch]

    def show(record: Any) -> None:
        current[0] = record.epoch + 1
        done = int(20 * record.epoch / total)
        print(
            f"[{'#' * done}{'.' * (20 - done)}] epoch {record.epoch}/{total}  "
            f"ε={_epsilon_text(record, method)}  "
            f"Opacus ε (rdp)={_fmt(record.epsilon_opacus)}  "
            f"test acc={record.test_accuracy:.2%}  loss={record.train_loss:.3f}  "
            f"lr={record.lr:.3g}  {record.seconds:.1f}s",
            file=sys.stderr,
            flush=True,
        )

    def step(done: int, steps: int) -> None:
        print(f"  epoch {current[0]}/{total}: step {done}/{steps}", file=sys.stderr, flush=True)

    return show, step


def _started(run: Any, *, verb: str = "started") -> None:
    """Print that a run started (or resumed): its id, plan, device and threads."""
    plan = run.plan
    shown = "the smallest upper bound of rdp, prv and pld" if run.private else "none (non-private)"
    threads = run.options.get("threads")
    print(
        f"run {run.id} {verb} on {run.device}: dataset_size={plan.dataset_size} "
        f"batch_size={plan.batch_size} noise_multiplier={plan.noise_multiplier:g} "
        f"epochs={plan.epochs} delta={plan.delta:g} ({plan.steps_per_epoch} steps per "
        f"epoch); ε: {shown}"
        + (f"; {threads} CPU thread{'s' if threads != 1 else ''}" if threads else ""),
        file=sys.stderr,
        flush=True,
    )


def _run_summary(run) -> list[str]:
    lines = [
        f"run {run.id}: {run.status}"
        + (f" ({run.stop_reason})" if run.stop_reason else "")
        + (f" error: {run.error}" if run.error else ""),
        (
            f"  device={run.device} seed={run.seed} private={run.private} "
            f"schedule={json.dumps(run.schedule)}"
        ),
    ]
    source = _data_source(run.options)
    if source:
        lines.append(f"  data: {source}")
    lines += ["  " + line for line in _plan_lines(run.plan)]
    if run.records:
        lines.append(
            "  epoch  steps  ε (smallest bound)  Opacus ε (rdp)  val acc  test acc    loss"
            "        lr  seconds"
        )
        for r in run.records:
            shown = _epsilon_text(r, run.method) if run.private else _fmt(r.epsilon)
            lines.append(
                f"  {r.epoch:5d} {r.steps:6d} {shown:>19} {_fmt(r.epsilon_opacus):>15} "
                f"{r.validation_accuracy:8.2%} {r.test_accuracy:9.2%} {r.train_loss:7.4f} "
                f"{r.lr:9.3g} {r.seconds:8.1f}"
            )
    for warning in run.warnings:
        lines.append(f"  warning: {warning}")
    return lines


def _data_source(options: dict[str, Any]) -> str | None:
    """Where a run's MNIST came from, in words (None for runs stored before it was kept)."""
    source = options.get("data_source")
    if source is None:
        return None
    return f"MNIST {source}"


#: Flags of ``dpplan train`` that may differ from the stored run with ``--resume``.
_RESUME_MAY_CHANGE = ("resume", "data_dir", "threads", "json")


def _given_flags(args: argparse.Namespace) -> list[str]:
    """The destinations of the flags given on the command line of ``args``' subcommand.

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


def _resume_conflicts(args: argparse.Namespace, run: Any) -> list[tuple[str, Any, Any]]:
    """(flag, given value, the run's value) for each flag given with ``--resume`` that
    differs from the stored run."""
    options = {"engine": "opacus", **run.options}  # runs stored before engines: Opacus
    schedule = run.schedule
    conflicts = []
    for dest in _given_flags(args):
        if dest in _RESUME_MAY_CHANGE:
            continue
        value = getattr(args, dest)
        if dest in _PLAN_FLAGS:
            stored = getattr(run.plan, dest)
            same = float(_number(dest, value)) == float(stored)
        elif dest == "schedule":
            stored = schedule.get("kind")
            same = value == stored
        elif dest == "lr":
            stored = schedule.get("max_lr", schedule.get("lr"))
            same = float(_number("lr", value)) == float(stored)
        elif dest == "momentum":
            cycles = schedule.get("cycle_momentum", False)
            stored = "cycled" if cycles else schedule.get("momentum")
            same = not cycles and float(_number("momentum", value)) == float(stored)
        elif dest == "non_private":
            stored = not run.private
            same = bool(value) == stored
        elif dest == "reproducible":
            stored = bool(options.get("reproducible", False))
            same = bool(value) == stored
        elif dest in ("seed", "validation_size", "subset", "test_subset", "target_epsilon"):
            stored = options.get(dest)
            same = stored is not None and float(_number(dest, value)) == float(stored)
        else:
            stored = options.get(dest)
            same = value == stored
        if not same:
            conflicts.append((_flag(dest), value, stored))
    return conflicts


def _refuse_resume_flags(args: argparse.Namespace, run: Any) -> None:
    """Refuse flags given with ``--resume`` that differ from the stored run.

    Raises:
        PlanError: naming every differing flag (the first is the error's field).
    """
    conflicts = _resume_conflicts(args, run)
    if not conflicts:
        return
    flag, value, stored = conflicts[0]
    listed = "; ".join(f"{f} {v} (run {run.id} has {s})" for f, v, s in conflicts)
    raise UsageError(
        flag.lstrip("-").replace("-", "_"),
        value,
        f"run {run.id}'s own {stored!r}, or left out with --resume",
        f"Flags that differ from the stored run: {listed}. A resumed run continues with its "
        "own plan, schedule and options; only --data-dir and --threads may change. Drop "
        "them, or start a new run.",
    )


def _fitting_noise(run: Any) -> str:
    """The σ with which every epoch of the run's plan meets its target ε, in words."""
    from dpplan.solve import solve_noise_multiplier

    target = run.options.get("target_epsilon")
    try:
        solved = solve_noise_multiplier(run.plan, target_epsilon=target, method=run.method)
    except DpplanError as exc:
        return f"No noise multiplier could be solved for it ({exc})."
    return (
        f"--noise-multiplier {solved.noise_multiplier:.4g} fits all {run.plan.epochs} "
        f"epoch(s) within target_epsilon={target:g} ({run.method}; from dpplan.solve_"
        "noise_multiplier)."
    )


def _require_training() -> None:
    """Refuse a training command early when torch or Opacus (the 'train' extra) is missing.

    Raises:
        MissingDependencyError: naming the missing package and the extra.
    """
    try:
        import opacus  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            exc.name or "torch", extra="train", purpose="to train with DP-SGD"
        ) from None


def _cmd_train(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    _require_training()
    from dpplan.train import RunStore, resume, start_run
    from dpplan.train.specs import DATA_DIR_ENV

    store = RunStore()
    if args.resume is not None:
        run_id = _run_id("resume", args.resume)
        stored = store.get_run(run_id)
        _refuse_resume_flags(args, stored)
        # The folder given now (--data-dir, else $DPPLAN_DATA_DIR) wins over the stored one;
        # the checksums make sure it is the same MNIST.
        data_dir = args.data_dir or os.environ.get(DATA_DIR_ENV) or None
        threads = None if args.threads is None else _number("threads", args.threads)
        on_epoch = on_step = None
        if not args.json:
            _started(stored, verb=f"resuming after epoch {len(stored.records)}")
            on_epoch, on_step = _progress(
                stored.plan.epochs,
                stored.options.get("method", "prv"),
                first_epoch=len(stored.records) + 1,
            )
        run = resume(
            run_id,
            store=store,
            on_epoch=on_epoch,
            on_step=on_step,
            data_dir=data_dir,
            threads=threads,
        )
    else:
        options = _run_options(args)
        plan = _train_plan(args, options)
        schedule = _schedule(args.schedule, args)
        on_epoch = on_step = on_start = None
        if not args.json:
            on_epoch, on_step = _progress(plan.epochs, options.method)
            on_start = _started
        run = start_run(
            plan,
            schedule,
            options,
            store=store,
            on_epoch=on_epoch,
            on_step=on_step,
            on_start=on_start,
        )
    if run.status == "not_started":
        raise InfeasibleTargetError(
            f"run {run.id} {run.stop_reason}; nothing was trained (stored as not_started). "
            + _fitting_noise(run)
        )
    out(_dump(run.to_dict()) if args.json else "\n".join(_run_summary(run)))
    if run.status == "diverged":
        if not args.json:
            print(f"error: run {run.id} {run.stop_reason}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _cmd_compare(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    _require_training()
    from dpplan.train import RunStore
    from dpplan.train.compare import compare_schedules, grid_for

    options = _run_options(args, seed=0)
    plan = _train_plan(args, options)
    grids = {}
    for kind, text in (("one_cycle", args.one_cycle_lrs), ("plateau", args.plateau_lrs)):
        rates = [_number(f"{kind}_lrs", item) for item in text.split(",") if item.strip()]
        grids[kind] = grid_for(kind, rates)
    seeds = [_number("seeds", item) for item in args.seeds.split(",") if item.strip()]

    def on_run(run: Any) -> None:
        if not args.json:
            last = run.records[-1] if run.records else None
            lr = run.schedule.get("max_lr", run.schedule.get("lr"))
            print(
                f"run {run.id} {run.schedule['kind']} lr={lr} seed={run.seed}: "
                + (
                    f"val acc {last.validation_accuracy:.2%}, test acc {last.test_accuracy:.2%}"
                    if last
                    else run.status
                ),
                file=sys.stderr,
                flush=True,
            )

    result = compare_schedules(
        plan, grids=grids, seeds=seeds, options=options, store=RunStore(), on_run=on_run
    )
    if args.json:
        out(_dump(result.to_dict()))
        return EXIT_OK
    lines = _plan_lines(plan) + [
        (
            f"{result.runs_tried} runs tried (group {result.group_id}); "
            "selecting among them is not covered by ε."
        ),
        "",
    ]
    for summary in result.summaries:
        lines.append(f"{summary.kind}: selected {json.dumps(summary.selected)}")
        lines.append("  epoch  ε (smallest bound)   test acc (mean ± std over seeds)")
        for epoch, eps, method, mean, std in zip(
            summary.epochs,
            summary.epsilons,
            summary.epsilon_methods,
            summary.accuracy_mean,
            summary.accuracy_std,
        ):
            lines.append(
                f"  {epoch:5d} {_fmt(eps) + ' (' + method + ')':>19}   {mean:.2%} ± {std:.2%}"
            )
    out("\n".join(lines))
    return EXIT_OK


def _numbers(field: str, text: str) -> list[int | float]:
    """Parse a comma-separated list of numbers (``1,3`` or ``0.5, 2``)."""
    return [_number(field, item.strip()) for item in text.split(",") if item.strip()]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = round(seconds)
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
        if seconds >= 3600
        else (f"{seconds // 60}m{seconds % 60:02d}s")
    )


def _sweep_progress() -> Callable[[Any], None]:
    """Return an on_progress callback printing the live progress line on stderr."""
    live = sys.stderr.isatty()

    def show(progress: Any) -> None:
        if not live and progress.last is None:
            return  # one line per ended trial when stderr is a file
        line = (
            f"sweep {progress.sweep_id}: {progress.done}/{progress.planned} trials done, "
            f"{progress.running} running, {progress.failed} failed, "
            f"elapsed {_duration(progress.elapsed)}, ETA {_duration(progress.eta)}"
        )
        print(
            ("\r" + line.ljust(100)) if live else line,
            end="" if live else "\n",
            file=sys.stderr,
            flush=True,
        )

    return show


def _sweep_spec(args: argparse.Namespace):
    from dpplan.sweep import SweepSpec

    missing = [
        flag
        for flag, value in (
            ("--epsilons", args.epsilons),
            ("--batch-sizes", args.batch_sizes),
            ("--epochs", args.epochs),
        )
        if value is None
    ]
    if missing:
        raise UsageError(
            missing[0].lstrip("-").replace("-", "_"),
            None,
            "given",
            "A new sweep needs "
            + ", ".join(f"{m} X,Y" for m in missing)
            + " (or --resume SWEEP_ID).",
        )
    if args.seed != "0" or args.target_epsilon is not None or args.non_private:
        flag = (
            "--seed"
            if args.seed != "0"
            else "--target-epsilon"
            if args.target_epsilon is not None
            else "--non-private"
        )
        raise UsageError(
            flag.lstrip("-").replace("-", "_"),
            flag,
            "left out of a sweep",
            "Sweeps take --seeds, solve each plan for --epsilons, and are private.",
        )
    cpus = _number("cpus_per_trial", args.cpus_per_trial)
    # One thread per CPU a trial reserves (at least one).
    options = _run_options(args, seed=0, threads=max(1, int(cpus)) if cpus >= 1 else 1)
    kinds = [kind.strip() for kind in args.schedules.split(",") if kind.strip()]
    values: dict[str, Any] = {
        "target_epsilons": _numbers("epsilons", args.epsilons),
        "delta": _number("delta", args.delta),
        "batch_sizes": _numbers("batch_sizes", args.batch_sizes),
        "epochs": _numbers("epochs", args.epochs),
        "schedules": kinds,
        "seeds": _numbers("seeds", args.seeds),
        "options": options,
        "method": args.method,
        "max_grad_norm": _number("max_grad_norm", args.max_grad_norm),
    }
    for kind in ("one_cycle", "plateau", "constant"):
        text = getattr(args, f"{kind}_lrs")
        rates = _numbers(f"{kind}_lrs", text)
        values[f"{kind}_lrs"] = rates if rates or kind in kinds else []
    if args.random_repeats is not None:
        values["random_repeats"] = _number("random_repeats", args.random_repeats)
    if args.simulate is not None:  # issue 22: predict by simulation at K
        values["simulate"] = _number("simulate", args.simulate)
        values["simulate_data"] = args.simulate_data
    elif args.simulate_data != "training":
        raise UsageError("simulate_data", args.simulate_data, "given with --simulate K")
    return SweepSpec(**values)


def _simulation_lines(result: dict[str, Any]) -> list[str]:
    """What a sweep predicted by simulation must say first (issue 22)."""
    mark = result.get("simulation")
    if not mark:
        return []
    measured = mark.get("calibration")
    error = (
        f"measured error at K = {mark['predicted_by_simulation']}: "
        f"{measured['mean_abs_error_points']:.1f} points on average, "
        f"{measured['worst_abs_error_points']:.1f} at worst ({measured['source']})"
        if measured
        else f"K = {mark['predicted_by_simulation']} is not calibrated: error unmeasured"
    )
    data = (
        "the validation split, treated as public (no training-data ε)"
        if mark["simulation_data"] == "validation"
        else "the training data (the trials' own, large ε is the composed ε below)"
    )
    return [
        (
            f"every point is {mark['label']}: trials trained B/K with σ/K for the plan's "
            f"steps on {data}; {error}"
        ),
        "",
    ]


def _frontier_lines(result: dict[str, Any]) -> list[str]:
    tuning = result["tuning"]
    predicted = f" [{result['simulation']['label']}]" if result.get("simulation") else ""
    lines = [
        (
            f"sweep {result['sweep_id']}: {result['status']}; {result['runs_tried']} runs "
            f"tried; trials {result['trials']['finished']} finished"
            + (
                f" ({result['trials']['diverged']} diverged: no accuracy, never selected)"
                if result["trials"].get("diverged")
                else ""
            )
            + f", {result['trials']['failed']} failed of {result['trials']['planned']} planned"
        ),
        "",
        *_simulation_lines(result),
        (
            "frontier (configuration with the best validation accuracy at each ε; test "
            f"accuracy mean ± std over seeds){predicted}:"
        ),
        "  target ε        ε      B    E        σ  schedule    lr      test acc        seeds",
    ]

    def row(point: dict[str, Any]) -> str:
        plan, schedule = point["plan"], point["schedule"]
        lr = schedule.get("max_lr", schedule.get("lr"))
        # One seed measures no spread: say so instead of printing "± 0.00%".
        spread = (
            f"± {point['test_accuracy_std']:.2%}"
            if len(point["seeds"]) > 1
            else "(1 seed: no spread measured)"
        )
        return (
            f"  {point['target_epsilon']:8g} {_fmt(point['epsilon']):>8} "
            f"{plan['batch_size']:6d} {plan['epochs']:4d} {plan['noise_multiplier']:8.4f}"
            f"  {schedule['kind']:<10} {lr:<6g} {point['test_accuracy_mean']:7.2%} "
            f"{spread}  {','.join(map(str, point['seeds']))}"
            + (
                f" (seed {','.join(map(str, point['diverged_seeds']))} diverged)"
                if point.get("diverged_seeds")
                else ""
            )
        )

    lines += [row(point) for point in result["points"]] or ["  (no point yet)"]
    for kind, curve in result["curves"].items():
        lines += ["", f"{kind}:"] + [row(point) for point in curve]
    lines += [
        "",
        f"privacy cost of tuning (δ = {tuning['delta']:g}, upper bounds):",
        f"  one run:                 ε = {_fmt(tuning['single_run_epsilon'])}",
        f"  all {tuning['runs']} runs composed:   ε = {_fmt(tuning['all_runs_epsilon'])}"
        + (f" ({tuning['all_runs_method']})" if tuning.get("all_runs_method") else ""),
    ]
    if "repeat_and_select_epsilon" in tuning:
        lines.append(
            f"  repeat-and-select (Poisson mean {tuning['random_repeats']:g}): ε = "
            f"{_fmt(tuning['repeat_and_select_epsilon'])} for the selected model"
        )
    for row_ in tuning["per_target"]:
        text = f"  at target ε {row_['target_epsilon']:g}: {row_['runs']} runs"
        if "all_runs_epsilon" in row_:
            text += f", composed ε = {_fmt(row_['all_runs_epsilon'])}"
        if "repeat_and_select_epsilon" in row_:
            text += f", repeat-and-select ε = {_fmt(row_['repeat_and_select_epsilon'])}"
        lines.append(text)
    lines.append(f"  validation: {tuning['covers']['validation']}.")
    if "simulation" in tuning.get("covers", {}):
        lines.append(f"  simulation: {tuning['covers']['simulation']}.")
    failures = result.get("failures", [])
    if failures:
        lines += ["", f"failed trials ({len(failures)}):"]
        for failure in failures:
            run = f" (run {failure['run_id']})" if failure.get("run_id") is not None else ""
            lines.append(f"  {failure['key']}{run}:")
            lines += [
                f"    {line}" for line in (failure["error"] or "no error recorded").splitlines()
            ]
    if "repeat_and_select_epsilon" in tuning:
        lines.append(
            "  keep private: the number of runs and trials and the composed ε above "
            "give away how many trials ran, which the repeat-and-select guarantee "
            "needs to stay secret; publish 'dpplan report --sweep ID', which leaves "
            "them out."
        )
    return lines


#: ``dpplan sweep`` flags that may differ on ``--resume``: where the data is read and how the
#: trials run (not what they train).
_SWEEP_RESUME_MAY_CHANGE = frozenset(
    {
        "--resume",
        "--data-dir",
        "--threads",
        "--json",
        "--local",
        "--ray-address",
        "--gpus-per-trial",
        "--cpus-per-trial",
        "--num-cpus",
        "--worker-data",
    }
)
#: ``dpplan sweep`` flag -> (stored spec field, or "options.FIELD"; how the flag's text is read).
_SWEEP_FLAGS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "--epsilons": ("target_epsilons", lambda t: sorted(map(float, _numbers("epsilons", t)))),
    "--batch-sizes": ("batch_sizes", lambda t: _numbers("batch_sizes", t)),
    "--epochs": ("epochs", lambda t: _numbers("epochs", t)),
    "--delta": ("delta", lambda t: float(_number("delta", t))),
    "--max-grad-norm": ("max_grad_norm", lambda t: float(_number("max_grad_norm", t))),
    "--schedules": ("schedules", lambda t: [k.strip() for k in t.split(",") if k.strip()]),
    "--one-cycle-lrs": ("one_cycle_lrs", lambda t: list(map(float, _numbers("lr", t)))),
    "--plateau-lrs": ("plateau_lrs", lambda t: list(map(float, _numbers("lr", t)))),
    "--constant-lrs": ("constant_lrs", lambda t: list(map(float, _numbers("lr", t)))),
    "--seeds": ("seeds", lambda t: _numbers("seeds", t)),
    "--random-repeats": ("random_repeats", lambda t: float(_number("random_repeats", t))),
    "--simulate": ("simulate", lambda t: _number("simulate", t)),
    "--simulate-data": ("simulate_data", str),
    "--method": ("method", str),
    "--model": ("options.model", str),
    "--activation": ("options.activation", str),
    "--device": ("options.device", str),
    "--engine": ("options.engine", str),
    "--validation-size": ("options.validation_size", lambda t: _number("validation_size", t)),
    "--subset": ("options.subset", lambda t: _number("subset", t)),
    "--test-subset": ("options.test_subset", lambda t: _number("test_subset", t)),
}


#: ``dpplan train`` flags a sweep refuses (it takes --seeds and --epsilons, and is private).
_NOT_SWEEP_FLAGS = ("--seed", "--target-epsilon", "--non-private", "--reproducible")


def _given_sweep_flags(argv: Sequence[str]) -> list[str]:
    """Return the sweep's long flags given on the command line, once each, in order.

    ``--a=b`` counts as ``--a``; an abbreviation argparse accepted (``--epsil``) is
    expanded to the one known flag it starts.
    """
    known = [*_SWEEP_FLAGS, *_SWEEP_RESUME_MAY_CHANGE, *_NOT_SWEEP_FLAGS]
    flags = []
    for token in argv:
        if not token.startswith("--"):
            continue
        flag = token.split("=", 1)[0]
        if flag not in known:
            matches = [name for name in known if name.startswith(flag)]
            flag = matches[0] if len(matches) == 1 else flag
        flags.append(flag)
    return list(dict.fromkeys(flags))


def _refuse_changed_flags(args: argparse.Namespace, sweep_id: int, spec: dict[str, Any]) -> None:
    """Refuse flags given with ``--resume`` whose value differs from the stored sweep.

    A resumed sweep runs the stored grid and options; only where the data is read and how
    the trials run may change. Every differing flag is named at once.

    Raises:
        PlanError: (field ``resume``) naming each flag, its value and the stored one.
    """
    changed = []
    for flag in _given_sweep_flags(getattr(args, "argv", ())):
        if flag in _SWEEP_RESUME_MAY_CHANGE:
            continue
        text = getattr(args, flag[2:].replace("-", "_"), None)
        if flag not in _SWEEP_FLAGS:
            changed.append(f"{flag} (not a sweep setting)")
            continue
        field, read = _SWEEP_FLAGS[flag]
        stored: Any = spec
        for part in field.split("."):
            stored = stored.get(part) if isinstance(stored, dict) else None
        if field == "target_epsilons" and isinstance(stored, list):
            stored = sorted(map(float, stored))
        elif field.endswith("_lrs") and isinstance(stored, list):
            stored = list(map(float, stored))
        if text is None or read(text) != stored:
            shown = (
                ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in stored)
                if isinstance(stored, list)
                else stored
            )
            changed.append(f"{flag} {text} (sweep {sweep_id} has {shown})")
    if changed:
        raise UsageError(
            "resume",
            sweep_id,
            "given without flags that change the stored sweep",
            "A resumed sweep runs its stored grid and options; these differ: "
            + "; ".join(changed)
            + ". Leave them out to resume, or start a new sweep without --resume (only "
            "--data-dir and the execution flags may change).",
        )


def _cmd_sweep(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    from dpplan.store import RunStore
    from dpplan.sweep import LocalExecutor, RayExecutor, SweepSpec, create_sweep, run_sweep

    ship = not args.worker_data
    if args.local:
        for flag in _given_sweep_flags(getattr(args, "argv", ())):
            if flag in ("--ray-address", "--num-cpus", "--cpus-per-trial", "--gpus-per-trial"):
                field = flag[2:].replace("-", "_")
                raise UsageError(
                    field,
                    getattr(args, field),
                    "omitted with --local",
                    "--local runs the trials one at a time in this process, without Ray.",
                )
        executor: Any = LocalExecutor(ship_data=ship)
    else:
        executor = RayExecutor(  # refuses first (exit 2): Ray missing, bad address or counts
            address=args.ray_address,
            gpus_per_trial=None
            if args.gpus_per_trial is None
            else _number("gpus_per_trial", args.gpus_per_trial),
            cpus_per_trial=_number("cpus_per_trial", args.cpus_per_trial),
            num_cpus=None if args.num_cpus is None else _number("num_cpus", args.num_cpus),
            ship_data=ship,
        )
    store = RunStore()
    data_dir = None
    try:
        if args.resume is not None:
            sweep_id = _sweep_id("resume", args.resume)
            record = store.get_sweep(sweep_id)
            if record.status == "running":  # refuse before anything starts or is printed
                store.claim_sweep(sweep_id)  # raises, naming the live driver
            _refuse_changed_flags(args, sweep_id, record.spec)
            spec = SweepSpec.from_dict(record.spec)
            if args.data_dir is not None:
                data_dir = args.data_dir
                spec = dataclasses.replace(
                    spec, options=dataclasses.replace(spec.options, data_dir=data_dir)
                )
            executor.prepare(spec.options)  # Ray up (or refused) before "resumed"
        else:
            # Solved, then the executor started, then stored: a refused start stores nothing.
            sweep_id = create_sweep(_sweep_spec(args), store=store, executor=executor)
    except BaseException:
        executor.close()
        raise
    print(
        f"sweep {sweep_id} {'resumed' if args.resume else 'created'} on {executor.name} "
        f"(dpplan frontier {sweep_id} shows it)",
        file=sys.stderr,
        flush=True,
    )
    progress = _sweep_progress() if not args.json or sys.stderr.isatty() else None
    result = run_sweep(
        sweep_id, store=store, executor=executor, on_progress=progress, data_dir=data_dir
    )
    if progress is not None and sys.stderr.isatty():
        print(file=sys.stderr)
    out(_dump(result) if args.json else "\n".join(_frontier_lines(result)))
    return EXIT_OK if result["trials"]["failed"] == 0 else EXIT_FAILURE


def _cmd_frontier(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    from dpplan.store import RunStore
    from dpplan.sweep import frontier_result

    result = frontier_result(RunStore(), _sweep_id("sweep_id", args.sweep_id))
    out(_dump(result) if args.json else "\n".join(_frontier_lines(result)))
    return EXIT_OK


def _grid_text(spec: dict[str, Any]) -> str:
    """Return a sweep's grid in a few words: ``ε 1,3 × B 256 × E 1 × one_cycle 3 LRs ...``."""

    def values(key: str) -> str:
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in spec.get(key, []))

    kinds = " ".join(
        f"{kind} {len(spec.get(f'{kind}_lrs', []))} LRs" for kind in spec.get("schedules", [])
    )
    text = (
        f"ε {values('target_epsilons')} × B {values('batch_sizes')} × E {values('epochs')} "
        f"× {kinds} × {len(spec.get('seeds', []))} seeds"
    )
    if spec.get("random_repeats") is not None:
        text += f" (random, mean {spec['random_repeats']:g})"
    if spec.get("simulate") is not None:
        on = ", public validation data" if spec.get("simulate_data") == "validation" else ""
        text += f" (predicted by simulation at K={spec['simulate']}{on})"
    return text


def _sweep_summary(record: Any) -> dict[str, Any]:
    from dpplan.sweep import SweepSpec
    from dpplan.sweep.protocol import planned_trials

    try:
        planned: int | None = planned_trials(SweepSpec.from_dict(record.spec), record.draws)
    except (DpplanError, KeyError, TypeError):
        planned = None  # a spec this version cannot read; the rest is still shown
    return {
        "sweep_id": record.id,
        "status": record.status,
        "grid": _grid_text(record.spec),
        "spec": record.spec,
        "trials": {
            "planned": planned,
            "finished": sum(1 for t in record.trials if t.status == "finished"),
            "failed": sum(1 for t in record.trials if t.status == "failed"),
        },
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "error": record.error,
    }


def _cmd_sweeps(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    import time

    from dpplan.store import RunStore

    store = RunStore()
    sweeps = [_sweep_summary(record) for record in store.list_sweeps()]
    if args.json:
        out(_dump({"sweeps": sweeps, "store": str(store.path)}))
        return EXIT_OK
    lines = [
        f"store: {store.path}",
        "   id  status       done  failed  planned  created           grid",
    ]
    for sweep in sweeps:
        trials = sweep["trials"]
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(sweep["created_at"]))
        planned = "?" if trials["planned"] is None else trials["planned"]
        lines.append(
            f"{sweep['sweep_id']:5d}  {sweep['status']:<11} {trials['finished']:5d} "
            f"{trials['failed']:7d} {planned:>8}  {created}  {sweep['grid']}"
        )
    if not sweeps:
        lines.append("  (no sweep yet: start one with 'dpplan sweep')")
    else:
        lines.append("a sweep's frontier: dpplan frontier SWEEP_ID")
    out("\n".join(lines))
    return EXIT_OK


def _sweep_trial_of(store: Any, run: Any) -> dict[str, Any] | None:
    """Return the sweep trial a run belongs to (sweep id, key, status, error), if any."""
    group = run.group_id or ""
    if not (group.startswith("sweep-") and group[6:].isdigit()):
        return None
    try:
        record = store.get_sweep(int(group[6:]))
    except NotFoundError:
        return None
    for trial in record.trials:
        if trial.run_id == run.id:
            return {
                "sweep_id": record.id,
                "key": trial.key,
                "status": trial.status,
                "error": trial.error,
            }
    return None


def _stop_text(result: Any) -> str:
    """Say what :meth:`~dpplan.store.RunStore.request_stop` did (a ``StopResult``)."""
    from dpplan.store import LEASE_SECONDS, StopOutcome

    run_id = result.run_id
    if result.outcome is StopOutcome.CANCELLED:
        return f"cancelled queued run {run_id}"
    if result.outcome is StopOutcome.ALREADY_ENDED:
        return f"run {run_id} is already {result.status}; nothing to stop"
    if result.outcome is StopOutcome.MARKED_STOPPED:
        return (
            f"marked run {run_id} as stopped (it showed as {result.status}: {result.owner}); "
            f"its records and checkpoint are kept; 'dpplan train --resume {run_id}' continues "
            "it"
            + (
                ". If that process still runs, it stops at its next check"
                if result.forced and result.owner_alive
                else ""
            )
        )
    if result.outcome is StopOutcome.REQUESTED_STALE:
        return (
            f"asked run {run_id} to stop, but it has not sent a heartbeat for more than "
            f"{LEASE_SECONDS:.0f} s ({result.owner}). If its process is gone, mark it stopped "
            f"with 'dpplan runs stop {run_id} --force'"
        )
    return f"asked run {run_id} to stop; it stops within seconds"


def _cmd_runs(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    from dpplan.run_policy import delete_run, run_epsilon
    from dpplan.store import RunStore

    store = RunStore()
    if args.action in ("show", "stop", "delete"):
        run_id = _run_id("run_id", args.run_id)
        if args.action == "stop":
            done = store.request_stop(run_id, force=args.force)
            if not args.json:
                out(_stop_text(done))
        elif args.action == "delete":
            delete_run(store, run_id)
            out(_dump({"deleted": run_id}) if args.json else f"deleted run {run_id}")
            return EXIT_OK
        run = store.get_run(run_id)
        trial = _sweep_trial_of(store, run)
        if args.json:
            data = run.to_dict()
            if trial is not None:
                data["sweep_trial"] = trial
            out(_dump(data))
            return EXIT_OK
        lines = _run_summary(run)
        if trial is not None:
            lines.append(f"  sweep {trial['sweep_id']} trial {trial['key']}: {trial['status']}")
            if trial["error"]:
                lines += [f"    {line}" for line in trial["error"].splitlines()]
        out("\n".join(lines))
        return EXIT_OK
    runs = store.list_runs()
    if args.json:
        out(_dump({"runs": [run.to_dict() for run in runs], "store": str(store.path)}))
        return EXIT_OK
    lines = [
        f"store: {store.path}",
        "   id  status       schedule    lr      epochs   ε (method)  test acc  device",
    ]
    for run in runs:
        last = run.records[-1] if run.records else None
        lr = run.schedule.get("max_lr", run.schedule.get("lr"))
        # One ε per run: the smallest upper bound recorded, labelled with its method.
        best = run_epsilon(run) if run.private else None
        shown = (
            f"{_fmt(best[0])} ({best[1]})"
            if best
            else ("-" if last is None else f"{_fmt(last.epsilon)} (none)")
        )
        lines.append(
            f"{run.id:5d}  {run.status:<11}  {run.schedule['kind']:<10} {lr:<7g} "
            f"{len(run.records):>3}/{run.plan.epochs:<3}  "
            f"{shown:>13}  "
            f"{f'{last.test_accuracy:.2%}' if last else '-':>8}  {run.device}"
        )
    out("\n".join(lines))
    return EXIT_OK


def _cmd_report(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    from dpplan.report import (
        build_report,
        build_run_report,
        build_sweep_report,
        load_run_report,
        render,
        save_run_report,
    )
    from dpplan.store import RunStore

    plan_flags = [f for f in _PLAN_FLAGS if getattr(args, f, None) is not None]
    if args.sweep is not None:
        for name, value in [(f, getattr(args, f)) for f in plan_flags] + [
            ("run", args.run),
            ("tuning_runs", args.tuning_runs),
            ("stored", args.stored or None),
        ]:
            if value is not None:
                raise UsageError(
                    name,
                    value,
                    "omitted with --sweep",
                    "A sweep's report uses the sweep's own plans and runs.",
                )
        if args.home is not None and not (Path(args.home).expanduser() / "runs.sqlite3").exists():
            raise NotFoundError(
                "home",
                args.home,
                "a folder holding runs.sqlite3",
                "Pass the folder of the run store (DPPLAN_HOME).",
            )
        report = build_sweep_report(
            RunStore(args.home),
            _sweep_id("sweep", args.sweep),
            title=args.title,
            notes=args.notes,
        )
    elif args.run is not None:
        if plan_flags:
            raise UsageError(
                plan_flags[0],
                getattr(args, plan_flags[0]),
                "omitted with --run",
                "A run's report uses the run's own plan.",
            )
        if args.tuning_runs is not None:
            raise UsageError(
                "tuning_runs",
                args.tuning_runs,
                "omitted with --run",
                "A run's comparison group comes from the run store.",
            )
        if args.home is not None and not (Path(args.home).expanduser() / "runs.sqlite3").exists():
            raise NotFoundError(
                "home",
                args.home,
                "a folder holding runs.sqlite3",
                "Pass the folder of the run store (DPPLAN_HOME).",
            )
        store = RunStore(args.home)
        run_id = _run_id("run", args.run)
        if args.stored:
            if args.title is not None or args.notes is not None:
                raise UsageError(
                    "title" if args.title is not None else "notes",
                    args.title if args.title is not None else args.notes,
                    "omitted with --stored",
                    "A stored report is shown as stored.",
                )
            report = load_run_report(store, run_id)
            if report is None:
                raise NotFoundError(
                    "run",
                    run_id,
                    "a run with a stored report",
                    f"Make one with 'dpplan report --run {run_id}'.",
                )
        else:
            report = build_run_report(store, run_id, title=args.title, notes=args.notes)
            save_run_report(store, report)
    else:
        if args.stored:
            raise PlanError("stored", True, "used with --run ID", "Only runs store reports.")
        plan = _plan_from_args(args)
        tuning_runs = None if args.tuning_runs is None else _number("tuning_runs", args.tuning_runs)
        report = build_report(plan, tuning_runs=tuning_runs, title=args.title, notes=args.notes)
    if args.format == "pdf" and args.output is None:
        raise UsageError(
            "output",
            None,
            "a file path with --format pdf",
            "A PDF is binary: add --output report.pdf.",
        )
    text = render(report, args.format)
    if args.output is None:
        out(text.rstrip("\n"))
        return EXIT_OK
    path = Path(args.output).expanduser()
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        if isinstance(text, bytes):
            temporary.write_bytes(text)
        else:
            temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        raise PlanError("output", args.output, "a writable file path", str(exc)) from None
    if report.sweep is not None:
        print(
            f"wrote {path} ({args.format}; sweep {report.sweep.id}, "
            f"{len(report.sweep.points)} points at δ = {report.delta:g})",
            file=sys.stderr,
        )
    else:
        print(
            f"wrote {path} ({args.format}; ε = {_fmt(report.epsilon)} at δ = "
            f"{report.delta:g}, {report.method})",
            file=sys.stderr,
        )
    return EXIT_OK


def _add_run_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    group.add_argument(
        "--model",
        default="seed",
        choices=("seed", "tempered"),
        help="network: the super-convergence study's (seed) or Papernot et al.'s tempered CNN",
    )
    group.add_argument(
        "--activation",
        default="relu",
        choices=("relu", "tanh"),
        help="activation of the tempered CNN",
    )
    group.add_argument(
        "--seed",
        default="0",
        help="seed of the model initialisation and dropout (not of the noise)",
    )
    group.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="training device (auto: CUDA when available)",
    )
    group.add_argument(
        "--data-dir",
        default=None,
        help="existing folder with the MNIST IDX files (default "
        "$DPPLAN_DATA_DIR, else a per-user cache folder where missing files "
        "are downloaded); with --resume, read the run's MNIST from here",
    )
    group.add_argument(
        "--validation-size", default="5000", help="examples held out of the 60,000 for validation"
    )
    group.add_argument(
        "--subset",
        default=None,
        help="train on N examples only: the first N left after the validation split (quick runs)",
    )
    group.add_argument("--test-subset", default=None, help="evaluate on the first N test examples")
    group.add_argument(
        "--target-epsilon", default=None, help="stop before an epoch whose ε would exceed this"
    )
    group.add_argument(
        "--method",
        default="prv",
        choices=("rdp", "prv", "pld"),
        help="accounting method of the recorded ε",
    )
    group.add_argument(
        "--engine",
        default="fused",
        choices=("fused", "opacus"),
        help="how each DP-SGD step is computed: fused (torch.func per-example "
        "gradients, compiled on CUDA) or opacus (Opacus' hooks); same mechanism "
        "and ε",
    )
    group.add_argument(
        "--non-private",
        action="store_true",
        help="train the non-private baseline (no clipping or noise; ε = ∞)",
    )
    group.add_argument(
        "--reproducible",
        action="store_true",
        help="derive sampling and noise from --seed (experiments only: no "
        "privacy against anyone who knows the seed)",
    )
    group.add_argument(
        "--threads",
        default=None,
        metavar="N",
        help="CPU threads torch uses per run (default 1, measured fastest on a shared "
        "machine, see BENCHMARKS.md; a sweep: one per --cpus-per-trial). Speed only, "
        "never ε; may change with --resume",
    )
    group.add_argument("--json", action="store_true", help="print JSON")


def app_path() -> Path:
    """Return the planner app's entry point (``app/streamlit_app.py`` next to the package)."""
    return Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py"


def _cmd_app(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    entry = app_path()
    if not entry.exists():
        raise PlanError(
            "app",
            str(entry),
            "the planner's entry point",
            "Install dpplan from a clone of its repository (pip install -e .) to get the app.",
        )
    try:
        import streamlit  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "streamlit", extra="app", purpose="by 'dpplan app' (the planner app)"
        ) from None
    port = _validate_port(args.port)
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(entry),
        "--server.port",
        str(port),
        "--server.address",
        args.address,
        "--client.toolbarMode",
        "minimal",
        "--browser.gatherUsageStats",
        "false",
    ]
    if args.headless:
        command += ["--server.headless", "true"]
    from dpplan.store import default_home

    print(
        f"dpplan planner: http://{args.address}:{port}  (runs are stored in "
        f"{default_home() / 'runs.sqlite3'}; Ctrl+C stops)",
        file=sys.stderr,
        flush=True,
    )
    if os.name != "posix":  # pragma: no cover - no exec that keeps the process on Windows
        import subprocess

        return subprocess.call(command)
    # Become the server: a SIGTERM or Ctrl+C sent to `dpplan app` reaches Streamlit itself,
    # so stopping the command never leaves a server behind.
    sys.stdout.flush()
    os.execv(sys.executable, command)
    raise AssertionError("unreachable")  # pragma: no cover


def _validate_port(text: str) -> int:
    from dpplan import _validate

    return _validate.integer(minimum=1, maximum=65535, port=_number("port", text))


def _add_plan_file_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plan",
        metavar="FILE",
        help='a JSON plan instead of the plan flags: {"dataset_size": N, "delta": D, "phases": '
        '[{"batch_size": B, "noise_multiplier": S, "epochs": E}, ...]} (a phase may add '
        '"steps" to stop mid-epoch)',
    )


def _add_output_flags(parser: argparse.ArgumentParser, *, brief: str) -> None:
    """--every, --brief and --json, shared by ``epsilon`` and ``solve``."""
    parser.add_argument(
        "--every",
        default="1",
        metavar="K",
        help="plain output: show every K-th epoch (and the last)",
    )
    parser.add_argument("--brief", action="store_true", help=f"plain output: {brief}")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _build_parser() -> _Parser:
    from dpplan.train.specs import (
        DEFAULT_CONSTANT_LRS,
        DEFAULT_ONE_CYCLE_LRS,
        DEFAULT_PLATEAU_LRS,
    )

    parser = _Parser(
        prog="dpplan",
        description="Plan DP-SGD privacy budgets: ε after every epoch (RDP, PRV, PLD) and "
        "solvers for the noise multiplier, epochs or batch size.",
    )
    parser.add_argument("--version", action="version", version=f"dpplan {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    defaults = _DefaultsFormatter
    eps = commands.add_parser(
        "epsilon", help="ε after every epoch of a plan", formatter_class=defaults
    )
    _add_plan_flags(eps, or_file=True)
    _add_plan_file_flag(eps)
    eps.add_argument(
        "--method",
        choices=("rdp", "prv", "pld", "all"),
        default="all",
        help="accounting method (all: the three and the headline)",
    )
    _add_output_flags(eps, brief="only the final ε per method and the headline")
    eps.set_defaults(handler=_cmd_epsilon)

    slv = commands.add_parser(
        "solve",
        help="solve for noise multiplier, epochs or batch size",
        description="Solve for one plan field so that ε meets a target. Run "
        "'dpplan solve TARGET --help' for the flags of one target.",
    )
    targets = slv.add_subparsers(
        dest="target", required=True, metavar="TARGET", parser_class=_Parser
    )
    for target, field in _SOLVE_TARGETS.items():
        words = field.replace("_", " ")
        sub = targets.add_parser(
            target,
            help=f"the {_SOLVE_WHAT[field]} {words} that meets the target ε",
            description=f"Find the {_SOLVE_WHAT[field]} {words} whose ε (an upper bound) is at "
            "most --target-epsilon; the other plan fields are given.",
            formatter_class=defaults,
        )
        sub.add_argument("--target-epsilon", required=True, metavar="X", help="ε to meet")
        _add_plan_flags(sub, skip=field, or_file=True)
        _add_plan_file_flag(sub)
        sub.add_argument(
            "--method",
            choices=("best", "rdp", "prv", "pld"),
            default="best",
            help="accounting method (best: solve with each and keep the most favourable plan, "
            "certified by the method named in the output)",
        )
        _add_output_flags(sub, brief="only the solved value and its final ε")
        sub.set_defaults(handler=_cmd_solve)

    trn = commands.add_parser(
        "train", help="train the plan with DP-SGD on MNIST", formatter_class=defaults
    )
    _add_plan_flags(trn, skip="dataset_size", required="unless --resume")
    trn.add_argument(
        "--schedule",
        default="one_cycle",
        choices=("one_cycle", "plateau", "constant"),
        help="learning-rate schedule",
    )
    trn.add_argument("--lr", default="1.0", help="learning rate (the peak for one_cycle)")
    trn.add_argument(
        "--momentum", default=None, help="SGD momentum (one_cycle cycles 0.95-0.85 unless given)"
    )
    trn.add_argument(
        "--resume",
        default=None,
        metavar="RUN_ID",
        help="continue an interrupted run from its last checkpoint",
    )
    _add_run_flags(trn)
    trn.set_defaults(handler=_cmd_train, dataset_size=None, parser_=trn)

    cmp_ = commands.add_parser(
        "compare",
        help="fair comparison of one-cycle and plateau at equal ε (LR grid x seeds)",
        formatter_class=defaults,
    )
    _add_plan_flags(cmp_, skip="dataset_size")
    cmp_.add_argument(
        "--one-cycle-lrs",
        default=",".join(f"{lr:g}" for lr in DEFAULT_ONE_CYCLE_LRS),
        help="one-cycle peak LR grid (default: the peaks the notebooks selected)",
    )
    cmp_.add_argument(
        "--plateau-lrs",
        default=",".join(f"{lr:g}" for lr in DEFAULT_PLATEAU_LRS),
        help="plateau start LR grid",
    )
    cmp_.add_argument("--seeds", default="0,1,2", help="seeds; the first selects the LR")
    _add_run_flags(cmp_)
    cmp_.set_defaults(handler=_cmd_compare, dataset_size=None)

    swp = commands.add_parser(
        "sweep",
        help="the ε-vs-accuracy frontier: plans solved per target ε, schedules tuned, on Ray",
        formatter_class=defaults,
        description="For every target ε, batch size and number of epochs, solve the noise "
        "multiplier; tune every schedule's learning rate on validation accuracy with the first "
        "seed, repeat the choice with the other seeds; store every run, the frontier and the "
        "privacy cost of the tuning. Runs on an embedded Ray by default (pip install -e "
        "'.[sweep]').",
    )
    grid = swp.add_argument_group("grid (required unless --resume)")
    grid.add_argument("--epsilons", default=None, metavar="E1,E2", help="target ε values")
    grid.add_argument("--batch-sizes", default=None, metavar="B1,B2", help="batch sizes")
    grid.add_argument("--epochs", default=None, metavar="E1,E2", help="numbers of epochs")
    swp.add_argument("--delta", default="1e-5", help="δ of every plan")
    swp.add_argument("--max-grad-norm", default="1.0", help="clipping norm C (does not change ε)")
    swp.add_argument(
        "--schedules",
        default="one_cycle,plateau",
        help="schedules to tune (one_cycle, plateau, constant)",
    )
    swp.add_argument(
        "--one-cycle-lrs",
        default=",".join(f"{lr:g}" for lr in DEFAULT_ONE_CYCLE_LRS),
        help="one-cycle peak LR grid (default: the peaks the notebooks selected; the "
        "published 15.62 diverges in this set-up)",
    )
    swp.add_argument(
        "--plateau-lrs",
        default=",".join(f"{lr:g}" for lr in DEFAULT_PLATEAU_LRS),
        help="plateau start LR grid",
    )
    swp.add_argument(
        "--constant-lrs",
        default=",".join(f"{lr:g}" for lr in DEFAULT_CONSTANT_LRS),
        help="constant LR grid",
    )
    swp.add_argument("--seeds", default="0,1,2", help="seeds; the first selects the LR")
    swp.add_argument(
        "--random-repeats",
        default=None,
        metavar="MEAN",
        help="Papernot & Steinke's protocol: per ε, a secret Poisson(MEAN) number "
        "of configurations drawn at random from the grid; the best is the tuned "
        "model (small stated ε overhead instead of composing every run)",
    )
    swp.add_argument(
        "--simulate",
        default=None,
        metavar="K",
        help="predict the frontier by simulation (issue 22): every trial trains B/K with σ/K "
        "for the plan's steps; points are marked 'predicted (sim K=…)' with the measured "
        "error at K (README: Predict before you train)",
    )
    swp.add_argument(
        "--simulate-data",
        default="training",
        choices=("training", "validation"),
        help="what simulated trials train on: the training data (their own, large ε "
        "counts) or the validation split, treated as public",
    )
    swp.add_argument(
        "--resume",
        default=None,
        metavar="SWEEP_ID",
        help="continue a sweep (ids: 'dpplan sweeps'): run only the trials without an "
        "outcome; flags that change its grid or options are refused",
    )
    ray_ = swp.add_argument_group("execution")
    ray_.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDRESS",
        help="an existing Ray cluster (default $DPPLAN_RAY_ADDRESS, else an "
        "embedded Ray over this machine's CPUs and GPUs)",
    )
    ray_.add_argument(
        "--gpus-per-trial",
        default=None,
        metavar="F",
        help="GPU fraction per trial (default 0.25 with GPUs: four trials share "
        "one; 0 trains on CPUs)",
    )
    ray_.add_argument("--cpus-per-trial", default="1", metavar="N", help="CPUs per trial")
    ray_.add_argument(
        "--num-cpus", default=None, metavar="N", help="CPUs of the embedded Ray (default: all)"
    )
    ray_.add_argument(
        "--worker-data",
        action="store_true",
        help="workers read MNIST from their own --data-dir instead of receiving "
        "it through Ray's object store",
    )
    ray_.add_argument(
        "--local",
        action="store_true",
        help="run the trials one at a time in this process, without Ray",
    )
    _add_run_flags(swp)
    swp.set_defaults(handler=_cmd_sweep)

    frt = commands.add_parser("frontier", help="a stored sweep's frontier and tuning cost")
    frt.add_argument(
        "sweep_id", metavar="SWEEP_ID", help="the sweep's id, as listed by 'dpplan sweeps'"
    )
    frt.add_argument("--json", action="store_true", help="print JSON")
    frt.set_defaults(handler=_cmd_frontier)

    sws = commands.add_parser(
        "sweeps",
        help="list the stored sweeps (id, status, grid, trials done/failed, created)",
        description="List every stored sweep, newest first. 'dpplan frontier SWEEP_ID' shows one.",
    )
    sws.add_argument("--json", action="store_true", help="print JSON")
    sws.set_defaults(handler=_cmd_sweeps)

    app = commands.add_parser("app", help="start the planner in the browser (Streamlit)")
    app.add_argument("--port", default="8501", help="port to serve on (default 8501)")
    app.add_argument("--address", default="localhost", help="address to bind (default localhost)")
    app.add_argument("--headless", action="store_true", help="do not open a browser window")
    app.set_defaults(handler=_cmd_app)

    runs = commands.add_parser(
        "runs",
        help="list, show, stop or delete stored runs",
        description="Without an action, list every stored run.",
    )
    runs.add_argument("--json", action="store_true", help="print JSON")
    runs.set_defaults(handler=_cmd_runs, action="list", run_id=None, force=False)
    actions = runs.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    for action, text in (
        ("list", "every stored run (the default)"),
        ("show", "one run's plan, status and per-epoch records"),
        ("stop", "ask a running run to stop, or cancel a queued one"),
        ("delete", "remove a run, its records and its checkpoint"),
    ):
        sub = actions.add_parser(action, help=text, description=text[0].upper() + text[1:] + ".")
        if action != "list":
            sub.add_argument(
                "run_id", metavar="RUN_ID", help="the run's id, as listed by 'dpplan runs'"
            )
        if action == "stop":
            sub.add_argument(
                "--force",
                action="store_true",
                help="mark a run stopped now, e.g. one whose host or process is "
                "gone (its heartbeat is stale); records and checkpoint are kept",
            )
        sub.add_argument(
            "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON"
        )

    rep = commands.add_parser(
        "report",
        help="ε-budget report of a plan, a stored run or a sweep (Markdown, HTML, JSON or PDF)",
    )
    _add_plan_flags(rep, required="unless --run or --sweep")
    rep.add_argument(
        "--run",
        default=None,
        metavar="ID",
        help="report on a stored run instead of a plan (saved with the run)",
    )
    rep.add_argument(
        "--sweep",
        default=None,
        metavar="ID",
        help="report on a stored sweep: its frontier, best accuracy at ε ≤ x with "
        "the plan behind it, per-schedule curves and the privacy cost of tuning",
    )
    rep.add_argument(
        "--home",
        default=None,
        metavar="DIR",
        help="run store folder for --run or --sweep (default $DPPLAN_HOME or a per-user folder)",
    )
    rep.add_argument(
        "--stored",
        action="store_true",
        help="with --run: render the report stored with the run, unchanged",
    )
    rep.add_argument(
        "--tuning-runs",
        default=None,
        metavar="K",
        help="number of training runs made on this data (hyper-parameter "
        "tuning); the report adds ε of all of them",
    )
    rep.add_argument(
        "--format",
        choices=("md", "html", "json", "pdf"),
        default="md",
        help="md (default), html (one self-contained file), json, or pdf (the "
        "HTML printed by WeasyPrint; needs --output and dpplan[pdf])",
    )
    rep.add_argument(
        "--output", default=None, metavar="FILE", help="write to FILE instead of standard output"
    )
    rep.add_argument("--title", default=None, help="report title")
    rep.add_argument("--notes", default=None, help="notes shown in the report, as written")
    rep.set_defaults(handler=_cmd_report)
    return parser


def _version() -> str:
    from dpplan import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the dpplan command line and return its exit code.

    Args:
        argv: the arguments (without the program name); ``None`` reads ``sys.argv``.

    Returns:
        0 on success; 2 for invalid input (``PlanError``, ``UsageError``, ``NotFoundError``,
        ``StateConflictError``, ``MissingDependencyError``, ``DataError``, ``StoreError``); 3
        for an infeasible target; 1 otherwise. With ``--json`` an error prints
        ``{"error": {"type": NAME, "message": ...}}``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in argv

    def out(text: str) -> None:
        print(text)

    def fail(code: int, error: dict[str, Any]) -> int:
        if as_json:
            out(_dump({"error": error}))
        else:
            print(f"error: {error['message']}", file=sys.stderr)
        return code

    parser = _build_parser()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            args = parser.parse_args(argv)
            args.argv = argv  # which flags were given (``--resume`` refuses changed ones)
            code = args.handler(args, out)
        except (PlanError, UsageError, NotFoundError, StateConflictError) as exc:
            code = fail(EXIT_INVALID, exc.to_dict())
        except MissingDependencyError as exc:
            code = fail(
                EXIT_INVALID,
                {
                    "type": type(exc).__name__,
                    "package": exc.package,
                    "extra": exc.extra,
                    "message": str(exc),
                },
            )
        except (DataError, StoreError) as exc:
            code = fail(EXIT_INVALID, {"type": type(exc).__name__, "message": str(exc)})
        except InfeasibleTargetError as exc:
            code = fail(EXIT_INFEASIBLE, {"type": type(exc).__name__, "message": str(exc)})
        except DpplanError as exc:
            code = fail(EXIT_FAILURE, {"type": type(exc).__name__, "message": str(exc)})
        except BrokenPipeError:
            # The reader went away (e.g. `| head`): stop quietly, as Unix tools do.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_FAILURE
        except KeyboardInterrupt:
            code = fail(130, {"type": "KeyboardInterrupt", "message": "interrupted"})
        except Exception as exc:
            if os.environ.get("DPPLAN_DEBUG"):
                raise
            code = fail(
                EXIT_FAILURE,
                {
                    "type": type(exc).__name__,
                    "message": f"unexpected {type(exc).__name__}: {exc} "
                    "(set DPPLAN_DEBUG=1 for a traceback, and please report it)",
                },
            )
    seen = set()
    for warning in caught:
        text = str(warning.message)
        if issubclass(warning.category, UserWarning) and text not in seen:
            seen.add(text)
            print(f"warning: {text}", file=sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
