"""The Frontier page with AppTest: a stored sweep (fake trials, no training), adopt, launch."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from unittest import mock

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest
from sweep_fakes import store_fake_sweep

from dpplan.store import RunStore
from dpplan.sweep import SweepSpec, frontier_result
from dpplan.train import RunOptions, training_set_size

APP = str(Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py")
PAGE = "app_pages/frontier.py"


@pytest.fixture(autouse=True)
def _ask_for_a_gpu_again():
    """The app asks torch for a GPU once per server (cache_resource); tests patch the answer."""
    import streamlit as st

    st.cache_resource.clear()


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
        at.button(key="sweep_launch").click().run()
        assert not at.exception
    # The app hands the background driver the validated spec, never spelled argv.
    [spec] = launch.call_args.args
    assert isinstance(spec, SweepSpec)
    assert spec.target_epsilons == (1.0, 3.0) and spec.random_repeats == 4.0
    assert "4242" in at.success[0].value


def test_stored_sweep_shows_frontier_table_tuning_and_adopts_a_plan(home):
    sweep_id = fake_sweep(home)
    result = frontier_result(RunStore(home), sweep_id)
    at = page()
    assert not at.exception
    assert at.metric[0].value == "finished"
    table = at.dataframe[0].value
    assert list(table["ε ≤"]) == [1.0, 3.0]
    best = result.points[1]
    assert best is result.best_at(3.0)
    assert table["batch size"][1] == best.plan.batch_size
    assert table["schedule"][1] == best.schedule.kind == "one_cycle"
    # Test accuracy 0.74 and 0.75 over the two seeds: sample std 0.0071 (population: 0.0050).
    assert table["test accuracy (mean ± sample std)"][1] == "74.50% ± 0.71%"
    labels = [m.label for m in at.metric]
    assert "One run" in labels and any(label.startswith("All 10 runs") for label in labels)
    at.selectbox(key="frontier_adopt_row").set_value(1)
    at.button(key="frontier_adopt").click().run()
    assert not at.exception
    assert at.number_input(key="plan_noise_multiplier").value == pytest.approx(
        best.plan.noise_multiplier
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
    assert result.trials.diverged == 1
    assert losing.id not in {i for p in result.points for i in p.run_ids}
    at = page()
    assert not at.exception
    assert any("1 finished trial(s) diverged" in c.value for c in at.caption)


def test_cut_off_trial_attempts_are_counted_and_said(home):
    sweep_id = fake_sweep(home)
    store = RunStore(home)
    trial = store.get_sweep(sweep_id).trials[0]
    store.claim_sweep(sweep_id)  # a resumed sweep whose driver was stopped during this trial
    store.start_trial(sweep_id, trial.key)
    assert store.abandon_trials(sweep_id) == 1
    store.start_trial(sweep_id, trial.key)  # run again, to the same end
    store.record_trial(sweep_id, trial.key, run_id=trial.run_id, error=None)
    tuning = frontier_result(store, sweep_id).tuning
    store.finish_sweep(sweep_id, status="finished", tuning=tuning.to_dict())
    result = frontier_result(store, sweep_id)
    assert result.unstored_attempts == 1 and result.runs_tried == len(store.list_runs()) + 1
    at = page()
    assert not at.exception
    assert any("1 trial attempt may have trained and stored no run" in c.value for c in at.caption)
    assert [m.value for m in at.metric if m.label == "Runs on the data"] == [str(result.runs_tried)]


def _frontier_spec(at: AppTest) -> dict:
    [chart] = at.get("vega_lite_chart")
    return json.loads(chart.proto.spec)


def _luminance(color: str) -> float:
    red, green, blue = (int(color[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def test_every_line_has_its_own_visible_colour_and_the_frontier_hides_none(home):
    fake_sweep(home)
    spec = _frontier_spec(page())
    layers = spec["layer"]
    scales = [layer["encoding"]["color"]["scale"] for layer in layers]
    assert all(scale == scales[0] for scale in scales)  # one colour per line on every layer
    colors = dict(zip(scales[0]["domain"], scales[0]["range"], strict=True))
    assert set(colors) == {"frontier", "one_cycle", "plateau"}
    assert len(set(colors.values())) == len(colors)  # distinct
    assert all(0.15 < _luminance(c) < 0.7 for c in colors.values())  # neither white nor black
    frontier = layers[0]  # drawn first: underneath the schedules' lines
    assert frontier["mark"]["strokeDash"] and frontier["mark"]["point"]["filled"] is False


def _launch_spec(defaults: dict) -> SweepSpec:
    return SweepSpec(
        target_epsilons=_numbers(defaults["epsilons"]),
        delta=1e-5,
        batch_sizes=_numbers(defaults["batch_sizes"]),
        epochs=_numbers(defaults["epochs"]),
        schedules=("one_cycle", "plateau"),
        one_cycle_lrs=_numbers(defaults["one_cycle_lrs"]),
        plateau_lrs=_numbers(defaults["plateau_lrs"]),
        seeds=_numbers(defaults["seeds"]),
        options=RunOptions(subset=defaults["subset"] or None),
    )


def _numbers(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(","))


def _estimate_seconds(spec: SweepSpec, components) -> float:
    epochs = sum(spec.epochs) / len(spec.epochs)
    examples = training_set_size(spec.options)
    per_epoch = components.SWEEP_EPOCH_SECONDS / components.SWEEP_EPOCH_EXAMPLES
    return spec.trial_count * epochs * examples * per_epoch


@pytest.mark.parametrize("gpu", [False, True], ids=["cpu", "gpu"])
def test_launch_form_shows_trials_and_time_before_launching(gpu):
    with (
        mock.patch("torch.cuda.is_available", return_value=gpu),
        mock.patch("dpplan.sweep.background.launch_sweep") as launch,
    ):
        at = page()
        assert not at.exception, at.exception
        components = sys.modules["components"]
        defaults = components.SWEEP_DEFAULTS_GPU if gpu else components.SWEEP_DEFAULTS_CPU
        spec = _launch_spec(defaults)
        seconds = _estimate_seconds(spec, components)
        [info] = [i.value for i in at.info if "trials" in i.value]
        assert f"**{spec.trial_count:,} trials**" in info
        assert f"about {components.format_duration(seconds)}" in info
        assert f"{training_set_size(spec.options):,} training examples" in info
        assert any("7.1 s per epoch of 55,000 examples" in c.value for c in at.caption)
        if gpu:
            assert "A GPU is present" in info
            assert spec.trial_count > 100 and training_set_size(spec.options) == 55_000
        else:
            assert "on this CPU" in info
            assert seconds < 5 * 60  # the CPU default finishes in minutes
        launch.assert_not_called()  # shown before anything is launched


def test_launch_estimate_follows_the_fields_and_refuses_bad_ones():
    with mock.patch("torch.cuda.is_available", return_value=False):
        at = page()
        components = sys.modules["components"]
        spec = dataclasses.replace(_launch_spec(components.SWEEP_DEFAULTS_CPU), epochs=(2, 4))
        at.text_input(key="sweep_epochs").set_value("2, 4").run()
        assert not at.exception, at.exception
        [info] = [i.value for i in at.info if "trials" in i.value]
        assert f"**{spec.trial_count:,} trials**" in info
        at.text_input(key="sweep_seeds").set_value("0, x").run()
        assert any("seeds='0, x'" in e.value.replace("\\", "") for e in at.error)
        assert at.button(key="sweep_launch").disabled


def test_a_task_sweep_is_launched_with_its_task_and_dataset_size(monkeypatch):
    # The Frontier page's Task field: the spec carries the task, the estimate its dataset size.
    pytest.importorskip("torch")
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "fixtures"))
    with (
        mock.patch("torch.cuda.is_available", return_value=False),
        mock.patch(
            "dpplan.sweep.background.launch_sweep", return_value=(4343, Path("/tmp/y.log"))
        ) as launch,
    ):
        at = page()
        at.text_input(key="sweep_task").set_value("user_tasks:blobs")
        at.text_input(key="sweep_batch_sizes").set_value("50").run()
        assert not at.exception, at.exception
        [info] = [i.value for i in at.info if "trials" in i.value]
        assert "400 training examples of task user_tasks:blobs" in info.replace("\\", "")
        assert "No time is measured for task" in info
        at.text_input(key="sweep_task").set_value("user_tasks:missing").run()
        assert any("has no attribute" in e.value for e in at.error), [e.value for e in at.error]
        assert at.button(key="sweep_launch").disabled
        at.text_input(key="sweep_task").set_value("user_tasks:blobs").run()
        at.button(key="sweep_launch").click().run()
    [spec] = launch.call_args.args
    assert spec.task == "user_tasks:blobs" and spec.dataset_size == 400
    assert spec.options.subset is None


def test_launch_form_gives_plateau_trials_evaluate_every():
    # Issue 24: "Plateau: evaluate every N steps (0 = once per epoch)" is the spec's
    # plateau_every (dpplan sweep --plateau-every); 0 keeps the default, a bad N is refused.
    with (
        mock.patch("torch.cuda.is_available", return_value=False),
        mock.patch(
            "dpplan.sweep.background.launch_sweep", return_value=(4545, Path("/tmp/z.log"))
        ) as launch,
    ):
        at = page()
        assert not at.exception, at.exception
        at.button(key="sweep_launch").click().run()
        [default] = launch.call_args.args
        assert default.plateau_every is None
        at.number_input(key="sweep_plateau_every").set_value(-2).run()
        assert any("plateau_every=-2" in e.value.replace("\\", "") for e in at.error), [
            e.value for e in at.error
        ]
        assert at.button(key="sweep_launch").disabled
        at.number_input(key="sweep_plateau_every").set_value(20).run()
        at.button(key="sweep_launch").click().run()
        assert not at.exception, at.exception
    [spec] = launch.call_args.args
    assert spec.plateau_every == 20 and "plateau" in spec.schedules
