"""The driver of a sweep: solve and store it, hand its trials to an executor, store results.

The driver (this process) solves the plans, holds the sweep's lease, hands each trial to an
executor (:class:`~dpplan.sweep.ray_executor.RayExecutor` or
:class:`~dpplan.sweep.trials.LocalExecutor`), and alone writes the SQLite store: each finished
trial's run and records go in as an ordinary run of group ``sweep-ID``, then the trial's row
links its key to the run. Workers never touch the driver's disk.

:func:`create_sweep` stores the sweep only after the executor is prepared, so a refused start
leaves nothing behind. A killed driver loses at most the trials in flight: :func:`run_sweep`
on a stored sweep (``dpplan sweep --resume ID``) runs only the trials without an outcome.
:func:`frontier_result` reads a sweep (running, interrupted or finished) as a typed
:class:`~dpplan.sweep.results.FrontierResult`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any

from dpplan.errors import PlanError
from dpplan.plan import TrainingPlan
from dpplan.run_policy import epochs_counted, whole_epochs_spent
from dpplan.store import RunStore
from dpplan.sweep import protocol
from dpplan.sweep.protocol import Trial, TrialOutcome
from dpplan.sweep.ray_executor import (
    CONNECT_SECONDS,
    CONNECT_SECONDS_ENV,
    RAY_ADDRESS_ENV,
    RAY_HINT,
    RayExecutor,
    import_ray,
)
from dpplan.sweep.results import (
    FrontierResult,
    SolvedPlan,
    TrialCounts,
    TrialFailure,
    TuningCost,
)
from dpplan.sweep.spec import SweepSpec, task_of
from dpplan.sweep.trials import LocalExecutor, run_trial
from dpplan.sweep.tuning import COVERAGE, tuning_cost

__all__ = [
    "CONNECT_SECONDS",
    "CONNECT_SECONDS_ENV",
    "MAX_ERROR_CHARS",
    "RAY_ADDRESS_ENV",
    "RAY_HINT",
    "LocalExecutor",
    "Progress",
    "RayExecutor",
    "create_sweep",
    "frontier_result",
    "import_ray",
    "run_sweep",
    "run_trial",
]

#: How often a waiting driver renews its lease on the sweep (seconds).
_HEARTBEAT_SECONDS = 15.0


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Progress:
    """Where a sweep stands: trials done, running and failed, of the planned total.

    Attributes:
        sweep_id: the sweep.
        planned: trials the sweep runs if every selection finds a winner.
        done: trials with a stored run (this session and before).
        running: trials in flight.
        failed: trials that failed (their worker died past the retries, or they raised).
        elapsed: seconds since this session started.
        eta: estimated seconds left (None until a trial of this session finished).
        last: the key of the trial that just ended, if any.
    """

    sweep_id: int
    planned: int
    done: int
    running: int
    failed: int
    elapsed: float
    eta: float | None
    last: str | None = None


def _spec_of(record: Any) -> SweepSpec:
    return SweepSpec.from_dict(record.spec)


def _outcomes(store: RunStore, record: Any) -> dict[str, TrialOutcome]:
    """Return the outcome of every trial of a sweep recorded in the store."""
    runs = {run.id: run for run in store.list_runs() if run.group_id == record.group_id}
    outcomes = {}
    for trial in record.trials:
        if not trial.has_outcome:  # in flight, or cut off and to be run again
            continue
        run = runs.get(trial.run_id) if trial.run_id is not None else None
        last = run.records[-1] if run is not None and run.records else None
        if trial.status == "finished" and run is not None and run.status == "diverged":
            # Finished, with no accuracy: it is never selected and never a point.
            outcomes[trial.key] = TrialOutcome(
                key=trial.key,
                status="finished",
                run_id=run.id,
                epochs_done=len(run.records),
                diverged=True,
            )
        elif trial.status == "finished" and last is not None:
            outcomes[trial.key] = TrialOutcome(
                key=trial.key,
                status="finished",
                run_id=run.id,
                validation_accuracy=last.validation_accuracy,
                test_accuracy=last.test_accuracy,
                epochs_done=len(run.records),
                validation_loss=last.validation_loss,
                test_loss=last.test_loss,
            )
        else:
            outcomes[trial.key] = TrialOutcome(key=trial.key, status="failed", run_id=trial.run_id)
    return outcomes


def create_sweep(
    spec: SweepSpec,
    *,
    store: RunStore,
    rng: Any = None,
    executor: LocalExecutor | RayExecutor | None = None,
) -> int:
    """Solve the spec's plans, draw the random protocol's trials, store the sweep; return its id.

    Args:
        spec: the sweep.
        store: the run store.
        rng: the random protocol's generator (tests only).
        executor: if given, it is prepared (Ray started or joined, resources checked, data
            loaded) after the plans are solved and before the sweep is stored, so a start
            that is refused leaves no sweep behind.

    Raises:
        PlanError: for an invalid spec, or an executor that cannot start.
        InfeasibleTargetError: if a target ε cannot be met by some (B, E).
    """
    if not isinstance(spec, SweepSpec):
        raise PlanError("spec", spec, "a dpplan.sweep.SweepSpec")
    plans = protocol.solve_plans(spec)
    for plan in plans.values():  # a simulated plan is refused (σ/K < 0.01) before storing
        _trained_plan(plan, spec)
    draws = None if spec.random_repeats is None else protocol.draw_random_trials(spec, rng=rng)
    rows = protocol.plans_to_dict(plans, method=spec.method)
    if executor is not None:
        executor.prepare(spec.options, task=spec.task)
    return store.create_sweep(spec=spec.to_dict(), plans=rows, draws=draws)


def _trained_plan(plan: TrainingPlan, spec: SweepSpec) -> Any:
    """The plan a trial trains: the solved plan, or its simulated plan (``spec.simulate``)."""
    if spec.simulate is None:
        return plan
    from dpplan.simulate import simulated_plan, simulation_dataset_size

    size = simulation_dataset_size(spec.options, spec.simulate_data)
    return simulated_plan(plan, spec.simulate, dataset_size=size)


def _payload(trial: Trial, plan: TrainingPlan, spec: SweepSpec) -> dict[str, Any]:
    payload = {
        "key": trial.key,
        "plan": _trained_plan(plan, spec).to_dict(),
        "schedule": trial.schedule.to_dict(),
        "options": dataclasses.replace(spec.options, seed=trial.seed).to_dict(),
    }
    if spec.task is not None:
        payload["task"] = spec.task  # the worker imports it (no tensors are shipped)
    if spec.simulate is not None:  # dpplan.simulate.run_sweep_trial trains it
        payload["simulate_data"] = spec.simulate_data
    return payload


def _task_columns(spec: SweepSpec) -> dict[str, Any]:
    """The store's task columns of every run of a sweep of a user's task (else none).

    The fingerprint is of the task as the driver builds it; every worker imports the same
    ``module:function``.
    """
    if spec.task is None:
        return {}
    task = task_of(spec.task)
    return {"task": task.name, "task_fingerprint": task.fingerprint(), "task_spec": spec.task}


def _check_same_task_data(store: RunStore, record: Any, columns: Mapping[str, Any]) -> None:
    """Refuse to resume a sweep of a task whose data changed since its runs were stored.

    Raises:
        PlanError: field ``task``, naming both fingerprints.
    """
    found = columns.get("task_fingerprint")
    if found is None:
        return
    from dpplan.train.tasks import describe_fingerprint

    for run in store.list_runs():
        stored = run.task_fingerprint
        if run.group_id == record.group_id and stored is not None and stored != found:
            raise PlanError(
                "task",
                f"{columns['task_spec']}: {describe_fingerprint(found)}",
                f"the data sweep {record.id}'s runs were trained on "
                f"({describe_fingerprint(stored)}, run {run.id})",
                "A resumed sweep must train the same data; start a new sweep for new data.",
            )


def _store_result(
    store: RunStore,
    sweep_id: int,
    trial: Trial,
    plan: TrainingPlan,
    spec: SweepSpec,
    value: Mapping[str, Any],
    task_columns: Mapping[str, Any] | None = None,
) -> int:
    result = value["result"]
    options = result.options.to_dict()
    if getattr(result, "data_source", None) is not None:
        options["data_source"] = result.data_source
    run_id = store.create_run(
        plan=_trained_plan(plan, spec),
        schedule=result.schedule.to_dict(),
        options=options,
        device=result.device,
        seed=trial.seed,
        private=True,
        versions=value["versions"],
        group_id=f"sweep-{sweep_id}",
        **dict(task_columns or {}),
    )
    for record in result.records:
        store.record_epoch(run_id, record, result.warnings)
    store.finish_run(
        run_id,
        status=result.status,
        stop_reason=result.stop_reason,
        diverged_epoch=getattr(result, "diverged_epoch", None),
    )
    return run_id


#: Most characters of a failed trial's stored error (its type and whole message).
MAX_ERROR_CHARS = 4000


def _failure(exc: BaseException) -> str:
    """Return a failed trial's error as stored: the original exception's type and whole
    message (a Ray task error is unwrapped to what the trial raised), bounded by
    :data:`MAX_ERROR_CHARS` (the head and the tail are kept)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        exc = cause  # RayTaskError(DataError) -> the DataError the trial raised
    text = f"{type(exc).__name__}: {str(exc).strip()}"
    if len(text) > MAX_ERROR_CHARS:
        half = MAX_ERROR_CHARS // 2 - 40  # room for the marker
        marker = f" [... {len(text) - 2 * half} characters left out ...] "
        text = f"{text[:half]}{marker}{text[-half:]}"
    return text


