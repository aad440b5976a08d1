"""The run store: plans, training runs and their per-epoch records, in SQLite.

One database file, ``runs.sqlite3``, in the dpplan home folder: ``$DPPLAN_HOME`` if set,
else ``$XDG_DATA_HOME/dpplan``, else ``~/.local/share/dpplan``. Checkpoints live next to it
in ``checkpoints/``.

Durability: the database runs in WAL mode and every epoch is written in one transaction,
so a process killed mid-epoch loses at most the epoch in flight. A run whose status is
still ``running`` but whose process is gone is reported as ``interrupted``.

This module imports neither torch nor opacus, so the CLI's ``runs`` command and the planner
app can read runs on any machine.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dpplan.errors import PlanError
from dpplan.plan import TrainingPlan

__all__ = [
    "STATUSES",
    "EpochRecord",
    "RunRecord",
    "RunStore",
    "default_home",
]

#: Run statuses. ``interrupted`` is derived on read for runs whose process died.
STATUSES = ("queued", "running", "finished", "failed", "stopped", "interrupted")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS plans (
    id TEXT PRIMARY KEY,
    plan TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    plan_id TEXT NOT NULL REFERENCES plans(id),
    status TEXT NOT NULL,
    schedule TEXT NOT NULL,
    options TEXT NOT NULL,
    device TEXT NOT NULL,
    seed INTEGER NOT NULL,
    versions TEXT NOT NULL,
    private INTEGER NOT NULL,
    group_id TEXT,
    pid INTEGER,
    host TEXT,
    error TEXT,
    stop_reason TEXT,
    warnings TEXT NOT NULL DEFAULT '[]',
    report TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS epochs (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    epsilon REAL,
    epsilon_rdp REAL,
    epsilon_opacus REAL,
    train_loss REAL,
    validation_loss REAL,
    validation_accuracy REAL,
    test_accuracy REAL,
    lr REAL,
    seconds REAL,
    PRIMARY KEY (run_id, epoch)
);
"""


