"""dpplan sweep / frontier without Ray: missing extra, bad input, infeasible targets, --local."""

from __future__ import annotations

import json
import sys

import pytest

from dpplan.cli import main

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
    from dpplan.cli import _build_parser, _sweep_spec

    parser = _build_parser()
    spec = _sweep_spec(parser.parse_args(["sweep", *GRID]))
    assert spec.options.threads == 1
    spec = _sweep_spec(parser.parse_args(["sweep", *GRID, "--cpus-per-trial", "2"]))
    assert spec.options.threads == 2
    spec = _sweep_spec(parser.parse_args(["sweep", *GRID, "--threads", "3"]))
    assert spec.options.threads == 3
