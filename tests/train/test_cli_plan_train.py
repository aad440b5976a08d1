"""``dpplan train --plan FILE`` and ``dpplan compare --plan FILE``; phased runs wherever a run is
read (issue 20)."""

from __future__ import annotations

import dataclasses
import json

import pytest

import dpplan
from dpplan.cli import main
from dpplan.report.build import build_run_report, truncated_phased
from dpplan.run_policy import plan_epoch_epsilons, run_epsilon

#: Two phases on the 1,000 training examples of the data flags: 10 steps of B=100 at σ=1, then
#: 8 steps (5 in an epoch) of B=200 at σ=2: three epochs of 10, 5 and 3 steps.
PHASED = {
    "dataset_size": 1000,
    "delta": 1e-4,
    "phases": [
        {"batch_size": 100, "noise_multiplier": 1.0, "epochs": 1},
        {"batch_size": 200, "noise_multiplier": 2.0, "epochs": 2, "steps": 8},
    ],
}


def _extra(command):
    """The schedule flags of ``dpplan train`` (``compare`` runs its own grid)."""
    return ["--lr", "0.1", "--schedule", "constant"] if command == "train" else []


@pytest.fixture
def plan_file(tmp_path):
    def write(data, name="plan.json"):
        path = tmp_path / name
        path.write_text(json.dumps(data))
        return str(path)

    return write


def test_train_a_phased_file_trains_the_planned_steps(store, data_flags, plan_file, capsys):
    plan = dpplan.PhasedPlan.from_dict(PHASED)
    assert (
        main(["train", "--plan", plan_file(PHASED), *data_flags, *_extra("train"), "--json"]) == 0
    )
    run = json.loads(capsys.readouterr().out)
    assert run["status"] == "finished"
    steps = [record["steps"] for record in run["records"]]
    assert tuple(steps) == plan.epoch_ends() == (10, 15, 18) and steps[-1] == plan.total_steps
    stored = store.get_run(run["id"])
    assert stored.plan == plan
    value, _ = run_epsilon(stored)
    assert value == pytest.approx(dpplan.compare(plan).headline_epsilon, rel=1e-9)
    # Shown and listed like any run.
    assert main(["runs", "show", str(run["id"])]) == 0
    assert f"run {run['id']}: finished" in capsys.readouterr().out
    assert main(["runs"]) == 0
    assert "  3/3  " in capsys.readouterr().out
    # Its report accounts the whole phased plan (every epoch completed).
    report = build_run_report(store, run["id"], created_at="2026-01-01T00:00:00+00:00")
    assert report.epsilon == pytest.approx(dpplan.compare(plan).headline_epsilon, rel=1e-9)
    assert report.title == f"DP-SGD privacy report of run {run['id']}"


def test_a_single_phase_train_file_is_the_flags_plan(store, data_flags, plan_file, capsys):
    single = {**PHASED, "phases": [{"batch_size": 100, "noise_multiplier": 1.0, "epochs": 1}]}
    assert (
        main(["train", "--plan", plan_file(single), *data_flags, *_extra("train"), "--json"]) == 0
    )
    run = json.loads(capsys.readouterr().out)
    assert run["plan"]["batch_size"] == 100 and run["records"][0]["steps"] == 10
    assert isinstance(store.get_run(run["id"]).plan, dpplan.TrainingPlan)


@pytest.mark.parametrize("command", ["train", "compare"])
def test_plan_flags_with_a_plan_file_are_refused(command, store, data_flags, plan_file, capsys):
    args = [
        command,
        "--plan",
        plan_file(PHASED),
        "--batch-size",
        "64",
        *data_flags,
        *_extra(command),
    ]
    args.append("--json")
    assert main(args) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["field"] == "batch_size" and "--plan" in error["expected"]
    assert store.list_runs() == []


@pytest.mark.parametrize("command", ["train", "compare"])
def test_a_plan_file_of_another_dataset_size_is_refused(
    command, store, data_flags, plan_file, capsys
):
    args = [command, "--plan", plan_file({**PHASED, "dataset_size": 999}), *data_flags]
    args += [*_extra(command), "--json"]
    assert main(args) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["field"] == "dataset_size" and error["value"] == 999
    assert "1000" in error["expected"]
    assert store.list_runs() == []


