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
from dpplan.accounting import epoch_epsilons
from dpplan.errors import DataError, NotFoundError, PlanError, StateConflictError
from dpplan.run_policy import run_epsilon
from dpplan.train import (
    Constant,
    OneCycle,
    Plateau,
    RunOptions,
    Trainer,
    core,
    resume,
    start_run,
    training_set_size,
)
from dpplan.train.data import DATA_DIR_ENV, MIRRORS_ENV, MNIST_FILES


def _options(mnist_dir, **changes):
    values = {
        "subset": 1200,
        "validation_size": 400,
        "test_subset": 500,
        "data_dir": str(mnist_dir),
        "device": "cpu",
        "method": "rdp",
        "seed": 3,
    }
    values.update(changes)
    return RunOptions(**values)


def _plan(options, **changes):
    values = {
        "dataset_size": training_set_size(options),
        "batch_size": 64,
        "noise_multiplier": 1.0,
        "epochs": 2,
        "delta": 1e-4,
    }
    values.update(changes)
    return dpplan.TrainingPlan(**values)


def test_smoke_run_counts_steps_and_matches_opacus(mnist_dir, store, monkeypatch):
    # The one real end-to-end DP-SGD run of the default suite (a few seconds on CPU).
    monkeypatch.setattr(core, "PROGRESS_SECONDS", 0.0)  # report every step
    options = _options(mnist_dir)
    plan = _plan(options)
    seen, started, steps = [], [], []
    run = start_run(
        plan,
        OneCycle(max_lr=0.5),
        options,
        store=store,
        on_epoch=seen.append,
        on_start=started.append,
        on_step=lambda k, n: steps.append((len(seen), k, n)),
    )
    assert run.status == "finished" and run.device == "cpu"
    # The run is announced (stored, running, no epoch yet) before its first step, and every
    # step but an epoch's last reports its progress within the epoch.
    [first] = started
    assert first.id == run.id and first.status == "running" and first.records == ()
    per_epoch = plan.steps_per_epoch
    assert steps == [(done, k, per_epoch) for done in (0, 1) for k in range(1, per_epoch)]
    assert [r.epoch for r in run.records] == [1, 2] == [r.epoch for r in seen]
    # Exactly steps_per_epoch optimizer steps per epoch, counted by the optimizer hook.
    assert [r.steps for r in run.records] == [plan.steps_after(1), plan.steps_after(2)]
    curve = dpplan.epsilon_curve(plan, method="rdp")
    every = {m: dpplan.epsilon_curve(plan, method=m).epsilons for m in dpplan.METHODS}
    for record, expected in zip(run.records, curve.epsilons):
        assert record.epsilon == expected
        assert record.epsilon_opacus == pytest.approx(record.epsilon_rdp, rel=1e-3)
        assert 0.0 <= record.test_accuracy <= 1.0 and math.isfinite(record.train_loss)
        # Every method is recorded per epoch, so a run shows one ε (its smallest bound).
        assert record.epsilons == {m: every[m][record.epoch - 1] for m in dpplan.METHODS}
    assert run_epsilon(run) == min(run.records[-1].epsilons.items(), key=lambda kv: kv[1])[::-1]
    assert run.warnings == ()
    # The store holds the same records, and the run serialises.
    stored = store.get_run(run.id)
    assert stored.records == run.records
    data = json.loads(json.dumps(stored.to_dict()))
    assert data["plan"] == plan.to_dict() and data["records"][1]["steps"] == plan.total_steps
    assert store.checkpoint_path(run.id).exists()


@pytest.mark.slow
def test_training_learns_something(mnist_dir, store):
    options = _options(mnist_dir, subset=6000, validation_size=1000, test_subset=1000)
    plan = _plan(options, batch_size=256, noise_multiplier=0.8, epochs=2)
    run = start_run(plan, Constant(lr=2.0, momentum=0.5), options, store=store)
    assert run.records[-1].test_accuracy > 0.5, run.records


def test_reproducible_runs_repeat_and_carry_a_warning(mnist_dir, store):
    options = _options(mnist_dir, method="rdp", reproducible=True)
    plan = _plan(options, epochs=1)
    first = start_run(plan, Constant(lr=0.3), options, store=store)
    second = start_run(plan, Constant(lr=0.3), options, store=store)
    assert first.records[0].train_loss == second.records[0].train_loss
    assert first.records[0].test_accuracy == second.records[0].test_accuracy
    assert any("no privacy guarantee" in w for w in first.warnings)


