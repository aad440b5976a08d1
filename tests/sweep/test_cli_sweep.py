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
    one, every = (
        next(line for line in text.splitlines() if line.startswith(f"  {label}"))
        for label in ("one run:", "all 1 runs composed:")
    )
    assert one.index("ε =") == every.index("ε =")  # the tuning costs line up
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
        (["--local", "--num-cpus", "0"], "num_cpus", "omitted with --local"),
        (["--local", "--ray-address=auto"], "ray_address", "omitted with --local"),
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

    def prepare(self, options, *, task=None):
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


def _fake_sweep(store, tiny_options, **changes) -> int:
    from sweep_fakes import store_fake_sweep

    from dpplan.sweep import SweepSpec

    values = {
        "target_epsilons": (2,),
        "delta": 1e-5,
        "batch_sizes": (256,),
        "epochs": (1,),
        "schedules": ("one_cycle",),
        "one_cycle_lrs": (0.5, 1.0),
        "seeds": (0,),
        "options": tiny_options,
    }
    values.update(changes)
    return store_fake_sweep(store, SweepSpec(**values), lambda trial: 0.5 + trial.lr / 10)


@pytest.mark.parametrize("command", [["frontier", "abc"], ["report", "--sweep", "1.5"]])
def test_a_bad_sweep_id_speaks_of_sweep_ids(command, capsys, store):
    assert main(command) == 2
    error = capsys.readouterr().err
    assert "a sweep id" in error and "dpplan sweeps" in error and "run id" not in error


