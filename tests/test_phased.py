"""Phased plans (issue 20 §1-2) against dp-accounting and prv-accountant."""

from __future__ import annotations

import math

import dp_accounting
import prv_accountant
import pytest
from prv_accountant.privacy_random_variables import PoissonSubsampledGaussianMechanism

import dpplan
from dpplan import PhasedPlan, TrainingPlan

WARMUP = TrainingPlan(
    dataset_size=10_000, batch_size=100, noise_multiplier=1.0, epochs=2, delta=1e-5
)
MAIN = WARMUP.replace(batch_size=200, noise_multiplier=1.5, epochs=3)
PHASED = PhasedPlan(phases=[WARMUP, MAIN])  # 200 steps at q=0.01, σ=1; 150 at q=0.02, σ=1.5


def _library_event(plan: PhasedPlan) -> dp_accounting.DpEvent:
    return dp_accounting.ComposedDpEvent(
        [
            dp_accounting.SelfComposedDpEvent(
                dp_accounting.PoissonSampledDpEvent(
                    p.sample_rate, dp_accounting.GaussianDpEvent(p.noise_multiplier)
                ),
                steps,
            )
            for p, steps in zip(plan.phases, plan.steps_per_phase)
        ]
    )


@pytest.mark.parametrize("field", ["dataset_size", "delta"])
def test_phases_must_share_dataset_size_and_delta(field):
    other = MAIN.replace(**{field: getattr(MAIN, field) * 2})
    with pytest.raises(dpplan.PlanError, match=rf"^{field}=.*same in every phase"):
        PhasedPlan(phases=[WARMUP, other])


def test_bad_phase_steps_are_refused():
    with pytest.raises(dpplan.PlanError, match="phase_steps=201"):
        PhasedPlan(phases=[WARMUP], phase_steps=[201])
    with pytest.raises(dpplan.PlanError, match="phase_steps"):
        PhasedPlan(phases=[WARMUP, MAIN], phase_steps=[None])
    with pytest.raises(dpplan.PlanError, match=r"phases\[1\]"):
        PhasedPlan(phases=[WARMUP, {"batch_size": 3}])


def test_rdp_equals_dp_accountings_composed_rdp():
    orders = list(dpplan.get_accountant("rdp").orders)
    library = dp_accounting.rdp.RdpAccountant(orders=orders).compose(_library_event(PHASED))
    assert dpplan.epsilon(PHASED, method="rdp") == pytest.approx(
        library.get_epsilon(PHASED.delta), rel=1e-12
    )


def test_pld_and_prv_within_the_libraries_bounds():
    pld = dpplan.epsilon(PHASED, method="pld")
    library_pld = dp_accounting.pld.PLDAccountant().compose(_library_event(PHASED))
    assert pld == pytest.approx(library_pld.get_epsilon(PHASED.delta), rel=1e-9)
    counts = list(PHASED.steps_per_phase)
    library_prv = prv_accountant.PRVAccountant(
        prvs=[
            PoissonSubsampledGaussianMechanism(p.sample_rate, p.noise_multiplier)
            for p in PHASED.phases
        ],
        eps_error=0.01,
        delta_error=PHASED.delta / 1000,
        max_self_compositions=counts,
    )
    lower, _, upper = library_prv.compute_epsilon(PHASED.delta, counts)
    prv = dpplan.epsilon(PHASED, method="prv")
    assert prv == pytest.approx(upper, rel=1e-12)
    assert lower <= pld <= prv + 0.02  # the PLD bound sits inside PRV's bracket (± eps_error)
    assert pld < dpplan.epsilon(PHASED, method="rdp")


def test_composed_dp_event_through_dpplans_accountant_equals_the_phased_plan():
    for method in ("rdp", "pld"):
        accountant = dpplan.dp_accounting_accountant(method).compose(_library_event(PHASED))
        assert accountant.get_epsilon(PHASED.delta) == dpplan.epsilon(PHASED, method=method)


