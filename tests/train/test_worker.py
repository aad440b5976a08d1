"""The background worker process runs queued runs; queued runs can be cancelled."""

from __future__ import annotations

import os
import time

import pytest
from tiny_runs import tiny_options, tiny_plan

from dpplan.train import Constant
from dpplan.train import worker as worker_module
from dpplan.train.runs import queue_run
from dpplan.train.worker import ensure_worker, worker_running


def _queue(store, mnist_dir, **changes):
    options = tiny_options(mnist_dir, subset=1200, test_subset=200, **changes)
    plan = tiny_plan(options)
    return queue_run(plan, Constant(lr=0.2), options, store=store)


def test_worker_main_runs_the_queue_in_order_then_exits(store, mnist_dir, monkeypatch):
    # The worker's loop with a stub trainer (the real one runs in the slow test below).
    ran = []

    def stub_run_queued(run_id, *, store):
        ran.append(run_id)
        if len(ran) == 2:
            raise RuntimeError("this run fails")  # a failed run does not stop the worker
        store.finish_run(run_id, status="finished")
        return store.get_run(run_id)

    monkeypatch.setattr("dpplan.train.runs.run_queued", stub_run_queued)
    first, second, third = (_queue(store, mnist_dir, seed=seed) for seed in (0, 1, 2))
    cancelled = _queue(store, mnist_dir, seed=3)
    store.request_stop(cancelled)
    assert worker_module.main() == 0
    assert ran == [first, second, third]  # in queue order, the cancelled one skipped
    assert store.get_run(first).status == store.get_run(third).status == "finished"
    assert store.get_run(cancelled).status == "stopped"
    assert not (store.home / "worker.pid").exists()  # it exits when the queue is empty


def test_ensure_worker_starts_one_worker_per_store(store, monkeypatch):
    started = []

    class FakeChild:
        pid = os.getpid()  # alive, on this host

    def fake_popen(command, **kwargs):
        started.append((command, kwargs["env"]["DPPLAN_HOME"]))
        return FakeChild()

    monkeypatch.setattr("subprocess.Popen", fake_popen)
    assert not worker_running(store)
    assert ensure_worker(store) is True
    assert worker_running(store)
    assert ensure_worker(store) is False
    assert [home for _, home in started] == [str(store.home)]
    assert started[0][0][1:] == ["-m", "dpplan.train.worker"]


@pytest.mark.slow
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
    assert [r.steps for r in runs[first].records] == [
        runs[first].plan.steps_after(1),
        runs[first].plan.steps_after(2),
    ]
    assert runs[cancelled].status == "stopped" and runs[cancelled].records == ()
    deadline = time.monotonic() + 30
    while worker_running(store) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not worker_running(store)  # it exits when the queue is empty


def test_requeue_resumes_from_the_checkpoint(store, mnist_dir):
    from dpplan.train.runs import run_queued

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


def test_queue_refuses_a_mistyped_data_folder_and_stores_nothing(store, tmp_path):
    from dpplan.errors import DataError

    typo = tmp_path / "mnsit"
    with pytest.raises(DataError, match="does not exist"):
        _queue(store, typo)
    assert store.list_runs() == [] and not typo.exists()
