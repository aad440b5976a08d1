"""Tests for dpplan.solve: input validation, infeasibility messages, returned plans.

The properties (never overshoot, tight, maximal) are in tests/accounting/test_properties.py;
this module checks the solvers' interface. It uses RDP (milliseconds per query) except where
a method's own limits are the point.
"""

from __future__ import annotations

import re

import pytest
from library_bounds import library_epsilon

from dpplan import (
    AccountingError,
    InfeasibleTargetError,
    PlanError,
    TrainingPlan,
    compare,
    epsilon,
    solve_batch_size,
    solve_epochs,
    solve_noise_multiplier,
    solve_plan,
)
from dpplan.accounting import get_accountant
from dpplan.plan import MAX_EPOCHS, MAX_TOTAL_STEPS, NOISE_MULTIPLIER_MAX
from dpplan.solve import BEST_ORDER, NOISE_MULTIPLIER_SEARCH_MIN, TARGET_EPSILON_MAX

SOLVERS = [
    pytest.param(solve_noise_multiplier, "noise_multiplier", id="solve_noise_multiplier"),
    pytest.param(solve_epochs, "epochs", id="solve_epochs"),
    pytest.param(solve_batch_size, "batch_size", id="solve_batch_size"),
]

PLAN = TrainingPlan(
    dataset_size=1000, batch_size=10, noise_multiplier=1.0, epochs=3, delta=1e-5, max_grad_norm=0.5
)


# --- target_epsilon and method validation --------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        0,
        0.0,
        -1.0,
        TARGET_EPSILON_MAX * 1.0001,
        TARGET_EPSILON_MAX + 1,
        True,
        False,
        "2.0",
        None,
    ],
    ids=repr,
)
@pytest.mark.parametrize(("solver", "field"), SOLVERS)
def test_invalid_target_epsilon_is_a_plan_error(solver, field, target):
    with pytest.raises(PlanError, match=re.escape(f"target_epsilon={target!r} is invalid")) as info:
        solver(PLAN, target_epsilon=target, method="rdp")
    assert info.value.field == "target_epsilon"


def test_target_epsilon_bound_is_stated():
    with pytest.raises(PlanError, match=r"\(0, 100\]"):
        solve_epochs(PLAN, target_epsilon=101, method="rdp")


@pytest.mark.parametrize("method", ["foo", "RDP", "", None, 1])
@pytest.mark.parametrize(("solver", "field"), SOLVERS)
def test_unknown_method_is_a_plan_error_listing_the_methods(solver, field, method):
    with pytest.raises(PlanError, match=re.escape(f"method={method!r} is invalid")) as info:
        solver(PLAN, target_epsilon=1.0, method=method)
    for name in ("'rdp'", "'prv'", "'pld'"):
        assert name in str(info.value)


@pytest.mark.parametrize(("solver", "field"), SOLVERS)
def test_non_plan_is_a_plan_error(solver, field):
    with pytest.raises(PlanError, match=r"^plan="):
        solver(PLAN.to_dict(), target_epsilon=1.0, method="rdp")


@pytest.mark.parametrize(("solver", "field"), SOLVERS)
def test_arguments_after_the_plan_are_keyword_only(solver, field):
    with pytest.raises(TypeError):
        solver(PLAN, 1.0)  # type: ignore[misc]


# --- returned plans ------------------------------------------------------------------


@pytest.mark.parametrize(("solver", "field"), SOLVERS)
def test_solvers_return_a_new_plan_changing_only_their_field(solver, field):
    solved = solver(PLAN, target_epsilon=2.0, method="rdp")
    assert isinstance(solved, TrainingPlan)
    before, after = PLAN.to_dict(), solved.to_dict()
    derived = {"sample_rate", "steps_per_epoch", "total_steps"}
    changed = {k for k in before if before[k] != after[k]} - derived
    assert changed <= {field}
    assert solved == PLAN.replace(**{field: getattr(solved, field)})
    assert PLAN.noise_multiplier == 1.0 and PLAN.epochs == 3 and PLAN.batch_size == 10
    assert epsilon(solved, method="rdp") <= 2.0


