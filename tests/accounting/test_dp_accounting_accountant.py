"""dpplan.dp_accounting_accountant against dp-accounting and prv-accountant (issue 23)."""

from __future__ import annotations

import math

import dp_accounting
import prv_accountant
import pytest
from dp_accounting import dp_event
from prv_accountant.privacy_random_variables import PoissonSubsampledGaussianMechanism

import dpplan
from dpplan.accounting import get_accountant
from dpplan.accounting.segments import Segment, delta_of_segments, epsilon_of_segments

DELTA = 1e-5
# Two DP-SGD phases with different (q, σ): 300 steps at q = 0.01, σ = 1, then 200 at
# q = 0.02, σ = 1.5.
PHASES = ((0.01, 1.0, 300), (0.02, 1.5, 200))


def _step(q, sigma):
    return dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(sigma))


def _composed(phases=PHASES):
    return dp_event.ComposedDpEvent(
        [dp_event.SelfComposedDpEvent(_step(q, s), n) for q, s, n in phases]
    )


def _segments(phases=PHASES):
    return [Segment(sample_rate=q, noise_multiplier=s, steps=n) for q, s, n in phases]


def test_rdp_composed_equals_dp_accountings_rdp_accountant():
    orders = list(get_accountant("rdp").orders)
    theirs = dp_accounting.rdp.RdpAccountant(orders=orders).compose(_composed())
    ours = dpplan.dp_accounting_accountant("rdp").compose(_composed())
    assert ours.get_epsilon(DELTA) == pytest.approx(theirs.get_epsilon(DELTA), rel=1e-12)
    assert ours.get_delta(1.5) == pytest.approx(theirs.get_delta(1.5), rel=1e-12)


def test_pld_composed_equals_dp_accountings_pld_accountant():
    theirs = dp_accounting.pld.PLDAccountant().compose(_composed())
    ours = dpplan.dp_accounting_accountant("pld").compose(_composed())
    assert ours.get_epsilon(DELTA) == pytest.approx(theirs.get_epsilon(DELTA), rel=1e-12)
    assert ours.get_delta(1.0) == pytest.approx(theirs.get_delta(1.0), rel=1e-9)


def test_prv_composed_is_prv_accountants_upper_bound_and_brackets_pld():
    prvs = [PoissonSubsampledGaussianMechanism(q, s) for q, s, _ in PHASES]
    counts = [n for _, _, n in PHASES]
    library = prv_accountant.PRVAccountant(
        prvs=prvs, eps_error=0.01, delta_error=DELTA / 1000, max_self_compositions=counts
    )
    lower, _, upper = library.compute_epsilon(DELTA, counts)
    ours = dpplan.dp_accounting_accountant("prv").compose(_composed()).get_epsilon(DELTA)
    assert ours == pytest.approx(upper, rel=1e-12)
    # The PLD upper bound is an upper bound on the true ε, which is above PRV's lower bound.
    pld = dp_accounting.pld.PLDAccountant().compose(_composed()).get_epsilon(DELTA)
    assert lower <= pld <= ours + 0.02


def test_best_is_the_smallest_method():
    values = {
        m: dpplan.dp_accounting_accountant(m).compose(_composed()).get_epsilon(DELTA)
        for m in ("rdp", "prv", "pld")
    }
    best = dpplan.dp_accounting_accountant("best").compose(_composed()).get_epsilon(DELTA)
    assert best == min(values.values())


@pytest.mark.parametrize("method", ["rdp", "prv", "pld"])
def test_one_mechanism_uses_the_plan_fast_path(method):
    plan = dpplan.TrainingPlan(
        dataset_size=10_000, batch_size=100, noise_multiplier=1.0, epochs=3, delta=DELTA
    )
    accountant = dpplan.dp_accounting_accountant(method)
    # Split over two compose calls and a composed event: still one mechanism, 300 steps.
    accountant.compose(_step(0.01, 1.0), 100)
    accountant.compose(dp_event.ComposedDpEvent([_step(0.01, 1.0), dp_event.NoOpDpEvent()]), 200)
    assert accountant.get_epsilon(DELTA) == dpplan.epsilon(plan, method=method)


def test_gaussian_alone_is_a_full_batch_step():
    gaussian = dpplan.dp_accounting_accountant("pld").compose(dp_event.GaussianDpEvent(4.0), 4)
    full = dpplan.dp_accounting_accountant("pld").compose(_step(1.0, 4.0), 4)
    exact = dp_accounting.get_epsilon_gaussian(4.0 / 2, DELTA)  # 4 steps: σ/√4
    assert gaussian.get_epsilon(DELTA) == full.get_epsilon(DELTA)
    assert exact <= gaussian.get_epsilon(DELTA) <= exact * (1 + 1e-3)


def test_numpy_numbers_are_accepted():
    import numpy as np

    ours = dpplan.dp_accounting_accountant("rdp").compose(
        _step(np.float32(0.01), np.float64(1.0)), 300
    )
    plain = dpplan.dp_accounting_accountant("rdp").compose(_step(0.01, 1.0), 300)
    assert ours.get_epsilon(DELTA) == pytest.approx(plain.get_epsilon(DELTA), rel=1e-6)


