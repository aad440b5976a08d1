"""The contract every accounting backend must meet (STYLE §3.9 item 1).

One module, one fixture parametrized over ``METHODS`` (dp-accounting's
``PrivacyAccountantTest`` rewritten as a pytest fixture): the per-epoch curve, its relation
to ``epsilon(plan)``, and the ``fresh()`` dp-accounting accountant that the solvers drive.
"""

from __future__ import annotations

import math

import dp_accounting
import pytest

import dpplan
from dpplan.accounting import METHODS, epsilon, epsilon_curve, get_accountant
from dpplan.accounting.events import dpsgd_event
from dpplan.plan import TrainingPlan

# 100 steps per epoch at q = 0.01; 4 epochs keep PRV well under a second.
PLAN = TrainingPlan(dataset_size=60000, batch_size=600, noise_multiplier=1.0, epochs=4, delta=1e-5)


@pytest.fixture(scope="module", params=METHODS)
def method(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def curve(method) -> dpplan.EpsilonCurve:
    return epsilon_curve(PLAN, method=method)


def test_methods_are_the_three_documented_names():
    assert METHODS == ("rdp", "prv", "pld")


def test_backend_name_matches_method(method):
    assert get_accountant(method).name == method
    assert get_accountant(method) is get_accountant(method)  # one configured instance


def test_curve_has_one_point_per_epoch(method, curve):
    assert curve.method == method
    assert curve.plan == PLAN
    assert curve.epochs == tuple(range(1, PLAN.epochs + 1))
    assert len(curve.epsilons) == PLAN.epochs
    for extra in (curve.lower, curve.estimates):
        assert extra is None or len(extra) == PLAN.epochs


def test_curve_is_finite_non_negative_and_non_decreasing(curve):
    assert all(math.isfinite(e) and e >= 0 for e in curve.epsilons)
    assert all(a <= b for a, b in zip(curve.epsilons, curve.epsilons[1:]))
    assert curve.epsilons[0] > 0  # 100 noisy steps cost something


def test_last_point_equals_epsilon_of_the_plan_exactly(method, curve):
    assert curve.epsilon == curve.epsilons[-1]
    assert curve.epsilon == epsilon(PLAN, method=method)
    assert curve.epsilon == get_accountant(method).epsilon(PLAN)


def test_only_prv_has_lower_bounds_and_estimates(method, curve):
    if method == "prv":
        for low, mid, high in zip(curve.lower, curve.estimates, curve.epsilons, strict=True):
            assert 0 <= low <= mid <= high
    else:
        assert curve.lower is None and curve.estimates is None


def test_curve_records_settings_and_library_versions(method, curve):
    assert curve.settings
    library = "prv-accountant" if method == "prv" else "dp-accounting"
    assert curve.versions[library] not in ("", "unknown")
    data = curve.to_dict()
    assert data["method"] == method
    assert data["epsilon"] == curve.epsilon
    assert data["curve"]["epochs"] == list(curve.epochs)


# --- fresh(): a dp-accounting PrivacyAccountant answering through the backend --------


@pytest.fixture
def fresh(method) -> dp_accounting.PrivacyAccountant:
    accountant = get_accountant(method).fresh()
    assert isinstance(accountant, dp_accounting.PrivacyAccountant)
    return accountant


def test_fresh_accountant_is_empty(fresh):
    assert isinstance(fresh.ledger, dp_accounting.NoOpDpEvent)
    assert fresh.get_epsilon(PLAN.delta) == 0.0


def test_fresh_accountants_are_independent(method):
    first = get_accountant(method).fresh()
    first.compose(dpsgd_event(PLAN, steps=1))
    assert get_accountant(method).fresh().get_epsilon(PLAN.delta) == 0.0


def test_zero_steps_give_zero_epsilon(fresh):
    fresh.compose(dpsgd_event(PLAN, steps=0))
    assert fresh.get_epsilon(PLAN.delta) == 0.0


def test_zero_steps_of_noop_give_zero_epsilon(fresh):
    # The zero-step plan expressed as dp-accounting expects it.
    fresh.compose(dp_accounting.NoOpDpEvent())
    assert fresh.get_epsilon(PLAN.delta) == 0.0


def test_composing_the_plan_event_gives_epsilon_of_the_plan(method, fresh):
    assert fresh.supports(dpsgd_event(PLAN))
    assert fresh.compose(dpsgd_event(PLAN)) is fresh  # chainable, as in dp-accounting
    assert fresh.get_epsilon(PLAN.delta) == epsilon(PLAN, method=method)


def test_composing_epoch_by_epoch_adds_up_to_the_plan(method, fresh):
    for _ in range(PLAN.epochs):
        fresh.compose(dpsgd_event(PLAN, steps=PLAN.steps_per_epoch))
    assert fresh.get_epsilon(PLAN.delta) == epsilon(PLAN, method=method)


def test_compose_count_multiplies_steps(method, fresh):
    fresh.compose(dpsgd_event(PLAN, steps=PLAN.steps_per_epoch), PLAN.epochs)
    assert fresh.get_epsilon(PLAN.delta) == epsilon(PLAN, method=method)


UNSUPPORTED = [
    pytest.param(dp_accounting.LaplaceDpEvent(1.0), id="laplace"),
    pytest.param(dp_accounting.GaussianDpEvent(1.0), id="gaussian-not-subsampled"),
    pytest.param(dp_accounting.ComposedDpEvent([dp_accounting.LaplaceDpEvent(1.0)]), id="composed"),
    pytest.param(
        dp_accounting.PoissonSampledDpEvent(0.01, dp_accounting.LaplaceDpEvent(1.0)),
        id="poisson-laplace",
    ),
    pytest.param(
        dp_accounting.SelfComposedDpEvent(dp_accounting.LaplaceDpEvent(1.0), 3),
        id="self-composed-laplace",
    ),
    pytest.param(dp_accounting.NonPrivateDpEvent(), id="non-private"),
]


@pytest.mark.parametrize("event", UNSUPPORTED)
def test_unsupported_event_raises_and_leaves_the_ledger_unchanged(fresh, event):
    fresh.compose(dpsgd_event(PLAN, steps=PLAN.steps_per_epoch))
    ledger, before = fresh.ledger, fresh.get_epsilon(PLAN.delta)
    assert not fresh.supports(event)
    with pytest.raises(dp_accounting.UnsupportedEventError):
        fresh.compose(event)
    assert fresh.ledger == ledger
    assert fresh.get_epsilon(PLAN.delta) == before > 0


def test_a_second_mechanism_is_refused_and_leaves_the_ledger_unchanged(fresh):
    fresh.compose(dpsgd_event(PLAN, steps=10))
    ledger, before = fresh.ledger, fresh.get_epsilon(PLAN.delta)
    other = dpsgd_event(PLAN.replace(noise_multiplier=2.0), steps=10)
    assert not fresh.supports(other)
    with pytest.raises(dp_accounting.UnsupportedEventError):
        fresh.compose(other)
    assert fresh.ledger == ledger
    assert fresh.get_epsilon(PLAN.delta) == before


def test_noop_event_changes_nothing(method, fresh):
    assert fresh.supports(dp_accounting.NoOpDpEvent())
    fresh.compose(dp_accounting.NoOpDpEvent())
    assert fresh.get_epsilon(PLAN.delta) == 0.0
    fresh.compose(dpsgd_event(PLAN))
    fresh.compose(dp_accounting.NoOpDpEvent(), 5)
    fresh.compose(dp_accounting.SelfComposedDpEvent(dp_accounting.NoOpDpEvent(), 7))
    assert fresh.get_epsilon(PLAN.delta) == epsilon(PLAN, method=method)


def test_non_event_is_a_type_error(fresh):
    with pytest.raises(TypeError):
        fresh.compose("not an event")  # type: ignore[arg-type]
