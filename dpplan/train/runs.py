"""The runs layer: training runs stored in SQLite, checkpointed, resumable and queued.

On top of the storage-free core (:mod:`dpplan.train.core`): :func:`start_run` trains a plan
and stores every epoch (one transaction each) with a checkpoint after it; :func:`resume`
continues an interrupted run from its checkpoint with its accounting intact;
:func:`queue_run` and :func:`run_queued` are the background worker's queue
(:mod:`dpplan.train.worker`).

Input is checked and MNIST is loaded and verified **before** a run is stored, so a bad
argument or a bad data folder leaves no run behind. Checkpoints hold only tensors and plain
values and are read with ``torch.load(weights_only=True)``; what is loaded is checked against
the store (run id, plan, epoch, steps, accountant) before anything changes, and no stored
record is ever deleted because of a checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dpplan.errors import DataError, PlanError, StateConflictError, StoreError
from dpplan.phased import PhasedPlan
from dpplan.plan import TrainingPlan
from dpplan.store import EpochRecord, RunRecord, RunStore, plan_id
from dpplan.train.core import (
    MnistSplit,
    Trainer,
    as_phased,
    check_inputs,
    load_split,
    plan_epochs,
    resolve_device,
    versions,
)
from dpplan.train.data import no_folder_message
from dpplan.train.specs import RunOptions, ScheduleSpec, schedule_from_dict
from dpplan.train.tasks import MNIST_TASKS, Task, describe_fingerprint, load_task

__all__ = [
    "CHECKPOINT_FORMAT",
    "queue_run",
    "resume",
    "run_queued",
    "start_run",
]

#: Layout version of run checkpoints (read with ``torch.load(weights_only=True)``).
CHECKPOINT_FORMAT = 2


#: Key of a stored run's options that records where its MNIST came from (not a RunOptions
#: field: it is what loading found, not what was asked).
DATA_SOURCE_KEY = "data_source"


def _stored_options(run: RunRecord) -> RunOptions:
    """The run's options; runs stored before engines existed were trained by Opacus."""
    asked = {k: v for k, v in run.options.items() if k != DATA_SOURCE_KEY}
    return RunOptions.from_dict({"engine": "opacus", **asked})


