"""build_report: every number equals dpplan's API; tuning; membership bound; errors; schema."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import dp_accounting
import jsonschema
import pytest
from dp_accounting import dp_event
from report_helpers import PLAN, stored_run
from scipy.stats import norm

import dpplan
from dpplan.accounting import (
    get_accountant,
    membership_tpr_bounds,
    no_amplification_epsilon,
    repeat_and_select_epsilon,
)
from dpplan.accounting.events import dpsgd_event
from dpplan.errors import NotFoundError, PlanError
from dpplan.report import (
    FALSE_POSITIVE_RATES,
    build_report,
    build_run_report,
    load_run_report,
    plan_hash,
    report_from_dict,
    report_schema,
    save_run_report,
    to_html,
    to_json,
    to_markdown,
)
from dpplan.report import build as build_module

#: The plan of the README's Python example.
README_PLAN = dpplan.TrainingPlan(
    dataset_size=60000, batch_size=256, noise_multiplier=1.1, epochs=3, delta=1e-5
)


def _best(plan: dpplan.TrainingPlan) -> float:
    return min(dpplan.epsilon(plan, method=method) for method in dpplan.METHODS)


def test_numbers_equal_the_api(plan_report):
    report = plan_report
    expected = dpplan.compare(PLAN)
    assert report.kind == "plan" and report.run is None
    assert (report.epsilon, report.method) == (expected.headline_epsilon, expected.headline_method)
    assert dpplan.accounting.headline_of({c.method: c.epsilon for c in expected.curves}) == (
        report.method,
        report.epsilon,
    )
    a = report.accounting
    assert a.epochs == (1, 2, 3) and a.steps == tuple(PLAN.steps_after(e) for e in (1, 2, 3))
    assert [c.method for c in a.curves] == [c.method for c in expected.curves]
    for got, want in zip(a.curves, expected.curves, strict=True):
        assert got.epsilons == want.epsilons
        assert got.epsilons[-1] == dpplan.epsilon(PLAN, method=want.method)
        assert got.lower == want.lower and got.estimates == want.estimates
        assert got.library_version == want.versions[got.library]
    assert (
        a.no_amplification_epsilon
        == no_amplification_epsilon(PLAN)
        == (
            dp_accounting.get_epsilon_gaussian(
                PLAN.noise_multiplier / math.sqrt(PLAN.epochs), PLAN.delta
            )
        )
    )
    assert a.no_amplification_epsilon > report.epsilon  # amplification makes it small
    assert (report.epochs, report.total_steps) == (PLAN.epochs, PLAN.total_steps)
    assert report.plan.model_dump() == PLAN.to_dict()
    assert report.reproducibility.plan_hash == plan_hash(PLAN)


def test_json_numbers_equal_the_api(plan_report):
    data = json.loads(to_json(plan_report))
    expected = dpplan.compare(PLAN)
    assert data["accounting"]["epsilon"] == expected.headline_epsilon
    for got, want in zip(data["accounting"]["curves"], expected.curves, strict=True):
        assert got["epsilons"] == list(want.epsilons)


def test_membership_rows_come_from_the_privacy_profile(plan_report):
    m = plan_report.membership
    assert m.false_positive_rates == FALSE_POSITIVE_RATES == (1e-4, 1e-3, 1e-2, 0.1)
    bound = membership_tpr_bounds(PLAN, FALSE_POSITIVE_RATES, epsilon=plan_report.epsilon)
    assert (m.profile, m.single, m.profile_method) == (bound.profile, bound.single, "pld")
    eps, delta = plan_report.epsilon, PLAN.delta
    for fpr, profile, single in zip(m.false_positive_rates, m.profile, m.single, strict=True):
        assert single == pytest.approx(
            min(1.0, math.exp(eps) * fpr + delta, 1 - math.exp(-eps) * (1 - delta - fpr)), rel=1e-12
        )
        assert fpr <= profile <= single + 1e-12
    assert len(m.roc_false_positive_rates) == len(m.roc_true_positive_rates) > 100


def test_profile_bound_is_tighter_than_one_pair_for_the_readme_plan():
    epsilon = dpplan.compare(README_PLAN).headline_epsilon
    bound = membership_tpr_bounds(README_PLAN, [1e-3], epsilon=epsilon)
    assert bound.profile[0] < bound.single[0]


@pytest.mark.parametrize(("noise_multiplier", "steps"), [(2.0, 50), (1.0, 4), (0.8, 10)])
def test_profile_bound_is_above_the_exact_gaussian_trade_off(noise_multiplier, steps):
    """q = 1: T steps at σ are one Gaussian mechanism, μ = √T/σ, whose exact trade-off curve
    gives the largest TPR Φ(Φ⁻¹(FPR) + μ) (Dong, Roth & Su 2019). The bound must be above it
    (it is an upper bound), and close (the PLD is tight here)."""
    plan = dpplan.TrainingPlan(
        dataset_size=1000,
        batch_size=1000,
        epochs=steps,
        delta=1e-5,
        noise_multiplier=noise_multiplier,
    )
    mu = math.sqrt(steps) / noise_multiplier
    rates = (1e-5, 1e-4, 1e-3, 1e-2, 0.1, 0.5)
    bound = membership_tpr_bounds(plan, rates, epsilon=_best(plan))
    for fpr, tpr in zip(rates, bound.profile, strict=True):
        exact = norm.cdf(norm.ppf(fpr) + mu)
        assert exact <= tpr <= exact + 1e-3 + 0.01 * exact


def test_guarantee_and_tuning_facts(plan_report):
    t = plan_report.tuning
    assert (t.source, t.runs, t.epsilon_all) == ("none", 1, None)


def test_schema_is_generated_validates_and_round_trips(plan_report):
    schema = report_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    data = json.loads(to_json(plan_report))
    jsonschema.validate(data, schema)
    assert report_from_dict(data) == plan_report
    assert report_from_dict(plan_report.to_dict()) == plan_report
    assert schema["additionalProperties"] is False
    assert all(d.get("additionalProperties") is False for d in schema["$defs"].values())


def test_schema_rejects_bad_reports(plan_report):
    data = json.loads(to_json(plan_report))
    with pytest.raises(PlanError, match=r"older dpplan \(report schema 1\); rebuild it"):
        report_from_dict({**data, "schema_version": 1})
    with pytest.raises(PlanError, match=r"must be a dpplan report"):
        report_from_dict({**data, "schema": "other"})
    broken = json.loads(to_json(plan_report))
    broken["accounting"]["epsilon"] = "big"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, report_schema())
    with pytest.raises(PlanError, match=r"accounting/epsilon"):
        report_from_dict(broken)
    extra = json.loads(to_json(plan_report))
    extra["plan"]["surprise"] = 1
    with pytest.raises(PlanError, match=r"report="):
        report_from_dict(extra)
    with pytest.raises(PlanError, match=r"report=.*a mapping"):
        report_from_dict([])


def test_declared_tuning_runs_compose_and_repeat_and_select():
    report = build_report(PLAN, tuning_runs=4)
    tuning = report.tuning
    assert (tuning.source, tuning.runs, tuning.same_mechanism) == ("declared", 4, True)
    # Four runs of E epochs compose to one plan of 4E epochs.
    assert tuning.epsilon_all == _best(PLAN.replace(epochs=4 * PLAN.epochs))
    assert tuning.epsilon_all > report.epsilon
    # Repeat-and-select: dp-accounting's RDP with a Poisson(4) number of runs.
    accountant = dp_accounting.rdp.RdpAccountant(orders=list(get_accountant("rdp").orders))
    accountant.compose(
        dp_event.RepeatAndSelectDpEvent(event=dpsgd_event(PLAN), mean=4.0, shape=math.inf)
    )
    assert tuning.repeat_and_select_epsilon == accountant.get_epsilon(PLAN.delta)
    assert tuning.repeat_and_select_epsilon == repeat_and_select_epsilon(PLAN, mean_runs=4)
    assert report.reproducibility.commands["json"].count("--tuning-runs 4") == 1


def test_one_declared_run_is_covered():
    report = build_report(PLAN.replace(epochs=1), tuning_runs=1)
    assert report.tuning.source == "declared" and report.tuning.epsilon_all is None


def test_group_runs_from_the_store(store):
    plan = dpplan.TrainingPlan(
        dataset_size=1000, batch_size=50, noise_multiplier=1.2, epochs=2, delta=1e-4
    )
    ids = [stored_run(store, plan, group_id="g1") for _ in range(2)]
    ids.append(
        stored_run(
            store, plan, group_id="g1", epochs=1, status="stopped", stop_reason="stop requested"
        )
    )
    stored_run(store, plan, group_id="other")
    report = build_run_report(store, ids[0])
    tuning = report.tuning
    assert (tuning.runs, tuning.source, tuning.group_id) == (3, "group", "g1")
    assert tuning.run_ids == tuple(ids)
    # 2 + 2 + 1 completed epochs of the same mechanism.
    assert tuning.epsilon_all == _best(plan.replace(epochs=5))
    assert tuning.total_steps == plan.steps_after(5)
    assert report.epsilon == dpplan.compare(plan).headline_epsilon
    with pytest.raises(PlanError, match=r"tuning_runs=2 is invalid"):
        build_report(
            plan,
            run=store.get_run(ids[0]),
            group_runs=[store.get_run(i) for i in ids],
            tuning_runs=2,
        )


def test_group_with_different_plans_composes_events(store):
    first = dpplan.TrainingPlan(
        dataset_size=1000, batch_size=50, noise_multiplier=1.2, epochs=2, delta=1e-4
    )
    second = first.replace(noise_multiplier=2.0)
    run_id = stored_run(store, first, group_id="mixed")
    stored_run(store, second, group_id="mixed")
    tuning = build_run_report(store, run_id).tuning
    event = dp_event.ComposedDpEvent(events=[dpsgd_event(first), dpsgd_event(second)])
    rdp = dp_accounting.rdp.RdpAccountant(orders=list(get_accountant("rdp").orders))
    pld = dp_accounting.pld.PLDAccountant()
    expected = min(
        rdp.compose(event).get_epsilon(first.delta), pld.compose(event).get_epsilon(first.delta)
    )
    assert tuning.epsilon_all == pytest.approx(expected, rel=1e-12)
    assert tuning.same_mechanism is False and tuning.repeat_and_select_epsilon is None


def test_stopped_run_accounts_completed_epochs(store):
    plan = dpplan.TrainingPlan(
        dataset_size=1000, batch_size=50, noise_multiplier=1.2, epochs=3, delta=1e-4
    )
    run_id = stored_run(store, plan, epochs=1, status="stopped", stop_reason="stop requested")
    report = build_run_report(store, run_id)
    assert (report.epochs, report.plan.epochs) == (1, 3)
    assert report.epsilon == dpplan.compare(plan.replace(epochs=1)).headline_epsilon
    assert report.accounting.epochs == (1,)
    assert "covers the 1 completed epoch(s) of 3" in to_markdown(report)


def test_run_epochs_show_the_smallest_recorded_bound_with_its_method(store):
    plan = dpplan.TrainingPlan(
        dataset_size=1000, batch_size=50, noise_multiplier=1.2, epochs=2, delta=1e-4
    )
    old = build_run_report(store, stored_run(store, plan))  # records only the run's method
    assert [(e.method, e.epsilons) for e in old.run.epochs] == [("prv", {}), ("prv", {})]
    per_epoch = dpplan.accounting.epoch_epsilons(plan)
    new = build_run_report(store, stored_run(store, plan, every_method=True))
    for epoch, recorded in zip(new.run.epochs, per_epoch, strict=True):
        assert (epoch.method, epoch.epsilon) == dpplan.accounting.headline_of(recorded)
    assert (new.run.epochs[-1].method, new.run.epochs[-1].epsilon) == (new.method, new.epsilon)


def test_delta_at_least_one_over_n_is_flagged():
    plan = dpplan.TrainingPlan(
        dataset_size=1000, batch_size=50, noise_multiplier=1.2, epochs=1, delta=0.01
    )
    with pytest.warns(UserWarning, match="delta=0.01 >= 1/dataset_size"):
        report = build_report(plan)
    assert any(w.startswith("delta=0.01 >= 1/dataset_size") for w in report.warnings)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"title": "  "}, r"title='  ' is invalid"),
        ({"title": "x" * 301}, r"title='x+… \(\d+ characters\) is invalid"),  # cut
        ({"notes": 3}, r"notes=3 is invalid"),
        ({"tuning_runs": 0}, r"tuning_runs=0 is invalid"),
        ({"tuning_runs": 2.5}, r"tuning_runs=2.5 is invalid"),
        ({"run": "3"}, r"run='3' is invalid: must be a dpplan.store.RunRecord"),
    ],
)
def test_invalid_arguments(kwargs, pattern):
    with pytest.raises(PlanError, match=pattern):
        build_report(PLAN, **kwargs)


def test_invalid_plan_and_runs(store):
    with pytest.raises(PlanError, match=r"plan=.* is invalid: must be a dpplan.TrainingPlan"):
        build_report(PLAN.to_dict())
    plan = dpplan.TrainingPlan(
        dataset_size=1000, batch_size=50, noise_multiplier=1.2, epochs=2, delta=1e-4
    )
    baseline = store.get_run(stored_run(store, plan, private=False))
    with pytest.raises(PlanError, match=r"run=\d+ is invalid: must be a private run"):
        build_report(plan, run=baseline)
    empty = store.get_run(stored_run(store, plan, epochs=0, status="failed"))
    with pytest.raises(PlanError, match=r"at least one completed epoch"):
        build_report(plan, run=empty)
    finished = store.get_run(stored_run(store, plan))
    with pytest.raises(PlanError, match=r"must be a run of the given plan"):
        build_report(PLAN, run=finished)
    with pytest.raises(PlanError, match=r"group_runs=1 is invalid: must be empty without a run"):
        build_report(plan, group_runs=[finished])
    with pytest.raises(NotFoundError, match=r"run_id=999 is invalid"):
        build_run_report(store, 999)


def test_report_module_imports_neither_torch_nor_streamlit():
    code = (
        "import sys, dpplan.report; "
        "print(sorted(m for m in ('torch', 'opacus', 'streamlit') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_save_and_load_run_report(store, plan_report):
    plan = dpplan.TrainingPlan(
        dataset_size=1000, batch_size=50, noise_multiplier=1.2, epochs=1, delta=1e-4
    )
    run_id = stored_run(store, plan)
    assert load_run_report(store, run_id) is None
    report = build_run_report(store, run_id)
    save_run_report(store, report)
    assert load_run_report(store, run_id) == report
    assert store.load_report(run_id) == json.loads(to_json(report))
    assert "train_loss" not in to_json(report)  # noise-free loss on private batches
    with pytest.raises(PlanError, match=r"report='plan' is invalid: must be the report of a run"):
        save_run_report(store, plan_report)
    with pytest.raises(PlanError, match=r"run_id=1.5 is invalid"):
        load_run_report(store, 1.5)


def test_git_state_names_the_checkout(plan_report):
    commit, dirty = build_module.git_state()
    repro = plan_report.reproducibility
    if commit is None:
        assert repro.git_commit is None and dirty is None
    else:
        assert len(commit) == 40 and int(commit, 16) >= 0 and isinstance(dirty, bool)
        assert repro.git_commit is not None and len(repro.git_commit) == 40


# --- the assumptions are fields (issue 17 item 14), not only prose ---------------------

ASSUMED = {
    "unit": "example",
    "neighbouring_relation": "add_or_remove_one_example",
    "sampling": "poisson",
    "trust_model": "central",
    "covers": ["every_checkpoint", "final_model", "post_processing"],
}


def test_plan_and_run_reports_state_their_assumptions_as_fields(plan_report, store):
    data = json.loads(to_json(plan_report))
    assert data["assumptions"] == {**ASSUMED, "public": ["dataset_size"]}
    run = json.loads(to_json(build_run_report(store, stored_run(store, PLAN))))
    assert run["assumptions"] == {
        **ASSUMED,
        "public": ["dataset_size", "validation_data", "test_data"],
    }
    jsonschema.validate(run, report_schema())


def test_schema_lists_the_assumptions():
    schema = report_schema()
    assert schema["properties"]["assumptions"] == {"$ref": "#/$defs/Assumptions"}
    fields = schema["$defs"]["Assumptions"]
    assert set(fields["required"]) == {*ASSUMED, "public"}
    # Plans and runs are Poisson, add-or-remove; ledgers name their scheme and relation.
    assert fields["properties"]["sampling"]["enum"] == [
        "poisson",
        "shuffle",
        "fixed_size",
        "truncated_poisson",
        "mixed",
    ]
    assert fields["properties"]["neighbouring_relation"]["enum"] == [
        "add_or_remove_one_example",
        "replace_one_example",
    ]
    broken = {**json.loads(to_json(build_report(PLAN)))}
    broken["assumptions"] = {**broken["assumptions"], "sampling": "shuffling"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, report_schema())


def test_a_stored_report_without_assumptions_gets_those_of_its_kind(plan_report):
    data = json.loads(to_json(plan_report))
    del data["assumptions"]
    assert report_from_dict(data).assumptions == plan_report.assumptions


def test_templates_render_the_assumptions_from_the_fields(plan_report):
    text = to_markdown(plan_report)
    assert "| Adjacency | add-or-remove one example |" in text
    assert "| Sampling assumed | Poisson |" in text
    assert "checkpoint saved after each epoch" in text
    assert "the dataset size N: the accounting treats it as public" in text
    fewer = plan_report.assumptions.model_copy(update={"covers": ("final_model",), "public": ()})
    changed = to_markdown(plan_report.model_copy(update={"assumptions": fewer}))
    assert "checkpoint saved after each epoch" not in changed
    assert "the dataset size N" not in changed
    assert "- the final model" in changed


def test_a_phased_plans_report_has_a_phase_table_whose_numbers_are_the_apis():
    first = dpplan.TrainingPlan(
        dataset_size=10_000, batch_size=100, noise_multiplier=1.0, epochs=2, delta=1e-5
    )
    plan = dpplan.PhasedPlan(
        phases=[first, first.replace(batch_size=500, noise_multiplier=2.0, epochs=3)],
        phase_steps=[None, 45],
    )
    report = build_report(plan, title="Warm-up then large batches")
    expected = dpplan.compare(plan)
    assert report.kind == "phased" and report.plan is None and report.membership is None
    assert (report.epsilon, report.method) == (expected.headline_epsilon, expected.headline_method)
    phases = report.phased.phases
    assert [(p.batch_size, p.noise_multiplier, p.epochs, p.steps) for p in phases] == [
        (100, 1.0, 2, 200),
        (500, 2.0, 3, 45),
    ]
    assert phases[1].sample_rate == 0.05
    for phase, steps in zip(phases, (200, 245)):
        at = {m: dpplan.epsilon_at(plan, steps=steps, method=m) for m in dpplan.METHODS}
        assert phase.epsilon == pytest.approx(at[phase.method], rel=1e-9)
        assert phase.epsilon == pytest.approx(min(at.values()), rel=1e-9)
    assert report.accounting.steps == plan.epoch_ends()
    # No amplification: 2 epochs at σ = 1, then 45 steps of 20 per epoch start 3 at σ = 2;
    # they compose to one Gaussian.
    sigma = 1 / math.sqrt(2 / 1.0**2 + 3 / 2.0**2)
    exact = dp_accounting.get_epsilon_gaussian(sigma, 1e-5)
    assert report.accounting.no_amplification_epsilon == pytest.approx(exact, rel=1e-12)
    assert report_from_dict(json.loads(to_json(report))) == report
    text = to_markdown(report)
    assert "| 2 | 500 | 2 | 3 | 45 | 0.05 |" in text and "dpplan report --plan" in text
    page = to_html(report)
    assert "<svg" in page and "ε after the phase" in page and "<script" not in page
    # The plan JSON in the report is a --plan file that rebuilds the same plan.
    block = text.split("```json\n")[1].split("```")[0]
    assert dpplan.PhasedPlan.from_dict(json.loads(block)) == plan
    # A one-phase PhasedPlan running all its epochs is an ordinary plan report.
    assert build_report(dpplan.PhasedPlan(phases=[first])).kind == "plan"


def test_a_ledgers_report_names_scheme_relation_and_each_methods_epsilon():
    from dpplan.report import build_ledger_report

    ledger = dpplan.Ledger(dataset_size=10_000, delta=1e-5)
    ledger.record(noise_multiplier=2.0, batch_size=100, steps=120, sampling="fixed_size")
    report = build_ledger_report(ledger)
    assert report.kind == "ledger" and report.ledger.schemes == ("fixed_size",)
    assert report.assumptions.neighbouring_relation == "replace_one_example"
    assert report.assumptions.sampling == "fixed_size"
    assert report.ledger.epsilons == {"rdp": ledger.epsilon("rdp")}
    assert (report.method, report.epsilon) == ("rdp", ledger.epsilon("rdp"))
    assert set(report.ledger.refused) == {"prv", "pld"}
    assert "PLDAccountant has no" in report.ledger.refused["pld"]
    assert report_from_dict(json.loads(to_json(report))) == report
    text = to_markdown(report)
    assert "replace one example" in text and "refuses: method=" in text
    assert "replace one example" in to_html(report)
    assert "dpplan report --ledger ledger.json" in text
    # Shuffled batches: the guarantee has no amplification; "as if Poisson" is labelled.
    shuffled = dpplan.Ledger(dataset_size=10_000, delta=1e-5)
    shuffled.record(noise_multiplier=2.0, batch_size=100, steps=250, sampling="shuffle")
    report = build_ledger_report(shuffled, title="Shuffled")
    assert report.epsilon == shuffled.epsilon() and report.ledger.refused == {}
    assert report.ledger.as_if_poisson_epsilon == shuffled.as_if_poisson_epsilon(report.method)
    assert report.ledger.as_if_poisson_epsilon < report.epsilon / 2
    assert report.assumptions.neighbouring_relation == "add_or_remove_one_example"
    assert "not a guarantee" in to_markdown(report)
    with pytest.raises(PlanError, match="ledger="):
        build_ledger_report({"records": []})
