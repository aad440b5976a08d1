"""Sweeps on an embedded Ray (2 CPUs): completion, ε of every point, a killed worker, resume.

Every trial trains the seed network for one epoch on 2,000 examples on the CPU.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from sweep_fakes import dying_once

import dpplan
from dpplan.cli import main
from dpplan.sweep import RayExecutor, SweepSpec, create_sweep, run_sweep

pytestmark = pytest.mark.usefixtures("ray_cluster")


def spec(options, **changes):
    values = {
        "target_epsilons": (1, 3),
        "delta": 1e-5,
        "batch_sizes": (256,),
        "epochs": (1,),
        "schedules": ("one_cycle", "plateau"),
        "one_cycle_lrs": (0.5, 2),
        "plateau_lrs": (0.1, 0.5),
        "seeds": (0, 1),
        "options": options,
    }
    values.update(changes)
    return SweepSpec(**values)


def test_sweep_completes_with_every_point_at_its_epsilon(store, tiny_options, capsys):
    made = spec(tiny_options)
    sweep_id = create_sweep(made, store=store)
    seen = []
    result = run_sweep(sweep_id, store=store, executor=RayExecutor(), on_progress=seen.append)
    assert result.status == "finished"
    assert result.trials.to_dict() == {"planned": 12, "finished": 12, "failed": 0, "diverged": 0}
    assert result.runs_tried == 12 and max(p.running for p in seen) == 2
    assert [p.target_epsilon for p in result.points] == [1.0, 3.0]
    for point in [*result.points, *(p for c in result.curves.values() for p in c)]:
        assert point.epsilon == dpplan.epsilon(point.plan, method="prv") <= point.target_epsilon
        assert point.seeds == (0, 1) and 0 <= point.test_accuracy_mean <= 1
    assert set(result.curves) == {"one_cycle", "plateau"}
    tuning = result.tuning
    assert tuning.all_runs_epsilon > tuning.single_run_epsilon
    runs = [run for run in store.list_runs() if run.group_id == f"sweep-{sweep_id}"]
    assert len(runs) == 12 and all(run.status == "finished" for run in runs)
    # the CLI reads the same frontier back from the store
    assert main(["frontier", str(sweep_id), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    for key in ("sweep_id", "runs_tried", "points", "curves", "tuning"):
        assert shown[key] == json.loads(json.dumps(result.to_dict()[key]))
    assert store.get_sweep(sweep_id).status == "finished"


def test_a_trial_whose_worker_dies_is_retried(store, tiny_options, tmp_path):
    marker = tmp_path / "killed-once"
    made = spec(tiny_options, target_epsilons=(2,), schedules=("one_cycle",), seeds=(0,))
    sweep_id = create_sweep(made, store=store)
    executor = RayExecutor(max_retries=2, trial=dying_once(str(marker)))
    result = run_sweep(sweep_id, store=store, executor=executor)
    assert marker.exists()  # one attempt's worker died (os._exit)
    assert result.status == "finished"
    assert result.trials.to_dict() == {"planned": 2, "finished": 2, "failed": 0, "diverged": 0}
    assert result.runs_tried == 2


def test_resume_after_the_driver_is_killed_runs_only_the_rest(store, tiny_options, tmp_path):
    env = {**os.environ, "DPPLAN_HOME": str(store.home), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "dpplan.cli",
        "sweep",
        "--local",
        "--epsilons",
        "2",
        "--batch-sizes",
        "256",
        "--epochs",
        "1",
        "--schedules",
        "one_cycle",
        "--one-cycle-lrs",
        "0.25,0.5,1",
        "--seeds",
        "0,1",
        "--subset",
        "2000",
        "--validation-size",
        "500",
        "--test-subset",
        "500",
        "--device",
        "cpu",
        "--data-dir",
        tiny_options.data_dir,
        "--json",
    ]
    driver = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and driver.poll() is None:
            sweeps = store.list_sweeps()
            if sweeps and any(t.has_outcome for t in sweeps[0].trials):
                break
            time.sleep(0.05)
        assert driver.poll() is None, driver.stderr.read().decode()
        driver.send_signal(signal.SIGKILL)
    finally:
        driver.wait(timeout=30)
    sweep = store.get_sweep(store.list_sweeps()[0].id)
    assert sweep.status == "interrupted"
    done_before = {t.key for t in sweep.trials if t.has_outcome}
    cut_off = [t.key for t in sweep.trials if t.status == "running"]  # in flight at the kill
    runs_before = {run.id for run in store.list_runs()}
    assert 1 <= len(done_before) < 4 and len(cut_off) <= 1
    result = run_sweep(sweep.id, store=store, executor=RayExecutor())
    assert result.status == "finished"
    assert result.trials.to_dict() == {"planned": 4, "finished": 4, "failed": 0, "diverged": 0}
    new_runs = {run.id for run in store.list_runs()} - runs_before
    assert len(new_runs) == 4 - len(done_before)  # only the unfinished trials trained
    after = store.get_sweep(sweep.id)
    assert {t.key for t in after.trials} >= done_before and len(after.trials) == 4
    # The attempt cut off by the kill trained on the data too: counted, once.
    assert [t.key for t in after.trials if t.abandoned] == cut_off
    assert result.unstored_attempts == len(cut_off)
    assert result.runs_tried == len(store.list_runs()) + len(cut_off)


@pytest.mark.parametrize(
    ("executor", "field"),
    [
        ({"cpus_per_trial": 3}, "cpus_per_trial"),  # the cluster's one node has 2 CPUs
        ({"gpus_per_trial": 1}, "gpus_per_trial"),  # and no GPU
    ],
)
def test_a_trial_no_node_could_ever_run_is_refused_before_the_sweep_is_stored(
    executor, field, store, tiny_options
):
    ray = RayExecutor(**executor)
    with pytest.raises(dpplan.PlanError, match=field) as caught:
        create_sweep(spec(tiny_options), store=store, executor=ray)
    assert "could never run" in str(caught.value)
    assert store.list_sweeps() == [] and ray.in_flight == 0