def test_solve_noise_multiplier_floor():
    # A target that even the search floor meets returns the floor (documented).
    # One full-batch step at δ = 1e-3: σ = 0.1 costs ε ≈ 85 (RDP).
    plan = TrainingPlan(dataset_size=10, batch_size=10, noise_multiplier=1.0, epochs=1, delta=1e-3)
    solved = solve_noise_multiplier(plan, target_epsilon=100.0, method="rdp")
    assert solved.noise_multiplier == NOISE_MULTIPLIER_SEARCH_MIN
    assert epsilon(solved, method="rdp") <= 100.0


def test_solve_epochs_ignores_the_plans_epochs():
    a = solve_epochs(PLAN, target_epsilon=2.0, method="rdp")
    b = solve_epochs(PLAN.replace(epochs=500), target_epsilon=2.0, method="rdp")
    assert a == b


def test_solve_batch_size_ignores_the_plans_batch_size():
    a = solve_batch_size(PLAN, target_epsilon=2.0, method="rdp")
    b = solve_batch_size(PLAN.replace(batch_size=900), target_epsilon=2.0, method="rdp")
    assert a == b


# --- infeasible targets: numbers and a remedy ----------------------------------------


def test_solve_epochs_below_one_epoch_names_the_cost_and_a_remedy():
    plan = TrainingPlan(
        dataset_size=1000, batch_size=100, noise_multiplier=0.5, epochs=4, delta=1e-5
    )
    one_epoch = epsilon(plan.replace(epochs=1), method="rdp")
    assert one_epoch > 0.1
    with pytest.raises(InfeasibleTargetError) as info:
        solve_epochs(plan, target_epsilon=0.1, method="rdp")
    message = str(info.value)
    assert f"ε={one_epoch:.4g}" in message
    assert "target_epsilon=0.1" in message
    assert "delta=1e-05" in message
    assert "noise_multiplier=0.5" in message
    assert "sample_rate=0.1" in message
    assert "(rdp)" in message
    assert "Raise noise_multiplier or target_epsilon" in message
    assert isinstance(info.value, ValueError)


def test_solve_noise_multiplier_tiny_target_names_the_numbers_and_a_remedy():
    with pytest.raises(InfeasibleTargetError) as info:
        solve_noise_multiplier(PLAN, target_epsilon=1e-4, method="rdp")
    message = str(info.value)
    assert f"noise_multiplier <= {NOISE_MULTIPLIER_MAX:g}" in message
    assert "ε <= 0.0001" in message
    assert "delta=1e-05" in message
    assert "sample_rate=0.01" in message
    assert "300 steps" in message
    assert "Raise target_epsilon" in message
    assert "lower epochs or" in message


def test_solve_noise_multiplier_infeasible_for_prv_below_its_error_term():
    # PRV's upper bound is estimate + eps_error (0.01), so it can never certify ε < 0.01,
    # however large σ is; RDP can (ε ≈ 6e-4 at σ = 1000 here).
    assert get_accountant("prv").epsilon(PLAN.replace(noise_multiplier=1000.0)) > 0.005
    with pytest.raises(InfeasibleTargetError, match=r"\(prv\)"):
        solve_noise_multiplier(PLAN, target_epsilon=0.005, method="prv")
    solved = solve_noise_multiplier(PLAN, target_epsilon=0.005, method="rdp")
    assert epsilon(solved, method="rdp") <= 0.005


def test_solve_batch_size_infeasible_names_the_smallest_batch():
    plan = TrainingPlan(
        dataset_size=1000, batch_size=10, noise_multiplier=0.3, epochs=5, delta=1e-5
    )
    smallest = epsilon(plan.replace(batch_size=1), method="rdp")
    with pytest.raises(InfeasibleTargetError) as info:
        solve_batch_size(plan, target_epsilon=0.01, method="rdp")
    message = str(info.value)
    assert f"batch_size=1 costs ε={smallest:.4g}" in message
    assert "target_epsilon=0.01" in message
    assert "over 5 epochs" in message
    assert "noise_multiplier=0.3" in message
    assert "Raise noise_multiplier or target_epsilon, or lower epochs" in message


def test_solve_batch_size_respects_the_total_steps_limit():
    # 100 epochs over 10^5 records: batch_size 1 would be 10^7 steps, over MAX_TOTAL_STEPS,
    # so the smallest candidate batch is 10 (10^6 steps).
    plan = TrainingPlan(
        dataset_size=100_000, batch_size=1000, noise_multiplier=0.3, epochs=100, delta=1e-6
    )
    with pytest.raises(InfeasibleTargetError, match=r"even batch_size=10 costs"):
        solve_batch_size(plan, target_epsilon=0.01, method="rdp")


