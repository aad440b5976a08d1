"""Shared fixtures for the trainer tests: real MNIST (``mnist_dir``, tests/conftest.py), a
temp store.

In-process training tests read the MNIST folder the suite found through a loader that
verifies and parses the four files once per session (each load costs ~0.6 s); any other
folder goes through the real :func:`dpplan.train.data.load_mnist`, so the data-folder
checks are real.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mnist_data import find_mnist
from tiny_runs import data_flags as tiny_data_flags

_LOADED: dict[tuple[Path, str], object] = {}


@pytest.fixture
def data_flags(mnist_dir):
    """CLI flags for the tiny MNIST run (tests/tiny_runs.py)."""
    return tiny_data_flags(mnist_dir)


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
    """Make the trainer load the suite's MNIST folder once per session, not once per run."""
    from dpplan.train import inputs

    real = inputs.load_mnist
    found = find_mnist()
    shared = found.resolve() if found is not None else None

    def load(data_dir=None, *, download=True, device="cpu", create_folder=True):
        folder = Path(data_dir).resolve() if data_dir is not None else None
        if shared is None or folder != shared:
            return real(data_dir, download=download, device=device, create_folder=create_folder)
        key = (folder, str(device))
        if key not in _LOADED:
            _LOADED[key] = real(
                data_dir, download=download, device=device, create_folder=create_folder
            )
        return _LOADED[key]

    monkeypatch.setattr(inputs, "load_mnist", load)
