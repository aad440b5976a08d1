"""The CLI's error types (issue 19): each type maps to its exit code and is named in --json.

A missing run or sweep is a ``NotFoundError``, a refused state change a
``StateConflictError``, flags that do not go together a ``UsageError``, and a missing optional
dependency a ``MissingDependencyError`` naming the package and dpplan's extra; all exit 2.
"""

from __future__ import annotations

import json
import sys

import pytest

import dpplan
from dpplan.cli import main
from dpplan.plan import TrainingPlan
from dpplan.store import EpochRecord, RunStore

PLAN = TrainingPlan(dataset_size=1000, batch_size=10, noise_multiplier=1.0, epochs=2, delta=1e-5)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DPPLAN_HOME", str(tmp_path))
    return tmp_path


def _error(argv, capsys) -> tuple[int, dict]:
    capsys.readouterr()
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)["error"]


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["runs", "show", "7"], "run_id"),
        (["runs", "stop", "7"], "run_id"),
        (["runs", "delete", "7"], "run_id"),
        (["frontier", "7"], "sweep_id"),
    ],
)
def test_a_missing_run_or_sweep_is_not_found_exit_2(home, capsys, argv, field):
    code, error = _error(argv, capsys)
    assert code == 2
    assert error["type"] == "NotFoundError" and error["field"] == field and error["value"] == 7


def test_not_found_without_json_says_so_on_stderr(home, capsys):
    assert main(["runs", "show", "7"]) == 2
    assert "run_id=7 is invalid: must be the id of a stored run" in capsys.readouterr().err
    assert main(["report", "--sweep", "7"]) == 2
    assert "sweep_id=7 is invalid: must be the id of a stored sweep" in capsys.readouterr().err


def test_deleting_a_run_a_group_counts_is_a_state_conflict(home, capsys):
    store = RunStore(home)
    run_id = store.create_run(
        plan=PLAN,
        schedule={"kind": "constant", "lr": 0.1},
        options={},
        device="cpu",
        seed=0,
        private=True,
        versions={},
        group_id="g1",
    )
    record = EpochRecord(
        epoch=1,
        steps=100,
        epsilon=0.5,
        epsilon_rdp=0.6,
        epsilon_opacus=0.6,
        train_loss=1.0,
        validation_loss=1.0,
        validation_accuracy=0.5,
        test_accuracy=0.5,
        lr=0.1,
        seconds=1.0,
    )
    store.record_epoch(run_id, record)
    code, error = _error(["runs", "delete", str(run_id)], capsys)
    assert code == 2 and error["type"] == "StateConflictError" and "running" in error["message"]
    store.finish_run(run_id, status="finished")
    code, error = _error(["runs", "delete", str(run_id)], capsys)
    assert code == 2 and error["type"] == "StateConflictError" and "group g1" in error["message"]
    assert store.get_run(run_id).status == "finished"  # kept


def test_flags_that_do_not_go_together_are_a_usage_error(home, capsys):
    grid = ["--epsilons", "2", "--batch-sizes", "256", "--epochs", "1", "--seeds", "0"]
    code, error = _error(["sweep", "--local", "--num-cpus", "2", *grid], capsys)
    assert code == 2 and error["type"] == "UsageError" and error["field"] == "num_cpus"
    assert main(["report", "--run", "1", "--tuning-runs", "3"]) == 2
    assert "tuning_runs=3 is invalid: must be omitted with --run" in capsys.readouterr().err
    code, error = _error(["runs", "--no-such-flag"], capsys)
    assert code == 2 and error["type"] == "UsageError" and "--no-such-flag" in error["message"]


@pytest.mark.parametrize(
    ("argv", "field", "expected"),
    [
        (["--sweep", "1", "--tuning-runs", "3"], "tuning_runs", "omitted with --sweep"),
        (["--sweep", "1", "--stored"], "stored", "omitted with --sweep"),
        (["--run", "1", "--epochs", "3"], "epochs", "omitted with --run"),
        (["--run", "1", "--stored", "--title", "T"], "title", "omitted with --stored"),
        (["--epochs", "3", "--stored"], "stored", "used with --run ID"),
    ],
)
def test_report_flags_its_mode_does_not_take_are_usage_errors(home, capsys, argv, field, expected):
    from dpplan.cli.parser import build_parser

    assert main(["report", *argv]) == 2  # (the report command has no --json)
    assert f"{field}=" in capsys.readouterr().err
    args = build_parser().parse_args(["report", *argv])
    with pytest.raises(dpplan.UsageError) as caught:
        args.handler(args, print)
    assert caught.value.field == field and caught.value.expected == expected


def test_an_unwritable_report_output_is_a_usage_error_not_a_plan_error(home, capsys):
    from dpplan.cli.parser import build_parser

    plan = ["--dataset-size", "1000", "--batch-size", "10", "--noise-multiplier", "1"]
    plan += ["--epochs", "1", "--delta", "1e-5"]
    argv = ["report", *plan, "--output", str(home / "no-such-folder" / "r.md")]
    assert main(argv) == 2
    assert "output=" in capsys.readouterr().err
    args = build_parser().parse_args(argv)
    with pytest.raises(dpplan.UsageError) as caught:
        args.handler(args, print)
    assert caught.value.field == "output"


def test_missing_ray_is_a_missing_dependency_naming_the_extra(home, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    argv = ["sweep", "--epsilons", "2", "--batch-sizes", "256", "--epochs", "1", "--seeds", "0"]
    code, error = _error(argv, capsys)
    assert code == 2 and error["type"] == "MissingDependencyError"
    assert error["package"] == "ray" and error["extra"] == "sweep"


def test_missing_streamlit_is_a_missing_dependency_naming_the_extra(home, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "streamlit", None)
    assert main(["app"]) == 2  # (the app command has no --json)
    error = capsys.readouterr().err
    assert "streamlit is not installed" in error and 'pip install -e ".[app]"' in error


def test_missing_opacus_is_a_missing_dependency_naming_the_extra(home, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "opacus", None)
    code, error = _error(["train", "--epochs", "1"], capsys)
    assert code == 2 and error["type"] == "MissingDependencyError"
    assert error["package"] == "opacus" and error["extra"] == "train"


def test_the_error_types_share_the_root_and_stay_catchable():
    assert issubclass(dpplan.NotFoundError, LookupError)
    assert issubclass(dpplan.StateConflictError, RuntimeError)
    assert issubclass(dpplan.UsageError, ValueError)
    assert issubclass(dpplan.MissingDependencyError, ImportError)
    for name in ("NotFoundError", "StateConflictError", "UsageError", "MissingDependencyError"):
        assert issubclass(getattr(dpplan, name), dpplan.DpplanError) and name in dpplan.__all__
    error = dpplan.MissingDependencyError("ray", extra="sweep")
    assert error.name == "ray" and "dpplan's 'sweep' extra" in str(error)


def test_missing_weasyprint_is_a_missing_dependency_naming_the_extra(home, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "weasyprint", None)
    plan = ["--dataset-size", "1000", "--batch-size", "10", "--noise-multiplier", "1"]
    plan += ["--epochs", "1", "--delta", "1e-5"]
    argv = ["report", *plan, "--format", "pdf", "--output", str(home / "r.pdf")]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "weasyprint is not installed" in error and "dpplan[pdf]" in error
    with pytest.raises(dpplan.MissingDependencyError) as info:
        from dpplan.report import build_report, to_pdf

        to_pdf(build_report(PLAN))
    assert (info.value.package, info.value.extra) == ("weasyprint", "pdf")
