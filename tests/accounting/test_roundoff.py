"""The round-off module's bound holds (issue 18): against long-double recompositions (the
constructed cases where the old estimates fell 16x and 116x short), against exact direct
convolutions with and without a tilt, and at the PLD and PRV read-outs. Tiny δ refuses or
tilts, never answers silently.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import fft

from dpplan import TrainingPlan, epsilon_curve
from dpplan.accounting import _internals, get_accountant, roundoff
from dpplan.accounting import pld as pld_module
from dpplan.accounting import prv as prv_module
from dpplan.errors import AccountingError


def _long_double_composition(probs: np.ndarray, size: int, count: int) -> np.ndarray:
    """The same circular composition in long double (scipy's pocketfft supports it)."""
    wide = fft.rfft(probs.astype(np.longdouble), size)
    return fft.irfft(wide**count, size)


def test_binary_power_error_is_within_its_bound():
    rng = np.random.default_rng(0)
    values = np.exp(1j * rng.uniform(0, 2 * np.pi, 1000)) * rng.uniform(0.999, 1.0, 1000)
    for count in (2, 7, 1000, 2350):
        power, bound = roundoff.binary_power(values, count)
        exact = values.astype(np.clongdouble) ** count
        relative = np.abs(power - exact) / np.abs(exact)
        assert float(relative.max()) <= bound, count
        assert bound < 1e-11


def test_pld_bound_covers_the_long_double_error_where_every_cell_is_positive():
    # q = 0.01, σ = 0.3, 500 steps: every composed cell is positive, and the old estimate
    # (negative mass plus 4 ulp, over the grid) was 16x short of the true error here.
    interval = pld_module.PLDAccountant().grid_interval(
        sample_rate=0.01, noise_multiplier=0.3, steps=500
    )
    pmf = _internals.dense_pmfs(pld_module.pld_per_step(0.01, 0.3, interval))[0]
    lower, upper = pld_module._convolve_bounds(pmf.probs, np.array([500.0]))
    size = fft.next_fast_len(max(int(upper[0] - lower[0] + 1), len(pmf.probs)), real=True)
    composer = roundoff.Composer(pmf.probs, size)
    composed = composer.inverse(composer.power(500), 500)
    true_error = float(
        np.abs(composed.cells - _long_double_composition(pmf.probs, size, 500)).sum()
    )
    assert true_error <= composed.error
    old_estimate = (max(-composed.cells.min(), 0.0) + 4 * 2.0**-52 * composed.cells.max()) * size
    assert old_estimate < true_error  # the estimate this replaces fell short


def test_prv_bound_covers_the_long_double_error_in_the_constructed_case():
    # q = 0.01, σ = 0.4, 2,000 steps: PRV's old estimate was 116x short here.
    backend = get_accountant("prv")
    domain, prv, _, _ = backend._domain(0.01, 0.4, 1e-5, 2000)
    pmf, _ = prv_module._discretise(prv, domain)
    size = len(pmf)
    composer = roundoff.Composer(pmf, size)
    composed = composer.inverse(composer.power(2000), 2000)
    true_error = float(np.abs(composed.cells - _long_double_composition(pmf, size, 2000)).sum())
    assert true_error <= composed.error
    old_estimate = (max(-composed.cells.min(), 0.0) + 4 * 2.0**-52 * composed.cells.max()) * size
    assert old_estimate < true_error  # the estimate this replaces fell short


def _direct(probs: np.ndarray, count: int) -> np.ndarray:
    result = probs
    for _ in range(count - 1):
        result = np.convolve(result, probs)  # direct sums of non-negative terms: exact-ish
    return result


@pytest.mark.parametrize("tilt", [0.0, 0.05, 0.3])
def test_tilted_composition_untilts_to_the_direct_convolution_within_the_bound(tilt):
    rng = np.random.default_rng(1)
    probs = rng.uniform(0, 1, 40) * np.exp(-0.2 * np.arange(40))
    probs /= probs.sum() * (1 + 1e-9)
    count, size = 12, 512  # the linear composition (12·39 + 1 = 469 cells) fits
    composer = roundoff.Composer(probs, size, tilt)
    composed = composer.inverse(composer.power(count), count)
    exact = _direct(probs, count)
    index = np.arange(len(exact))
    factor = np.exp(composed.log_scale - composed.tilt * index)
    untilted_error = np.abs(composed.cells[: len(exact)] * factor - exact)
    # Above any cell j, the untilted error is at most the bound times the factor at j.
    for j in range(0, len(exact), 25):
        assert untilted_error[j:].sum() <= composed.error * factor[j] * (1 + 1e-9) + 1e-300


def test_certified_epsilon_is_above_the_exact_read_out():
    rng = np.random.default_rng(2)
    probs = rng.uniform(0, 1, 60)
    probs /= probs.sum()
    count, size = 8, 512
    exact = _direct(probs, count)
    losses = 0.05 * np.arange(len(exact)) - 3.0
    for tilt in (0.0, 0.1):
        composer = roundoff.Composer(probs, size, tilt)
        composed = composer.inverse(composer.power(count), count)
        for delta in (1e-3, 1e-6, 1e-9):
            value = roundoff.certified_epsilon(
                composed,
                composed.cells[: len(exact)],
                first_index=0,
                first_loss=-3.0,
                interval=0.05,
                infinity_mass=0.0,
                delta=delta,
            )
            if value is None:
                continue
            # The exact composition's δ at the certified ε is at most δ.
            above = losses > value
            assert float((exact[above] * (1 - np.exp(value - losses[above]))).sum()) <= delta


def test_fft_relative_error_grows_with_log_length():
    assert roundoff.fft_relative_error(1 << 10) < roundoff.fft_relative_error(1 << 20)
    assert roundoff.fft_relative_error(1 << 22) < 1e-12


# --- tiny δ: refuse or tilt, never a silent number -------------------------------------


def test_pld_refuses_below_its_tail_truncation_naming_delta_and_the_limit():
    plan = TrainingPlan(
        dataset_size=60000, batch_size=256, noise_multiplier=1.1, epochs=2, delta=1e-16
    )
    with pytest.raises(AccountingError, match=r"delta=1e-16.*limit is delta > 2e-15"):
        epsilon_curve(plan, method="pld")


def test_pld_tiny_delta_curve_is_tilted_and_never_decreases():
    plan = TrainingPlan(
        dataset_size=60000, batch_size=256, noise_multiplier=1.1, epochs=4, delta=1e-13
    )
    curve = epsilon_curve(plan, method="pld")
    # The untilted bound is too coarse at δ = 1e-13: answers are tilted recompositions.
    assert curve.settings["tilted_recomputations"] >= 1
    assert list(curve.epsilons) == sorted(curve.epsilons)
    assert all(math.isfinite(value) for value in curve.epsilons)


def test_prv_refuses_when_no_tilt_certifies(monkeypatch):
    # Make every composition's bound astronomically large (tilted or not): PRV must refuse,
    # naming δ. (A bound of 1 would not do: tilted, it degrades to a Chernoff bound.)
    original = roundoff.Composer.inverse

    def inflated(self, power, count):
        composed = original(self, power, count)
        return roundoff.ComposedPMF(
            cells=composed.cells,
            count=composed.count,
            error=1e300,
            tilt=composed.tilt,
            log_scale=composed.log_scale,
            relative=composed.relative,
        )

    monkeypatch.setattr(roundoff.Composer, "inverse", inflated)
    with pytest.raises(AccountingError, match="delta=1e-05"):
        prv_module.PRVAccountant().compute(
            sample_rate=0.01, noise_multiplier=1.0, delta=1e-5, steps=(100,)
        )
