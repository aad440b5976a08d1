"""``dpplan app``: launch the Streamlit planner."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from dpplan.cli.common import validate_port
from dpplan.errors import MissingDependencyError, PlanError


def app_path() -> Path:
    """Return the planner app's entry point (``app/streamlit_app.py`` next to the package)."""
    return Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py"


def cmd_app(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    entry = app_path()
    if not entry.exists():
        raise PlanError(
            "app",
            str(entry),
            "the planner's entry point",
            "Install dpplan from a clone of its repository (pip install -e .) to get the app.",
        )
    try:
        import streamlit  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "streamlit", extra="app", purpose="by 'dpplan app' (the planner app)"
        ) from None
    port = validate_port(args.port)
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(entry),
        "--server.port",
        str(port),
        "--server.address",
        args.address,
        "--client.toolbarMode",
        "minimal",
        "--browser.gatherUsageStats",
        "false",
    ]
    if args.headless:
        command += ["--server.headless", "true"]
    from dpplan.store import default_home

    print(
        f"dpplan planner: http://{args.address}:{port}  (runs are stored in "
        f"{default_home() / 'runs.sqlite3'}; Ctrl+C stops)",
        file=sys.stderr,
        flush=True,
    )
    if os.name != "posix":  # pragma: no cover - no exec that keeps the process on Windows
        import subprocess

        return subprocess.call(command)
    # Become the server: a SIGTERM or Ctrl+C sent to `dpplan app` reaches Streamlit itself,
    # so stopping the command never leaves a server behind.
    sys.stdout.flush()
    os.execv(sys.executable, command)
    raise AssertionError("unreachable")  # pragma: no cover
