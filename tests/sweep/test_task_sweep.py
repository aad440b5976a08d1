"""Sweeps of a user's task (issue 21): ``dpplan sweep --task MODULE:FUNCTION``, without Ray.

The tasks are those of ``tests/fixtures/user_tasks.py``, a module on the Python path as a
user's would be: 400 training examples, one epoch, so a sweep takes seconds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from dpplan.cli import main
from dpplan.errors import PlanError

TASK_GRID = [
    "--epsilons",
    "2,8",
    "--batch-sizes",
    "50",
    "--epochs",
    "1",
    "--delta",
    "1e-4",
    "--schedules",
    "one_cycle,plateau",
    "--one-cycle-lrs",
    "0.5,2",
    "--plateau-lrs",
    "0.5",
    "--seeds",
    "0,1",
    "--device",
    "cpu",
    "--method",
    "rdp",
    "--local",
]


def _spec(**changes):
    """A one-epoch sweep of the blobs task at B = 50 (changes override any field)."""
    from dpplan.sweep import SweepSpec

    values = {
        "target_epsilons": (4,),
        "delta": 1e-4,
        "batch_sizes": (50,),
        "epochs": (1,),
        "schedules": ("constant",),
        "constant_lrs": (0.5,),
        "seeds": (0,),
        "task": "user_tasks:blobs",
    }
    return SweepSpec(**{**values, **changes})


def _run_locally(store, spec):
    """Create ``spec``'s sweep and run it in this process; return (sweep id, result)."""
    from dpplan.sweep import LocalExecutor, create_sweep, run_sweep

    executor = LocalExecutor()
    sweep_id = create_sweep(spec, store=store, executor=executor)
    return sweep_id, run_sweep(sweep_id, store=store, executor=executor)


@pytest.fixture
def user_tasks(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "fixtures"))


def test_spec_takes_its_dataset_size_from_the_task(user_tasks):
    from dpplan.sweep import SweepSpec

    spec = SweepSpec(
        target_epsilons=(2,), delta=1e-4, batch_sizes=(50,), epochs=(1,), task="user_tasks:blobs"
    )
    assert spec.dataset_size == 400
    assert SweepSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(PlanError, match="batch_size=500 .*400 training examples"):
        SweepSpec(
            target_epsilons=(2,),
            delta=1e-4,
            batch_sizes=(500,),
            epochs=(1,),
            task="user_tasks:blobs",
        )


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("no_such_module_xyz:blobs", "no module named 'no_such_module_xyz'"),
        ("user_tasks:missing", "has no attribute 'missing'"),
        ("user_tasks:not_a_task", "returned a dict"),
        ("blobs", "'module:function'"),
    ],
)
def test_a_bad_task_exits_2_naming_it_before_anything_is_stored(
    store, user_tasks, capsys, spec, words
):
    assert main(["sweep", "--task", spec, *TASK_GRID]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: task=") and words in err
    assert store.list_sweeps() == [] and store.list_runs() == []


def test_sweep_of_the_blobs_task_gives_a_point_per_target(store, user_tasks, capsys):
    assert main(["sweep", "--task", "user_tasks:blobs", *TASK_GRID, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == "user_tasks:blobs" and result["spec"]["task"] == "user_tasks:blobs"
    assert result["trials"]["failed"] == 0
    # Per ε: 3 selection trials (2 one-cycle rates, 1 plateau rate) + 1 repeat per schedule.
    assert result["trials"]["finished"] == 2 * (3 + 2)
    assert [p["target_epsilon"] for p in result["points"]] == [2.0, 8.0]
    for point in result["points"]:
        assert point["plan"]["dataset_size"] == 400
        assert point["epsilon"] <= point["target_epsilon"]
        assert 0.0 <= point["test_accuracy_mean"] <= 1.0 and point["seeds"] == [0, 1]
    runs = store.list_runs()
    assert len(runs) == 10
    assert {(r.task, r.task_spec) for r in runs} == {("blobs", "user_tasks:blobs")}
    assert {r.task_fingerprint["train"]["examples"] for r in runs} == {400}
    assert main(["frontier", str(result["sweep_id"])]) == 0
    text = capsys.readouterr().out
    assert "task: user_tasks:blobs" in text and "test acc" in text
    assert main(["sweeps", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)["sweeps"]
    assert listed["task"] == "user_tasks:blobs"
    assert main(["sweeps"]) == 0
    assert "seeds on user_tasks:blobs" in capsys.readouterr().out


def test_no_mnist_is_loaded_for_a_task(store, user_tasks, monkeypatch):
    from dpplan.sweep import trials as trials_module

    def refuse(options):
        raise AssertionError("MNIST was loaded for a task sweep")

    monkeypatch.setattr(trials_module, "split_arrays", refuse)
    _, result = _run_locally(store, _spec())
    assert len(result.points) == 1 and result.trials.failed == 0


def test_a_regression_sweep_selects_by_validation_loss_and_reports_test_loss(
    store, user_tasks, capsys
):

    spec = _spec(
        target_epsilons=(8,),
        constant_lrs=(0.01, 0.5),
        method="rdp",
        task="user_tasks:regression",
    )
    sweep_id, result = _run_locally(store, spec)
    (point,) = result.points
    runs = {r.schedule["lr"]: r for r in store.list_runs()}
    losses = {lr: run.records[-1].validation_loss for lr, run in runs.items()}
    assert math.isnan(point.validation_accuracy)
    assert point.schedule.lr == min(losses, key=losses.get)
    assert point.validation_loss == min(losses.values())
    chosen = runs[point.schedule.lr].records[-1]
    assert point.test_loss_mean == chosen.test_loss and math.isfinite(point.test_loss_mean)
    assert result.best_at(8.0) is point
    assert main(["frontier", str(sweep_id)]) == 0
    text = capsys.readouterr().out
    assert "lowest validation loss" in text and "test loss" in text


def test_the_readme_example_tasks_load_and_batchnorm_is_refused(monkeypatch, store, capsys):
    from dpplan.train import load_task

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "examples"))
    blobs, bars = load_task("my_tasks:blobs"), load_task("my_tasks:bars")
    assert (blobs.dataset_size, bars.dataset_size) == (2000, 2000)
    assert blobs.classification and bars.classification
    argv = ["train", "--task", "my_tasks:bars_batchnorm", "--batch-size", "100"]
    argv += ["--noise-multiplier", "1", "--epochs", "1", "--delta", "1e-5", "--device", "cpu"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "BatchNorm2d" in err and "GroupNorm" in err and store.list_runs() == []


def test_resuming_a_task_sweep_on_other_data_is_refused(store, user_tasks, monkeypatch):
    import user_tasks as module

    from dpplan.sweep import LocalExecutor, run_sweep

    sweep_id, _ = _run_locally(store, _spec(constant_lrs=(0.5, 1.0)))
    assert len(store.list_runs()) == 2
    original = module.blobs
    monkeypatch.setattr(module, "blobs", lambda: original(seed=1))  # other data, same shapes
    with pytest.raises(PlanError, match="task=.*the data sweep .* were trained on"):
        run_sweep(sweep_id, store=store, executor=LocalExecutor())
    assert len(store.list_runs()) == 2 and store.get_sweep(sweep_id).status == "finished"


def test_a_task_sweep_cannot_be_simulated(user_tasks):
    from dpplan.sweep import SweepSpec

    with pytest.raises(PlanError, match="simulate=2 is invalid: must be None with a task"):
        SweepSpec(
            target_epsilons=(2,),
            delta=1e-4,
            batch_sizes=(200,),
            epochs=(1,),
            task="user_tasks:blobs",
            simulate=2,
        )
