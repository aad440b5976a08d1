"""The trainer trains phased and step-level plans (issue 20 §1-2) on a small real-MNIST subset.

The sample rate and σ change at each phase boundary (checked on the engine's own accountant,
which every noisy step feeds), training stops after exactly the plan's steps (also mid-epoch),
and the records' ε are the phased plan's ε.
"""

from __future__ import annotations

import math

import pytest

import dpplan
from dpplan.train import Constant, RunOptions, Trainer, resume, start_run, train, training_set_size
from dpplan.train.engines import ENGINES


def _options(mnist_dir, **changes):
    values = {
        "subset": 600,
        "validation_size": 200,
        "test_subset": 200,
        "data_dir": str(mnist_dir),
        "device": "cpu",
        "method": "rdp",
        "seed": 5,
    }
    values.update(changes)
    return RunOptions(**values)


def _phase(options, **changes):
    values = {
        "dataset_size": training_set_size(options),
        "batch_size": 60,
        "noise_multiplier": 1.0,
        "epochs": 1,
        "delta": 1e-4,
    }
    values.update(changes)
    return dpplan.TrainingPlan(**values)


def _merged(history):
    return [(round(sigma, 12), round(rate, 12), count) for sigma, rate, count in history]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_two_phase_plan_changes_rate_and_sigma_at_the_boundary_and_stops_mid_epoch(
    mnist_dir, engine
):
    options = _options(mnist_dir, engine=engine)
    first = _phase(options, batch_size=60, noise_multiplier=1.0, epochs=1)  # 10 steps
    second = _phase(options, batch_size=120, noise_multiplier=2.0, epochs=2)  # 5 steps/epoch
    plan = dpplan.PhasedPlan(phases=[first, second], phase_steps=[None, 7])
    assert plan.epoch_ends() == (10, 15, 17)

    records = []
    trainer = Trainer(plan, Constant(lr=0.1), options)
    status, reason = trainer.run(on_epoch=records.append)

    assert (status, reason) == ("finished", None)
    assert [r.epoch for r in records] == [1, 2, 3]
    assert [r.steps for r in records] == [10, 15, 17]  # the last epoch ends mid-epoch
    assert trainer.sampled_steps == trainer.steps == plan.total_steps == 17
    # The engine's accountant saw 10 steps at (σ=1, q=0.1), then 7 at (σ=2, q=0.2).
    assert _merged(trainer.engine.accountant.history) == [(1.0, 0.1, 10), (2.0, 0.2, 7)]
    # The records' ε are the phased plan's: its curve, its final ε.
    curve = dpplan.epsilon_curve(plan, method="rdp")
    assert [r.epsilon for r in records] == pytest.approx(list(curve.epsilons), rel=1e-12)
    assert records[-1].epsilon == pytest.approx(dpplan.epsilon(plan, method="rdp"), rel=1e-12)
    # Opacus' accountant composed the same heterogeneous steps: it agrees with dpplan's RDP.
    assert records[-1].epsilon_opacus == pytest.approx(records[-1].epsilon_rdp, rel=1e-2)
    assert not any("disagree" in w for w in trainer.warnings)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_step_level_plan_trains_exactly_its_steps_with_its_epsilon(mnist_dir, engine):
    # The step-level plan of issue 22: S steps at batch B/K with σ/K, stopping mid-epoch.
    options = _options(mnist_dir, engine=engine, method="prv")
    phase = _phase(options, batch_size=30, noise_multiplier=0.5, epochs=2)  # 20 steps/epoch
    plan = dpplan.PhasedPlan(phases=[phase], phase_steps=[27])

    result = train(plan, Constant(lr=0.1), options)

    assert result.status == "finished" and result.plan == plan
    assert [r.steps for r in result.records] == [20, 27]
    assert result.records[-1].epsilon == pytest.approx(dpplan.epsilon(plan, method="prv"), rel=1e-9)
    assert result.records[-1].epsilon_rdp == pytest.approx(
        dpplan.epsilon(plan, method="rdp"), rel=1e-9
    )
    # Below the whole two-epoch plan's ε: the 13 steps not taken are not charged.
    assert result.records[-1].epsilon < dpplan.epsilon(phase, method="prv")


def test_a_one_phase_plan_without_phase_steps_trains_like_its_training_plan(mnist_dir):
    options = _options(mnist_dir, reproducible=True)
    phase = _phase(options, epochs=2)
    alone = train(phase, Constant(lr=0.1), options)
    phased = train(dpplan.PhasedPlan(phases=[phase]), Constant(lr=0.1), options)
    for a, b in zip(alone.records, phased.records, strict=True):
        assert (a.steps, a.epsilon, a.epsilon_rdp) == (b.steps, b.epsilon, b.epsilon_rdp)
        assert a.train_loss == b.train_loss and a.test_accuracy == b.test_accuracy


def test_a_phased_run_is_stored_reloaded_and_resumed(mnist_dir, store, capsys):
    options = _options(mnist_dir)
    first = _phase(options, batch_size=60, noise_multiplier=1.0, epochs=1)
    second = _phase(options, batch_size=120, noise_multiplier=2.0, epochs=2)
    plan = dpplan.PhasedPlan(phases=[first, second], phase_steps=[None, 7])
    ids = []
    run = start_run(
        plan,
        Constant(lr=0.1),
        options,
        store=store,
        on_start=lambda r: ids.append(r.id),
        on_epoch=lambda r: r.epoch == 2 and store.request_stop(ids[0]),
    )
    assert run.status == "stopped"
    stored = store.get_run(run.id)
    assert isinstance(stored.plan, dpplan.PhasedPlan) and stored.plan == plan
    assert [r.steps for r in stored.records] == [10, 15]

    finished = resume(run.id, store=store)

    assert finished.status == "finished"
    assert [r.steps for r in finished.records] == [10, 15, 17]
    assert finished.records[-1].epsilon == pytest.approx(
        dpplan.epsilon(plan, method="rdp"), rel=1e-12
    )
    assert math.isfinite(finished.records[-1].test_accuracy)
    # The CLI lists and shows the stored phased run (its 3 epochs, its phase table).
    from dpplan.cli import main

    capsys.readouterr()
    assert main(["runs"]) == 0
    assert "  3/3  " in capsys.readouterr().out
    assert main(["runs", "show", str(run.id)]) == 0
    assert f"run {run.id}: finished" in capsys.readouterr().out
