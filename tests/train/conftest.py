"""Shared fixtures for the trainer tests: real MNIST from the shared folder, a temp store.

In-process training tests read the shared MNIST folder through a loader that verifies and
parses the four files once per session (each load costs ~0.6 s); any other folder goes
through the real :func:`dpplan.train.data.load_mnist`, so the data-folder checks are real.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_MNIST = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"

_LOADED: dict[tuple[Path, str], object] = {}


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


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Train the tiny test models on one thread: as fast alone, and immune to the ~30x
    slowdown of torch's spinning worker threads when other processes share the 2 cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _shared_mnist_loaded_once(monkeypatch):
    """Make the trainer load the shared MNIST folder once per session, not once per run."""
    from dpplan.train import core

    real = core.load_mnist
    shared = Path(os.environ.get("DPPLAN_TEST_MNIST", SHARED_MNIST)).resolve()

    def load(data_dir=None, *, download=True, device="cpu", create_folder=True):
        folder = Path(data_dir).resolve() if data_dir is not None else None
        if folder != shared:
            return real(data_dir, download=download, device=device, create_folder=create_folder)
        key = (folder, str(device))
        if key not in _LOADED:
            _LOADED[key] = real(
                data_dir, download=download, device=device, create_folder=create_folder
            )
        return _LOADED[key]

    monkeypatch.setattr(core, "load_mnist", load)