def _atomic_save(state: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    with open(temporary, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _file_kind(mode: int) -> str | None:
    """Return what a non-regular file is, in words (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    for test, words in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return words
    return "not a regular file"


def _checkpoint_problem(state: object, run: RunRecord, last: int) -> str | None:
    """Return why a loaded checkpoint does not fit the stored run, or None if it does."""
    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}, not a dpplan checkpoint"
    if state.get("format") != CHECKPOINT_FORMAT:
        return (
            f"it has format {state.get('format')!r}, this dpplan reads format "
            f"{CHECKPOINT_FORMAT} (it was written by an older dpplan, or not by dpplan)"
        )
    if state.get("run_id") != run.id:
        return f"it belongs to run {state.get('run_id')!r}, not run {run.id}"
    if state.get("plan_id") != plan_id(run.plan):
        return "it was written for another plan than the run's"
    epoch, steps = state.get("epoch"), state.get("steps")
    epochs = plan_epochs(run.plan)
    if not _is_int(epoch) or not 1 <= epoch <= epochs:
        return f"its epoch {epoch!r} is not in [1, {epochs}]"
    # The loop records an epoch, then writes its checkpoint: a process killed in between
    # leaves the checkpoint one epoch behind; that epoch is then redone from the same state.
    if not (epoch == last or epoch == last - 1):
        return (
            f"it is at epoch {epoch}, but the store has {last} recorded epoch(s); a "
            f"checkpoint must be at the last recorded epoch ({last}) or the one before"
        )
    if not _is_int(steps) or steps != run.plan.steps_after(epoch):
        return (
            f"its step count {steps!r} is not the plan's {run.plan.steps_after(epoch)} "
            f"steps after epoch {epoch}"
        )
    history = state.get("accountant_history")
    if run.private:
        if not isinstance(history, list) or not all(
            isinstance(item, list)
            and len(item) == 3
            and _is_int(item[2])
            and all(isinstance(x, float) and math.isfinite(x) for x in item[:2])
            for item in history
        ):
            return "its Opacus accountant history is not a list of [σ, q, steps]"
        if not _history_matches(history, run.plan, steps):
            return "its Opacus accountant history does not match the plan's σ, q and steps"
    elif history is not None:
        return "it carries an accountant history, but the run is not private"
    for key in ("torch_rng", "generator", "noise_generator"):
        value = state.get(key)
        if not isinstance(value, torch.Tensor) or value.dtype != torch.uint8:
            return f"its {key} is not a random-number state (a uint8 tensor)"
    for key in ("model", "optimizer", "controller"):
        if not isinstance(state.get(key), dict):
            return f"its {key} state is missing"
    return None


def _history_matches(history: list[list], plan: TrainingPlan | PhasedPlan, steps: int) -> bool:
    """Whether an accountant's [σ, q, steps] history is the plan's first ``steps`` steps:
    each phase's (σ, q) for its steps, in order (consecutive equal mechanisms merged, as
    Opacus' accountant merges them)."""

    def merged(items):
        found: list[list] = []
        for sigma, rate, count in items:
            if (
                found
                and math.isclose(found[-1][0], sigma, rel_tol=1e-12)
                and math.isclose(found[-1][1], rate, rel_tol=1e-12)
            ):
                found[-1][2] += count
            else:
                found.append([sigma, rate, count])
        return found

    if sum(item[2] for item in history) != steps:
        return False
    expected = merged(
        (sigma, rate, count) for rate, sigma, count in as_phased(plan).mechanisms(steps)
    )
    got = merged(history)
    return len(got) == len(expected) and all(
        math.isclose(a[0], b[0], rel_tol=1e-12)
        and math.isclose(a[1], b[1], rel_tol=1e-12)
        and a[2] == b[2]
        for a, b in zip(got, expected)
    )


def _read_checkpoint(store: RunStore, run: RunRecord) -> dict[str, Any] | None:
    """Load a run's checkpoint and check it against the store before anything changes.

    The file is read with ``torch.load(weights_only=True)``, so it cannot run code. Returns
    None when there is no checkpoint and no recorded epoch (the run starts afresh).

    Raises:
        StoreError: if the checkpoint is missing while epochs are recorded, cannot be read,
            or does not match the stored run (run id, plan, epoch, steps, accountant).
    """
    path = store.checkpoint_path(run.id)
    last = run.records[-1].epoch if run.records else 0
    kept = f"Nothing was changed; the run's {last} recorded epoch(s) are kept in {store.path}."
    if not path.exists() and not path.is_symlink():
        if last == 0:
            return None
        raise StoreError(
            f"run {run.id}'s checkpoint {path} is missing, though {last} epoch(s) of the run "
            f"are recorded, so it cannot continue. Restore the file, or start a new run. {kept}"
        )
    try:
        # Opened without blocking and checked before reading: a FIFO (or a device, a
        # socket) in the checkpoint's place would block ``open`` or ``read`` forever.
        descriptor: int | None = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        descriptor = None  # e.g. a dangling link: torch.load below says why, with the path
    if descriptor is not None:
        kind = _file_kind(os.fstat(descriptor).st_mode)
        if kind is not None:
            os.close(descriptor)
            raise StoreError(
                f"run {run.id}'s checkpoint {path} cannot be read: it is {kind}, not a "
                "regular file (reading a FIFO or a device could block forever), so it was not "
                f"read. Remove it, or put the run's checkpoint file there. {kept}"
            )
    try:
        if descriptor is None:
            state = torch.load(path, map_location="cpu", weights_only=True)
        else:
            os.set_blocking(descriptor, True)
            with os.fdopen(descriptor, "rb") as handle:
                state = torch.load(handle, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        text = str(exc).strip()
        first = text.splitlines()[0][:300] if text else ""
        raise StoreError(
            f"run {run.id}'s checkpoint {path} cannot be read ({type(exc).__name__}: {first}). "
            "It is damaged, truncated, or was not written by dpplan; it was loaded with "
            "weights_only=True, so nothing in it ran. Move it aside and start a new run, or "
            f"restore it from a backup. {kept}"
        ) from exc
    problem = _checkpoint_problem(state, run, last)
    if problem is not None:
        raise StoreError(
            f"run {run.id}'s checkpoint {path} does not match the run store: {problem}. Move "
            f"it aside and start a new run, or restore the right file. {kept}"
        )
    state["path"] = str(path)
    return state


def _checkpoint(trainer: Trainer, epoch: int, run_id: int) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "run_id": run_id,
        "plan_id": plan_id(trainer.plan),
        "epoch": int(epoch),
        **trainer.state_dict(),
    }


def _restore(trainer: Trainer, state: dict[str, Any]) -> int:
    """Restore a checkpoint checked by :func:`_read_checkpoint`; return its epoch.

    Raises:
        StoreError: if the checkpoint's tensors do not fit this run's model or optimizer.
    """
    try:
        trainer.load_state_dict(state)
    except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise StoreError(
            f"checkpoint {state.get('path', '(unnamed)')} does not fit this run's model, "
            f"optimizer or random states ({type(exc).__name__}: {exc}). Move it aside and "
            "start a new run; the recorded epochs are kept."
        ) from exc
    return int(state["epoch"])


def start_run(
    plan: TrainingPlan | PhasedPlan,
    schedule: ScheduleSpec,
    options: RunOptions | None = None,
    *,
    store: RunStore | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    group_id: str | None = None,
    on_start: Callable[[RunRecord], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    task: Task | None = None,
) -> RunRecord:
    """Train ``plan`` with DP-SGD on MNIST (or ``task``), storing every epoch and a checkpoint
    after it.

    Input is checked, MNIST is loaded and verified, and the model is built and checked
    **before** the run is stored, so a bad argument, a bad data folder or a model DP-SGD
    cannot train (BatchNorm) leaves no run behind. The run records the task's name, its
    data fingerprint and, for a task from :func:`~dpplan.train.load_task`, its
    ``module:function``.

    Args:
        plan: the plan; ``plan.dataset_size`` must equal ``training_set_size(options)``.
        schedule: a learning-rate schedule spec (``OneCycle``, ``Plateau``, ``Constant``).
        options: run options; default ``RunOptions()``.
        store: the run store; default ``RunStore()`` (``$DPPLAN_HOME``).
        on_epoch: called with each :class:`EpochRecord` after it is stored.
        group_id: tag shared by the runs of one comparison.
        on_start: called with the stored :class:`RunRecord` (status ``running``, no
            epochs) as soon as the run is created, before its first step.
        on_step: called as ``on_step(k, steps_per_epoch)`` within each epoch, at most once
            every ``PROGRESS_SECONDS`` seconds.
        task: the :class:`~dpplan.train.Task` to train; ``None`` for MNIST.

    Returns:
        The stored :class:`RunRecord`, with status ``finished`` (or ``stopped``).

    Raises:
        PlanError: for invalid plan, schedule or options (nothing is stored).
        DataError: if MNIST is missing or corrupt, cannot be downloaded, or a named data
            folder does not exist (nothing is stored).
    """
    plan, schedule, options = check_inputs(plan, schedule, options, task)
    device = resolve_device(options.device)
    store = store or RunStore()
    data = load_split(options, device) if task is None else None
    trainer = Trainer(plan, schedule, options, data=data, device=device, task=task)
    run_id = _create_run(
        store, plan, schedule, options, device, group_id, **_task_columns(trainer.task)
    )
    if on_start is not None:
        on_start(store.get_run(run_id))
    return _execute(
        run_id,
        plan,
        schedule,
        options,
        device,
        store,
        on_epoch,
        None,
        on_step=on_step,
        trainer=trainer,
    )


def _task_columns(task: Task) -> dict[str, Any]:
    return {"task": task.name, "task_fingerprint": task.fingerprint(), "task_spec": task.spec}


def _task_of(run: RunRecord, task: Task | None) -> Task | None:
    """The task to continue ``run`` with: ``task``, else the stored ``module:function``
    imported again, else None (MNIST).

    Raises:
        PlanError: field ``task``, when the run trained a user task that cannot be found.
    """
    if task is not None:
        return task
    if run.task_spec:
        return load_task(run.task_spec)
    if run.task is not None and run.task not in MNIST_TASKS:
        raise PlanError(
            "task",
            None,
            f"the task run {run.id} trained ({run.task!r})",
            "It was passed as an object, not loaded from 'module:function'; pass it again "
            "(task=..., or --task module:function).",
        )
    return None


def _check_same_data(run: RunRecord, trainer: Trainer) -> None:
    """Refuse to continue ``run`` on other data than it was trained on.

    Raises:
        PlanError: field ``task``, naming both fingerprints.
    """
    if run.task_fingerprint is None:  # stored before runs recorded their data
        return
    found = trainer.task.fingerprint()
    if found != run.task_fingerprint:
        raise PlanError(
            "task",
            f"{trainer.task.name!r}: {describe_fingerprint(found)}",
            f"the data run {run.id} was trained on ({run.task!r}: "
            f"{describe_fingerprint(run.task_fingerprint)})",
            "A run continues on the data it started on; start a new run for other data. "
            "Nothing was changed.",
        )


def resume(
    run_id: int,
    *,
    store: RunStore | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    task: Task | None = None,
) -> RunRecord:
    """Continue an interrupted (or stopped) run from its last checkpoint.

    A run of a user task continues with ``task``, or else the ``module:function`` stored
    with it, imported again; its data must have the fingerprint stored with the run (the
    same sizes, shapes and SHA-256 of the training data), else the resume is refused.

    The model, optimizer, schedule, Opacus accountant and every random-number state are
    restored, so accounting continues exactly where the checkpoint left it. ``data_dir``
    reads MNIST from another folder than the run's (the checksums make it the same data);
    ``threads`` sets the CPU threads of the resumed training (it does not change ε); the
    run's stored options record the new threads and where the data now came from.

    The checkpoint is read with ``weights_only=True`` and checked against the store (run id,
    plan, epoch, steps, accountant) before anything changes; no stored record is ever
    deleted because of it. A run on another host whose heartbeat is stale (``interrupted``)
    is taken over.

    Raises:
        PlanError: if ``run_id`` is not a whole number in range.
        NotFoundError: if the run does not exist.
        StateConflictError: if the run is still running or finished, or stopped before its
            first epoch finished.
        StoreError: if the checkpoint is missing (while epochs are recorded), unreadable, or
            does not match the stored run; nothing is changed.
        PlanError: field ``task``, if the run's task cannot be found, or its data differ from
            the data the run was trained on (both fingerprints named); nothing is changed.
    """
    store = store or RunStore()
    run = store.resumable_run(run_id)
    state = _read_checkpoint(store, run)
    if state is None:
        raise StateConflictError(
            "run_id",
            run_id,
            "a run with a checkpoint",
            f"It stopped before its first epoch finished (no epoch is recorded, "
            f"no {store.checkpoint_path(run_id)}); start a new run.",
        )
    options = _stored_options(run)
    if data_dir is not None:
        options = dataclasses.replace(options, data_dir=data_dir)
    if threads is not None:
        options = dataclasses.replace(options, threads=threads)
    device = resolve_device(options.device)
    schedule = schedule_from_dict(run.schedule)
    user_task = _task_of(run, task)
    trainer = Trainer(run.plan, schedule, options, device=device, task=user_task)
    _check_same_data(run, trainer)
    store.claim(run_id)
    if options.threads != _stored_options(run).threads:
        store.update_options(run_id, {"threads": options.threads})
    return _execute(
        run_id,
        run.plan,
        schedule,
        options,
        device,
        store,
        on_epoch,
        state,
        on_step=on_step,
        trainer=trainer,
    )


def run_queued(
    run_id: int, *, store: RunStore, on_epoch: Callable[[EpochRecord], None] | None = None
) -> RunRecord:
    """Execute a run that a worker claimed from the queue (fresh, or resumed from checkpoint).

    Raises:
        PlanError, DataError: as :func:`start_run` (the run is stored as failed).
        StoreError: as :func:`resume`, for its checkpoint (the run is stored as failed).
    """
    run = store.get_run(run_id)
    try:
        options = _stored_options(run)
        schedule = schedule_from_dict(run.schedule)
        device = resolve_device(options.device)
        state = _read_checkpoint(store, run)
        trainer = Trainer(run.plan, schedule, options, device=device, task=_task_of(run, None))
        _check_same_data(run, trainer)
    except Exception as exc:
        store.finish_run(run_id, status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    return _execute(
        run_id, run.plan, schedule, options, device, store, on_epoch, state, trainer=trainer
    )


def _create_run(
    store: RunStore,
    plan: TrainingPlan | PhasedPlan,
    schedule: ScheduleSpec,
    options: RunOptions,
    device: torch.device,
    group_id: str | None,
    **columns: Any,
) -> int:
    """Store a new run with the columns every run records, plus ``columns``; return its id."""
    return store.create_run(
        plan=plan,
        schedule=schedule.to_dict(),
        options=options.to_dict(),
        device=str(device),
        seed=options.seed,
        private=options.private,
        versions=versions(),
        group_id=group_id,
        **columns,
    )


def queue_run(
    plan: TrainingPlan | PhasedPlan,
    schedule: ScheduleSpec,
    options: RunOptions,
    *,
    store: RunStore,
    group_id: str | None = None,
    task: Task | None = None,
) -> int:
    """Validate and queue a run for a background worker; return its id.

    A user ``task`` must come from :func:`~dpplan.train.load_task`: the worker imports its
    ``module:function`` again.

    Raises:
        PlanError: for an invalid plan, schedule or options, or a task without a
            ``module:function`` (nothing is stored).
        DataError: the data folder the options name does not exist (nothing is stored; the
            files themselves are verified when the worker loads them).
    """
    plan, schedule, options = check_inputs(plan, schedule, options, task)
    device = resolve_device(options.device)
    columns: dict[str, Any] = {}
    if task is not None:
        if task.spec is None:
            raise PlanError(
                "task",
                task.name,
                "a task loaded with load_task('module:function')",
                "A background worker imports the task again; it cannot receive an object.",
            )
        columns = _task_columns(task)
    elif options.data_dir is not None and not os.path.isdir(options.data_dir):
        raise DataError(no_folder_message(Path(options.data_dir)))
    return _create_run(
        store,
        plan,
        schedule,
        options,
        device,
        group_id,
        status="queued",
        **columns,
    )


def _execute(
    run_id: int,
    plan: TrainingPlan | PhasedPlan,
    schedule: ScheduleSpec,
    options: RunOptions,
    device: torch.device,
    store: RunStore,
    on_epoch: Callable[[EpochRecord], None] | None,
    start_state: dict[str, Any] | None,
    *,
    data: MnistSplit | None = None,
    on_step: Callable[[int, int], None] | None = None,
    trainer: Trainer | None = None,
) -> RunRecord:
    recorded: list[int] = []  # the last epoch recorded (or restored), once known

    def abandoned() -> int:
        # Noisy steps taken after the last recorded epoch: an epoch left mid-way (a stop, a
        # crash) is not recorded and a resume retrains it, but its steps touched the data.
        if trainer is None or not recorded:
            return 0
        return max(0, trainer.sampled_steps - trainer.phased.steps_after(recorded[-1]))

    try:
        if trainer is None:
            trainer = Trainer(plan, schedule, options, data=data, device=device)
        if trainer.data.source is not None:
            store.update_options(run_id, {DATA_SOURCE_KEY: trainer.data.source})
        first_epoch = 1 if start_state is None else _restore(trainer, start_state) + 1
        recorded.append(first_epoch - 1)
        for warning in store.get_run(run_id).warnings:
            if warning not in trainer.warnings:
                trainer.warnings.insert(0, warning)

        def keep(record: EpochRecord) -> None:
            store.record_epoch(run_id, record, tuple(trainer.warnings))
            recorded.append(record.epoch)
            _atomic_save(_checkpoint(trainer, record.epoch, run_id), store.checkpoint_path(run_id))
            if on_epoch is not None:
                on_epoch(record)

        status, reason = trainer.run(
            first_epoch,
            on_epoch=keep,
            on_step=on_step,
            should_stop=lambda: store.stop_requested(run_id),
        )
        store.finish_run(
            run_id,
            status=status,
            stop_reason=reason,
            diverged_epoch=trainer.diverged_epoch,
            # A diverged epoch is counted whole (diverged_epoch).
            abandoned_steps=0 if status == "diverged" else abandoned(),
        )
    except KeyboardInterrupt:
        store.finish_run(
            run_id,
            status="stopped",
            stop_reason="interrupted by the user",
            abandoned_steps=abandoned(),
        )
        raise
    except Exception as exc:
        store.finish_run(
            run_id,
            status="failed",
            error=f"{type(exc).__name__}: {exc}",
            abandoned_steps=abandoned(),
        )
        raise
    return store.get_run(run_id)