def test_noise_and_sampling_do_not_come_from_the_public_seed(mnist_dir, store):
    # Same seed, same everything: the secret noise and sampling still differ between runs.
    options = _options(mnist_dir, method="rdp")
    plan = _plan(options, epochs=1)
    first = start_run(plan, Constant(lr=0.3), options, store=store)
    second = start_run(plan, Constant(lr=0.3), options, store=store)
    assert first.records[0].train_loss != second.records[0].train_loss
    assert first.warnings == ()


def test_validation_split_does_not_depend_on_the_run_seed_or_subset(mnist_dir):
    options = _options(mnist_dir, seed=1)
    smaller = _options(mnist_dir, seed=2, subset=800)
    first = Trainer(_plan(options), Constant(lr=0.1), options).data
    second = Trainer(_plan(smaller), Constant(lr=0.1), smaller).data
    assert len(first.train_x) == 1200 and len(second.train_x) == 800
    assert torch.equal(first.val_x, second.val_x) and torch.equal(first.val_y, second.val_y)
    assert torch.equal(first.train_x[:800], second.train_x)


def test_subset_counts_training_examples_and_the_split_is_fixed():
    from dpplan.train.core import split_indices
    from dpplan.train.specs import MNIST_TRAIN_SIZE

    full_train, full_validation = split_indices(RunOptions(validation_size=500))
    assert len(full_train) == MNIST_TRAIN_SIZE - 500 and len(full_validation) == 500
    assert not set(full_train.tolist()) & set(full_validation.tolist())
    for subset in (1, 1000, 30_000, MNIST_TRAIN_SIZE - 500):
        options = RunOptions(validation_size=500, subset=subset)
        assert training_set_size(options) == subset  # --subset N trains on N examples
        train_index, validation_index = split_indices(options)
        # The validation examples never depend on the subset, and the training examples are
        # the first N of the rest: no run trains on another run's validation examples.
        assert torch.equal(validation_index, full_validation)
        assert torch.equal(train_index, full_train[:subset])
    # A smaller validation set keeps its examples out of every larger one's training part.
    _, small_validation = split_indices(RunOptions(validation_size=200))
    assert set(small_validation.tolist()) <= set(full_validation.tolist())


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"subset": 0}, "subset=0"),
        ({"subset": 59_501, "validation_size": 500}, "subset=59501"),
        ({"validation_size": 60_000}, "validation_size=60000"),
        ({"data_dir": ""}, "data_dir=''"),
        ({"data_dir": 3}, "data_dir=3"),
    ],
)
def test_subset_and_data_dir_bounds(changes, field):
    with pytest.raises(PlanError, match=field):
        RunOptions(**changes)


def test_data_dir_is_stored_as_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert RunOptions(data_dir="../data/mnist").data_dir == str(tmp_path.parent / "data" / "mnist")
    assert RunOptions(data_dir=tmp_path / "m").to_dict()["data_dir"] == str(tmp_path / "m")
    assert RunOptions().data_dir is None  # the per-user cache folder
    monkeypatch.setenv(DATA_DIR_ENV, "from-env")
    assert RunOptions().data_dir == str(tmp_path / "from-env")
    assert RunOptions.from_dict(RunOptions().to_dict()).data_dir == str(tmp_path / "from-env")


def test_non_private_baseline_reports_infinite_epsilon(mnist_dir, store):
    options = _options(mnist_dir, private=False)
    run = start_run(_plan(options, epochs=1), Plateau(lr=0.1), options, store=store)
    record = run.records[0]
    assert math.isinf(record.epsilon) and math.isinf(record.epsilon_opacus)
    assert json.loads(json.dumps(run.to_dict()))["records"][0]["epsilon"] == "inf"
    assert not run.private


