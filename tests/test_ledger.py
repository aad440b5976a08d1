"""The ledger (issue 20 §4) against dpplan's plan accounting and dp-accounting."""

from __future__ import annotations

import json

import dp_accounting
import pytest

import dpplan
from dpplan import BudgetExhausted, Ledger, PhasedPlan, TrainingPlan

PLAN = TrainingPlan(dataset_size=10_000, batch_size=100, noise_multiplier=1.0, epochs=2, delta=1e-5)


def _fed(plan: TrainingPlan, **kwargs) -> Ledger:
    ledger = Ledger(dataset_size=plan.dataset_size, delta=plan.delta, **kwargs)
    ledger.record(
        noise_multiplier=plan.noise_multiplier, batch_size=plan.batch_size, steps=plan.total_steps
    )
    return ledger


def test_a_ledger_fed_a_plans_steps_gives_the_plans_epsilon_exactly():
    ledger = Ledger(dataset_size=PLAN.dataset_size, delta=PLAN.delta)
    headlines = []
    for _ in range(PLAN.total_steps):  # one step at a time, reading ε after each
        ledger.record(noise_multiplier=PLAN.noise_multiplier, batch_size=PLAN.batch_size)
        headlines.append(ledger.epsilon())
    assert len(ledger.records) == 1 and ledger.records[0].steps == PLAN.total_steps
    for method in ("rdp", "prv", "pld"):
        assert ledger.epsilon(method) == dpplan.epsilon(PLAN, method=method)
    exact = dpplan.compare(PLAN)
    assert _fed(PLAN).headline() == (exact.headline_method, exact.headline_epsilon)
    # Read step by step, the headline is a valid bound: never below PRV's lower bound on the
    # true ε (nor, beyond discretisation jitter, below the exact bounds' minimum), and at most
    # the exact bound for twice as many steps.
    prv = dpplan.get_accountant("prv")
    for steps in (1, 7, 50, 123, 200):
        at = [dpplan.epsilon_at(PLAN, steps=steps, method=m) for m in ("rdp", "prv", "pld")]
        lower = prv.compute(sample_rate=0.01, noise_multiplier=1.0, delta=1e-5, steps=(steps,))
        assert lower.lower[0] <= headlines[steps - 1]
        assert min(at) * (1 - 1e-6) <= headlines[steps - 1]
        twice = dpplan.epsilon_at(PLAN, steps=min(200, 2 * steps), method="prv")
        assert headlines[steps - 1] <= twice


def test_rdp_matches_dp_accountings_rdp_accountant_across_kinds():
    ledger = Ledger(dataset_size=10_000, delta=1e-5)
    ledger.record(noise_multiplier=1.0, batch_size=100, steps=30)
    ledger.record(noise_multiplier=2.0, sample_rate=0.05, steps=20)
    ledger.record(noise_multiplier=1.0, batch_size=100, steps=10)
    assert [r.steps for r in ledger.records] == [30, 20, 10]  # only consecutive records merge
    library = dp_accounting.rdp.RdpAccountant(orders=list(dpplan.get_accountant("rdp").orders))
    for q, sigma, n in ((0.01, 1.0, 30), (0.05, 2.0, 20), (0.01, 1.0, 10)):
        library.compose(
            dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), n
        )
    assert ledger.epsilon("rdp") == pytest.approx(library.get_epsilon(1e-5), rel=1e-12)
    phased = PhasedPlan(
        phases=[PLAN.replace(epochs=1), PLAN.replace(batch_size=500, noise_multiplier=2.0)],
        phase_steps=[40, 20],
    )
    assert ledger.epsilon("pld") == dpplan.epsilon(phased, method="pld")


