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


@pytest.mark.parametrize("engine", ["fused", "opacus"])
def test_cuda_trains_a_phased_plan_with_new_sigma_and_clipping_at_the_boundary(mnist_dir, engine):
    # The compiled fused engine rebuilds its per-example function when C changes and meets
    # a new static batch cap when B changes; the run's own CUDA random state drives dropout.
    import torch

    from dpplan.train import Constant, train

    options = RunOptions(
        subset=2000,
        validation_size=500,
        test_subset=500,
        data_dir=str(mnist_dir),
        device="cuda",
        method="rdp",
        engine=engine,
    )
    first = dpplan.TrainingPlan(
        dataset_size=training_set_size(options),
        batch_size=100,
        noise_multiplier=1.0,
        epochs=1,
        delta=1e-5,
    )
    second = first.replace(batch_size=250, noise_multiplier=2.0, epochs=2, max_grad_norm=0.5)
    plan = dpplan.PhasedPlan(phases=[first, second], phase_steps=[None, 11])
    before = torch.cuda.get_rng_state()
    result = train(plan, Constant(lr=0.5), options)
    assert torch.equal(torch.cuda.get_rng_state(), before)  # the global state is untouched
    assert result.status == "finished" and result.device.startswith("cuda")
    assert [r.steps for r in result.records] == [20, 28, 31]
    assert result.records[-1].epsilon == pytest.approx(dpplan.epsilon(plan, method="rdp"))
    assert result.records[-1].epsilon_opacus == pytest.approx(
        result.records[-1].epsilon_rdp, rel=1e-2
    )
