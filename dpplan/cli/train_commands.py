"""``dpplan train`` and ``dpplan compare``."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
from collections.abc import Callable
from typing import Any

from dpplan.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    PLAN_FIELDS,
    dump,
    flag_of,
    given_flags,
    plan_or_file,
)
from dpplan.cli.flags import resumable
from dpplan.cli.render import fitting_noise, plan_lines, record_epsilon_text, run_summary
from dpplan.errors import (
    InfeasibleTargetError,
    MissingDependencyError,
    PlanError,
    UsageError,
)
from dpplan.format import epsilon_text


def _threads(args: argparse.Namespace, default: int | None = None) -> int:
    """The --threads value, else ``default``, else :data:`DEFAULT_THREADS`."""
    from dpplan.train.specs import DEFAULT_THREADS

    if args.threads is not None:
        return args.threads
    return DEFAULT_THREADS if default is None else default


def run_options(args: argparse.Namespace, *, seed: int | None = None, threads: int | None = None):
    from dpplan.train import RunOptions

    values: dict[str, Any] = {
        "model": args.model,
        "activation": args.activation,
        "device": args.device,
        "seed": args.seed if seed is None else seed,
        "data_dir": args.data_dir,
        "validation_size": args.validation_size,
        "method": args.method,
        "private": not args.non_private,
        "reproducible": args.reproducible,
        "engine": args.engine,
        "threads": _threads(args, threads),
    }
    for field in ("subset", "test_subset", "target_epsilon"):
        value = getattr(args, field)
        if value is not None:
            values[field] = value
    return RunOptions(**values)


def _train_plan(args: argparse.Namespace, options, task: Any = None):
    """The plan of the flags, or of ``--plan FILE``, over the training set: the task's, or the
    MNIST one ``options`` select (``args`` unchanged).

    Raises:
        PlanError: field ``dataset_size`` when a plan file's dataset_size is not the training
            set's size (both named); a plan flag given with ``--plan``.
    """
    from dpplan.train import training_set_size

    size = training_set_size(options) if task is None else task.dataset_size
    if getattr(args, "plan", None) is None:
        return plan_or_file(args, fixed={"dataset_size": size})
    plan = plan_or_file(args)
    if plan.dataset_size != size:
        where = (
            "the task's training set"
            if task is not None
            else "the MNIST training set these options select (--subset, else 60,000 less "
            "--validation-size)"
        )
        raise PlanError(
            "dataset_size",
            plan.dataset_size,
            f"{size}, the size of {where}",
            f"The plan file says dataset_size={plan.dataset_size} but training samples from "
            f"{size} examples; ε is only the trained run's if they agree. Set dataset_size "
            f"to {size} in the file, or change --subset/--validation-size.",
        )
    return plan


def _task(args: argparse.Namespace) -> Any:
    """The task of ``--task MODULE:FUNCTION`` (None without it).

    Raises:
        PlanError: field ``task``, for an unknown module or function, or a function that
            does not return a ``dpplan.train.Task`` (exit 2).
    """
    text = getattr(args, "task", None)
    if text is None:
        return None
    from dpplan.train import load_task

    return load_task(text)


def _accuracy_or_loss(record: Any) -> str:
    """``test acc=…`` for a classification, ``test loss=…`` otherwise (NaN accuracy)."""
    if record.test_accuracy == record.test_accuracy:  # not NaN
        return f"test acc={record.test_accuracy:.2%}"
    return f"test loss={record.test_loss:.4g}"


def _schedule(kind: str, args: argparse.Namespace):
    from dpplan import _validate
    from dpplan.train.specs import Constant, OneCycle, Plateau

    lr = _validate.finite_positive(lr=args.lr, hint="Pass --lr, e.g. 0.5.")
    momentum = args.momentum
    every = getattr(args, "plateau_every", None)
    if every is not None:
        every = _validate.integer(
            minimum=1, hint="Optimizer steps between evaluations, e.g. 20.", plateau_every=every
        )
        if kind != "plateau":
            raise UsageError(
                "plateau_every",
                every,
                "used with --schedule plateau only",
                f"Drop --plateau-every, or pass --schedule plateau (not {kind}).",
            )
    if kind == "one_cycle":
        return (
            OneCycle(max_lr=lr)
            if momentum is None
            else OneCycle(max_lr=lr, momentum=momentum, cycle_momentum=False)
        )
    if kind == "plateau":
        return Plateau(lr=lr, momentum=momentum or 0.0, evaluate_every=every)
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
            f"ε={record_epsilon_text(record, method)}  "
            f"Opacus ε (rdp)={epsilon_text(record.epsilon_opacus)}  "
            f"{_accuracy_or_loss(record)}  loss={record.train_loss:.3f}  "
            f"lr={record.lr:.3g}  {record.seconds:.1f}s",
            file=sys.stderr,
            flush=True,
        )

    def step(done: int, steps: int) -> None:
        print(f"  epoch {current[0]}/{total}: step {done}/{steps}", file=sys.stderr, flush=True)

    return show, step


def _epochs_of(plan: Any) -> int:
    """The epochs a run of ``plan`` records (a PhasedPlan's, possibly partial, on across
    phases)."""
    return len(plan.epoch_ends()) if hasattr(plan, "phases") else plan.epochs


def _started(run: Any, *, verb: str = "started") -> None:
    """Print that a run started (or resumed): its id, plan, device and threads."""
    plan = run.plan
    shown = "the smallest upper bound of rdp, prv and pld" if run.private else "none (non-private)"
    threads = run.options.get("threads")
    if hasattr(plan, "phases"):
        described = (
            f"dataset_size={plan.dataset_size} {len(plan.phases)} phases ("
            + "; ".join(
                f"batch_size={p.batch_size} noise_multiplier={p.noise_multiplier:g} steps={steps}"
                for p, steps in zip(plan.phases, plan.steps_per_phase)
            )
            + f") delta={plan.delta:g} ({_epochs_of(plan)} epochs, {plan.total_steps} steps)"
        )
    else:
        described = (
            f"dataset_size={plan.dataset_size} batch_size={plan.batch_size} "
            f"noise_multiplier={plan.noise_multiplier:g} epochs={plan.epochs} "
            f"delta={plan.delta:g} ({plan.steps_per_epoch} steps per epoch)"
        )
    print(
        f"run {run.id} {verb} on {run.device}: {described}; ε: {shown}"
        + (f"; {threads} CPU thread{'s' if threads != 1 else ''}" if threads else ""),
        file=sys.stderr,
        flush=True,
    )


#: Flags of ``dpplan train`` that may differ from the stored run with ``--resume``.
#: (The table's resumable flags; the task is imported again, and may be given again.)
_RESUME_MAY_CHANGE = resumable("train") | {"task"}


def _resume_conflicts(args: argparse.Namespace, run: Any) -> list[tuple[str, Any, Any]]:
    """(flag, given value, the run's value) for each flag given with ``--resume`` that
    differs from the stored run."""
    options = {"engine": "opacus", **run.options}  # runs stored before engines: Opacus
    schedule = run.schedule
    conflicts = []
    for dest in given_flags(args):
        if dest in _RESUME_MAY_CHANGE:
            continue
        value = getattr(args, dest)
        if dest in PLAN_FIELDS:
            stored = getattr(run.plan, dest)
            same = float(value) == float(stored)
        elif dest == "schedule":
            stored = schedule.get("kind")
            same = value == stored
        elif dest == "lr":
            stored = schedule.learning_rate
            same = float(value) == float(stored)
        elif dest == "plateau_every":
            stored = schedule.get("evaluate_every")
            same = stored is not None and int(value) == int(stored)
        elif dest == "momentum":
            cycles = schedule.get("cycle_momentum", False)
            stored = "cycled" if cycles else schedule.get("momentum")
            same = not cycles and float(value) == float(stored)
        elif dest == "non_private":
            stored = not run.private
            same = bool(value) == stored
        elif dest == "reproducible":
            stored = bool(options.get("reproducible", False))
            same = bool(value) == stored
        elif dest in ("seed", "validation_size", "subset", "test_subset", "target_epsilon"):
            stored = options.get(dest)
            same = stored is not None and float(value) == float(stored)
        else:
            stored = options.get(dest)
            same = value == stored
        if not same:
            conflicts.append((flag_of(dest), value, stored))
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
    task = _task(args)
    if args.resume is not None:
        run_id = args.resume
        stored = store.get_run(run_id)
        _refuse_resume_flags(args, stored)
        # The folder given now (--data-dir, else $DPPLAN_DATA_DIR) wins over the stored one;
        # the checksums make sure it is the same MNIST.
        data_dir = args.data_dir or os.environ.get(DATA_DIR_ENV) or None
        threads = args.threads
        on_epoch = on_step = None
        if not args.json:
            _started(stored, verb=f"resuming after epoch {len(stored.records)}")
            on_epoch, on_step = _progress(
                _epochs_of(stored.plan),
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
            task=task,
        )
    else:
        options = run_options(args)
        plan = _train_plan(args, options, task)
        schedule = _schedule(args.schedule, args)
        on_epoch = on_step = on_start = None
        if not args.json:
            on_epoch, on_step = _progress(_epochs_of(plan), options.method)
            on_start = _started
        run = start_run(
            plan,
            schedule,
            options,
            store=store,
            on_epoch=on_epoch,
            on_step=on_step,
            on_start=on_start,
            task=task,
        )
    if run.status == "not_started":
        raise InfeasibleTargetError(
            f"run {run.id} {run.stop_reason}; nothing was trained (stored as not_started). "
            + fitting_noise(run)
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
    from dpplan.train.compare import compare_schedules, grid_for, with_plateau_every

    options = run_options(args, seed=0)
    task = _task(args)
    plan = _train_plan(args, options, task)  # a TrainingPlan or a PhasedPlan (--plan FILE)
    grids = {}
    for kind, rates in (("one_cycle", args.one_cycle_lrs), ("plateau", args.plateau_lrs)):
        grids[kind] = grid_for(kind, rates)
    if args.plateau_every is not None:  # issue 24: plateau runs that act within the run
        grids = {
            kind: with_plateau_every(specs, args.plateau_every) for kind, specs in grids.items()
        }
    seeds = args.seeds

    def on_run(run: Any) -> None:
        if not args.json:
            last = run.records[-1] if run.records else None
            lr = run.schedule.learning_rate
            print(
                f"run {run.id} {run.schedule['kind']} lr={lr} seed={run.seed}: "
                + (
                    (
                        f"val acc {last.validation_accuracy:.2%}, test acc {last.test_accuracy:.2%}"
                        if task is None or task.classification
                        else f"val loss {last.validation_loss:.4g}, test loss {last.test_loss:.4g}"
                    )
                    if last
                    else run.status
                ),
                file=sys.stderr,
                flush=True,
            )

    result = compare_schedules(
        plan, grids=grids, seeds=seeds, options=options, store=RunStore(), on_run=on_run, task=task
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
        loss = summary.measure == "test_loss"
        measured = "test loss" if loss else "test acc"
        n = len(summary.final_values)
        spread = f"mean ± sample std over {n} seeds" if n > 1 else "1 seed: no spread measured"
        lines.append(f"  epoch  ε (smallest bound)   {measured} ({spread})")
        for epoch, eps, method, mean, std in zip(
            summary.epochs,
            summary.epsilons,
            summary.epsilon_methods,
            summary.accuracy_mean,
            summary.accuracy_std,
        ):
            shown = f"{mean:.4g}" if loss else f"{mean:.2%}"
            if n > 1:
                shown += f" ± {std:.2g}" if loss else f" ± {std:.2%}"
            lines.append(f"  {epoch:5d} {epsilon_text(eps) + ' (' + method + ')':>19}   {shown}")
    for a, b, difference in result.differences():
        if result.summaries[0].measure == "test_loss":
            interval = (
                f"{difference.difference:+.4g}, {difference.confidence:.0%} CI "
                f"{difference.low:+.4g} … {difference.high:+.4g}"
                if not math.isnan(difference.low)
                else f"{difference.difference:+.4g}, too few seeds for an interval"
            )
            lines.append(
                f"{a} − {b}, test loss at the final epoch: {interval} "
                f"({difference.n_a} vs {difference.n_b} seeds; lower is better)"
            )
        else:
            lines.append(
                f"{a} − {b}, test accuracy at the final epoch: {difference.describe(a, b)}"
            )
    out("\n".join(lines))
    return EXIT_OK
