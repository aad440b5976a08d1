"""Run a sweep's trials on Ray (or one at a time in this process) and store them.

The driver (this process) solves the plans, holds the sweep's lease, hands each trial to an
executor, and alone writes the SQLite store: each finished trial's run and records go in
as an ordinary run of group ``sweep-ID``, then the trial's row links its key to the run.
Workers never touch the driver's disk.

* :class:`RayExecutor`: each trial is a Ray task (``max_retries``: a trial whose worker
  dies is run again), over an embedded local Ray (``ray.init()`` over this machine's CPUs
  and GPUs) or an existing cluster (``address``, else ``$DPPLAN_RAY_ADDRESS``). Trials
  share GPUs through fractional GPU resources (``gpus_per_trial``). MNIST reaches the
  workers through Ray's object store (the driver loads and splits it once), or, with
  ``ship_data=False``, from each worker's own data folder (``options.data_dir``).
* :class:`LocalExecutor`: the same trials sequentially in this process (tests, and the
  benchmark of Ray's overhead).

A killed driver loses at most the trials in flight: ``resume_sweep`` (``dpplan sweep
--resume ID``) runs only the trials without an outcome. Ray is an optional extra; without
it, :func:`import_ray` raises :class:`~dpplan.errors.PlanError` naming ``pip install -e
".[sweep]"``.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from dpplan.errors import PlanError
from dpplan.plan import TrainingPlan
from dpplan.store import RunStore
from dpplan.sweep import protocol
from dpplan.sweep.protocol import Trial, TrialOutcome
from dpplan.sweep.spec import SweepSpec
from dpplan.sweep.tuning import tuning_cost

__all__ = [
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

#: Environment variable naming an existing Ray cluster (as ``--ray-address``).
RAY_ADDRESS_ENV = "DPPLAN_RAY_ADDRESS"
RAY_HINT = 'Install the sweep extra: pip install -e ".[sweep]" (or pip install "ray>=2.60,<3").'
#: Test hook: a file path; the first trial attempt that creates it kills its worker
#: (``os._exit``), so tests can check that Ray retries a trial whose worker died.
KILL_ONCE_ENV = "DPPLAN_TEST_KILL_TRIAL_ONCE"
#: How often a waiting driver renews its lease on the sweep (seconds).
_HEARTBEAT_SECONDS = 15.0


def import_ray() -> Any:
    """Return the ``ray`` module.

    Raises:
        PlanError: (field ``ray``) if Ray is not installed, naming the extra to install.
    """
    try:
        import ray
    except ImportError:
        raise PlanError(
            "ray", "not installed", "installed to run a sweep on Ray", RAY_HINT
        ) from None
    return ray


# -- the worker side ---------------------------------------------------------------------------


def _split_arrays(options: Any) -> dict[str, Any]:
    """Load and split MNIST once on the driver's CPU, as numpy arrays for the object store."""
    import torch

    from dpplan.train.core import load_split

    split = load_split(options, torch.device("cpu"))
    arrays: dict[str, Any] = {
        f.name: getattr(split, f.name).numpy()
        for f in dataclasses.fields(split)
        if f.name != "source"
    }
    return {**arrays, "source": split.source}


