"""Issue 24: ``SweepSpec(plateau_every=N)`` / ``dpplan sweep --plateau-every N``: every
plateau trial's schedule gets ``evaluate_every=N`` (no training: fake trials)."""

from __future__ import annotations

import json

import pytest
from sweep_fakes import store_fake_sweep

from dpplan.cli import main
from dpplan.cli.render import _grid_text
from dpplan.errors import PlanError
from dpplan.sweep import SweepSpec, protocol
from dpplan.train import RunOptions

OPTIONS = RunOptions(subset=2000, validation_size=500)


def spec(**changes) -> SweepSpec:
    values = {
        "target_epsilons": (2,),
        "delta": 1e-5,
        "batch_sizes": (256,),
        "epochs": (1,),
        "schedules": ("one_cycle", "plateau"),
        "one_cycle_lrs": (0.5,),
        "plateau_lrs": (0.1, 0.5),
        "seeds": (0, 1),
        "options": OPTIONS,
    }
    values.update(changes)
    return SweepSpec(**values)


def test_spec_round_trips_and_an_old_stored_spec_loads_with_the_default():
    made = spec(plateau_every=25.0)
    assert made.plateau_every == 25 and type(made.plateau_every) is int
    assert made.to_dict()["plateau_every"] == 25
    assert SweepSpec.from_dict(made.to_dict()) == made
    default = spec()
    old = default.to_dict()
    assert "plateau_every" not in old  # a default spec is stored as before the field existed
    assert SweepSpec.from_dict(old).plateau_every is None
    assert SweepSpec.from_dict({**old, "plateau_every": None}) == default


@pytest.mark.parametrize("value", [0, -1, 2.5, True, "5", float("nan")])
def test_bad_plateau_every_is_refused_naming_the_field(value):
    with pytest.raises(PlanError) as info:
        spec(plateau_every=value)
    assert info.value.field == "plateau_every"


def test_plateau_every_without_a_plateau_schedule_is_refused():
    with pytest.raises(PlanError) as info:
        spec(schedules=("one_cycle",), plateau_lrs=(), plateau_every=5)
    assert info.value.field == "plateau_every" and "plateau" in info.value.hint


@pytest.mark.parametrize("random_repeats", [None, 3.0])
def test_every_plateau_trial_and_repeat_gets_evaluate_every(random_repeats, tmp_path):
    from dpplan.store import RunStore

    store = RunStore(tmp_path / "home")
    made = spec(plateau_every=4, random_repeats=random_repeats)
    sweep_id = store_fake_sweep(store, made, lambda trial: 0.5 + trial.lr / 10)
    runs = [r for r in store.list_runs() if r.group_id == f"sweep-{sweep_id}"]
    plateaus = [dict(r.schedule) for r in runs if r.schedule["kind"] == "plateau"]
    assert plateaus and all(s["evaluate_every"] == 4 for s in plateaus)
    assert all("evaluate_every" not in r.schedule for r in runs if r.schedule["kind"] != "plateau")
    if random_repeats is None:  # 2 rates with seed 0, the selected one with seed 1
        assert len(plateaus) == 3
    # the frontier's points name the schedule their runs trained
    from dpplan.sweep import frontier_result

    points = frontier_result(store, sweep_id).points
    assert all(p.schedule.evaluate_every == 4 for p in points if p.schedule.kind == "plateau")


def test_default_trials_keep_the_default_plateau():
    made = spec()
    trials = protocol.ready_trials(made, {}, None)
    schedules = [t.schedule for t in trials if t.kind == "plateau"]
    assert schedules and all(s.evaluate_every is None for s in schedules)
    assert all("evaluate_every" not in s.to_dict() for s in schedules)
    assert [t.key for t in protocol.ready_trials(spec(plateau_every=9), {}, None)] == [
        t.key for t in trials
    ]  # the same trials: keys do not change


def test_payload_sent_to_workers_carries_it():
    from dpplan.sweep.execute import _payload

    made = spec(plateau_every=6)
    plans = protocol.solve_plans(made)
    for trial in protocol.ready_trials(made, {}, None):
        schedule = _payload(trial, plans[trial.plan_key], made)["schedule"]
        assert schedule.get("evaluate_every") == (6 if trial.kind == "plateau" else None)