def default_home() -> Path:
    """Return the dpplan home folder (``$DPPLAN_HOME``, else a per-user data folder)."""
    if os.environ.get("DPPLAN_HOME"):
        return Path(os.environ["DPPLAN_HOME"]).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "dpplan"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class EpochRecord:
    """What one epoch of a run measured.

    Attributes:
        epoch: 1-based epoch number.
        steps: noisy optimizer steps taken so far (counted by the optimizer hook).
        epsilon: dpplan's ε upper bound after these steps (``inf`` for non-private runs).
        epsilon_rdp: dpplan's RDP ε for the same steps (cross-checks Opacus).
        epsilon_opacus: ε from Opacus' own RDP accountant, counted by its step hook.
        train_loss: mean training loss over the epoch's batches.
        validation_loss: loss on the held-out validation split.
        validation_accuracy: accuracy on the validation split, in [0, 1].
        test_accuracy: accuracy on the test set, in [0, 1].
        lr: learning rate at the end of the epoch.
        seconds: wall time of the epoch's training steps.
    """

    epoch: int
    steps: int
    epsilon: float
    epsilon_rdp: float
    epsilon_opacus: float
    train_loss: float
    validation_loss: float
    validation_accuracy: float
    test_accuracy: float
    lr: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """Return the record as a JSON-ready dict (infinite ε as the string ``"inf"``)."""
        return {k: _json_value(v) for k, v in dataclasses.asdict(self).items()}


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RunRecord:
    """A stored run: what was planned, how it was trained, and what each epoch gave."""

    id: int
    plan: TrainingPlan
    status: str
    schedule: dict[str, Any] = dataclasses.field(hash=False)
    options: dict[str, Any] = dataclasses.field(hash=False)
    device: str
    seed: int
    private: bool
    versions: dict[str, str] = dataclasses.field(hash=False)
    group_id: str | None
    error: str | None
    stop_reason: str | None
    warnings: tuple[str, ...]
    created_at: float
    updated_at: float
    records: tuple[EpochRecord, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return the run as a JSON-ready dict (plan, status, per-epoch records, ...)."""
        data = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if field.name not in ("plan", "records")
        }
        data["warnings"] = list(self.warnings)
        data["plan"] = self.plan.to_dict()
        data["records"] = [record.to_dict() for record in self.records]
        return data


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
    return value


def _float_or_inf(value: Any) -> float:
    return math.inf if value is None else float(value)


def _plan_id(plan: TrainingPlan) -> str:
    import hashlib

    text = json.dumps(plan.to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _process_alive(pid: int | None, host: str | None) -> bool:
    if pid is None or host != socket.gethostname():
        return True  # cannot tell from here; assume it runs
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this process still "exists"; look at its state on Linux.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


class RunStore:
    """SQLite store of plans, runs and epoch records.

    Args:
        home: folder holding ``runs.sqlite3`` and ``checkpoints/``; default
            :func:`default_home`.
    """

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        self.home = Path(home).expanduser() if home is not None else default_home()
        self.home.mkdir(parents=True, exist_ok=True)
        self.path = self.home / "runs.sqlite3"
        with self._connect() as connection:
            connection.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA foreign_keys=ON")
            connection.row_factory = sqlite3.Row
            yield connection
        finally:
            connection.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def checkpoint_path(self, run_id: int) -> Path:
        """Return the path of the run's latest checkpoint (may not exist)."""
        return self.home / "checkpoints" / f"run-{int(run_id)}.pt"

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
    ) -> int:
        """Insert a run (and its plan) and return the run id."""
        now = time.time()
        with self._transaction() as connection:
            connection.execute(
                "INSERT OR IGNORE INTO plans (id, plan) VALUES (?, ?)",
                (_plan_id(plan), json.dumps(plan.to_dict())),
            )
            cursor = connection.execute(
                "INSERT INTO runs (plan_id, status, schedule, options, device, seed, versions, "
                "private, group_id, pid, host, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    _plan_id(plan), status, json.dumps(dict(schedule)),
                    json.dumps(dict(options)), device, int(seed), json.dumps(dict(versions)),
                    int(private), group_id, os.getpid(), socket.gethostname(), now, now,
                ),
            )
            return int(cursor.lastrowid)

    def claim(self, run_id: int, *, status: str = "running") -> None:
        """Mark a run as owned by this process (used when starting or resuming it)."""
        with self._transaction() as connection:
            connection.execute(
                "UPDATE runs SET status=?, pid=?, host=?, updated_at=?, error=NULL, "
                "stop_reason=NULL WHERE id=?",
                (status, os.getpid(), socket.gethostname(), time.time(), int(run_id)),
            )

    def truncate_records(self, run_id: int, *, after_epoch: int) -> None:
        """Delete the run's records after ``after_epoch`` (they are redone on resume)."""
        with self._transaction() as connection:
            connection.execute("DELETE FROM epochs WHERE run_id=? AND epoch>?",
                               (int(run_id), int(after_epoch)))

    def record_epoch(self, run_id: int, record: EpochRecord,
                     warnings: tuple[str, ...] = ()) -> None:
        """Write one epoch's record (and the run's warnings) in one transaction."""
        values = dataclasses.asdict(record)
        with self._transaction() as connection:
            connection.execute(
                "INSERT OR REPLACE INTO epochs (run_id, epoch, steps, epsilon, epsilon_rdp, "
                "epsilon_opacus, train_loss, validation_loss, validation_accuracy, "
                "test_accuracy, lr, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    int(run_id), values["epoch"], values["steps"],
                    *(None if isinstance(values[k], float) and math.isinf(values[k])
                      else values[k]
                      for k in ("epsilon", "epsilon_rdp", "epsilon_opacus")),
                    values["train_loss"], values["validation_loss"],
                    values["validation_accuracy"], values["test_accuracy"], values["lr"],
                    values["seconds"],
                ),
            )
            connection.execute(
                "UPDATE runs SET updated_at=?, warnings=? WHERE id=?",
                (time.time(), json.dumps(list(warnings)), int(run_id)),
            )

    def finish_run(self, run_id: int, *, status: str, error: str | None = None,
                   stop_reason: str | None = None) -> None:
        """Set a run's final status (finished, failed or stopped)."""
        if status not in STATUSES:
            raise PlanError("status", status, "one of " + ", ".join(STATUSES))
        with self._transaction() as connection:
            connection.execute(
                "UPDATE runs SET status=?, error=?, stop_reason=?, updated_at=? WHERE id=?",
                (status, error, stop_reason, time.time(), int(run_id)),
            )

    def claim_next_queued(self) -> int | None:
        """Atomically mark the oldest queued run as running by this process; return its id."""
        with self._transaction() as connection:
            row = connection.execute(
                "SELECT id FROM runs WHERE status='queued' ORDER BY id LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            connection.execute(
                "UPDATE runs SET status='running', pid=?, host=?, updated_at=?, error=NULL, "
                "stop_reason=NULL WHERE id=?",
                (os.getpid(), socket.gethostname(), time.time(), row["id"]),
            )
            return int(row["id"])

    def requeue(self, run_id: int) -> None:
        """Queue an interrupted, stopped or failed run again (a worker resumes it).

        Raises:
            PlanError: if the run is queued, running or finished.
        """
        run = self.get_run(run_id)
        if run.status not in ("interrupted", "stopped", "failed"):
            raise PlanError("run_id", run_id, "an interrupted, stopped or failed run",
                            f"Run {run_id} is {run.status}.")
        with self._transaction() as connection:
            connection.execute(
                "UPDATE runs SET status='queued', stop_reason=NULL, error=NULL, updated_at=? "
                "WHERE id=?", (time.time(), int(run_id)))

    def request_stop(self, run_id: int) -> None:
        """Ask a run to stop: a queued run is cancelled, a running one stops within seconds."""
        with self._transaction() as connection:
            connection.execute(
                "UPDATE runs SET status='stopped', stop_reason='cancelled before it started', "
                "updated_at=? WHERE id=? AND status='queued'", (time.time(), int(run_id)))
            connection.execute(
                "UPDATE runs SET stop_reason='stop requested', updated_at=? WHERE id=? "
                "AND status IN ('running', 'queued')",
                (time.time(), int(run_id)),
            )

    def stop_requested(self, run_id: int) -> bool:
        """Return whether :meth:`request_stop` was called for the run."""
        with self._connect() as connection:
            row = connection.execute(
                "SELECT stop_reason FROM runs WHERE id=?", (int(run_id),)
            ).fetchone()
        return row is not None and row["stop_reason"] == "stop requested"

    def save_report(self, run_id: int, report: Mapping[str, Any]) -> None:
        """Store a JSON report with the run."""
        with self._transaction() as connection:
            connection.execute("UPDATE runs SET report=? WHERE id=?",
                               (json.dumps(dict(report)), int(run_id)))

    def load_report(self, run_id: int) -> dict[str, Any] | None:
        """Return the run's stored report, if any."""
        with self._connect() as connection:
            row = connection.execute("SELECT report FROM runs WHERE id=?",
                                     (int(run_id),)).fetchone()
        return json.loads(row["report"]) if row is not None and row["report"] else None

    def get_run(self, run_id: int) -> RunRecord:
        """Return a stored run with its records.

        Raises:
            PlanError: if there is no run with this id (field ``run_id``).
        """
        with self._connect() as connection:
            row = connection.execute(
                "SELECT runs.*, plans.plan FROM runs JOIN plans ON plans.id = runs.plan_id "
                "WHERE runs.id=?", (int(run_id),)
            ).fetchone()
            if row is None:
                raise PlanError("run_id", run_id, "the id of a stored run",
                                "List the runs with 'dpplan runs'.")
            epochs = connection.execute(
                "SELECT * FROM epochs WHERE run_id=? ORDER BY epoch", (int(run_id),)
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
        """Delete a run, its records and its checkpoint.

        Raises:
            PlanError: if there is no such run, or it is still running.
        """
        run = self.get_run(run_id)
        if run.status in ("running", "queued"):
            raise PlanError("run_id", run_id, "a run that is not running or queued",
                            "Stop it first with 'dpplan runs stop ID'.")
        if run.group_id is not None and run.records:
            raise PlanError(
                "run_id", run_id, "a run outside a comparison group",
                f"Run {run_id} belongs to group {run.group_id}; its training touched the data, "
                "and the group's composed ε in reports must keep counting it.")
        with self._transaction() as connection:
            connection.execute("DELETE FROM epochs WHERE run_id=?", (int(run_id),))
            connection.execute("DELETE FROM runs WHERE id=?", (int(run_id),))
        self.checkpoint_path(run_id).unlink(missing_ok=True)

    @staticmethod
    def _to_record(row: sqlite3.Row, epochs: list[sqlite3.Row]) -> RunRecord:
        status = row["status"]
        if status == "running" and not _process_alive(row["pid"], row["host"]):
            status = "interrupted"
        records = tuple(
            EpochRecord(
                epoch=e["epoch"], steps=e["steps"], epsilon=_float_or_inf(e["epsilon"]),
                epsilon_rdp=_float_or_inf(e["epsilon_rdp"]),
                epsilon_opacus=_float_or_inf(e["epsilon_opacus"]),
                train_loss=e["train_loss"], validation_loss=e["validation_loss"],
                validation_accuracy=e["validation_accuracy"], test_accuracy=e["test_accuracy"],
                lr=e["lr"], seconds=e["seconds"],
            )
            for e in epochs
        )
        return RunRecord(
            id=row["id"], plan=TrainingPlan.from_dict(json.loads(row["plan"])), status=status,
            schedule=json.loads(row["schedule"]), options=json.loads(row["options"]),
            device=row["device"], seed=row["seed"], private=bool(row["private"]),
            versions=json.loads(row["versions"]), group_id=row["group_id"], error=row["error"],
            stop_reason=row["stop_reason"], warnings=tuple(json.loads(row["warnings"])),
            created_at=row["created_at"], updated_at=row["updated_at"], records=records,
        )
