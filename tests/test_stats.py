"""dpplan.stats: the Welch mean difference the notebooks' verdicts follow (issue 24)."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from dpplan import PlanError
from dpplan.stats import mean_difference, sample_std


def test_matches_scipy_welch_test_and_interval():
    a, b = [0.914, 0.905, 0.923, 0.918, 0.909], [0.890, 0.887, 0.899, 0.880, 0.895]
    got = mean_difference(a, b)
    want = stats.ttest_ind(a, b, equal_var=False)
    interval = want.confidence_interval(0.95)
    assert got.p_value == pytest.approx(want.pvalue, rel=1e-9)
    assert (got.low, got.high) == pytest.approx((interval.low, interval.high), rel=1e-9)
    assert got.verdict == "ahead"
    assert got.describe("one-cycle", "plateau").startswith("one-cycle ahead (+2.4 points")


def test_the_issue_two_seed_example_cannot_tell():
    # notebook 02's ε = 2 row before issue 24: 91.4 ± 0.9 vs 89.0 ± 0.5 (population std, 2 seeds)
    got = mean_difference([0.905, 0.923], [0.885, 0.895])
    assert got.verdict == "cannot tell" and got.low < 0 < got.high
    assert got.describe().startswith("cannot tell")


def test_tied_when_the_interval_is_inside_the_margin():
    a = [0.930, 0.931, 0.929, 0.930, 0.932]
    b = [0.931, 0.930, 0.930, 0.929, 0.931]
    assert mean_difference(a, b, tie_margin=0.01).verdict == "tied"
    assert mean_difference(a, b, tie_margin=0.0001).verdict == "cannot tell"


def test_one_seed_gives_no_interval():
    got = mean_difference([0.9], [0.8, 0.81])
    assert math.isnan(got.low) and got.verdict == "cannot tell"
    assert "too few seeds" in got.describe()


def test_sample_std_uses_n_minus_one():
    assert sample_std([1.0, 3.0]) == pytest.approx(math.sqrt(2))
    assert sample_std([5.0]) == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [{"a": []}, {"a": [math.nan]}, {"confidence": 1.0}, {"tie_margin": -0.1}],
)
def test_refuses_bad_input(kwargs):
    args = {"a": [0.9, 0.91], "b": [0.8, 0.82]} | kwargs
    with pytest.raises(PlanError):
        mean_difference(**args)
