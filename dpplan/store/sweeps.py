"""The sweeps repository: a frontier sweep's spec, its trials and their runs.

A sweep's driver holds its lease (host, PID, heartbeat) like a run's process
(:mod:`dpplan.store.liveness`); its trials' runs are ordinary runs in group ``sweep-ID`` (so
group composition counts them), linked to the trial that produced them in ``sweep_trials``.
A trial is ``running`` from its start until its outcome is recorded; a driver that stops or
dies meanwhile leaves it cut off, and the attempt is counted in ``sweep_trials.abandoned``
(:meth:`SweepsRepository.abandon_trials`): it stored no run but trained on the data.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from dpplan.errors import NotFoundError, PlanError, StateConflictError, StoreError
from dpplan.store.database import StoreDatabase, stored_id
from dpplan.store.liveness import LEASE_COLUMNS
from dpplan.store.records import SweepRecord, SweepTrialRecord

__all__ = ["SweepsRepository"]


def _abandon_running(connection: sqlite3.Connection, sweep_id: int) -> int:
    cursor = connection.execute(
        "UPDATE sweep_trials SET status='abandoned', abandoned=abandoned+1 "
        "WHERE sweep_id=? AND status='running'",
        (stored_id(sweep_id),),
    )
    return cursor.rowcount


class SweepsRepository(StoreDatabase):
    """Sweeps and their trials (see the module docstring)."""

    def create_sweep(
        self, *, spec: Mapping[str, Any], plans: Any, draws: Mapping[str, Any] | None = None
    ) -> int:
        """Insert a sweep, leased to this process, and return its id."""
        with self._transaction() as connection:
            cursor = connection.execute(
                f"INSERT INTO sweeps (spec, plans, draws, status, {LEASE_COLUMNS}) "
                "VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)",
                (
                    json.dumps(dict(spec)),
                    json.dumps(plans),
                    None if draws is None else json.dumps(dict(draws)),
                    *self.liveness.new_lease(),
                ),
            )
            return int(cursor.lastrowid)

    def claim_sweep(self, sweep_id: int) -> None:
        """Lease a sweep to this process (to resume it).

        Raises:
            NotFoundError: if there is no such sweep.
            StateConflictError: if its driver still runs.
        """
        live = self.liveness
        pid, started, host, now = live.owner()
        with self._transaction() as connection:
            row = self._sweep_row(connection, sweep_id)
            if row["status"] == "running" and not live.owned(row) and live.owner_alive(row, now):
                raise StateConflictError(
                    "sweep_id",
                    sweep_id,
                    "a sweep that no live driver runs",
                    f"Sweep {sweep_id} is running ({live.owner_text(row, now)}).",
                )
            connection.execute(
                "UPDATE sweeps SET status='running', pid=?, pid_started=?, host=?, "
                "heartbeat_at=?, updated_at=?, error=NULL WHERE id=?",
                (pid, started, host, now, now, stored_id(sweep_id)),
            )
            _abandon_running(connection, sweep_id)  # the trials its dead driver had in flight

    def sweep_heartbeat(self, sweep_id: int) -> None:
        """Renew this process's lease on a running sweep."""
        live = self.liveness
        with self._transaction() as connection:
            connection.execute(
                "UPDATE sweeps SET heartbeat_at=? WHERE id=? AND pid=? AND host=?",
                (live.now(), stored_id(sweep_id), live.pid(), live.host()),
            )

    def start_trial(self, sweep_id: int, key: str) -> None:
        """Mark a trial ``running`` (in flight) before it is sent to train.

        Raises:
            StoreError: if this process does not hold the sweep; nothing is written.
        """
        self._write_trial(sweep_id, key, None, "running", None)

    def abandon_trials(self, sweep_id: int) -> int:
        """Count every ``running`` trial of a sweep as an abandoned attempt (its driver is
        stopping with them in flight) and return how many there were; 0, changing nothing,
        unless this process holds the sweep."""
        with self._transaction() as connection:
            if not self.liveness.owned(self._sweep_row(connection, sweep_id)):
                return 0
            return _abandon_running(connection, sweep_id)

    def record_trial(self, sweep_id: int, key: str, run_id: int | None, error: str | None) -> None:
        """Record a trial's outcome: ``finished`` with its run when ``error`` is None, else
        ``failed`` with the error (and the run it stored, if any).

        Raises:
            StoreError: if this process does not hold the sweep; nothing is written.
        """
        self._write_trial(sweep_id, key, run_id, "finished" if error is None else "failed", error)

    def _write_trial(
        self, sweep_id: int, key: str, run_id: int | None, status: str, error: str | None
    ) -> None:
        now = self.liveness.now()
        with self._transaction() as connection:
            row = self._sweep_row(connection, sweep_id)
            if not self.liveness.owned(row):
                raise StoreError(
                    f"sweep {sweep_id} in {self.path} is not held by this process "
                    f"(pid {self.liveness.pid()}); trial {key} was not recorded."
                )
            connection.execute(
                "INSERT INTO sweep_trials (sweep_id, key, run_id, status, error, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sweep_id, key) DO UPDATE SET "
                "run_id=excluded.run_id, status=excluded.status, error=excluded.error, "
                "updated_at=excluded.updated_at",
                (stored_id(sweep_id), key, run_id, status, error, now),
            )
            connection.execute(
                "UPDATE sweeps SET updated_at=?, heartbeat_at=? WHERE id=?",
                (now, now, stored_id(sweep_id)),
            )

    def finish_sweep(
        self,
        sweep_id: int,
        *,
        status: str,
        tuning: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Set a sweep's final status and tuning cost (only the process holding it).

        Raises:
            PlanError: if ``status`` is not ``finished``, ``failed`` or ``stopped``.
        """
        if status not in ("finished", "failed", "stopped"):
            raise PlanError("status", status, "one of 'finished', 'failed', 'stopped'")
        live = self.liveness
        with self._transaction() as connection:
            connection.execute(
                "UPDATE sweeps SET status=?, tuning=?, error=?, updated_at=? WHERE id=? AND "
                "pid=? AND host=?",
                (
                    status,
                    None if tuning is None else json.dumps(dict(tuning)),
                    error,
                    live.now(),
                    stored_id(sweep_id),
                    live.pid(),
                    live.host(),
                ),
            )

    def get_sweep(self, sweep_id: int) -> SweepRecord:
        """Return a sweep with its trials (a running sweep whose driver is gone is
        ``interrupted``).

        Raises:
            PlanError: if ``sweep_id`` is not a whole number in range.
            NotFoundError: if there is no sweep with this id (field ``sweep_id``).
        """
        with self._connect() as connection:
            row = self._sweep_row(connection, sweep_id)
            trials = connection.execute(
                "SELECT * FROM sweep_trials WHERE sweep_id=? ORDER BY updated_at",
                (stored_id(sweep_id),),
            ).fetchall()
        return self._to_sweep(row, trials)

    def list_sweeps(self) -> list[SweepRecord]:
        """Return every sweep, newest first, with its trials."""
        with self._connect() as connection:
            if not self._has_table(connection, "sweeps"):
                return []  # a read-only store from before sweeps
            rows = connection.execute("SELECT * FROM sweeps ORDER BY id DESC").fetchall()
            trials = connection.execute("SELECT * FROM sweep_trials ORDER BY updated_at").fetchall()
        by_sweep: dict[int, list[sqlite3.Row]] = {}
        for trial in trials:
            by_sweep.setdefault(trial["sweep_id"], []).append(trial)
        return [self._to_sweep(row, by_sweep.get(row["id"], [])) for row in rows]

    def _sweep_row(self, connection: sqlite3.Connection, sweep_id: int) -> sqlite3.Row:
        row = None
        if self._has_table(connection, "sweeps"):
            row = connection.execute(
                "SELECT * FROM sweeps WHERE id=?", (stored_id(sweep_id),)
            ).fetchone()
        else:
            stored_id(sweep_id)
        if row is None:
            raise NotFoundError(
                "sweep_id",
                sweep_id,
                "the id of a stored sweep",
                "List the sweeps and their ids with 'dpplan sweeps'.",
            )
        return row

    def _to_sweep(self, row: sqlite3.Row, trials: list[sqlite3.Row]) -> SweepRecord:
        status = row["status"]
        if status == "running" and not self.liveness.owner_alive(row, self.liveness.now()):
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
                SweepTrialRecord(
                    key=t["key"],
                    run_id=t["run_id"],
                    status=t["status"],
                    error=t["error"],
                    abandoned=t["abandoned"],
                )
                for t in trials
            ),
        )
