"""The pure protocol: selection on validation with the first seed, repeats, the frontier."""

from __future__ import annotations

import numpy as np
import pytest

from dpplan.errors import PlanError
from dpplan.plan import TrainingPlan
from dpplan.sweep import SweepSpec, protocol
from dpplan.sweep.protocol import TrialOutcome
from dpplan.train import RunOptions

OPTIONS = RunOptions(subset=2000, validation_size=500)
SPEC = SweepSpec(
    target_epsilons=(1, 3),
    delta=1e-5,
    batch_sizes=(256,),
    epochs=(1,),
    schedules=("one_cycle", "plateau"),
    one_cycle_lrs=(0.5, 2),
    plateau_lrs=(0.1, 0.5),
    seeds=(0, 1, 2),
    options=OPTIONS,
)


def plans():
    return {
        key: TrainingPlan(
            dataset_size=2000, batch_size=256, noise_multiplier=2.0 / key[0], epochs=1, delta=1e-5
        )
        for key in [(1.0, 256, 1), (3.0, 256, 1)]
    }


def finish(outcomes, trials, accuracy):
    for index, trial in enumerate(trials):
        value = accuracy(trial)
        outcomes[trial.key] = TrialOutcome(
            key=trial.key,
            status="finished",
            run_id=index + 1,
            validation_accuracy=value,
            test_accuracy=value - 0.01,
            epochs_done=1,
        )


def test_repeats_wait_for_the_whole_selection_and_follow_the_winner():
    outcomes: dict[str, TrialOutcome] = {}
    first = protocol.ready_trials(SPEC, outcomes)
    assert len(first) == 8 and {t.seed for t in first} == {0}
    assert {t.phase for t in first} == {"select"}
    # one group's selection is half done: still no repeats anywhere
    finish(outcomes, first[:1], lambda t: 0.5)
    assert len(protocol.ready_trials(SPEC, outcomes)) == 8
    # every selection done; plateau lr=0.1 wins its group, one-cycle lr=2 wins its group
    finish(outcomes, first, lambda t: {0.5: 0.4, 2.0: 0.6, 0.1: 0.7}.get(t.lr, 0.2))
    repeats = [t for t in protocol.ready_trials(SPEC, outcomes) if t.phase == "repeat"]
    assert len(repeats) == 2 * 2 * 2  # 2 ε x 2 schedules x seeds 1, 2
    assert {(t.kind, t.lr) for t in repeats} == {("one_cycle", 2.0), ("plateau", 0.1)}
    assert protocol.planned_trials(SPEC) == len(first) + len(repeats) == SPEC.trial_count


def test_a_failed_selection_trial_is_skipped_and_ties_go_to_the_first():
    outcomes: dict[str, TrialOutcome] = {}
    first = protocol.ready_trials(SPEC, outcomes)
    finish(outcomes, first, lambda t: 0.5)
    failed = first[0]
    outcomes[failed.key] = TrialOutcome(key=failed.key, status="failed")
    repeats = [
        t
        for t in protocol.ready_trials(SPEC, outcomes)
        if t.phase == "repeat" and t.group == failed.group
    ]
    assert {t.lr for t in repeats} == {first[1].lr}  # the failed one cannot win
    others = [
        t
        for t in protocol.ready_trials(SPEC, outcomes)
        if t.phase == "repeat" and t.kind == "plateau" and t.target_epsilon == 1.0
    ]
    assert {t.lr for t in others} == {0.1}  # a tie: the first of the grid


def test_frontier_points_and_curves_from_outcomes():
    outcomes: dict[str, TrialOutcome] = {}
    first = protocol.ready_trials(SPEC, outcomes)
    finish(outcomes, first, lambda t: {0.5: 0.4, 2.0: 0.6, 0.1: 0.7}.get(t.lr, 0.2))
    finish(
        outcomes,
        [t for t in protocol.ready_trials(SPEC, outcomes) if t.phase == "repeat"],
        lambda t: 0.65 + 0.01 * t.seed,
    )
    epsilons = {key: key[0] * 0.999 for key in plans()}
    points, curves = protocol.frontier(SPEC, plans(), epsilons, outcomes)
    assert [p.target_epsilon for p in points] == [1.0, 3.0]
    best = points[0]
    assert best.schedule.kind == "plateau" and best.validation_accuracy == 0.7
    assert best.seeds == (0, 1, 2) and best.epsilon == 0.999
    assert best.epsilon_method == SPEC.method
    tests = [0.69, 0.65, 0.66]
    assert best.test_accuracy_mean == pytest.approx(np.mean(tests))
    assert best.test_accuracy_std == pytest.approx(np.std(tests, ddof=1))  # sample std
    assert [p.schedule.max_lr for p in curves["one_cycle"]] == [2.0, 2.0]
    assert len(curves["plateau"]) == 2


