"""dpplan's backends equal a direct call to the wrapped library (STYLE §3.9 item 2).

* RDP: dp-accounting's ``RdpAccountant`` with dpplan's orders, composing the same event, to
  ``rel=1e-12`` after every epoch (both paths are deterministic).
* PLD: a fresh dp-accounting ``PLDAccountant(value_discretization_interval=1e-4)`` per
  epoch: dpplan's point is at least the library's (up to the library's own unbudgeted FFT
  round-off, 1e-8) and within ``rel=1e-6`` (dpplan composes the cached single-step PLD in
  the Fourier domain for the whole curve and charges its round-off to δ).
* PRV: prv-accountant's ``PRVAccountant``. dpplan recomposes the same discretised PRV in
  float64 on a grid of length 2^a·3^b·5^c (as wide or wider) and budgets the proven round-off
  into δ (see the module
  docstring of ``dpplan/accounting/prv.py``), so its upper bound may only be *looser* than
  the library's, by at most ``rel=2e-3``; and its lower bound must not exceed the library's
  upper bound.
"""

from __future__ import annotations

import dp_accounting
import pytest
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant
from prv_accountant import PoissonSubsampledGaussianMechanism, PRVAccountant

from dpplan.accounting import epsilon, epsilon_curve
from dpplan.accounting.events import dpsgd_event
from dpplan.accounting.pld import DEFAULT_VALUE_DISCRETIZATION_INTERVAL
from dpplan.accounting.prv import DEFAULT_DELTA_ERROR_FRACTION, DEFAULT_EPS_ERROR
from dpplan.accounting.rdp import DEFAULT_ORDERS
from dpplan.plan import TrainingPlan

# Named plans: MNIST-like, Opacus' test configuration (q = 0.04, σ = 1.5), full batch, and a
# noisy large-batch plan.
MNIST = TrainingPlan(dataset_size=60000, batch_size=256, noise_multiplier=1.1, epochs=3, delta=1e-5)
OPACUS = TrainingPlan(dataset_size=25, batch_size=1, noise_multiplier=1.5, epochs=8, delta=1e-5)
FULL_BATCH = TrainingPlan(
    dataset_size=10, batch_size=10, noise_multiplier=5.0, epochs=10, delta=1e-5
)
LARGE_BATCH = TrainingPlan(
    dataset_size=50000, batch_size=4096, noise_multiplier=3.0, epochs=20, delta=1e-6
)

RDP_PLANS = [
    pytest.param(MNIST, id="mnist-B256-sigma1.1-3ep"),
    pytest.param(OPACUS.replace(epochs=20), id="opacus-q0.04-sigma1.5-500steps"),
    pytest.param(FULL_BATCH, id="full-batch-sigma5-10steps"),
    pytest.param(LARGE_BATCH, id="B4096-sigma3-20ep"),
]


def test_dpplan_uses_dp_accounting_default_orders():
    assert DEFAULT_ORDERS == tuple(float(o) for o in rdp_privacy_accountant.DEFAULT_RDP_ORDERS)


@pytest.mark.parametrize("plan", RDP_PLANS)
def test_rdp_equals_rdp_accountant_after_every_epoch(plan):
    curve = epsilon_curve(plan, method="rdp")
    for epoch, value in zip(curve.epochs, curve.epsilons, strict=True):
        library = rdp_privacy_accountant.RdpAccountant(orders=list(DEFAULT_ORDERS))
        library.compose(dpsgd_event(plan, steps=plan.steps_after(epoch)))
        assert value == pytest.approx(library.get_epsilon(plan.delta), rel=1e-12, abs=0)


def test_rdp_equals_rdp_accountant_with_its_own_event_construction():
    # Build the event by hand, without dpplan's events module.
    plan = MNIST
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(256 / 60000, dp_accounting.GaussianDpEvent(1.1)),
        plan.total_steps,
    )
    library = rdp_privacy_accountant.RdpAccountant(orders=list(DEFAULT_ORDERS))
    library.compose(event)
    epsilon_library, order = library.get_epsilon_and_optimal_order(plan.delta)
    curve = epsilon_curve(plan, method="rdp")
    assert curve.epsilon == pytest.approx(epsilon_library, rel=1e-12, abs=0)
    assert curve.settings["optimal_order"] == order


PLD_PLANS = [
    pytest.param(MNIST.replace(epochs=2), id="mnist-B256-sigma1.1-2ep"),
    pytest.param(MNIST.replace(epochs=7), id="mnist-B256-sigma1.1-7ep"),
    pytest.param(OPACUS, id="opacus-q0.04-sigma1.5-200steps"),
    pytest.param(FULL_BATCH, id="full-batch-sigma5-10steps"),
    pytest.param(LARGE_BATCH.replace(epochs=12), id="B4096-sigma3-12ep"),
]


@pytest.mark.parametrize("plan", PLD_PLANS)
def test_pld_curve_bounds_a_fresh_pld_accountant_after_every_epoch(plan):
    # dpplan composes in the Fourier domain and charges a proven float64 round-off bound to
    # δ, so each point is at least the library's (which does not budget its own FFT
    # round-off: allow 1e-8 for it) and within rel 3e-6 of it (the proof's cost: the bound
    # is worst-case, ~1e-6 of ε on the first epoch of a curve, whose tilt is aimed at the
    # last epoch).
    assert DEFAULT_VALUE_DISCRETIZATION_INTERVAL == 1e-4
    curve = epsilon_curve(plan, method="pld")
    for epoch, value in zip(curve.epochs, curve.epsilons, strict=True):
        library = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4)
        library.compose(dpsgd_event(plan, steps=plan.steps_after(epoch)))
        expected = library.get_epsilon(plan.delta)
        assert value >= expected - 1e-8, f"epoch {epoch}: dpplan's bound is tighter"
        assert value == pytest.approx(expected, rel=3e-6, abs=0), f"epoch {epoch}"
    assert curve.epsilon == epsilon(plan, method="pld")


PRV_PLANS = [
    pytest.param(MNIST, id="mnist-B256-sigma1.1-3ep"),
    pytest.param(OPACUS, id="opacus-q0.04-sigma1.5-200steps"),
    pytest.param(FULL_BATCH, id="full-batch-sigma5-10steps"),
]


@pytest.mark.parametrize("plan", PRV_PLANS)
def test_prv_bounds_match_prv_accountant_after_every_epoch(plan):
    # As STYLE §3.3 prescribes: one PRVAccountant sized for total_steps, queried per epoch.
    assert DEFAULT_EPS_ERROR == 0.01 and DEFAULT_DELTA_ERROR_FRACTION == 1e-3
    library = PRVAccountant(
        prvs=[
            PoissonSubsampledGaussianMechanism(
                noise_multiplier=plan.noise_multiplier, sampling_probability=plan.sample_rate
            )
        ],
        eps_error=0.01,
        delta_error=plan.delta / 1000,
        max_self_compositions=[plan.total_steps],
    )
    curve = epsilon_curve(plan, method="prv")
    for epoch, lower, upper in zip(curve.epochs, curve.lower, curve.epsilons, strict=True):
        _, _, library_upper = library.compute_epsilon(
            delta=plan.delta, num_self_compositions=[plan.steps_after(epoch)]
        )
        assert upper >= library_upper - 1e-6, f"epoch {epoch}: dpplan's upper bound is tighter"
        assert upper == pytest.approx(library_upper, rel=2e-3, abs=0), f"epoch {epoch}"
        assert lower <= library_upper, f"epoch {epoch}"
