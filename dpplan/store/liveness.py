"""Process liveness and leases: who holds a running run or sweep, and whether it still runs.

The process that runs a run (or drives a sweep) holds a lease on it: it stores its host, PID
and the PID's start time (so a reused PID is not mistaken for it), and writes ``heartbeat_at``
every :data:`HEARTBEAT_SECONDS` from a background thread. A lease is live when, on this host,
its process still runs (and its PID was not reused), or, on another host, its heartbeat is at
most :data:`LEASE_SECONDS` old.

:class:`Liveness` bundles what the store asks the operating system (this process's PID and
host, another process's state in ``/proc``, the clock) and the heartbeat threads, so tests can
inject a fake one (``RunStore(home, liveness=...)``).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = [
    "HEARTBEAT_SECONDS",
    "LEASE_SECONDS",
    "Heartbeats",
    "Liveness",
    "process_alive",
    "process_start",
]

#: A running run on another host whose last heartbeat is older than this is ``interrupted``.
LEASE_SECONDS = 120.0
#: The lease and time columns of a new ``runs`` or ``sweeps`` row (:meth:`Liveness.new_lease`).
LEASE_COLUMNS = "pid, pid_started, host, heartbeat_at, created_at, updated_at"
#: How often the process that runs a run writes its heartbeat.
HEARTBEAT_SECONDS = 15.0


def process_start(pid: int) -> str | None:
    """Return the start time of process ``pid`` (``/proc/PID/stat`` field 22), if known."""
    try:
        with open(f"/proc/{int(pid)}/stat") as handle:
            fields = handle.read().rsplit(") ", 1)[-1].split()
    except OSError:
        return None
    return fields[19] if len(fields) > 19 else None  # fields[0] is field 3 (the state)


def process_alive(pid: int | None, host: str | None, started: str | None = None) -> bool:
    """Return whether ``pid`` on ``host`` still runs (True when it cannot be told from here).

    With ``started`` (a :func:`process_start` value), a PID that now belongs to a process
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
        now_started = process_start(pid)
        return now_started is None or now_started == started
    return True


def _column(row: sqlite3.Row, name: str) -> Any:
    return row[name] if name in row.keys() else None  # noqa: SIM118 - Row `in` tests values


class Heartbeats:
    """Heartbeat threads of this process, one per (database path, lease key).

    Each thread calls ``beat()`` every ``interval`` seconds until it returns False or the
    lease is ended with :meth:`stop`.
    """

    def __init__(self, interval: float = HEARTBEAT_SECONDS) -> None:
        self.interval = interval
        self._stops: dict[tuple[str, int], threading.Event] = {}
        self._lock = threading.Lock()

    def start(self, key: tuple[str, int], beat: Callable[[], bool], *, name: str) -> None:
        """Start a thread for ``key`` unless one already runs."""
        with self._lock:
            current = self._stops.get(key)
            if current is not None and not current.is_set():
                return
            stop = self._stops[key] = threading.Event()
        threading.Thread(target=self._run, args=(beat, stop), daemon=True, name=name).start()

    def stop(self, key: tuple[str, int]) -> None:
        """End the thread for ``key``, if any."""
        with self._lock:
            stop = self._stops.pop(key, None)
        if stop is not None:
            stop.set()

    def _run(self, beat: Callable[[], bool], stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            if not beat():
                break
        stop.set()


#: The heartbeat threads of this process (shared by every store it opens).
HEARTBEATS = Heartbeats()


class Liveness:
    """What the store asks about processes and time; subclass or replace it in tests.

    Args:
        heartbeats: the heartbeat threads to use; default the process-wide ones.
        lease_seconds: how old another host's heartbeat may be for its lease to count.
    """

    def __init__(
        self, *, heartbeats: Heartbeats | None = None, lease_seconds: float = LEASE_SECONDS
    ) -> None:
        self.heartbeats = HEARTBEATS if heartbeats is None else heartbeats
        self.lease_seconds = lease_seconds

    def pid(self) -> int:
        """This process's PID."""
        return os.getpid()

    def host(self) -> str:
        """This host's name."""
        return socket.gethostname()

    def now(self) -> float:
        """The current time (seconds since the epoch)."""
        return time.time()

    def process_start(self, pid: int) -> str | None:
        """The start time of ``pid`` (see :func:`process_start`)."""
        return process_start(pid)

    def process_alive(self, pid: int | None, host: str | None, started: str | None) -> bool:
        """Whether ``pid`` on ``host`` still runs (see :func:`process_alive`)."""
        return process_alive(pid, host, started)

    def owner(self) -> tuple[int, str | None, str, float]:
        """This process's lease values: PID, its start time, host and the current time."""
        pid = self.pid()
        return pid, self.process_start(pid), self.host(), self.now()

    def new_lease(self) -> tuple[int, str | None, str, float, float, float]:
        """The values of a new row's ``pid, pid_started, host, heartbeat_at, created_at,
        updated_at`` (:data:`LEASE_COLUMNS`): leased to this process, created now."""
        pid, started, host, now = self.owner()
        return pid, started, host, now, now, now

    def owned(self, row: sqlite3.Row | None) -> bool:
        """Whether this process holds the lease of a stored row."""
        return row is not None and row["pid"] == self.pid() and row["host"] == self.host()

    def owner_alive(self, row: sqlite3.Row, now: float) -> bool:
        """Whether the process holding a ``running`` row's lease still runs."""
        host, pid = row["host"], row["pid"]
        if pid is not None and host == self.host():
            return self.process_alive(pid, host, _column(row, "pid_started"))
        beat = _column(row, "heartbeat_at")
        beat = row["updated_at"] if beat is None else beat
        return now - float(beat) <= self.lease_seconds

    @staticmethod
    def owner_text(row: sqlite3.Row, now: float) -> str:
        """The lease holder of a row and its heartbeat's age, in words."""
        beat = _column(row, "heartbeat_at")
        beat = row["updated_at"] if beat is None else beat
        return (
            f"pid {row['pid']} on host {row['host']}, last heartbeat "
            f"{max(0.0, now - float(beat)):.0f} s ago"
        )