def run_sweep(
    sweep_id: int,
    *,
    store: RunStore,
    executor: LocalExecutor | RayExecutor,
    on_progress: Callable[[Progress], None] | None = None,
    close: bool = True,
    data_dir: str | None = None,
) -> FrontierResult:
    """Run every trial of a stored sweep that has no outcome yet, then store its tuning cost.

    Used for a new sweep (after :func:`create_sweep`) and to resume one: trials with a
    recorded outcome (finished or failed) are skipped, so a killed driver loses at most the
    trials it had in flight.

    Args:
        sweep_id: the sweep.
        store: the run store (this process becomes the sweep's driver and sole writer).
        executor: where trials run.
        on_progress: called after every change (a trial started, ended, failed).
        close: close the executor at the end (shuts down an embedded Ray it started).
        data_dir: read MNIST from this folder instead of the stored one (a resumed sweep on
            another machine); the checksums make sure it is the same data.

    Returns:
        :func:`frontier_result` of the sweep.

    Raises:
        NotFoundError: no such sweep.
        StateConflictError: its driver still runs.
        PlanError: field ``task``, for a sweep of a task whose data differ from those its
            runs were trained on (both fingerprints named; nothing is changed).
        StoreError: the store cannot be written.
    """
    # A task's data is checked before the sweep is claimed: a refused resume changes nothing.
    try:
        task_columns = _task_columns(_spec_of(store.get_sweep(sweep_id)))
        _check_same_task_data(store, store.get_sweep(sweep_id), task_columns)
    except BaseException:
        if close:
            executor.close()
        raise
    store.claim_sweep(sweep_id)
    record = store.get_sweep(sweep_id)
    spec = _spec_of(record)
    if data_dir is not None:
        spec = dataclasses.replace(
            spec, options=dataclasses.replace(spec.options, data_dir=str(data_dir))
        )
    plans = protocol.plans_from_dict(record.plans)
    outcomes = _outcomes(store, record)
    start = time.monotonic()
    session_done = 0
    in_flight: dict[str, Trial] = {}
    last_beat = time.monotonic()

    def report(last: str | None = None) -> None:
        if on_progress is None:
            return
        done = sum(1 for o in outcomes.values() if o.status == "finished")
        failed = sum(1 for o in outcomes.values() if o.status == "failed")
        planned = protocol.planned_trials(spec, record.draws)
        elapsed = time.monotonic() - start
        left = max(planned - done - failed, 0)
        eta = elapsed / session_done * left if session_done else None
        on_progress(
            Progress(
                sweep_id=sweep_id,
                planned=planned,
                done=done,
                running=len(in_flight),
                failed=failed,
                elapsed=elapsed,
                eta=eta,
                last=last,
            )
        )

    try:
        executor.prepare(spec.options, task=spec.task)
        while True:
            for trial in protocol.ready_trials(spec, outcomes, record.draws):
                if executor.in_flight >= executor.capacity:
                    break
                if trial.key in outcomes or trial.key in in_flight:
                    continue
                in_flight[trial.key] = trial
                store.start_trial(sweep_id, trial.key)
                executor.submit(trial.key, _payload(trial, plans[trial.plan_key], spec))
                report()
            if not in_flight:
                break
            ended = executor.wait(timeout=_HEARTBEAT_SECONDS)
            if time.monotonic() - last_beat > _HEARTBEAT_SECONDS:
                store.sweep_heartbeat(sweep_id)
                last_beat = time.monotonic()
            if ended is None:
                continue
            key, value = ended
            trial = in_flight.pop(key)
            if isinstance(value, BaseException):
                store.record_trial(sweep_id, key, run_id=None, error=_failure(value))
                outcomes[key] = TrialOutcome(key=key, status="failed")
            else:
                plan = plans[trial.plan_key]
                run_id = _store_result(store, sweep_id, trial, plan, spec, value, task_columns)
                records = value["result"].records
                if value["result"].status == "diverged":
                    store.record_trial(sweep_id, key, run_id=run_id, error=None)
                    outcomes[key] = TrialOutcome(
                        key=key,
                        status="finished",
                        run_id=run_id,
                        epochs_done=len(records),
                        diverged=True,
                    )
                    session_done += 1
                elif records:
                    store.record_trial(sweep_id, key, run_id=run_id, error=None)
                    outcomes[key] = TrialOutcome(
                        key=key,
                        status="finished",
                        run_id=run_id,
                        validation_accuracy=records[-1].validation_accuracy,
                        test_accuracy=records[-1].test_accuracy,
                        epochs_done=len(records),
                        validation_loss=records[-1].validation_loss,
                        test_loss=records[-1].test_loss,
                    )
                    session_done += 1
                else:
                    store.record_trial(
                        sweep_id, key, run_id=run_id, error="the run finished no epoch"
                    )
                    outcomes[key] = TrialOutcome(key=key, status="failed", run_id=run_id)
            report(last=key)
    finally:
        if close:
            executor.close()
        # Stopped or failed with trials in flight: they trained and stored nothing. (If the
        # store cannot be written now, they stay ``running``: counted all the same, and the
        # next claim marks them abandoned.)
        with contextlib.suppress(Exception):
            store.abandon_trials(sweep_id)
    failed = [o.key for o in outcomes.values() if o.status == "failed"]
    result = frontier_result(store, sweep_id)
    status = "failed" if failed else "finished"
    store.finish_sweep(
        sweep_id,
        status=status,
        tuning=result.tuning.to_dict(),
        error=f"{len(failed)} trials failed: {', '.join(failed[:5])}" if failed else None,
    )
    return dataclasses.replace(result, status=status)


