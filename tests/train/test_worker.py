"""The background worker process runs queued runs; queued runs can be cancelled."""

from __future__ import annotations

import time

import dpplan
from dpplan.train import Constant, RunOptions, training_set_size
from dpplan.train.loop import queue_run
from dpplan.train.worker import ensure_worker, worker_running


def _queue(store, mnist_dir, **changes):
    options = RunOptions(subset=1200, validation_size=200, test_subset=200,
                         data_dir=str(mnist_dir), device="cpu", method="rdp", **changes)
    plan = dpplan.TrainingPlan(dataset_size=training_set_size(options), batch_size=64,
                               noise_multiplier=1.0, epochs=2, delta=1e-4)
    return queue_run(plan, Constant(lr=0.2), options, store=store)


def test_worker_runs_the_queue_in_the_background(store, mnist_dir):
    first = _queue(store, mnist_dir)
    second = _queue(store, mnist_dir, seed=1)
    cancelled = _queue(store, mnist_dir, seed=2)
    store.request_stop(cancelled)  # a queued run is cancelled before it starts
    assert store.get_run(cancelled).status == "stopped"
    assert ensure_worker(store) is True
    assert ensure_worker(store) is False  # one worker per store
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        statuses = {run.id: run.status for run in store.list_runs()}
        if statuses[first] == statuses[second] == "finished":
            break
        time.sleep(0.2)
    runs = {run.id: run for run in store.list_runs()}
    assert runs[first].status == "finished", (runs[first], (store.home / "worker.log"))
    assert runs[second].status == "finished"
    assert [r.steps for r in runs[first].records] == [runs[first].plan.steps_after(1),
                                                       runs[first].plan.steps_after(2)]
    assert runs[cancelled].status == "stopped" and runs[cancelled].records == ()
    deadline = time.monotonic() + 30
    while worker_running(store) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not worker_running(store)  # it exits when the queue is empty


def test_requeue_resumes_from_the_checkpoint(store, mnist_dir):
    from dpplan.train.loop import run_queued

    run_id = _queue(store, mnist_dir)
    assert store.claim_next_queued() == run_id
    run_queued(run_id, store=store, on_epoch=lambda r: store.request_stop(run_id))
    stopped = store.get_run(run_id)
    assert stopped.status == "stopped" and len(stopped.records) == 1
    store.requeue(run_id)
    assert store.claim_next_queued() == run_id
    finished = run_queued(run_id, store=store)
    assert finished.status == "finished"
    assert [r.epoch for r in finished.records] == [1, 2]
    assert finished.records[0] == stopped.records[0]
