"""The planner app, page by page, with Streamlit's AppTest (the trainer is stubbed)."""

from __future__ import annotations

import json
import math
import os
import re
import sys
from pathlib import Path
from unittest import mock

import pandas as pd
import pyarrow as pa
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest
from tiny_runs import stored_run

import dpplan
from dpplan.store import EpochRecord, RunStore

APP = str(Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py")
PAGES = [
    "app_pages/plan.py",
    "app_pages/solve.py",
    "app_pages/train.py",
    "app_pages/report.py",
    "app_pages/compare.py",
    "app_pages/runs.py",
]


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DPPLAN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def fresh_cache():
    """Forget the app's cached accounting results (they outlive one AppTest)."""
    import streamlit as st

    st.cache_data.clear()
    yield
    st.cache_data.clear()


def _unescape(markdown: str) -> str:
    """The text a Markdown alert shows (the app backslash-escapes user text)."""
    return re.sub(r"\\(.)", r"\1", markdown)


def _app(**params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in params.items():
        at.query_params[key] = str(value)
    return at


def _set_plan(at: AppTest, **values) -> AppTest:
    for field, value in values.items():
        at.number_input(key=f"plan_{field}").set_value(value)
    return at.run()


def _fmt(value: float) -> str:
    return "∞" if math.isinf(value) else f"{value:.3f}"


def _charts(at: AppTest) -> list[tuple[dict, pd.DataFrame]]:
    """Every Vega-Lite chart on the page: its spec and its data (all datasets stacked)."""
    charts = []
    for element in at.get("vega_lite_chart"):
        frames = [pa.ipc.open_stream(d.data.data).read_pandas() for d in element.proto.datasets]
        if element.proto.HasField("data"):
            frames.append(pa.ipc.open_stream(element.proto.data.data).read_pandas())
        charts.append((json.loads(element.proto.spec), pd.concat(frames, ignore_index=True)))
    return charts


def _x_encodings(spec: dict) -> list[dict]:
    """The x encodings of a (possibly layered) Vega-Lite spec."""
    found = [spec["encoding"]["x"]] if "x" in spec.get("encoding", {}) else []
    for layer in spec.get("layer", []):
        found += _x_encodings(layer)
    return found


def _epoch_axes(at: AppTest) -> list[pd.Series]:
    """The x values of every chart whose x axis is the epoch."""
    axes = []
    for spec, frame in _charts(at):
        fields = {x["field"] for x in _x_encodings(spec) if "epoch" in str(x.get("title", ""))}
        axes += [frame[field].dropna() for field in fields if field in frame]
    return axes


def test_every_page_renders():
    at = _app(epochs=2).run()
    assert not at.exception
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, page
        assert at.title, page


def test_plan_page_shows_the_api_epsilon():
    at = _set_plan(_app().run(), epochs=3, batch_size=512, noise_multiplier=1.3)
    assert not at.exception
    plan = dpplan.TrainingPlan(
        dataset_size=60000, batch_size=512, noise_multiplier=1.3, epochs=3, delta=1e-5
    )
    result = dpplan.compare(plan)
    assert at.metric[0].value == _fmt(result.headline_epsilon)
    assert at.metric[1].value == f"{plan.sample_rate:.5g}"
    assert at.metric[2].value == f"{plan.steps_per_epoch:,}"
    assert at.query_params["batch_size"] in ("512", ["512"])
    table = at.dataframe[0].value
    assert list(table["epoch"]) == [1, 2, 3]
    assert table["RDP ε"].iloc[-1] == pytest.approx(dpplan.epsilon(plan, method="rdp"))


def test_plan_headline_is_pending_until_every_method_is_in(fresh_cache):
    at = _app(epochs=2).run()
    components = sys.modules["components"]  # the app's module, imported by the first run
    real = components.method_result

    def stop_before_prv(plan_dict, method):
        if method == "prv":  # the last method: RDP and PLD are drawn by now
            raise RuntimeError("stopped before PRV")
        return real(plan_dict, method)

    with mock.patch.object(components, "method_result", stop_before_prv):
        at.run()
    assert "stopped before PRV" in at.exception[0].value  # the page as drawn mid-way
    plan = dpplan.TrainingPlan(
        dataset_size=60000, batch_size=256, noise_multiplier=1.1, epochs=2, delta=1e-5
    )
    partial = min(dpplan.epsilon(plan, method=m) for m in ("rdp", "pld"))
    assert at.metric[0].value == "pending…"
    assert not any(_fmt(partial) in c.value for c in at.caption)
    assert any("Headline pending: computing PRV" in c.value for c in at.caption)
    assert list(at.dataframe[0].value.columns) == ["epoch", "steps", "RDP ε", "PLD ε"]
    at.run()
    assert not at.exception
    assert at.metric[0].value == _fmt(dpplan.compare(plan).headline_epsilon)
    assert not any("pending" in c.value for c in at.caption)


def test_plan_from_the_url():
    at = _app(
        dataset_size=50000,
        batch_size=4096,
        noise_multiplier=1.5,
        epochs=2,
        delta=1e-5,
        max_grad_norm=1.0,
    ).run()
    assert not at.exception
    plan = dpplan.TrainingPlan(
        dataset_size=50000, batch_size=4096, noise_multiplier=1.5, epochs=2, delta=1e-5
    )
    assert at.metric[0].value == _fmt(dpplan.compare(plan).headline_epsilon)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("batch_size", 70000, "batch_size=70000"),
        ("noise_multiplier", 0.0, "noise_multiplier=0"),
        ("delta", 0.0, "delta=0"),
        ("epochs", 0, "epochs=0"),
    ],
)
def test_invalid_input_names_the_field(field, value, message):
    at = _set_plan(_app(epochs=2).run(), **{field: value})
    assert not at.exception
    assert any(message in error.value for error in at.error), [e.value for e in at.error]
    assert not at.metric  # nothing computed from an invalid plan