# --- postcondition -------------------------------------------------------------------


def test_postcondition_refuses_a_plan_over_budget():
    from dpplan.solve_search import checked as _checked

    over = epsilon(PLAN, method="rdp")
    with pytest.raises(AccountingError, match="postcondition"):
        _checked(PLAN, "rdp", over * 0.99)
    assert _checked(PLAN, "rdp", over) is PLAN


# --- PRV's unresolvable region must not break the solvers ----------------------------
#
# dpplan's PRV backend refuses plans whose grid would be too large (very large ε or many
# steps). A solver that merely *probes* such a point while searching must treat it as "over
# budget" instead of failing when the answer itself is computable.


def test_prv_solve_noise_multiplier_survives_unresolvable_probes():
    plan = TrainingPlan(
        dataset_size=10000, batch_size=100, noise_multiplier=1.0, epochs=3, delta=1e-5
    )
    # Feasible, and PRV answers near the solution (σ ≈ 0.478 gives ε ≈ 10.01).
    assert epsilon(plan.replace(noise_multiplier=0.49), method="prv") < 10.0
    solved = solve_noise_multiplier(plan, target_epsilon=10.0, method="prv")
    assert epsilon(solved, method="prv") <= 10.0


def test_prv_solve_epochs_survives_unresolvable_probes():
    plan = TrainingPlan(
        dataset_size=1000, batch_size=100, noise_multiplier=0.8, epochs=1, delta=1e-5
    )
    solved = solve_epochs(plan, target_epsilon=14.0, method="prv")
    assert solved.epochs == 16
    assert epsilon(solved, method="prv") <= 14.0 < epsilon(solved.replace(epochs=17), method="prv")


def test_prv_sigma_solve_survives_a_bracket_whose_low_end_cannot_be_computed():
    # Large targets put the low end of the bracket where PRV's grid is too large; the solver
    # must narrow the bracket instead of failing, and never exceed the target.
    plan = TrainingPlan(
        dataset_size=60000, batch_size=256, noise_multiplier=1.0, epochs=20, delta=1e-5
    )
    solved = solve_noise_multiplier(plan, target_epsilon=30.0, method="prv")
    assert epsilon(solved, method="prv") <= 30.0


# --- a refusal is not an answer (issue 9) ---------------------------------------------
#
# PRV refuses both where ε is huge (its grid would be too large) and, for small δ, where σ
# is large (round-off would dominate). Neither refusal says "this σ does not fit".


@pytest.mark.parametrize(
    ("plan", "target"),
    [
        pytest.param(
            TrainingPlan(
                dataset_size=100_000, batch_size=100, noise_multiplier=1.0, epochs=30, delta=1e-7
            ),
            1.70929,
            id="tf_privacy-compute_noise-N1e5-B100-30epochs-delta1e-7",
        ),
        pytest.param(
            TrainingPlan(
                dataset_size=60_000, batch_size=256, noise_multiplier=1.0, epochs=10, delta=1e-8
            ),
            3.0,
            id="N60000-B256-10epochs-delta1e-8",
        ),
    ],
)
def test_prv_sigma_solve_is_feasible_where_prv_refuses_large_sigma(plan, target):
    backend = get_accountant("prv")
    try:  # PRV may refuse at the largest σ (its proven round-off bound exceeds δ there)
        backend.epsilon(plan.replace(noise_multiplier=NOISE_MULTIPLIER_MAX))
    except AccountingError as exc:
        assert "round-off" in str(exc)
    assert backend.epsilon(plan) < target  # σ = 1 already fits: the target is feasible
    solved = solve_noise_multiplier(plan, target_epsilon=target, method="prv")
    assert solved.noise_multiplier < 1.0
    assert epsilon(solved, method="prv") <= target
    # Within the solver's tolerance of the smallest σ that fits.
    assert (
        epsilon(solved.replace(noise_multiplier=solved.noise_multiplier * 0.998), method="prv")
        > target
    )


@pytest.fixture
def rdp_refusing(monkeypatch):
    """Make the RDP backend refuse (AccountingError) for σ in a given set of ranges."""
    backend = get_accountant("rdp")
    original = type(backend)._compute
    ranges: list[tuple[float, float]] = []

    def compute(self, *, sample_rate, noise_multiplier, delta, steps):
        for low, high in ranges:
            if low <= noise_multiplier < high:
                raise AccountingError(f"rdp accountant refuses noise_multiplier={noise_multiplier}")
        return original(
            self,
            sample_rate=sample_rate,
            noise_multiplier=noise_multiplier,
            delta=delta,
            steps=steps,
        )

    backend.clear_cache()
    monkeypatch.setattr(type(backend), "_compute", compute)
    yield ranges
    backend.clear_cache()