@pytest.mark.parametrize("method", ["rdp", "prv", "pld"])
def test_one_phase_is_the_plan_itself(method):
    one = PhasedPlan(phases=[WARMUP])
    assert dpplan.epsilon(one, method=method) == dpplan.epsilon(WARMUP, method=method)
    assert (
        dpplan.epsilon_curve(one, method=method).epsilons
        == dpplan.epsilon_curve(WARMUP, method=method).epsilons
    )


def test_curve_runs_on_across_phases():
    curve = dpplan.epsilon_curve(PHASED, method="rdp")
    assert curve.epochs == (1, 2, 3, 4, 5)
    assert curve.settings["steps"] == [100, 200, 250, 300, 350]
    assert curve.epsilon == dpplan.epsilon(PHASED, method="rdp")
    assert list(curve.epsilons) == sorted(curve.epsilons)
    # The first phase's points are that plan's own curve.
    assert curve.epsilons[:2] == dpplan.epsilon_curve(WARMUP, method="rdp").epsilons
    # Each later point is the epsilon after that many steps.
    assert curve.epsilons[2] == dpplan.epsilon_at(PHASED, steps=250, method="rdp")


def test_compare_headline_is_the_smallest_method():
    result = dpplan.compare(PHASED, methods=("rdp", "pld"))
    assert result.headline_method == "pld"
    assert result.headline_epsilon == dpplan.epsilon(PHASED, method="pld")
    assert result.to_dict()["plan"]["phases"][1]["noise_multiplier"] == 1.5


def test_a_phase_may_stop_mid_epoch_and_epsilon_is_readable_at_any_step():
    stopped = PhasedPlan(phases=[WARMUP, MAIN], phase_steps=[None, 37])
    assert stopped.total_steps == 237
    assert stopped.epoch_ends() == (100, 200, 237)
    orders = list(dpplan.get_accountant("rdp").orders)
    library = dp_accounting.rdp.RdpAccountant(orders=orders).compose(_library_event(stopped))
    assert dpplan.epsilon(stopped, method="rdp") == pytest.approx(
        library.get_epsilon(stopped.delta), rel=1e-12
    )
    assert dpplan.epsilon(stopped, method="rdp") == dpplan.epsilon_at(
        PHASED, steps=237, method="rdp"
    )
    # Early stopping of an ordinary plan after 123 steps: exactly the library's 123 steps.
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(0.01, dp_accounting.GaussianDpEvent(1.0)), 123
    )
    assert dpplan.epsilon_at(WARMUP, steps=123, method="pld") == pytest.approx(
        dp_accounting.pld.PLDAccountant().compose(event).get_epsilon(1e-5), rel=1e-6
    )
    assert dpplan.epsilon_at(WARMUP, steps=0, method="prv") == 0.0


def test_solve_noise_multiplier_scales_every_phase_by_one_factor():
    solved = dpplan.solve_noise_multiplier(PHASED, target_epsilon=1.0, method="rdp")
    assert isinstance(solved, PhasedPlan)
    factor = solved.phases[0].noise_multiplier / WARMUP.noise_multiplier
    assert solved.phases[1].noise_multiplier == pytest.approx(MAIN.noise_multiplier * factor)
    assert dpplan.epsilon(solved, method="rdp") <= 1.0
    less = solved.replace(
        phases=[p.replace(noise_multiplier=p.noise_multiplier * 0.997) for p in solved.phases]
    )
    assert dpplan.epsilon(less, method="rdp") > 1.0


def test_solve_epochs_solves_the_last_phase():
    solved = dpplan.solve_epochs(PHASED, target_epsilon=1.5, method="rdp")
    assert solved.phases[0] == WARMUP
    assert dpplan.epsilon(solved, method="rdp") <= 1.5
    more = solved.replace(
        phases=[WARMUP, solved.phases[1].replace(epochs=solved.phases[1].epochs + 1)]
    )
    assert dpplan.epsilon(more, method="rdp") > 1.5
    with pytest.raises(dpplan.InfeasibleTargetError, match="one epoch of the last phase"):
        dpplan.solve_epochs(PHASED, target_epsilon=0.1, method="rdp")