def test_compare_trains_a_phased_file(store, data_flags, plan_file, capsys):
    """One real phased comparison: one rate per schedule, one seed (two tiny runs)."""
    plan = dpplan.PhasedPlan.from_dict(PHASED)
    args = ["compare", "--plan", plan_file(PHASED), *data_flags, "--seeds", "0"]
    args += ["--one-cycle-lrs", "0.5", "--plateau-lrs", "0.1", "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["plan"] == plan.to_dict() and result["runs_tried"] == 2
    curve = [min(values.values()) for values in plan_epoch_epsilons(plan)]
    runs = store.list_runs()
    assert len(runs) == 2 and all(run.plan == plan for run in runs)
    for schedule, run in zip(result["schedules"], sorted(runs, key=lambda r: r.id)):
        assert schedule["epochs"] == [1, 2, 3]
        assert schedule["epsilons"] == pytest.approx(curve, rel=1e-9)
        assert [record.steps for record in run.records] == list(plan.epoch_ends())


def test_target_epsilon_stops_a_phased_run_before_the_epoch_that_exceeds_it(
    store, data_flags, plan_file, capsys
):
    plan = dpplan.PhasedPlan.from_dict(PHASED)
    curve = [min(values.values()) for values in plan_epoch_epsilons(plan)]
    target = (curve[1] + curve[2]) / 2  # epochs 1-2 fit, epoch 3 (phase 2) does not
    args = ["train", "--plan", plan_file(PHASED), *data_flags, *_extra("train"), "--json"]
    assert main([*args, "--target-epsilon", f"{target!r}"]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run["status"] == "finished" and len(run["records"]) == 2
    assert "stopped before epoch 3" in run["stop_reason"]
    value, _ = run_epsilon(store.get_run(run["id"]))
    assert value == pytest.approx(curve[1], rel=1e-9) and value <= target


def test_run_epsilon_counts_the_diverged_epoch_of_a_phased_run(
    store, data_flags, plan_file, capsys
):
    plan = dpplan.PhasedPlan.from_dict(PHASED)
    assert (
        main(["train", "--plan", plan_file(PHASED), *data_flags, *_extra("train"), "--json"]) == 0
    )
    run = store.get_run(json.loads(capsys.readouterr().out)["id"])
    # As the trainer stores a run that diverged in epoch 2: epoch 1 recorded.
    diverged = dataclasses.replace(
        run, records=run.records[:1], status="diverged", diverged_epoch=2
    )
    value, method = run_epsilon(diverged)
    cut = truncated_phased(plan, plan.steps_after(2))
    assert cut.steps_per_phase == (10, 5) and cut.total_steps == 15
    assert value == pytest.approx(dpplan.compare(cut).headline_epsilon, rel=1e-6)
    assert value == pytest.approx(plan_epoch_epsilons(plan)[1][method], rel=1e-12)
    assert value < run_epsilon(run)[0]


def test_plan_epoch_epsilons_of_a_phased_plan_follow_its_epochs():
    plan = dpplan.PhasedPlan.from_dict(PHASED)
    per_epoch = plan_epoch_epsilons(plan)
    assert len(per_epoch) == len(plan.epoch_ends()) == 3
    comparison = dpplan.compare(plan)
    assert min(per_epoch[-1].values()) == pytest.approx(comparison.headline_epsilon, rel=1e-12)
    # A truncation is the plan's own prefix: its ε is the curve's point there.
    cut = truncated_phased(plan, plan.steps_after(2))
    assert cut.phases == plan.phases[:2] and cut.steps_per_phase == (10, 5)
    assert min(per_epoch[1].values()) == pytest.approx(
        dpplan.compare(cut).headline_epsilon, rel=1e-6
    )


def test_report_of_a_phased_run_validates_and_renders(store, data_flags, plan_file, capsys):
    import jsonschema

    from dpplan.report import report_from_dict, report_schema, to_html, to_json, to_markdown
    from dpplan.report.build import load_run_report

    plan = dpplan.PhasedPlan.from_dict(PHASED)
    assert (
        main(["train", "--plan", plan_file(PHASED), *data_flags, *_extra("train"), "--json"]) == 0
    )
    run_id = json.loads(capsys.readouterr().out)["id"]
    assert main(["report", "--run", str(run_id), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    jsonschema.validate(data, report_schema())
    report = report_from_dict(data)
    assert report.epsilon == pytest.approx(dpplan.compare(plan).headline_epsilon, rel=1e-9)
    # The phased plan's report (no run section yet: the report model has none for phases).
    assert report.kind == "phased" and report.run is None
    assert report.title == f"DP-SGD privacy report of run {run_id}"
    assert load_run_report(store, run_id) is None
    assert json.loads(to_json(report)) == data
    assert f"run {run_id}" in to_markdown(report) and "<html" in to_html(report).lower()


def test_report_of_a_diverged_phased_run_accounts_its_steps(store, data_flags, plan_file, capsys):
    from dpplan.report import build_report

    plan = dpplan.PhasedPlan.from_dict(PHASED)
    assert (
        main(["train", "--plan", plan_file(PHASED), *data_flags, *_extra("train"), "--json"]) == 0
    )
    run = store.get_run(json.loads(capsys.readouterr().out)["id"])
    diverged = dataclasses.replace(
        run, records=run.records[:1], status="diverged", diverged_epoch=2
    )
    report = build_report(plan, run=diverged, created_at="2026-01-01T00:00:00+00:00")
    cut = truncated_phased(plan, 15)
    assert report.epsilon == pytest.approx(dpplan.compare(cut).headline_epsilon, rel=1e-9)
    assert report.epsilon == pytest.approx(run_epsilon(diverged)[0], rel=1e-6)
    assert report.epsilon < dpplan.compare(plan).headline_epsilon


def test_a_target_below_the_first_phased_epoch_trains_nothing(store, data_flags, plan_file, capsys):
    plan = dpplan.PhasedPlan.from_dict(PHASED)
    first = min(plan_epoch_epsilons(plan)[0].values())
    args = ["train", "--plan", plan_file(PHASED), *data_flags, *_extra("train")]
    assert main([*args, "--target-epsilon", f"{first / 2!r}"]) == 3
    err = capsys.readouterr().err
    assert "nothing was trained" in err and "every phase's scaled by one factor" in err
