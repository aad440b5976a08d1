"""Compare two arms over seeds: the mean difference with a Welch t confidence interval.

Accuracy comparisons between training set-ups (schedules, activations) are noisy: each seed
draws a different initialisation, sampling and noise. :func:`mean_difference` returns the
difference of the means, its confidence interval by Welch's t (unequal variances), the
two-sided p-value, and the words the interval supports:

* ``"ahead"``: the interval excludes 0 (the sign of the difference says which arm);
* ``"tied"``: the interval lies within ``± tie_margin`` (the arms are equal to within it);
* ``"cannot tell"``: neither, or fewer than two values on a side.

Example:
    >>> d = mean_difference([0.91, 0.92, 0.93], [0.88, 0.89, 0.90])
    >>> round(d.difference, 3), d.verdict
    (0.03, 'ahead')
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence

from scipy import stats as _scipy_stats

from dpplan.errors import PlanError

__all__ = ["MeanDifference", "difference_from_summaries", "mean_difference", "sample_std"]

VERDICTS = ("ahead", "tied", "cannot tell")


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class MeanDifference:
    """The difference ``mean(a) - mean(b)`` with its confidence interval.

    Attributes:
        difference: mean of ``a`` minus mean of ``b``.
        low, high: the confidence interval of the difference (Welch t); NaN when either side
            has fewer than two values.
        confidence: the interval's level, e.g. 0.95.
        p_value: two-sided p-value of Welch's t-test (NaN when it is undefined).
        n_a, n_b: the number of values on each side.
        mean_a, mean_b: the two means.
        std_a, std_b: the sample standard deviations (n - 1 in the denominator; 0 for n = 1).
        tie_margin: the margin within which the arms are called tied.
        verdict: ``"ahead"``, ``"tied"`` or ``"cannot tell"``.
    """

    difference: float
    low: float
    high: float
    confidence: float
    p_value: float
    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    std_a: float
    std_b: float
    tie_margin: float
    verdict: str

    def describe(self, name_a: str = "a", name_b: str = "b", *, scale: float = 100.0) -> str:
        """One phrase that follows the interval, e.g. ``"a ahead by +2.1 points (95% CI
        +0.4 … +3.8, 5 vs 5 seeds)"``; ``scale`` turns fractions into points."""
        counts = f"{self.n_a} vs {self.n_b} seeds"
        if math.isnan(self.low):
            return (
                f"cannot tell: {self.difference * scale:+.1f} points with {counts}, "
                "too few seeds for an interval"
            )
        interval = (
            f"{self.difference * scale:+.1f} points, {self.confidence:.0%} CI "
            f"{self.low * scale:+.1f} … {self.high * scale:+.1f}, {counts}"
        )
        if self.verdict == "ahead":
            leader = name_a if self.difference > 0 else name_b
            return f"{leader} ahead ({interval})"
        if self.verdict == "tied":
            return f"tied within ±{self.tie_margin * scale:g} points ({interval})"
        return f"cannot tell ({interval})"


def sample_std(values: Sequence[float]) -> float:
    """The sample standard deviation (n - 1 in the denominator); 0 for a single value."""
    values = [float(v) for v in values]
    return statistics.stdev(values) if len(values) > 1 else 0.0


def mean_difference(
    a: Sequence[float],
    b: Sequence[float],
    *,
    confidence: float = 0.95,
    tie_margin: float = 0.01,
) -> MeanDifference:
    """Return ``mean(a) - mean(b)`` with a Welch t confidence interval and its verdict.

    Args:
        a, b: the values of each arm (e.g. test accuracy per seed), one or more each.
        confidence: the interval's level, in (0, 1).
        tie_margin: the arms are ``"tied"`` when the whole interval lies within
            ``[-tie_margin, tie_margin]`` (default 0.01: one point of accuracy).

    Returns:
        A :class:`MeanDifference`.

    Raises:
        PlanError: for an empty or non-finite side, or ``confidence``/``tie_margin`` out of
            range.
    """
    a = [float(v) for v in a]
    b = [float(v) for v in b]
    for name, values in (("a", a), ("b", b)):
        if not values or not all(math.isfinite(v) for v in values):
            raise PlanError(name, values, "one or more finite values")
    if not 0.0 < confidence < 1.0:
        raise PlanError("confidence", confidence, "a number in (0, 1)")
    if not (tie_margin >= 0.0 and math.isfinite(tie_margin)):
        raise PlanError("tie_margin", tie_margin, "a finite number >= 0")
    return difference_from_summaries(
        statistics.fmean(a),
        sample_std(a),
        len(a),
        statistics.fmean(b),
        sample_std(b),
        len(b),
        confidence=confidence,
        tie_margin=tie_margin,
    )


def difference_from_summaries(
    mean_a: float,
    std_a: float,
    n_a: int,
    mean_b: float,
    std_b: float,
    n_b: int,
    *,
    confidence: float = 0.95,
    tie_margin: float = 0.01,
) -> MeanDifference:
    """:func:`mean_difference` from each arm's mean, *sample* standard deviation (n - 1 in
    the denominator) and count, e.g. a sweep's frontier points, which keep no per-seed values.

    Raises:
        PlanError: for a non-finite mean or standard deviation, a negative standard
            deviation, a count below 1, or ``confidence``/``tie_margin`` out of range.

    Example:
        >>> d = difference_from_summaries(0.92, 0.01, 3, 0.89, 0.01, 3)
        >>> round(d.difference, 3), d.verdict
        (0.03, 'ahead')
    """
    for name, value in (("mean_a", mean_a), ("mean_b", mean_b)):
        if not math.isfinite(value):
            raise PlanError(name, value, "a finite number")
    for name, value in (("std_a", std_a), ("std_b", std_b)):
        if not (math.isfinite(value) and value >= 0.0):
            raise PlanError(name, value, "a finite number >= 0 (a sample standard deviation)")
    for name, value in (("n_a", n_a), ("n_b", n_b)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PlanError(name, value, "an integer >= 1 (the number of values)")
    if not 0.0 < confidence < 1.0:
        raise PlanError("confidence", confidence, "a number in (0, 1)")
    if not (tie_margin >= 0.0 and math.isfinite(tie_margin)):
        raise PlanError("tie_margin", tie_margin, "a finite number >= 0")
    difference = mean_a - mean_b
    low = high = p_value = math.nan
    if n_a > 1 and n_b > 1:
        var_a, var_b = std_a**2 / n_a, std_b**2 / n_b
        se = math.sqrt(var_a + var_b)
        if se == 0.0:
            low = high = difference
            p_value = 1.0 if difference == 0 else 0.0
        else:
            df = (var_a + var_b) ** 2 / (var_a**2 / (n_a - 1) + var_b**2 / (n_b - 1))
            half = float(_scipy_stats.t.ppf(0.5 + confidence / 2, df)) * se
            low, high = difference - half, difference + half
            p_value = float(2 * _scipy_stats.t.sf(abs(difference) / se, df))
    if math.isnan(low):
        verdict = "cannot tell"
    elif low > 0 or high < 0:
        verdict = "ahead"
    elif -tie_margin <= low and high <= tie_margin:
        verdict = "tied"
    else:
        verdict = "cannot tell"
    return MeanDifference(
        difference=difference,
        low=low,
        high=high,
        confidence=confidence,
        p_value=p_value,
        n_a=n_a,
        n_b=n_b,
        mean_a=mean_a,
        mean_b=mean_b,
        std_a=std_a,
        std_b=std_b,
        tie_margin=tie_margin,
        verdict=verdict,
    )
