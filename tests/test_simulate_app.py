"""The Frontier page with a simulated sweep (issue 22): the form's K, the marking, no crash."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest
from sweep_fakes import store_fake_sweep

from dpplan.store import RunStore
from dpplan.sweep import SweepSpec
from dpplan.train import RunOptions

APP = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")
PAGE = "app_pages/frontier.py"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    import streamlit as st

    st.cache_resource.clear()
    monkeypatch.setenv("DPPLAN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    return at.switch_page(PAGE).run()


def test_the_form_launches_a_simulated_sweep_on_public_data():
    with mock.patch(
        "dpplan.sweep.background.launch_sweep", return_value=(4242, Path("/tmp/x.log"))
    ) as launch:
        at = page()
        at.number_input(key="sweep_simulate").set_value(4)
        at.checkbox(key="sweep_simulate_public").check()
        at.button(key="sweep_launch").click().run()
        assert not at.exception
    spec = launch.call_args.args[0]
    assert spec.simulate == 4 and spec.simulate_data == "validation"


def test_a_form_k_the_batch_sizes_refuse_is_an_error_naming_simulate():
    at = page()
    at.number_input(key="sweep_simulate").set_value(1024)  # B = 256: B/K < 1
    at.run()
    assert not at.exception
    assert any("simulate" in e.value for e in at.error)


def test_a_simulated_sweep_is_shown_as_a_prediction(home):
    spec = SweepSpec(
        target_epsilons=(1, 3),
        delta=1e-5,
        batch_sizes=(256,),
        epochs=(1,),
        schedules=("one_cycle",),
        one_cycle_lrs=(0.5, 2),
        seeds=(0,),
        options=RunOptions(subset=2000),
        simulate=2,
    )
    store_fake_sweep(RunStore(home), spec, lambda t: 0.5 + 0.1 * t.lr + 0.05 * t.target_epsilon)
    at = page()
    assert not at.exception
    warning = " ".join(w.value for w in at.warning)
    assert "Predicted (sim K=2)" in warning and "not a trained result" in warning
    assert any("simulated trials" in c.value for c in at.caption)