def test_dict_round_trip():
    stopped = PhasedPlan(phases=[WARMUP, MAIN], phase_steps=[None, 37])
    assert PhasedPlan.from_dict(stopped.to_dict()) == stopped
    assert PhasedPlan.from_dict(PHASED.to_dict()) == PHASED


def test_default_best_solve_keeps_the_most_favourable_method(monkeypatch):
    from dpplan import solve_phased

    factors = {"rdp": 1.0, "pld": 0.9, "prv": 0.95}
    solved = []

    def fake_solve(plan, *, target_epsilon, method):
        solved.append(method)
        return solve_phased._scaled(plan, factors[method])

    def fake_fits(plan, method, target):  # PLD certifies 0.998 (next better than RDP's 1.0)
        return method == "pld" or plan.phases[0].noise_multiplier >= 0.95

    monkeypatch.setattr(solve_phased, "_solve_noise", fake_solve)
    monkeypatch.setattr(solve_phased, "_fits", fake_fits)
    best = dpplan.solve_noise_multiplier(PHASED, target_epsilon=3.0)
    assert best.phases[0].noise_multiplier == pytest.approx(0.9 * WARMUP.noise_multiplier)
    assert solved == ["rdp", "pld"]  # PRV cannot certify below PLD's answer: not solved


def test_default_best_epochs_solve_keeps_the_most_epochs(monkeypatch):
    from dpplan import solve_phased

    epochs = {"rdp": 2, "pld": 4, "prv": 3}
    solved = []

    def fake_solve(plan, *, target_epsilon, method):
        solved.append(method)
        last = plan.phases[-1].replace(epochs=epochs[method])
        return plan.replace(phases=[*plan.phases[:-1], last])

    def fake_fits(plan, method, target):  # PRV certifies 4 epochs, not 5
        return epochs[method] >= plan.phases[-1].epochs

    monkeypatch.setattr(solve_phased, "_solve_epochs", fake_solve)
    monkeypatch.setattr(solve_phased, "_fits", fake_fits)
    longest = dpplan.solve_epochs(PHASED, target_epsilon=3.0)
    assert longest.phases[-1].epochs == 4
    assert solved == ["rdp", "pld"]  # PRV certifies no more than PLD's 4: not solved


def test_a_plan_file_naming_another_sampling_scheme_points_to_the_ledger():
    data = {
        "dataset_size": 100,
        "delta": 1e-3,
        "phases": [{"batch_size": 10, "noise_multiplier": 1.0, "epochs": 1}],
    }
    for where in ("top", "phase"):
        bad = {**data, "phases": [dict(data["phases"][0])]}
        (bad if where == "top" else bad["phases"][0])["sampling"] = "fixed_size"
        with pytest.raises(dpplan.PlanError, match="sampling='fixed_size'.*Ledger"):
            PhasedPlan.from_dict(bad)
    assert PhasedPlan.from_dict(data).phases[0].batch_size == 10


def test_no_amplification_epsilon_composes_every_started_epoch_of_each_phase():
    # 2 epochs at σ = 1, 3 at σ = 1.5: one Gaussian with 1/σ² = 2/1² + 3/1.5².
    sigma = 1 / math.sqrt(2 / 1.0**2 + 3 / 1.5**2)
    exact = dp_accounting.get_epsilon_gaussian(sigma, 1e-5)
    assert dpplan.accounting.no_amplification_epsilon(PHASED) == pytest.approx(exact, rel=1e-12)
    one = PhasedPlan(phases=[WARMUP])
    assert dpplan.accounting.no_amplification_epsilon(
        one
    ) == dpplan.accounting.no_amplification_epsilon(WARMUP)
