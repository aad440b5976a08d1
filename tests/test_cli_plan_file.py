"""`--plan FILE` on `dpplan epsilon` and `dpplan solve` (issue 20 §1)."""

from __future__ import annotations

import json

import pytest

import dpplan
from dpplan.cli import main

PHASES = {
    "dataset_size": 10_000,
    "delta": 1e-5,
    "phases": [
        {"batch_size": 100, "noise_multiplier": 1.0, "epochs": 2},
        {"batch_size": 200, "noise_multiplier": 1.5, "epochs": 3, "steps": 120},
    ],
}


@pytest.fixture
def plan_file(tmp_path):
    def write(data) -> str:
        path = tmp_path / "plan.json"
        path.write_text(json.dumps(data))
        return str(path)

    return write


def test_epsilon_of_a_phased_plan_file(plan_file, capsys):
    assert main(["epsilon", "--plan", plan_file(PHASES), "--method", "rdp", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    phased = dpplan.PhasedPlan.from_dict(PHASES)
    assert data["epsilon"] == dpplan.epsilon(phased, method="rdp")
    assert data["plan"]["phases"][1]["steps"] == 120
    assert data["curve"]["epochs"] == [1, 2, 3, 4, 5]  # 100, 200, 250, 300, 320 steps
    assert main(["epsilon", "--plan", plan_file(PHASES), "--method", "rdp"]) == 0
    out = capsys.readouterr().out
    assert "2 phases" in out and "phase 2: batch_size=200" in out and "320" in out


def test_a_single_phase_file_is_an_ordinary_plan(plan_file, capsys):
    single = {**PHASES, "phases": PHASES["phases"][:1]}
    assert main(["epsilon", "--plan", plan_file(single), "--method", "pld", "--json"]) == 0
    from_file = json.loads(capsys.readouterr().out)
    flags = [
        "--dataset-size",
        "10000",
        "--batch-size",
        "100",
        "--noise-multiplier",
        "1",
        "--epochs",
        "2",
        "--delta",
        "1e-5",
    ]
    assert main(["epsilon", *flags, "--method", "pld", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == from_file


def test_solve_noise_multiplier_of_a_phased_plan_file(plan_file, capsys):
    path = plan_file(PHASES)
    args = ["solve", "noise-multiplier", "--plan", path, "--target-epsilon", "1.5"]
    assert main([*args, "--method", "rdp", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    solved = dpplan.PhasedPlan.from_dict(data["plan"])
    assert dpplan.epsilon(solved, method="rdp") <= 1.5
    ratio = [p.noise_multiplier for p in solved.phases]
    assert ratio[1] / ratio[0] == pytest.approx(1.5)
    assert main([*args, "--method", "rdp", "--brief"]) == 0
    assert "noise factor (every phase)" in capsys.readouterr().out


def test_plan_file_errors_name_the_field(plan_file, capsys):
    bad = {**PHASES, "phases": [PHASES["phases"][0], {**PHASES["phases"][1], "steps": 10_000}]}
    assert main(["epsilon", "--plan", plan_file(bad), "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["field"] == "phase_steps"
    assert main(["epsilon", "--plan", plan_file(PHASES), "--epochs", "3"]) == 2
    assert "epochs=3 is invalid: must be absent when --plan FILE is given" in (
        capsys.readouterr().err
    )
    assert main(["solve", "batch-size", "--plan", plan_file(PHASES), "--target-epsilon", "1"]) == 2
    assert "single-phase plan" in capsys.readouterr().err
    assert main(["epsilon", "--plan", "/nonexistent/plan.json"]) == 2
    assert "readable JSON file" in capsys.readouterr().err
