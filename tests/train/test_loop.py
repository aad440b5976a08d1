"""CPU smoke tests of the DP-SGD trainer on a small real-MNIST subset."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import dpplan
from dpplan.errors import DataError, PlanError
from dpplan.train import Constant, OneCycle, Plateau, RunOptions, resume, train, training_set_size


def _options(mnist_dir, **changes):
    values = dict(subset=1600, validation_size=400, test_subset=500, data_dir=str(mnist_dir),
                  device="cpu", method="rdp", seed=3)
    values.update(changes)
    return RunOptions(**values)


def _plan(options, **changes):
    values = dict(dataset_size=training_set_size(options), batch_size=64, noise_multiplier=1.0,
                  epochs=2, delta=1e-4)
    values.update(changes)
    return dpplan.TrainingPlan(**values)


def test_smoke_run_counts_steps_and_matches_opacus(mnist_dir, store):
    options = _options(mnist_dir)
    plan = _plan(options)
    seen = []
    run = train(plan, OneCycle(max_lr=0.5), options, store=store, on_epoch=seen.append)
    assert run.status == "finished" and run.device == "cpu"
    assert [r.epoch for r in run.records] == [1, 2] == [r.epoch for r in seen]
    # Exactly steps_per_epoch optimizer steps per epoch, counted by the optimizer hook.
    assert [r.steps for r in run.records] == [plan.steps_after(1), plan.steps_after(2)]
    curve = dpplan.epsilon_curve(plan, method="rdp")
    for record, expected in zip(run.records, curve.epsilons):
        assert record.epsilon == expected
        assert record.epsilon_opacus == pytest.approx(record.epsilon_rdp, rel=1e-3)
        assert 0.0 <= record.test_accuracy <= 1.0 and math.isfinite(record.train_loss)
    assert run.warnings == ()
    # The store holds the same records, and the run serialises.
    stored = store.get_run(run.id)
    assert stored.records == run.records
    data = json.loads(json.dumps(stored.to_dict()))
    assert data["plan"] == plan.to_dict() and data["records"][1]["steps"] == plan.total_steps
    assert store.checkpoint_path(run.id).exists()


def test_training_learns_something(mnist_dir, store):
    options = _options(mnist_dir, subset=6000, validation_size=1000, test_subset=1000)
    plan = _plan(options, batch_size=256, noise_multiplier=0.8, epochs=2)
    run = train(plan, Constant(lr=2.0, momentum=0.5), options, store=store)
    assert run.records[-1].test_accuracy > 0.5, run.records


def test_reproducible_runs_repeat_and_carry_a_warning(mnist_dir, store):
    options = _options(mnist_dir, method="rdp", reproducible=True)
    plan = _plan(options, epochs=1)
    first = train(plan, Constant(lr=0.3), options, store=store)
    second = train(plan, Constant(lr=0.3), options, store=store)
    assert first.records[0].train_loss == second.records[0].train_loss
    assert first.records[0].test_accuracy == second.records[0].test_accuracy
    assert any("no privacy guarantee" in w for w in first.warnings)


def test_noise_and_sampling_do_not_come_from_the_public_seed(mnist_dir, store):
    # Same seed, same everything: the secret noise and sampling still differ between runs.
    options = _options(mnist_dir, method="rdp")
    plan = _plan(options, epochs=1)
    first = train(plan, Constant(lr=0.3), options, store=store)
    second = train(plan, Constant(lr=0.3), options, store=store)
    assert first.records[0].train_loss != second.records[0].train_loss
    assert first.warnings == ()


def test_validation_split_does_not_depend_on_the_run_seed(mnist_dir):
    from dpplan.train.loop import _Run, resolve_device

    first = _Run(_plan(_options(mnist_dir)), Constant(lr=0.1), _options(mnist_dir, seed=1),
                 resolve_device("cpu"))
    second = _Run(_plan(_options(mnist_dir)), Constant(lr=0.1), _options(mnist_dir, seed=2),
                  resolve_device("cpu"))
    assert torch.equal(first.val_x, second.val_x) and torch.equal(first.train_y, second.train_y)


def test_non_private_baseline_reports_infinite_epsilon(mnist_dir, store):
    options = _options(mnist_dir, private=False)
    run = train(_plan(options, epochs=1), Plateau(lr=0.1), options, store=store)
    record = run.records[0]
    assert math.isinf(record.epsilon) and math.isinf(record.epsilon_opacus)
    assert json.loads(json.dumps(run.to_dict()))["records"][0]["epsilon"] == "inf"
    assert not run.private


def test_target_epsilon_stops_before_exceeding(mnist_dir, store):
    options = _options(mnist_dir)
    plan = _plan(options, epochs=4)
    curve = dpplan.epsilon_curve(plan, method="rdp").epsilons
    options = _options(mnist_dir, target_epsilon=(curve[1] + curve[2]) / 2)
    run = train(plan, Constant(lr=0.3), options, store=store)
    assert len(run.records) == 2 and run.records[-1].epsilon <= options.target_epsilon
    assert run.status == "finished" and "would exceed target_epsilon" in run.stop_reason


def test_dataset_size_must_match_the_data(mnist_dir, store):
    options = _options(mnist_dir)
    with pytest.raises(PlanError, match=r"dataset_size=60000 is invalid: must be 1200"):
        train(_plan(options, dataset_size=60000), Constant(lr=0.1), options, store=store)
    [failed] = store.list_runs()
    assert failed.status == "failed" and "dataset_size" in failed.error


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"model": "resnet"}, "model='resnet'"),
        ({"activation": "tanh"}, "activation='tanh'"),
        ({"device": "tpu"}, "device='tpu'"),
        ({"validation_size": 0}, "validation_size=0"),
        ({"subset": 70000}, "subset=70000"),
        ({"seed": -1}, "seed=-1"),
        ({"target_epsilon": float("nan")}, "target_epsilon=nan"),
        ({"method": "gdp"}, "method='gdp'"),
    ],
)
def test_bad_options_are_refused_before_anything_is_stored(mnist_dir, store, changes, field):
    with pytest.raises(PlanError, match=field):
        _options(mnist_dir, **changes)
    assert store.list_runs() == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_requested_without_cuda(mnist_dir, store):
    options = _options(mnist_dir, device="cuda")
    with pytest.raises(PlanError, match="device='cuda'"):
        train(_plan(options), Constant(lr=0.1), options, store=store)
    assert store.list_runs() == []


def test_missing_data_is_a_failed_run(tmp_path, store):
    options = RunOptions(subset=1000, validation_size=100, data_dir=str(tmp_path / "none"),
                         download=False, device="cpu")
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        train(_plan(options), Constant(lr=0.1), options, store=store)
    assert [run.status for run in store.list_runs()] == ["failed"]


_CHILD = """
import sys
import dpplan
from dpplan.train import Constant, RunOptions, train, training_set_size
options = RunOptions(subset=1600, validation_size=400, test_subset=200, data_dir=sys.argv[1],
                     device="cpu", method="rdp", seed=5)