def test_target_epsilon_stops_before_exceeding(mnist_dir, store):
    # The target is checked against the ε every surface shows: the smallest upper bound.
    options = _options(mnist_dir)
    plan = _plan(options, epochs=4)
    headline = [min(values.values()) for values in epoch_epsilons(plan)]
    options = _options(mnist_dir, target_epsilon=(headline[1] + headline[2]) / 2)
    run = start_run(plan, Constant(lr=0.3), options, store=store)
    assert len(run.records) == 2 and run_epsilon(run)[0] <= options.target_epsilon
    assert run.status == "finished" and "would exceed target_epsilon" in run.stop_reason
    assert f"its ε={headline[2]:.4g} ({run_epsilon(run)[1]})" in run.stop_reason


def test_a_first_epoch_over_the_target_trains_nothing_and_says_so(mnist_dir, store):
    options = _options(mnist_dir, target_epsilon=0.5)
    plan = _plan(options, epochs=2)
    run = start_run(plan, Constant(lr=0.3), options, store=store)
    assert run.status == "not_started" and run.records == ()
    assert run.stop_reason.startswith("stopped before epoch 1: its ε=")
    assert not store.checkpoint_path(run.id).exists()


def test_dataset_size_must_match_the_data(mnist_dir, store):
    options = _options(mnist_dir)
    with pytest.raises(PlanError, match=r"dataset_size=60000 is invalid: must be 1200"):
        start_run(_plan(options, dataset_size=60000), Constant(lr=0.1), options, store=store)
    assert store.list_runs() == []  # an input error records no run


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
        start_run(_plan(options), Constant(lr=0.1), options, store=store)
    assert store.list_runs() == []


def _closed_mirror(monkeypatch):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv(MIRRORS_ENV, f"http://127.0.0.1:{port}/mnist/")


@pytest.mark.parametrize("download", [True, False])
@pytest.mark.parametrize("named_by", ["data_dir", "env"])
def test_mistyped_data_folder_is_refused_created_nowhere_and_stores_no_run(
    tmp_path, store, monkeypatch, download, named_by
):
    _closed_mirror(monkeypatch)
    typo = tmp_path / "mnsit"
    if named_by == "env":
        monkeypatch.setenv(DATA_DIR_ENV, str(typo))
        options = RunOptions(subset=1000, validation_size=100, download=download, device="cpu")
    else:
        options = RunOptions(
            subset=1000, validation_size=100, data_dir=str(typo), download=download, device="cpu"
        )
    with pytest.raises(DataError, match="does not exist") as info:
        start_run(_plan(options), Constant(lr=0.1), options, store=store)
    message = str(info.value)
    assert str(typo) in message and all(name in message for name in MNIST_FILES)
    assert "could not download" not in message
    assert not typo.exists()
    assert store.list_runs() == []


def test_folder_without_mnist_says_so_before_the_download_failure(tmp_path, store, monkeypatch):
    _closed_mirror(monkeypatch)
    empty = tmp_path / "empty"
    empty.mkdir()
    options = RunOptions(subset=1000, validation_size=100, data_dir=str(empty), device="cpu")
    with pytest.raises(DataError) as info:
        start_run(_plan(options), Constant(lr=0.1), options, store=store)
    message = str(info.value)
    assert message.startswith(f"MNIST data folder {str(empty)!r} does not hold MNIST: missing")
    assert "could not download" in message
    assert store.list_runs() == []


def test_resume_from_another_folder_and_with_another_data_dir(
    mnist_dir, store, tmp_path, monkeypatch
):
    # A run started with a relative --data-dir resumes from any folder, and resume can read
    # the same MNIST from another folder.
    (tmp_path / "a").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "a" / "mnist").symlink_to(mnist_dir, target_is_directory=True)
    (tmp_path / "b").symlink_to(mnist_dir, target_is_directory=True)
    monkeypatch.chdir(tmp_path / "a")
    options = _options("mnist", test_subset=200)
    plan = _plan(options, epochs=3)
    ids = []
    run = start_run(
        plan,
        Constant(lr=0.2),
        options,
        store=store,
        on_start=lambda r: ids.append(r.id),
        on_epoch=lambda r: store.request_stop(ids[0]),
    )
    assert run.status == "stopped" and len(run.records) == 1
    assert run.options["data_dir"] == str(tmp_path / "a" / "mnist")

    monkeypatch.chdir(tmp_path / "elsewhere")
    run = resume(run.id, store=store, on_epoch=lambda r: store.request_stop(run.id))
    assert run.status == "stopped" and len(run.records) == 2
    assert list((tmp_path / "elsewhere").iterdir()) == []

    missing = tmp_path / "missing"
    with pytest.raises(DataError, match="does not exist"):
        resume(run.id, store=store, data_dir=missing)
    assert not missing.exists()

    (tmp_path / "a" / "mnist").unlink()
    finished = resume(run.id, store=store, data_dir=tmp_path / "b")
    assert finished.status == "finished"
    assert [r.steps for r in finished.records] == [plan.steps_after(e) for e in (1, 2, 3)]
    curve = dpplan.epsilon_curve(plan, method="rdp").epsilons
    for record in finished.records:
        assert record.epsilon == curve[record.epoch - 1]
        assert record.epsilon_opacus == pytest.approx(record.epsilon_rdp, rel=1e-3)