def test_remaining_steps_is_exact_and_the_guard_refuses_without_changing_anything():
    ledger = Ledger(dataset_size=10_000, delta=1e-5, budget=1.0)
    ledger.record(noise_multiplier=1.0, batch_size=100, steps=100)
    fit = ledger.remaining_steps(noise_multiplier=1.0, batch_size=100)
    assert fit > 0

    # Exactly: `fit` more steps stay within the budget (every method's own exact bound,
    # smallest taken), one more does not.
    def exact(steps):
        plan = PLAN.replace(epochs=10)
        return min(dpplan.epsilon_at(plan, steps=steps, method=m) for m in ("rdp", "prv", "pld"))

    assert exact(100 + fit) <= 1.0 < exact(100 + fit + 1)
    before = ledger.to_dict()
    epsilon_before = ledger.epsilon()
    with pytest.raises(BudgetExhausted) as refused:
        ledger.record(noise_multiplier=1.0, batch_size=100, steps=fit + 1)
    error = refused.value
    assert error.budget == 1.0 and error.remaining_steps == fit
    assert error.epsilon_before == epsilon_before and error.epsilon_after > 1.0
    assert f"{fit} step(s) of this kind still fit" in str(error)
    assert ledger.to_dict() == before and ledger.epsilon() == epsilon_before
    # Recording them one at a time: all `fit` are accepted, the next is refused.
    for _ in range(fit):
        ledger.record(noise_multiplier=1.0, batch_size=100)
        assert ledger.epsilon() <= 1.0
    assert ledger.remaining_steps(noise_multiplier=1.0, batch_size=100) == 0
    with pytest.raises(BudgetExhausted):
        ledger.record(noise_multiplier=1.0, batch_size=100)
    assert ledger.total_steps == 100 + fit


def test_remaining_steps_of_another_kind_is_exact():
    ledger = Ledger(dataset_size=10_000, delta=1e-5, budget=2.0, methods=("rdp",))
    ledger.record(noise_multiplier=1.0, batch_size=100, steps=100)
    fit = ledger.remaining_steps(noise_multiplier=3.0, batch_size=300)
    library = dp_accounting.rdp.RdpAccountant(orders=list(dpplan.get_accountant("rdp").orders))
    library.compose(
        dp_accounting.PoissonSampledDpEvent(0.01, dp_accounting.GaussianDpEvent(1.0)), 100
    )
    step = dp_accounting.PoissonSampledDpEvent(0.03, dp_accounting.GaussianDpEvent(3.0))
    assert library.compose(step, fit).get_epsilon(1e-5) <= 2.0
    assert library.compose(step, 1).get_epsilon(1e-5) > 2.0
    ledger.record(noise_multiplier=3.0, batch_size=300, steps=fit)
    with pytest.raises(BudgetExhausted, match="0 step"):
        ledger.record(noise_multiplier=3.0, batch_size=300)


def test_dict_round_trip_is_exact_and_json_safe():
    ledger = Ledger(dataset_size=10_000, delta=1e-5, budget=3.0, methods=("rdp",))
    ledger.record(noise_multiplier=1.1, batch_size=100, steps=7)
    ledger.record(noise_multiplier=0.9, sample_rate=0.0123456789, steps=3)
    data = json.loads(json.dumps(ledger.to_dict()))
    restored = Ledger.from_dict(data)
    assert restored.to_dict() == ledger.to_dict()
    assert restored.records == ledger.records
    assert restored.epsilon() == ledger.epsilon()


def test_bad_input_is_refused_with_the_field():
    ledger = Ledger(dataset_size=100, delta=1e-3)
    with pytest.raises(dpplan.PlanError, match="sampling='bernoulli'"):
        ledger.record(noise_multiplier=1.0, batch_size=10, sampling="bernoulli")
    with pytest.raises(dpplan.PlanError, match="max_batch_size=None"):
        ledger.record(noise_multiplier=1.0, batch_size=10, sampling="truncated_poisson")
    with pytest.raises(dpplan.PlanError, match="max_batch_size=101"):
        ledger.record(
            noise_multiplier=1.0, batch_size=10, sampling="truncated_poisson", max_batch_size=101
        )
    with pytest.raises(dpplan.PlanError, match="max_batch_size=20 is invalid: must be None"):
        ledger.record(noise_multiplier=1.0, batch_size=10, max_batch_size=20)
    with pytest.raises(dpplan.PlanError, match="batch_size=10 is invalid: must be given, or"):
        ledger.record(noise_multiplier=1.0, batch_size=10, sample_rate=0.1)
    with pytest.raises(dpplan.PlanError, match="noise_multiplier=nan"):
        ledger.record(noise_multiplier=float("nan"), batch_size=10)
    with pytest.raises(dpplan.PlanError, match="batch_size=101"):
        ledger.record(noise_multiplier=1.0, batch_size=101)
    with pytest.raises(dpplan.PlanError, match="budget=None"):
        ledger.remaining_steps(noise_multiplier=1.0, batch_size=10)
    with pytest.raises(dpplan.PlanError, match="budget=-1"):
        Ledger(dataset_size=100, delta=1e-3, budget=-1)
    assert ledger.total_steps == 0 and ledger.epsilon() == 0.0


