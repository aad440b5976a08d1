"""`dpplan report`: plan and run reports, the regenerating command, errors, stored reports."""

from __future__ import annotations

import json
import shlex

import jsonschema
import pytest
from report_helpers import PLAN, stored_run

import dpplan
from dpplan.cli import main
from dpplan.report import (
    build_run_report,
    load_run_report,
    report_from_dict,
    report_schema,
    to_markdown,
)

PLAN_FLAGS = [
    "--dataset-size",
    "60000",
    "--batch-size",
    "256",
    "--noise-multiplier",
    "1.1",
    "--epochs",
    "3",
    "--delta",
    "1e-5",
]


@pytest.fixture(autouse=True)
def frozen_git(monkeypatch):
    """Pin the git state for the length of a test: other engineers commit to this checkout,
    and a commit landing between a report and its regeneration would (rightly) change it."""
    from dpplan.report import build

    state = build.git_state()
    monkeypatch.setattr(build, "git_state", lambda: state)
    return state


def _without_time(data: dict) -> dict:
    data = json.loads(json.dumps(data))
    data["reproducibility"].pop("created_at")
    return data


def _regenerate(command: str, capsys) -> dict:
    words = shlex.split(command)
    assert words[:2] == ["dpplan", "report"]
    capsys.readouterr()
    assert main(words[1:]) == 0
    return json.loads(capsys.readouterr().out)


def test_plan_report_to_file_and_regenerate(tmp_path, capsys):
    output = tmp_path / "report.json"
    title, notes = 'It\'s a "plan" <b>', "line 1\nline 2 with 'quotes' and $HOME"
    code = main(
        [
            "report",
            *PLAN_FLAGS,
            "--format",
            "json",
            "--output",
            str(output),
            "--title",
            title,
            "--notes",
            notes,
        ]
    )
    assert code == 0
    assert f"wrote {output}" in capsys.readouterr().err
    data = json.loads(output.read_text(encoding="utf-8"))
    jsonschema.validate(data, report_schema())
    report = report_from_dict(data)
    assert report.epsilon == dpplan.compare(PLAN).headline_epsilon
    assert (report.title, report.notes) == (title, notes)
    # The command in the reproducibility section regenerates the same JSON.
    again = _regenerate(report.reproducibility.commands["json"], capsys)
    assert _without_time(again) == _without_time(data)


def test_plan_report_markdown_and_html_to_stdout(capsys):
    assert main(["report", *PLAN_FLAGS]) == 0
    text = capsys.readouterr().out
    assert text.startswith("# DP-SGD privacy report\n")
    assert main(["report", *PLAN_FLAGS, "--format", "html"]) == 0
    assert capsys.readouterr().out.startswith("<!DOCTYPE html>")


