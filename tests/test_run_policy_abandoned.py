"""The ε of a run with abandoned steps (an epoch a stop left mid-way), from stored records:
phased plans, whole-epoch composition, and runs without any (unchanged)."""

from __future__ import annotations

import subprocess
import sys

import dpplan
from dpplan.accounting import METHODS
from dpplan.run_policy import (
    abandoned_note,
    epochs_counted,
    run_epsilon,
    spent_phased,
    whole_epochs_spent,
)
from dpplan.store import EpochRecord, RunStore


def _record(epoch: int, steps: int) -> EpochRecord:
    return EpochRecord(
        epoch=epoch,
        steps=steps,
        epsilon=1.0,
        epsilon_rdp=1.0,
        epsilon_opacus=1.0,
        train_loss=0.5,
        validation_loss=0.5,
        validation_accuracy=0.9,
        test_accuracy=0.9,
        lr=0.1,
        seconds=1.0,
        epsilons={"rdp": 1.0},
    )


def _stopped(store: RunStore, plan, epochs: int, abandoned: int, group: str | None = None):
    run_id = store.create_run(
        group_id=group,
        plan=plan,
        schedule={"kind": "constant", "lr": 0.1},
        options={"method": "rdp"},
        device="cpu",
        seed=0,
        private=True,
        versions={},
    )
    phased = plan if isinstance(plan, dpplan.PhasedPlan) else dpplan.PhasedPlan(phases=(plan,))
    for epoch in range(1, epochs + 1):
        store.record_epoch(run_id, _record(epoch, phased.steps_after(epoch)))
    store.finish_run(run_id, status="stopped", abandoned_steps=abandoned)
    return store.get_run(run_id)


def _smallest(plan) -> float:
    return min(dpplan.epsilon(plan, method=method) for method in METHODS)


def test_a_phased_runs_abandoned_steps_are_at_the_dominating_mechanism(tmp_path):
    first = dpplan.TrainingPlan(
        dataset_size=1000, batch_size=50, noise_multiplier=1.2, epochs=1, delta=1e-5
    )
    second = first.replace(batch_size=100, noise_multiplier=1.5, epochs=2)
    plan = dpplan.PhasedPlan(phases=[first, second])
    run = _stopped(RunStore(tmp_path), plan, epochs=1, abandoned=5)
    assert run.abandoned_steps == 5 and run.epochs_spent == 1
    # Largest sample rate (batch 100) with the smallest σ (1.2): dominates both phases.
    dominating = first.replace(batch_size=100, epochs=1)
    expected = dpplan.PhasedPlan(phases=[first, dominating], phase_steps=[None, 5])
    assert spent_phased(run) == expected
    value, _ = run_epsilon(run)
    assert value == _smallest(expected)
    # An upper bound whichever phase the 5 steps were in.
    for phase in (first, second):
        taken = dpplan.PhasedPlan(phases=[first, phase.replace(epochs=1)], phase_steps=[None, 5])
        assert value >= _smallest(taken)
    assert value > _smallest(first)  # more than the recorded epoch alone
    assert abandoned_note(run) == "5 steps of an abandoned (stopped) epoch are counted"
    assert epochs_counted(run) == 1 and whole_epochs_spent(run) == (plan, 1)


def test_whole_epoch_composition_rounds_abandoned_steps_up(tmp_path):
    plan = dpplan.TrainingPlan(
        dataset_size=1000, batch_size=100, noise_multiplier=1.0, epochs=2, delta=1e-5
    )
    store = RunStore(tmp_path)
    resumed = _stopped(store, plan, epochs=2, abandoned=3)  # stopped, then resumed to the end
    assert epochs_counted(resumed) == 3
    assert whole_epochs_spent(resumed) == (plan.replace(epochs=3), 3)
    assert abandoned_note(resumed) == "3 steps of an abandoned (stopped) epoch are counted"
    one = _stopped(store, plan, epochs=0, abandoned=1)
    assert abandoned_note(one) == "1 step of an abandoned (stopped) epoch is counted"
    assert epochs_counted(one) == 1 and whole_epochs_spent(one) == (plan, 1)
    # No epoch recorded, yet one noisy step was taken: ε of that step, not None.
    assert run_epsilon(one)[0] == min(
        dpplan.epsilon_at(plan, steps=1, method=method) for method in METHODS
    )
    assert spent_phased(one) == dpplan.PhasedPlan(phases=[plan.replace(epochs=1)], phase_steps=[1])
    clean = _stopped(store, plan, epochs=1, abandoned=0)
    assert whole_epochs_spent(clean) == (clean.plan, 1) and abandoned_note(clean) is None
    assert run_epsilon(clean) == (1.0, "rdp")  # the recorded ε, as before


