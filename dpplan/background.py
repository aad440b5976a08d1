"""Start a dpplan driver in the background with a typed request (the planner app uses this).

:func:`launch_detached` writes a JSON request (a spec's ``to_dict()`` form, validated by the
caller before it gets here) under ``$DPPLAN_HOME/<kind>/``, and starts ``python -m MODULE
REQUEST.json`` in its own process group, so closing the app does not stop it; its output
goes to a log file next to the request. The module's ``main`` reads the request back with
the spec's ``from_dict``. Used by :func:`dpplan.sweep.background.launch_sweep` and
:func:`dpplan.train.compare.launch_comparison`.

This module imports neither torch nor ray.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dpplan.store import default_home

__all__ = ["launch_detached", "read_request"]


def launch_detached(module: str, request: Mapping[str, Any], *, kind: str) -> tuple[int, Path]:
    """Start ``python -m module REQUEST.json`` detached; return (its PID, its log file).

    Args:
        module: the driver module (its ``main(argv)`` takes the request file).
        request: the JSON-ready request.
        kind: the folder under ``$DPPLAN_HOME`` for the request and the log (``sweeps``).
    """
    folder = default_home() / kind
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.monotonic_ns()}"
    request_file, log = folder / f"{stem}.json", folder / f"{stem}.log"
    request_file.write_text(json.dumps(request, indent=2))
    with open(log, "ab") as handle:
        child = subprocess.Popen(
            [sys.executable, "-m", module, str(request_file)],
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return child.pid, log


def read_request(argv: list[str]) -> Any:
    """Return the JSON request whose file is the one argument of a driver's ``main``.

    Raises:
        UsageError: (field ``argv``) unless there is exactly one argument.
        OSError: if the file cannot be read; ValueError: if it is not JSON.
    """
    from dpplan.errors import UsageError

    if len(argv) != 1:
        raise UsageError("argv", argv, "one argument: the request's JSON file")
    return json.loads(Path(argv[0]).read_text())
