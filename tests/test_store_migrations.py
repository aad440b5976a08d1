"""Versioned migrations of the run store (issue 19): older stores open, migrate and read back.

``fixtures/store_v0/runs.sqlite3`` was written by dpplan before versioned migrations
(``fixtures/make_store_v0.py``, commit 38737fa): a finished run with two epochs, a diverged
run of a comparison group, and a finished sweep with a finished and a failed trial.
"""

from __future__ import annotations

import math
import shutil
import sqlite3
from pathlib import Path

import pytest

from dpplan.errors import PlanError, StoreError
from dpplan.plan import TrainingPlan
from dpplan.run_policy import run_epsilon
from dpplan.store import (
    LEASE_SECONDS,
    SCHEMA_VERSION,
    EpochRecord,
    Liveness,
    OptionsRecord,
    RunStore,
    ScheduleRecord,
    schema,
)
from dpplan.store.liveness import Heartbeats

FIXTURE = Path(__file__).parent / "fixtures" / "store_v0" / "runs.sqlite3"
_EPOCH = EpochRecord(
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


def _copy(tmp_path: Path) -> Path:
    shutil.copy(FIXTURE, tmp_path / "runs.sqlite3")
    return tmp_path


def _version(home: Path) -> int:
    with sqlite3.connect(home / "runs.sqlite3") as connection:
        return schema.schema_version(connection)


def test_the_fixture_is_from_before_versions():
    with sqlite3.connect(f"{FIXTURE.as_uri()}?mode=ro", uri=True) as connection:
        assert schema.schema_version(connection) == 0


def test_todays_store_opens_migrates_and_reads_back_the_same_records(tmp_path):
    home = _copy(tmp_path)
    store = RunStore(home)
    assert _version(home) == SCHEMA_VERSION
    runs = {run.id: run for run in store.list_runs()}
    assert sorted(runs) == [1, 2, 3]

    finished = runs[1]
    assert finished.status == "finished" and finished.group_id is None
    assert finished.schedule == {"kind": "one_cycle", "max_lr": 0.5}
    assert isinstance(finished.schedule, ScheduleRecord) and finished.schedule.learning_rate == 0.5
    assert isinstance(finished.options, OptionsRecord) and finished.options.engine == "opacus"
    assert finished.plan.batch_size == 256 and finished.plan.noise_multiplier == 1.1
    assert [r.epoch for r in finished.records] == [1, 2]
    assert finished.records[1].steps == 470 and finished.records[1].test_accuracy == 0.91
    assert finished.records[1].epsilons == {"rdp": 2.4, "prv": 2.0, "pld": 2.1}
    assert run_epsilon(finished) == (2.0, "prv")
    assert store.load_report(1) == {"title": "fixture report"}

    diverged = runs[2]
    assert diverged.status == "diverged" and diverged.diverged_epoch == 2
    assert diverged.group_id == "compare-1" and diverged.warnings == ("loss grew",)
    assert diverged.epochs_spent == 2 and math.isfinite(run_epsilon(diverged)[0])

    [sweep] = store.list_sweeps()
    assert sweep.status == "finished" and sweep.tuning == {"trials": 2}
    assert sweep.spec == {"targets": [1.0], "lrs": [0.1]} and sweep.draws == {"seed": 9}
    assert [(t.key, t.status, t.run_id, t.error) for t in sweep.trials] == [
        ("t1", "finished", 3, None),
        ("t2", "failed", None, "boom"),
    ]
    assert runs[3].group_id == sweep.group_id

    # The migrated store takes new writes.
    new = store.create_run(
        plan=finished.plan,
        schedule=finished.schedule,
        options=finished.options,
        device="cpu",
        seed=4,
        private=True,
        versions={},
    )
    store.finish_run(new, status="stopped")
    assert store.get_run(new).status == "stopped"
    assert RunStore(home).get_run(1) == finished  # opening again changes nothing


def test_a_read_only_old_store_is_read_without_migrating(tmp_path):
    home = _copy(tmp_path)
    (home / "runs.sqlite3").chmod(0o444)
    home.chmod(0o555)
    try:
        store = RunStore(home)
        if not store.read_only:
            pytest.skip("running as a user who can write anyway (root)")
        assert [run.id for run in store.list_runs()] == [3, 2, 1]
        assert _version(home) == 0
    finally:
        home.chmod(0o755)


def test_a_first_release_store_gets_every_migration(tmp_path):
    # The oldest layout: runs without the lease columns or diverged_epoch, epochs without
    # per-method ε, no sweep tables.
    with sqlite3.connect(tmp_path / "runs.sqlite3") as connection:
        connection.executescript(
            """
            CREATE TABLE plans (id TEXT PRIMARY KEY, plan TEXT NOT NULL);
            CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, plan_id TEXT NOT NULL,
                status TEXT NOT NULL, schedule TEXT NOT NULL, options TEXT NOT NULL,
                device TEXT NOT NULL, seed INTEGER NOT NULL, versions TEXT NOT NULL,
                private INTEGER NOT NULL, group_id TEXT, pid INTEGER, host TEXT, error TEXT,
                stop_reason TEXT, warnings TEXT NOT NULL DEFAULT '[]', report TEXT,
                created_at REAL NOT NULL, updated_at REAL NOT NULL);
            CREATE TABLE epochs (run_id INTEGER NOT NULL, epoch INTEGER NOT NULL,
                steps INTEGER NOT NULL, epsilon REAL, epsilon_rdp REAL, epsilon_opacus REAL,
                train_loss REAL, validation_loss REAL, validation_accuracy REAL,
                test_accuracy REAL, lr REAL, seconds REAL, PRIMARY KEY (run_id, epoch));
            INSERT INTO plans VALUES ('p', '{"dataset_size": 1000, "batch_size": 10,
                "noise_multiplier": 1.0, "epochs": 2, "delta": 1e-05}');
            INSERT INTO runs (plan_id, status, schedule, options, device, seed, versions,
                private, created_at, updated_at) VALUES ('p', 'finished',
                '{"kind": "constant", "lr": 0.1}', '{}', 'cpu', 0, '{}', 1, 1.0, 2.0);
            INSERT INTO epochs VALUES (1, 1, 100, 0.5, 0.6, 0.6, 1.0, 1.0, 0.5, 0.5, 0.1, 1.0);
            """
        )
    store = RunStore(tmp_path)
    assert _version(tmp_path) == SCHEMA_VERSION
    [run] = store.list_runs()
    assert run.status == "finished" and run.diverged_epoch is None
    assert run.records[0].epsilons == {} and run_epsilon(run) == (0.5, "prv")
    assert store.list_sweeps() == []


def test_a_store_from_a_newer_dpplan_is_refused(tmp_path):
    home = _copy(tmp_path)
    RunStore(home)
    with sqlite3.connect(home / "runs.sqlite3") as connection:
        connection.execute("UPDATE schema_version SET version=?", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match="newer dpplan"):
        RunStore(home)


class _FakeLiveness(Liveness):
    """A host name and a clock the test sets; heartbeat threads that never beat."""

    def __init__(self) -> None:
        super().__init__(heartbeats=Heartbeats(interval=3600.0))
        self.name, self.clock = "host-a", 1000.0

    def host(self) -> str:
        return self.name

    def now(self) -> float:
        return self.clock


def test_liveness_can_be_injected(tmp_path):
    live = _FakeLiveness()
    store = RunStore(tmp_path, liveness=live)
    plan = TrainingPlan(
        dataset_size=1000, batch_size=10, noise_multiplier=1.0, epochs=2, delta=1e-5
    )
    run_id = store.create_run(
        plan=plan,
        schedule={"kind": "constant", "lr": 0.1},
        options={},
        device="cpu",
        seed=0,
        private=True,
        versions={},
    )
    assert store.get_run(run_id).status == "running"
    live.name = "host-b"  # seen from another host: the lease lives while its heartbeat is fresh
    live.clock += LEASE_SECONDS
    assert store.get_run(run_id).status == "running"
    live.clock += 1.0
    assert store.get_run(run_id).status == "interrupted"
    with pytest.raises(StoreError, match="no longer held by this process"):
        store.record_epoch(run_id, _EPOCH)
    store.claim(run_id)  # a stale lease is taken over
    assert store.get_run(run_id).status == "running"
    store.finish_run(run_id, status="stopped")
    assert store.get_run(run_id).status == "stopped"


def _migrated(version: int, table: str, column: str, home: Path) -> RunStore:
    """Open a copy of ``fixtures/store_vVERSION`` in ``home`` after checking that the
    fixture is at ``version`` and lacks ``table.column``; the store is migrated to today's."""
    fixture = Path(__file__).parent / "fixtures" / f"store_v{version}" / "runs.sqlite3"
    with sqlite3.connect(f"{fixture.as_uri()}?mode=ro", uri=True) as connection:
        assert schema.schema_version(connection) == version
        columns = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        assert column not in columns
    shutil.copy(fixture, home / "runs.sqlite3")
    store = RunStore(home)
    assert _version(home) == SCHEMA_VERSION
    return store


def test_a_version_4_store_migrates_with_no_abandoned_steps(tmp_path):
    # fixtures/store_v4 (make_store_v4.py, commit 58f2d6a): a run stopped during epoch 2,
    # stored before runs.abandoned_steps existed.
    store = _migrated(4, "runs", "abandoned_steps", tmp_path)
    [run] = store.list_runs()
    assert run.status == "stopped" and run.abandoned_steps == 0 and run.epochs_spent == 1
    assert run_epsilon(run) == (1.0, "prv")  # the recorded ε, unchanged
    # The migrated store takes abandoned steps; they add up over stops.
    new = store.create_run(
        plan=run.plan,
        schedule=run.schedule,
        options=run.options,
        device="cpu",
        seed=2,
        private=True,
        versions={},
    )
    store.finish_run(new, status="stopped", abandoned_steps=7)
    store.finish_run(new, status="stopped", abandoned_steps=5)
    assert store.get_run(new).abandoned_steps == 12
    assert store.get_run(run.id).abandoned_steps == 0
    with pytest.raises(PlanError, match="abandoned_steps"):
        store.finish_run(new, status="stopped", abandoned_steps=-1)


def test_a_version_5_store_migrates_with_no_cut_off_trial_attempts(tmp_path):
    # fixtures/store_v5 (make_store_v5.py, commit 18b53c2): a sweep with a finished trial and
    # its run and a failed trial, stored before sweep_trials.abandoned existed.
    store = _migrated(5, "sweep_trials", "abandoned", tmp_path)
    assert SCHEMA_VERSION == 6
    [sweep] = store.list_sweeps()
    assert sweep.status == "interrupted"  # its builder's process is gone
    assert [(t.status, t.abandoned, t.has_outcome) for t in sweep.trials] == [
        ("finished", 0, True),
        ("failed", 0, True),
    ]
    # The migrated store counts a cut-off attempt, and keeps the count when the trial ends.
    store.claim_sweep(sweep.id)
    key = sweep.trials[1].key
    store.start_trial(sweep.id, key)
    assert store.get_sweep(sweep.id).trials[1].status == "running"
    assert store.abandon_trials(sweep.id) == 1
    store.start_trial(sweep.id, key)
    store.record_trial(sweep.id, key, run_id=None, error="ValueError: again")
    trial = store.get_sweep(sweep.id).trials[1]
    assert (trial.status, trial.abandoned, trial.error) == ("failed", 1, "ValueError: again")