def test_shuffled_batches_are_accounted_without_amplification():
    # 10,000 records, batch 100: 100 steps per epoch; 250 steps start 3 epochs.
    ledger = Ledger(dataset_size=10_000, delta=1e-5)
    ledger.record(noise_multiplier=2.0, batch_size=100, steps=250, sampling="shuffle")
    # Each example is in one batch per started epoch: three full-batch Gaussian steps at σ,
    # i.e. one Gaussian with σ/√3, whose exact ε is dp-accounting's get_epsilon_gaussian.
    exact = dp_accounting.get_epsilon_gaussian(2.0 / 3**0.5, 1e-5)
    assert exact <= ledger.epsilon("pld") <= exact * (1 + 1e-3)
    library = dp_accounting.rdp.RdpAccountant(orders=list(dpplan.get_accountant("rdp").orders))
    library.compose(dp_accounting.GaussianDpEvent(2.0), 3)
    assert ledger.epsilon("rdp") == pytest.approx(library.get_epsilon(1e-5), rel=1e-12)
    # The "as if Poisson" number is much smaller, and is not what epsilon() reports.
    assert ledger.as_if_poisson_epsilon("pld") < ledger.epsilon() / 2
    poisson = Ledger(dataset_size=10_000, delta=1e-5)
    poisson.record(noise_multiplier=2.0, batch_size=100, steps=250)
    assert ledger.as_if_poisson_epsilon("pld") == poisson.epsilon("pld")
    with pytest.raises(dpplan.PlanError, match="batch_size=None"):
        ledger.record(noise_multiplier=2.0, sample_rate=0.01, sampling="shuffle")


def test_the_guard_counts_started_epochs_of_shuffled_batches():
    ledger = Ledger(dataset_size=1000, delta=1e-5, budget=3.0, methods=("rdp",))
    ledger.record(noise_multiplier=2.0, batch_size=100, steps=5, sampling="shuffle")
    fit = ledger.remaining_steps(noise_multiplier=2.0, batch_size=100, sampling="shuffle")
    # The answer ends an epoch (10 steps each): the next step would start one more.
    assert (5 + fit) % 10 == 0
    epochs = (5 + fit) // 10
    library = dp_accounting.rdp.RdpAccountant(orders=list(dpplan.get_accountant("rdp").orders))
    assert library.compose(dp_accounting.GaussianDpEvent(2.0), epochs).get_epsilon(1e-5) <= 3.0
    assert library.compose(dp_accounting.GaussianDpEvent(2.0), 1).get_epsilon(1e-5) > 3.0
    ledger.record(noise_multiplier=2.0, batch_size=100, steps=fit, sampling="shuffle")
    with pytest.raises(BudgetExhausted):
        ledger.record(noise_multiplier=2.0, batch_size=100, sampling="shuffle")
    restored = Ledger.from_dict(json.loads(json.dumps(ledger.to_dict())))
    assert restored.records == ledger.records and restored.epsilon() == ledger.epsilon()


def _rdp_library(relation=dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE):
    orders = list(dpplan.get_accountant("rdp").orders)
    return dp_accounting.rdp.RdpAccountant(orders=orders, neighboring_relation=relation)