MNIST = TrainingPlan(
    dataset_size=60000, batch_size=256, noise_multiplier=1.0, epochs=10, delta=1e-5
)


def test_sigma_solve_looks_below_a_guess_refused_like_prv_round_off(rdp_refusing):
    expected = solve_noise_multiplier(MNIST, target_epsilon=2.0, method="rdp").noise_multiplier
    assert 0.8 < expected < 0.9
    rdp_refusing.append((0.9, float("inf")))  # the start (σ = 1) and everything above refused
    solved = solve_noise_multiplier(MNIST, target_epsilon=2.0, method="rdp")
    assert solved.noise_multiplier == pytest.approx(expected, rel=2e-3)
    assert epsilon(solved, method="rdp") <= 2.0


def test_sigma_solve_treats_refusals_inside_the_bracket_as_over_budget(rdp_refusing):
    rdp_refusing.append((0.3, 0.86))  # refused from below up to just past the answer
    solved = solve_noise_multiplier(MNIST, target_epsilon=2.0, method="rdp")
    assert solved.noise_multiplier >= 0.86  # never a refused value
    assert epsilon(solved, method="rdp") <= 2.0


def test_sigma_solve_with_nothing_computable_names_the_refusal(rdp_refusing):
    rdp_refusing.append((0.0, float("inf")))
    with pytest.raises(InfeasibleTargetError) as info:
        solve_noise_multiplier(MNIST, target_epsilon=2.0, method="rdp")
    message = str(info.value)
    assert "rdp could not compute ε at noise_multiplier=" in message
    assert "method='rdp' or 'pld'" in message


@pytest.fixture
def small_prv_grid(monkeypatch):
    """Lower PRV's grid limit, so refusals for 'too many steps' come at small, fast plans."""
    from dpplan.accounting import prv

    backend = get_accountant("prv")
    backend.clear_cache()
    monkeypatch.setattr(prv, "MAX_GRID_POINTS", 1 << 16)
    yield
    backend.clear_cache()


BATCH_PLAN = TrainingPlan(
    dataset_size=2000, batch_size=100, noise_multiplier=2.0, epochs=5, delta=1e-5
)


@pytest.mark.usefixtures("small_prv_grid")
def test_prv_batch_solve_unmeetable_with_refused_small_batches_is_infeasible():
    # Issue 9: the smallest batches need more steps than PRV's grid allows. That refusal used
    # to escape as AccountingError (CLI exit 1) naming internal probe values.
    with pytest.raises(AccountingError, match="grid"):
        epsilon(BATCH_PLAN.replace(batch_size=1), method="prv")
    with pytest.raises(InfeasibleTargetError) as info:
        solve_batch_size(BATCH_PLAN, target_epsilon=0.05, method="prv")
    message = str(info.value)
    assert re.search(r"even batch_size=\d+, the smallest prv can compute, costs ε=", message)
    assert "prv could not compute ε at batch_size=1" in message
    assert "its grid would be too large" in message
    assert "Raise noise_multiplier or target_epsilon, or lower epochs" in message
    assert "sample_rate" not in message and "steps" not in message


@pytest.mark.usefixtures("small_prv_grid")
def test_prv_batch_solve_feasible_with_refused_small_batches():
    solved = solve_batch_size(BATCH_PLAN, target_epsilon=3.0, method="prv")
    assert epsilon(solved, method="prv") <= 3.0
    bigger = solved.replace(batch_size=solved.batch_size + 1)
    assert epsilon(bigger, method="prv") > 3.0


def test_solve_epochs_with_nothing_computable_is_an_accounting_error(rdp_refusing):
    rdp_refusing.append((0.0, float("inf")))
    with pytest.raises(AccountingError, match=r"rdp cannot compute ε for any candidate") as info:
        solve_epochs(MNIST, target_epsilon=2.0, method="rdp")
    assert "epochs=1" in str(info.value)