def test_solve_and_adopt():
    at = _app(epochs=2).run()
    at.switch_page("app_pages/solve.py").run()
    at.selectbox(key="solve_target").set_value("noise_multiplier")
    at.number_input(key="solve_epsilon").set_value(1.5)
    at.selectbox(key="solve_method").set_value("rdp")
    at.button[0].click().run()
    assert not at.exception, at.exception
    plan = dpplan.TrainingPlan(
        dataset_size=60000, batch_size=256, noise_multiplier=1.1, epochs=2, delta=1e-5
    )
    solved = dpplan.solve_noise_multiplier(plan, target_epsilon=1.5, method="rdp")
    assert at.metric[0].value == f"{solved.noise_multiplier:.4g}"
    assert at.metric[1].value == _fmt(dpplan.epsilon(solved, method="rdp"))
    adopt = next(b for b in at.button if b.label == "Adopt this plan")
    adopt.click().run()
    assert not at.exception
    assert at.number_input(key="plan_noise_multiplier").value == solved.noise_multiplier


def test_solve_defaults_to_the_best_method_and_names_the_certifying_one():
    at = _app(epochs=2).run()
    at.switch_page("app_pages/solve.py").run()
    assert at.selectbox(key="solve_method").value == "best"
    at.selectbox(key="solve_target").set_value("epochs")
    at.number_input(key="solve_epsilon").set_value(1.5)
    at.button[0].click().run()
    assert not at.exception, at.exception
    plan = dpplan.TrainingPlan(
        dataset_size=60000, batch_size=256, noise_multiplier=1.1, epochs=2, delta=1e-5
    )
    solution = dpplan.solve_plan(plan, field="epochs", target_epsilon=1.5)
    assert at.metric[0].value == f"{solution.plan.epochs:,}"
    assert at.metric[1].value == _fmt(solution.epsilon)
    caption = " ".join(c.value for c in at.caption)
    assert "Certified by " + solution.method.upper() in caption
    assert "the most favourable method" in caption and "bounded by the target" in caption


def test_epoch_charts_start_at_epoch_one():
    at = _app(epochs=3).run()
    [plan_axis] = _epoch_axes(at)
    assert sorted(set(plan_axis)) == [1, 2, 3]
    at.switch_page("app_pages/solve.py").run()
    at.selectbox(key="solve_target").set_value("noise_multiplier")
    at.selectbox(key="solve_method").set_value("rdp")
    at.button[0].click().run()
    assert not at.exception, at.exception
    [solve_axis] = _epoch_axes(at)
    assert list(solve_axis) == [1, 2, 3]  # ε after epoch 1 is drawn at epoch 1


def test_solve_infeasible_shows_error():
    at = _app(epochs=2).run()
    at.switch_page("app_pages/solve.py").run()
    at.selectbox(key="solve_target").set_value("epochs")
    at.number_input(key="solve_epsilon").set_value(0.01)
    at.selectbox(key="solve_method").set_value("rdp")
    at.button[0].click().run()
    assert any("one epoch already costs" in e.value for e in at.error)


