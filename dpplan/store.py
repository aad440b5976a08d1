"""The run store: plans, training runs and their per-epoch records, in SQLite.

One database file, ``runs.sqlite3``, in the dpplan home folder: ``$DPPLAN_HOME`` if set,
else ``$XDG_DATA_HOME/dpplan``, else ``~/.local/share/dpplan``. Checkpoints live next to it
in ``checkpoints/``.

Durability: the database runs in WAL mode and every epoch is written in one transaction,
so a process killed mid-epoch loses at most the epoch in flight. A run whose status is
still ``running`` but whose process is gone is reported as ``interrupted``.

Liveness: the process that runs a run holds a lease on it. It stores its host, PID and the
PID's start time (so a reused PID is not mistaken for it), and writes ``heartbeat_at`` every
:data:`HEARTBEAT_SECONDS` from a background thread (and at every stop poll of the training
loop). A ``running`` run is ``interrupted`` when, on this host, its process is gone or its PID
now belongs to another process, or, on another host, its heartbeat is older than
:data:`LEASE_SECONDS`. Only the lease holder can record epochs or set the final status.

Failures of the database file itself (damaged, a folder in its place, read-only for a
command that writes) raise :class:`~dpplan.errors.StoreError` with the path and what to do.
A store whose folder or file is read-only is opened read-only, so listing still works.

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
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dpplan.errors import PlanError, StoreError
from dpplan.plan import TrainingPlan

__all__ = [
    "HEARTBEAT_SECONDS",
    "LEASE_SECONDS",
    "STATUSES",
    "EpochRecord",
    "RunRecord",
    "RunStore",
    "SweepRecord",
    "SweepTrialRecord",
    "default_home",
]

#: Run statuses. ``interrupted`` is derived on read for runs whose process died. ``diverged``:
#: the loss or weights became non-finite (the epochs before are kept, ``stop_reason`` says
#: where); ``not_started``: the first epoch alone would exceed ``target_epsilon``, so nothing
#: was trained.
STATUSES = (
    "queued",
    "running",
    "finished",
    "failed",
    "stopped",
    "interrupted",
    "diverged",
    "not_started",
)
#: A running run on another host whose last heartbeat is older than this is ``interrupted``.
LEASE_SECONDS = 120.0
#: How often the process that runs a run writes its heartbeat.
HEARTBEAT_SECONDS = 15.0

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
    pid_started TEXT,
    host TEXT,
    heartbeat_at REAL,
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
    epsilons TEXT,
    PRIMARY KEY (run_id, epoch)
);
"""
#: Columns added to ``runs`` after the first release; older stores get them on open.
_ADDED_COLUMNS = (("pid_started", "TEXT"), ("heartbeat_at", "REAL"), ("diverged_epoch", "INTEGER"))
#: Columns added to ``epochs`` after the first release (every method's ε, as JSON).
_ADDED_EPOCH_COLUMNS = (("epsilons", "TEXT"),)


