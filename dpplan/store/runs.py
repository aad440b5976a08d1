"""The runs repository: runs, their per-epoch records, their leases and their state changes.

Durability: the database runs in WAL mode and every epoch is written in one transaction, so a
process killed mid-epoch loses at most the epoch in flight. A run whose status is still
``running`` but whose lease holder is gone (:mod:`dpplan.store.liveness`) reads as
``interrupted``. Only the lease holder can record epochs or set the final status.

State changes that can end in several ways return a value (:class:`StopOutcome`) that the
CLI and the app put in words; refusals raise :class:`~dpplan.errors.NotFoundError` or
:class:`~dpplan.errors.StateConflictError`. Whether a run *may* be deleted for privacy
reasons is decided above the store (:func:`dpplan.run_policy.delete_run`).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dpplan import _validate
from dpplan.errors import NotFoundError, PlanError, StateConflictError, StoreError
from dpplan.format import json_float
from dpplan.phased import PhasedPlan
from dpplan.plan import TrainingPlan
from dpplan.store.database import StoreDatabase, stored_id
from dpplan.store.liveness import LEASE_COLUMNS
from dpplan.store.records import (
    STATUSES,
    EpochRecord,
    OptionsRecord,
    RunRecord,
    ScheduleRecord,
    plan_id,
)

__all__ = ["RunsRepository", "StopOutcome", "StopResult"]


class StopOutcome(enum.Enum):
    """What :meth:`RunsRepository.request_stop` did."""

    #: a queued run was cancelled before it started.
    CANCELLED = "cancelled"
    #: the run was not running or queued; nothing changed.
    ALREADY_ENDED = "already_ended"
    #: the run was marked ``stopped`` at once (forced, or its process on this host is gone).
    MARKED_STOPPED = "marked_stopped"
    #: the run was asked to stop; its live process stops within seconds.
    REQUESTED = "requested"
    #: the run was asked to stop, but its heartbeat (another host) is stale.
    REQUESTED_STALE = "requested_stale"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class StopResult:
    """The outcome of a stop request.

    Attributes:
        run_id: the run.
        outcome: what was done.
        status: the run's status before the request (``interrupted`` for a running run whose
            lease holder is gone).
        owner: the lease holder and its heartbeat's age, in words (running runs only).
        forced: whether ``force=True`` was given.
        owner_alive: whether the lease holder still ran (running runs only).
    """

    run_id: int
    outcome: StopOutcome
    status: str
    owner: str = ""
    forced: bool = False
    owner_alive: bool = False


def _float_or_inf(value: Any) -> float:
    return math.inf if value is None else float(value)


def _float_or_nan(value: Any) -> float:
    """A measured value: SQLite stores NaN as NULL (runs that diverged before dpplan
    stopped them recorded NaN losses), which reads back as NaN."""
    return math.nan if value is None else float(value)


def _plan_from_dict(data: dict[str, Any]) -> TrainingPlan | PhasedPlan:
    """A stored plan: a PhasedPlan's dict has ``phases``, a TrainingPlan's does not."""
    if isinstance(data, dict) and "phases" in data:
        return PhasedPlan.from_dict(data)
    return TrainingPlan.from_dict(data)


def _column(row: sqlite3.Row, name: str) -> Any:
    return row[name] if name in row.keys() else None  # noqa: SIM118 - Row `in` tests values


def _epsilons(row: sqlite3.Row) -> dict[str, float]:
    text = _column(row, "epsilons")
    return {k: float(v) for k, v in json.loads(text).items()} if text else {}


def _metrics(row: sqlite3.Row) -> dict[str, float]:
    text = _column(row, "metrics")
    return {k: float(v) for k, v in json.loads(text).items()} if text else {}


def _not_found(run_id: object) -> NotFoundError:
    return NotFoundError(
        "run_id", run_id, "the id of a stored run", "List the runs with 'dpplan runs'."
    )


def _in_flight_steps(connection: sqlite3.Connection, row: sqlite3.Row) -> int:
    """An upper bound on the noisy steps a run's dead process took after its last recorded
    epoch: all the steps of the next epoch (a process records each epoch before it starts
    the next), 0 after the plan's last epoch."""
    text = connection.execute("SELECT plan FROM plans WHERE id=?", (row["plan_id"],)).fetchone()
    plan = _plan_from_dict(json.loads(text[0]))
    phased = plan if isinstance(plan, PhasedPlan) else PhasedPlan(phases=(plan,))
    ends = phased.epoch_ends()
    (done,) = connection.execute(
        "SELECT count(*) FROM epochs WHERE run_id=?", (row["id"],)
    ).fetchone()
    if done >= len(ends):
        return 0
    return ends[done] - (ends[done - 1] if done else 0)