def test_fixed_size_is_dp_accountings_sampling_without_replacement_under_replace_one():
    ledger = Ledger(dataset_size=10_000, delta=1e-5)
    ledger.record(noise_multiplier=2.0, batch_size=100, steps=150, sampling="fixed_size")
    ledger.record(noise_multiplier=3.0, batch_size=400, steps=50, sampling="fixed_size")
    ledger.record(noise_multiplier=2.0, batch_size=100, steps=25, sampling="fixed_size")
    assert ledger.neighbouring_relation == "replace_one"
    assert ledger.to_dict()["neighbouring_relation"] == "replace_one"
    # The same composed event, in dp-accounting's RDP accountant with REPLACE_ONE. The
    # Gaussian's multiplier is σ/2: replacing one example moves the clipped sum by 2C.
    library = _rdp_library(dp_accounting.NeighboringRelation.REPLACE_ONE)
    library.compose(
        dp_accounting.ComposedDpEvent(
            [
                dp_accounting.SelfComposedDpEvent(
                    dp_accounting.SampledWithoutReplacementDpEvent(
                        10_000, batch, dp_accounting.GaussianDpEvent(sigma / 2)
                    ),
                    count,
                )
                for batch, sigma, count in ((100, 2.0, 175), (400, 3.0, 50))
            ]
        )
    )
    assert ledger.epsilon("rdp") == pytest.approx(library.get_epsilon(1e-5), rel=1e-12)
    assert ledger.headline() == ("rdp", ledger.epsilon("rdp"))
    assert ledger.guarantee() == {
        "epsilon": ledger.epsilon("rdp"),
        "delta": 1e-5,
        "method": "rdp",
        "neighbouring_relation": "replace_one",
        "sampling": ["fixed_size"],
    }
    # Halving σ matters: the literal σ would report a much smaller (unfounded) ε.
    literal = _rdp_library(dp_accounting.NeighboringRelation.REPLACE_ONE)
    literal.compose(
        dp_accounting.SampledWithoutReplacementDpEvent(
            10_000, 100, dp_accounting.GaussianDpEvent(2.0)
        ),
        175,
    )
    assert ledger.epsilon() > 2 * literal.get_epsilon(1e-5)
    # Full batch without replacement is the Gaussian mechanism with sensitivity 2C.
    full = Ledger(dataset_size=100, delta=1e-5)
    full.record(noise_multiplier=4.0, batch_size=100, steps=3, sampling="fixed_size")
    gaussian = _rdp_library().compose(dp_accounting.GaussianDpEvent(2.0), 3)
    assert full.epsilon() == pytest.approx(gaussian.get_epsilon(1e-5), rel=1e-12)


def test_methods_that_cannot_account_a_scheme_refuse_it_by_name():
    fixed = Ledger(dataset_size=10_000, delta=1e-5)
    fixed.record(noise_multiplier=2.0, batch_size=100, steps=10, sampling="fixed_size")
    for method, reason in (("pld", "PLDAccountant has no"), ("prv", "prv-accountant has no")):
        with pytest.raises(dpplan.PlanError, match=f"method='{method}'.*'fixed_size'") as error:
            fixed.epsilon(method)
        assert reason in str(error.value) and "replace_one" in str(error.value)
    truncated = Ledger(dataset_size=10_000, delta=1e-5)
    truncated.record(
        noise_multiplier=2.0,
        batch_size=100,
        steps=10,
        sampling="truncated_poisson",
        max_batch_size=150,
    )
    for method in ("rdp", "prv"):
        with pytest.raises(dpplan.PlanError, match=f"method='{method}'.*'truncated_poisson'"):
            truncated.epsilon(method)
    assert truncated.headline()[0] == "pld"
    # A ledger none of whose methods accounts the scheme refuses the record itself.
    rdp_only = Ledger(dataset_size=10_000, delta=1e-5, methods=("rdp",))
    with pytest.raises(dpplan.PlanError, match="accounted only by pld"):
        rdp_only.record(
            noise_multiplier=1.0, batch_size=100, sampling="truncated_poisson", max_batch_size=150
        )
    with pytest.raises(dpplan.PlanError, match="sampling='fixed_size'"):
        fixed.as_if_poisson_epsilon()
    assert rdp_only.total_steps == 0