def _fake_worker(run_store: RunStore) -> bool:
    """Stand-in for the background worker: completes queued runs with made-up records."""
    while (run_id := run_store.claim_next_queued()) is not None:
        run = run_store.get_run(run_id)
        curve = dpplan.epsilon_curve(run.plan, method="rdp").epsilons
        for epoch in range(1, run.plan.epochs + 1):
            run_store.record_epoch(
                run_id,
                EpochRecord(
                    epoch=epoch,
                    steps=run.plan.steps_after(epoch),
                    epsilon=curve[epoch - 1],
                    epsilon_rdp=curve[epoch - 1],
                    epsilon_opacus=curve[epoch - 1],
                    train_loss=1.0 / epoch,
                    validation_loss=1.0 / epoch,
                    validation_accuracy=0.5 + 0.1 * epoch + 0.01 * run.seed,
                    test_accuracy=0.5 + 0.1 * epoch + 0.01 * run.seed,
                    lr=0.1,
                    seconds=1.0,
                ),
            )
        run_store.finish_run(run_id, status="finished")
    return True


def test_train_queues_a_run_and_shows_it(home):
    with mock.patch("dpplan.train.worker.ensure_worker", _fake_worker):
        at = _app(epochs=2).run()
        at.switch_page("app_pages/train.py").run()
        at.selectbox(key="train_schedule").set_value("plateau")
        at.number_input(key="train_lr").set_value(0.1)
        at.selectbox(key="train_device").set_value("cpu")
        at.selectbox(key="train_engine").set_value("opacus")
        at.number_input(key="train_threads").set_value(2)
        at.number_input(key="train_plateau_every").set_value(7)
        at.button[0].click().run()
        assert not at.exception, at.exception
        assert any("Queued run #1" in s.value for s in at.success)
        assert any("55,000" in i.value for i in at.info)  # dataset_size derived from MNIST
    [run] = RunStore(home).list_runs()
    assert run.status == "finished" and run.plan.dataset_size == 55000
    assert run.schedule["kind"] == "plateau" and len(run.records) == 2
    assert run.schedule["evaluate_every"] == 7  # the Train page's plateau field
    assert run.options["engine"] == "opacus" and run.options["threads"] == 2
    at.switch_page("app_pages/runs.py").run()
    assert not at.exception
    assert at.dataframe[0].value["status"].tolist() == ["finished"]


def test_train_bad_option_shows_error():
    at = _app(epochs=2).run()
    at.switch_page("app_pages/train.py").run()
    at.selectbox(key="train_model").set_value("seed")
    at.selectbox(key="train_activation").set_value("tanh")
    at.button[0].click().run()
    assert any("activation='tanh'" in e.value for e in at.error)
    at.selectbox(key="train_activation").set_value("relu")
    at.number_input(key="train_plateau_every").set_value(5)  # the schedule is one-cycle
    at.button[0].click().run()
    assert any("plateau_every=5" in e.value for e in at.error)


#: Stand-in for start_run: a finished run without training. Validation accuracy falls with
#: the learning rate, test accuracy rises with it: selecting on test would pick the other.
_stub_start_run = stored_run(
    lambda lr, seed: 0.9 - lr / 100, lambda lr, seed: 0.5 + lr / 100 + 0.01 * seed, method="rdp"
)


def _launch_inline(module, request, *, kind):
    """Stand-in for the detached launch: the driver's main runs here, on the JSON request."""
    import importlib

    path = Path(os.environ["DPPLAN_HOME"]).parent / "request.json"
    path.write_text(json.dumps(request))
    assert importlib.import_module(module).main([str(path)]) == 0
    return 4343, path.with_suffix(".log")


