"""GPU path of the trainer (skipped without CUDA; CI has none)."""

from __future__ import annotations

import pytest

import dpplan
from dpplan.train import OneCycle, RunOptions, start_run, training_set_size

pytestmark = pytest.mark.gpu


def test_cuda_run_counts_steps_and_matches_opacus(mnist_dir, store):
    options = RunOptions(
        subset=6000,
        validation_size=1000,
        test_subset=1000,
        data_dir=str(mnist_dir),
        device="cuda",
        method="rdp",
    )
    plan = dpplan.TrainingPlan(
        dataset_size=training_set_size(options),
        batch_size=256,
        noise_multiplier=1.0,
        epochs=2,
        delta=1e-5,
    )
    run = start_run(plan, OneCycle(max_lr=0.5), options, store=store)  # 4.0 diverged on an H200
    assert run.device.startswith("cuda") and run.status == "finished"
    assert [r.steps for r in run.records] == [plan.steps_after(1), plan.steps_after(2)]
    for record in run.records:
        assert record.epsilon_opacus == pytest.approx(record.epsilon_rdp, rel=1e-3)
    assert run.records[-1].test_accuracy > 0.6


def test_auto_device_picks_cuda(mnist_dir, store):
    options = RunOptions(
        subset=1200,
        validation_size=200,
        test_subset=200,
        data_dir=str(mnist_dir),
        device="auto",
        method="rdp",
    )
    plan = dpplan.TrainingPlan(
        dataset_size=training_set_size(options),
        batch_size=64,
        noise_multiplier=1.0,
        epochs=1,
        delta=1e-4,
    )
    assert start_run(plan, OneCycle(max_lr=1.0), options, store=store).device.startswith("cuda")
