"""``compare_schedules`` and ``dpplan compare`` over a PhasedPlan; the composed ε of runs of
phased plans (``compose_runs``). Stub runs (no training): see test_cli_plan_train.py for the
real phased comparison."""

from __future__ import annotations

import json

import pytest
from tiny_runs import stored_run

import dpplan
from dpplan.accounting import compose_runs
from dpplan.cli import main
from dpplan.errors import PlanError
from dpplan.format import epsilon_text
from dpplan.report.build import build_run_report
from dpplan.train.compare import compare_schedules, plan_from_dict
from dpplan.train.specs import OneCycle, Plateau, RunOptions

#: Two phases on the 1,000 training examples of the data flags (as test_cli_plan_train.py):
#: 10 steps of B=100 at σ=1, then 8 steps (5 in an epoch) of B=200 at σ=2.
PHASED = {
    "dataset_size": 1000,
    "delta": 1e-4,
    "phases": [
        {"batch_size": 100, "noise_multiplier": 1.0, "epochs": 1},
        {"batch_size": 200, "noise_multiplier": 2.0, "epochs": 2, "steps": 8},
    ],
}

STUB = stored_run(lambda lr, seed: lr / 10, lambda lr, seed: 0.5 + seed / 10)
GRIDS = {
    "one_cycle": (OneCycle(max_lr=0.5), OneCycle(max_lr=1.0)),
    "plateau": (Plateau(lr=0.1), Plateau(lr=0.3)),
}


@pytest.fixture
def stubbed(monkeypatch):
    monkeypatch.setattr("dpplan.train.compare.start_run", STUB)


def _options():
    return RunOptions(subset=1000, validation_size=200, test_subset=300, method="rdp")


def test_every_run_trains_the_phased_plan_and_summaries_follow_its_curve(store, stubbed):
    plan = dpplan.PhasedPlan.from_dict(PHASED)
    result = compare_schedules(plan, grids=GRIDS, seeds=(0, 1), options=_options(), store=store)
    runs = store.list_runs()
    assert len(runs) == result.runs_tried == 6
    assert all(run.plan == plan for run in runs)  # every run: the same phased plan, equal ε
    curve = dpplan.epsilon_curve(plan, method="rdp").epsilons
    assert len(curve) == len(plan.epoch_ends()) == 3  # epochs of 10, 5 and 3 steps
    for summary in result.summaries:
        assert summary.epochs == (1, 2, 3)
        assert summary.epsilons == pytest.approx(curve, rel=1e-12)
    one_cycle, plateau = result.summaries
    assert one_cycle.epsilons == plateau.epsilons
    assert one_cycle.selected["max_lr"] == 1.0 and plateau.selected["lr"] == 0.3
    assert result.plan == plan


def test_the_json_carries_the_phased_plan_and_round_trips(store, stubbed):
    plan = dpplan.PhasedPlan.from_dict(PHASED)
    result = compare_schedules(plan, grids=GRIDS, seeds=(0,), options=_options(), store=store)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["plan"] == plan.to_dict()
    assert plan_from_dict(data["plan"]) == plan
    assert [len(s["epochs"]) for s in data["schedules"]] == [3, 3]


def test_a_training_plan_comparison_is_unchanged(store, stubbed):
    plan = dpplan.TrainingPlan(
        dataset_size=1000, batch_size=100, noise_multiplier=1.0, epochs=2, delta=1e-4
    )
    result = compare_schedules(plan, grids=GRIDS, seeds=(0,), options=_options(), store=store)
    assert result.to_dict()["plan"] == plan.to_dict()
    assert plan_from_dict(result.to_dict()["plan"]) == plan
    assert result.summaries[0].epochs == (1, 2)
    assert result.summaries[0].epsilons == pytest.approx(
        dpplan.epsilon_curve(plan, method="rdp").epsilons, rel=1e-12
    )


def test_compare_refuses_what_is_not_a_plan(store):
    with pytest.raises(PlanError) as caught:
        compare_schedules({"phases": []}, grids=GRIDS, seeds=(0,), store=store)
    assert caught.value.field == "plan"


def test_the_group_epsilon_of_phased_runs_composes_their_phases(store, stubbed):
    plan = dpplan.PhasedPlan.from_dict(PHASED)
    compare_schedules(plan, grids=GRIDS, seeds=(0, 1), options=_options(), store=store)
    runs = store.list_runs()
    composed = compose_runs([(run.plan, run.epochs_spent) for run in runs], delta=plan.delta)
    # Independently: six runs of the plan are one phased plan of its phases six times over.
    six = dpplan.PhasedPlan(phases=plan.phases * 6, phase_steps=plan.phase_steps * 6)
    expected = dpplan.compare(six, methods=("pld",))
    assert not composed.same_mechanism and composed.total_steps == 6 * plan.total_steps
    assert composed.epsilon == pytest.approx(expected.headline_epsilon, rel=1e-6)


