"""The dpplan command line: output, JSON shape, exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import dpplan
from dpplan.cli import main

PLAN = ["--dataset-size", "60000", "--batch-size", "256", "--noise-multiplier", "1.1",
        "--epochs", "3", "--delta", "1e-5"]


def _flags(**changes: str) -> list[str]:
    argv = list(PLAN)
    for key, value in changes.items():
        flag = "--" + key.replace("_", "-")
        if flag in argv:
            index = argv.index(flag)
            if value is None:
                del argv[index:index + 2]
            else:
                argv[index + 1] = value
        elif value is not None:
            argv += [flag, value]
    return argv


def _plan() -> dpplan.TrainingPlan:
    return dpplan.TrainingPlan(dataset_size=60000, batch_size=256, noise_multiplier=1.1,
                               epochs=3, delta=1e-5)


def test_epsilon_plain_shows_plan_table_and_headline(capsys):
    assert main(["epsilon", *PLAN, "--method", "rdp"]) == 0
    out = capsys.readouterr().out
    assert "steps_per_epoch=235" in out and "total_steps=705" in out
    assert len([line for line in out.splitlines() if line.strip().startswith(("1 ", "2 ", "3 "))]) == 3
    assert f"{dpplan.epsilon(_plan(), method='rdp'):.4f}" in out
    assert "rdp upper bound" in out


def test_epsilon_json_single_method_matches_api(capsys):
    assert main(["epsilon", *PLAN, "--method", "rdp", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    plan = _plan()
    assert data["plan"] == plan.to_dict()
    assert data["method"] == "rdp"
    assert data["epsilon"] == dpplan.epsilon(plan, method="rdp")
    assert data["curve"]["epochs"] == [1, 2, 3]
    assert data["curve"]["epsilon"] == list(dpplan.epsilon_curve(plan, method="rdp").epsilons)
    assert dpplan.TrainingPlan.from_dict(data["plan"]) == plan


def test_epsilon_json_all_has_results_and_headline(capsys):
    assert main(["epsilon", *PLAN, "--json", "--method", "all"]) == 0
    data = json.loads(capsys.readouterr().out)
    methods = [entry["method"] for entry in data["results"]]
    assert methods == ["rdp", "prv", "pld"]
    best = min(data["results"], key=lambda entry: entry["epsilon"])
    assert data["headline"]["method"] == best["method"]
    assert data["epsilon"] == data["headline"]["epsilon"] == best["epsilon"]
    prv = data["results"][1]
    assert all(lo <= up for lo, up in zip(prv["curve"]["epsilon_lower"], prv["curve"]["epsilon"]))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"batch_size": "0"}, "batch_size=0"),
        ({"batch_size": "70000"}, "batch_size=70000"),
        ({"noise_multiplier": "nan"}, "noise_multiplier=nan"),
        ({"noise_multiplier": "-1"}, "noise_multiplier=-1"),
        ({"epochs": "2.5"}, "epochs=2.5"),
        ({"delta": "1"}, "delta=1"),
        ({"delta": "abc"}, "delta='abc'"),
        ({"dataset_size": None}, "dataset_size=None"),
        ({"max_grad_norm": "inf"}, "max_grad_norm=inf"),
    ],
)
def test_invalid_input_exits_2_with_field_on_stderr(changes, field, capsys):
    assert main(["epsilon", *_flags(**changes), "--method", "rdp"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ")
    assert field in captured.err
    assert "Traceback" not in captured.err and captured.out == ""


def test_invalid_input_json_error_object_on_stdout(capsys):
    assert main(["epsilon", *_flags(batch_size="0"), "--json"]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["field"] == "batch_size" and error["value"] == 0
    assert "batch_size=0" in error["message"]


def test_usage_errors_exit_2(capsys):
    assert main(["epsilon", *PLAN, "--method", "nope"]) == 2
    assert "error: " in capsys.readouterr().err
    assert main(["frobnicate"]) == 2
    assert main([]) == 2


def test_solve_noise_multiplier_json(capsys):
    argv = ["solve", "noise-multiplier", "--target-epsilon", "2", *_flags(noise_multiplier=None),
            "--method", "rdp", "--json"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    solved = dpplan.TrainingPlan.from_dict(data["plan"])
    expected = dpplan.solve_noise_multiplier(_plan(), target_epsilon=2.0, method="rdp")
    assert solved == expected
    assert data["epsilon"] == dpplan.epsilon(solved, method="rdp") <= 2.0


def test_solve_epochs_and_batch_size_plain(capsys):
    assert main(["solve", "epochs", "--target-epsilon", "2", *_flags(epochs=None),
                 "--method", "rdp"]) == 0
    assert "solved: epochs = " in capsys.readouterr().out
    assert main(["solve", "batch-size", "--target-epsilon", "2", *_flags(batch_size=None),
                 "--method", "rdp"]) == 0
    assert "solved: batch_size = " in capsys.readouterr().out


def test_infeasible_target_exits_3(capsys):
    argv = ["solve", "epochs", "--target-epsilon", "0.05", *_flags(epochs=None), "--method", "rdp"]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert "one epoch already costs" in err and "Raise noise_multiplier" in err
    assert main([*argv, "--json"]) == 3
    assert json.loads(capsys.readouterr().out)["error"]["type"] == "InfeasibleTargetError"


def test_bad_target_epsilon_exits_2(capsys):
    argv = ["solve", "epochs", "--target-epsilon", "nan", *_flags(epochs=None), "--method", "rdp"]
    assert main(argv) == 2
    assert "target_epsilon=nan" in capsys.readouterr().err


def test_accounting_failure_exits_1_with_suggestion(capsys):
    # σ = 0.1 over 940 steps needs a PRV grid far beyond the limit: refused with advice.
    argv = ["epsilon", *_flags(noise_multiplier="0.1", epochs="4"), "--method", "prv"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: prv accountant") and "method='rdp'" in err


def test_delta_warning_on_stderr(capsys):
    assert main(["epsilon", *_flags(dataset_size="1000", batch_size="10", delta="0.01"),
                 "--method", "rdp"]) == 0
    assert "warning: delta=0.01 >= 1/dataset_size" in capsys.readouterr().err


def test_console_script_runs_as_a_process():
    result = subprocess.run(
        [sys.executable, "-m", "dpplan.cli", "epsilon", *PLAN, "--method", "rdp", "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["method"] == "rdp"


def test_app_rejects_a_bad_port(capsys):
    assert main(["app", "--port", "0"]) == 2
    assert "port=0" in capsys.readouterr().err


def test_app_command_serves_the_planner(tmp_path):
    pytest.importorskip("streamlit")
    import socket
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(__import__("os").environ, DPPLAN_HOME=str(tmp_path))
    process = subprocess.Popen(
        [sys.executable, "-m", "dpplan.cli", "app", "--headless", "--port", str(port),
         "--address", "127.0.0.1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                            timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert process.poll() is None, process.stderr.read().decode()
                time.sleep(0.25)
        else:
            pytest.fail("dpplan app did not serve within 90 s")
    finally:
        process.terminate()
        process.wait(timeout=20)
