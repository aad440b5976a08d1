"""The run store when things go wrong: damaged or misplaced files, read-only folders, old
schemas, and runs whose process is gone (another host, a reused PID)."""

from __future__ import annotations

import os
import shlex
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

import dpplan
from dpplan.cli import main
from dpplan.errors import StateConflictError, StoreError
from dpplan.store import LEASE_SECONDS, EpochRecord, RunStore, StopOutcome

PLAN = dpplan.TrainingPlan(
    dataset_size=1000, batch_size=10, noise_multiplier=1.0, epochs=3, delta=1e-4
)


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


def _record(epoch: int) -> EpochRecord:
    return EpochRecord(
        epoch=epoch,
        steps=100 * epoch,
        epsilon=0.5,
        epsilon_rdp=0.6,
        epsilon_opacus=0.6,
        train_loss=1.0,
        validation_loss=1.1,
        validation_accuracy=0.8,
        test_accuracy=0.79,
        lr=0.1,
        seconds=1.5,
    )


def _set(store: RunStore, run_id: int, **values) -> None:
    """Change a run's row behind the store's back (as another process or host would)."""
    with sqlite3.connect(store.path) as connection:
        for key, value in values.items():
            connection.execute(f"UPDATE runs SET {key}=? WHERE id=?", (value, run_id))


def _cli(home, argv, monkeypatch, capsys) -> tuple[int, str, str]:
    monkeypatch.setenv("DPPLAN_HOME", str(home))
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _filled_store(home) -> RunStore:
    store = RunStore(home)
    for _ in range(6):
        run_id = _create(store, schedule={"kind": "constant", "lr": 0.1, "pad": "x" * 3000})
        for epoch in (1, 2, 3):
            store.record_epoch(run_id, _record(epoch))
        store.finish_run(run_id, status="finished")
    return store


# -- damaged or misplaced files ----------------------------------------------------------


