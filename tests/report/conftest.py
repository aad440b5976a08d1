"""Fixtures for the report tests: small plans, a run store, and one real CPU smoke run."""

from __future__ import annotations

import pytest
from report_helpers import PLAN

from dpplan.store import RunStore


@pytest.fixture
def store(tmp_path, monkeypatch) -> RunStore:
    monkeypatch.setenv("DPPLAN_HOME", str(tmp_path / "home"))
    return RunStore(tmp_path / "home")


@pytest.fixture(scope="session")
def plan_report():
    from dpplan.report import build_report

    return build_report(PLAN, title="MNIST plan", notes="Planned for the MNIST study.")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, mnist_dir):
    """One real DP-SGD run on 1,000 MNIST examples on the CPU (~20 s), shared by the tests."""
    folder = mnist_dir  # tests/conftest.py: skips without MNIST, fails with CI=true
    pytest.importorskip("torch")
    pytest.importorskip("opacus")
    from tiny_runs import tiny_options, tiny_plan

    from dpplan.train import Constant, start_run

    options = tiny_options(folder, subset=1200)
    plan = tiny_plan(options)
    store = RunStore(tmp_path_factory.mktemp("smoke-store"))
    run = start_run(plan, Constant(lr=0.3), options, store=store)
    return store, run