def run_trial(payload: Mapping[str, Any], data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Train one trial with the storage-free training core and return its result.

    Args:
        payload: ``{"key", "plan", "schedule", "options"}`` (the ``to_dict`` forms), and
            optionally ``"kill_once"`` (the test hook's marker path).
        data: the MNIST split as numpy arrays (from the object store), or None to load it
            from the worker's own data folder (``options.data_dir``).

    Returns:
        ``{"result": TrainingResult, "versions": {...}, "seconds": wall time, "host": ...}``.
    """
    marker = payload.get("kill_once")
    if marker:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            pass
        else:
            os._exit(1)  # the test hook: this attempt's worker dies
    import socket

    import torch

    from dpplan.train.core import MnistSplit, Trainer, TrainingResult, resolve_device, versions
    from dpplan.train.specs import RunOptions, schedule_from_dict

    started = time.perf_counter()
    plan = TrainingPlan.from_dict(payload["plan"])
    schedule = schedule_from_dict(payload["schedule"])
    options = RunOptions.from_dict(dict(payload["options"]))
    # One trial, one thread per CPU it reserved (options.threads): torch's default of one
    # thread per core made concurrent trials fight over the cores (BENCHMARKS.md).
    torch.set_num_threads(options.threads)
    device = resolve_device(options.device)
    split = None
    if data is not None:
        split = MnistSplit(
            **{
                name: torch.tensor(array, device=device)
                for name, array in data.items()
                if name != "source"
            },
            source=data.get("source"),
        )
    trainer = Trainer(plan, schedule, options, data=split, device=device)
    records: list[Any] = []
    status, reason = trainer.run(on_epoch=records.append)
    result = TrainingResult(
        plan=trainer.plan,
        schedule=trainer.schedule,
        options=trainer.options,
        device=str(trainer.device),
        engine=trainer.engine.name,
        status=status,
        stop_reason=reason,
        records=tuple(records),
        warnings=tuple(trainer.warnings),
        data_source=trainer.data.source,
        diverged_epoch=trainer.diverged_epoch,
    )
    return {
        "result": result,
        "versions": versions(),
        "seconds": time.perf_counter() - started,
        "host": socket.gethostname(),
    }


# -- executors ---------------------------------------------------------------------------------


class LocalExecutor:
    """Runs trials one at a time in this process (no Ray): tests and benchmarks.

    Args:
        ship_data: load and split MNIST once and hand it to every trial (as Ray does);
            False loads it per trial from ``options.data_dir``.
    """

    name = "local"
    capacity = 1

    def __init__(self, *, ship_data: bool = True) -> None:
        self.ship_data = ship_data
        self._queue: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
        self._data: dict[str, Any] | None = None

    def prepare(self, options: Any) -> None:
        """Load the data the trials share."""
        if self.ship_data:
            self._data = _split_arrays(options)

    def submit(self, key: str, payload: dict[str, Any]) -> None:
        self._queue.append((key, payload))

    @property
    def in_flight(self) -> int:
        return len(self._queue)

    def wait(self, timeout: float | None = None) -> tuple[str, Any] | None:
        """Run the next trial; return (key, result dict or the exception it raised)."""
        key, payload = self._queue.popleft()
        try:
            return key, run_trial(payload, self._data)
        except Exception as exc:  # noqa: BLE001 - a failed trial is recorded, not fatal
            return key, exc

    def close(self) -> None:
        self._queue.clear()


class RayExecutor:
    """Runs trials as Ray tasks, retried when their worker dies.

    Args:
        address: an existing cluster (``"auto"``, ``"ray://host:10001"``, ...); None uses
            ``$DPPLAN_RAY_ADDRESS`` if set, else starts an embedded Ray over this machine
            (or joins the one this process already initialised).
        num_cpus: CPUs of the embedded Ray (default: all).
        num_gpus: GPUs of the embedded Ray (default: all CUDA GPUs Ray finds).
        cpus_per_trial: CPUs each trial reserves.
        gpus_per_trial: GPU fraction each trial reserves (e.g. 0.25: four trials share a
            GPU); None: 0.25 when the cluster has GPUs and ``options.device`` allows CUDA,
            else 0 (CPU trials).
        max_retries: how many times a trial whose worker died is run again.
        ship_data: send MNIST through the object store (True) or let each worker read its
            own ``options.data_dir`` (False; for clusters whose nodes have the data).

    Raises:
        PlanError: if Ray is not installed (naming the extra), or an argument is invalid.
    """

    name = "ray"

    def __init__(
        self,
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        num_gpus: float | None = None,
        cpus_per_trial: float = 1.0,
        gpus_per_trial: float | None = None,
        max_retries: int = 2,
        ship_data: bool = True,
    ) -> None:
        from dpplan import _validate

        self.ray = import_ray()
        self.address = address or os.environ.get(RAY_ADDRESS_ENV) or None
        self.cpus_per_trial = _validate.finite_positive(cpus_per_trial=cpus_per_trial)
        if gpus_per_trial is not None:
            gpus_per_trial = _validate.closed_interval(
                low=0.0, high=64.0, gpus_per_trial=gpus_per_trial
            )
        self.gpus_per_trial = gpus_per_trial
        self.max_retries = _validate.integer(minimum=0, maximum=100, max_retries=max_retries)
        self.ship_data = ship_data
        self._num_cpus, self._num_gpus = num_cpus, num_gpus
        self._owns = False
        self._refs: dict[Any, str] = {}
        self._data_ref = None
        self._remote = None
        self.capacity = 1

    def prepare(self, options: Any) -> None:
        """Start or join Ray, size the trials' resources and put MNIST in the object store.

        Raises:
            PlanError: for ``device="cuda"`` on a cluster without GPUs or with
                ``gpus_per_trial=0``.
        """
        ray = self.ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"log_to_driver": False}
            if self.address is None:
                kwargs.update(
                    include_dashboard=False, num_cpus=self._num_cpus, num_gpus=self._num_gpus
                )
            ray.init(address=self.address, **kwargs)
            self._owns = True
        resources = ray.cluster_resources()
        gpus, cpus = float(resources.get("GPU", 0.0)), float(resources.get("CPU", 1.0))
        per_gpu = self.gpus_per_trial
        if per_gpu is None:
            per_gpu = 0.25 if gpus > 0 and options.device != "cpu" else 0.0
        if options.device == "cuda" and not (per_gpu > 0 and gpus > 0):
            raise PlanError(
                "gpus_per_trial",
                per_gpu,
                "> 0 on a cluster with GPUs for device='cuda'",
                f"The Ray cluster has {gpus:g} GPUs.",
            )
        if per_gpu > gpus:
            raise PlanError("gpus_per_trial", per_gpu, f"at most the cluster's {gpus:g} GPUs")
        self.gpus_per_trial = per_gpu
        slots = int(cpus // self.cpus_per_trial)
        if per_gpu > 0:
            slots = min(slots, int(gpus / per_gpu + 1e-9))
        self.capacity = max(1, slots)
        self._remote = ray.remote(
            num_cpus=self.cpus_per_trial,
            num_gpus=per_gpu,
            max_retries=self.max_retries,
            retry_exceptions=False,
            max_calls=0,  # keep workers warm (Ray's default for GPU tasks is one call each)
        )(run_trial)
        if self.ship_data:
            self._data_ref = ray.put(_split_arrays(options))

    def submit(self, key: str, payload: dict[str, Any]) -> None:
        self._refs[self._remote.remote(payload, self._data_ref)] = key

    @property
    def in_flight(self) -> int:
        return len(self._refs)

    def wait(self, timeout: float | None = None) -> tuple[str, Any] | None:
        """Wait for a trial; return (key, result dict or its exception), or None on timeout."""
        done, _ = self.ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        if not done:
            return None
        key = self._refs.pop(done[0])
        try:
            return key, self.ray.get(done[0])
        except self.ray.exceptions.RayError as exc:  # the task failed or its worker died
            return key, exc

    def close(self) -> None:
        for ref in list(self._refs):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001, S110 - best effort at shutdown
                pass
        self._refs.clear()
        if self._owns:
            self.ray.shutdown()
            self._owns = False


# -- the driver --------------------------------------------------------------------------------


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
            )
        else:
            outcomes[trial.key] = TrialOutcome(key=trial.key, status="failed", run_id=trial.run_id)
    return outcomes


def create_sweep(spec: SweepSpec, *, store: RunStore, rng: Any = None) -> int:
    """Solve the spec's plans, draw the random protocol's trials, store the sweep; return its id.

    Raises:
        PlanError: for an invalid spec.
        InfeasibleTargetError: if a target ε cannot be met by some (B, E).
    """
    if not isinstance(spec, SweepSpec):
        raise PlanError("spec", spec, "a dpplan.sweep.SweepSpec")
    plans = protocol.solve_plans(spec)
    draws = None if spec.random_repeats is None else protocol.draw_random_trials(spec, rng=rng)
    return store.create_sweep(
        spec=spec.to_dict(), plans=protocol.plans_to_dict(plans, method=spec.method), draws=draws
    )


def _payload(trial: Trial, plan: TrainingPlan, spec: SweepSpec) -> dict[str, Any]:
    payload = {
        "key": trial.key,
        "plan": plan.to_dict(),
        "schedule": trial.schedule.to_dict(),
        "options": dataclasses.replace(spec.options, seed=trial.seed).to_dict(),
    }
    if os.environ.get(KILL_ONCE_ENV):
        payload["kill_once"] = os.environ[KILL_ONCE_ENV]
    return payload


def _store_result(
    store: RunStore,
    sweep_id: int,
    trial: Trial,
    plan: TrainingPlan,
    spec: SweepSpec,
    value: Mapping[str, Any],
) -> int:
    result = value["result"]
    options = result.options.to_dict()
    if getattr(result, "data_source", None) is not None:
        options["data_source"] = result.data_source
    run_id = store.create_run(
        plan=plan,
        schedule=result.schedule.to_dict(),
        options=options,
        device=result.device,
        seed=trial.seed,
        private=True,
        versions=value["versions"],
        group_id=f"sweep-{sweep_id}",
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


def _failure(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"[:2000]


def run_sweep(
    sweep_id: int,
    *,
    store: RunStore,
    executor: LocalExecutor | RayExecutor,
    on_progress: Callable[[Progress], None] | None = None,
    close: bool = True,
) -> dict[str, Any]:
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

    Returns:
        :func:`frontier_result` of the sweep.

    Raises:
        PlanError: no such sweep, or its driver still runs.
        StoreError: the store cannot be written.
    """
    store.claim_sweep(sweep_id)
    record = store.get_sweep(sweep_id)
    spec = _spec_of(record)
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
        executor.prepare(spec.options)
        while True:
            for trial in protocol.ready_trials(spec, outcomes, record.draws):
                if executor.in_flight >= executor.capacity:
                    break
                if trial.key in outcomes or trial.key in in_flight:
                    continue
                in_flight[trial.key] = trial
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
                store.record_trial(sweep_id, key, status="failed", error=_failure(value))
                outcomes[key] = TrialOutcome(key=key, status="failed")
            else:
                plan = plans[trial.plan_key]
                run_id = _store_result(store, sweep_id, trial, plan, spec, value)
                records = value["result"].records
                if value["result"].status == "diverged":
                    store.record_trial(sweep_id, key, status="finished", run_id=run_id)
                    outcomes[key] = TrialOutcome(
                        key=key,
                        status="finished",
                        run_id=run_id,
                        epochs_done=len(records),
                        diverged=True,
                    )
                    session_done += 1
                elif records:
                    store.record_trial(sweep_id, key, status="finished", run_id=run_id)
                    outcomes[key] = TrialOutcome(
                        key=key,
                        status="finished",
                        run_id=run_id,
                        validation_accuracy=records[-1].validation_accuracy,
                        test_accuracy=records[-1].test_accuracy,
                        epochs_done=len(records),
                    )
                    session_done += 1
                else:
                    store.record_trial(
                        sweep_id,
                        key,
                        status="failed",
                        run_id=run_id,
                        error="the run finished no epoch",
                    )
                    outcomes[key] = TrialOutcome(key=key, status="failed", run_id=run_id)
            report(last=key)
    finally:
        if close:
            executor.close()
    failed = [o.key for o in outcomes.values() if o.status == "failed"]
    result = frontier_result(store, sweep_id)
    store.finish_sweep(
        sweep_id,
        status="failed" if failed else "finished",
        tuning=result["tuning"],
        error=f"{len(failed)} trials failed: {', '.join(failed[:5])}" if failed else None,
    )
    result["status"] = "failed" if failed else "finished"
    return result


def frontier_result(store: RunStore, sweep_id: int) -> dict[str, Any]:
    """Return a sweep's frontier and tuning cost as a JSON-ready dict (report-ready data).

    Keys: ``sweep_id``, ``status``, ``spec``, ``runs_tried`` (stored runs of the sweep),
    ``trials`` (``planned``, ``finished``, ``failed``, and ``diverged``: finished trials whose
    loss or weights became non-finite, never selected), ``points`` (one per target ε with a
    finished selection: ``target_epsilon``, ``epsilon`` and ``epsilon_method`` of its plan,
    ``plan``, ``schedule``, ``validation_accuracy``, ``test_accuracy_mean``,
    ``test_accuracy_std``, ``seeds``, ``run_ids``), ``curves`` (schedule kind -> the same
    points restricted to that schedule), ``plans`` (every solved plan with its ε) and
    ``tuning`` (:func:`dpplan.sweep.tuning.tuning_cost`). Computed from the store, so it
    works for a running, interrupted or finished sweep.

    Raises:
        PlanError: if there is no such sweep.
    """
    record = store.get_sweep(sweep_id)
    spec = _spec_of(record)
    plans = protocol.plans_from_dict(record.plans)
    epsilons = {
        (float(r["target_epsilon"]), int(r["batch_size"]), int(r["epochs"])): float(r["epsilon"])
        for r in record.plans
    }
    outcomes = _outcomes(store, record)
    points, curves = protocol.frontier(spec, plans, epsilons, outcomes, record.draws)
    for point in [*points, *(p for c in curves.values() for p in c)]:
        point["epsilon_method"] = spec.method
    runs = [run for run in store.list_runs() if run.group_id == record.group_id]
    if record.tuning is not None and record.status in ("finished", "failed"):
        tuning = record.tuning
    else:
        tuning = tuning_cost(
            delta=spec.delta,
            plan_epsilons=epsilons,
            plans=plans,
            runs=[(run.plan, run.epochs_spent) for run in runs],
            random_repeats=spec.random_repeats,
        )
    return {
        "sweep_id": record.id,
        "status": record.status,
        "spec": record.spec,
        "runs_tried": len(runs),
        "trials": {
            "planned": protocol.planned_trials(spec, record.draws),
            "finished": sum(1 for o in outcomes.values() if o.status == "finished"),
            "failed": sum(1 for o in outcomes.values() if o.status == "failed"),
            "diverged": sum(1 for o in outcomes.values() if o.diverged),
        },
        "points": points,
        "curves": curves,
        "plans": record.plans,
        "tuning": tuning,
    }
