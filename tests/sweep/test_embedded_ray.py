"""The embedded Ray a sweep starts: no notices about Ray's defaults, and nothing left running
for long after its driver is SIGKILLed (issue 17, item 6). One Ray start in a child process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

DRIVER = """
import json, sys, time
from dpplan.sweep import RayExecutor
from dpplan.sweep.ray_executor import _ray_processes
executor = RayExecutor(num_cpus=1)
executor._start()
print(json.dumps([pid for pid, _ in _ray_processes(set())]), flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(") ", 1)[-1][:1] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="the reaper reads /proc (Linux)")
def test_embedded_ray_is_quiet_and_tidied_after_its_driver_is_killed(tmp_path):
    pytest.importorskip("ray")
    err = tmp_path / "driver.err"
    with open(err, "w") as handle:
        driver = subprocess.Popen(
            [sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, stderr=handle, text=True
        )
    try:
        line = driver.stdout.readline()
        processes = json.loads(line)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    stderr = err.read_text()
    assert "Token authentication" not in stderr and "RAY_AUTH_MODE" not in stderr, stderr
    assert "Started a local Ray instance" not in stderr, stderr
    assert len(processes) >= 2  # the GCS, the raylet, Ray's agents, ...
    deadline = time.monotonic() + 20  # Ray alone leaves its agents for about a minute
    while any(_alive(pid) for pid in processes) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not [pid for pid in processes if _alive(pid)]
