"""dpplan train / compare / runs from the command line."""

from __future__ import annotations

import json

import pytest

from dpplan.cli import main

PLAN = ["--batch-size", "64", "--noise-multiplier", "1.0", "--epochs", "1", "--delta", "1e-4"]


@pytest.fixture
def data_flags(mnist_dir):
    return ["--subset", "1200", "--validation-size", "200", "--test-subset", "300",
            "--data-dir", str(mnist_dir), "--device", "cpu", "--method", "rdp"]


def test_train_json_then_runs(store, data_flags, capsys):
    assert main(["train", *PLAN, *data_flags, "--schedule", "plateau", "--lr", "0.1",
                 "--json"]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run["status"] == "finished" and run["plan"]["dataset_size"] == 1000
    assert run["records"][0]["steps"] == run["plan"]["steps_per_epoch"]
    assert {"epsilon", "test_accuracy"} <= set(run["records"][0])
    assert main(["runs", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["runs"]
    assert [r["id"] for r in listed] == [run["id"]]
    assert main(["runs", "show", str(run["id"])]) == 0
    out = capsys.readouterr().out
    assert f"run {run['id']}: finished" in out and "test acc" in out
    assert main(["runs"]) == 0
    assert "finished" in capsys.readouterr().out


def test_train_plain_shows_progress(store, data_flags, capsys):
    assert main(["train", *PLAN, *data_flags, "--lr", "0.5"]) == 0
    captured = capsys.readouterr()
    assert "epoch 1/1" in captured.err and "ε=" in captured.err
    assert "finished" in captured.out


@pytest.mark.parametrize(
    ("flags", "field"),
    [
        (["--model", "vgg"], "model='vgg'"),
        (["--schedule", "cosine"], "invalid choice"),
        (["--lr", "0"], "lr=0"),
        (["--lr", "nan"], "lr=nan"),
        (["--seed", "x"], "seed='x'"),
        (["--batch-size", "5000"], "batch_size=5000"),
    ],
)
def test_train_bad_input_exits_2_and_stores_nothing(store, data_flags, capsys, flags, field):
    assert main(["train", *PLAN, *data_flags, *flags]) == 2
    assert field in capsys.readouterr().err
    assert store.list_runs() == []


def test_train_missing_data_exits_2(store, tmp_path, capsys):
    argv = ["train", *PLAN, "--subset", "1200", "--validation-size", "200", "--device", "cpu",
            "--data-dir", str(tmp_path / "missing")]
    assert main(argv) == 2
    assert "error: could not download" in capsys.readouterr().err
    assert [run.status for run in store.list_runs()] == ["failed"]


def test_compare_small_grid(store, data_flags, capsys):
    argv = ["compare", *PLAN, *data_flags, "--one-cycle-lrs", "0.5,1", "--plateau-lrs", "0.1",
            "--seeds", "0,1", "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["runs_tried"] == 2 + 1 + 2  # grid runs + repeats with the second seed
    kinds = [s["kind"] for s in result["schedules"]]
    assert kinds == ["one_cycle", "plateau"]
    for summary in result["schedules"]:
        assert len(summary["run_ids"]) == 2 and len(summary["accuracy_mean"]) == 1
        # Compared at equal ε: both schedules share the plan's curve.
        assert summary["epsilons"] == result["schedules"][0]["epsilons"]
    assert "not covered" in result["tuning_note"]
    assert len(store.list_runs()) == 5


def test_runs_unknown_id_exits_2(store, capsys):
    assert main(["runs", "show", "42"]) == 2
    assert "run_id=42" in capsys.readouterr().err
