"""build_report: every number equals dpplan's API; tuning; errors; the schema round trip."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import dp_accounting
import jsonschema
import pytest
from dp_accounting import dp_event
from hypothesis import given, settings
from hypothesis import strategies as st
from report_helpers import PLAN, stored_run

import dpplan
from dpplan.accounting import get_accountant
from dpplan.accounting.events import dpsgd_event
from dpplan.errors import PlanError
from dpplan.report import (
    FALSE_POSITIVE_RATES,
    build_report,
    build_run_report,
    load_run_report,
    membership_tpr_bound,
    plan_hash,
    report_from_dict,
    report_schema,
    save_run_report,
    to_json,
)
from dpplan.report import build as build_module


def _best(plan: dpplan.TrainingPlan) -> float:
    return min(dpplan.epsilon(plan, method=method) for method in dpplan.METHODS)


def test_numbers_equal_the_api(plan_report):
    report = plan_report
    expected = dpplan.compare(PLAN)
    assert report.kind == "plan" and report.run is None
    assert report.epsilon == expected.headline_epsilon
    assert report.guarantee.method == expected.headline_method
    assert report.accounting.headline_epsilon == expected.headline_epsilon
    assert report.sampling.epsilon_poisson == expected.headline_epsilon
    assert report.interpretation.epsilon == expected.headline_epsilon
    assert report.accounting.epochs == (1, 2, 3)
    assert report.accounting.steps == tuple(PLAN.steps_after(e) for e in (1, 2, 3))
    assert [c.method for c in report.accounting.curves] == [c.method for c in expected.curves]
    for got, want in zip(report.accounting.curves, expected.curves, strict=True):
        assert got.epsilons == want.epsilons
        assert got.epsilon == dpplan.epsilon(PLAN, method=want.method)
        assert got.lower == want.lower and got.estimates == want.estimates
        assert got.library_version == want.versions[got.library]
    prv = expected.curve("prv")
    assert report.accounting.prv_lower_bound == prv.lower[-1] <= report.epsilon
    assert report.accounting.delta == PLAN.delta == report.delta
    assert report.accounting.delta_below_one_over_dataset_size is True
    # Mechanism fields are the plan's.
    m = report.mechanism
    assert (m.dataset_size, m.batch_size, m.sample_rate, m.steps_per_epoch, m.epochs,
            m.total_steps, m.noise_multiplier, m.max_grad_norm) == (
        PLAN.dataset_size, PLAN.batch_size, PLAN.sample_rate, PLAN.steps_per_epoch,
        PLAN.epochs, PLAN.total_steps, PLAN.noise_multiplier, PLAN.max_grad_norm)
    assert report.plan == PLAN.to_dict()
    assert report.reproducibility.plan_hash == plan_hash(PLAN)


def test_json_numbers_equal_the_api(plan_report):
    data = json.loads(to_json(plan_report))
    expected = dpplan.compare(PLAN)
    assert data["guarantee"]["epsilon"] == expected.headline_epsilon
    for got, want in zip(data["accounting"]["curves"], expected.curves, strict=True):
        assert got["epsilons"] == list(want.epsilons)
    assert data["sampling"]["epsilon_no_amplification"] == dp_accounting.get_epsilon_gaussian(
        PLAN.noise_multiplier / math.sqrt(PLAN.epochs), PLAN.delta)


def test_no_amplification_is_the_exact_gaussian_and_larger(plan_report):
    exact = dp_accounting.get_epsilon_gaussian(PLAN.noise_multiplier / math.sqrt(PLAN.epochs),
                                               PLAN.delta)
    assert plan_report.sampling.epsilon_no_amplification == exact
    # Poisson amplification is what makes the headline small.
    assert plan_report.sampling.epsilon_no_amplification > plan_report.epsilon
    assert plan_report.sampling.used is None and plan_report.sampling.matches is None


def test_membership_rows_and_tier(plan_report):
    rows = plan_report.interpretation.membership_inference
    assert tuple(r.false_positive_rate for r in rows) == FALSE_POSITIVE_RATES
    eps, delta = plan_report.epsilon, PLAN.delta
    for row in rows:
        fpr = row.false_positive_rate
        assert row.true_positive_rate_bound == min(
            1.0, math.exp(eps) * fpr + delta, 1 - math.exp(-eps) * (1 - delta - fpr))
    tiers = plan_report.interpretation.tiers
    assert [t.name for t in tiers] == ["ε ≤ 1", "1 < ε ≤ 10", "ε > 10"]
    assert sum(t.applies for t in tiers) == 1
    assert plan_report.interpretation.tier == ("ε ≤ 1" if eps <= 1 else "1 < ε ≤ 10")
    assert all(t.means and t.does_not_mean.startswith("It does not mean") for t in tiers)


@settings(max_examples=40, deadline=None)
@given(epsilon=st.floats(0, 50), delta=st.sampled_from([0.0, 1e-6, 1e-5, 1e-3]),
       fpr=st.floats(0, 1))
def test_membership_bound_is_between_fpr_and_one(epsilon, delta, fpr):
    bound = membership_tpr_bound(epsilon, delta, fpr)
    assert fpr - 1e-12 <= bound <= 1.0
    assert membership_tpr_bound(epsilon + 1.0, delta, fpr) >= bound - 1e-12


def test_membership_bound_known_values():
    assert membership_tpr_bound(0.0, 0.0, 0.3) == pytest.approx(0.3)
    assert membership_tpr_bound(math.inf, 1e-5, 0.01) == 1.0
    assert membership_tpr_bound(1.0, 0.0, 0.01) == pytest.approx(math.e * 0.01)


def test_guarantee_is_explicit(plan_report):
    g = plan_report.guarantee
    assert (g.trust_model, g.unit, g.adjacency, g.sampling) == (
        "central", "example", "add-or-remove one example", "Poisson")
    assert "60,000" in g.unit_description
    assert any("final model" in item for item in g.protects)
    assert any("checkpoint" in item for item in g.protects)
    assert not g.tuning.accounted and g.tuning.runs_tried == 1
    assert "not covered" in g.tuning.statement
    assert "Hyper-parameter tuning is not accounted (no --tuning-runs)." in plan_report.warnings


def test_schema_validates_plan_report_and_round_trips(plan_report):
    schema = report_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    data = json.loads(to_json(plan_report))
    jsonschema.validate(data, schema)
    assert report_from_dict(data) == plan_report
    assert report_from_dict(plan_report.to_dict()) == plan_report


def test_schema_rejects_bad_reports(plan_report):
    data = json.loads(to_json(plan_report))
    with pytest.raises(PlanError, match=r"report=.*schema 'dpplan-report', version 1"):
        report_from_dict({**data, "schema_version": 2})
    broken = json.loads(to_json(plan_report))
    broken["guarantee"]["epsilon"] = "big"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, report_schema())
    with pytest.raises(PlanError, match=r"guarantee/epsilon"):
        report_from_dict(broken)
    extra = json.loads(to_json(plan_report))
    extra["mechanism"]["surprise"] = 1
    with pytest.raises(PlanError, match=r"report="):
        report_from_dict(extra)
    with pytest.raises(PlanError, match=r"report=.*a mapping"):
        report_from_dict([])


def test_declared_tuning_runs_compose_and_repeat_and_select():
    report = build_report(PLAN, tuning_runs=4)
    tuning = report.guarantee.tuning
    assert tuning.accounted and tuning.runs_tried == 4 and tuning.source == "declared"
    assert tuning.epsilon_one_run == report.epsilon
    # Four runs of E epochs compose to one plan of 4E epochs.
    assert tuning.epsilon_all_runs == _best(PLAN.replace(epochs=4 * PLAN.epochs))
    assert tuning.epsilon_all_runs > report.epsilon
    # Repeat-and-select: dp-accounting's RDP with a Poisson(4) number of runs; never applies
    # to a fixed number of runs.
    accountant = dp_accounting.rdp.RdpAccountant(orders=list(get_accountant("rdp").orders))
    accountant.compose(dp_event.RepeatAndSelectDpEvent(event=dpsgd_event(PLAN), mean=4.0,
                                                       shape=math.inf))
    assert tuning.repeat_and_select_epsilon == accountant.get_epsilon(PLAN.delta)
    assert tuning.repeat_and_select_applies is False
    assert "does not apply" in tuning.repeat_and_select_description
    assert any("4 training runs on this data were declared" in w for w in report.warnings)
    assert report.reproducibility.commands["json"].count("--tuning-runs 4") == 1


def test_one_declared_run_is_covered():
    report = build_report(PLAN.replace(epochs=1), tuning_runs=1)
    assert report.guarantee.tuning.source == "declared"
    assert report.guarantee.tuning.epsilon_all_runs is None


def test_group_runs_from_the_store(store):
    plan = dpplan.TrainingPlan(dataset_size=1000, batch_size=50, noise_multiplier=1.2, epochs=2,
                               delta=1e-4)
    ids = [stored_run(store, plan, group_id="g1") for _ in range(2)]
    ids.append(stored_run(store, plan, group_id="g1", epochs=1, status="stopped",
                          stop_reason="stop requested"))
    stored_run(store, plan, group_id="other")
    report = build_run_report(store, ids[0])
    tuning = report.guarantee.tuning
    assert tuning.runs_tried == 3 and tuning.source == "run store group"
    assert tuning.group_id == "g1" and tuning.run_ids == tuple(ids)
    # 2 + 2 + 1 completed epochs of the same mechanism.
    assert tuning.epsilon_all_runs == _best(plan.replace(epochs=5))
    assert tuning.repeat_and_select_applies is False
    assert "3 runs were trained on the same data" in tuning.statement
    assert report.epsilon == dpplan.compare(plan).headline_epsilon
    with pytest.raises(PlanError, match=r"tuning_runs=2 is invalid"):
        build_report(plan, run=store.get_run(ids[0]),
                     group_runs=[store.get_run(i) for i in ids], tuning_runs=2)


def test_group_with_different_plans_composes_events(store):
    first = dpplan.TrainingPlan(dataset_size=1000, batch_size=50, noise_multiplier=1.2,
                                epochs=2, delta=1e-4)
    second = first.replace(noise_multiplier=2.0)
    run_id = stored_run(store, first, group_id="mixed")
    stored_run(store, second, group_id="mixed")
    tuning = build_run_report(store, run_id).guarantee.tuning
    event = dp_event.ComposedDpEvent(events=[dpsgd_event(first), dpsgd_event(second)])
    rdp = dp_accounting.rdp.RdpAccountant(orders=list(get_accountant("rdp").orders))
    pld = dp_accounting.pld.PLDAccountant()
    expected = min(rdp.compose(event).get_epsilon(first.delta),
                   pld.compose(event).get_epsilon(first.delta))
    assert tuning.epsilon_all_runs == pytest.approx(expected, rel=1e-12)
    assert tuning.repeat_and_select_epsilon is None


def test_stopped_run_accounts_completed_epochs(store):
    plan = dpplan.TrainingPlan(dataset_size=1000, batch_size=50, noise_multiplier=1.2, epochs=3,
                               delta=1e-4)
    run_id = stored_run(store, plan, epochs=1, status="stopped", stop_reason="stop requested")
    report = build_run_report(store, run_id)
    assert report.mechanism.epochs == 1 and report.mechanism.epochs_planned == 3
    assert report.epsilon == dpplan.compare(plan.replace(epochs=1)).headline_epsilon
    assert report.accounting.epochs == (1,)
    assert any("covers the 1 completed epoch(s) of 3" in w for w in report.warnings)
    assert report.plan == plan.to_dict()


def test_delta_at_least_one_over_n_is_flagged():
    plan = dpplan.TrainingPlan(dataset_size=1000, batch_size=50, noise_multiplier=1.2, epochs=1,
                               delta=0.01)
    with pytest.warns(UserWarning, match="delta=0.01 >= 1/dataset_size"):
        report = build_report(plan)
    assert report.accounting.delta_below_one_over_dataset_size is False
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
    plan = dpplan.TrainingPlan(dataset_size=1000, batch_size=50, noise_multiplier=1.2, epochs=2,
                               delta=1e-4)
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
    with pytest.raises(PlanError, match=r"run_id=999 is invalid"):
        build_run_report(store, 999)


def test_report_module_imports_neither_torch_nor_streamlit():
    code = ("import sys, dpplan.report; "
            "print(sorted(m for m in ('torch', 'opacus', 'streamlit') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


def test_save_and_load_run_report(store, plan_report):
    plan = dpplan.TrainingPlan(dataset_size=1000, batch_size=50, noise_multiplier=1.2, epochs=1,
                               delta=1e-4)
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
    commit, dirty = build_module._git_state()
    repro = plan_report.reproducibility
    if commit is None:
        assert repro.git_commit is None and dirty is None
    else:
        assert len(commit) == 40 and int(commit, 16) >= 0 and isinstance(dirty, bool)
        assert repro.git_commit is not None and len(repro.git_commit) == 40


def test_schema_lists_every_field_of_every_report_type():
    """The published schema and the dataclasses must not drift apart."""
    import dataclasses

    from dpplan.report import model

    schema = report_schema()
    types = {"Report": schema, **schema["$defs"]}
    for name, definition in types.items():
        cls = getattr(model, name, None)
        if cls is None:
            continue
        fields = [f.name for f in dataclasses.fields(cls)]
        assert definition["required"] == fields, name
        assert list(definition["properties"]) == fields, name
        assert definition["additionalProperties"] is False
