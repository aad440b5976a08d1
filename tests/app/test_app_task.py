"""The app trains the user's own task (issue 21): the Task field on the Train and Compare
pages, with tasks defined the way a user defines them (tests/fixtures/user_tasks.py)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from unittest import mock

import pytest

pytest.importorskip("streamlit")
pytest.importorskip("torch")
from streamlit.testing.v1 import AppTest

from dpplan.store import RunStore

APP = str(Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py")
FIXTURES = str(Path(__file__).resolve().parents[1] / "fixtures")


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DPPLAN_HOME", str(tmp_path / "home"))
    monkeypatch.syspath_prepend(FIXTURES)  # the user's module is on the Python path
    return tmp_path / "home"


def _unescape(markdown: str) -> str:
    return re.sub(r"\\(.)", r"\1", markdown)


def _app(**params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in params.items():
        at.query_params[key] = str(value)
    return at.run()


def _train_inline(run_store: RunStore) -> bool:
    """The background worker's loop, run here: trains each queued run for real."""
    from dpplan.train.runs import run_queued

    while (run_id := run_store.claim_next_queued()) is not None:
        run_queued(run_id, store=run_store)
    return True


def _queue(at: AppTest, task: str, **values) -> AppTest:
    at.switch_page("app_pages/train.py").run()
    at.text_input(key="train_task").set_value(task)
    at.selectbox(key="train_device").set_value("cpu")
    at.number_input(key="train_threads").set_value(1)
    for key, value in values.items():
        at.number_input(key=f"train_{key}").set_value(value)
    return at.button[0].click().run()


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("not a spec", "module:function"),
        ("no_such_module_xyz:blobs", "no_such_module_xyz"),
        ("user_tasks:no_such_function", "no_such_function"),
        ("user_tasks:not_a_task", "user_tasks:not_a_task"),
        ("user_tasks:broken", "the data server is down"),
    ],
)
def test_a_bad_task_is_named_in_the_train_form_and_nothing_is_queued(home, spec, reason):
    with mock.patch("dpplan.train.worker.ensure_worker") as worker:
        at = _queue(_app(epochs=2), spec)
    assert not at.exception, at.exception
    errors = [_unescape(e.value) for e in at.error]
    assert any(e.startswith(f"task={spec!r}") and reason in e for e in errors), errors
    assert not at.success
    worker.assert_not_called()
    assert RunStore(home).list_runs() == []


def test_the_blobs_task_is_queued_with_its_dataset_size_and_trains(home):
    with mock.patch("dpplan.train.worker.ensure_worker", _train_inline):
        at = _queue(_app(epochs=2, batch_size=64), "user_tasks:blobs", lr=0.5)
    assert not at.exception, at.exception
    assert any("Queued run #1 of task blobs" in _unescape(s.value) for s in at.success)
    # The sidebar plan's 60,000 is replaced by the task's 400, and the note says so.
    assert any(
        "blobs gives 400 training examples (the sidebar plan has 60,000)" in _unescape(i.value)
        for i in at.info
    ), [i.value for i in at.info]
    [run] = RunStore(home).list_runs()
    assert (run.task, run.task_spec) == ("blobs", "user_tasks:blobs")
    assert run.task_fingerprint["train"]["examples"] == 400
    assert run.plan.dataset_size == 400 and run.plan.batch_size == 64
    assert run.status == "finished" and len(run.records) == 2
    assert 0.0 <= run.records[-1].test_accuracy <= 1.0
    at.switch_page("app_pages/runs.py").run()
    assert not at.exception, at.exception
    overview = at.dataframe[0].value
    assert overview["task"].tolist() == ["blobs"]
    assert any("**task** blobs (user_tasks:blobs)" in _unescape(m.value) for m in at.markdown)


def test_a_regression_task_shows_its_test_loss_and_metric(home):
    with mock.patch("dpplan.train.worker.ensure_worker", _train_inline):
        at = _queue(_app(epochs=2, batch_size=50), "user_tasks:regression", lr=0.1)
    assert not at.exception, at.exception
    [run] = RunStore(home).list_runs()
    assert run.task == "linear-regression" and run.plan.dataset_size == 300
    last = run.records[-1]
    assert math.isnan(last.test_accuracy) and math.isfinite(last.test_loss)
    at.switch_page("app_pages/runs.py").run()
    assert not at.exception, at.exception
    overview, *_, epochs = (d.value for d in at.dataframe)
    assert overview["test accuracy"].tolist() == ["—"]
    assert overview["test loss"].tolist() == [f"{last.test_loss:.4g}"]
    assert epochs["test mae"].tolist() == pytest.approx(
        [r.metrics["test_mae"] for r in run.records]
    )
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception, at.exception
    assert any("test loss against ε" in i.value for i in at.info)


def test_compare_refuses_a_bad_task_in_the_form(home):
    with mock.patch("dpplan.background.launch_detached") as launch:
        at = _app(epochs=2)
        at.switch_page("app_pages/compare.py").run()
        at.text_input(key="cmp_task").set_value("user_tasks:nope")
        at.button[0].click().run()
    assert not at.exception, at.exception
    assert any("task='user_tasks:nope'" in _unescape(e.value) for e in at.error)
    launch.assert_not_called()


def test_compare_launches_the_task_with_its_dataset_size(home):
    with mock.patch("dpplan.background.launch_detached", return_value=(77, Path("x.log"))) as go:
        at = _app(epochs=2)
        at.switch_page("app_pages/compare.py").run()
        at.text_input(key="cmp_task").set_value("user_tasks:blobs")
        at.text_input(key="cmp_oc").set_value("1")
        at.text_input(key="cmp_plateau").set_value("0.1")
        at.text_input(key="cmp_seeds").set_value("0")
        at.button[0].click().run()
    assert not at.exception, at.exception
    assert any("process 77" in s.value for s in at.success)
    assert any("400 training examples" in i.value for i in at.info)
    module, request = go.call_args.args
    assert module == "dpplan.train.compare"
    assert request["task"] == "user_tasks:blobs"
    assert request["plan"]["dataset_size"] == 400
