"""dpplan sweep / frontier without Ray: missing extra, bad input, infeasible targets, --local."""

from __future__ import annotations

import json
import sys

import pytest

from dpplan.cli import main
from dpplan.errors import PlanError

GRID = [
    "--epsilons",
    "2",
    "--batch-sizes",
    "256",
    "--epochs",
    "1",
    "--schedules",
    "one_cycle",
    "--one-cycle-lrs",
    "0.5",
    "--seeds",
    "0",
    "--subset",
    "2000",
    "--validation-size",
    "500",
    "--test-subset",
    "500",
    "--device",
    "cpu",
]


def test_without_ray_exit_2_names_the_extra(monkeypatch, capsys, store):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert main(["sweep", *GRID]) == 2
    error = capsys.readouterr().err
    assert 'pip install -e ".[sweep]"' in error and "ray" in error
    assert store.list_sweeps() == []  # refused before anything was solved or stored


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--epsilons", "1,nan", "--batch-sizes", "256", "--epochs", "1"], "target_epsilon"),
        (["--epsilons", "1", "--batch-sizes", "256"], "epochs"),
        (["--epsilons", "1", "--batch-sizes", "256", "--epochs", "1", "--seed", "3"], "seed"),
        (["--epsilons", "1", "--batch-sizes", "256,256", "--epochs", "1"], "batch_sizes"),
        (
            ["--epsilons", "1", "--batch-sizes", "256", "--epochs", "1", "--schedules", "cos"],
            "schedule",
        ),
    ],
)
def test_invalid_input_is_exit_2_with_the_field(argv, field, capsys, store):
    assert main(["sweep", "--local", *argv, "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["field"] == field


def test_infeasible_target_is_exit_3(capsys, store):
    argv = [*GRID]
    argv[1] = "1e-6"
    assert main(["sweep", "--local", *argv]) == 3
    assert "Raise target_epsilon" in capsys.readouterr().err
    assert store.list_sweeps() == []


def test_local_sweep_and_frontier(capsys, store, mnist_dir):
    assert main(["sweep", "--local", *GRID, "--data-dir", str(mnist_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["runs_tried"] == 1 and len(result["points"]) == 1
    assert result["points"][0]["epsilon"] <= 2
    assert main(["frontier", str(result["sweep_id"])]) == 0
    text = capsys.readouterr().out
    assert "frontier" in text and "all 1 runs composed" in text
    assert main(["frontier", "99"]) == 2


# -- issue 17: refused starts store nothing; sweep ids; dpplan sweeps; resume; failures ---------


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _grpc_missing() -> bool:
    import importlib.util

    return importlib.util.find_spec("grpc") is None


@pytest.mark.parametrize(
    ("flags", "field", "words"),
    [
        (["--num-cpus", "0"], "num_cpus", "no CPU can run no trial"),
        (["--num-cpus", "-1"], "num_cpus", "integer in [1"),
        (["--num-cpus", "1.5"], "num_cpus", "integer in [1"),
        (["--cpus-per-trial", "3", "--num-cpus", "2"], "cpus_per_trial", "num_cpus=2"),
        (["--ray-address", "127.0.0.1:notaport"], "ray_address", "port in [1, 65535]"),
        (["--ray-address", "127.0.0.1:6379", "--num-cpus", "2"], "num_cpus", "existing cluster"),
        (["--ray-address", "CLOSED"], "ray_address", "ray start --head"),
        pytest.param(
            ["--ray-address", "ray://127.0.0.1:10001"],
            "ray_address",
            "ray[client]",
            marks=pytest.mark.skipif(not _grpc_missing(), reason="ray[client] is installed"),
        ),
    ],
)
def test_refused_ray_flags_exit_2_before_anything_is_stored(flags, field, words, capsys, store):
    ray = pytest.importorskip("ray")
    flags = [f"127.0.0.1:{_closed_port()}" if flag == "CLOSED" else flag for flag in flags]
    assert main(["sweep", *GRID, *flags, "--json"]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["field"] == field and words in error["message"]
    assert "unexpected" not in error["message"]
    assert not ray.is_initialized()  # refused before (or without leaving) a Ray
    assert not store.path.exists()  # no sweep record, not even a store


class _RefusingExecutor:
    name = "refusing"

    def __init__(self):
        self.closed = False

    def prepare(self, options):
        raise PlanError("ray_address", "x", "the address of a running Ray cluster")

    def close(self):
        self.closed = True


def test_the_sweep_is_stored_only_once_its_executor_is_up(store, tiny_options):
    from dpplan.sweep import SweepSpec, create_sweep

    spec = SweepSpec(
        target_epsilons=(2,), delta=1e-5, batch_sizes=(256,), epochs=(1,), options=tiny_options
    )
    with pytest.raises(PlanError, match="ray_address"):
        create_sweep(spec, store=store, executor=_RefusingExecutor())
    assert store.list_sweeps() == [] and not store.path.exists()


def _run_cli(argv, env_changes):
    import os
    import subprocess

    env = {**os.environ, **env_changes}
    return subprocess.Popen(
        [sys.executable, "-m", "dpplan.cli", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def silent_listener():
    """A TCP port that accepts connections and never answers (not a Ray GCS)."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield f"127.0.0.1:{server.getsockname()[1]}"
    server.close()


def test_a_cluster_that_never_answers_is_refused_within_the_bound(silent_listener, store):
    import time

    pytest.importorskip("ray")
    started = time.monotonic()
    child = _run_cli(
        ["sweep", *GRID, "--ray-address", silent_listener],
        {"DPPLAN_RAY_CONNECT_SECONDS": "2", "DPPLAN_HOME": str(store.home)},
    )
    _, err = child.communicate(timeout=60)
    assert child.returncode == 2, err
    assert time.monotonic() - started < 30
    assert f"ray_address='{silent_listener}'" in err and "ray start --head" in err
    assert not store.path.exists()


def test_sigterm_while_connecting_ends_the_sweep_at_once(silent_listener, store):
    import selectors
    import signal
    import time

    pytest.importorskip("ray")
    child = _run_cli(
        ["sweep", *GRID, "--ray-address", silent_listener],
        {"DPPLAN_RAY_CONNECT_SECONDS": "120", "DPPLAN_HOME": str(store.home)},
    )
    deadline = time.monotonic() + 30
    # Wait until the driver is inside ray.init (its "Connecting to existing Ray" line).
    selector = selectors.DefaultSelector()
    selector.register(child.stderr, selectors.EVENT_READ)
    seen = ""
    while "Connecting to existing Ray" not in seen and time.monotonic() < deadline:
        if selector.select(timeout=1):
            seen += child.stderr.readline()
    assert "Connecting to existing Ray" in seen, seen
    time.sleep(1.0)  # inside Ray's blocking GCS connect, where Python handlers cannot run
    child.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    _, err = child.communicate(timeout=20)
    assert time.monotonic() - sent < 5
    assert child.returncode == 128 + signal.SIGTERM
    assert "nothing was stored" in seen + err
    assert not store.path.exists()
