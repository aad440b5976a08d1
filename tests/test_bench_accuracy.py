"""bench/accuracy.py: its arguments are checked, and its quick mode prints the table it states.

The quick run trains on real MNIST (600 examples, a few seconds of training) and is marked
slow; the argument checks train nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "accuracy.py"


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("--seeds", "0"), "--seeds"),
        (("--subset", "0"), "--subset"),
        (("--plateau-every", "-1"), "--plateau-every"),
    ],
)
def test_bad_arguments_are_refused_naming_the_flag(args, flag):
    done = _run(*args, "--skip-tanh")
    assert done.returncode == 2, done.stderr
    assert f"{flag} must be an integer" in done.stderr


@pytest.mark.slow
def test_quick_mode_prints_the_settings_and_a_row_per_set_up(mnist_dir, tmp_path):
    output = tmp_path / "table.md"
    done = _run(
        "--device=cpu",
        "--quick",
        "--skip-tanh",
        "--subset=600",
        "--seeds=2",
        "--plateau-every=2",
        f"--data-dir={mnist_dir}",
        f"--output={output}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = output.read_text()
    assert "600 training examples (a subset)" in text
    assert "every 2 optimizer steps" in text
    assert "1 torch thread(s)" in text
    # 3 set-ups, one LR each in quick mode: 3 selection runs, 1 repeat each.
    assert "(3 selection runs of 6)" in text
    rows = [line for line in text.splitlines() if line.startswith("| seed net")]
    assert [row.split(" | ")[1] for row in rows] == ["1", "4", "4"]
    assert all(row.split(" | ")[7].endswith("(2)") for row in rows)
    # One-cycle and plateau at 4 epochs are compared at the same ε.
    assert rows[1].split(" | ")[4] == rows[2].split(" | ")[4]
    assert re.search(r"one-cycle minus plateau: .*2 vs 2 seeds", text)
    # Every run logs its line on stderr: 6 runs.
    assert len(re.findall(r" ep: val ", done.stderr)) == 6