def test_relations_do_not_mix_in_one_ledger():
    ledger = Ledger(dataset_size=10_000, delta=1e-5)
    ledger.record(noise_multiplier=1.0, batch_size=100, steps=10)
    before = ledger.to_dict()
    with pytest.raises(dpplan.PlanError, match="sampling='fixed_size'.*add_or_remove_one"):
        ledger.record(noise_multiplier=1.0, batch_size=100, sampling="fixed_size")
    assert ledger.to_dict() == before
    fixed = Ledger(dataset_size=10_000, delta=1e-5)
    fixed.record(noise_multiplier=1.0, batch_size=100, sampling="fixed_size")
    for sampling in ("poisson", "shuffle"):
        with pytest.raises(dpplan.PlanError, match=f"sampling='{sampling}'.*replace_one"):
            fixed.record(noise_multiplier=1.0, batch_size=100, sampling=sampling)
    data = fixed.to_dict()
    data["neighbouring_relation"] = "add_or_remove_one"
    with pytest.raises(dpplan.PlanError, match="neighbouring_relation='add_or_remove_one'"):
        Ledger.from_dict(data)


def test_truncated_poisson_is_dp_accountings_truncated_event_composed_with_poisson_in_pld():
    ledger = Ledger(dataset_size=10_000, delta=1e-5)
    ledger.record(noise_multiplier=1.0, batch_size=100, steps=100)
    ledger.record(
        noise_multiplier=1.0,
        sample_rate=0.01,
        steps=100,
        sampling="truncated_poisson",
        max_batch_size=130,
    )
    assert ledger.neighbouring_relation == "add_or_remove_one"
    assert ledger.schemes == ("poisson", "truncated_poisson")
    assert ledger.capable_methods() == ("pld",)
    library = dp_accounting.pld.PLDAccountant(
        neighboring_relation=dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE,
        value_discretization_interval=dpplan.ledger.TRUNCATED_PLD_INTERVAL,
    )
    library.compose(
        dp_accounting.ComposedDpEvent(
            [
                dp_accounting.SelfComposedDpEvent(
                    dp_accounting.PoissonSampledDpEvent(0.01, dp_accounting.GaussianDpEvent(1.0)),
                    100,
                ),
                dp_accounting.SelfComposedDpEvent(
                    dp_accounting.TruncatedSubsampledGaussianDpEvent(
                        dataset_size=10_000,
                        sampling_probability=0.01,
                        truncated_batch_size=130,
                        noise_multiplier=1.0,
                    ),
                    100,
                ),
            ]
        )
    )
    assert ledger.epsilon() == pytest.approx(library.get_epsilon(1e-5), rel=1e-12)
    # Truncating at 130 (3 standard deviations above the mean batch of 100) costs ε here;
    # truncating at the dataset size never cuts, and is Poisson sampling.
    poisson = _fed(PLAN)
    assert ledger.epsilon() > poisson.epsilon("pld")
    uncut = Ledger(dataset_size=10_000, delta=1e-5)
    uncut.record(
        noise_multiplier=1.0,
        batch_size=100,
        steps=200,
        sampling="truncated_poisson",
        max_batch_size=10_000,
    )
    assert uncut.epsilon() == pytest.approx(poisson.epsilon("pld"), rel=1e-3)
    assert poisson.epsilon("pld") <= uncut.epsilon()
    restored = Ledger.from_dict(json.loads(json.dumps(ledger.to_dict())))
    assert restored.records == ledger.records and restored.epsilon() == ledger.epsilon()


def test_the_guard_works_for_fixed_size_steps():
    ledger = Ledger(dataset_size=10_000, delta=1e-5, budget=4.0)
    fit = ledger.remaining_steps(noise_multiplier=4.0, batch_size=100, sampling="fixed_size")
    step = dpplan.ledger.fixed_size_event(10_000, 100, 4.0)
    library = _rdp_library(dp_accounting.NeighboringRelation.REPLACE_ONE)
    assert library.compose(step, fit).get_epsilon(1e-5) <= 4.0
    assert library.compose(step, 1).get_epsilon(1e-5) > 4.0
    ledger.record(noise_multiplier=4.0, batch_size=100, steps=fit, sampling="fixed_size")
    with pytest.raises(BudgetExhausted, match="0 step"):
        ledger.record(noise_multiplier=4.0, batch_size=100, sampling="fixed_size")