def test_compose_runs_counts_a_phased_runs_completed_epochs_only():
    plan = dpplan.PhasedPlan.from_dict(PHASED)
    # Epoch 2 ends mid-way through phase 2 (after 15 of 18 steps): the cut plan's phases.
    cut = dpplan.PhasedPlan(phases=plan.phases, phase_steps=(None, 5))
    together = dpplan.PhasedPlan(phases=plan.phases + cut.phases, phase_steps=(None, 8, None, 5))
    composed = compose_runs([(plan, 3), (plan, 2)], delta=plan.delta)
    assert composed.total_steps == 18 + 15
    assert composed.epsilon == pytest.approx(
        dpplan.compare(together, methods=("pld",)).headline_epsilon, rel=1e-6
    )
    # A phased plan of one mechanism throughout is one longer run of it.
    one = plan.phases[0]
    repeated = dpplan.PhasedPlan(phases=(one, one))
    same = compose_runs([(repeated, 2), (one, 1)], delta=plan.delta)
    assert same.same_mechanism and same.total_steps == 30
    assert same.epsilon == pytest.approx(
        dpplan.compare(one.replace(epochs=3)).headline_epsilon, rel=1e-9
    )
    with pytest.raises(PlanError) as caught:
        compose_runs([(plan, 4)], delta=plan.delta)
    assert caught.value.field == "epochs"
    with pytest.raises(PlanError) as caught:
        compose_runs([({"phases": []}, 1)], delta=plan.delta)
    assert caught.value.field == "runs"


def test_cli_compare_takes_a_phased_file(store, data_flags, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("dpplan.train.compare.start_run", STUB)
    path = tmp_path / "phased.json"
    path.write_text(json.dumps(PHASED))
    argv = ["compare", "--plan", str(path), *data_flags]
    argv += ["--one-cycle-lrs", "0.5,1", "--plateau-lrs", "0.1", "--seeds", "0,1"]
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["plan"] == dpplan.PhasedPlan.from_dict(PHASED).to_dict()
    assert result["schedules"][0]["epsilons"] == result["schedules"][1]["epsilons"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "plan: 2 phases, dataset_size=1000" in out
    assert out.count("\n      3 ") == 2  # each schedule's table ends at epoch 3
    # A run of the comparison still has a report: the run's ε, and the group's composed ε
    # (all five runs) stated with it.
    run = store.list_runs()[0]
    runs = [r for r in store.list_runs() if r.group_id == run.group_id]
    assert len(runs) == 5  # 2 + 1 rates, then the second seed of each schedule
    report = build_run_report(store, run.id, created_at="2026-01-01T00:00:00+00:00")
    assert report.epsilon == pytest.approx(
        dpplan.compare(dpplan.PhasedPlan.from_dict(PHASED)).headline_epsilon, rel=1e-9
    )
    composed = compose_runs([(r.plan, r.epochs_spent) for r in runs], delta=1e-4)
    (stated,) = [w for w in report.warnings if f"group {run.group_id}" in w]
    assert "ε of all 5 runs composed" in stated
    assert f"is {epsilon_text(composed.epsilon)} ({composed.method})" in stated
    assert composed.epsilon > report.epsilon
    assert main(["report", "--run", str(run.id)]) == 0
    assert "ε of all 5 runs composed" in capsys.readouterr().out


def test_a_phased_groups_stated_epsilon_counts_a_stopped_runs_abandoned_steps(store, stubbed):
    # A run stopped mid-epoch took steps no epoch records; the group's composed ε counts them.
    plan = dpplan.PhasedPlan.from_dict(PHASED)
    compare_schedules(plan, grids=GRIDS, seeds=(0,), options=_options(), store=store)
    runs = store.list_runs()
    before = build_run_report(store, runs[0].id, created_at="2026-01-01T00:00:00+00:00")
    store.finish_run(runs[1].id, status="finished", abandoned_steps=4)
    after = build_run_report(store, runs[0].id, created_at="2026-01-01T00:00:00+00:00")
    (said_before,) = [w for w in before.warnings if "runs composed" in w]
    (said_after,) = [w for w in after.warnings if "runs composed" in w]
    steps = len(runs) * plan.total_steps
    assert f"({steps:,} noisy steps)" in said_before
    assert f"({steps + 4:,} noisy steps)" in said_after