@pytest.mark.parametrize("damage", ["garbage", "truncated", "directory"])
def test_damaged_store_is_a_clear_error_and_is_left_alone(tmp_path, damage, monkeypatch, capsys):
    home = tmp_path / "home"
    path = home / "runs.sqlite3"
    if damage == "directory":
        path.mkdir(parents=True)
    else:
        _filled_store(home)
        assert not (home / "runs.sqlite3-wal").exists()  # all in the main file
        data = path.read_bytes()
        path.write_bytes(
            b"this is not SQLite\n" * 50 if damage == "garbage" else data[: len(data) // 3]
        )
    before = path.read_bytes() if path.is_file() else None
    code, out, err = _cli(home, ["runs"], monkeypatch, capsys)
    assert code == 2 and out == ""
    assert str(path) in err and "unexpected" not in err and "please report" not in err
    assert ("Move it" in err) and (before is None or path.read_bytes() == before)
    with pytest.raises(StoreError, match="runs.sqlite3"):
        RunStore(home).list_runs()


def test_home_that_is_a_file_is_a_clear_error(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    home.write_text("not a folder")
    code, _, err = _cli(home, ["runs"], monkeypatch, capsys)
    assert code == 2 and str(home) in err and "is a file, not a folder" in err
    assert home.read_text() == "not a folder"


def test_read_only_store_lists_runs_and_refuses_writes_clearly(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    store = RunStore(home)
    run_id = _create(store)
    store.record_epoch(run_id, _record(1))
    store.finish_run(run_id, status="finished")
    # Root ignores permission bits, so read-only is simulated where the store decides it.
    monkeypatch.setattr("dpplan.store.database.writable", lambda path: False)
    code, out, err = _cli(home, ["runs"], monkeypatch, capsys)
    assert code == 0 and f"{run_id:5d}  finished" in out, err
    reader = RunStore(home)
    assert reader.read_only and reader.get_run(run_id).records == (_record(1),)
    code, _, err = _cli(home, ["runs", "delete", str(run_id)], monkeypatch, capsys)
    assert code == 2 and "read-only" in err and str(reader.path) in err
    assert RunStore(home).get_run(run_id).status == "finished"


def _run_in_read_only_mount(home, argv) -> subprocess.CompletedProcess | None:
    """Run the CLI in a child whose mount namespace has ``home`` bind-mounted read-only.

    Root ignores permission bits but not a read-only mount (EROFS). Returns None where
    mount namespaces are not permitted.
    """
    script = (
        f"mount --bind -o ro {shlex.quote(str(home))} {shlex.quote(str(home))} && "
        f"exec {shlex.quote(sys.executable)} -m dpplan.cli " + " ".join(map(shlex.quote, argv))
    )
    try:
        done = subprocess.run(
            ["unshare", "--mount", "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "DPPLAN_HOME": str(home)},
        )
    except FileNotFoundError:
        return None
    if "mount" in done.stderr and ("ermission" in done.stderr or "ermitted" in done.stderr):
        return None
    return done


def test_read_only_folder_on_disk(tmp_path, monkeypatch, capsys):
    # A store that really cannot be written: permission bits for a normal user, a
    # read-only bind mount (in a private mount namespace) for root, which ignores the bits.
    home = tmp_path / "home"
    store = RunStore(home)
    run_id = _create(store)
    store.finish_run(run_id, status="finished")
    if os.geteuid() != 0:
        os.chmod(store.path, 0o444)
        os.chmod(home, 0o555)
        try:
            code, out, err = _cli(home, ["runs"], monkeypatch, capsys)
            assert code == 0 and f"{run_id:5d}  finished" in out, err
            code, _, err = _cli(home, ["runs", "delete", str(run_id)], monkeypatch, capsys)
            assert code == 2 and "read-only" in err
        finally:
            os.chmod(home, 0o755)
            os.chmod(store.path, 0o644)
        return
    listed = _run_in_read_only_mount(home, ["runs"])
    if listed is None:
        pytest.skip("root, and mount namespaces are not permitted here (unshare --mount)")
    assert listed.returncode == 0 and f"{run_id:5d}  finished" in listed.stdout, listed.stderr
    deleted = _run_in_read_only_mount(home, ["runs", "delete", str(run_id)])
    assert deleted.returncode == 2 and "read-only" in deleted.stderr, deleted.stderr
    assert RunStore(home).get_run(run_id).status == "finished"


def test_missing_store_in_a_read_only_folder(tmp_path, monkeypatch):
    monkeypatch.setattr("dpplan.store.database.writable", lambda path: False)
    (tmp_path / "home").mkdir()
    with pytest.raises(StoreError, match="there is no run store at .*read-only"):
        RunStore(tmp_path / "home")


def test_old_schema_is_migrated(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with sqlite3.connect(home / "runs.sqlite3") as connection:
        connection.executescript("""
            CREATE TABLE plans (id TEXT PRIMARY KEY, plan TEXT NOT NULL);
            CREATE TABLE runs (
                id INTEGER PRIMARY KEY AUTOINCREMENT, plan_id TEXT NOT NULL, status TEXT NOT NULL,
                schedule TEXT NOT NULL, options TEXT NOT NULL, device TEXT NOT NULL,
                seed INTEGER NOT NULL, versions TEXT NOT NULL, private INTEGER NOT NULL,
                group_id TEXT, pid INTEGER, host TEXT, error TEXT, stop_reason TEXT,
                warnings TEXT NOT NULL DEFAULT '[]', report TEXT, created_at REAL NOT NULL,
                updated_at REAL NOT NULL);
            CREATE TABLE epochs (run_id INTEGER NOT NULL, epoch INTEGER NOT NULL,
                steps INTEGER NOT NULL, epsilon REAL, epsilon_rdp REAL, epsilon_opacus REAL,
                train_loss REAL, validation_loss REAL, validation_accuracy REAL,
                test_accuracy REAL, lr REAL, seconds REAL, PRIMARY KEY (run_id, epoch));
        """)
        connection.execute(
            "INSERT INTO plans VALUES ('p', ?)", (__import__("json").dumps(PLAN.to_dict()),)
        )
        old = time.time() - 10 * LEASE_SECONDS
        connection.execute(
            "INSERT INTO runs (plan_id, status, schedule, options, device, seed, versions, "
            "private, pid, host, created_at, updated_at) VALUES ('p', 'running', "
            "'{\"kind\": \"constant\", \"lr\": 0.1}', '{}', 'cpu', 0, '{}', 1, 4242, "
            "'elsewhere', ?, ?)",
            (old, old),
        )
    store = RunStore(home)
    columns = {row[1] for row in sqlite3.connect(store.path).execute("PRAGMA table_info(runs)")}
    assert {"heartbeat_at", "pid_started"} <= columns
    [run] = store.list_runs()
    assert run.status == "interrupted"  # no heartbeat column value: judged by updated_at
    assert store.get_run(_create(store)).status == "running"


# -- liveness: leases, heartbeats, reused PIDs ------------------------------------------------


def test_other_host_is_running_while_its_heartbeat_is_fresh(tmp_path):
    store = RunStore(tmp_path)
    run_id = _create(store)
    _set(store, run_id, host="another-host", pid=1234, heartbeat_at=time.time())
    assert store.get_run(run_id).status == "running"
    with pytest.raises(StateConflictError, match="is running .*another-host"):
        store.claim(run_id)
    _set(store, run_id, heartbeat_at=time.time() - LEASE_SECONDS - 5)
    assert store.get_run(run_id).status == "interrupted"


def test_reused_pid_is_not_mistaken_for_the_run(tmp_path):
    store = RunStore(tmp_path)
    run_id = _create(store)
    assert store.get_run(run_id).status == "running"  # this very process
    _set(store, run_id, pid_started="1")  # the PID now belongs to a process started later
    assert store.get_run(run_id).status == "interrupted"


def test_stale_run_on_another_host_can_be_force_stopped_and_resumed(tmp_path, monkeypatch, capsys):
    store = RunStore(tmp_path)
    run_id = _create(store)
    store.record_epoch(run_id, _record(1))
    _set(store, run_id, host="gone-host", pid=1, heartbeat_at=time.time() - 3600)
    code, out, _ = _cli(tmp_path, ["runs", "stop", str(run_id)], monkeypatch, capsys)
    assert code == 0 and f"dpplan runs stop {run_id} --force" in out
    assert store.get_run(run_id).status == "interrupted"
    code, out, _ = _cli(tmp_path, ["runs", "stop", str(run_id), "--force"], monkeypatch, capsys)
    assert code == 0 and f"marked run {run_id} as stopped" in out and "gone-host" in out
    run = store.get_run(run_id)
    assert run.status == "stopped" and run.records == (_record(1),)
    store.claim(run_id)  # resume takes it over
    assert store.get_run(run_id).status == "running"


def test_stale_running_run_can_be_taken_over_by_resume_and_deleted(tmp_path):
    store = RunStore(tmp_path)
    run_id = _create(store)
    _set(store, run_id, host="gone-host", pid=1, heartbeat_at=time.time() - 3600)
    store.claim(run_id)
    assert store.get_run(run_id).status == "running"
    other = _create(store)
    _set(store, other, host="gone-host", pid=1, heartbeat_at=time.time() - 3600)
    store.delete_run(other)
    assert [run.id for run in store.list_runs()] == [run_id]


def test_dead_local_process_is_marked_stopped_by_a_plain_stop(tmp_path):
    store = RunStore(tmp_path)
    run_id = _create(store)
    _set(store, run_id, pid=2**22 + 12345)  # no such process
    assert store.get_run(run_id).status == "interrupted"
    assert store.request_stop(run_id).outcome is StopOutcome.MARKED_STOPPED
    assert store.get_run(run_id).status == "stopped"


def test_force_stop_and_force_on_other_actions(tmp_path, monkeypatch, capsys):
    store = RunStore(tmp_path)
    run_id = _create(store)
    code, _, err = _cli(tmp_path, ["runs", "delete", str(run_id), "--force"], monkeypatch, capsys)
    assert code == 2 and "force" in err
    code, out, _ = _cli(tmp_path, ["runs", "stop", str(run_id), "--force"], monkeypatch, capsys)
    assert code == 0 and "If that process still runs, it stops at its next check" in out
    assert store.stop_requested(run_id)  # the (live) owner sees it at its next poll
    code, out, _ = _cli(tmp_path, ["runs", "stop", str(run_id), "--force"], monkeypatch, capsys)
    assert code == 0 and "already stopped" in out


def test_heartbeat_is_renewed_by_the_stop_poll_and_only_the_holder_writes(tmp_path):
    store = RunStore(tmp_path)
    run_id = _create(store)
    _set(store, run_id, heartbeat_at=0.0)
    assert not store.stop_requested(run_id)
    beat = (
        sqlite3.connect(store.path)
        .execute("SELECT heartbeat_at FROM runs WHERE id=?", (run_id,))
        .fetchone()[0]
    )
    assert beat > time.time() - 60 and store.heartbeat(run_id)
    # Another process took the run over: this one stops, records nothing, changes nothing.
    _set(store, run_id, pid=1, host=socket.gethostname() + "-other", heartbeat_at=time.time())
    assert store.stop_requested(run_id) and not store.heartbeat(run_id)
    with pytest.raises(StoreError, match="no longer held by this process"):
        store.record_epoch(run_id, _record(1))
    store.finish_run(run_id, status="failed", error="late")
    run = store.get_run(run_id)
    assert run.status == "running" and run.records == () and run.error is None
