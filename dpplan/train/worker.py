"""Background training worker: runs queued runs from the store, one after another.

Started by the planner app (or ``python -m dpplan.train.worker``) as its own process, so a
run survives page reloads and closed browsers. It exits when the queue is empty. One worker
per dpplan home at a time: a pid file in the home folder records the live worker.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

from dpplan.store import RunStore, process_alive

__all__ = ["ensure_worker", "main", "worker_running"]


def _pid_file(store: RunStore) -> Path:
    return store.home / "worker.pid"


def worker_running(store: RunStore) -> bool:
    """Return whether a worker process for this store is alive."""
    path = _pid_file(store)
    try:
        pid, host = path.read_text().split()
    except (OSError, ValueError):
        return False
    import socket

    return host == socket.gethostname() and process_alive(int(pid), host)


def ensure_worker(store: RunStore) -> bool:
    """Start a worker process if none is running; return True if one was started."""
    if worker_running(store):
        return False
    store.home.mkdir(parents=True, exist_ok=True)  # a store is created by its first write
    log = open(store.home / "worker.log", "ab")  # noqa: SIM115 - handed to the child
    env = dict(os.environ, DPPLAN_HOME=str(store.home))
    child = subprocess.Popen(
        [sys.executable, "-m", "dpplan.train.worker"],
        env=env,
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    import socket

    # Written here too (the child rewrites it), so a second call right away sees the worker.
    _pid_file(store).write_text(f"{child.pid} {socket.gethostname()}")
    return True


def main() -> int:
    """Run queued runs until the queue is empty."""
    import socket

    from dpplan.train.runs import run_queued

    store = RunStore()
    path = _pid_file(store)
    path.write_text(f"{os.getpid()} {socket.gethostname()}")
    try:
        while (run_id := store.claim_next_queued()) is not None:
            print(f"worker {os.getpid()}: run {run_id}", flush=True)
            with contextlib.suppress(Exception):  # a failed run is stored as failed
                run_queued(run_id, store=store)
    finally:
        with contextlib.suppress(OSError):
            if path.read_text().split()[0] == str(os.getpid()):
                path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
