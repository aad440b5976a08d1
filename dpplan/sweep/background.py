"""Start ``dpplan sweep`` in the background (the planner app's Frontier page uses this).

The sweep runs in its own process group, so closing the app does not stop it; its output
(the progress lines and the final JSON) goes to a log file under ``$DPPLAN_HOME/sweeps/``.
The sweep itself is in the run store as soon as its plans are solved (``dpplan frontier``).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from dpplan.store import default_home

__all__ = ["launch_sweep"]


def launch_sweep(argv: Sequence[str]) -> tuple[int, Path]:
    """Start ``dpplan sweep ARGV --json`` detached; return (its PID, its log file).

    Args:
        argv: the ``dpplan sweep`` flags (e.g. ``["--epsilons", "1,3", ...]``).
    """
    folder = default_home() / "sweeps"
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}.log"
    with open(log, "ab") as handle:
        child = subprocess.Popen(
            [sys.executable, "-m", "dpplan.cli", "sweep", *argv, "--json"],
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return child.pid, log
