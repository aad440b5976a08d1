"""The SQLite run store: round trips, WAL, interrupted detection, deletion."""

from __future__ import annotations

import json
import math
import pickle
import sqlite3
import subprocess
import sys

import pytest

import dpplan
from dpplan.errors import NotFoundError, PlanError, StateConflictError
from dpplan.run_policy import delete_run, run_epsilon
from dpplan.store import EpochRecord, OptionsRecord, RunStore, ScheduleRecord, default_home

PLAN = dpplan.TrainingPlan(
    dataset_size=1000, batch_size=10, noise_multiplier=1.0, epochs=3, delta=1e-4
)


def _record(epoch: int, **changes) -> EpochRecord:
    values = {
        "epoch": epoch,
        "steps": 100 * epoch,
        "epsilon": 0.5 * epoch,
        "epsilon_rdp": 0.6 * epoch,
        "epsilon_opacus": 0.6 * epoch,
        "train_loss": 1.0 / epoch,
        "validation_loss": 1.1,
        "validation_accuracy": 0.8,
        "test_accuracy": 0.79,
        "lr": 0.1,
        "seconds": 1.5,
    }
    values.update(changes)
    return EpochRecord(**values)


def _create(store: RunStore, **changes) -> int:
    values = {
        "plan": PLAN,
        "schedule": {"kind": "constant", "lr": 0.1},
        "options": {"seed": 0},
        "device": "cpu",
        "seed": 0,
        "private": True,
        "versions": {"dpplan": "0.1.0"},
    }
    values.update(changes)
    return store.create_run(**values)


def test_round_trip_and_wal(tmp_path):
    store = RunStore(tmp_path)
    run_id = _create(store)
    store.record_epoch(run_id, _record(1))
    store.record_epoch(run_id, _record(2), ("a warning",))
    run = store.get_run(run_id)
    assert run.plan == PLAN and run.status == "running"
    assert run.records == (_record(1), _record(2)) and run.warnings == ("a warning",)
    store.finish_run(run_id, status="finished")
    assert store.get_run(run_id).status == "finished"
    mode = sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_infinite_epsilon_round_trips(tmp_path):
    store = RunStore(tmp_path)
    run_id = _create(store, private=False)
    inf = math.inf
    store.record_epoch(run_id, _record(1, epsilon=inf, epsilon_rdp=inf, epsilon_opacus=inf))
    record = store.get_run(run_id).records[0]
    assert math.isinf(record.epsilon) and record.to_dict()["epsilon"] == "inf"


def test_dead_process_shows_as_interrupted(tmp_path):
    store = RunStore(tmp_path)
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "import sys, dpplan; from dpplan.store import RunStore; s = RunStore(sys.argv[1]);"
                "p = dpplan.TrainingPlan(dataset_size=100, batch_size=10, noise_multiplier=1.0,"
                " epochs=1, delta=1e-3);"
                "s.create_run(plan=p, schedule={'kind': 'constant', 'lr': 0.1}, options={}, "
                "device='cpu', seed=0, private=True, versions={})"
            ),
            str(tmp_path),
        ],
        check=True,
        timeout=60,
    )
    assert child.returncode == 0
    [run] = store.list_runs()
    assert run.status == "interrupted"
    assert store.get_run(_create(store)).status == "running"  # this process is alive


def test_stop_request_and_delete(tmp_path):
    store = RunStore(tmp_path)
    run_id = _create(store)
    assert not store.stop_requested(run_id)
    store.request_stop(run_id)
    assert store.stop_requested(run_id)
    with pytest.raises(StateConflictError, match="a run that is not running or queued"):
        store.delete_run(run_id)
    store.finish_run(run_id, status="stopped")
    store.checkpoint_path(run_id).parent.mkdir(parents=True, exist_ok=True)
    store.checkpoint_path(run_id).write_bytes(b"x")
    store.delete_run(run_id)
    assert store.list_runs() == [] and not store.checkpoint_path(run_id).exists()
    with pytest.raises(NotFoundError, match=f"run_id={run_id}"):
        store.get_run(run_id)


def test_bad_status_refused(tmp_path):
    store = RunStore(tmp_path)
    with pytest.raises(PlanError, match="status='done'"):
        store.finish_run(_create(store), status="done")


def test_reports_are_stored_with_the_run(tmp_path):
    store = RunStore(tmp_path)
    run_id = _create(store)
    assert store.load_report(run_id) is None
    store.save_report(run_id, {"epsilon": 1.0})
    assert store.load_report(run_id) == {"epsilon": 1.0}


