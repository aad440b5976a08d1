"""The run store's schema and its versioned migrations.

A store records its schema version in the one-row table ``schema_version``. Opening a
writable store runs, in one transaction, every migration newer than its version; a store
from before versions (no such table) is version 0. Each migration is written so that it
also applies to the unversioned stores dpplan wrote while the schema grew (it creates a
table or adds a column only if it is missing). A store written by a newer dpplan is refused.

Version history:

1. plans, runs and epochs (with the lease columns ``pid_started``, ``heartbeat_at`` and the
   per-method ``epochs.epsilons`` that earlier releases added on open);
2. ``runs.diverged_epoch``;
3. the sweep tables ``sweeps`` and ``sweep_trials``;
4. what a run trained: ``runs.task`` (the task's name), ``runs.task_fingerprint`` (JSON:
   sizes, shapes and a SHA-256 of the training data) and ``runs.task_spec`` (the
   ``module:function`` it was loaded from); per epoch ``epochs.test_loss`` and
   ``epochs.metrics`` (JSON: a task's own metric). Runs stored before have NULLs there;
5. ``runs.abandoned_steps``: noisy steps of epochs abandoned mid-way (a stop, a crash), not
   recorded but counted against privacy (cumulative over stops and resumes; 0 before);
6. ``sweep_trials.abandoned``: attempts of a trial cut off by a stopped or killed sweep
   driver (they store no run, but they trained on the data; 0 before). A trial in flight has
   status ``running``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from dpplan.errors import StoreError

__all__ = ["SCHEMA_VERSION", "create_all", "migrate", "schema_version"]

_RUNS = """
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
)
"""

_SWEEPS = """
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
)
"""


def _statements(connection: sqlite3.Connection, script: str) -> None:
    # One statement at a time: ``executescript`` would commit the migration's transaction.
    for statement in script.split(";"):
        if statement.strip():
            connection.execute(statement)


def _add_columns(connection: sqlite3.Connection, table: str, columns: tuple[str, ...]) -> None:
    present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
    for column in columns:
        if column.split()[0] not in present:
            connection.execute(f"ALTER TABLE {table} ADD COLUMN {column}")


def _v1_runs(connection: sqlite3.Connection) -> None:
    _statements(connection, _RUNS)
    _add_columns(connection, "runs", ("pid_started TEXT", "heartbeat_at REAL"))
    _add_columns(connection, "epochs", ("epsilons TEXT",))


def _v2_diverged_epoch(connection: sqlite3.Connection) -> None:
    _add_columns(connection, "runs", ("diverged_epoch INTEGER",))


def _v3_sweeps(connection: sqlite3.Connection) -> None:
    _statements(connection, _SWEEPS)


def _v4_tasks(connection: sqlite3.Connection) -> None:
    _add_columns(connection, "runs", ("task TEXT", "task_fingerprint TEXT", "task_spec TEXT"))
    _add_columns(connection, "epochs", ("test_loss REAL", "metrics TEXT"))


def _v5_abandoned_steps(connection: sqlite3.Connection) -> None:
    _add_columns(connection, "runs", ("abandoned_steps INTEGER NOT NULL DEFAULT 0",))


def _v6_trial_attempts(connection: sqlite3.Connection) -> None:
    _add_columns(connection, "sweep_trials", ("abandoned INTEGER NOT NULL DEFAULT 0",))


#: The migrations, in order: migration ``i`` (1-based) brings a store to version ``i``.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _v1_runs,
    _v2_diverged_epoch,
    _v3_sweeps,
    _v4_tasks,
    _v5_abandoned_steps,
    _v6_trial_attempts,
)
#: The schema version this dpplan writes.
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(connection: sqlite3.Connection) -> int:
    """Return a store's schema version (0 for a store from before versions, or an empty one)."""
    table = connection.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_version'"
    ).fetchone()
    if table is None:
        return 0
    row = connection.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def _check_not_newer(version: int, where: str) -> None:
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the run store {where} has schema version {version}, newer than this dpplan's "
            f"{SCHEMA_VERSION}: it was written by a newer dpplan. Upgrade dpplan, or set "
            "DPPLAN_HOME to another folder."
        )


def migrate(connection: sqlite3.Connection, *, where: str = "") -> int:
    """Bring a store to :data:`SCHEMA_VERSION` in one transaction; return the version it had.

    The connection must be in autocommit mode (``isolation_level=None``), outside a
    transaction.

    Raises:
        StoreError: if the store was written by a newer dpplan.
    """
    version = schema_version(connection)
    _check_not_newer(version, where)
    if version == SCHEMA_VERSION:
        return version
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = schema_version(connection)  # another process may have migrated meanwhile
        _check_not_newer(version, where)
        for number in range(version + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[number - 1](connection)
        connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        connection.execute("DELETE FROM schema_version")
        connection.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
    return version


def create_all(connection: sqlite3.Connection) -> None:
    """Create every table of the current schema (an empty store, e.g. in memory)."""
    migrate(connection)
