"""The task seam (issue 21): the user's model, data and loss, trained by dpplan.

The tasks are defined the way a user defines them, in a module on the Python path
(``tests/fixtures/user_tasks.py``), and loaded with ``load_task("user_tasks:...")``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dpplan
from dpplan.errors import PlanError
from dpplan.train import Constant, RunOptions, Task, load_task, resume, start_run, train
from dpplan.train.engines import ENGINES, FusedEngine, Mechanism, OpacusEngine

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(autouse=True)
def _user_module_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES))


def _options(**changes):
    return RunOptions(**{"device": "cpu", "method": "rdp", "seed": 1, **changes})


def test_a_user_task_trains_with_both_engines_at_the_same_epsilon_and_its_dataset_size():
    task = load_task("user_tasks:blobs")
    assert task.spec == "user_tasks:blobs" and task.dataset_size == 400
    plan = task.plan(batch_size=50, noise_multiplier=0.8, epochs=3, delta=1e-4)
    assert plan.dataset_size == 400
    curve = dpplan.epsilon_curve(plan, method="rdp").epsilons
    results = {
        engine: train(plan, Constant(lr=0.5), _options(engine=engine), task=task)
        for engine in ENGINES
    }
    for engine, result in results.items():
        assert result.status == "finished" and result.task == "blobs", engine
        assert [r.steps for r in result.records] == [8, 16, 24]
        assert [r.epsilon for r in result.records] == list(curve)
        assert result.records[-1].epsilon_opacus == pytest.approx(curve[-1], rel=1e-2)
        # Three well-separated blobs (chance: 1/3): DP-SGD learns them.
        assert result.records[-1].test_accuracy > 0.8, engine
        assert math.isfinite(result.records[-1].test_loss)
    fused, opacus = (results[e].records[-1] for e in ENGINES)
    assert fused.epsilon == opacus.epsilon


def test_a_plan_whose_dataset_size_disagrees_with_the_task_is_refused_naming_both():
    task = load_task("user_tasks:blobs")
    plan = dpplan.TrainingPlan(
        dataset_size=59000, batch_size=50, noise_multiplier=1.0, epochs=1, delta=1e-5
    )
    with pytest.raises(PlanError, match="dataset_size=59000 is invalid") as info:
        train(plan, Constant(lr=0.1), _options(), task=task)
    assert info.value.field == "dataset_size" and "400" in str(info.value)
    with pytest.raises(PlanError, match="400, the training examples of task 'blobs'"):
        task.plan(dataset_size=59000, batch_size=50, noise_multiplier=1.0, epochs=1, delta=1e-5)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_regression_task_with_mse_loss_trains_and_reports_loss_and_its_metric(engine):
    task = load_task("user_tasks:regression")
    assert task.classification is False
    plan = task.plan(batch_size=60, noise_multiplier=0.5, epochs=6, delta=1e-4)
    result = train(plan, Constant(lr=0.5), _options(engine=engine), task=task)
    last = result.records[-1]
    assert result.status == "finished"
    assert math.isnan(last.test_accuracy) and math.isnan(last.validation_accuracy)
    # Predicting the test targets' mean would give their variance (about 7.5): it learned.
    baseline = float(task.test[1].var(unbiased=False))
    assert last.test_loss < 0.5 * baseline
    assert set(last.metrics) == {"validation_mae", "test_mae"}
    assert 0 < last.metrics["test_mae"] < math.sqrt(baseline)
    assert last.epsilon == dpplan.epsilon_curve(plan, method="rdp").epsilons[-1]


def test_the_fused_engine_takes_per_example_gradients_of_the_users_loss_as_opacus_does():
    torch.manual_seed(0)
    first = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 1))
    second = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 1))
    second.load_state_dict(first.state_dict())
    mechanism = Mechanism(
        noise_multiplier=1.0, max_grad_norm=0.5, expected_batch_size=16, sample_rate=0.1
    )
    engines = [
        kind(
            model,
            torch.optim.SGD(model.parameters(), lr=0.3),
            mechanism,
            noise_generator=torch.Generator().manual_seed(4),
            loss=F.mse_loss,
        )
        for kind, model in ((OpacusEngine, first), (FusedEngine, second))
    ]
    generator = torch.Generator().manual_seed(2)
    for _ in range(3):
        inputs = torch.randn(20, 5, generator=generator)
        targets = 3 * torch.randn(20, 1, generator=generator)  # large errors: clipping binds
        losses = [engine.step(inputs, targets) for engine in engines]
        assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert not torch.equal(first[0].weight, nn.Linear(5, 4).weight)  # it moved


@pytest.mark.parametrize("engine", ENGINES)
def test_batchnorm_is_refused_before_training_naming_the_layer_and_groupnorm(engine, store):
    task = load_task("user_tasks:batchnorm")
    plan = task.plan(batch_size=50, noise_multiplier=1.0, epochs=1, delta=1e-4)
    with pytest.raises(PlanError, match=r"BatchNorm1d at '1'.*GroupNorm") as info:
        start_run(plan, Constant(lr=0.1), _options(engine=engine), store=store, task=task)
    assert info.value.field == "model"
    assert store.list_runs() == []  # refused before anything was stored


def test_a_loss_summed_over_the_batch_is_refused():
    task = load_task("user_tasks:summed_loss")
    plan = task.plan(batch_size=50, noise_multiplier=1.0, epochs=1, delta=1e-4)
    with pytest.raises(PlanError, match="mean of the examples' losses") as info:
        train(plan, Constant(lr=0.1), _options(), task=task)
    assert info.value.field == "loss"


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("no_such_module_xyz:blobs", "no module named 'no_such_module_xyz'"),
        ("user_tasks:no_such_function", "has no attribute 'no_such_function'"),
        ("user_tasks:NOT_CALLABLE", "a non-callable 'NOT_CALLABLE'"),
        ("user_tasks:not_a_task", "not_a_task\\(\\) returned a dict"),
        ("user_tasks:broken", "RuntimeError: the data server is down"),
        ("user_tasks", "'module:function'"),
        ("user tasks:blobs", "'module:function'"),
    ],
)
def test_a_bad_task_spec_is_refused_naming_it(spec, words):
    with pytest.raises(PlanError, match=words) as info:
        load_task(spec)
    assert info.value.field == "task" and spec in str(info.value)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": ""}, "name"),
        ({"train": [1, 2, 3]}, "train"),
        ({"train": (torch.zeros(3, 8), torch.zeros(2, dtype=torch.long))}, "train"),
        ({"validation": (torch.zeros(3, 4), torch.zeros(3, dtype=torch.long))}, "validation"),
        ({"model": "mlp"}, "model"),
        ({"loss": "mse"}, "loss"),
        ({"classification": True, "train": (torch.zeros(3, 8), torch.zeros(3))}, "classification"),
        ({"train": (torch.zeros(3, 8), torch.zeros(3))}, "loss"),
    ],
)
def test_a_malformed_task_is_refused_naming_the_field(changes, field):
    task = load_task("user_tasks:blobs")
    values = {
        "name": task.name,
        "train": task.train,
        "validation": task.validation,
        "test": task.test,
        "model": task.model,
        **changes,
    }
    with pytest.raises(PlanError) as info:
        Task(**values)
    assert info.value.field == field


def test_a_dataset_is_stacked_into_tensors_and_a_model_factory_returning_junk_is_refused():
    x, y = torch.randn(30, 4), torch.randint(0, 2, (30,))
    dataset = torch.utils.data.TensorDataset(x, y)
    task = Task(name="ds", train=dataset, validation=dataset, test=dataset, model=lambda: 3)
    assert torch.equal(task.train[0], x) and torch.equal(task.train[1], y)
    plan = task.plan(batch_size=10, noise_multiplier=1.0, epochs=1, delta=1e-3)
    with pytest.raises(PlanError, match="returned something else") as info:
        train(plan, Constant(lr=0.1), _options(), task=task)
    assert info.value.field == "model"


def test_the_model_is_built_from_the_runs_seed_and_no_global_random_state_changes():
    task = load_task("user_tasks:blobs")
    plan = task.plan(batch_size=50, noise_multiplier=1.0, epochs=1, delta=1e-4)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = train(plan, Constant(lr=0.1), _options(reproducible=True), task=task)
    assert torch.equal(torch.get_rng_state(), before)
    second = train(plan, Constant(lr=0.1), _options(reproducible=True), task=task)
    assert first.records[-1].train_loss == second.records[-1].train_loss


def test_the_store_records_the_task_and_refuses_to_resume_on_other_data(store):
    task = load_task("user_tasks:blobs")
    plan = task.plan(batch_size=50, noise_multiplier=1.0, epochs=3, delta=1e-4)
    ids = []
    run = start_run(
        plan,
        Constant(lr=0.3),
        _options(),
        store=store,
        task=task,
        on_start=lambda r: ids.append(r.id),
        on_epoch=lambda r: store.request_stop(ids[0]),
    )
    assert run.status == "stopped" and len(run.records) == 1
    assert (run.task, run.task_spec) == ("blobs", "user_tasks:blobs")
    assert run.task_fingerprint == task.fingerprint()
    assert run.task_fingerprint["train"]["examples"] == 400
    assert run.to_dict()["task"] == "blobs"

    other = load_task("user_tasks:blobs_other_data")
    with pytest.raises(PlanError, match="the data run 1 was trained on") as info:
        resume(run.id, store=store, task=other)
    assert info.value.field == "task"
    text = str(info.value)
    assert task.fingerprint()["train_sha256"][:16] in text
    assert other.fingerprint()["train_sha256"][:16] in text
    assert store.get_run(run.id).status == "stopped"  # nothing changed

    # Without a task, the stored module:function is imported again.
    finished = resume(run.id, store=store)
    assert finished.status == "finished"
    assert [r.steps for r in finished.records] == [8, 16, 24]


def test_an_mnist_run_records_the_built_in_task_and_its_fingerprint(mnist_dir, store):
    from dpplan.train import training_set_size

    options = _options(
        subset=300, validation_size=100, test_subset=100, data_dir=str(mnist_dir), model="seed"
    )
    plan = dpplan.TrainingPlan(
        dataset_size=training_set_size(options),
        batch_size=100,
        noise_multiplier=1.0,
        epochs=1,
        delta=1e-4,
    )
    run = start_run(plan, Constant(lr=0.1), options, store=store)
    assert run.status == "finished" and (run.task, run.task_spec) == ("mnist-seed", None)
    assert run.task_fingerprint["train"] == {
        "examples": 300,
        "input_shape": [1, 28, 28],
        "input_dtype": "float32",
        "target_shape": [],
        "target_dtype": "int64",
    }
    assert len(run.task_fingerprint["train_sha256"]) == 64


def test_the_record_types_import_neither_torch_nor_sqlite():
    import subprocess
    import sys

    code = (
        "import sys, dpplan.records; "
        "assert not {'torch', 'sqlite3'} & set(sys.modules), sorted(sys.modules); "
        "from dpplan.store import EpochRecord; assert EpochRecord is dpplan.records.EpochRecord"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_comparing_schedules_on_a_regression_task_selects_by_validation_loss(store):
    from dpplan.train.compare import compare_schedules

    task = load_task("user_tasks:regression")
    plan = task.plan(batch_size=60, noise_multiplier=0.5, epochs=2, delta=1e-4)
    result = compare_schedules(
        plan,
        grids={"constant": (Constant(lr=0.001), Constant(lr=0.5))},
        seeds=(0, 1),
        options=_options(),
        store=store,
        task=task,
    )
    (summary,) = result.summaries
    tried = [store.get_run(i) for i in range(1, 3)]
    losses = [run.records[-1].validation_loss for run in tried]
    assert summary.selected == tried[losses.index(min(losses))].schedule
    assert summary.selected["lr"] == 0.5  # lr 0.001 barely moves in 10 steps
    assert summary.measure == "test_loss" and len(summary.run_ids) == 2
    finals = [store.get_run(i).records[-1].test_loss for i in summary.run_ids]
    assert summary.accuracy_mean[-1] == pytest.approx(sum(finals) / 2)
    assert summary.accuracy_std[-1] == pytest.approx(abs(finals[0] - finals[1]) / math.sqrt(2))
    assert summary.final_values == pytest.approx(finals)  # the sample std's n - 1 = 1
    assert summary.best_accuracy_at(math.inf) == min(summary.accuracy_mean)
    assert all(store.get_run(i).task == "linear-regression" for i in summary.run_ids)


def test_a_queued_task_run_is_imported_again_by_the_worker(store):
    from dpplan.train.runs import queue_run, run_queued

    task = load_task("user_tasks:regression")
    plan = task.plan(batch_size=60, noise_multiplier=1.0, epochs=1, delta=1e-4)
    run_id = queue_run(plan, Constant(lr=0.3), _options(), store=store, task=task)
    assert store.get_run(run_id).task_spec == "user_tasks:regression"
    assert store.claim_next_queued() == run_id
    finished = run_queued(run_id, store=store)
    assert finished.status == "finished" and finished.task == "linear-regression"
    assert math.isfinite(finished.records[-1].test_loss)

    unnamed = Task(
        name="unnamed",
        train=task.train,
        validation=task.validation,
        test=task.test,
        model=task.model,
        loss=F.mse_loss,
    )
    with pytest.raises(PlanError, match="loaded with load_task") as info:
        queue_run(plan, Constant(lr=0.3), _options(), store=store, task=unnamed)
    assert info.value.field == "task" and len(store.list_runs()) == 1


def test_a_sweep_trial_payload_carrying_a_task_spec_trains_that_task():
    from dpplan.train.trial import run_trial

    task = load_task("user_tasks:blobs")
    plan = task.plan(batch_size=50, noise_multiplier=1.0, epochs=1, delta=1e-4)
    payload = {
        "key": "t",
        "plan": plan.to_dict(),
        "schedule": Constant(lr=0.3).to_dict(),
        "options": _options().to_dict(),
        "task": "user_tasks:blobs",
    }
    result = run_trial(payload)["result"]
    assert result.task == "blobs" and result.records[-1].steps == 8
    with pytest.raises(PlanError, match="no attribute 'nope'"):
        run_trial({**payload, "task": "user_tasks:nope"})


def test_a_user_tasks_run_report_names_the_task(store):
    from dpplan.report import build_run_report, render

    task = load_task("user_tasks:blobs")
    plan = task.plan(batch_size=50, noise_multiplier=1.0, epochs=1, delta=1e-4)
    run = start_run(plan, Constant(lr=0.3), _options(), store=store, task=task)
    report = build_run_report(store, run.id)
    assert (report.run.task, report.run.task_spec) == ("blobs", "user_tasks:blobs")
    assert r"| Task | blobs (user\_tasks\:blobs) |" in render(report, "md")  # user text: escaped
    assert '"task_spec": "user_tasks:blobs"' in render(report, "json")