plan = dpplan.TrainingPlan(dataset_size=training_set_size(options), batch_size=32,
                           noise_multiplier=1.0, epochs=int(sys.argv[2]), delta=1e-4)
train(plan, Constant(lr=0.2, momentum=0.5), options)
"""


def _start_child(mnist_dir, home, epochs):
    env = dict(os.environ, DPPLAN_HOME=str(home))
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(mnist_dir), str(epochs)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_sigkill_mid_run_leaves_epochs_intact_and_resumes(mnist_dir, tmp_path):
    from dpplan.store import RunStore

    home = tmp_path / "home"
    child = _start_child(mnist_dir, home, epochs=40)
    deadline = time.monotonic() + 120
    store = None
    try:
        while time.monotonic() < deadline:
            if (home / "runs.sqlite3").exists():
                store = RunStore(home)
                runs = store.list_runs()
                if runs and len(runs[0].records) >= 2:
                    break
            if child.poll() is not None:
                pytest.fail(f"child exited early: {child.stderr.read().decode()[-2000:]}")
            time.sleep(0.05)
        else:
            pytest.fail("child did not finish two epochs in time")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    [run] = store.list_runs()
    assert run.status == "interrupted"
    done = len(run.records)
    assert done >= 2 and [r.epoch for r in run.records] == list(range(1, done + 1))
    assert [r.steps for r in run.records] == [run.plan.steps_after(e) for e in range(1, done + 1)]

    # Resume from the last checkpoint with the accounting intact; stop after a few epochs.
    short = run.plan.epochs
    finished = resume(run.id, store=store, on_epoch=lambda r: r.epoch >= done + 2 and
                      store.request_stop(run.id))
    assert finished.status == "stopped"
    assert len(finished.records) >= done + 2
    steps = [r.steps for r in finished.records]
    assert steps == [run.plan.steps_after(e) for e in range(1, len(steps) + 1)]
    curve = dpplan.epsilon_curve(run.plan, method="rdp").epsilons
    for record in finished.records:
        assert record.epsilon == curve[record.epoch - 1]
        assert record.epsilon_opacus == pytest.approx(record.epsilon_rdp, rel=1e-3)
    assert short == 40


def test_resume_refuses_finished_runs(mnist_dir, store):
    options = _options(mnist_dir)
    run = train(_plan(options, epochs=1), Constant(lr=0.1), options, store=store)
    with pytest.raises(PlanError, match="an interrupted, stopped or failed run"):
        resume(run.id, store=store)
    with pytest.raises(PlanError, match="run_id=999"):
        resume(999, store=store)