def test_zero_noise_is_non_private():
    accountant = dpplan.dp_accounting_accountant("rdp").compose(_step(0.01, 0.0), 3)
    assert accountant.get_epsilon(DELTA) == math.inf
    assert accountant.get_delta(10.0) == 1.0


@pytest.mark.parametrize("sigma", [float("nan"), -1.0, float("inf"), 1e-5])
def test_bad_noise_is_refused_as_the_innermost_event(sigma):
    accountant = dpplan.dp_accounting_accountant("rdp")
    bad = _step(0.01, sigma)
    event = dp_event.ComposedDpEvent([_step(0.01, 1.0), dp_event.SelfComposedDpEvent(bad, 5)])
    details = accountant._maybe_compose(event, 1, False)
    assert details.invalid_event is bad
    assert not accountant.supports(event)


def test_refused_event_leaves_the_accountant_unchanged():
    accountant = dpplan.dp_accounting_accountant("pld").compose(_step(0.01, 1.0), 50)
    before = accountant.get_epsilon(DELTA)
    unsupported = dp_event.LaplaceDpEvent(1.0)
    event = dp_event.ComposedDpEvent([_step(0.02, 0.8), dp_event.NonPrivateDpEvent(), unsupported])
    with pytest.raises(dp_accounting.UnsupportedEventError, match="LaplaceDpEvent"):
        accountant.compose(event)
    assert accountant.segments == (Segment(sample_rate=0.01, noise_multiplier=1.0, steps=50),)
    assert accountant.get_epsilon(DELTA) == before


@pytest.mark.parametrize("method", ["rdp", "prv", "pld"])
def test_get_delta_inverts_get_epsilon(method):
    accountant = dpplan.dp_accounting_accountant(method).compose(_composed())
    epsilon = accountant.get_epsilon(DELTA)
    # δ at the reported ε is at most δ (up to PRV's own error allowance), and δ falls with ε.
    assert accountant.get_delta(epsilon) <= DELTA * 1.01
    assert accountant.get_delta(epsilon * 1.5) < accountant.get_delta(epsilon * 0.5)
    assert accountant.get_delta(math.inf) == 0.0


def test_calibrate_dp_mechanism_with_dpplans_factory_meets_the_target():
    def make_event(sigma):
        return dp_event.SelfComposedDpEvent(_step(0.01, sigma), 500)

    for method, recheck in (
        ("rdp", lambda: dp_accounting.rdp.RdpAccountant()),
        ("pld", lambda: dp_accounting.pld.PLDAccountant()),
    ):
        sigma = dp_accounting.calibrate_dp_mechanism(
            lambda m=method: dpplan.dp_accounting_accountant(m),
            make_event,
            target_epsilon=1.0,
            target_delta=DELTA,
            bracket_interval=dp_accounting.ExplicitBracketInterval(0.5, 5.0),
            tol=1e-3,
        )
        assert recheck().compose(make_event(sigma)).get_epsilon(DELTA) <= 1.0
        # ...and it is close to the smallest σ: 1% less noise breaks the target.
        assert (
            dpplan.dp_accounting_accountant(method)
            .compose(make_event(sigma * 0.99))
            .get_epsilon(DELTA)
            > 1.0
        )


def test_segment_primitive_validates():
    with pytest.raises(dpplan.PlanError, match="sample_rate=1.5"):
        Segment(sample_rate=1.5, noise_multiplier=1.0, steps=1)
    with pytest.raises(dpplan.PlanError, match="method='gdp'"):
        epsilon_of_segments(_segments(), delta=DELTA, method="gdp")
    with pytest.raises(dpplan.PlanError, match="delta"):
        epsilon_of_segments(_segments(), delta=0.0, method="rdp")
    assert epsilon_of_segments([], delta=DELTA, method="best") == 0.0
    assert delta_of_segments(_segments(), epsilon=math.inf, method="pld") == 0.0


def test_truncated_poisson_is_accounted_by_pld_only():
    truncated = dp_event.TruncatedSubsampledGaussianDpEvent(
        dataset_size=1000, sampling_probability=0.05, truncated_batch_size=70, noise_multiplier=1.0
    )
    event = dp_event.ComposedDpEvent(
        [
            dp_event.SelfComposedDpEvent(truncated, 100),
            dp_event.SelfComposedDpEvent(_step(0.02, 1.5), 100),
        ]
    )
    library = dp_accounting.pld.PLDAccountant().compose(event)
    ours = dpplan.dp_accounting_accountant("pld").compose(event)
    assert ours.get_epsilon(DELTA) == pytest.approx(library.get_epsilon(DELTA), rel=1e-9)
    assert ours.get_delta(1.0) == pytest.approx(library.get_delta(1.0), rel=1e-9)
    assert dpplan.dp_accounting_accountant("best").supports(event)  # the same PLD path
    # RDP and PRV have no analysis of truncated Poisson sampling: they refuse it, naming the
    # event, rather than account it as plain Poisson.
    for method in ("rdp", "prv"):
        accountant = dpplan.dp_accounting_accountant(method)
        assert not accountant.supports(event)
        details = accountant._maybe_compose(event, 1, False)
        assert details.invalid_event is truncated and "use" in details.error_message