@pytest.mark.parametrize("target", [20.0, 40.0])
def test_prv_sigma_is_not_above_opacus_at_large_targets(target):
    # The float64 search accepted estimates within 3e-4 (relative) of its aim: 0.006 in ε at
    # target 20, more than Opacus' solver leaves; σ came out above Opacus'. The band is now
    # also capped at 1e-4 in ε.
    pytest.importorskip("opacus")
    from opacus.accountants.utils import get_noise_multiplier

    plan = TrainingPlan(
        dataset_size=100, batch_size=100, noise_multiplier=1.0, epochs=100, delta=1e-5
    )
    solved = solve_noise_multiplier(plan, target_epsilon=target, method="prv")
    opacus = get_noise_multiplier(
        target_epsilon=target, target_delta=1e-5, sample_rate=1.0, steps=100, accountant="prv"
    )
    assert epsilon(solved, method="prv") <= target
    assert solved.noise_multiplier <= opacus


# --- method="best" (the default): the most favourable plan, and its certifying method --


# The issue's example: N = 50,000, B = 256, 30 epochs, δ = 1e-5.
ISSUE_PLAN = TrainingPlan(
    dataset_size=50000, batch_size=256, noise_multiplier=1.0, epochs=30, delta=1e-5
)


@pytest.mark.parametrize("target", [0.01, 0.1])
def test_default_sigma_is_the_smallest_any_method_certifies(target):
    # The default used to be PRV alone: σ = 990.3 at target 0.01 (PRV's fixed error margin
    # 0.01 is the whole target) and 13.34 at 0.1, where RDP and PLD certify 110.2 and 12.17.
    solution = solve_plan(ISSUE_PLAN, field="noise_multiplier", target_epsilon=target)
    per_method = {
        method: solve_noise_multiplier(ISSUE_PLAN, target_epsilon=target, method=method)
        for method in ("rdp", "pld", "prv")
    }
    smallest = min(p.noise_multiplier for p in per_method.values())
    assert solution.requested_method == "best"
    assert solution.plan.noise_multiplier <= smallest * (1 + 1e-9)
    assert per_method["prv"].noise_multiplier > solution.plan.noise_multiplier * 1.05
    assert solution.method in ("rdp", "pld")
    assert solution.epsilon == epsilon(solution.plan, method=solution.method) <= target
    assert library_epsilon(solution.method, solution.plan) <= target * (1 + 1e-9)
    # The headline rule (smallest bound of every method) meets the target too.
    assert compare(solution.plan).headline_epsilon <= target
    # The plain solver returns the same plan by default.
    assert solve_noise_multiplier(ISSUE_PLAN, target_epsilon=target) == solution.plan


def test_best_solve_of_one_method_matches_that_methods_solve():
    # Named method: that method alone, and the solution names it.
    solution = solve_plan(MNIST, field="epochs", target_epsilon=2.0, method="rdp")
    assert solution.plan == solve_epochs(MNIST, target_epsilon=2.0, method="rdp")
    assert (solution.method, solution.requested_method) == ("rdp", "rdp")
    assert solution.candidates == {} and solution.warnings == ()


@pytest.mark.parametrize("field", ["epochs", "batch_size"])
def test_best_discrete_solve_is_the_largest_any_method_certifies(field):
    plan = TrainingPlan(
        dataset_size=2000, batch_size=100, noise_multiplier=2.0, epochs=5, delta=1e-5
    )
    solution = solve_plan(plan, field=field, target_epsilon=3.0)
    value = getattr(solution.plan, field)
    for method in BEST_ORDER:
        alone = getattr(
            solve_plan(plan, field=field, target_epsilon=3.0, method=method).plan, field
        )
        assert alone <= value
        # No method certifies one more epoch (or one more record per batch).
        assert epsilon(solution.plan.replace(**{field: value + 1}), method=method) > 3.0
    assert solution.candidates[solution.method] == value
    assert library_epsilon(solution.method, solution.plan) <= 3.0 * (1 + 1e-9)
    assert solution.bounded_by == "target" and solution.limit is None


def test_forced_prv_at_a_small_target_warns_about_its_error_margin():
    solution = solve_plan(ISSUE_PLAN, field="noise_multiplier", target_epsilon=0.05, method="prv")
    assert solution.method == "prv" and solution.epsilon <= 0.05
    (warning,) = solution.warnings
    assert "eps_error=0.01" in warning and "20% of target_epsilon=0.05" in warning
    assert (
        solve_plan(MNIST, field="noise_multiplier", target_epsilon=1.0, method="prv").warnings == ()
    )