_CHILD = """
import sys
import dpplan
from dpplan.train import Constant, RunOptions, start_run, training_set_size
options = RunOptions(subset=1200, validation_size=400, test_subset=200, data_dir=sys.argv[1],
                     device="cpu", method="rdp", seed=5)
plan = dpplan.TrainingPlan(dataset_size=training_set_size(options), batch_size=32,
                           noise_multiplier=1.0, epochs=int(sys.argv[2]), delta=1e-4)
start_run(plan, Constant(lr=0.2, momentum=0.5), options)
"""


def _start_child(mnist_dir, home, epochs):
    env = dict(os.environ, DPPLAN_HOME=str(home))
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(mnist_dir), str(epochs)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
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
    finished = resume(
        run.id, store=store, on_epoch=lambda r: r.epoch >= done + 2 and store.request_stop(run.id)
    )
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
    run = start_run(_plan(options, epochs=1), Constant(lr=0.1), options, store=store)
    with pytest.raises(StateConflictError, match="an interrupted, stopped or failed run"):
        resume(run.id, store=store)
    with pytest.raises(NotFoundError, match="run_id=999"):
        resume(999, store=store)


def test_sampled_batch_sizes_follow_poisson_at_the_plans_rate_and_every_draw_is_a_step(
    mnist_dir, monkeypatch
):
    # Issue 18: the sampler draws Binomial(N, q) batches (mean q·N, variance N·q·(1-q)), and
    # the steps accounted are the noisy steps the engine took, one per draw, empty ones too.
    options = _options(mnist_dir)
    plan = _plan(options, batch_size=48)
    trainer = Trainer(plan, Constant(lr=0.1), options)
    sizes = []
    monkeypatch.setattr(trainer.engine, "step", lambda x, y: sizes.append(len(x)) or 0.0)
    draws = 4000
    for _ in range(draws):
        trainer.step()
    n, q = len(trainer.data.train_x), plan.sample_rate
    assert n == plan.dataset_size
    mean = sum(sizes) / draws
    variance = sum((s - mean) ** 2 for s in sizes) / (draws - 1)
    expected_variance = n * q * (1 - q)
    standard_error = math.sqrt(expected_variance / draws)
    assert abs(mean - n * q) < 5 * standard_error  # a 5-sigma band: ±0.5 examples here
    assert 0.85 < variance / expected_variance < 1.15  # sd of this ratio ≈ 0.022 at 4000 draws
    monkeypatch.undo()  # the real engine: its accountant counts one step per draw
    real = Trainer(plan.replace(batch_size=1), Constant(lr=0.1), options)  # many empty draws
    before = real.steps
    for _ in range(20):
        real.step()
    assert real.steps - before == 20


def test_a_run_uses_its_threads_and_gives_the_callers_back(mnist_dir, store):
    # torch's thread count is process-wide: a run sets its own and restores the caller's.
    options = _options(mnist_dir, threads=2)
    seen = []
    before = torch.get_num_threads()  # 1 in the tests (conftest)
    assert before != 2
    result = core.train(
        _plan(options, epochs=1),
        Constant(lr=0.5),
        options,
        on_epoch=lambda record: seen.append(torch.get_num_threads()),
    )
    assert result.status == "finished" and seen == [2]
    assert torch.get_num_threads() == before
    run = start_run(_plan(options, epochs=1), Constant(lr=0.5), options, store=store)
    assert run.status == "finished" and torch.get_num_threads() == before