def test_compare_launches_select_then_repeat_and_shows_schedules_at_equal_epsilon(home):
    # Issue 19 item 4: the page runs compare_schedules' protocol (the first seed selects each
    # schedule's rate on validation, the other seeds repeat it), not every rate x every seed.
    with (
        mock.patch("dpplan.train.compare.start_run", _stub_start_run),
        mock.patch("dpplan.background.launch_detached", _launch_inline),
    ):
        at = _app(epochs=2).run()
        at.switch_page("app_pages/compare.py").run()
        at.text_input(key="cmp_oc").set_value("1, 4")
        at.text_input(key="cmp_plateau").set_value("0.05")
        at.text_input(key="cmp_seeds").set_value("0, 1")
        at.button[0].click().run()
        assert not at.exception, at.exception
        assert any("4343" in s.value and "5 runs" in s.value for s in at.success)
    runs = RunStore(home).list_runs()
    tried = sorted(
        (r.schedule["kind"], r.schedule.get("max_lr", r.schedule.get("lr")), r.seed) for r in runs
    )
    # one-cycle: lr 1 and 4 with seed 0, then lr 1 (validation-best, not test-best) with seed 1
    assert tried == [
        ("one_cycle", 1.0, 0),
        ("one_cycle", 1.0, 1),
        ("one_cycle", 4.0, 0),
        ("plateau", 0.05, 0),
        ("plateau", 0.05, 1),
    ]
    assert len({r.group_id for r in runs}) == 1 and all(r.plan.dataset_size == 55000 for r in runs)
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert sorted(table["schedule"]) == ["one_cycle lr=1", "one_cycle lr=4", "plateau lr=0.05"]
    assert "best at ε ≤ 1" in table.columns


def test_compare_plateau_every_reaches_every_plateau_run(home):
    # Issue 24: the form's "Plateau: evaluate every N steps" is compare's --plateau-every.
    with (
        mock.patch("dpplan.train.compare.start_run", _stub_start_run),
        mock.patch("dpplan.background.launch_detached", _launch_inline),
    ):
        at = _app(epochs=2).run()
        at.switch_page("app_pages/compare.py").run()
        at.text_input(key="cmp_oc").set_value("1")
        at.text_input(key="cmp_plateau").set_value("0.05, 0.1")
        at.text_input(key="cmp_seeds").set_value("0, 1")
        at.number_input(key="cmp_plateau_every").set_value(-1)
        at.button[0].click().run()
        assert any("plateau_every=-1" in e.value.replace("\\", "") for e in at.error), [
            e.value for e in at.error
        ]
        assert RunStore(home).list_runs() == []
        at.number_input(key="cmp_plateau_every").set_value(12)
        at.button[0].click().run()
        assert not at.exception, at.exception
    runs = RunStore(home).list_runs()
    plateaus = [r.schedule for r in runs if r.schedule["kind"] == "plateau"]
    assert len(plateaus) == 3 and all(s["evaluate_every"] == 12 for s in plateaus)
    assert all("evaluate_every" not in r.schedule for r in runs if r.schedule["kind"] != "plateau")


def test_compare_launches_the_whole_phased_sidebar_plan(home):
    with (
        mock.patch("dpplan.train.compare.start_run", _stub_start_run),
        mock.patch("dpplan.background.launch_detached", _launch_inline),
    ):
        at = _app(epochs=1, batch_size=1000, noise_multiplier=1.0, phases="3000,2.0,1,10").run()
        at.switch_page("app_pages/compare.py").run()
        assert not at.exception, at.exception
        assert not any("phase 1 only" in w.value for w in at.warning)
        at.text_input(key="cmp_oc").set_value("1")
        at.text_input(key="cmp_plateau").set_value("0.05")
        at.text_input(key="cmp_seeds").set_value("0")
        at.button[0].click().run()
        assert not at.exception, at.exception
        assert any("2 runs" in s.value for s in at.success)
    first = dpplan.TrainingPlan(
        dataset_size=55000, batch_size=1000, noise_multiplier=1.0, epochs=1, delta=1e-5
    )
    expected = dpplan.PhasedPlan(
        phases=[first, first.replace(batch_size=3000, noise_multiplier=2.0)],
        phase_steps=[None, 10],
    )
    runs = RunStore(home).list_runs()
    assert len(runs) == 2 and all(r.plan == expected for r in runs)
    assert all(len(r.records) == len(expected.epoch_ends()) for r in runs)


def test_compare_bad_grid_shows_error():
    with mock.patch("dpplan.background.launch_detached") as launch:
        at = _app(epochs=2).run()
        at.switch_page("app_pages/compare.py").run()
        at.text_input(key="cmp_oc").set_value("fast")
        at.button[0].click().run()
        assert any("one_cycle_lrs='fast'" in _unescape(e.value) for e in at.error)
        at.text_input(key="cmp_oc").set_value("1")
        at.text_input(key="cmp_seeds").set_value("0, 0.5")
        at.button[0].click().run()
        assert any("seed=0.5" in _unescape(e.value) for e in at.error)
    launch.assert_not_called()  # refused in the app, never handed to a child