def test_best_solve_with_no_method_meeting_the_target_is_infeasible_naming_each():
    with pytest.raises(InfeasibleTargetError) as info:
        solve_plan(MNIST, field="epochs", target_epsilon=0.01)
    message = str(info.value)
    assert message.startswith("no accounting method meets the target")
    for method in BEST_ORDER:
        assert f"{method}: infeasible: " in message


def test_unknown_field_is_a_plan_error():
    with pytest.raises(PlanError, match=r"field='sigma' is invalid"):
        solve_plan(MNIST, field="sigma", target_epsilon=1.0)


# --- what bounded the answer: the target, a cap, or the method's limits ---------------


def test_epochs_capped_by_the_epoch_limit_say_so():
    # Issue 17 item 11: the cap returned as if the target had bounded it.
    plan = TrainingPlan(
        dataset_size=1000, batch_size=1000, noise_multiplier=20.0, epochs=1, delta=1e-5
    )
    solution = solve_plan(plan, field="epochs", target_epsilon=50.0)
    assert solution.plan.epochs == MAX_EPOCHS
    assert solution.epsilon < 50.0
    assert (solution.bounded_by, solution.limit) == ("cap", MAX_EPOCHS)
    assert solution.limit_name == "MAX_EPOCHS=10,000"
    assert "bounded by the cap epochs=10000 (MAX_EPOCHS=10,000), not by the target" in (
        solution.bound_note()
    )


def test_epochs_capped_by_the_step_limit_say_so():
    solution = solve_plan(MNIST, field="epochs", target_epsilon=100.0, method="rdp")
    cap = MAX_TOTAL_STEPS // MNIST.steps_per_epoch
    assert (solution.plan.epochs, solution.bounded_by, solution.limit) == (cap, "cap", cap)
    assert solution.limit_name.startswith("MAX_TOTAL_STEPS=1,000,000 steps")


def test_batch_size_capped_by_the_dataset_size_says_so():
    solution = solve_plan(MNIST, field="batch_size", target_epsilon=50.0, method="rdp")
    assert solution.plan.batch_size == MNIST.dataset_size
    assert (solution.bounded_by, solution.limit) == ("cap", MNIST.dataset_size)
    assert solution.limit_name == "dataset_size=60,000"


def test_sigma_at_the_search_floor_says_so():
    # One full-batch step at δ = 1e-3: σ = 0.1 costs ε ≈ 85 (RDP).
    plan = TrainingPlan(dataset_size=10, batch_size=10, noise_multiplier=1.0, epochs=1, delta=1e-3)
    solution = solve_plan(plan, field="noise_multiplier", target_epsilon=100.0, method="rdp")
    assert solution.plan.noise_multiplier == NOISE_MULTIPLIER_SEARCH_MIN
    assert (solution.bounded_by, solution.limit) == ("cap", NOISE_MULTIPLIER_SEARCH_MIN)
    best = solve_plan(plan, field="noise_multiplier", target_epsilon=100.0)
    assert (best.method, best.plan) == ("rdp", solution.plan)
    assert best.notes == {
        "pld": "not tried: rdp reached the cap",
        "prv": "not tried: rdp reached the cap",
    }


def test_answers_bounded_by_the_target_say_so():
    for field in ("noise_multiplier", "epochs", "batch_size"):
        solution = solve_plan(MNIST, field=field, target_epsilon=2.0, method="rdp")
        assert (solution.bounded_by, solution.limit, solution.limit_name) == ("target", None, None)
        assert "bounded by the target" in solution.bound_note()


@pytest.mark.usefixtures("small_prv_grid")
def test_epochs_bounded_by_the_methods_limits_say_so():
    solution = solve_plan(BATCH_PLAN, field="epochs", target_epsilon=10.0, method="prv")
    assert solution.bounded_by == "method_limit"
    with pytest.raises(AccountingError, match="grid"):
        epsilon(solution.plan.replace(epochs=solution.plan.epochs + 1), method="prv")
    assert "prv's limits" in solution.bound_note()
    # The default looks past PRV's limit: the other methods certify far more epochs.
    best = solve_plan(BATCH_PLAN, field="epochs", target_epsilon=10.0)
    assert best.plan.epochs > solution.plan.epochs and best.bounded_by == "target"


