"""Exact references: full-batch DP-SGD is one Gaussian mechanism (STYLE §3.9 item 4).

With sample rate q = 1 (batch_size == dataset_size) every step is a Gaussian mechanism of
noise multiplier σ, and T of them compose exactly to one Gaussian mechanism with noise
multiplier σ/√T. Its exact ε at δ is ``dp_accounting.get_epsilon_gaussian(σ/√T, δ)``
(Balle & Wang 2018, Theorem 8). Every backend reports an upper bound, so it must not be
below the exact value (1e-9 relative slack for round-off), and PRV's (lower, upper) must
contain it.
"""

from __future__ import annotations

import math

import dp_accounting
import pytest
from prv_accountant import PoissonSubsampledGaussianMechanism, PRVAccountant

from dpplan.accounting import METHODS, get_accountant
from dpplan.plan import TrainingPlan

SLACK = 1e-9


def full_batch(noise_multiplier: float, steps: int, delta: float) -> TrainingPlan:
    # steps_per_epoch is 1 at q = 1, so epochs == steps and the curve is per step.
    return TrainingPlan(
        dataset_size=10, batch_size=10, noise_multiplier=noise_multiplier, epochs=steps, delta=delta
    )


def exact_epsilon(noise_multiplier: float, steps: int, delta: float) -> float:
    return dp_accounting.get_epsilon_gaussian(noise_multiplier / math.sqrt(steps), delta)


CASES = [
    pytest.param(2.0, 10, 1e-5, id="sigma2-T10-eps7.5"),
    pytest.param(3.0, 4, 1e-5, id="sigma3-T4-eps2.8"),
    pytest.param(5.0, 10, 1e-5, id="sigma5-T10-eps2.6"),
    pytest.param(10.0, 20, 1e-5, id="sigma10-T20-eps1.8"),
    pytest.param(20.0, 100, 1e-6, id="sigma20-T100-delta1e-6-eps2.3"),
    pytest.param(3.0, 50, 1e-5, id="sigma3-T50-eps12.3"),
]


@pytest.fixture(scope="module", params=METHODS)
def method(request) -> str:
    return request.param


@pytest.mark.parametrize(("noise_multiplier", "steps", "delta"), CASES)
def test_each_backend_bounds_the_exact_epsilon_from_above(method, noise_multiplier, steps, delta):
    plan = full_batch(noise_multiplier, steps, delta)
    assert plan.sample_rate == 1.0 and plan.total_steps == steps
    backend = get_accountant(method)
    exact = exact_epsilon(noise_multiplier, steps, delta)
    assert backend.epsilon(plan) >= exact * (1 - SLACK)
    if method == "prv":
        result = backend.compute(
            sample_rate=1.0, noise_multiplier=noise_multiplier, delta=delta, steps=(steps,)
        )
        assert result.lower[-1] <= exact <= result.upper[-1]


def test_every_point_of_the_curve_bounds_the_exact_epsilon(method):
    # At q = 1 steps_per_epoch is 1, so the curve has one point per step.
    noise_multiplier, steps, delta = 5.0, 10, 1e-5
    curve = get_accountant(method).epsilon_curve(full_batch(noise_multiplier, steps, delta))
    for t, value in zip(curve.epochs, curve.epsilons, strict=True):
        assert value >= exact_epsilon(noise_multiplier, t, delta) * (1 - SLACK), t
    if method == "prv":
        for t, low in zip(curve.epochs, curve.lower, strict=True):
            assert low <= exact_epsilon(noise_multiplier, t, delta), t


@pytest.mark.parametrize(("noise_multiplier", "steps", "delta"), CASES)
def test_pld_is_tight_and_prv_within_its_error_budget(noise_multiplier, steps, delta):
    exact = exact_epsilon(noise_multiplier, steps, delta)
    plan = full_batch(noise_multiplier, steps, delta)
    # PLD's pessimistic grid is within 1e-6 relative of the exact value for a Gaussian
    # (observed: 4e-9 at ε = 20.7, 3.7e-7 at ε = 2.25).
    assert get_accountant("pld").epsilon(plan) == pytest.approx(exact, rel=1e-6)
    # PRV's upper bound is estimate + eps_error (0.01); the float64 round-off allowance
    # adds a little more for large ε.
    assert get_accountant("prv").epsilon(plan) - exact <= 0.025


# STYLE §3.9 item 4, checked at the time of writing for σ = 2, T = 50, δ = 1e-5.
STYLE_SIGMA, STYLE_STEPS, STYLE_DELTA = 2.0, 50, 1e-5


def test_style_values_exact_and_pld_and_rdp():
    plan = full_batch(STYLE_SIGMA, STYLE_STEPS, STYLE_DELTA)
    exact = exact_epsilon(STYLE_SIGMA, STYLE_STEPS, STYLE_DELTA)
    assert exact == pytest.approx(20.6755080, abs=1e-7)
    pld = get_accountant("pld").epsilon(plan)
    assert pld == pytest.approx(20.6755081, abs=1e-7)
    assert pld >= exact
    rdp = get_accountant("rdp").epsilon(plan)
    assert rdp == pytest.approx(22.0199, abs=1e-4)
    assert rdp >= exact


def test_style_values_prv_library_bounds_contain_exact():
    # STYLE's PRV bounds (20.6647, 20.6863) are prv-accountant's own (long double) numbers.
    accountant = PRVAccountant(
        prvs=[
            PoissonSubsampledGaussianMechanism(
                noise_multiplier=STYLE_SIGMA, sampling_probability=1.0
            )
        ],
        eps_error=0.01,
        delta_error=STYLE_DELTA / 1000,
        max_self_compositions=[STYLE_STEPS],
    )
    lower, _, upper = accountant.compute_epsilon(STYLE_DELTA, [STYLE_STEPS])
    assert lower == pytest.approx(20.6647, abs=1e-4)
    assert upper == pytest.approx(20.6863, abs=1e-4)
    assert lower <= exact_epsilon(STYLE_SIGMA, STYLE_STEPS, STYLE_DELTA) <= upper


def test_style_values_prv_matches_prv_accountant():
    # dpplan composes the PRV in float64 and budgets the FFT round-off into δ; at ε ≈ 20.7
    # its bounds still match prv-accountant's long-double ones (20.6647, 20.6863).
    plan = full_batch(STYLE_SIGMA, STYLE_STEPS, STYLE_DELTA)
    curve = get_accountant("prv").epsilon_curve(plan)
    assert curve.lower[-1] == pytest.approx(20.6647, abs=2e-4)
    assert curve.epsilon == pytest.approx(20.6863, abs=2e-4)
    assert curve.lower[-1] <= exact_epsilon(STYLE_SIGMA, STYLE_STEPS, STYLE_DELTA) <= curve.epsilon


def test_prv_at_large_epsilon_is_valid_and_tight():
    # σ = 2, T = 40: exact ε = 17.857; PRV's upper bound is within its eps_error of 0.01
    # (plus discretisation) above it.
    plan = full_batch(STYLE_SIGMA, 40, STYLE_DELTA)
    exact = exact_epsilon(STYLE_SIGMA, 40, STYLE_DELTA)
    result = get_accountant("prv").compute(
        sample_rate=1.0, noise_multiplier=STYLE_SIGMA, delta=STYLE_DELTA, steps=(40,)
    )
    assert result.lower[-1] <= exact <= result.upper[-1]
    assert result.upper[-1] - exact < 0.02
    assert get_accountant("prv").epsilon(plan) == result.upper[-1]