def _count_in_flight(connection: sqlite3.Connection, row: sqlite3.Row) -> None:
    """Add to a run whose process died while running it the steps it may have taken in the
    epoch in flight (:func:`_in_flight_steps`): not recorded, but they touched the data."""
    connection.execute(
        "UPDATE runs SET abandoned_steps=abandoned_steps+? WHERE id=?",
        (_in_flight_steps(connection, row), row["id"]),
    )


def _run_row(connection: sqlite3.Connection, run_id: int, *, required: bool = True):
    """The ``runs`` row of ``run_id`` (None if there is none and not ``required``).

    Raises:
        NotFoundError: if ``required`` and there is no such run.
    """
    row = connection.execute("SELECT * FROM runs WHERE id=?", (stored_id(run_id),)).fetchone()
    if row is None and required:
        raise _not_found(run_id)
    return row


class RunsRepository(StoreDatabase):
    """Runs and their epoch records (see the module docstring)."""

    # -- the lease of the process that runs a run ------------------------------------------

    def _start_heartbeat(self, run_id: int) -> None:
        run_id = stored_id(run_id)

        def beat() -> bool:
            try:
                return self.heartbeat(run_id)
            except StoreError:
                return self.path.exists()

        self.liveness.heartbeats.start(
            (str(self.path), run_id), beat, name=f"dpplan-heartbeat-{run_id}"
        )

    def _stop_heartbeat(self, run_id: int) -> None:
        self.liveness.heartbeats.stop((str(self.path), stored_id(run_id)))

    def heartbeat(self, run_id: int) -> bool:
        """Renew this process's lease on a running run; return False if it holds none.

        Raises:
            StoreError: if the database cannot be written.
        """
        live = self.liveness
        with self._transaction() as connection:
            cursor = connection.execute(
                "UPDATE runs SET heartbeat_at=? WHERE id=? AND status='running' AND pid=? "
                "AND host=?",
                (live.now(), stored_id(run_id), live.pid(), live.host()),
            )
            return cursor.rowcount == 1

    def checkpoint_path(self, run_id: int) -> Path:
        """Return the path of the run's latest checkpoint (may not exist)."""
        return self.home / "checkpoints" / f"run-{stored_id(run_id)}.pt"

    def create_run(
        self,
        *,
        plan: TrainingPlan,
        schedule: Mapping[str, Any],
        options: Mapping[str, Any],
        device: str,
        seed: int,
        private: bool,
        versions: Mapping[str, str],
        group_id: str | None = None,
        status: str = "running",
        task: str | None = None,
        task_fingerprint: Mapping[str, Any] | None = None,
        task_spec: str | None = None,
    ) -> int:
        """Insert a run (and its plan) and return the run id.

        A ``running`` run is leased to this process (see :mod:`dpplan.store.liveness`).
        ``task``, ``task_fingerprint`` and ``task_spec`` say what was trained (see
        :class:`~dpplan.store.RunRecord`).
        """
        with self._transaction() as connection:
            connection.execute(
                "INSERT OR IGNORE INTO plans (id, plan) VALUES (?, ?)",
                (plan_id(plan), json.dumps(plan.to_dict())),
            )
            cursor = connection.execute(
                "INSERT INTO runs (plan_id, status, schedule, options, device, seed, versions, "
                f"private, group_id, {LEASE_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    plan_id(plan),
                    status,
                    json.dumps(dict(schedule)),
                    json.dumps(dict(options)),
                    device,
                    int(seed),
                    json.dumps(dict(versions)),
                    int(private),
                    group_id,
                    *self.liveness.new_lease(),
                ),
            )
            run_id = int(cursor.lastrowid)
            if task is not None:
                connection.execute(
                    "UPDATE runs SET task=?, task_fingerprint=?, task_spec=? WHERE id=?",
                    (
                        task,
                        None if task_fingerprint is None else json.dumps(dict(task_fingerprint)),
                        task_spec,
                        run_id,
                    ),
                )
        if status == "running":
            self._start_heartbeat(run_id)
        return run_id

    def claim(self, run_id: int, *, status: str = "running") -> None:
        """Lease a run to this process (used when resuming it); takes over a stale lease.

        Raises:
            NotFoundError: if there is no such run.
            StateConflictError: if its status is ``running`` and the process holding it
                still runs (or, on another host, its heartbeat is fresh).
        """
        live = self.liveness
        pid, started, host, now = live.owner()
        with self._transaction() as connection:
            row = _run_row(connection, run_id)
            if row["status"] == "running" and not live.owned(row) and live.owner_alive(row, now):
                raise StateConflictError(
                    "run_id",
                    run_id,
                    "a run that no live process is running",
                    f"Run {run_id} is running ({live.owner_text(row, now)}). Stop it with "
                    f"'dpplan runs stop {run_id}' first.",
                )
            if row["status"] == "running" and not live.owned(row):  # its process died
                _count_in_flight(connection, row)
            connection.execute(
                "UPDATE runs SET status=?, pid=?, pid_started=?, host=?, heartbeat_at=?, "
                "updated_at=?, error=NULL, stop_reason=NULL WHERE id=?",
                (status, pid, started, host, now, now, stored_id(run_id)),
            )
        if status == "running":
            self._start_heartbeat(run_id)

    def record_epoch(
        self, run_id: int, record: EpochRecord, warnings: tuple[str, ...] = ()
    ) -> None:
        """Write one epoch's record (and the run's warnings) in one transaction.

        Raises:
            StoreError: if this process no longer holds the run (another process resumed
                it); nothing is written.
        """
        values = dataclasses.asdict(record)
        with self._transaction() as connection:
            row = _run_row(connection, run_id, required=False)
            if not self.liveness.owned(row):
                raise StoreError(
                    f"run {run_id} in {self.path} is no longer held by this process (pid "
                    f"{self.liveness.pid()}): it was deleted or another process took it over; "
                    f"epoch {record.epoch} was not recorded."
                )
            connection.execute(
                "INSERT OR REPLACE INTO epochs (run_id, epoch, steps, epsilon, epsilon_rdp, "
                "epsilon_opacus, train_loss, validation_loss, validation_accuracy, "
                "test_accuracy, lr, seconds, epsilons, test_loss, metrics) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    stored_id(run_id),
                    values["epoch"],
                    values["steps"],
                    *(
                        None
                        if isinstance(values[k], float) and math.isinf(values[k])
                        else values[k]
                        for k in ("epsilon", "epsilon_rdp", "epsilon_opacus")
                    ),
                    values["train_loss"],
                    values["validation_loss"],
                    values["validation_accuracy"],
                    values["test_accuracy"],
                    values["lr"],
                    values["seconds"],
                    json.dumps({k: json_float(float(v)) for k, v in record.epsilons.items()}),
                    values["test_loss"],
                    json.dumps({k: json_float(float(v)) for k, v in record.metrics.items()}),
                ),
            )
            connection.execute(
                "UPDATE runs SET updated_at=?, warnings=? WHERE id=?",
                (self.liveness.now(), json.dumps(list(warnings)), stored_id(run_id)),
            )

    def update_options(self, run_id: int, changes: Mapping[str, Any]) -> None:
        """Merge ``changes`` into a run's stored options (what a run found out about itself,
        such as where its data came from).

        Raises:
            StoreError: if the store is read-only.
        """
        with self._transaction() as connection:
            row = connection.execute(
                "SELECT options FROM runs WHERE id=?", (stored_id(run_id),)
            ).fetchone()
            if row is None:
                return
            options = {**json.loads(row["options"]), **dict(changes)}
            connection.execute(
                "UPDATE runs SET options=? WHERE id=?", (json.dumps(options), stored_id(run_id))
            )

    def finish_run(
        self,
        run_id: int,
        *,
        status: str,
        error: str | None = None,
        stop_reason: str | None = None,
        diverged_epoch: int | None = None,
        abandoned_steps: int = 0,
    ) -> None:
        """Set a run's final status (finished, failed, stopped, diverged, not_started) and end
        this process's lease. ``diverged_epoch``: the (unrecorded) epoch a diverged run
        diverged in, whose steps count against privacy. ``abandoned_steps``: noisy steps of
        an epoch this process abandoned mid-way (not recorded; they count against privacy),
        added to the run's :attr:`~dpplan.store.RunRecord.abandoned_steps`.

        Only the process holding the run changes it; for a run another process has taken
        over, this does nothing.

        Raises:
            PlanError: if ``status`` is not one of :data:`STATUSES`.
        """
        if status not in STATUSES:
            raise PlanError("status", status, "one of " + ", ".join(STATUSES))
        abandoned_steps = _validate.integer(minimum=0, abandoned_steps=abandoned_steps)
        self._stop_heartbeat(run_id)
        live = self.liveness
        with self._transaction() as connection:
            connection.execute(
                "UPDATE runs SET status=?, error=?, stop_reason=?, diverged_epoch=?, "
                "abandoned_steps=abandoned_steps+?, updated_at=? WHERE id=? AND pid=? AND host=?",
                (
                    status,
                    error,
                    stop_reason,
                    diverged_epoch,
                    abandoned_steps,
                    live.now(),
                    stored_id(run_id),
                    live.pid(),
                    live.host(),
                ),
            )

    def claim_next_queued(self) -> int | None:
        """Atomically mark the oldest queued run as running by this process; return its id."""
        with self._transaction() as connection:
            row = connection.execute(
                "SELECT id FROM runs WHERE status='queued' ORDER BY id LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            pid, started, host, now = self.liveness.owner()
            connection.execute(
                "UPDATE runs SET status='running', pid=?, pid_started=?, host=?, heartbeat_at=?, "
                "updated_at=?, error=NULL, stop_reason=NULL WHERE id=?",
                (pid, started, host, now, now, row["id"]),
            )
        self._start_heartbeat(row["id"])
        return int(row["id"])

    def resumable_run(self, run_id: int) -> RunRecord:
        """Return a run that may be resumed or queued again: interrupted, stopped or failed.

        Raises:
            NotFoundError: if there is no such run.
            StateConflictError: if the run is queued, running or finished.
        """
        run = self.get_run(run_id)
        if run.status not in ("interrupted", "stopped", "failed"):
            raise StateConflictError(
                "run_id",
                run_id,
                "an interrupted, stopped or failed run",
                f"Run {run_id} is {run.status}.",
            )
        return run

    def requeue(self, run_id: int) -> None:
        """Queue an interrupted, stopped or failed run again (a worker resumes it).

        Raises:
            NotFoundError: if there is no such run.
            StateConflictError: if the run is queued, running or finished.
        """
        self.resumable_run(run_id)
        with self._transaction() as connection:
            row = _run_row(connection, run_id)
            if row["status"] == "running":  # interrupted: its process died
                _count_in_flight(connection, row)
            connection.execute(
                "UPDATE runs SET status='queued', stop_reason=NULL, error=NULL, updated_at=? "
                "WHERE id=?",
                (self.liveness.now(), stored_id(run_id)),
            )

    def request_stop(self, run_id: int, *, force: bool = False) -> StopResult:
        """Stop a run and return what was done.

        A queued run is cancelled. A running run is asked to stop and stops within seconds.
        A run whose process on this host is gone is marked ``stopped``. A run on another host
        whose heartbeat is stale is only asked to stop, since its process may still run;
        ``force=True`` marks any queued or running run ``stopped`` at once (if its process
        still runs, it stops at its next check and records nothing more). Records and the
        checkpoint are kept either way, so the run can be resumed.

        Raises:
            NotFoundError: if there is no such run.
        """
        live = self.liveness
        now = live.now()
        with self._transaction() as connection:
            row = _run_row(connection, run_id)
            status = row["status"]
            result = StopResult(
                run_id=stored_id(run_id), outcome=StopOutcome.CANCELLED, status=status
            )
            if status == "queued":
                connection.execute(
                    "UPDATE runs SET status='stopped', stop_reason='cancelled before it "
                    "started', updated_at=? WHERE id=?",
                    (now, stored_id(run_id)),
                )
                return result
            if status != "running":
                return dataclasses.replace(result, outcome=StopOutcome.ALREADY_ENDED)
            alive = live.owner_alive(row, now)
            result = dataclasses.replace(
                result,
                status="running" if alive else "interrupted",
                owner=live.owner_text(row, now),
                forced=force,
                owner_alive=alive,
            )
            if force or (not alive and row["host"] == live.host()):
                reason = (
                    "stop forced with 'dpplan runs stop ID --force'"
                    if force
                    else "stopped after its process ended"
                )
                if not alive:  # a live one adds the steps it took when it stops
                    _count_in_flight(connection, row)
                connection.execute(
                    "UPDATE runs SET status='stopped', stop_reason=?, updated_at=? WHERE id=?",
                    (reason, now, stored_id(run_id)),
                )
                return dataclasses.replace(result, outcome=StopOutcome.MARKED_STOPPED)
            connection.execute(
                "UPDATE runs SET stop_reason='stop requested', updated_at=? WHERE id=?",
                (now, stored_id(run_id)),
            )
            outcome = StopOutcome.REQUESTED if alive else StopOutcome.REQUESTED_STALE
            return dataclasses.replace(result, outcome=outcome)

    def stop_requested(self, run_id: int) -> bool:
        """Return whether the run should stop, and renew this process's lease on it.

        True when :meth:`request_stop` was called for the run, or when this process no
        longer holds it (stopped with ``force``, taken over by another process, deleted).
        """
        if self.read_only:
            return True
        with self._transaction() as connection:
            row = _run_row(connection, run_id, required=False)
            if row is None or row["stop_reason"] == "stop requested":
                return True
            if row["status"] != "running" or not self.liveness.owned(row):
                return True
            connection.execute(
                "UPDATE runs SET heartbeat_at=? WHERE id=?",
                (self.liveness.now(), stored_id(run_id)),
            )
        return False

    def save_report(self, run_id: int, report: Mapping[str, Any]) -> None:
        """Store a JSON report with the run."""
        with self._transaction() as connection:
            connection.execute(
                "UPDATE runs SET report=? WHERE id=?", (json.dumps(dict(report)), stored_id(run_id))
            )

    def load_report(self, run_id: int) -> dict[str, Any] | None:
        """Return the run's stored report, if any."""
        with self._connect() as connection:
            row = connection.execute(
                "SELECT report FROM runs WHERE id=?", (stored_id(run_id),)
            ).fetchone()
        return json.loads(row["report"]) if row is not None and row["report"] else None

    def get_run(self, run_id: int) -> RunRecord:
        """Return a stored run with its records.

        Raises:
            PlanError: if ``run_id`` is not a whole number in range.
            NotFoundError: if there is no run with this id (field ``run_id``).
        """
        with self._connect() as connection:
            row = connection.execute(
                "SELECT runs.*, plans.plan FROM runs JOIN plans ON plans.id = runs.plan_id "
                "WHERE runs.id=?",
                (stored_id(run_id),),
            ).fetchone()
            if row is None:
                raise _not_found(run_id)
            epochs = connection.execute(
                "SELECT * FROM epochs WHERE run_id=? ORDER BY epoch", (stored_id(run_id),)
            ).fetchall()
        return self._to_record(row, epochs)

    def list_runs(self) -> list[RunRecord]:
        """Return every stored run, newest first, with its records."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT runs.*, plans.plan FROM runs JOIN plans ON plans.id = runs.plan_id "
                "ORDER BY runs.id DESC"
            ).fetchall()
            epochs = connection.execute("SELECT * FROM epochs ORDER BY run_id, epoch").fetchall()
        by_run: dict[int, list[sqlite3.Row]] = {}
        for epoch in epochs:
            by_run.setdefault(epoch["run_id"], []).append(epoch)
        return [self._to_record(row, by_run.get(row["id"], [])) for row in rows]

    def delete_run(self, run_id: int) -> None:
        """Delete a run, its records and its checkpoint (no privacy policy: callers use
        :func:`dpplan.run_policy.delete_run`, which keeps the runs a group's ε counts).

        Raises:
            NotFoundError: if there is no such run.
            StateConflictError: if it is running or queued.
            StoreError: if the store is read-only, or the checkpoint cannot be removed.
        """
        run = self.get_run(run_id)
        if run.status in ("running", "queued"):
            raise StateConflictError(
                "run_id",
                run_id,
                "a run that is not running or queued",
                "Stop it first with 'dpplan runs stop ID'.",
            )
        with self._transaction() as connection:
            connection.execute("DELETE FROM epochs WHERE run_id=?", (stored_id(run_id),))
            connection.execute("DELETE FROM runs WHERE id=?", (stored_id(run_id),))
        path = self.checkpoint_path(run_id)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(
                f"run {run_id} was deleted, but its checkpoint {path} could not "
                f"be removed ({exc}); remove it by hand."
            ) from exc

    def _to_record(self, row: sqlite3.Row, epochs: list[sqlite3.Row]) -> RunRecord:
        status = row["status"]
        if status == "running" and not self.liveness.owner_alive(row, self.liveness.now()):
            status = "interrupted"
        records = tuple(
            EpochRecord(
                epoch=e["epoch"],
                steps=e["steps"],
                epsilon=_float_or_inf(e["epsilon"]),
                epsilon_rdp=_float_or_inf(e["epsilon_rdp"]),
                epsilon_opacus=_float_or_inf(e["epsilon_opacus"]),
                train_loss=_float_or_nan(e["train_loss"]),
                validation_loss=_float_or_nan(e["validation_loss"]),
                validation_accuracy=_float_or_nan(e["validation_accuracy"]),
                test_accuracy=_float_or_nan(e["test_accuracy"]),
                lr=_float_or_nan(e["lr"]),
                seconds=_float_or_nan(e["seconds"]),
                epsilons=_epsilons(e),
                test_loss=_float_or_nan(_column(e, "test_loss")),
                metrics=_metrics(e),
            )
            for e in epochs
        )
        stop_reason = row["stop_reason"]
        diverged = next((r for r in records if math.isnan(r.validation_loss)), None)
        if status == "finished" and diverged is not None:
            # Stored before dpplan stopped diverging runs: say what happened.
            status = "diverged"
            stop_reason = (
                f"diverged by epoch {diverged.epoch}: its validation loss is not finite "
                "(recorded by a dpplan that did not yet stop diverging runs)"
            )
        return RunRecord(
            id=row["id"],
            plan=_plan_from_dict(json.loads(row["plan"])),
            status=status,
            schedule=ScheduleRecord(json.loads(row["schedule"])),
            options=OptionsRecord(json.loads(row["options"])),
            device=row["device"],
            seed=row["seed"],
            private=bool(row["private"]),
            versions=json.loads(row["versions"]),
            group_id=row["group_id"],
            error=row["error"],
            stop_reason=stop_reason,
            warnings=tuple(json.loads(row["warnings"])),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            records=records,
            diverged_epoch=_column(row, "diverged_epoch"),
            abandoned_steps=int(_column(row, "abandoned_steps") or 0),
            task=_column(row, "task"),
            task_fingerprint=(
                None
                if _column(row, "task_fingerprint") is None
                else json.loads(row["task_fingerprint"])
            ),
            task_spec=_column(row, "task_spec"),
        )