def test_solution_to_dict_is_json_ready():
    import json

    solution = solve_plan(MNIST, field="epochs", target_epsilon=2.0)
    data = json.loads(json.dumps(solution.to_dict()))
    assert data["solved"] == "epochs" and data["value"] == solution.plan.epochs
    assert data["method"] == solution.method and data["requested_method"] == "best"
    assert data["bounded_by"] == "target"
    assert TrainingPlan.from_dict(data["plan"]) == solution.plan


@pytest.fixture
def pld_failing(monkeypatch):
    """Make the PLD backend fail (AccountingError) for every plan."""
    backend = get_accountant("pld")

    def compute(self, **_):
        raise AccountingError("pld accountant failed (test)")

    backend.clear_cache()
    monkeypatch.setattr(type(backend), "_compute", compute)
    yield
    backend.clear_cache()


@pytest.mark.usefixtures("pld_failing")
def test_best_solve_skips_a_failing_method_and_can_pick_prv():
    solution = solve_plan(SOLVE_SMALL, field="noise_multiplier", target_epsilon=1.5)
    assert solution.method == "prv"  # PRV certifies less noise than RDP here
    assert solution.candidates["pld"] is None
    # Asked at the next better σ than RDP's, PLD could not compute ε: not solved.
    assert solution.notes["pld"].startswith("not solved: it cannot compute ε at noise_multiplier=")
    prv_alone = solve_noise_multiplier(SOLVE_SMALL, target_epsilon=1.5, method="prv")
    assert solution.plan == prv_alone
    assert solution.candidates["rdp"] > prv_alone.noise_multiplier
    assert library_epsilon("prv", solution.plan) <= 1.5


# q = 0.02 over 2 epochs (100 steps): every method answers in well under a second.
SOLVE_SMALL = TrainingPlan(
    dataset_size=1000, batch_size=20, noise_multiplier=1.0, epochs=2, delta=1e-5
)


def test_best_solve_goes_on_when_the_first_method_cannot_answer(rdp_refusing):
    rdp_refusing.append((0.0, float("inf")))
    solution = solve_plan(SOLVE_SMALL, field="noise_multiplier", target_epsilon=1.5)
    assert solution.method == "pld" and solution.candidates["rdp"] is None
    assert solution.notes["rdp"].startswith("infeasible: no noise_multiplier <= 1000")
    assert solution.epsilon <= 1.5


# --- solve_fields: the other fields, no value for the solved one (issue 19) ---

_OTHER_FIELDS = {
    "noise_multiplier": {"dataset_size": 60000, "batch_size": 256, "epochs": 5, "delta": 1e-5},
    "epochs": {"dataset_size": 60000, "batch_size": 256, "noise_multiplier": 1.0, "delta": 1e-5},
    "batch_size": {"dataset_size": 60000, "noise_multiplier": 1.0, "epochs": 5, "delta": 1e-5},
}


@pytest.mark.parametrize("field", sorted(_OTHER_FIELDS))
def test_solve_fields_finds_what_solve_plan_finds_from_any_value_of_the_field(field):
    from dpplan.solve import solve_fields

    fields = _OTHER_FIELDS[field]
    solution = solve_fields(fields, field=field, target_epsilon=2.0, method="rdp")
    for value in {"noise_multiplier": (0.5, 7.0), "epochs": (1, 40), "batch_size": (1, 9000)}[
        field
    ]:
        plan = TrainingPlan(**fields, **{field: value})
        assert solve_plan(plan, field=field, target_epsilon=2.0, method="rdp") == solution
    assert {k: getattr(solution.plan, k) for k in fields} == fields
    assert epsilon(solution.plan, method="rdp") <= 2.0


def test_solve_fields_refuses_the_solved_field_and_names_a_missing_one():
    from dpplan.solve import solve_fields

    fields = _OTHER_FIELDS["epochs"]
    with pytest.raises(PlanError, match="epochs=3 is invalid: must be absent when solving"):
        solve_fields({**fields, "epochs": 3}, field="epochs", target_epsilon=2.0)
    with pytest.raises(PlanError) as caught:
        solve_fields({**fields, "delta": None}, field="epochs", target_epsilon=2.0)
    assert caught.value.field == "delta"
    missing = {k: v for k, v in fields.items() if k != "batch_size"}
    with pytest.raises(PlanError) as caught:
        solve_fields(missing, field="epochs", target_epsilon=2.0, method="rdp")
    assert caught.value.field == "batch_size"