def test_sweeps_lists_id_status_grid_trials_and_created(capsys, store, tiny_options):
    assert main(["sweeps"]) == 0
    assert "no sweep yet" in capsys.readouterr().out
    first = _fake_sweep(store, tiny_options)
    second = _fake_sweep(store, tiny_options, seeds=(0, 1), target_epsilons=(1, 3))
    assert main(["sweeps", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["sweeps"]
    assert [s["sweep_id"] for s in listed] == [second, first]
    assert listed[1]["status"] == "finished"
    assert listed[1]["trials"] == {"planned": 2, "finished": 2, "failed": 0}
    assert listed[0]["trials"] == {"planned": 6, "finished": 6, "failed": 0}
    assert listed[0]["grid"].startswith("ε 1,3 × B 256 × E 1 × one_cycle 2 LRs × 2 seeds")
    assert listed[0]["grid"].endswith(" on MNIST") and listed[0]["task"] is None
    assert isinstance(listed[0]["created_at"], float)
    assert main(["sweeps"]) == 0
    text = capsys.readouterr().out
    assert f"{first:5d}  finished" in text and "ε 1,3 × B 256" in text


def test_one_seed_shows_that_no_spread_was_measured(capsys, store, tiny_options):
    one = _fake_sweep(store, tiny_options)
    assert main(["frontier", str(one)]) == 0
    text = capsys.readouterr().out
    assert "no spread measured" in text and "± 0.00%" not in text
    two = _fake_sweep(store, tiny_options, seeds=(0, 1))
    assert main(["frontier", str(two)]) == 0
    text = capsys.readouterr().out
    assert "± 0.00%" in text and "no spread" not in text  # two seeds: a measured spread


def test_frontier_compares_the_schedules_by_a_confidence_interval(capsys, store, tiny_options):
    from sweep_fakes import store_fake_sweep

    from dpplan.stats import mean_difference
    from dpplan.sweep import SweepSpec

    spec = SweepSpec(
        target_epsilons=(2,),
        delta=1e-5,
        batch_sizes=(256,),
        epochs=(1,),
        schedules=("one_cycle", "plateau"),
        one_cycle_lrs=(0.5,),
        plateau_lrs=(0.5,),
        seeds=(0, 1, 2),
        options=tiny_options,
    )
    sweep = store_fake_sweep(
        store, spec, lambda t: (0.9 if t.kind == "one_cycle" else 0.8) + t.seed / 100
    )
    assert main(["frontier", str(sweep)]) == 0
    text = capsys.readouterr().out
    assert "accuracy mean ± sample std over seeds" in text
    # Test accuracy is 0.01 below validation: the same interval from the per-seed values.
    expected = mean_difference([0.89, 0.90, 0.91], [0.79, 0.80, 0.81])
    line = f"  target ε 2: one_cycle − plateau: {expected.describe('one_cycle', 'plateau')}"
    assert line in text.splitlines()
    assert "one_cycle ahead (+10.0 points, 95% CI" in line


def test_default_grids_are_the_measured_ones():
    from dpplan.cli.parser import build_parser
    from dpplan.sweep import SweepSpec
    from dpplan.sweep.spec import DEFAULT_ONE_CYCLE_LRS

    spec = SweepSpec(target_epsilons=(1,), delta=1e-5, batch_sizes=(256,), epochs=(1,))
    assert 15.62 not in spec.one_cycle_lrs and spec.one_cycle_lrs == DEFAULT_ONE_CYCLE_LRS
    assert {1.0, 2.0} <= set(spec.one_cycle_lrs)  # selected in BENCHMARKS.md (full MNIST)
    assert {1.0, 2.0} <= set(spec.plateau_lrs)
    args = build_parser().parse_args(["sweep"])
    assert [float(v) for v in args.one_cycle_lrs] == list(spec.one_cycle_lrs)  # typed when parsed
    assert [float(v) for v in args.plateau_lrs] == list(spec.plateau_lrs)


def _held_by_another_live_process(store, sweep_id: int) -> None:
    import os
    import sqlite3

    from dpplan.store import process_start

    with sqlite3.connect(store.path) as connection:
        connection.execute(
            "UPDATE sweeps SET status='running', pid=?, pid_started=? WHERE id=?",
            (os.getppid(), process_start(os.getppid()), sweep_id),
        )


def test_resume_of_a_sweep_a_live_driver_runs_refuses_first(capsys, store, tiny_options):
    sweep_id = _fake_sweep(store, tiny_options)
    _held_by_another_live_process(store, sweep_id)
    assert main(["sweep", "--local", "--resume", str(sweep_id)]) == 2
    error = capsys.readouterr().err
    assert f"Sweep {sweep_id} is running" in error and "resumed" not in error
    assert main(["sweep", "--local", "--resume", str(sweep_id), "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["type"] == "StateConflictError"


def test_resume_refuses_flags_that_differ_from_the_stored_sweep(capsys, store, tiny_options):
    sweep_id = _fake_sweep(store, tiny_options)
    argv = ["sweep", "--local", "--resume", str(sweep_id), "--json"]
    changed = ["--epsilons", "3", "--seeds=0,1", "--one-cycle-lrs", "0.5,1,2", "--subset", "900"]
    allowed = ["--data-dir", str(tiny_options.data_dir), "--worker-data"]
    assert main([*argv, *changed, *allowed]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["field"] == "resume" and error["type"] == "UsageError"
    for flag in ("--epsilons 3", "--seeds 0,1", "--one-cycle-lrs 0.5,1,2", "--subset 900"):
        assert flag in error["message"]
    assert "--data-dir" not in error["message"].split("these differ")[1].split(". Leave")[0]
    assert "--worker-data" not in error["message"].split("these differ")[1].split(". Leave")[0]
    # The same values as stored (written differently) are no change: the sweep resumes.
    same = ["--epsilons", "2.0", "--seeds", "0", "--one-cycle-lrs", "0.5,1", "--subset", "2000"]
    assert main([*argv, *same, *allowed]) == 0
    assert json.loads(capsys.readouterr().out)["sweep_id"] == sweep_id


def test_a_failed_trial_keeps_its_whole_error_and_frontier_and_runs_show_it(
    capsys, store, tiny_options, one_trial_spec, tmp_path
):
    import dataclasses

    from dpplan.sweep import LocalExecutor, create_sweep, run_sweep

    empty = tmp_path / "no-mnist"
    empty.mkdir()
    options = dataclasses.replace(tiny_options, data_dir=str(empty))
    spec = dataclasses.replace(one_trial_spec, options=options)
    executor = LocalExecutor(ship_data=False)  # each trial reads the (empty) folder itself
    sweep_id = create_sweep(spec, store=store, executor=executor)
    result = run_sweep(sweep_id, store=store, executor=executor)
    (failure,) = result.failures
    assert result.status == "failed" and result.trials.failed == 1
    assert failure.error.startswith("DataError: ")
    # It stored no run, and a failure may come mid-training: counted whole, to be safe.
    assert (result.unstored_attempts, result.runs_tried) == (1, 1)
    assert result.tuning.all_runs_epsilon > 0
    assert str(empty) in failure.error and "t10k-labels-idx1-ubyte.gz" in failure.error
    assert main(["frontier", str(sweep_id)]) == 0
    text = capsys.readouterr().out
    assert "failed trials (1)" in text and str(empty) in text and "DataError" in text


def test_a_ray_task_error_is_stored_as_the_trials_own_error():
    ray = pytest.importorskip("ray")
    from dpplan.errors import DataError
    from dpplan.sweep.execute import MAX_ERROR_CHARS, _failure

    cause = DataError("MNIST data folder '/data/x' does not hold MNIST.\nSecond line: the fix.")
    wrapped = ray.exceptions.RayTaskError("run_trial", "Traceback ...\n" * 5, cause)
    assert _failure(wrapped) == (
        "DataError: MNIST data folder '/data/x' does not hold MNIST.\nSecond line: the fix."
    )
    long = _failure(ValueError("x" * 10 * MAX_ERROR_CHARS + "END"))
    assert (
        len(long) <= MAX_ERROR_CHARS and long.startswith("ValueError: xx") and long.endswith("END")
    )


def test_runs_show_names_the_sweep_trial_and_its_error(capsys, store, tiny_options):
    sweep_id = _fake_sweep(store, tiny_options)
    trial = store.get_sweep(sweep_id).trials[0]
    store.record_trial(sweep_id, trial.key, trial.run_id, "ValueError: a\nwhole")
    assert main(["runs", "show", str(trial.run_id)]) == 0
    text = capsys.readouterr().out
    assert f"sweep {sweep_id} trial {trial.key}: failed" in text
    assert "    ValueError: a\n    whole" in text
    assert main(["runs", "show", str(trial.run_id), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["sweep_trial"]
    assert shown["error"] == "ValueError: a\nwhole" and shown["sweep_id"] == sweep_id


def test_a_sweep_treats_diverged_trials_as_finished_without_accuracy(
    capsys, store, mnist_dir, monkeypatch
):
    # Issue 17 item 1: sweep trials with a huge constant learning rate were stored as
    # finished with null losses and crashed the readers. Divergence is forced: the run with
    # lr 0.5 diverges, and so does the repeat of lr 0.05 with seed 1.
    from dpplan.train.core import Diverged, Trainer

    real = Trainer.train_epoch

    def train_epoch(self, *args, epoch=0, **kwargs):
        if self.schedule.lr == 0.5 or self.options.seed == 1:
            raise Diverged(epoch, "forced by the test")
        return real(self, *args, epoch=epoch, **kwargs)

    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)
    grid = [*GRID]
    grid[grid.index("one_cycle")] = "constant"
    grid[grid.index("--one-cycle-lrs") : grid.index("--one-cycle-lrs") + 2] = [
        "--constant-lrs",
        "0.5,0.05",
    ]
    grid[grid.index("--seeds") + 1] = "0,1"
    assert main(["sweep", "--local", *grid, "--data-dir", str(mnist_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["trials"] == {"planned": 3, "finished": 3, "failed": 0, "diverged": 2}
    [point] = result["points"]
    assert point["schedule"]["lr"] == 0.05 and point["seeds"] == [0]
    assert point["diverged_seeds"] == [1]
    statuses = sorted(run.status for run in store.list_runs())
    assert statuses == ["diverged", "diverged", "finished"]
    # The diverged runs' epoch touched the data: the composed ε counts all three runs.
    assert [run.epochs_spent for run in store.list_runs()] == [1, 1, 1]
    tuning = result["tuning"]
    assert tuning["all_runs_epsilon"] > 1.2 * tuning["single_run_epsilon"]
    sweep_id = str(result["sweep_id"])
    assert main(["frontier", sweep_id]) == 0
    text = capsys.readouterr().out
    assert "3 finished (2 diverged: no accuracy, never selected)" in text
    assert "(seed 1 diverged)" in text
    assert main(["report", "--sweep", sweep_id, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)["sweep"]
    assert report["points"][0]["seeds"] == [0] and report["trials"]["diverged"] == 2
    assert main(["report", "--sweep", sweep_id]) == 0
    assert "(2 diverged: no accuracy, never selected)" in capsys.readouterr().out


def test_sweep_trials_run_one_thread_per_cpu_they_reserve():
    # Issue 17 item 7: one thread per concurrent trial (Ray workers set it from the options).
    from dpplan.cli.parser import build_parser
    from dpplan.cli.sweep_commands import _sweep_spec

    parser = build_parser()
    spec = _sweep_spec(parser.parse_args(["sweep", *GRID]))
    assert spec.options.threads == 1
    spec = _sweep_spec(parser.parse_args(["sweep", *GRID, "--cpus-per-trial", "2"]))
    assert spec.options.threads == 2
    spec = _sweep_spec(parser.parse_args(["sweep", *GRID, "--threads", "3"]))
    assert spec.options.threads == 3


# -- issue 22: --simulate K --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "field"),
    [
        (["--simulate", "1"], "simulate"),
        (["--simulate", "x"], "simulate"),
        (["--simulate", "512"], "simulate"),  # B = 256: B/K < 1
        (["--simulate-data", "validation"], "simulate_data"),  # only with --simulate
    ],
)
def test_bad_simulation_flags_are_exit_2_with_the_field(flags, field, capsys, store):
    argv = ["--epsilons", "1", "--batch-sizes", "256", "--epochs", "1", *flags, "--json"]
    assert main(["sweep", "--local", *argv]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["field"] == field
    assert store.list_sweeps() == []


def test_a_simulated_local_sweep_marks_its_points(capsys, store, mnist_dir):
    argv = [*GRID, "--simulate", "4", "--data-dir", str(mnist_dir), "--json"]
    assert main(["sweep", "--local", *argv]) == 0
    result = json.loads(capsys.readouterr().out)
    (point,) = result["points"]
    assert point["predicted_by_simulation"] == 4 and point["simulation_data"] == "training"
    assert result["spec"]["simulate"] == 4
    assert result["tuning"]["all_runs_epsilon"] > result["tuning"]["single_run_epsilon"]
    assert main(["frontier", str(result["sweep_id"])]) == 0
    text = capsys.readouterr().out
    assert "every point is predicted (sim K=4)" in text and "B/K with σ/K" in text
    assert "simulation: the points are predictions" in text
