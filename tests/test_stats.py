"""dpplan.stats: the Welch mean difference the notebooks' verdicts follow (issue 24)."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from dpplan import PlanError
from dpplan.stats import difference_from_summaries, mean_difference, sample_std


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


def test_difference_from_summaries_matches_scipy_from_stats():
    # A sweep's frontier points keep mean, sample std and n, not the values: the same Welch
    # interval as scipy's from those summaries.
    got = difference_from_summaries(0.913, 0.012, 5, 0.890, 0.004, 3)
    want = stats.ttest_ind_from_stats(0.913, 0.012, 5, 0.890, 0.004, 3, equal_var=False)
    assert got.p_value == pytest.approx(want.pvalue, rel=1e-9)
    df = (0.012**2 / 5 + 0.004**2 / 3) ** 2 / ((0.012**2 / 5) ** 2 / 4 + (0.004**2 / 3) ** 2 / 2)
    half = stats.t.ppf(0.975, df) * math.sqrt(0.012**2 / 5 + 0.004**2 / 3)
    assert (got.low, got.high) == pytest.approx((0.023 - half, 0.023 + half), rel=1e-9)
    assert (got.n_a, got.n_b, got.verdict) == (5, 3, "ahead")
    values = ([0.91, 0.93, 0.92], [0.90, 0.94])
    same = mean_difference(*values)
    summary = difference_from_summaries(
        0.92, sample_std(values[0]), 3, 0.92, sample_std(values[1]), 2
    )
    assert (summary.low, summary.high) == pytest.approx((same.low, same.high))
    assert difference_from_summaries(0.9, 0.0, 1, 0.8, 0.0, 4).verdict == "cannot tell"


@pytest.mark.parametrize(
    ("field", "value"),
    [("mean_a", math.nan), ("std_b", -0.1), ("std_a", math.inf), ("n_a", 0), ("n_b", True)],
)
def test_difference_from_summaries_names_a_bad_field(field, value):
    args = {"mean_a": 0.9, "std_a": 0.01, "n_a": 3, "mean_b": 0.8, "std_b": 0.01, "n_b": 3}
    with pytest.raises(PlanError) as raised:
        difference_from_summaries(**(args | {field: value}))
    assert raised.value.field == field