def test_tuning_runs_flag_regenerates(capsys):
    assert main(["report", *PLAN_FLAGS, "--tuning-runs", "3", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tuning"]["runs"] == 3
    assert "--tuning-runs 3" in data["reproducibility"]["commands"]["json"]
    again = _regenerate(data["reproducibility"]["commands"]["json"], capsys)
    assert _without_time(again) == _without_time(data)


def test_run_report_is_stored_and_regenerates(store, capsys):
    plan = dpplan.TrainingPlan(
        dataset_size=1000, batch_size=50, noise_multiplier=1.2, epochs=2, delta=1e-4
    )
    run_id = stored_run(store, plan)
    assert main(["report", "--run", str(run_id), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    jsonschema.validate(data, report_schema())
    assert data["kind"] == "run" and data["run"]["id"] == run_id
    assert store.load_report(run_id) == data
    command = data["reproducibility"]["commands"]["json"]
    assert f"--run {run_id} --home {store.home.resolve()}" in command
    assert _without_time(_regenerate(command, capsys)) == _without_time(data)
    # --stored renders the stored report unchanged.
    stored = load_run_report(store, run_id)
    assert stored.run.id == run_id
    assert main(["report", "--run", str(run_id), "--stored", "--format", "md"]) == 0
    assert capsys.readouterr().out == to_markdown(stored).rstrip("\n") + "\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "--dataset-size", "60000"], "batch_size=None is invalid"),
        (
            ["report", *PLAN_FLAGS, "--run", "1"],
            "dataset_size='60000' is invalid: must be omitted with --run",
        ),
        (["report", *PLAN_FLAGS, "--stored"], "stored=True is invalid"),
        (["report", *PLAN_FLAGS, "--tuning-runs", "0"], "tuning_runs=0 is invalid"),
        (["report", *PLAN_FLAGS, "--title", " "], "title=' ' is invalid"),
        (["report", "--run", "1", "--home", "/nonexistent/dpplan"], "home='/nonexistent/dpplan'"),
        (["report", *PLAN_FLAGS, "--format", "docx"], "invalid choice: 'docx'"),
        (["report", *PLAN_FLAGS, "--format", "pdf"], "output=None is invalid"),
    ],
)
def test_errors_exit_2(argv, message, store, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_missing_run_and_missing_stored_report(store, capsys):
    assert main(["report", "--run", "7"]) == 2
    assert "run_id=7 is invalid" in capsys.readouterr().err
    plan = dpplan.TrainingPlan(
        dataset_size=1000, batch_size=50, noise_multiplier=1.2, epochs=1, delta=1e-4
    )
    run_id = stored_run(store, plan)
    assert main(["report", "--run", str(run_id), "--stored"]) == 2
    assert "a run with a stored report" in capsys.readouterr().err


def test_stored_report_of_an_older_version_must_be_rebuilt(store, capsys):
    plan = dpplan.TrainingPlan(
        dataset_size=1000, batch_size=50, noise_multiplier=1.2, epochs=1, delta=1e-4
    )
    run_id = stored_run(store, plan)
    store.save_report(run_id, {"schema": "dpplan-report", "schema_version": 1, "guarantee": {}})
    assert main(["report", "--run", str(run_id), "--stored"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "stored by an older dpplan (report schema 1)" in err
    assert f"rebuild it with 'dpplan report --run {run_id}'" in err
    assert main(["report", "--run", str(run_id), "--format", "json"]) == 0  # rebuilt
    assert load_run_report(store, run_id).schema_version == 2


def test_pdf_report(tmp_path, capsys):
    pytest.importorskip("weasyprint")
    output = tmp_path / "plan.pdf"
    assert main(["report", *PLAN_FLAGS, "--format", "pdf", "--output", str(output)]) == 0
    assert f"wrote {output} (pdf;" in capsys.readouterr().err
    data = output.read_bytes()
    assert data.startswith(b"%PDF") and data.rstrip().endswith(b"%%EOF") and len(data) > 30_000


def test_runs_listing_shows_one_labelled_epsilon_per_run(store, capsys):
    plan = dpplan.TrainingPlan(
        dataset_size=1000, batch_size=50, noise_multiplier=1.2, epochs=2, delta=1e-4
    )
    old = stored_run(store, plan)  # recorded only its own method (prv)
    new = stored_run(store, plan, every_method=True)
    assert main(["runs"]) == 0
    lines = {int(line.split()[0]): line for line in capsys.readouterr().out.splitlines()[2:]}
    report = build_run_report(store, new)
    assert f"{report.epsilon:.4f} ({report.method})" in lines[new]
    assert "(prv)" in lines[old]


def test_report_of_a_ledger_file_and_its_regenerating_command(tmp_path, capsys, monkeypatch):
    ledger = dpplan.Ledger(dataset_size=10_000, delta=1e-5)
    ledger.record(noise_multiplier=2.0, batch_size=100, steps=120, sampling="fixed_size")
    path = tmp_path / "ledger.json"
    path.write_text(json.dumps(ledger.to_dict()))
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--ledger", "ledger.json", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    jsonschema.validate(data, report_schema())
    report = report_from_dict(data)
    assert report.kind == "ledger" and report.epsilon == ledger.epsilon("rdp")
    assert report.ledger.neighbouring_relation == "replace_one"
    assert set(report.ledger.refused) == {"prv", "pld"}
    again = _regenerate(report.reproducibility.commands["json"], capsys)
    assert _without_time(again) == _without_time(data)
    assert main(["report", "--ledger", "ledger.json"]) == 0
    assert "replace one example" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "ledger='ledger.json' is invalid: must be a JSON file"),
        ('{"format": 1, "dataset_size": 0, "delta": 1e-5}', "dataset_size=0"),
        ('{"format": 1, "dataset_size": 10, "delta": 0.1, "colour": 1}', "colour=1"),
        ("[1, 2]", "ledger=[1, 2] is invalid"),
    ],
)
def test_a_bad_ledger_file_exits_2_naming_the_problem(
    tmp_path, capsys, monkeypatch, content, message
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ledger.json").write_text(content)
    assert main(["report", "--ledger", "ledger.json"]) == 2
    assert message in capsys.readouterr().err
    assert main(["report", "--ledger", "missing.json"]) == 2
    assert "ledger='missing.json'" in capsys.readouterr().err


def test_ledger_does_not_go_with_plan_flags(tmp_path, capsys):
    path = tmp_path / "ledger.json"
    path.write_text(json.dumps(dpplan.Ledger(dataset_size=100, delta=1e-3).to_dict()))
    assert main(["report", "--ledger", str(path), *PLAN_FLAGS]) == 2
    assert "dataset_size=" in capsys.readouterr().err


def test_report_of_a_phased_plan_file_has_the_phase_table(tmp_path, capsys, monkeypatch):
    plan = {
        "dataset_size": 10_000,
        "delta": 1e-5,
        "phases": [
            {"batch_size": 100, "noise_multiplier": 1.0, "epochs": 2},
            {"batch_size": 500, "noise_multiplier": 2.0, "epochs": 3, "steps": 45},
        ],
    }
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    assert main(["report", "--plan", "plan.json", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    report = report_from_dict(data)
    phased = dpplan.PhasedPlan.from_dict(plan)
    assert report.kind == "phased" and report.epsilon == dpplan.compare(phased).headline_epsilon
    assert [p.steps for p in report.phased.phases] == [200, 45]
    again = _regenerate(report.reproducibility.commands["json"], capsys)
    assert _without_time(again) == _without_time(data)
    assert main(["report", "--plan", "plan.json"]) == 0
    assert "| 2 | 500 | 2 | 3 | 45 | 0.05 |" in capsys.readouterr().out
    assert main(["report", "--plan", "plan.json", "--batch-size", "10"]) == 2
    assert "batch_size='10'" in capsys.readouterr().err