def test_a_group_reports_tuning_cost_counts_and_says_it_counts_abandoned_epochs(tmp_path):
    from dpplan.report import build_run_report, to_markdown

    plan = dpplan.TrainingPlan(
        dataset_size=1000, batch_size=100, noise_multiplier=1.0, epochs=2, delta=1e-5
    )
    store = RunStore(tmp_path)
    first = _stopped(store, plan, epochs=2, abandoned=3, group="g")  # 3 epochs counted
    _stopped(store, plan, epochs=1, abandoned=0, group="g")  # 1 epoch
    report = build_run_report(store, first.id)
    composed = dpplan.accounting.compose_runs([(plan.replace(epochs=3), 3), (plan, 1)], delta=1e-5)
    assert report.tuning.epsilon_all == composed.epsilon
    assert report.tuning.total_steps == 40
    assert "that epoch's noisy steps rounded up to a whole epoch" in " ".join(
        to_markdown(report).split()
    )


_DEAD_RUN = """
import sys
import dpplan
from dpplan.store import EpochRecord, RunStore
store = RunStore(sys.argv[1])
plan = dpplan.TrainingPlan(dataset_size=100, batch_size=10, noise_multiplier=1.0, epochs=2,
                           delta=1e-3)
run_id = store.create_run(plan=plan, schedule={"kind": "constant", "lr": 0.1}, options={},
                          device="cpu", seed=0, private=True, versions={})
for epoch in range(1, int(sys.argv[2]) + 1):
    store.record_epoch(run_id, EpochRecord(epoch=epoch, steps=10 * epoch, epsilon=1.0,
        epsilon_rdp=1.0, epsilon_opacus=1.0, train_loss=0.5, validation_loss=0.5,
        validation_accuracy=0.9, test_accuracy=0.9, lr=0.1, seconds=1.0))
print(run_id)
"""


def _dead_run(home, recorded: int) -> int:
    """A run whose process ended (killed, in effect) after recording ``recorded`` epochs."""
    child = subprocess.run(
        [sys.executable, "-c", _DEAD_RUN, str(home), str(recorded)],
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    )
    return int(child.stdout.strip())


def test_a_dead_processes_epoch_in_flight_is_counted_whole(tmp_path):
    # The process may have taken any of epoch 2's 10 steps before it died: counting all of
    # them is the upper bound, whether the run is stopped, queued again or resumed.
    store = RunStore(tmp_path)
    stopped, queued, claimed = (_dead_run(tmp_path, 1) for _ in range(3))
    done = _dead_run(tmp_path, 2)  # died after its last epoch: nothing in flight
    assert {store.get_run(i).status for i in (stopped, queued, claimed, done)} == {"interrupted"}
    store.request_stop(stopped)
    store.requeue(queued)
    store.claim(claimed)
    store.request_stop(done)
    assert [store.get_run(i).abandoned_steps for i in (stopped, queued, claimed, done)] == [
        10,
        10,
        10,
        0,
    ]
    run = store.get_run(stopped)
    assert run.status == "stopped" and run_epsilon(run)[0] == min(
        dpplan.epsilon_at(run.plan, steps=20, method=method) for method in METHODS
    )
    store.finish_run(claimed, status="stopped")  # this process ends it: nothing more
    assert store.get_run(claimed).abandoned_steps == 10