def test_home_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("DPPLAN_HOME", str(tmp_path / "h"))
    assert default_home() == tmp_path / "h"
    monkeypatch.delenv("DPPLAN_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "x"))
    assert default_home() == tmp_path / "x" / "dpplan"


def test_runs_of_a_comparison_group_cannot_be_deleted(tmp_path):
    store = RunStore(tmp_path)
    run_id = _create(store, group_id="g1")
    store.record_epoch(run_id, _record(1))
    store.finish_run(run_id, status="finished")
    with pytest.raises(StateConflictError, match="belongs to group g1"):
        delete_run(store, run_id)  # the policy lives above the store
    store.delete_run(run_id)  # the store itself holds no privacy policy
    assert store.list_runs() == []


@pytest.mark.parametrize("bad", [1.7, 1.0000001, "1", True, 0, -1, 10**400, float("nan")])
def test_run_ids_are_whole_numbers_in_the_python_api(tmp_path, bad):
    # int(1.7) == 1 once made `runs delete 1.7` delete run 1; 10**400 overflowed SQLite.
    store = RunStore(tmp_path)
    run_id = _create(store)
    store.finish_run(run_id, status="finished")
    for call in (store.get_run, store.delete_run, store.request_stop, store.requeue):
        with pytest.raises(PlanError) as info:
            call(bad)
        assert info.value.field == "run_id"
    assert store.get_run(run_id).status == "finished"  # nothing was touched
    assert store.get_run(1.0).id == run_id  # an integral float is the same id


def test_reading_a_store_that_does_not_exist_creates_nothing(tmp_path):
    home = tmp_path / "not" / "yet"
    store = RunStore(home)
    assert store.list_runs() == [] and store.list_sweeps() == []
    with pytest.raises(NotFoundError, match="run_id"):
        store.get_run(1)
    with pytest.raises(NotFoundError, match="sweep_id"):
        store.get_sweep(2)
    assert not (tmp_path / "not").exists()  # no folder, no database
    run_id = _create(store)  # the first write creates both
    assert store.path.is_file() and RunStore(home).get_run(run_id).status == "running"


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["runs"], 0),
        (["runs", "show", "3"], 2),
        (["frontier", "2"], 2),
        (["sweeps"], 0),
        (["sweep", "--local", "--resume", "2"], 2),
        (["report", "--run", "1"], 2),
    ],
)
def test_read_only_commands_and_failed_lookups_create_no_store(argv, code, tmp_path, monkeypatch):
    from dpplan.cli import main

    monkeypatch.delenv("DPPLAN_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_home() == tmp_path / ".local" / "share" / "dpplan"
    assert main(argv) == code
    assert not (tmp_path / ".local").exists()


def test_a_store_from_before_diverged_runs_gets_the_column_and_keeps_its_runs(tmp_path):
    # Issue 17 item 1: a diverged run records the epoch it diverged in (its steps count).
    store = RunStore(tmp_path)
    old = _create(store)
    store.record_epoch(old, _record(1))
    store.finish_run(old, status="finished")
    with sqlite3.connect(store.path) as connection:
        connection.execute("ALTER TABLE runs DROP COLUMN diverged_epoch")  # the old layout,
        connection.execute("DROP TABLE schema_version")  # from before versioned migrations
    store = RunStore(tmp_path)  # adds the column
    assert store.get_run(old).diverged_epoch is None and store.get_run(old).epochs_spent == 1
    run_id = _create(store)
    store.record_epoch(run_id, _record(1))
    store.finish_run(run_id, status="diverged", stop_reason="diverged", diverged_epoch=2)
    run = store.get_run(run_id)
    assert run.status == "diverged" and run.diverged_epoch == 2 and run.epochs_spent == 2
    assert run.to_dict()["diverged_epoch"] == 2
    # Its ε is the plan's smallest bound after epoch 2, not after the recorded epoch 1.
    from dpplan.accounting import epoch_epsilons

    after_two = epoch_epsilons(PLAN)[1]
    method = min(after_two, key=after_two.get)
    assert run_epsilon(run) == (after_two[method], method)


# --- typed schedule and options (issue 19) ----------------------------------------------


@pytest.mark.parametrize(
    ("stored", "rate"),
    [
        ({"kind": "one_cycle", "max_lr": 2.0, "pct_start": 0.3}, 2.0),
        ({"kind": "plateau", "lr": 0.1, "factor": 0.5}, 0.1),
        ({"kind": "constant", "lr": 0.05, "momentum": 0.0}, 0.05),
    ],
)
def test_a_stored_schedule_reads_back_typed_and_stores_the_same_json(tmp_path, stored, rate):
    store = RunStore(tmp_path)
    run_id = store.create_run(
        plan=PLAN,
        schedule=stored,
        options={"engine": "fused", "seed": 1},
        device="cpu",
        seed=1,
        private=True,
        versions={},
    )
    run = store.get_run(run_id)
    assert isinstance(run.schedule, ScheduleRecord) and isinstance(run.options, OptionsRecord)
    assert run.schedule.learning_rate == rate and run.schedule.kind == stored["kind"]
    assert run.schedule == stored and run.options.engine == "fused" and run.method == "prv"
    with sqlite3.connect(tmp_path / "runs.sqlite3") as connection:
        [text] = connection.execute("SELECT schedule FROM runs WHERE id=?", (run_id,)).fetchone()
    assert json.loads(text) == stored  # the stored format is unchanged
    assert json.loads(json.dumps(run.to_dict()))["schedule"] == stored


def test_schedule_and_options_records_are_read_only_and_survive_pickle():
    record = ScheduleRecord({"kind": "plateau", "lr": 0.1})
    for change in (
        lambda: record.__setitem__("lr", 1.0),
        lambda: record.update(lr=1.0),
        lambda: record.pop("lr"),
        lambda: record.clear(),
    ):
        with pytest.raises(TypeError, match="read-only"):
            change()
    assert record == {"kind": "plateau", "lr": 0.1}
    copy = pickle.loads(pickle.dumps(record))
    assert type(copy) is ScheduleRecord and copy == record
    assert OptionsRecord({}).engine == "opacus" and OptionsRecord({}).method == "prv"
