"""The privacy cost of tuning: all runs composed, and Papernot & Steinke's repeat-and-select."""

from __future__ import annotations

import json
import math

import dp_accounting
import pytest

import dpplan
from dpplan.accounting.events import dpsgd_event
from dpplan.plan import TrainingPlan
from dpplan.sweep import tuning
from dpplan.sweep.results import TuningCost

PLAN = TrainingPlan(dataset_size=2000, batch_size=256, noise_multiplier=1.9, epochs=1, delta=1e-5)
OTHER = PLAN.replace(batch_size=512, noise_multiplier=2.5)


def library_epsilon(event, delta):
    accountant = dp_accounting.rdp.RdpAccountant(
        orders=list(dpplan.accounting.get_accountant("rdp").orders)
    )
    return accountant.compose(event).get_epsilon(delta)


def test_all_runs_composed_exceed_one_run():
    one = dpplan.epsilon(PLAN)
    composed = tuning.composed_epsilon([(PLAN, 1)] * 4 + [(OTHER, 1)], delta=1e-5)
    assert composed["runs"] == 5 and composed["epsilon"] > one
    # runs of one plan are one longer run: the same as the plan with the summed epochs
    four = tuning.composed_epsilon([(PLAN, 1)] * 4, delta=1e-5)
    assert four["epsilon"] == pytest.approx(
        dpplan.compare(PLAN.replace(epochs=4)).headline_epsilon, rel=1e-9
    )


@pytest.mark.parametrize("mean", [2.0, 8.0])
def test_repeat_and_select_matches_dp_accounting(mean):
    ours = tuning.repeat_and_select_for([PLAN], mean_runs=mean)
    event = dp_accounting.dp_event.RepeatAndSelectDpEvent(
        event=dpsgd_event(PLAN), mean=mean, shape=math.inf
    )
    assert ours == pytest.approx(library_epsilon(event, PLAN.delta), rel=1e-12)
    several = tuning.repeat_and_select_for([PLAN, OTHER, PLAN], mean_runs=mean)
    event = dp_accounting.dp_event.RepeatAndSelectDpEvent(
        event=dp_accounting.ComposedDpEvent([dpsgd_event(PLAN), dpsgd_event(OTHER)]),
        mean=mean,
        shape=math.inf,
    )
    assert several == pytest.approx(library_epsilon(event, PLAN.delta), rel=1e-12)
    assert dpplan.epsilon(PLAN, method="rdp") < ours
    if mean >= 8:  # a stated overhead below composing the mean number of runs
        assert ours < tuning.composed_epsilon([(PLAN, 1)] * int(mean), delta=1e-5)["epsilon"]


def test_tuning_cost_states_each_number_and_its_coverage():
    plans = {(1.0, 256, 1): PLAN, (2.0, 512, 1): OTHER}
    cost = tuning.tuning_cost(
        delta=1e-5,
        plan_epsilons={k: dpplan.epsilon(p) for k, p in plans.items()},
        plans=plans,
        runs=[(PLAN, 1), (PLAN, 1), (OTHER, 1)],
        random_repeats=3,
    )
    assert cost.all_runs_epsilon > cost.single_run_epsilon
    assert [row.runs for row in cost.per_target] == [2, 1]
    # The report publishes one selected model per target: the cost is their composition
    # (it was the largest of them, which does not cover releasing both).
    both = dp_accounting.ComposedDpEvent(
        [
            dp_accounting.dp_event.RepeatAndSelectDpEvent(
                event=dpsgd_event(plan), mean=3.0, shape=math.inf
            )
            for plan in (PLAN, OTHER)
        ]
    )
    assert cost.repeat_and_select_epsilon == pytest.approx(library_epsilon(both, 1e-5), rel=1e-12)
    assert cost.repeat_and_select_epsilon > max(
        row.repeat_and_select_epsilon for row in cost.per_target
    )
    assert "validation" in cost.covers and "no DP guarantee" in cost.covers["validation"]
    # The stored form round-trips (a finished sweep's tuning is read back from the store).
    assert TuningCost.from_dict(json.loads(json.dumps(cost.to_dict()))) == cost