def test_report_page_for_the_plan():
    at = _app(epochs=2).run()
    at.switch_page("app_pages/report.py").run()
    assert not at.exception, at.exception
    plan = dpplan.TrainingPlan(
        dataset_size=60000, batch_size=256, noise_multiplier=1.1, epochs=2, delta=1e-5
    )
    assert at.metric[0].value == f"{dpplan.compare(plan).headline_epsilon:.3f}"
    buttons = {b.proto.label: b.proto for b in at.get("download_button")}
    assert set(buttons) == {"Download HTML", "Download Markdown", "Download JSON", "Download PDF"}
    assert not buttons["Download PDF"].disabled  # WeasyPrint comes with dpplan[all]


def test_report_page_without_weasyprint_names_the_install():
    with mock.patch.dict(sys.modules, {"weasyprint": None}):  # import weasyprint fails
        at = _app(epochs=1).run()
        at.switch_page("app_pages/report.py").run()
    assert not at.exception, at.exception
    [pdf] = [b.proto for b in at.get("download_button") if b.proto.label == "Download PDF"]
    assert pdf.disabled and "dpplan\\[pdf\\]" in pdf.help


def test_report_page_for_a_run(home):
    with mock.patch("dpplan.train.worker.ensure_worker", _fake_worker):
        at = _app(epochs=2).run()
        at.switch_page("app_pages/train.py").run()
        at.selectbox(key="train_device").set_value("cpu")
        at.button[0].click().run()
    at.switch_page("app_pages/report.py").run()
    at.radio(key="report_source").set_value("a stored run").run()
    assert not at.exception, at.exception
    run_store = RunStore(home)
    [run] = run_store.list_runs()
    assert run_store.load_report(run.id) is not None  # stored with the run
    from dpplan.report import build_run_report

    expected = build_run_report(run_store, run.id).epsilon
    assert at.metric[0].value == f"{expected:.3f}"
    assert expected <= run.records[-1].epsilon  # the headline is the smallest upper bound


def test_report_page_stores_a_run_report_once_per_distinct_report(home):
    with mock.patch("dpplan.train.worker.ensure_worker", _fake_worker):
        at = _app(epochs=1).run()
        at.switch_page("app_pages/train.py").run()
        at.selectbox(key="train_device").set_value("cpu")
        at.button[0].click().run()
    with mock.patch.object(RunStore, "save_report", autospec=True) as save:
        at.switch_page("app_pages/report.py").run()
        at.radio(key="report_source").set_value("a stored run").run()
        at.run()
        at.run()  # reruns of the same report write nothing more
        assert save.call_count == 1
        at.text_input(key="report_title").input("Another title").run()
        assert save.call_count == 2  # a different report is stored again
    assert not at.exception, at.exception


def test_tiny_delta_shows_infinity_not_a_crash(fresh_cache):
    # At this δ a method may answer ∞ or refuse (PRV); the app compares floats, never "inf",
    # and its headline is the smallest certified bound.
    at = _app(epochs=2, delta=1e-15).run()
    assert not at.exception, at.exception
    plan = dpplan.TrainingPlan(
        dataset_size=60000, batch_size=256, noise_multiplier=1.1, epochs=2, delta=1e-15
    )
    assert at.metric[0].value == _fmt(dpplan.compare(plan).headline_epsilon)
    table = at.dataframe[0].value
    columns = [c for c in table.columns if c.endswith(" ε")]
    assert columns and all(isinstance(v, float) for c in columns for v in table[c].tolist())
    refused = {"PLD", "PRV", "RDP"} - {c.split()[0] for c in columns}
    assert refused and all(any(m in w.value for w in at.warning) for m in refused)


def test_one_failing_method_is_shown_beside_the_others(fresh_cache):
    real = dpplan.epsilon_curve

    def flaky(plan, *, method="prv"):
        if method == "prv":
            raise RuntimeError("library broke")
        if method == "pld":
            raise dpplan.errors.AccountingError("pld refused this plan")
        return real(plan, method=method)

    with mock.patch("dpplan.epsilon_curve", flaky):
        at = _app(epochs=2, noise_multiplier=1.7).run()
    assert not at.exception, at.exception
    plan = dpplan.TrainingPlan(
        dataset_size=60000, batch_size=256, noise_multiplier=1.7, epochs=2, delta=1e-5
    )
    assert at.metric[0].value == _fmt(dpplan.epsilon(plan, method="rdp"))
    shown = [_unescape(w.value) for w in at.warning]
    assert any("PRV" in w and "RuntimeError: library broke" in w for w in shown), shown
    assert any("PLD" in w and "pld refused this plan" in w for w in shown), shown


