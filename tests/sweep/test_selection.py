"""One rule for "best accuracy at ε ≤ x" (issue 19 item 2): selected on validation accuracy,
reported on test accuracy, by dpplan.selection.best_at, in every caller.

Each case is built so that the validation-best and the test-best candidates differ: the old
mean-test rule (app Compare page, ScheduleSummary) would pick the other one.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from dpplan.plan import TrainingPlan
from dpplan.selection import Candidate, best_at
from dpplan.sweep.results import FrontierPoint, FrontierResult, TrialCounts, TuningCost
from dpplan.sweep.spec import SweepSpec
from dpplan.train.compare import ScheduleSummary
from dpplan.train.specs import OneCycle, RunOptions

APP = Path(__file__).resolve().parents[2] / "app"

# Validation prefers b; test prefers a (a's test accuracy is the highest).
A = Candidate(epsilon=0.9, validation_accuracy=0.80, test_accuracy=0.95, label="a")
B = Candidate(epsilon=0.9, validation_accuracy=0.90, test_accuracy=0.85, label="b")
C = Candidate(epsilon=2.5, validation_accuracy=0.99, test_accuracy=0.99, label="c")


def test_best_at_selects_on_validation_and_respects_the_bound():
    assert best_at([A, B, C], epsilon_at_most=1.0) is B  # not A, the test-best
    assert best_at([A, B, C], epsilon_at_most=3.0) is C
    assert best_at([A, B, C], epsilon_at_most=0.5) is None
    assert best_at([A, B, C], epsilon_at_most=0.9) is B  # ε equal to the bound fits


def test_ties_go_to_the_first_and_missing_scores_never_win():
    twin = Candidate(epsilon=0.5, validation_accuracy=0.90, test_accuracy=0.10)
    assert best_at([B, twin], epsilon_at_most=1.0) is B
    assert best_at([twin, B], epsilon_at_most=1.0) is twin
    diverged = Candidate(epsilon=0.1, validation_accuracy=None, test_accuracy=0.99)
    nan = Candidate(epsilon=0.1, validation_accuracy=math.nan, test_accuracy=0.99)
    no_epsilon = Candidate(epsilon=math.nan, validation_accuracy=1.0, test_accuracy=0.99)
    assert best_at([diverged, nan, no_epsilon, A], epsilon_at_most=1.0) is A
    assert best_at([diverged, nan], epsilon_at_most=1.0) is None


def test_schedule_summary_reports_test_accuracy_at_the_validation_best_epoch():
    summary = ScheduleSummary(
        kind="one_cycle",
        selected={"kind": "one_cycle", "max_lr": 1.0},
        tried=(),
        run_ids=(1,),
        epochs=(1, 2, 3),
        epsilons=(0.5, 0.8, 1.2),
        accuracy_mean=(0.90, 0.97, 0.98),  # test-best within ε ≤ 1: epoch 2
        accuracy_std=(0.0, 0.0, 0.0),
        validation_mean=(0.93, 0.92, 0.99),  # validation-best within ε ≤ 1: epoch 1
    )
    assert summary.best_accuracy_at(1.0) == 0.90
    assert summary.best_accuracy_at(2.0) == 0.98
    assert summary.best_accuracy_at(0.1) is None


def _point(validation: float, test: float, epsilon: float) -> FrontierPoint:
    return FrontierPoint(
        target_epsilon=1.0,
        epsilon=epsilon,
        epsilon_method="prv",
        plan=TrainingPlan(
            dataset_size=2000, batch_size=256, noise_multiplier=2.0, epochs=1, delta=1e-5
        ),
        schedule=OneCycle(max_lr=1.0),
        validation_accuracy=validation,
        test_accuracy_mean=test,
        test_accuracy_std=0.0,
        seeds=(0,),
        run_ids=(1,),
    )


def test_frontier_result_best_at_uses_the_same_rule():
    test_best, validation_best = _point(0.80, 0.95, 0.9), _point(0.90, 0.85, 0.95)
    result = FrontierResult(
        sweep_id=1,
        status="finished",
        spec=SweepSpec(
            target_epsilons=(1,),
            delta=1e-5,
            batch_sizes=(256,),
            epochs=(1,),
            options=RunOptions(subset=2000),
        ),
        runs_tried=2,
        trials=TrialCounts(planned=2, finished=2, failed=0, diverged=0),
        points=(test_best, validation_best),
        curves={},
        plans=(),
        tuning=TuningCost(
            delta=1e-5,
            single_run_epsilon=0.95,
            runs=2,
            protocol="grid",
            per_target=(),
            covers={},
            all_runs_epsilon=1.3,
            all_runs_method="pld",
        ),
        failures=(),
    )
    assert result.best_at(1.0) is validation_best
    assert result.best_at(0.92) is test_best  # the validation-best point is above ε 0.92


def test_the_compare_pages_table_uses_the_same_rule():
    pytest.importorskip("streamlit")
    import pandas as pd

    sys.path.insert(0, str(APP))
    try:
        import components
    finally:
        sys.path.remove(str(APP))
    grouped = pd.DataFrame(
        {
            "line": ["one_cycle lr=1"] * 3,
            "epsilon": [0.5, 0.8, 1.5],
            "validation": [0.93, 0.92, 0.99],
            "mean": [0.90, 0.97, 0.98],
        }
    )
    [row] = components.best_at(grouped, thresholds=(1.0, 2.0)).to_dict("records")
    assert row == {
        "schedule": "one_cycle lr=1",
        "best at ε ≤ 1": "90.00%",
        "best at ε ≤ 2": "98.00%",
    }
