"""Property tests (STYLE §3.9 item 5): monotonicity, and solvers that never overshoot.

RDP is fast (milliseconds per query), so hypothesis draws many RDP examples; PLD and PRV
(~0.1-0.8 s per query) get a few fixed examples each. Sample rates are drawn from a
realistic list (as Opacus' tests do) and ``max_examples`` is small, ``deadline=None``.
"""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from library_bounds import library_epsilon

from dpplan.accounting import METHODS, epsilon, epsilon_curve, get_accountant
from dpplan.errors import AccountingError, InfeasibleTargetError
from dpplan.plan import MAX_EPOCHS, MAX_TOTAL_STEPS, TrainingPlan
from dpplan.solve import (
    BEST_ORDER,
    NOISE_MULTIPLIER_SEARCH_MIN,
    solve_batch_size,
    solve_epochs,
    solve_noise_multiplier,
    solve_plan,
)

SETTINGS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

SAMPLE_RATES = [0.001, 0.004, 0.01, 0.02, 0.05, 0.1]
TARGETS = [0.5, 1.0, 2.0, 4.0, 8.0]


@st.composite
def rdp_plans(draw, max_epochs: int = 30) -> TrainingPlan:
    dataset_size = draw(st.sampled_from([1000, 10000, 60000]))
    sample_rate = draw(st.sampled_from(SAMPLE_RATES))
    batch_size = max(1, round(sample_rate * dataset_size))
    return TrainingPlan(
        dataset_size=dataset_size,
        batch_size=batch_size,
        noise_multiplier=draw(st.floats(min_value=0.5, max_value=5.0)),
        epochs=draw(st.integers(min_value=1, max_value=max_epochs)),
        delta=draw(st.sampled_from([1e-5, 1e-6])),
    )


# --- ε grows with epochs -------------------------------------------------------------


@SETTINGS
@given(rdp_plans())
def test_rdp_epsilon_grows_with_epochs(plan):
    curve = epsilon_curve(plan, method="rdp")
    assert all(a <= b for a, b in zip(curve.epsilons, curve.epsilons[1:]))
    assert epsilon(plan.replace(epochs=plan.epochs + 1), method="rdp") >= curve.epsilon


# A small plan for the slow backends: q = 0.02, 50 steps per epoch.
FIXED = TrainingPlan(dataset_size=1000, batch_size=20, noise_multiplier=1.2, epochs=2, delta=1e-5)


@pytest.mark.parametrize("method", ["pld", "prv"])
def test_epsilon_grows_with_epochs_fixed_examples(method):
    epochs = tuple(range(1, 7))
    # The backend's raw per-epoch bounds (before the curve's monotone smoothing) increase.
    raw = (
        get_accountant(method)
        .compute(
            sample_rate=FIXED.sample_rate,
            noise_multiplier=FIXED.noise_multiplier,
            delta=FIXED.delta,
            steps=tuple(FIXED.steps_after(e) for e in epochs),
        )
        .upper
    )
    assert all(a < b for a, b in itertools.pairwise(raw))
    assert raw[-1] == epsilon(FIXED.replace(epochs=epochs[-1]), method=method)


# --- ε falls with the noise multiplier ----------------------------------------------


@SETTINGS
@given(rdp_plans(), st.floats(min_value=1.01, max_value=3.0))
def test_rdp_epsilon_falls_with_noise_multiplier(plan, factor):
    louder = plan.replace(noise_multiplier=plan.noise_multiplier * factor)
    assert epsilon(louder, method="rdp") <= epsilon(plan, method="rdp")


@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([0.9, 1.3, 2.0]), st.floats(min_value=1.05, max_value=2.0))
def test_pld_epsilon_falls_with_noise_multiplier(noise_multiplier, factor):
    plan = FIXED.replace(noise_multiplier=noise_multiplier)
    louder = plan.replace(noise_multiplier=noise_multiplier * factor)
    assert epsilon(louder, method="pld") <= epsilon(plan, method="pld")


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([0.9, 1.3, 2.0]), st.floats(min_value=1.05, max_value=2.0))
def test_prv_epsilon_falls_with_noise_multiplier(noise_multiplier, factor):
    plan = FIXED.replace(noise_multiplier=noise_multiplier)
    louder = plan.replace(noise_multiplier=noise_multiplier * factor)
    assert epsilon(louder, method="prv") <= epsilon(plan, method="prv")