def test_grid_text_shows_it_only_when_set():
    assert "plateau evaluated every 6 steps" in _grid_text(spec(plateau_every=6).to_dict())
    assert "plateau evaluated" not in _grid_text(spec().to_dict())


# -- the command line ----------------------------------------------------------------------------

GRID = ["--epsilons", "2", "--batch-sizes", "256", "--epochs", "1", "--seeds", "0"]


@pytest.mark.parametrize("value", ["0", "-2", "1.5", "x"])
def test_cli_bad_plateau_every_exits_2_naming_the_flag(value, capsys, store):
    assert main(["sweep", "--local", *GRID, "--plateau-every", value, "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["field"] == "plateau_every"
    assert store.list_sweeps() == []


def test_cli_plateau_every_reaches_the_stored_spec_and_every_plateau_payload(
    capsys, store, tiny_options, monkeypatch
):
    import dpplan.sweep

    payloads = []

    def fail(payload, data=None):  # records what a worker receives; trains nothing
        payloads.append(payload)
        raise RuntimeError("not trained in this test")

    local = dpplan.sweep.LocalExecutor
    monkeypatch.setattr(
        dpplan.sweep, "LocalExecutor", lambda ship_data=True: local(ship_data=False, trial=fail)
    )
    argv = [*GRID, "--plateau-lrs", "0.1,0.5", "--one-cycle-lrs", "1", "--plateau-every", "8"]
    argv += ["--subset", "2000", "--validation-size", "500", "--data-dir", tiny_options.data_dir]
    assert main(["sweep", "--local", *argv, "--json"]) == 1  # every trial failed
    assert json.loads(capsys.readouterr().out)["trials"]["failed"] == 3
    (record,) = store.list_sweeps()
    assert record.spec["plateau_every"] == 8
    kinds = [(p["schedule"]["kind"], p["schedule"].get("evaluate_every")) for p in payloads]
    assert sorted(kinds) == [("one_cycle", None), ("plateau", 8), ("plateau", 8)]
    assert main(["sweeps", "--json"]) == 0
    grid = json.loads(capsys.readouterr().out)["sweeps"][0]["grid"]
    assert "(plateau evaluated every 8 steps)" in grid


def test_resume_refuses_a_changed_plateau_every_by_name(capsys, store, tiny_options):
    with_it = store_fake_sweep(
        store, spec(plateau_every=5, options=tiny_options), lambda trial: 0.5 + trial.lr / 10
    )
    without = store_fake_sweep(store, spec(options=tiny_options), lambda trial: 0.5)
    for sweep_id, flags, stored in ((with_it, "6", 5), (without, "5", None)):
        argv = ["sweep", "--local", "--resume", str(sweep_id), "--plateau-every", flags]
        assert main([*argv, "--json"]) == 2
        error = json.loads(capsys.readouterr().out)["error"]
        assert error["field"] == "resume"
        assert f"--plateau-every {flags} (sweep {sweep_id} has {stored})" in error["message"]
    # the stored value, given again, is no change: the (finished) sweep resumes
    argv = ["sweep", "--local", "--resume", str(with_it), "--plateau-every", "5", "--json"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["sweep_id"] == with_it


def test_a_local_sweep_trial_steps_its_plateau_within_the_epoch(capsys, store, mnist_dir):
    # One real trial (a few seconds): at lr 1e-4 the validation loss stalls, so the default
    # plateau (patience 1, factor 0.1) evaluated every 3 steps is cut to min_lr 1e-5 within
    # its single epoch; the per-epoch plateau could not act in it.
    argv = ["--epsilons", "2", "--batch-sizes", "64", "--epochs", "1", "--seeds", "0"]
    argv += ["--schedules", "plateau", "--plateau-lrs", "1e-4", "--plateau-every", "3"]
    argv += ["--subset", "1000", "--validation-size", "200", "--test-subset", "200"]
    argv += ["--device", "cpu", "--method", "rdp", "--data-dir", str(mnist_dir)]
    assert main(["sweep", "--local", *argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    (run,) = store.list_runs()
    assert run.schedule["evaluate_every"] == 3 and run.plan.steps_per_epoch >= 9
    assert run.records[0].lr == pytest.approx(1e-5)
    assert result["points"][0]["schedule"]["evaluate_every"] == 3
