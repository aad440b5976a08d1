"""The Frontier page with AppTest: a stored sweep (fake trials, no training), adopt, launch."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest
from sweep_fakes import store_fake_sweep

from dpplan.store import RunStore
from dpplan.sweep import SweepSpec, frontier_result
from dpplan.train import RunOptions

APP = str(Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py")
PAGE = "app_pages/frontier.py"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DPPLAN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def fake_sweep(home: Path) -> int:
    """Store a finished two-ε sweep whose trials 'trained' instantly (accuracy from the LR)."""
    spec = SweepSpec(
        target_epsilons=(1, 3),
        delta=1e-5,
        batch_sizes=(256,),
        epochs=(1,),
        schedules=("one_cycle", "plateau"),
        one_cycle_lrs=(0.5, 2),
        plateau_lrs=(0.1,),
        seeds=(0, 1),
        options=RunOptions(subset=2000),
    )
    return store_fake_sweep(
        RunStore(home),
        spec,
        lambda t: 0.5 + 0.1 * t.lr / 2 + 0.05 * t.target_epsilon + 0.01 * t.seed,
    )


def page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    return at.switch_page(PAGE).run()


def test_empty_store_renders_and_launch_calls_the_background_sweep():
    with mock.patch(
        "dpplan.sweep.background.launch_sweep", return_value=(4242, Path("/tmp/x.log"))
    ) as launch:
        at = page()
        assert not at.exception
        assert "No sweep yet" in at.info[0].value
        at.text_input(key="sweep_epsilons").set_value("1, 3")
        at.number_input(key="sweep_repeats").set_value(4.0)
        at.button[0].click().run()  # the form's submit button
        assert not at.exception
    argv = launch.call_args.args[0]
    assert argv[argv.index("--epsilons") + 1] == "1,3"
    assert argv[argv.index("--random-repeats") + 1] == "4"
    assert "4242" in at.success[0].value


def test_stored_sweep_shows_frontier_table_tuning_and_adopts_a_plan(home):
    sweep_id = fake_sweep(home)
    result = frontier_result(RunStore(home), sweep_id)
    at = page()
    assert not at.exception
    assert at.metric[0].value == "finished"
    table = at.dataframe[0].value
    assert list(table["ε ≤"]) == [1.0, 3.0]
    best = result["points"][1]
    assert table["batch size"][1] == best["plan"]["batch_size"]
    assert table["schedule"][1] == best["schedule"]["kind"] == "one_cycle"
    labels = [m.label for m in at.metric]
    assert "One run" in labels and any(label.startswith("All 10 runs") for label in labels)
    at.selectbox(key="frontier_adopt_row").set_value(1)
    at.button(key="frontier_adopt").click().run()
    assert not at.exception
    assert at.number_input(key="plan_noise_multiplier").value == pytest.approx(
        best["plan"]["noise_multiplier"]
    )
    assert at.number_input(key="plan_dataset_size").value == 2000


def test_diverged_trials_are_counted_and_never_a_point(home):
    # Issue 17 item 1: a diverged trial is a finished trial with no accuracy.
    sweep_id = fake_sweep(home)
    store = RunStore(home)
    losing = next(
        run
        for run in store.list_runs()
        if run.schedule.get("max_lr") == 0.5 and run.seed == 0  # never the winner
    )
    store.finish_run(losing.id, status="diverged", stop_reason="diverged in epoch 1: test")
    result = frontier_result(store, sweep_id)
    assert result["trials"]["diverged"] == 1
    assert losing.id not in {i for p in result["points"] for i in p["run_ids"]}
    at = page()
    assert not at.exception
    assert any("1 finished trial(s) diverged" in c.value for c in at.caption)
