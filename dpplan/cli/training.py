"""``dpplan train``, ``dpplan compare`` and ``dpplan runs``."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from dpplan.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    PLAN_FLAGS,
    dump,
    flag_name,
    number,
    parse_run_id,
    plan_from_args,
    thread_count,
)
from dpplan.cli.render import epsilon_text, fmt, plan_lines, run_summary, stop_text
from dpplan.errors import (
    DpplanError,
    InfeasibleTargetError,
    MissingDependencyError,
    NotFoundError,
    UsageError,
)


def run_options(args: argparse.Namespace, *, seed: int | None = None, threads: int | None = None):
    from dpplan.train import RunOptions

    values: dict[str, Any] = {
        "model": args.model,
        "activation": args.activation,
        "device": args.device,
        "seed": number("seed", args.seed) if seed is None else seed,
        "data_dir": args.data_dir,
        "validation_size": number("validation_size", args.validation_size),
        "method": args.method,
        "private": not args.non_private,
        "reproducible": args.reproducible,
        "engine": args.engine,
        "threads": thread_count(args, threads),
    }
    for field in ("subset", "test_subset", "target_epsilon"):
        text = getattr(args, field)
        if text is not None:
            values[field] = number(field, text)
    return RunOptions(**values)


def _train_plan(args: argparse.Namespace, options):
    from dpplan.train import training_set_size

    args.dataset_size = str(training_set_size(options))
    return plan_from_args(args)


def _schedule(kind: str, args: argparse.Namespace):
    from dpplan import _validate
    from dpplan.train.specs import Constant, OneCycle, Plateau

    lr = _validate.finite_positive(lr=number("lr", args.lr), hint="Pass --lr, e.g. 0.5.")
    momentum = None if args.momentum is None else number("momentum", args.momentum)
    if kind == "one_cycle":
        return (
            OneCycle(max_lr=lr)
            if momentum is None
            else OneCycle(max_lr=lr, momentum=momentum, cycle_momentum=False)
        )
    if kind == "plateau":
        return Plateau(lr=lr, momentum=momentum or 0.0)
    return Constant(lr=lr, momentum=momentum or 0.0)


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
            f"ε={epsilon_text(record, method)}  "
            f"Opacus ε (rdp)={fmt(record.epsilon_opacus)}  "
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
        if dest in PLAN_FLAGS:
            stored = getattr(run.plan, dest)
            same = float(number(dest, value)) == float(stored)
        elif dest == "schedule":
            stored = schedule.get("kind")
            same = value == stored
        elif dest == "lr":
            stored = schedule.get("max_lr", schedule.get("lr"))
            same = float(number("lr", value)) == float(stored)
        elif dest == "momentum":
            cycles = schedule.get("cycle_momentum", False)
            stored = "cycled" if cycles else schedule.get("momentum")
            same = not cycles and float(number("momentum", value)) == float(stored)
        elif dest == "non_private":
            stored = not run.private
            same = bool(value) == stored
        elif dest == "reproducible":
            stored = bool(options.get("reproducible", False))
            same = bool(value) == stored
        elif dest in ("seed", "validation_size", "subset", "test_subset", "target_epsilon"):
            stored = options.get(dest)
            same = stored is not None and float(number(dest, value)) == float(stored)
        else:
            stored = options.get(dest)
            same = value == stored
        if not same:
            conflicts.append((flag_name(dest), value, stored))
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
    for name in ("opacus", "torch"):  # looked up, not imported: torch takes seconds to load
        missing = name in sys.modules and sys.modules[name] is None
        if missing or (name not in sys.modules and importlib.util.find_spec(name) is None):
            raise MissingDependencyError(name, extra="train", purpose="to train with DP-SGD")


def cmd_train(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    _require_training()
    from dpplan.train import RunStore, resume, start_run
    from dpplan.train.specs import DATA_DIR_ENV

    store = RunStore()
    if args.resume is not None:
        run_id = parse_run_id("resume", args.resume)
        stored = store.get_run(run_id)
        _refuse_resume_flags(args, stored)
        # The folder given now (--data-dir, else $DPPLAN_DATA_DIR) wins over the stored one;
        # the checksums make sure it is the same MNIST.
        data_dir = args.data_dir or os.environ.get(DATA_DIR_ENV) or None
        threads = None if args.threads is None else number("threads", args.threads)
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
        options = run_options(args)
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
    out(dump(run.to_dict()) if args.json else "\n".join(run_summary(run)))
    if run.status == "diverged":
        if not args.json:
            print(f"error: run {run.id} {run.stop_reason}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def cmd_compare(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    _require_training()
    from dpplan.train import RunStore
    from dpplan.train.compare import compare_schedules, grid_for

    options = run_options(args, seed=0)
    plan = _train_plan(args, options)
    grids = {}
    for kind, text in (("one_cycle", args.one_cycle_lrs), ("plateau", args.plateau_lrs)):
        rates = [number(f"{kind}_lrs", item) for item in text.split(",") if item.strip()]
        grids[kind] = grid_for(kind, rates)
    seeds = [number("seeds", item) for item in args.seeds.split(",") if item.strip()]

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
        out(dump(result.to_dict()))
        return EXIT_OK
    lines = plan_lines(plan) + [
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
                f"  {epoch:5d} {fmt(eps) + ' (' + method + ')':>19}   {mean:.2%} ± {std:.2%}"
            )
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


def cmd_runs(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    from dpplan.run_policy import delete_run, run_epsilon
    from dpplan.store import RunStore

    store = RunStore()
    if args.action in ("show", "stop", "delete"):
        run_id = parse_run_id("run_id", args.run_id)
        if args.action == "stop":
            done = store.request_stop(run_id, force=args.force)
            if not args.json:
                out(stop_text(done))
        elif args.action == "delete":
            delete_run(store, run_id)
            out(dump({"deleted": run_id}) if args.json else f"deleted run {run_id}")
            return EXIT_OK
        run = store.get_run(run_id)
        trial = _sweep_trial_of(store, run)
        if args.json:
            data = run.to_dict()
            if trial is not None:
                data["sweep_trial"] = trial
            out(dump(data))
            return EXIT_OK
        lines = run_summary(run)
        if trial is not None:
            lines.append(f"  sweep {trial['sweep_id']} trial {trial['key']}: {trial['status']}")
            if trial["error"]:
                lines += [f"    {line}" for line in trial["error"].splitlines()]
        out("\n".join(lines))
        return EXIT_OK
    runs = store.list_runs()
    if args.json:
        out(dump({"runs": [run.to_dict() for run in runs], "store": str(store.path)}))
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
            f"{fmt(best[0])} ({best[1]})"
            if best
            else ("-" if last is None else f"{fmt(last.epsilon)} (none)")
        )
        lines.append(
            f"{run.id:5d}  {run.status:<11}  {run.schedule['kind']:<10} {lr:<7g} "
            f"{len(run.records):>3}/{run.plan.epochs:<3}  "
            f"{shown:>13}  "
            f"{f'{last.test_accuracy:.2%}' if last else '-':>8}  {run.device}"
        )
    out("\n".join(lines))
    return EXIT_OK
