"""Shared fixtures for the trainer tests: real MNIST from the shared folder, a temp store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_MNIST = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    folder = Path(os.environ.get("DPPLAN_TEST_MNIST", SHARED_MNIST))
    if not (folder / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"MNIST IDX files not found in {folder} (set DPPLAN_TEST_MNIST)")
    return folder


@pytest.fixture
def store(tmp_path, monkeypatch):
    from dpplan.store import RunStore

    monkeypatch.setenv("DPPLAN_HOME", str(tmp_path / "home"))
    return RunStore(tmp_path / "home")
