"""Issue 24: ``compare_schedules(plateau_every=N)`` and ``dpplan compare --plateau-every N``
give every plateau run ``evaluate_every=N`` (no training: runs are stored by a stand-in)."""

from __future__ import annotations

import json

import pytest
from tiny_runs import stored_run

from dpplan.cli import main
from dpplan.errors import PlanError
from dpplan.train import OneCycle, Plateau
from dpplan.train.compare import DEFAULT_GRIDS, compare_schedules, with_plateau_every

#: Validation accuracy grows with the learning rate, test accuracy with the seed.
STUB_TRAIN = stored_run(lambda lr, seed: lr / 10, lambda lr, seed: 0.5 + seed / 10)

PLAN = ["--batch-size", "64", "--noise-multiplier", "1.0", "--epochs", "1", "--delta", "1e-4"]
GRID = ["--one-cycle-lrs", "0.5,1", "--plateau-lrs", "0.1,0.3", "--seeds", "0,1", "--json"]


def _schedules(store) -> list[dict]:
    return [dict(run.schedule) for run in store.list_runs()]


def test_cli_plateau_every_reaches_every_plateau_run_and_only_those(
    store, data_flags, capsys, monkeypatch
):
    monkeypatch.setattr("dpplan.train.compare.start_run", STUB_TRAIN)
    assert main(["compare", *PLAN, *data_flags, *GRID, "--plateau-every", "7"]) == 0
    result = json.loads(capsys.readouterr().out)
    schedules = _schedules(store)
    plateaus = [s for s in schedules if s["kind"] == "plateau"]
    # the two rates with the first seed, then the selected one with the second
    assert len(plateaus) == 3 and all(s["evaluate_every"] == 7 for s in plateaus)
    assert all("evaluate_every" not in s for s in schedules if s["kind"] == "one_cycle")
    assert result["schedules"][1]["selected"] == {**Plateau(lr=0.3).to_dict(), "evaluate_every": 7}


def test_cli_without_plateau_every_stores_the_default_plateau_unchanged(
    store, data_flags, capsys, monkeypatch
):
    monkeypatch.setattr("dpplan.train.compare.start_run", STUB_TRAIN)
    assert main(["compare", *PLAN, *data_flags, *GRID]) == 0
    plateaus = [s for s in _schedules(store) if s["kind"] == "plateau"]
    assert len(plateaus) == 3
    assert all(s == Plateau(lr=s["lr"]).to_dict() and "evaluate_every" not in s for s in plateaus)


@pytest.mark.parametrize("value", ["0", "-3", "2.5", "x"])
def test_cli_bad_plateau_every_exits_2_naming_the_flag_and_stores_nothing(
    value, store, data_flags, capsys, monkeypatch
):
    monkeypatch.setattr("dpplan.train.compare.start_run", STUB_TRAIN)
    assert main(["compare", *PLAN, *data_flags, *GRID, "--plateau-every", value]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["field"] == "plateau_every"
    assert store.list_runs() == []


def test_compare_schedules_plateau_every_and_the_default_grids(store, monkeypatch):
    from dpplan import TrainingPlan

    monkeypatch.setattr("dpplan.train.compare.start_run", STUB_TRAIN)
    plan = TrainingPlan(
        dataset_size=1000, batch_size=64, noise_multiplier=1.0, epochs=1, delta=1e-4
    )
    grids = {"one_cycle": (OneCycle(max_lr=1.0),), "plateau": DEFAULT_GRIDS["plateau"][:2]}
    result = compare_schedules(plan, grids=grids, seeds=(0,), store=store, plateau_every=3)
    assert result.summaries[1].selected["evaluate_every"] == 3
    assert {s.get("evaluate_every") for s in _schedules(store) if s["kind"] == "plateau"} == {3}
    # The default grids are untouched (None: once per epoch), and stay so.
    assert all(spec.evaluate_every is None for spec in DEFAULT_GRIDS["plateau"])
    assert with_plateau_every(grids["one_cycle"], 3) == grids["one_cycle"]
    with pytest.raises(PlanError) as info:  # no plateau to give it to
        compare_schedules(plan, grids={"one_cycle": grids["one_cycle"]}, plateau_every=3)
    assert info.value.field == "plateau_every"
    with pytest.raises(PlanError) as info:
        compare_schedules(plan, grids=grids, plateau_every=0)
    assert info.value.field == "plateau_every"
