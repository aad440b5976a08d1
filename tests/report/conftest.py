"""Fixtures for the report tests: small plans, a run store, and one real CPU smoke run."""

from __future__ import annotations

import pytest
from report_helpers import PLAN

import dpplan
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
    from dpplan.train import Constant, RunOptions, start_run, training_set_size

    options = RunOptions(
        subset=1200,
        validation_size=200,
        test_subset=300,
        data_dir=str(folder),
        device="cpu",
        method="rdp",
    )
    plan = dpplan.TrainingPlan(
        dataset_size=training_set_size(options),
        batch_size=64,
        noise_multiplier=1.0,
        epochs=2,
        delta=1e-4,
    )
    store = RunStore(tmp_path_factory.mktemp("smoke-store"))
    run = start_run(plan, Constant(lr=0.3), options, store=store)
    return store, run