# --- solve_noise_multiplier: never overshoots, and tight -----------------------------


def check_noise_multiplier_solution(plan, target, method):
    solved = solve_noise_multiplier(plan, target_epsilon=target, method=method)
    assert solved == plan.replace(noise_multiplier=solved.noise_multiplier)
    backend = get_accountant(method)
    # Never overshoots (C's test_get_noise_multiplier_overshoot, one-sided, every method).
    assert backend.epsilon(solved) <= target
    # Tight: 0.5% less noise breaks the budget (the solver promises 0.1% of the smallest σ),
    # unless the search floor was hit.
    if solved.noise_multiplier > NOISE_MULTIPLIER_SEARCH_MIN:
        smaller = solved.replace(noise_multiplier=solved.noise_multiplier * 0.995)
        assert backend.epsilon(smaller) > target
    return solved


@settings(SETTINGS, max_examples=10)
@given(rdp_plans(max_epochs=20), st.sampled_from(TARGETS))
def test_rdp_solve_noise_multiplier_never_overshoots_and_is_tight(plan, target):
    check_noise_multiplier_solution(plan, target, "rdp")


# Fixed examples for every method: q = 0.02 over 2 epochs (100 steps), so a PLD/PRV query
# stays well under a second; a solve makes 10-20 of them.
SOLVE_PLAN = TrainingPlan(
    dataset_size=1000, batch_size=20, noise_multiplier=1.0, epochs=2, delta=1e-5
)


@pytest.mark.parametrize(
    ("method", "target"), [("rdp", 0.8), ("rdp", 3.0), ("pld", 1.5), ("prv", 1.5)]
)
def test_solve_noise_multiplier_never_overshoots_and_is_tight(method, target):
    check_noise_multiplier_solution(SOLVE_PLAN, target, method)


# --- solve_epochs: the largest number of epochs that fits ----------------------------