@pytest.mark.parametrize(
    ("field", "text", "reason"),
    [
        ("batch_size", "abc", "a number"),
        ("epochs", "1e308", "whole number"),
        ("epochs", "2.5", "whole number"),
        ("noise_multiplier", "nan", "finite"),
        ("batch_size", "70000", "dataset_size=60000"),
        ("delta", "1.5", "(0, 1)"),
        ("epochs", "20000", "10000"),
    ],
)
def test_refused_link_values_are_named(field, text, reason):
    at = _app(**({"epochs": 2} | {field: text})).run()
    assert not at.exception, at.exception
    shown = [_unescape(w.value) for w in at.warning]
    assert any(f"{field}={text!r}" in w and reason in w for w in shown), shown
    assert all(len(w) < 300 for w in shown)
    default = components_default(field)
    assert at.number_input(key=f"plan_{field}").value == default
    assert at.metric  # the plan with the default is computed
    at.number_input(key="plan_epochs").set_value(3).run()  # editing the plan hides the note
    assert not any(field in _unescape(w.value) for w in at.warning)


def test_long_link_value_is_cut_and_shown_as_text():
    at = _app(epochs=2, batch_size="![x](https://e.x/a.png)" + "9" * 500).run()
    assert not at.exception
    [warning] = [w.value for w in at.warning if "batch" in w.value]
    assert "![" not in warning and "](" not in warning  # escaped: no image, no link
    assert "(523 characters)" in _unescape(warning) and len(warning) < 300


def components_default(field: str):
    return {
        "dataset_size": 60000,
        "batch_size": 256,
        "noise_multiplier": 1.1,
        "epochs": 10,
        "delta": 1e-5,
        "max_grad_norm": 1.0,
    }[field]


def test_runs_page_shows_readable_plan_and_percent_accuracy(home):
    with mock.patch("dpplan.train.worker.ensure_worker", _fake_worker):
        at = _app(epochs=2).run()
        at.switch_page("app_pages/train.py").run()
        at.selectbox(key="train_device").set_value("cpu")
        at.button[0].click().run()
    at.switch_page("app_pages/runs.py").run()
    assert not at.exception, at.exception
    assert not any("{" in m.value for m in at.markdown)  # no raw JSON
    overview, plan_table, schedule_table, epochs = (d.value for d in at.dataframe)
    plan_rows = dict(zip(plan_table["setting"], plan_table["value"], strict=True))
    assert plan_rows["Expected batch size B"] == "256"
    assert plan_rows["Dataset size N"] == "55,000" and plan_rows["Epochs"] == "2"
    schedule_rows = dict(zip(schedule_table["setting"], schedule_table["value"], strict=True))
    assert schedule_rows["Schedule"] == "one-cycle" and schedule_rows["peak learning rate"] == "4"
    assert overview["test accuracy"].tolist() == ["70.00%"]
    assert epochs["test accuracy"].tolist() == ["60.00%", "70.00%"]
    assert epochs["validation accuracy"].tolist() == ["60.00%", "70.00%"]


def test_report_preview_loads_nothing():
    at = _app(epochs=1).run()
    at.switch_page("app_pages/report.py").run()
    notes = "![pixel](https://e.x/pixel.png) [click](data:text/html,<b>hi</b>)"
    at.text_area(key="report_notes").set_value(notes).run()
    at.text_input(key="report_title").set_value("T\n# injected").run()
    assert not at.exception, at.exception
    assert not any("pixel" in m.value or "injected" in m.value for m in at.markdown)
    [source] = [c.value for c in at.code if "Notes from the author" in c.value]
    assert "\\!\\[pixel\\]\\(https\\://e.x/pixel.png\\)" in source
    assert source.startswith("# T \\# injected\n")


def test_report_preview_is_an_iframe_without_deprecated_calls():
    with mock.patch("streamlit.deprecation_util.show_deprecation_warning") as deprecated:
        at = _app(epochs=1).run()
        at.switch_page("app_pages/report.py").run()
        at.text_input(key="report_title").set_value("Preview title").run()
    assert not at.exception, at.exception
    assert not deprecated.called, deprecated.call_args
    [frame] = at.get("iframe")
    assert frame.proto.srcdoc.startswith("<!DOCTYPE html>")
    assert "<title>Preview title</title>" in frame.proto.srcdoc