def frontier_result(store: RunStore, sweep_id: int) -> FrontierResult:
    """Return a sweep's frontier and tuning cost (``to_dict()``: the CLI's JSON).

    Computed from the store, so it works for a running, interrupted or finished sweep: the
    points (one per target ε with a finished selection), one curve per schedule, every
    solved plan with its ε, the trial counts, the tuning cost (stored once the sweep ended,
    else computed) and the failed trials. See :class:`~dpplan.sweep.results.FrontierResult`.

    Raises:
        NotFoundError: if there is no such sweep.
    """
    record = store.get_sweep(sweep_id)
    spec = _spec_of(record)
    plans = protocol.plans_from_dict(record.plans)
    solved = tuple(SolvedPlan.from_dict(row) for row in record.plans)
    epsilons = {(r.target_epsilon, r.batch_size, r.epochs): r.epsilon for r in solved}
    outcomes = _outcomes(store, record)
    points, curves = protocol.frontier(spec, plans, epsilons, outcomes, record.draws)
    runs = [run for run in store.list_runs() if run.group_id == record.group_id]
    # Attempts that may have trained and stored no run (cut off, failed, in flight): each
    # counted whole.
    unstored = [
        _trained_plan(plans[protocol.plan_key_of(t.key)], spec)
        for t in record.trials
        for _ in range(t.unstored_attempts)
    ]
    if record.tuning is not None and record.status in ("finished", "failed"):
        tuning = TuningCost.from_dict(record.tuning)
    elif spec.simulate is not None:  # the trials at their own ε (dpplan.simulate)
        from dpplan.simulate import simulated_tuning

        tuning = TuningCost.from_dict(
            simulated_tuning(
                delta=spec.delta,
                plan_epsilons=epsilons,
                trial_plans={key: _trained_plan(plan, spec) for key, plan in plans.items()},
                runs=[whole_epochs_spent(run) for run in runs]
                + [(plan, plan.epochs) for plan in unstored],
                k=spec.simulate,
                data=spec.simulate_data,
                coverage=COVERAGE,
            )
        )
    else:
        tuning = tuning_cost(
            delta=spec.delta,
            plan_epsilons=epsilons,
            plans=plans,
            runs=[(run.plan, epochs_counted(run)) for run in runs]
            + [(plan, plan.epochs) for plan in unstored],
            random_repeats=spec.random_repeats,
        )
    simulation = None
    if spec.simulate is not None:  # every point is a prediction (dpplan.simulate.marking)
        from dpplan.simulate import marking

        simulation = marking(spec.simulate, spec.simulate_data)
    return FrontierResult(
        sweep_id=record.id,
        status=record.status,
        spec=spec,
        simulation=simulation,
        runs_tried=len(runs) + len(unstored),
        unstored_attempts=len(unstored),
        trials=TrialCounts(
            planned=protocol.planned_trials(spec, record.draws),
            finished=sum(1 for o in outcomes.values() if o.status == "finished"),
            failed=sum(1 for o in outcomes.values() if o.status == "failed"),
            diverged=sum(1 for o in outcomes.values() if o.diverged),
        ),
        points=points,
        curves=curves,
        plans=solved,
        tuning=tuning,
        failures=tuple(
            TrialFailure(key=t.key, run_id=t.run_id, error=t.error)
            for t in record.trials
            if t.status == "failed"
        ),
    )