def _run_id(value: object) -> int:
    """Return a run id as an int; ``1.7``, ``"1"``, ``True`` and ids beyond SQLite's range are
    refused (``int(1.7)`` once made ``runs delete 1.7`` delete run 1).

    Raises:
        PlanError: field ``run_id``.
    """
    from dpplan import _validate

    return _validate.integer(
        minimum=1,
        maximum=2**63 - 1,
        run_id=value,
        hint="Run ids are whole numbers; list them with 'dpplan runs'.",
    )


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
        steps: noisy steps taken so far (counted by the step engine's accountant).
        epsilon: dpplan's ε upper bound after these steps (``inf`` for non-private runs).
        epsilon_rdp: dpplan's RDP ε for the same steps (cross-checks Opacus).
        epsilon_opacus: ε from Opacus' own RDP accountant, counted by its step hook.
        train_loss: mean training loss over the epoch's batches.
        validation_loss: loss on the held-out validation split.
        validation_accuracy: accuracy on the validation split, in [0, 1].
        test_accuracy: accuracy on the test set, in [0, 1].
        lr: learning rate at the end of the epoch.
        seconds: wall time of the epoch's training steps.
        epsilons: every accounting method's ε after these steps (method -> upper bound;
            ``dpplan.accounting.epoch_epsilons``). Empty for runs recorded before dpplan
            recorded them: then only ``epsilon``, from the run's ``method``, is known.
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
    epsilons: dict[str, float] = dataclasses.field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the record as a JSON-ready dict (infinite ε as the string ``"inf"``)."""
        data = {k: _json_value(v) for k, v in dataclasses.asdict(self).items()}
        data["epsilons"] = {k: _json_value(v) for k, v in self.epsilons.items()}
        return data

    def best_epsilon(self, method: str) -> tuple[float, str]:
        """Return (ε, its method): the smallest upper bound recorded for this epoch.

        Args:
            method: the method of :attr:`epsilon` (the run's ``options["method"]``), used
                when no per-method ε was recorded.
        """
        if not self.epsilons:
            return self.epsilon, method
        from dpplan.accounting.composition import headline_of

        best, value = headline_of(self.epsilons)
        return value, best


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
    diverged_epoch: int | None = None

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

    @property
    def method(self) -> str:
        """The accounting method of each record's ``epsilon`` (the run's option)."""
        return str(self.options.get("method", "prv"))

    @property
    def epochs_spent(self) -> int:
        """Epochs whose steps touched the data: the recorded ones, and for a run that
        diverged, the epoch it diverged in too (not recorded, but its steps were taken)."""
        return max(len(self.records), self.diverged_epoch or 0)

    def best_epsilon(self) -> tuple[float, str] | None:
        """Return (ε, method) after the last epoch that touched the data: the smallest upper
        bound (only the run's own method for runs recorded before every method was), or
        ``None`` without such an epoch. This is the one ε shown for a run. For a run that
        diverged it counts the epoch it diverged in, whose steps were taken."""
        if self.private and self.epochs_spent > len(self.records):
            from dpplan.accounting.composition import epoch_epsilons, headline_of

            # The plan's curve at that epoch, as the trainer recorded it for every epoch.
            method, value = headline_of(epoch_epsilons(self.plan)[self.epochs_spent - 1])
            return value, method
        return self.records[-1].best_epsilon(self.method) if self.records else None


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
    return value


def _float_or_inf(value: Any) -> float:
    return math.inf if value is None else float(value)


def _float_or_nan(value: Any) -> float:
    """A measured value: SQLite stores NaN as NULL (runs that diverged before dpplan
    stopped them recorded NaN losses), which reads back as NaN."""
    return math.nan if value is None else float(value)


def _epsilons(row: sqlite3.Row) -> dict[str, float]:
    text = row["epsilons"] if "epsilons" in row.keys() else None  # noqa: SIM118 - Row
    return {k: float(v) for k, v in json.loads(text).items()} if text else {}


def _plan_id(plan: TrainingPlan) -> str:
    import hashlib

    text = json.dumps(plan.to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _process_start(pid: int) -> str | None:
    """Return the start time of process ``pid`` (``/proc/PID/stat`` field 22), if known."""
    try:
        with open(f"/proc/{int(pid)}/stat") as handle:
            fields = handle.read().rsplit(") ", 1)[-1].split()
    except OSError:
        return None
    return fields[19] if len(fields) > 19 else None  # fields[0] is field 3 (the state)


def _process_alive(pid: int | None, host: str | None, started: str | None = None) -> bool:
    """Return whether ``pid`` on ``host`` still runs (True when it cannot be told from here).

    With ``started`` (a :func:`_process_start` value), a PID that now belongs to a process
    started at another time counts as gone.
    """
    if pid is None or host != socket.gethostname():
        return True  # cannot tell from here; assume it runs
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    # A zombie child of this process still "exists"; look at its state on Linux.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            if handle.read().rsplit(") ", 1)[-1][:1] == "Z":
                return False
    except OSError:
        return True
    if started is not None:
        now_started = _process_start(pid)
        return now_started is None or now_started == started
    return True


def _column(row: sqlite3.Row, name: str) -> Any:
    return row[name] if name in row.keys() else None  # noqa: SIM118 - Row `in` tests values


def _owner_alive(row: sqlite3.Row, now: float) -> bool:
    """Return whether the process holding a ``running`` row's lease still runs."""
    host, pid = row["host"], row["pid"]
    if pid is not None and host == socket.gethostname():
        return _process_alive(pid, host, _column(row, "pid_started"))
    beat = _column(row, "heartbeat_at")
    beat = row["updated_at"] if beat is None else beat
    return now - float(beat) <= LEASE_SECONDS


def _owner_text(row: sqlite3.Row, now: float) -> str:
    beat = _column(row, "heartbeat_at")
    beat = row["updated_at"] if beat is None else beat
    return (
        f"pid {row['pid']} on host {row['host']}, last heartbeat "
        f"{max(0.0, now - float(beat)):.0f} s ago"
    )


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


def _create_schema(connection: sqlite3.Connection) -> None:
    """Create the tables of a new store, or add what an older store lacks."""
    connection.executescript(_SCHEMA)
    present = {row["name"] for row in connection.execute("PRAGMA table_info(runs)")}
    for name, kind in _ADDED_COLUMNS:
        if name not in present:
            connection.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
    present = {row["name"] for row in connection.execute("PRAGMA table_info(epochs)")}
    for name, kind in _ADDED_EPOCH_COLUMNS:
        if name not in present:
            connection.execute(f"ALTER TABLE epochs ADD COLUMN {name} {kind}")
    connection.executescript(_SWEEP_SCHEMA)


#: Heartbeat threads of this process, by (database path, run id).
_LEASES: dict[tuple[str, int], threading.Event] = {}
_LEASES_LOCK = threading.Lock()


class RunStore:
    """SQLite store of plans, runs and epoch records.

    Args:
        home: folder holding ``runs.sqlite3`` and ``checkpoints/``; default
            :func:`default_home`.

    Attributes:
        read_only: True when the folder or database file is not writable; the store is then
            opened read-only (listing and showing work, writing raises :class:`StoreError`).

    A store that does not exist is created by its first write (folder and file); reading it
    (listing, showing, a failed lookup) finds it empty and creates nothing.

    Raises:
        StoreError: if ``home`` is a file, ``runs.sqlite3`` is a folder or is damaged or not
            a database, or the store does not exist in a read-only folder (a write to a
            store that does not exist and cannot be created raises it too).
    """

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        self.home = Path(home).expanduser() if home is not None else default_home()
        self.path = self.home / "runs.sqlite3"
        if self.home.exists() and not self.home.is_dir():
            raise StoreError(
                f"the dpplan home {self.home} is a file, not a folder. Set DPPLAN_HOME to a "
                "folder (it is created if missing), or move the file away."
            )
        if self.path.exists() and not self.path.is_file():
            raise StoreError(
                f"the run store {self.path} is not a file (a folder is in its place). Move "
                "it away, or set DPPLAN_HOME to another folder."
            )
        # A store that does not exist yet is created by the first write, never by a read:
        # listing, showing and failed lookups leave no folder or file behind.
        self.read_only = self.home.exists() and (
            not _writable(self.home) or (self.path.exists() and not _writable(self.path))
        )
        if self.read_only and not self.path.exists():
            raise StoreError(
                f"there is no run store at {self.path}, and {self.home} is read-only so "
                "none can be created. Set DPPLAN_HOME to a folder you can write to."
            )
        if self.path.exists():
            with self._connect() as connection:
                connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
                if not self.read_only:
                    _create_schema(connection)

    def _create(self) -> None:
        """Create the home folder and the database (the first write of a new store)."""
        if self.path.exists():
            return
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the dpplan home {self.home}: {exc}. Set DPPLAN_HOME to "
                "a folder you can write to."
            ) from exc
        if not _writable(self.home):
            self.read_only = True
            raise StoreError(
                f"there is no run store at {self.path}, and {self.home} is read-only so "
                "none can be created. Set DPPLAN_HOME to a folder you can write to."
            )
        with self._connect(create=True) as connection:
            _create_schema(connection)

    def _error(self, exc: sqlite3.Error) -> StoreError:
        text = str(exc)
        if "readonly" in text or "read-only" in text:
            return StoreError(
                f"the run store {self.path} is read-only ({text}); this command writes to "
                f"it. Make {self.home} and the file writable, or set DPPLAN_HOME to a "
                "folder you can write to."
            )
        if "locked" in text or "busy" in text:
            return StoreError(
                f"the run store {self.path} is busy ({text}): another dpplan process holds "
                "it. Try again in a moment."
            )
        return StoreError(
            f"the run store {self.path} cannot be used: {type(exc).__name__}: {text}. It is "
            f"damaged or is not a dpplan run store. Move it aside (e.g. 'mv {self.path} "
            f"{self.path}.damaged') and dpplan starts a new, empty store; nothing else is "
            "changed."
        )

    @contextmanager
    def _connect(self, *, create: bool = False) -> Iterator[sqlite3.Connection]:
        if not create and not self.path.exists():
            # Reading a store that does not exist: an empty one, in memory (nothing created).
            connection = sqlite3.connect(":memory:", isolation_level=None)
            try:
                connection.row_factory = sqlite3.Row
                connection.executescript(_SCHEMA + _SWEEP_SCHEMA)
                yield connection
            finally:
                connection.close()
            return
        uri = f"{self.path.resolve().as_uri()}?mode={'ro' if self.read_only else 'rwc'}"
        if self.read_only and not _writable(self.home) and not Path(f"{self.path}-wal").exists():
            # SQLite cannot create the WAL index in a read-only folder; with no WAL file
            # nobody can change the database there, so it is read as immutable.
            uri += "&immutable=1"
        try:
            connection = sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        try:
            connection.row_factory = sqlite3.Row
            if not self.read_only:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA foreign_keys=ON")
            yield connection
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        finally:
            connection.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if self.read_only:
            raise StoreError(
                f"the run store {self.path} is read-only; this command writes to it. Make "
                f"{self.home} and the file writable, or set DPPLAN_HOME to a folder you can "
                "write to."
            )
        self._create()
        with self._connect() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    # -- the lease of the process that runs a run ------------------------------------------

    def _owner_values(self) -> tuple[int, str | None, str, float]:
        return os.getpid(), _process_start(os.getpid()), socket.gethostname(), time.time()

    def _start_heartbeat(self, run_id: int) -> None:
        key = (str(self.path), _run_id(run_id))
        with _LEASES_LOCK:
            current = _LEASES.get(key)
            if current is not None and not current.is_set():
                return
            stop = _LEASES[key] = threading.Event()
        threading.Thread(
            target=self._beat,
            args=(_run_id(run_id), stop),
            daemon=True,
            name=f"dpplan-heartbeat-{run_id}",
        ).start()

    def _stop_heartbeat(self, run_id: int) -> None:
        with _LEASES_LOCK:
            stop = _LEASES.pop((str(self.path), _run_id(run_id)), None)
        if stop is not None:
            stop.set()

    def _beat(self, run_id: int, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                if not self.heartbeat(run_id):
                    break
            except StoreError:
                if not self.path.exists():
                    break
        stop.set()

    def heartbeat(self, run_id: int) -> bool:
        """Renew this process's lease on a running run; return False if it holds none.

        Raises:
            StoreError: if the database cannot be written.
        """
        with self._transaction() as connection:
            cursor = connection.execute(
                "UPDATE runs SET heartbeat_at=? WHERE id=? AND status='running' AND pid=? "
                "AND host=?",
                (time.time(), _run_id(run_id), os.getpid(), socket.gethostname()),
            )
            return cursor.rowcount == 1

    @staticmethod
    def _owned(row: sqlite3.Row | None) -> bool:
        return row is not None and row["pid"] == os.getpid() and row["host"] == socket.gethostname()

    def checkpoint_path(self, run_id: int) -> Path:
        """Return the path of the run's latest checkpoint (may not exist)."""
        return self.home / "checkpoints" / f"run-{_run_id(run_id)}.pt"

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
        """Insert a run (and its plan) and return the run id.

        A ``running`` run is leased to this process (see the module docstring).
        """
        pid, started, host, now = self._owner_values()
        with self._transaction() as connection:
            connection.execute(
                "INSERT OR IGNORE INTO plans (id, plan) VALUES (?, ?)",
                (_plan_id(plan), json.dumps(plan.to_dict())),
            )
            cursor = connection.execute(
                "INSERT INTO runs (plan_id, status, schedule, options, device, seed, versions, "
                "private, group_id, pid, pid_started, host, heartbeat_at, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    _plan_id(plan),
                    status,
                    json.dumps(dict(schedule)),
                    json.dumps(dict(options)),
                    device,
                    int(seed),
                    json.dumps(dict(versions)),
                    int(private),
                    group_id,
                    pid,
                    started,
                    host,
                    now,
                    now,
                    now,
                ),
            )
            run_id = int(cursor.lastrowid)
        if status == "running":
            self._start_heartbeat(run_id)
        return run_id

    def claim(self, run_id: int, *, status: str = "running") -> None:
        """Lease a run to this process (used when resuming it); takes over a stale lease.

        Raises:
            PlanError: if there is no such run, or its status is ``running`` and the process
                holding it still runs (or, on another host, its heartbeat is fresh).
        """
        pid, started, host, now = self._owner_values()
        with self._transaction() as connection:
            row = connection.execute("SELECT * FROM runs WHERE id=?", (_run_id(run_id),)).fetchone()
            if row is None:
                raise PlanError(
                    "run_id", run_id, "the id of a stored run", "List the runs with 'dpplan runs'."
                )
            if row["status"] == "running" and not self._owned(row) and _owner_alive(row, now):
                raise PlanError(
                    "run_id",
                    run_id,
                    "a run that no live process is running",
                    f"Run {run_id} is running ({_owner_text(row, now)}). Stop it with "
                    f"'dpplan runs stop {run_id}' first.",
                )
            connection.execute(
                "UPDATE runs SET status=?, pid=?, pid_started=?, host=?, heartbeat_at=?, "
                "updated_at=?, error=NULL, stop_reason=NULL WHERE id=?",
                (status, pid, started, host, now, now, _run_id(run_id)),
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
            row = connection.execute("SELECT * FROM runs WHERE id=?", (_run_id(run_id),)).fetchone()
            if not self._owned(row):
                raise StoreError(
                    f"run {run_id} in {self.path} is no longer held by this process (pid "
                    f"{os.getpid()}): it was deleted or another process took it over; epoch "
                    f"{record.epoch} was not recorded."
                )
            connection.execute(
                "INSERT OR REPLACE INTO epochs (run_id, epoch, steps, epsilon, epsilon_rdp, "
                "epsilon_opacus, train_loss, validation_loss, validation_accuracy, "
                "test_accuracy, lr, seconds, epsilons) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    _run_id(run_id),
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
                    json.dumps({k: _json_value(float(v)) for k, v in record.epsilons.items()}),
                ),
            )
            connection.execute(
                "UPDATE runs SET updated_at=?, warnings=? WHERE id=?",
                (time.time(), json.dumps(list(warnings)), _run_id(run_id)),
            )

    def update_options(self, run_id: int, changes: Mapping[str, Any]) -> None:
        """Merge ``changes`` into a run's stored options (what a run found out about itself,
        such as where its data came from).

        Raises:
            StoreError: if the store is read-only.
        """
        with self._transaction() as connection:
            row = connection.execute(
                "SELECT options FROM runs WHERE id=?", (_run_id(run_id),)
            ).fetchone()
            if row is None:
                return
            options = {**json.loads(row["options"]), **dict(changes)}
            connection.execute(
                "UPDATE runs SET options=? WHERE id=?", (json.dumps(options), _run_id(run_id))
            )

    def finish_run(
        self,
        run_id: int,
        *,
        status: str,
        error: str | None = None,
        stop_reason: str | None = None,
        diverged_epoch: int | None = None,
    ) -> None:
        """Set a run's final status (finished, failed, stopped, diverged, not_started) and end
        this process's lease. ``diverged_epoch``: the (unrecorded) epoch a diverged run
        diverged in, whose steps count against privacy.

        Only the process holding the run changes it; for a run another process has taken
        over, this does nothing.
        """
        if status not in STATUSES:
            raise PlanError("status", status, "one of " + ", ".join(STATUSES))
        self._stop_heartbeat(run_id)
        with self._transaction() as connection:
            connection.execute(
                "UPDATE runs SET status=?, error=?, stop_reason=?, diverged_epoch=?, "
                "updated_at=? WHERE id=? AND pid=? AND host=?",
                (
                    status,
                    error,
                    stop_reason,
                    diverged_epoch,
                    time.time(),
                    _run_id(run_id),
                    os.getpid(),
                    socket.gethostname(),
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
            pid, started, host, now = self._owner_values()
            connection.execute(
                "UPDATE runs SET status='running', pid=?, pid_started=?, host=?, heartbeat_at=?, "
                "updated_at=?, error=NULL, stop_reason=NULL WHERE id=?",
                (pid, started, host, now, now, row["id"]),
            )
        self._start_heartbeat(row["id"])
        return int(row["id"])

    def requeue(self, run_id: int) -> None:
        """Queue an interrupted, stopped or failed run again (a worker resumes it).

        Raises:
            PlanError: if the run is queued, running or finished.
        """
        run = self.get_run(run_id)
        if run.status not in ("interrupted", "stopped", "failed"):
            raise PlanError(
                "run_id",
                run_id,
                "an interrupted, stopped or failed run",
                f"Run {run_id} is {run.status}.",
            )
        with self._transaction() as connection:
            connection.execute(
                "UPDATE runs SET status='queued', stop_reason=NULL, error=NULL, updated_at=? "
                "WHERE id=?",
                (time.time(), _run_id(run_id)),
            )

    def request_stop(self, run_id: int, *, force: bool = False) -> str:
        """Stop a run and return what was done, in words.

        A queued run is cancelled. A running run is asked to stop and stops within seconds.
        A run whose process on this host is gone is marked ``stopped``. A run on another host
        whose heartbeat is stale is only asked to stop, since its process may still run;
        ``force=True`` marks any queued or running run ``stopped`` at once (if its process
        still runs, it stops at its next check and records nothing more). Records and the
        checkpoint are kept either way, so the run can be resumed.

        Raises:
            PlanError: if there is no such run.
        """
        now = time.time()
        with self._transaction() as connection:
            row = connection.execute("SELECT * FROM runs WHERE id=?", (_run_id(run_id),)).fetchone()
            if row is None:
                raise PlanError(
                    "run_id", run_id, "the id of a stored run", "List the runs with 'dpplan runs'."
                )
            status = row["status"]
            if status == "queued":
                connection.execute(
                    "UPDATE runs SET status='stopped', stop_reason='cancelled before it "
                    "started', updated_at=? WHERE id=?",
                    (now, _run_id(run_id)),
                )
                return f"cancelled queued run {run_id}"
            if status != "running":
                return f"run {run_id} is already {status}; nothing to stop"
            owner = _owner_text(row, now)
            alive = _owner_alive(row, now)
            same_host = row["host"] == socket.gethostname()
            if force or (not alive and same_host):
                reason = (
                    "stop forced with 'dpplan runs stop ID --force'"
                    if force
                    else "stopped after its process ended"
                )
                connection.execute(
                    "UPDATE runs SET status='stopped', stop_reason=?, updated_at=? WHERE id=?",
                    (reason, now, _run_id(run_id)),
                )
                was = "running" if alive else "interrupted"
                return (
                    f"marked run {run_id} as stopped (it showed as {was}: {owner}); its "
                    f"records and checkpoint are kept; 'dpplan train --resume {run_id}' "
                    "continues it"
                    + (
                        ". If that process still runs, it stops at its next check"
                        if force and alive
                        else ""
                    )
                )
            connection.execute(
                "UPDATE runs SET stop_reason='stop requested', updated_at=? WHERE id=?",
                (now, _run_id(run_id)),
            )
            if not alive:
                return (
                    f"asked run {run_id} to stop, but it has not sent a heartbeat for more "
                    f"than {LEASE_SECONDS:.0f} s ({owner}). If its process is gone, "
                    f"mark it stopped with 'dpplan runs stop {run_id} --force'"
                )
            return f"asked run {run_id} to stop; it stops within seconds"

    def stop_requested(self, run_id: int) -> bool:
        """Return whether the run should stop, and renew this process's lease on it.

        True when :meth:`request_stop` was called for the run, or when this process no
        longer holds it (stopped with ``force``, taken over by another process, deleted).
        """
        if self.read_only:
            return True
        with self._transaction() as connection:
            row = connection.execute("SELECT * FROM runs WHERE id=?", (_run_id(run_id),)).fetchone()
            if row is None or row["stop_reason"] == "stop requested":
                return True
            if row["status"] != "running" or not self._owned(row):
                return True
            connection.execute(
                "UPDATE runs SET heartbeat_at=? WHERE id=?", (time.time(), _run_id(run_id))
            )
        return False

    def save_report(self, run_id: int, report: Mapping[str, Any]) -> None:
        """Store a JSON report with the run."""
        with self._transaction() as connection:
            connection.execute(
                "UPDATE runs SET report=? WHERE id=?", (json.dumps(dict(report)), _run_id(run_id))
            )

    def load_report(self, run_id: int) -> dict[str, Any] | None:
        """Return the run's stored report, if any."""
        with self._connect() as connection:
            row = connection.execute(
                "SELECT report FROM runs WHERE id=?", (_run_id(run_id),)
            ).fetchone()
        return json.loads(row["report"]) if row is not None and row["report"] else None

    def get_run(self, run_id: int) -> RunRecord:
        """Return a stored run with its records.

        Raises:
            PlanError: if there is no run with this id (field ``run_id``).
        """
        with self._connect() as connection:
            row = connection.execute(
                "SELECT runs.*, plans.plan FROM runs JOIN plans ON plans.id = runs.plan_id "
                "WHERE runs.id=?",
                (_run_id(run_id),),
            ).fetchone()
            if row is None:
                raise PlanError(
                    "run_id", run_id, "the id of a stored run", "List the runs with 'dpplan runs'."
                )
            epochs = connection.execute(
                "SELECT * FROM epochs WHERE run_id=? ORDER BY epoch", (_run_id(run_id),)
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
            StoreError: if the store is read-only, or the checkpoint cannot be removed.
        """
        run = self.get_run(run_id)
        if run.status in ("running", "queued"):
            raise PlanError(
                "run_id",
                run_id,
                "a run that is not running or queued",
                "Stop it first with 'dpplan runs stop ID'.",
            )
        if run.group_id is not None and run.records:
            raise PlanError(
                "run_id",
                run_id,
                "a run outside a comparison group",
                f"Run {run_id} belongs to group {run.group_id}; its training touched the data, "
                "and the group's composed ε in reports must keep counting it.",
            )
        with self._transaction() as connection:
            connection.execute("DELETE FROM epochs WHERE run_id=?", (_run_id(run_id),))
            connection.execute("DELETE FROM runs WHERE id=?", (_run_id(run_id),))
        path = self.checkpoint_path(run_id)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(
                f"run {run_id} was deleted, but its checkpoint {path} could not "
                f"be removed ({exc}); remove it by hand."
            ) from exc

    # -- sweeps (dpplan.sweep): the frontier sweep's spec, its trials and their runs --------
    # A sweep's driver holds its lease (host, PID, heartbeat) like a run's process; its trials'
    # runs are ordinary runs in group ``sweep-ID`` (so group composition counts them), linked
    # to the trial that produced them in ``sweep_trials``.

    def create_sweep(
        self, *, spec: Mapping[str, Any], plans: Any, draws: Mapping[str, Any] | None = None
    ) -> int:
        """Insert a sweep, leased to this process, and return its id."""
        pid, started, host, now = self._owner_values()
        with self._transaction() as connection:
            cursor = connection.execute(
                "INSERT INTO sweeps (spec, plans, draws, status, pid, pid_started, host, "
                "heartbeat_at, created_at, updated_at) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, "
                "?, ?)",
                (
                    json.dumps(dict(spec)),
                    json.dumps(plans),
                    None if draws is None else json.dumps(dict(draws)),
                    pid,
                    started,
                    host,
                    now,
                    now,
                    now,
                ),
            )
            return int(cursor.lastrowid)

    def claim_sweep(self, sweep_id: int) -> None:
        """Lease a sweep to this process (to resume it).

        Raises:
            PlanError: if there is no such sweep, or its driver still runs.
        """
        pid, started, host, now = self._owner_values()
        with self._transaction() as connection:
            row = self._sweep_row(connection, sweep_id)
            if row["status"] == "running" and not self._owned(row) and _owner_alive(row, now):
                raise PlanError(
                    "sweep_id",
                    sweep_id,
                    "a sweep that no live driver runs",
                    f"Sweep {sweep_id} is running ({_owner_text(row, now)}).",
                )
            connection.execute(
                "UPDATE sweeps SET status='running', pid=?, pid_started=?, host=?, "
                "heartbeat_at=?, updated_at=?, error=NULL WHERE id=?",
                (pid, started, host, now, now, _run_id(sweep_id)),
            )

    def sweep_heartbeat(self, sweep_id: int) -> None:
        """Renew this process's lease on a running sweep."""
        with self._transaction() as connection:
            connection.execute(
                "UPDATE sweeps SET heartbeat_at=? WHERE id=? AND pid=? AND host=?",
                (time.time(), _run_id(sweep_id), os.getpid(), socket.gethostname()),
            )

    def record_trial(
        self,
        sweep_id: int,
        key: str,
        *,
        status: str,
        run_id: int | None = None,
        error: str | None = None,
    ) -> None:
        """Record a trial's outcome (``finished`` with its run, or ``failed`` with the error).

        Raises:
            StoreError: if this process does not hold the sweep; nothing is written.
        """
        with self._transaction() as connection:
            row = self._sweep_row(connection, sweep_id)
            if not self._owned(row):
                raise StoreError(
                    f"sweep {sweep_id} in {self.path} is not held by this process "
                    f"(pid {os.getpid()}); trial {key} was not recorded."
                )
            connection.execute(
                "INSERT OR REPLACE INTO sweep_trials (sweep_id, key, run_id, status, error, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (_run_id(sweep_id), key, run_id, status, error, time.time()),
            )
            connection.execute(
                "UPDATE sweeps SET updated_at=?, heartbeat_at=? WHERE id=?",
                (time.time(), time.time(), _run_id(sweep_id)),
            )

    def finish_sweep(
        self,
        sweep_id: int,
        *,
        status: str,
        tuning: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Set a sweep's final status and tuning cost (only the process holding it)."""
        if status not in ("finished", "failed", "stopped"):
            raise PlanError("status", status, "one of 'finished', 'failed', 'stopped'")
        with self._transaction() as connection:
            connection.execute(
                "UPDATE sweeps SET status=?, tuning=?, error=?, updated_at=? WHERE id=? AND "
                "pid=? AND host=?",
                (
                    status,
                    None if tuning is None else json.dumps(dict(tuning)),
                    error,
                    time.time(),
                    _run_id(sweep_id),
                    os.getpid(),
                    socket.gethostname(),
                ),
            )

    def get_sweep(self, sweep_id: int) -> SweepRecord:
        """Return a sweep with its trials (a running sweep whose driver is gone is
        ``interrupted``).

        Raises:
            PlanError: if there is no sweep with this id (field ``sweep_id``).
        """
        with self._connect() as connection:
            row = self._sweep_row(connection, sweep_id)
            trials = connection.execute(
                "SELECT * FROM sweep_trials WHERE sweep_id=? ORDER BY updated_at",
                (_run_id(sweep_id),),
            ).fetchall()
        return _to_sweep(row, trials)

    def list_sweeps(self) -> list[SweepRecord]:
        """Return every sweep, newest first, with its trials."""
        with self._connect() as connection:
            if (
                connection.execute(
                    "SELECT name FROM sqlite_master WHERE type='table' AND name='sweeps'"
                ).fetchone()
                is None
            ):
                return []  # a read-only store from before sweeps
            rows = connection.execute("SELECT * FROM sweeps ORDER BY id DESC").fetchall()
            trials = connection.execute("SELECT * FROM sweep_trials ORDER BY updated_at").fetchall()
        by_sweep: dict[int, list[sqlite3.Row]] = {}
        for trial in trials:
            by_sweep.setdefault(trial["sweep_id"], []).append(trial)
        return [_to_sweep(row, by_sweep.get(row["id"], [])) for row in rows]

    @staticmethod
    def _sweep_row(connection: sqlite3.Connection, sweep_id: int) -> sqlite3.Row:
        row = connection.execute("SELECT * FROM sweeps WHERE id=?", (_run_id(sweep_id),)).fetchone()
        if row is None:
            raise PlanError(
                "sweep_id",
                sweep_id,
                "the id of a stored sweep",
                "List the sweeps and their ids with 'dpplan sweeps'.",
            )
        return row

    @staticmethod
    def _to_record(row: sqlite3.Row, epochs: list[sqlite3.Row]) -> RunRecord:
        status = row["status"]
        if status == "running" and not _owner_alive(row, time.time()):
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
            plan=TrainingPlan.from_dict(json.loads(row["plan"])),
            status=status,
            schedule=json.loads(row["schedule"]),
            options=json.loads(row["options"]),
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
        )


# -- sweeps (dpplan.sweep) -------------------------------------------------------------------

_SWEEP_SCHEMA = """
CREATE TABLE IF NOT EXISTS sweeps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    spec TEXT NOT NULL,
    plans TEXT NOT NULL,
    draws TEXT,
    status TEXT NOT NULL,
    tuning TEXT,
    error TEXT,
    pid INTEGER,
    pid_started TEXT,
    host TEXT,
    heartbeat_at REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sweep_trials (
    sweep_id INTEGER NOT NULL REFERENCES sweeps(id),
    key TEXT NOT NULL,
    run_id INTEGER REFERENCES runs(id),
    status TEXT NOT NULL,
    error TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (sweep_id, key)
);
"""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class SweepTrialRecord:
    """A trial of a sweep with an outcome: ``finished`` (its run) or ``failed``."""

    key: str
    run_id: int | None
    status: str
    error: str | None


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class SweepRecord:
    """A stored sweep (see :mod:`dpplan.sweep`): its spec, solved plans, random draws,
    status (``running``, ``finished``, ``failed``, ``stopped`` or ``interrupted``), tuning
    cost and the trials with an outcome. Its runs are the runs of group :attr:`group_id`."""

    id: int
    spec: dict[str, Any] = dataclasses.field(hash=False)
    plans: list[dict[str, Any]] = dataclasses.field(hash=False)
    draws: dict[str, Any] | None = dataclasses.field(hash=False)
    status: str
    tuning: dict[str, Any] | None = dataclasses.field(hash=False)
    error: str | None
    created_at: float
    updated_at: float
    trials: tuple[SweepTrialRecord, ...]

    @property
    def group_id(self) -> str:
        """The group id of the sweep's runs."""
        return f"sweep-{self.id}"


def _to_sweep(row: sqlite3.Row, trials: list[sqlite3.Row]) -> SweepRecord:
    status = row["status"]
    if status == "running" and not _owner_alive(row, time.time()):
        status = "interrupted"
    return SweepRecord(
        id=row["id"],
        spec=json.loads(row["spec"]),
        plans=json.loads(row["plans"]),
        draws=json.loads(row["draws"]) if row["draws"] else None,
        status=status,
        tuning=json.loads(row["tuning"]) if row["tuning"] else None,
        error=row["error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        trials=tuple(
            SweepTrialRecord(key=t["key"], run_id=t["run_id"], status=t["status"], error=t["error"])
            for t in trials
        ),
    )
