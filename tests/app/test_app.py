"""The planner app, page by page, with Streamlit's AppTest (the trainer is stubbed)."""

from __future__ import annotations

import math
from pathlib import Path
from unittest import mock

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

import dpplan  # noqa: E402
from dpplan.store import EpochRecord, RunStore  # noqa: E402

APP = str(Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py")
PAGES = ["app_pages/plan.py", "app_pages/solve.py", "app_pages/train.py", "app_pages/report.py",
         "app_pages/compare.py", "app_pages/runs.py"]


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DPPLAN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


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
    plan = dpplan.TrainingPlan(dataset_size=60000, batch_size=512, noise_multiplier=1.3,
                               epochs=3, delta=1e-5)
    result = dpplan.compare(plan)
    assert at.metric[0].value == _fmt(result.headline_epsilon)
    assert at.metric[1].value == f"{plan.sample_rate:.5g}"
    assert at.metric[2].value == f"{plan.steps_per_epoch:,}"
    assert at.query_params["batch_size"] in ("512", ["512"])
    table = at.dataframe[0].value
    assert list(table["epoch"]) == [1, 2, 3]
    assert table["RDP ε"].iloc[-1] == pytest.approx(dpplan.epsilon(plan, method="rdp"))


def test_plan_from_the_url():
    at = _app(dataset_size=50000, batch_size=4096, noise_multiplier=1.5, epochs=2,
              delta=1e-5, max_grad_norm=1.0).run()
    assert not at.exception
    plan = dpplan.TrainingPlan(dataset_size=50000, batch_size=4096, noise_multiplier=1.5,
                               epochs=2, delta=1e-5)
    assert at.metric[0].value == _fmt(dpplan.compare(plan).headline_epsilon)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("batch_size", 70000, "batch_size=70000"), ("noise_multiplier", 0.0, "noise_multiplier=0"),
     ("delta", 0.0, "delta=0"), ("epochs", 0, "epochs=0")],
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
    plan = dpplan.TrainingPlan(dataset_size=60000, batch_size=256, noise_multiplier=1.1,
                               epochs=2, delta=1e-5)
    solved = dpplan.solve_noise_multiplier(plan, target_epsilon=1.5, method="rdp")
    assert at.metric[0].value == f"{solved.noise_multiplier:.4g}"
    assert at.metric[1].value == _fmt(dpplan.epsilon(solved, method="rdp"))
    adopt = next(b for b in at.button if b.label == "Adopt this plan")
    adopt.click().run()
    assert not at.exception
    assert at.number_input(key="plan_noise_multiplier").value == solved.noise_multiplier


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
            run_store.record_epoch(run_id, EpochRecord(
                epoch=epoch, steps=run.plan.steps_after(epoch), epsilon=curve[epoch - 1],
                epsilon_rdp=curve[epoch - 1], epsilon_opacus=curve[epoch - 1],
                train_loss=1.0 / epoch, validation_loss=1.0 / epoch,
                validation_accuracy=0.5 + 0.1 * epoch + 0.01 * run.seed,
                test_accuracy=0.5 + 0.1 * epoch + 0.01 * run.seed, lr=0.1, seconds=1.0))
        run_store.finish_run(run_id, status="finished")
    return True


def test_train_queues_a_run_and_shows_it(home):
    with mock.patch("dpplan.train.worker.ensure_worker", _fake_worker):
        at = _app(epochs=2).run()
        at.switch_page("app_pages/train.py").run()
        at.selectbox(key="train_schedule").set_value("plateau")
        at.number_input(key="train_lr").set_value(0.1)
        at.selectbox(key="train_device").set_value("cpu")
        at.button[0].click().run()
        assert not at.exception, at.exception
        assert any("Queued run #1" in s.value for s in at.success)
        assert any("55,000" in i.value for i in at.info)  # dataset_size derived from MNIST
    [run] = RunStore(home).list_runs()
    assert run.status == "finished" and run.plan.dataset_size == 55000
    assert run.schedule["kind"] == "plateau" and len(run.records) == 2
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


def test_compare_shows_schedules_at_equal_epsilon(home):
    with mock.patch("dpplan.train.worker.ensure_worker", _fake_worker):
        at = _app(epochs=2).run()
        at.switch_page("app_pages/compare.py").run()
        at.text_input(key="cmp_oc").set_value("1, 4")
        at.text_input(key="cmp_plateau").set_value("0.05")
        at.text_input(key="cmp_seeds").set_value("0, 1")
        at.button[0].click().run()
        assert not at.exception, at.exception
        assert any("Queued 6 runs" in s.value for s in at.success)
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert sorted(table["schedule"]) == ["one_cycle lr=1", "one_cycle lr=4", "plateau lr=0.05"]
    assert "best at ε ≤ 1" in table.columns


def test_compare_bad_grid_shows_error():
    at = _app(epochs=2).run()
    at.switch_page("app_pages/compare.py").run()
    at.text_input(key="cmp_oc").set_value("fast")
    at.button[0].click().run()
    assert any("one_cycle_lrs='fast'" in e.value for e in at.error)


def test_report_page_for_the_plan():
    at = _app(epochs=2).run()
    at.switch_page("app_pages/report.py").run()
    assert not at.exception, at.exception
    plan = dpplan.TrainingPlan(dataset_size=60000, batch_size=256, noise_multiplier=1.1,
                               epochs=2, delta=1e-5)
    assert at.metric[0].value == f"{dpplan.compare(plan).headline_epsilon:.3f}"
    assert len(at.get("download_button")) == 3


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
