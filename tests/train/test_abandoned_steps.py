"""A stop mid-epoch: the abandoned epoch's noisy steps are stored and counted in the run's ε.

The steps of an epoch a stop abandons are not recorded, and a resume retrains that epoch from
the last checkpoint, but they touched the data: the run's ε must count them (a real tiny run).
"""

from __future__ import annotations

import dataclasses

import pytest
from tiny_runs import tiny_options, tiny_plan

import dpplan
from dpplan.accounting import METHODS
from dpplan.cli import main
from dpplan.report import build_run_report
from dpplan.run_policy import epoch_epsilon, run_epsilon
from dpplan.train import Constant, core, resume, start_run

ABANDONED = 3  # steps of epoch 2 taken before the stop


def _smallest_epsilon(plan: dpplan.TrainingPlan, steps: int) -> float:
    """ε after ``steps`` steps of ``plan``'s mechanism, the smallest bound of every method,
    from dpplan's public API (the plan given enough epochs to hold the steps)."""
    epochs = -(-steps // plan.steps_per_epoch)
    longer = plan.replace(epochs=max(plan.epochs, epochs))
    return min(dpplan.epsilon_at(longer, steps=steps, method=method) for method in METHODS)


def _stopped_mid_epoch(store, options, plan, monkeypatch):
    # Poll should_stop before every step and report progress after every step, so the stop
    # requested after step ABANDONED of epoch 2 lands before step ABANDONED + 1.
    monkeypatch.setattr(core, "STOP_POLL_SECONDS", 0.0)
    monkeypatch.setattr(core, "PROGRESS_SECONDS", 0.0)
    ids, recorded = [], []

    def on_step(step: int, steps_per_epoch: int) -> None:
        if recorded and step == ABANDONED:
            store.request_stop(ids[0])

    return start_run(
        plan,
        Constant(lr=0.2),
        options,
        store=store,
        on_start=lambda run: ids.append(run.id),
        on_epoch=lambda record: recorded.append(record.epoch),
        on_step=on_step,
    )


def test_a_stop_mid_epoch_counts_its_steps_before_and_after_resume(
    mnist_dir, store, monkeypatch, capsys
):
    options = tiny_options(mnist_dir)
    plan = tiny_plan(options)
    assert plan.steps_per_epoch > ABANDONED + 1 and plan.epochs == 2

    run = _stopped_mid_epoch(store, options, plan, monkeypatch)
    assert run.status == "stopped" and [r.epoch for r in run.records] == [1]
    assert run.abandoned_steps == ABANDONED
    assert f"during epoch 2, after {ABANDONED} of its steps" in run.stop_reason
    spent = plan.steps_per_epoch + ABANDONED
    value, method = run_epsilon(run)
    assert value == _smallest_epsilon(plan, spent)
    assert method in METHODS
    assert value > epoch_epsilon(run.records[0], run.method)[0]  # more than epoch 1 alone

    # `runs show` says so, with the run's ε.
    assert main(["runs", "show", str(run.id)]) == 0
    shown = capsys.readouterr().out
    assert f"{ABANDONED} steps of an abandoned (stopped) epoch are counted" in shown

    # Resume retrains epoch 2 from the checkpoint: the data saw the plan's steps and the
    # abandoned ones.
    monkeypatch.setattr(core, "STOP_POLL_SECONDS", 2.0)
    finished = resume(run.id, store=store)
    assert finished.status == "finished" and [r.epoch for r in finished.records] == [1, 2]
    assert finished.abandoned_steps == ABANDONED  # kept: nothing new was abandoned
    value, _ = run_epsilon(finished)
    assert value == _smallest_epsilon(plan, plan.total_steps + ABANDONED)
    plan_only = run_epsilon(dataclasses.replace(finished, abandoned_steps=0))
    assert plan_only == epoch_epsilon(finished.records[-1], finished.method)  # as before
    assert value > plan_only[0]
    assert plan_only[0] == _smallest_epsilon(plan, plan.total_steps)

    # The run's report counts them too (rounded up to a whole epoch: an upper bound).
    report = build_run_report(store, run.id)
    assert report.total_steps == plan.total_steps + plan.steps_per_epoch
    assert report.epsilon >= value
    assert any(
        w.startswith(f"{ABANDONED} steps of an abandoned (stopped) epoch are counted")
        for w in report.warnings
    )


def test_a_run_without_a_stop_has_no_abandoned_steps(mnist_dir, store):
    options = tiny_options(mnist_dir)
    plan = tiny_plan(options, epochs=1)
    run = start_run(plan, Constant(lr=0.2), options, store=store)
    assert run.status == "finished" and run.abandoned_steps == 0
    assert run_epsilon(run) == epoch_epsilon(run.records[-1], run.method)
    report = build_run_report(store, run.id)
    assert report.total_steps == plan.total_steps
    assert not any("abandoned" in w for w in report.warnings)


def test_an_error_mid_epoch_counts_the_steps_taken(mnist_dir, store, monkeypatch):
    options = tiny_options(mnist_dir)
    plan = tiny_plan(options)
    real_step = core.Trainer.step
    calls = []

    def failing_step(self):
        calls.append(1)
        if len(calls) > plan.steps_per_epoch + ABANDONED:  # step ABANDONED + 1 of epoch 2
            raise RuntimeError("a crash mid-epoch")
        return real_step(self)

    monkeypatch.setattr(core.Trainer, "step", failing_step)
    with pytest.raises(RuntimeError, match="a crash mid-epoch"):
        start_run(plan, Constant(lr=0.2), options, store=store)
    [run] = store.list_runs()
    assert run.status == "failed" and len(run.records) == 1
    assert run.abandoned_steps == ABANDONED
    assert run_epsilon(run)[0] == _smallest_epsilon(plan, plan.steps_per_epoch + ABANDONED)
