"""Resuming from a checkpoint: crafted, damaged, missing or mismatched files are refused.

No training here: each test stores a run with recorded epochs and puts a crafted file where
its checkpoint belongs. Checkpoints are read with ``weights_only=True`` and checked against
the store before anything changes, so a refused resume leaves records and status as they were.
"""

from __future__ import annotations

import os

import pytest
import torch

import dpplan
from dpplan.cli import main
from dpplan.errors import StateConflictError, StoreError
from dpplan.store import EpochRecord, RunStore, plan_id
from dpplan.train import RunOptions, resume, training_set_size
from dpplan.train.runs import CHECKPOINT_FORMAT, _read_checkpoint, run_queued

OPTIONS = RunOptions(subset=1600, validation_size=400, test_subset=500, device="cpu", method="rdp")
PLAN = dpplan.TrainingPlan(
    dataset_size=training_set_size(OPTIONS),
    batch_size=64,
    noise_multiplier=1.0,
    epochs=3,
    delta=1e-4,
)


class _Payload:
    """Unpickling this runs a shell command (what a crafted checkpoint did before)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _record(epoch: int) -> EpochRecord:
    return EpochRecord(
        epoch=epoch,
        steps=PLAN.steps_after(epoch),
        epsilon=0.5 * epoch,
        epsilon_rdp=0.6 * epoch,
        epsilon_opacus=0.6 * epoch,
        train_loss=1.0,
        validation_loss=1.0,
        validation_accuracy=0.8,
        test_accuracy=0.8,
        lr=0.1,
        seconds=1.0,
    )


def _stopped_run(store: RunStore, epochs: int = 2) -> int:
    run_id = store.create_run(
        plan=PLAN,
        schedule={"kind": "constant", "lr": 0.1},
        options=OPTIONS.to_dict(),
        device="cpu",
        seed=0,
        private=True,
        versions={},
    )
    for epoch in range(1, epochs + 1):
        store.record_epoch(run_id, _record(epoch))
    store.finish_run(run_id, status="stopped", stop_reason="stop requested")
    return run_id


def _valid_header(owner: int, at_epoch: int, **changes) -> dict:
    state = {
        "format": CHECKPOINT_FORMAT,
        "run_id": owner,
        "plan_id": plan_id(PLAN),
        "epoch": at_epoch,
        "steps": PLAN.steps_after(at_epoch),
        "accountant_history": [
            [PLAN.noise_multiplier, PLAN.sample_rate, PLAN.steps_after(at_epoch)]
        ],
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": None,
        "generator": torch.Generator().get_state(),
        "noise_generator": torch.Generator().get_state(),
        "model": {},
        "optimizer": {},
        "controller": {},
    }
    state.update(changes)
    return state


def _unchanged(store: RunStore, run_id: int, epochs: int = 2) -> None:
    run = store.get_run(run_id)
    assert [r.epoch for r in run.records] == list(range(1, epochs + 1))
    assert run.status == "stopped" and run.stop_reason == "stop requested"


def test_crafted_pickle_does_not_run_and_records_survive(store, tmp_path, monkeypatch):
    run_id = _stopped_run(store)
    marker = tmp_path / "pwned"
    path = store.checkpoint_path(run_id)
    path.parent.mkdir(parents=True)
    # "epoch": 0 made the old loader delete every stored record.
    torch.save({"epoch": 0, "steps": 0, "payload": _Payload(str(marker))}, path)
    with pytest.raises(StoreError, match="cannot be read") as caught:
        resume(run_id, store=store)
    assert str(path) in str(caught.value) and "weights_only=True" in str(caught.value)
    assert not marker.exists()
    _unchanged(store, run_id)
    # The same through the CLI: exit 2, the file named, nothing executed.
    monkeypatch.setenv("DPPLAN_HOME", str(store.home))
    assert main(["train", "--resume", str(run_id)]) == 2
    assert not marker.exists()
    _unchanged(store, run_id)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epoch": 0}, r"epoch 0 is not in \[1, 3\]"),
        ({"epoch": 3, "steps": PLAN.steps_after(3)}, "it is at epoch 3, but the store has 2"),
        ({"run_id": 99}, "belongs to run 99"),
        ({"plan_id": "0" * 16}, "another plan"),
        ({"format": None}, "format None"),
        ({"steps": 5}, "step count 5"),
        ({"accountant_history": [[9.0, 0.04, 3]]}, "accountant history"),
        ({"generator": [1, 2, 3]}, "generator is not a random-number state"),
    ],
    ids=[
        "epoch-0",
        "epoch-ahead",
        "other-run",
        "other-plan",
        "old-format",
        "steps",
        "accountant",
        "rng",
    ],
)
def test_checkpoint_that_does_not_match_the_store_is_refused(store, changes, message):
    run_id = _stopped_run(store)
    path = store.checkpoint_path(run_id)
    path.parent.mkdir(parents=True)
    torch.save(_valid_header(run_id, 2, **changes), path)
    with pytest.raises(StoreError, match=message) as caught:
        resume(run_id, store=store)
    assert str(path) in str(caught.value)
    _unchanged(store, run_id)


def test_checkpoint_one_epoch_behind_is_accepted_without_deleting_records(store):
    # Killed after recording epoch 2 but before writing its checkpoint: epoch 2 is redone
    # from the same state (and replaces its record); nothing is deleted beforehand.
    run_id = _stopped_run(store)
    path = store.checkpoint_path(run_id)
    path.parent.mkdir(parents=True)
    torch.save(_valid_header(run_id, 1), path)
    state = _read_checkpoint(store, store.get_run(run_id))
    assert state["epoch"] == 1 and state["path"] == str(path)
    _unchanged(store, run_id)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "directory"])
def test_damaged_checkpoint_is_a_clear_error(store, damage, monkeypatch, capsys):
    run_id = _stopped_run(store)
    path = store.checkpoint_path(run_id)
    path.parent.mkdir(parents=True)
    if damage == "directory":
        path.mkdir()
    else:
        torch.save(_valid_header(run_id, 2), path)
        data = path.read_bytes()
        path.write_bytes(
            {"truncated": data[: len(data) // 2], "garbage": b"not a checkpoint\n", "empty": b""}[
                damage
            ]
        )
    with pytest.raises(StoreError, match="cannot be read") as caught:
        resume(run_id, store=store)
    assert str(path) in str(caught.value)
    _unchanged(store, run_id)
    monkeypatch.setenv("DPPLAN_HOME", str(store.home))
    capsys.readouterr()
    assert main(["train", "--resume", str(run_id)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "unexpected" not in err and "please report" not in err


def test_missing_checkpoint_with_recorded_epochs_is_not_called_unstarted(
    store, monkeypatch, capsys
):
    run_id = _stopped_run(store)
    path = store.checkpoint_path(run_id)
    with pytest.raises(StoreError, match="is missing, though 2 epoch") as caught:
        resume(run_id, store=store)
    assert str(path) in str(caught.value)
    assert "before its first epoch" not in str(caught.value)
    _unchanged(store, run_id)
    monkeypatch.setenv("DPPLAN_HOME", str(store.home))
    capsys.readouterr()
    assert main(["train", "--resume", str(run_id)]) == 2
    assert str(path) in capsys.readouterr().err


def test_run_without_records_or_checkpoint_never_started(store):
    run_id = _stopped_run(store, epochs=0)
    with pytest.raises(StateConflictError, match="stopped before its first epoch finished"):
        resume(run_id, store=store)


def test_worker_refuses_a_crafted_checkpoint_and_stores_the_run_as_failed(store, tmp_path):
    run_id = _stopped_run(store)
    marker = tmp_path / "pwned"
    path = store.checkpoint_path(run_id)
    path.parent.mkdir(parents=True)
    torch.save({"epoch": 0, "payload": _Payload(str(marker))}, path)
    store.requeue(run_id)
    assert store.claim_next_queued() == run_id
    with pytest.raises(StoreError, match="cannot be read"):
        run_queued(run_id, store=store)
    assert not marker.exists()
    run = store.get_run(run_id)
    assert run.status == "failed" and str(path) in run.error
    assert [r.epoch for r in run.records] == [1, 2]


@pytest.mark.parametrize("kind", ["fifo", "symlink to a fifo"])
def test_a_fifo_at_the_checkpoint_path_is_refused_without_blocking(store, kind, capsys, tmp_path):
    # Issue 17 item 2: --resume blocked forever opening a FIFO in the checkpoint's place.
    run_id = _stopped_run(store)
    path = store.checkpoint_path(run_id)
    path.parent.mkdir(parents=True)
    if kind == "fifo":
        os.mkfifo(path)
    else:
        os.mkfifo(tmp_path / "pipe")
        path.symlink_to(tmp_path / "pipe")
    # A blocked open would hang the test; the subprocess-free guard is the alarm below.
    import signal

    def hung(*_):
        raise AssertionError("reading the checkpoint blocked")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        assert main(["train", "--resume", str(run_id)]) == 2
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    err = capsys.readouterr().err
    assert str(path) in err and "a FIFO (named pipe), not a regular file" in err
    run = store.get_run(run_id)
    assert run.status == "stopped" and len(run.records) == 2