def test_random_draws_are_poisson_and_keyed_by_draw():
    random_spec = SweepSpec.from_dict({**SPEC.to_dict(), "random_repeats": 4})
    with pytest.raises(PlanError):
        protocol.draw_random_trials(SPEC)
    draws = protocol.draw_random_trials(random_spec, rng=np.random.default_rng(7))
    counts = [len(v) for v in draws["per_target"].values()]
    trials = protocol.ready_trials(random_spec, {}, draws)
    assert len(trials) == sum(counts)
    assert len({t.key for t in trials}) == len(trials)
    assert all("draw=" in t.key and t.seed == 0 for t in trials)
    # the secret generator by default: two draws differ (with overwhelming probability)
    many = [protocol.draw_random_trials(random_spec) for _ in range(5)]
    assert len({str(d) for d in many}) > 1


def test_a_diverged_trial_is_finished_never_selected_and_left_out_of_the_mean():
    # Issue 17 item 1: a diverged trial is a finished trial with no accuracy.
    spec = SweepSpec(
        target_epsilons=(1,),
        delta=1e-5,
        batch_sizes=(256,),
        epochs=(1,),
        schedules=("one_cycle",),
        one_cycle_lrs=(0.5, 2),
        seeds=(0, 1, 2),
        options=OPTIONS,
    )
    outcomes: dict[str, TrialOutcome] = {}
    select = protocol.ready_trials(spec, outcomes)
    diverged = next(t for t in select if t.lr == 2.0)
    finish(outcomes, [t for t in select if t is not diverged], lambda t: 0.5)
    outcomes[diverged.key] = TrialOutcome(
        key=diverged.key, status="finished", run_id=9, epochs_done=0, diverged=True
    )
    repeats = [t for t in protocol.ready_trials(spec, outcomes) if t.phase == "repeat"]
    assert {t.lr for t in repeats} == {0.5}  # the diverged rate is never the winner
    finish(outcomes, [t for t in repeats if t.seed == 1], lambda t: 0.7)
    seed_two = next(t for t in repeats if t.seed == 2)
    outcomes[seed_two.key] = TrialOutcome(key=seed_two.key, status="finished", diverged=True)
    points, curves = protocol.frontier(
        spec, {(1.0, 256, 1): plans()[(1.0, 256, 1)]}, {(1.0, 256, 1): 0.9}, outcomes
    )
    [point] = points
    assert point.seeds == (0, 1) and point.diverged_seeds == (2,)
    assert point.test_accuracy_mean == pytest.approx((0.49 + 0.69) / 2)
    assert curves["one_cycle"] == (point,)


def test_the_protocol_loads_no_torch():
    # Issue 19: the protocol (and the typed results it returns) is torch-free; its schedule
    # grid comes from dpplan.train.specs, not from dpplan.train.compare.
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import dpplan.sweep.protocol, dpplan.sweep.results, dpplan.sweep.background\n"
        "import dpplan.selection\n"
        "from dpplan.sweep import SweepSpec\n"
        "from dpplan.train import RunOptions\n"
        "spec = SweepSpec(target_epsilons=(1,), delta=1e-5, batch_sizes=(256,), epochs=(1,),\n"
        "                 options=RunOptions(subset=2000))\n"
        "trials = dpplan.sweep.protocol.ready_trials(spec, {})\n"
        "assert {t.schedule.kind for t in trials} == {'one_cycle', 'plateau'}\n"
        "print(sorted(m for m in ('torch', 'opacus', 'ray') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
