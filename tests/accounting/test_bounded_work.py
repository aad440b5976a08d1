"""Every accounting call has bounded work (issue 9, item 3): it is refused before the library
is called, or answered on a coarser grid that still gives a valid upper bound, recorded in
the settings. These tests assert what happens (refusal, recorded grid, validity), never
timings.
"""

from __future__ import annotations

import math

import dp_accounting
import pytest

from dpplan.accounting import METHODS, get_accountant
from dpplan.accounting import pld as pld_module
from dpplan.errors import AccountingError, PlanError
from dpplan.plan import TrainingPlan

MNIST = TrainingPlan(
    dataset_size=60000, batch_size=256, noise_multiplier=1.1, epochs=10, delta=1e-5
)


def _exact(noise_multiplier: float, steps: int, delta: float) -> float:
    """Exact ε of ``steps`` full-batch Gaussian steps: one Gaussian with σ/√steps."""
    return dp_accounting.get_epsilon_gaussian(noise_multiplier / math.sqrt(steps), delta)


def test_pld_keeps_the_default_grid_for_ordinary_plans():
    backend = get_accountant("pld")
    interval = backend.grid_interval(
        sample_rate=MNIST.sample_rate,
        noise_multiplier=MNIST.noise_multiplier,
        steps=MNIST.total_steps,
    )
    assert interval == pld_module.DEFAULT_VALUE_DISCRETIZATION_INTERVAL


@pytest.mark.parametrize(
    ("sample_rate", "noise_multiplier", "steps"),
    [
        pytest.param(256 / 60000, 0.01, 235, id="sigma0.01-one-MNIST-epoch(hung)"),
        pytest.param(256 / 60000, 0.05, 235, id="sigma0.05-one-MNIST-epoch"),
        pytest.param(1.024e-5, 0.1, 976_570, id="tf_privacy-sigma0.1-976570steps"),
        pytest.param(1.0, 1.0, 10_000, id="full-batch-10000-epochs"),
        pytest.param(0.1, 0.5, 100_000, id="q0.1-sigma0.5-10000-epochs"),
        pytest.param(0.5, 0.5, 20_000, id="q0.5-sigma0.5-10000-epochs"),
    ],
)
def test_pld_widens_the_grid_of_extreme_plans_before_building_it(
    sample_rate, noise_multiplier, steps
):
    # Sizing costs milliseconds (a 2,000-cell probe); the default grid would need tens of
    # millions of cells here.
    interval = get_accountant("pld").grid_interval(
        sample_rate=sample_rate, noise_multiplier=noise_multiplier, steps=steps
    )
    assert interval > pld_module.DEFAULT_VALUE_DISCRETIZATION_INTERVAL


@pytest.mark.parametrize(
    ("noise_multiplier", "epochs"),
    [pytest.param(0.01, 1, id="sigma0.01-one-step"), pytest.param(1.0, 10_000, id="10000-steps")],
)
def test_pld_coarsened_answer_is_an_upper_bound_and_recorded(noise_multiplier, epochs):
    plan = TrainingPlan(
        dataset_size=1000,
        batch_size=1000,
        noise_multiplier=noise_multiplier,
        epochs=epochs,
        delta=1e-5,
    )
    result = get_accountant("pld").compute(
        sample_rate=1.0,
        noise_multiplier=noise_multiplier,
        delta=plan.delta,
        steps=(plan.total_steps,),
    )
    exact = _exact(noise_multiplier, plan.total_steps, plan.delta)
    assert result.upper[-1] >= exact * (1 - 1e-9)
    assert result.upper[-1] <= exact * 1.01  # looser, not useless
    assert result.settings["value_discretization_interval"] > 1e-4
    assert "grid widened from 0.0001" in result.settings["coarsened"]
    assert result.settings["pessimistic_estimate"] is True


def test_pld_limits_widen_the_grid_pessimistically(monkeypatch):
    # With a tiny cell budget an ordinary plan is coarsened too; its ε only grows.
    backend = get_accountant("pld")
    plan = MNIST.replace(epochs=1)
    fine = backend.compute(
        sample_rate=plan.sample_rate,
        noise_multiplier=plan.noise_multiplier,
        delta=plan.delta,
        steps=(plan.total_steps,),
    )
    backend.clear_cache()
    monkeypatch.setattr(pld_module, "MAX_COMPOSED_POINTS", 1 << 12)
    pld_module._composed_loss_width.cache_clear()
    try:
        coarse = backend.compute(
            sample_rate=plan.sample_rate,
            noise_multiplier=plan.noise_multiplier,
            delta=plan.delta,
            steps=(plan.total_steps,),
        )
    finally:
        backend.clear_cache()
    assert "coarsened" not in fine.settings
    assert coarse.settings["value_discretization_interval"] > 1e-4
    assert fine.upper[-1] <= coarse.upper[-1] <= fine.upper[-1] * 1.05


def test_pld_curve_of_a_long_full_batch_plan_bounds_its_evaluated_epochs():
    plan = TrainingPlan(
        dataset_size=1000, batch_size=1000, noise_multiplier=1.0, epochs=3000, delta=1e-5
    )
    backend = get_accountant("pld")
    curve = backend.epsilon_curve(plan)
    evaluated = int(curve.settings["evaluated_epochs"].split(" of ")[0])
    assert pld_module.MIN_CURVE_POINTS <= evaluated <= backend.MAX_CURVE_POINTS
    assert evaluated * curve.settings["fft_points"] <= 2 * pld_module.CURVE_WORK
    for epoch in (1, 30, 1500, 2999, 3000):
        assert curve.epsilons[epoch - 1] >= _exact(1.0, epoch, plan.delta) * (1 - 1e-9), epoch


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("noise_multiplier", [1e-320, 1e-5, 0.0099])
def test_backends_refuse_tiny_noise_before_the_library(monkeypatch, method, noise_multiplier):
    backend = get_accountant(method)

    def forbidden(self, **kwargs):
        raise AssertionError(f"{self.name} library called with {kwargs}")

    monkeypatch.setattr(type(backend), "_compute", forbidden)
    with pytest.raises(PlanError, match=r"noise_multiplier=.* must be a finite number >= 0\.01"):
        backend.compute(
            sample_rate=0.01, noise_multiplier=noise_multiplier, delta=1e-5, steps=(10,)
        )


def test_fresh_accountant_can_report_a_refusal_as_infinity():
    huge = TrainingPlan(
        dataset_size=60000, batch_size=256, noise_multiplier=0.1, epochs=10, delta=1e-5
    )
    backend = get_accountant("prv")
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(
            huge.sample_rate, dp_accounting.GaussianDpEvent(huge.noise_multiplier)
        ),
        huge.total_steps,
    )
    with pytest.raises(AccountingError, match="grid"):
        backend.fresh().compose(event).get_epsilon(huge.delta)
    assert backend.fresh(refusal_as_infinity=True).compose(event).get_epsilon(huge.delta) == (
        math.inf
    )