def test_report_page_error_is_cut_and_escaped():
    at = _app(epochs=1).run()
    at.switch_page("app_pages/report.py").run()
    at.text_area(key="report_notes").set_value("![x](https://e.x/a.png)" * 1000).run()
    assert not at.exception, at.exception
    [error] = [e.value for e in at.error]
    assert "notes=" in _unescape(error) and len(error) < 400 and "![" not in error


def _diverged_runs(home) -> tuple[int, int]:
    """A run that diverged in epoch 2 (epoch 1 kept), and a run an older dpplan stored as
    finished with NaN losses."""
    from dpplan.train.specs import RunOptions

    run_store = RunStore(home)
    plan = dpplan.TrainingPlan(
        dataset_size=1000, batch_size=64, noise_multiplier=1.0, epochs=2, delta=1e-5
    )
    ids = []
    for losses, status, reason in (
        ([1.2], "diverged", "diverged in epoch 2: the training loss was nan at step 3 of 16"),
        ([2.3, math.nan], "finished", None),
    ):
        run_id = run_store.create_run(
            plan=plan,
            schedule={"kind": "constant", "lr": 100.0, "momentum": 0.0},
            options=RunOptions(subset=1000, validation_size=200, device="cpu").to_dict(),
            device="cpu",
            seed=0,
            private=True,
            versions={},
        )
        for epoch, loss in enumerate(losses, start=1):
            run_store.record_epoch(
                run_id,
                EpochRecord(
                    epoch=epoch,
                    steps=16 * epoch,
                    epsilon=1.0 * epoch,
                    epsilon_rdp=1.1 * epoch,
                    epsilon_opacus=1.1 * epoch,
                    train_loss=loss,
                    validation_loss=loss,
                    validation_accuracy=0.1,
                    test_accuracy=0.1,
                    lr=100.0,
                    seconds=0.5,
                    epsilons={"rdp": 1.1 * epoch, "prv": 1.0 * epoch, "pld": 0.99 * epoch},
                ),
            )
        run_store.finish_run(run_id, status=status, stop_reason=reason)
        ids.append(run_id)
    return ids[0], ids[1]


def test_runs_and_report_pages_show_diverged_runs(home):
    # Issue 17 item 1: the Report page failed on a diverged run's null losses.
    diverged, legacy = _diverged_runs(home)
    at = _app(epochs=2).run()
    at.switch_page("app_pages/runs.py").run()
    assert not at.exception, at.exception
    assert at.dataframe[0].value["status"].tolist() == ["diverged", "diverged"]
    for run_id in (diverged, legacy):
        at.selectbox(key="runs_selected").set_value(run_id).run()
        assert not at.exception, at.exception
        assert any("diverged" in m.value for m in at.markdown)
    at.switch_page("app_pages/report.py").run()
    at.radio(key="report_source").set_value("a stored run").run()
    for run_id in (diverged, legacy):
        at.selectbox(key="report_run").set_value(run_id).run()
        assert not at.exception, at.exception
        assert not at.error, [e.value for e in at.error]


def _phase_table(at: AppTest) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if "ε after the phase" in d.value.columns)


