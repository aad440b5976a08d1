"""The dpplan command line: output, JSON shape, exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import dpplan
from dpplan.cli import main

PLAN = [
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


def _flags(**changes: str) -> list[str]:
    argv = list(PLAN)
    for key, value in changes.items():
        flag = "--" + key.replace("_", "-")
        if flag in argv:
            index = argv.index(flag)
            if value is None:
                del argv[index : index + 2]
            else:
                argv[index + 1] = value
        elif value is not None:
            argv += [flag, value]
    return argv


def _plan() -> dpplan.TrainingPlan:
    return dpplan.TrainingPlan(
        dataset_size=60000, batch_size=256, noise_multiplier=1.1, epochs=3, delta=1e-5
    )


def test_epsilon_plain_shows_plan_table_and_headline(capsys):
    assert main(["epsilon", *PLAN, "--method", "rdp"]) == 0
    out = capsys.readouterr().out
    assert "steps_per_epoch=235" in out and "total_steps=705" in out
    assert (
        len([line for line in out.splitlines() if line.strip().startswith(("1 ", "2 ", "3 "))]) == 3
    )
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
        ({"dataset_size": None}, "--dataset-size"),
        ({"noise_multiplier": "1e-320"}, "noise_multiplier=1e-320"),
        ({"noise_multiplier": "9" * 400}, "(400 characters)"),
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
    argv = [
        "solve",
        "noise-multiplier",
        "--target-epsilon",
        "2",
        *_flags(noise_multiplier=None),
        "--method",
        "rdp",
        "--json",
    ]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    solved = dpplan.TrainingPlan.from_dict(data["plan"])
    expected = dpplan.solve_noise_multiplier(_plan(), target_epsilon=2.0, method="rdp")
    assert solved == expected
    assert data["epsilon"] == dpplan.epsilon(solved, method="rdp") <= 2.0


def test_solve_epochs_and_batch_size_plain(capsys):
    assert (
        main(["solve", "epochs", "--target-epsilon", "2", *_flags(epochs=None), "--method", "rdp"])
        == 0
    )
    assert "solved: epochs = " in capsys.readouterr().out
    assert (
        main(
            [
                "solve",
                "batch-size",
                "--target-epsilon",
                "2",
                *_flags(batch_size=None),
                "--method",
                "rdp",
            ]
        )
        == 0
    )
    assert "solved: batch_size = " in capsys.readouterr().out


ISSUE_FLAGS = [
    "--dataset-size",
    "50000",
    "--batch-size",
    "256",
    "--epochs",
    "30",
    "--delta",
    "1e-5",
]


def test_solve_defaults_to_the_best_method_and_names_it(capsys):
    # The default was PRV alone: σ = 990.3 at target 0.01, where RDP certifies 110.2.
    argv = ["solve", "noise-multiplier", "--target-epsilon", "0.01", *ISSUE_FLAGS]
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    plan = dpplan.TrainingPlan.from_dict(data["plan"])
    assert data["requested_method"] == "best" and data["method"] == "rdp"
    assert plan.noise_multiplier < 200
    assert data["epsilon"] == dpplan.epsilon(plan, method="rdp") <= 0.01
    assert data["bounded_by"] == "target" and data["limit"] is None
    assert set(data["candidates"]) == {"rdp", "pld", "prv"}
    assert main([*argv, "--brief"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        f"solved: noise_multiplier = {plan.noise_multiplier:.6g} for target ε <= 0.01 "
        "(rdp, the most favourable of rdp, pld, prv)"
    )
    assert "bounded by the target" in out


def test_solve_with_method_forced_uses_it_and_warns_about_prv_margin(capsys):
    argv = ["solve", "noise-multiplier", "--target-epsilon", "0.05", *ISSUE_FLAGS]
    assert main([*argv, "--method", "prv", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["requested_method"] == data["method"] == "prv"
    assert any("eps_error=0.01" in warning for warning in data["warnings"])
    assert main([*argv, "--method", "prv", "--brief"]) == 0
    out = capsys.readouterr().out
    assert "target ε <= 0.05 (prv)" in out and "warning: prv adds a fixed error margin" in out


def test_solve_epochs_at_the_cap_says_the_cap_bounded_it(capsys):
    # Issue 17 item 11: 10,000 epochs at ε 4.73 against a target of 50, silently.
    argv = [
        "solve",
        "epochs",
        "--target-epsilon",
        "50",
        *_flags(epochs=None, dataset_size="1000", batch_size="1000", noise_multiplier="20"),
    ]
    assert main([*argv, "--brief"]) == 0
    out = capsys.readouterr().out
    assert "solved: epochs = 10000 " in out
    assert "bounded by the cap epochs=10000 (MAX_EPOCHS=10,000), not by the target" in out
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["bounded_by"], data["limit"], data["limit_name"]) == (
        "cap",
        10000,
        "MAX_EPOCHS=10,000",
    )
    assert data["epsilon"] < 50


def test_solve_batch_size_at_the_dataset_size_says_so(capsys):
    argv = ["solve", "batch-size", "--target-epsilon", "50", *_flags(batch_size=None), "--json"]
    assert main([*argv, "--method", "rdp"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["plan"]["batch_size"] == 60000
    assert (data["bounded_by"], data["limit"]) == ("cap", 60000)


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
    assert (
        main(
            [
                "epsilon",
                *_flags(dataset_size="1000", batch_size="10", delta="0.01"),
                "--method",
                "rdp",
            ]
        )
        == 0
    )
    assert "warning: delta=0.01 >= 1/dataset_size" in capsys.readouterr().err


def test_console_script_runs_as_a_process():
    result = subprocess.run(
        [sys.executable, "-m", "dpplan.cli", "epsilon", *PLAN, "--method", "rdp", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
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
        [
            sys.executable,
            "-m",
            "dpplan.cli",
            "app",
            "--headless",
            "--port",
            str(port),
            "--address",
            "127.0.0.1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/_stcore/health", timeout=2
                ) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert process.poll() is None, process.stderr.read().decode()
                time.sleep(0.25)
        else:
            pytest.fail("dpplan app did not serve within 90 s")
    finally:
        process.terminate()  # SIGTERM, as a service manager or `kill` would send
        process.wait(timeout=20)
    # Nothing is left serving: `dpplan app` became the server, so SIGTERM stopped it.
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)


def test_missing_plan_flags_are_named_together_and_marked_required_in_help(capsys):
    # A bare `dpplan epsilon` used to reveal one missing flag per try.
    assert main(["epsilon"]) == 2
    err = capsys.readouterr().err
    for flag in ("--dataset-size", "--batch-size", "--noise-multiplier", "--epochs", "--delta"):
        assert flag in err
    assert "--max-grad-norm" not in err
    with pytest.raises(SystemExit):
        main(["epsilon", "--help"])
    assert "plan (required)" in capsys.readouterr().out


def test_report_names_every_missing_plan_flag_at_once(capsys):
    assert main(["report", "--batch-size", "256"]) == 2
    err = capsys.readouterr().err
    assert "--dataset-size X, --noise-multiplier X, --epochs X, --delta X" in err


def test_solve_target_help_is_specific_and_omits_the_solved_flag(capsys):
    with pytest.raises(SystemExit):
        main(["solve", "noise-multiplier", "--help"])
    text = capsys.readouterr().out
    assert "smallest noise multiplier" in text
    assert "--noise-multiplier" not in text and "--dataset-size" in text


def test_train_help_shows_defaults_and_runs_help_describes_positionals(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "(default: one_cycle)" in text and "(default: prv)" in text
    assert "--accountant" not in text and "--method" in text
    with pytest.raises(SystemExit):
        main(["runs", "--help"])
    text = capsys.readouterr().out
    assert "delete    remove a run" in text and "list      every stored run" in text
    with pytest.raises(SystemExit):
        main(["runs", "stop", "--help"])
    text = capsys.readouterr().out
    assert "RUN_ID" in text and "--force" in text


def test_runs_flags_may_come_before_the_run_id(capsys, tmp_path, monkeypatch):
    # `runs stop --force 3` and `runs show --json 1` were usage errors (two optional
    # positionals); each action is its own sub-command now.
    monkeypatch.setenv("DPPLAN_HOME", str(tmp_path))
    assert main(["runs", "stop", "--force", "3"]) == 2
    assert "run_id=3 is invalid: must be the id of a stored run" in capsys.readouterr().err
    assert main(["runs", "show", "--json", "1"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["field"] == "run_id"
    assert main(["runs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["runs"] == []


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_version_and_help_do_not_import_the_accounting_libraries(flag):
    code = (
        "import sys\n"
        "from dpplan.cli import main\n"
        "try:\n"
        f"    main([{flag!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('dp_accounting', 'prv_accountant', 'scipy', 'torch')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    "argv",
    [
        ["runs", "delete", "1.7"],
        ["runs", "show", "1.9"],
        ["runs", "stop", "-1"],
        ["runs", "show", "0"],
        ["train", "--resume", "1.5"],
        ["train", "--resume", "1e30"],
        ["runs", "show", "9" * 400],
        ["report", "--run", "2.0"],
    ],
)
def test_run_ids_are_whole_numbers_everywhere(argv, capsys, tmp_path, monkeypatch):
    # `runs delete 1.7` deleted run 1; 400 digits and 1e30 overflowed (exit 1).
    monkeypatch.setenv("DPPLAN_HOME", str(tmp_path))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "is invalid: must be a run id, a whole number" in err
    assert "unexpected" not in err and len(err) < 400


def test_every_and_brief_shorten_the_epoch_table(capsys):
    plan = _flags(epochs="30")
    assert main(["epsilon", *plan, "--method", "rdp", "--every", "10"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [row[0] for row in rows if row and row[0].isdigit()] == ["10", "20", "30"]
    assert main(["epsilon", *plan, "--method", "rdp", "--brief"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("ε = ")
    assert main(["epsilon", *plan, "--method", "rdp", "--every", "0"]) == 2
    assert "every=0" in capsys.readouterr().err


def test_table_columns_fit_large_values(capsys):
    # ε in the thousands ran together ("2351.279e+06") in fixed-width columns.
    assert main(["epsilon", *_flags(noise_multiplier="0.05"), "--method", "rdp"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    table = [row for row in rows if row and row[0].isdigit()]
    assert [len(row) for row in table] == [3, 3, 3]
    assert all(float(row[2]) > 100 for row in table)


def test_the_train_plan_comes_from_the_flags_without_changing_them():
    from dpplan.cli.parser import build_parser
    from dpplan.cli.train_commands import _train_plan, run_options

    argv = ["train", "--batch-size", "64", "--noise-multiplier", "1.1", "--epochs", "2"]
    args = build_parser().parse_args([*argv, "--delta", "1e-5", "--subset", "1000"])
    before = dict(vars(args))
    plan = _train_plan(args, run_options(args))
    assert (plan.dataset_size, plan.batch_size, plan.epochs) == (1000, 64, 2)
    assert vars(args) == before  # no flag was filled in behind the caller's back


def test_plan_flags_and_ids_are_typed_when_parsed():
    from dpplan.cli.parser import build_parser

    parser = build_parser()
    args = parser.parse_args(["epsilon", *PLAN, "--every", "2"])
    assert isinstance(args.dataset_size, int) and isinstance(args.delta, float)
    assert args.every == 2
    assert parser.parse_args(["runs", "show", "7"]).run_id == 7
    assert parser.parse_args(["frontier", "3"]).sweep_id == 3
    assert parser.parse_args(["report", "--run", "5", "--tuning-runs", "4"]).tuning_runs == 4
    with pytest.raises(dpplan.PlanError) as caught:  # the flag's field, not argparse's usage line
        parser.parse_args(["epsilon", *PLAN, "--every", "two"])
    assert caught.value.field == "every"


@pytest.mark.parametrize("target", ["noise-multiplier", "epochs", "batch-size"])
def test_solve_refuses_the_solved_field_as_a_usage_error_naming_its_flag(capsys, target):
    # Every plan flag, the solved one too: the target has no such flag (nothing is ignored).
    code = main(["solve", target, "--target-epsilon", "2", *PLAN, "--method", "rdp"])
    assert code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --" + target in err