def check_epochs_solution(plan, target, method):
    backend = get_accountant(method)
    try:
        solved = solve_epochs(plan, target_epsilon=target, method=method)
    except InfeasibleTargetError:
        assert backend.epsilon(plan.replace(epochs=1)) > target
        return None
    assert solved == plan.replace(epochs=solved.epochs)
    assert backend.epsilon(solved) <= target
    limit = min(MAX_EPOCHS, MAX_TOTAL_STEPS // plan.steps_per_epoch)
    if solved.epochs < limit:
        assert backend.epsilon(solved.replace(epochs=solved.epochs + 1)) > target
    return solved


@SETTINGS
@given(rdp_plans(max_epochs=1), st.sampled_from(TARGETS))
def test_rdp_solve_epochs_is_maximal(plan, target):
    check_epochs_solution(plan, target, "rdp")


@pytest.mark.parametrize("method", METHODS)
def test_solve_epochs_is_maximal(method):
    solved = check_epochs_solution(SOLVE_PLAN, 2.0, method)
    assert solved is not None and solved.epochs > 1


def test_solve_epochs_stops_at_the_epoch_limit():
    # Very noisy full-data plan: every epoch count up to the limit fits.
    plan = TrainingPlan(
        dataset_size=100, batch_size=100, noise_multiplier=1000.0, epochs=1, delta=1e-5
    )
    solved = solve_epochs(plan, target_epsilon=100.0, method="rdp")
    assert solved.epochs == MAX_EPOCHS
    assert epsilon(solved, method="rdp") <= 100.0


# --- solve_batch_size: the largest batch that fits -----------------------------------


def check_batch_size_solution(plan, target, method):
    backend = get_accountant(method)
    try:
        solved = solve_batch_size(plan, target_epsilon=target, method=method)
    except InfeasibleTargetError:
        assert backend.epsilon(plan.replace(batch_size=1)) > target
        return None
    assert solved == plan.replace(batch_size=solved.batch_size)
    assert backend.epsilon(solved) <= target
    if solved.batch_size < plan.dataset_size:
        assert backend.epsilon(solved.replace(batch_size=solved.batch_size + 1)) > target
    return solved


@st.composite
def small_rdp_plans(draw) -> TrainingPlan:
    return TrainingPlan(
        dataset_size=draw(st.sampled_from([500, 1000, 2000])),
        batch_size=1,
        noise_multiplier=draw(st.floats(min_value=0.7, max_value=5.0)),
        epochs=draw(st.integers(min_value=1, max_value=5)),
        delta=1e-5,
    )


@settings(SETTINGS, max_examples=10)
@given(small_rdp_plans(), st.sampled_from(TARGETS))
def test_rdp_solve_batch_size_is_maximal(plan, target):
    check_batch_size_solution(plan, target, "rdp")


@pytest.mark.parametrize("method", METHODS)
def test_solve_batch_size_is_maximal(method):
    solved = check_batch_size_solution(SOLVE_PLAN, 1.5, method)
    assert solved is not None and 1 < solved.batch_size < SOLVE_PLAN.dataset_size


# --- serialisation -------------------------------------------------------------------


@SETTINGS
@given(rdp_plans(max_epochs=MAX_EPOCHS // 100), st.floats(min_value=1e-3, max_value=100.0))
def test_from_dict_of_to_dict_is_identity(plan, max_grad_norm):
    plan = plan.replace(max_grad_norm=max_grad_norm)
    assume(plan.total_steps <= MAX_TOTAL_STEPS)
    assert TrainingPlan.from_dict(plan.to_dict()) == plan
    assert TrainingPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


# --- method="best" (the default): never over the target, by the library itself --------


@st.composite
def small_plans(draw) -> TrainingPlan:
    """Plans of at most a few hundred steps, so each method's query stays well under 1 s."""
    dataset_size = draw(st.sampled_from([1000, 2000]))
    sample_rate = draw(st.sampled_from([0.02, 0.05]))
    return TrainingPlan(
        dataset_size=dataset_size,
        batch_size=max(1, round(sample_rate * dataset_size)),
        noise_multiplier=draw(st.floats(min_value=0.8, max_value=3.0)),
        epochs=draw(st.integers(min_value=1, max_value=2)),
        delta=1e-5,
    )


@settings(SETTINGS, max_examples=4)
@given(
    small_plans(),
    st.sampled_from(["noise_multiplier", "epochs", "batch_size"]),
    st.sampled_from([0.1, 0.5, 1.0, 2.0]),
)
def test_best_solve_never_exceeds_the_target_and_no_method_certifies_better(plan, field, target):
    try:
        solution = solve_plan(plan, field=field, target_epsilon=target)
    except InfeasibleTargetError:
        assert field != "noise_multiplier"
        smallest = plan.replace(**{field: 1})
        for method in BEST_ORDER:
            assert epsilon(smallest, method=method) > target
        return
    solved = solution.plan
    assert solved == plan.replace(**{field: getattr(solved, field)})
    # Never over the target: by dpplan's backend, by the wrapped library itself, and by the
    # headline rule (the smallest bound of every method).
    assert solution.epsilon == get_accountant(solution.method).epsilon(solved) <= target
    assert library_epsilon(solution.method, solved) <= target * (1 + 1e-9)
    # The most favourable: no method certifies 0.5% less noise or one more epoch. (A batch
    # size is only locally maximal per method: ε is not monotone in it, see solve_batch_size.)
    if solution.bounded_by == "target" and field != "batch_size":
        better = (
            solved.replace(noise_multiplier=solved.noise_multiplier * 0.995)
            if field == "noise_multiplier"
            else solved.replace(epochs=solved.epochs + 1)
        )
        for method in BEST_ORDER:
            try:
                assert get_accountant(method).epsilon(better) > target
            except AccountingError:
                pass  # a method that cannot compute ε there certifies nothing
