"""A sweep's trial cut off by a stopped or killed driver stores no run, but it trained on the
data: the sweep counts the attempt whole (``unstored_attempts``, the runs tried, ε of all
runs), in flight, after a stop, after a kill and across resumes."""

from __future__ import annotations

import pytest

from dpplan.cli import main
from dpplan.report import build_sweep_report, to_markdown
from dpplan.sweep import LocalExecutor, create_sweep, frontier_result, protocol
from dpplan.sweep.execute import run_sweep
from dpplan.sweep.tuning import composed_epsilon


def _stopped(payload, data):
    raise KeyboardInterrupt  # what Ctrl-C (or the CLI's SIGTERM handler) raises mid-trial


def _composed(plan, count: int) -> float:
    return composed_epsilon([(plan, plan.epochs)] * count, delta=1e-5)["epsilon"]


def test_stopped_trials_are_counted_whole_across_resumes(store, one_trial_spec, capsys):
    sweep_id = create_sweep(one_trial_spec, store=store)
    [plan] = protocol.plans_from_dict(store.get_sweep(sweep_id).plans).values()
    for stops in (1, 2):
        with pytest.raises(KeyboardInterrupt):
            run_sweep(sweep_id, store=store, executor=LocalExecutor(trial=_stopped))
        [trial] = store.get_sweep(sweep_id).trials
        assert (trial.status, trial.abandoned, trial.run_id) == ("abandoned", stops, None)
        result = frontier_result(store, sweep_id)
        assert store.list_runs() == [] and result.trials.finished == 0
        assert (result.unstored_attempts, result.runs_tried) == (stops, stops)
        # Before attempts were counted, a sweep stopped in its first trial said 0 here.
        assert result.tuning.all_runs_epsilon == _composed(plan, stops) > 0
    result = run_sweep(sweep_id, store=store, executor=LocalExecutor())  # trains for real
    [trial] = store.get_sweep(sweep_id).trials
    assert (trial.status, trial.abandoned) == ("finished", 2)
    assert (result.trials.finished, result.unstored_attempts, result.runs_tried) == (1, 2, 3)
    assert result.tuning.all_runs_epsilon == pytest.approx(_composed(plan, 3))
    assert store.get_sweep(sweep_id).tuning["all_runs_epsilon"] == result.tuning.all_runs_epsilon
    assert main(["frontier", str(sweep_id)]) == 0
    assert "2 trial attempts may have trained and stored no run" in capsys.readouterr().out
    report = build_sweep_report(store, sweep_id)  # the shareable report says the same
    assert (report.sweep.runs_tried, report.sweep.unstored_attempts) == (3, 2)
    assert any("2 trial attempts may have trained" in w for w in report.warnings)
    text = to_markdown(report)
    assert "| Runs tried | 3 (2 of them attempts that stored no run) |" in text
    assert "All 3 runs composed" in text and "each for its whole plan" in text


def test_a_killed_drivers_trial_in_flight_is_counted_then_marked_abandoned(store, one_trial_spec):
    spec = one_trial_spec
    sweep_id = create_sweep(spec, store=store)
    [plan] = protocol.plans_from_dict(store.get_sweep(sweep_id).plans).values()
    [trial] = protocol.ready_trials(spec, {}, None)
    store.start_trial(sweep_id, trial.key)  # sent to train; then the driver dies
    [row] = store.get_sweep(sweep_id).trials
    assert (row.status, row.abandoned, row.has_outcome) == ("running", 0, False)
    result = frontier_result(store, sweep_id)  # in flight: counted whole already
    assert (result.unstored_attempts, result.runs_tried) == (1, 1)
    assert result.tuning.all_runs_epsilon == _composed(plan, 1)
    store.claim_sweep(sweep_id)  # the next driver takes the sweep over
    [row] = store.get_sweep(sweep_id).trials
    assert (row.status, row.abandoned) == ("abandoned", 1)
    assert frontier_result(store, sweep_id).unstored_attempts == 1