def test_phase_editor_adds_and_removes_phases_and_the_url_round_trips(fresh_cache):
    at = _set_plan(_app().run(), epochs=2, batch_size=1000, noise_multiplier=1.0)
    at.button(key="plan_add_phase").click().run()
    assert not at.exception
    at.number_input(key="phase1_batch_size").set_value(3000)
    at.number_input(key="phase1_noise_multiplier").set_value(2.0)
    at.number_input(key="phase1_epochs").set_value(3)
    at.number_input(key="phase1_steps").set_value(25)
    at.run()
    assert not at.exception
    first = dpplan.TrainingPlan(
        dataset_size=60000, batch_size=1000, noise_multiplier=1.0, epochs=2, delta=1e-5
    )
    phased = dpplan.PhasedPlan(
        phases=[first, first.replace(batch_size=3000, noise_multiplier=2.0, epochs=3)],
        phase_steps=[None, 25],
    )
    assert at.metric[0].value == _fmt(dpplan.compare(phased).headline_epsilon)
    assert at.metric[1].value == "2" and at.metric[3].value == f"{phased.total_steps:,}"
    table = _phase_table(at)
    assert list(table["batch size"]) == [1000, 3000] and list(table["steps"]) == [120, 25]
    last = min(dpplan.epsilon(phased, method=m) for m in dpplan.METHODS)
    assert table["ε after the phase"].iloc[-1] == pytest.approx(last)
    epochs = next(d.value for d in at.dataframe if "RDP ε" in d.value.columns)
    assert list(epochs["steps"]) == list(phased.epoch_ends())
    assert epochs["RDP ε"].iloc[-1] == pytest.approx(dpplan.epsilon(phased, method="rdp"))
    # The link carries the phases: a fresh session opened on it shows the same plan.
    params = {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    assert params["phases"] == "3000,2.0,3,25"
    again = _app(**params).run()
    assert not again.exception
    assert again.metric[0].value == at.metric[0].value
    assert list(_phase_table(again)["steps"]) == [120, 25]
    # Removing the phase gives the one-phase plan back, and the link drops the phases.
    again.button(key="plan_remove_phase").click().run()
    assert not again.exception
    assert again.metric[1].value == f"{first.sample_rate:.5g}"
    assert again.metric[0].value == _fmt(dpplan.compare(first).headline_epsilon)
    assert "phases" not in again.query_params


def test_phase_editor_names_a_bad_phase_field_and_a_bad_link():
    at = _app().run()
    at.button(key="plan_add_phase").click().run()
    at.number_input(key="phase1_batch_size").set_value(70000).run()
    assert not at.exception
    assert any("phase 2: batch_size=70000" in e.value for e in at.error)
    assert not at.metric
    broken = _app(phases="512,1.0").run()
    assert not broken.exception
    assert any("Ignored phases=" in _unescape(w.value) for w in broken.warning)
    assert broken.metric[1].value == f"{256 / 60000:.5g}"  # the one-phase default plan


def test_pages_that_act_on_one_plan_say_they_use_phase_one_of_a_phased_plan():
    sys.path.insert(0, str(Path(APP).parent))
    from components import phase_one_message

    first = dpplan.TrainingPlan(
        dataset_size=60000, batch_size=1000, noise_multiplier=1.0, epochs=2, delta=1e-5
    )
    two = dpplan.PhasedPlan(phases=[first, first.replace(batch_size=3000)])
    assert "phase 1 only" in phase_one_message(two, "solves")
    stopped = dpplan.PhasedPlan(phases=[first], phase_steps=[10])
    assert "phase 1 only" in phase_one_message(stopped, "trains")
    assert phase_one_message(None, "solves") is None
    assert phase_one_message(dpplan.PhasedPlan(phases=[first]), "solves") is None
    # The Solve, Train and Report pages show it (they act on one plan); Compare trains the
    # whole phased plan.
    for page in ("solve", "train", "report"):
        assert "phase_one_notice(" in (Path(APP).parent / "app_pages" / f"{page}.py").read_text()
    assert "phase_one_notice(" not in (Path(APP).parent / "app_pages" / "compare.py").read_text()


def test_the_runs_page_says_a_stopped_epochs_steps_are_counted(home):
    from dpplan.run_policy import run_epsilon
    from dpplan.train.specs import Constant, RunOptions

    run_store = RunStore(home)
    plan = dpplan.TrainingPlan(
        dataset_size=1000, batch_size=64, noise_multiplier=1.0, epochs=2, delta=1e-5
    )
    options = RunOptions(subset=1000, validation_size=200, device="cpu", method="rdp")
    run = _stub_start_run(plan, Constant(lr=0.1), options, store=run_store, group_id=None)
    run_store.finish_run(run.id, status="stopped", abandoned_steps=5)
    value, method = run_epsilon(run_store.get_run(run.id))
    longer = plan.replace(epochs=3)  # the 5 steps beyond the plan's 32 count
    expected = min(dpplan.epsilon_at(longer, steps=37, method=m) for m in dpplan.METHODS)
    assert value == pytest.approx(expected, rel=1e-9)
    assert value > dpplan.compare(plan).headline_epsilon
    at = _app(epochs=2).run()
    at.switch_page("app_pages/runs.py").run()
    assert not at.exception, at.exception
    [said] = [i.value for i in at.info if "abandoned" in i.value]
    assert "5 steps of an abandoned (stopped) epoch are counted" in said
    assert f"{_fmt(value)} ({method.upper()})" in said
