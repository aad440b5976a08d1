"""``dpplan sweep``, ``dpplan sweeps`` and ``dpplan frontier``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from typing import Any

from dpplan.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    dump,
    flag_of,
    given_flags,
)
from dpplan.cli.flags import resumable
from dpplan.cli.render import duration, frontier_lines, sweep_summary
from dpplan.cli.train_commands import run_options
from dpplan.errors import (
    UsageError,
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
            f"elapsed {duration(progress.elapsed)}, ETA {duration(progress.eta)}"
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
    if args.seed != 0 or args.target_epsilon is not None or args.non_private:
        flag = (
            "--seed"
            if args.seed != 0
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
    cpus = args.cpus_per_trial
    # One thread per CPU a trial reserves (at least one).
    options = run_options(args, seed=0, threads=max(1, int(cpus)) if cpus >= 1 else 1)
    kinds = [kind.strip() for kind in args.schedules.split(",") if kind.strip()]
    values: dict[str, Any] = {
        "target_epsilons": args.epsilons,
        "delta": args.delta,
        "batch_sizes": args.batch_sizes,
        "epochs": args.epochs,
        "schedules": kinds,
        "seeds": args.seeds,
        "options": options,
        "method": args.method,
        "max_grad_norm": args.max_grad_norm,
    }
    for kind in ("one_cycle", "plateau", "constant"):
        rates = getattr(args, f"{kind}_lrs")
        values[f"{kind}_lrs"] = rates if rates or kind in kinds else []
    if args.random_repeats is not None:
        values["random_repeats"] = args.random_repeats
    if args.plateau_every is not None:  # issue 24: plateau trials that act within the run
        values["plateau_every"] = args.plateau_every
    if getattr(args, "task", None) is not None:
        values["task"] = args.task
    if args.simulate is not None:  # issue 22: predict by simulation at K
        values["simulate"] = args.simulate
        values["simulate_data"] = args.simulate_data
    elif args.simulate_data != "training":
        raise UsageError("simulate_data", args.simulate_data, "given with --simulate K")
    return SweepSpec(**values)


#: ``dpplan sweep`` flags that may differ on ``--resume``: where the data is read and how the
#: trials run (not what they train).
_SWEEP_RESUME_MAY_CHANGE = frozenset(map(flag_of, resumable("sweep")))


def _same(value: Any) -> Any:
    return value


#: The training flags a sweep stores in its spec's ``options`` under their own names.
_SWEEP_OPTIONS = (
    "model",
    "activation",
    "device",
    "engine",
    "validation_size",
    "subset",
    "test_subset",
)

#: ``dpplan sweep`` flag -> (stored spec field, or "options.FIELD"; the parsed value as stored).
_SWEEP_FLAGS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "--epsilons": ("target_epsilons", lambda v: sorted(map(float, v))),
    "--batch-sizes": ("batch_sizes", list),
    "--epochs": ("epochs", list),
    "--delta": ("delta", float),
    "--max-grad-norm": ("max_grad_norm", float),
    "--schedules": ("schedules", lambda t: [k.strip() for k in t.split(",") if k.strip()]),
    "--one-cycle-lrs": ("one_cycle_lrs", lambda v: list(map(float, v))),
    "--plateau-lrs": ("plateau_lrs", lambda v: list(map(float, v))),
    "--plateau-every": ("plateau_every", _same),
    "--constant-lrs": ("constant_lrs", lambda v: list(map(float, v))),
    "--seeds": ("seeds", list),
    "--random-repeats": ("random_repeats", float),
    "--simulate": ("simulate", _same),
    "--simulate-data": ("simulate_data", str),
    "--method": ("method", str),
    "--task": ("task", str),
    **{flag_of(field): (f"options.{field}", _same) for field in _SWEEP_OPTIONS},
}


#: ``dpplan train`` flags a sweep refuses (it takes --seeds and --epsilons, and is private).
_NOT_SWEEP_FLAGS = ("--seed", "--target-epsilon", "--non-private", "--reproducible")


def _refuse_changed_flags(args: argparse.Namespace, sweep_id: int, spec: dict[str, Any]) -> None:
    """Refuse flags given with ``--resume`` whose value differs from the stored sweep.

    A resumed sweep runs the stored grid and options; only where the data is read and how
    the trials run may change. Every differing flag is named at once.

    Raises:
        PlanError: (field ``resume``) naming each flag, its value and the stored one.
    """
    changed = []
    for flag in map(flag_of, given_flags(args)):
        if flag in _SWEEP_RESUME_MAY_CHANGE:
            continue
        value = getattr(args, flag[2:].replace("-", "_"), None)
        text = ",".join(map(str, value)) if isinstance(value, list) else value
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
        if value is None or read(value) != stored:
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


def cmd_sweep(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    from dpplan.store import RunStore
    from dpplan.sweep import LocalExecutor, RayExecutor, SweepSpec, create_sweep, run_sweep

    ship = not args.worker_data
    if args.local:
        for flag in map(flag_of, given_flags(args)):
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
            gpus_per_trial=None if args.gpus_per_trial is None else args.gpus_per_trial,
            cpus_per_trial=args.cpus_per_trial,
            num_cpus=args.num_cpus,
            ship_data=ship,
        )
    store = RunStore()
    data_dir = None
    try:
        if args.resume is not None:
            sweep_id = args.resume
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
            executor.prepare(spec.options, task=spec.task)  # Ray up (or refused) before "resumed"
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
    ).to_dict()
    if progress is not None and sys.stderr.isatty():
        print(file=sys.stderr)
    out(dump(result) if args.json else "\n".join(frontier_lines(result)))
    return EXIT_OK if result["trials"]["failed"] == 0 else EXIT_FAILURE


def cmd_frontier(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    from dpplan.store import RunStore
    from dpplan.sweep import frontier_result

    result = frontier_result(RunStore(), args.sweep_id).to_dict()
    out(dump(result) if args.json else "\n".join(frontier_lines(result)))
    return EXIT_OK


def cmd_sweeps(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    import time

    from dpplan.store import RunStore

    store = RunStore()
    sweeps = [sweep_summary(record) for record in store.list_sweeps()]
    if args.json:
        out(dump({"sweeps": sweeps, "store": str(store.path)}))
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
