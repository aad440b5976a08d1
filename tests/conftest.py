"""Shared pytest configuration: the ``slow`` and ``gpu`` markers (STYLE §3.9).

* ``slow`` tests run only with ``--run-slow``.
* ``gpu`` tests are skipped unless ``torch.cuda.is_available()``. torch is imported lazily,
  only when a collected test carries the marker, so the accounting suite never loads it; a
  missing torch counts as "no GPU".
* ``mnist_dir``: the MNIST folder found by :mod:`mnist_data` (``$DPPLAN_TEST_MNIST``, then
  ``$DPPLAN_DATA_DIR``, then ``../shared/data/mnist``); without one the test skips, or fails
  under ``CI=true``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mnist_data import require_mnist


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="also run tests marked slow (long-running checks)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # pyproject.toml registers the same markers; repeating them here keeps the suite
    # self-contained (duplicate registrations are harmless).
    config.addinivalue_line("markers", "slow: long-running checks, run with --run-slow")
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU; skipped without one")


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--run-slow"):
        skip_slow = pytest.mark.skip(reason="slow test: run with --run-slow")
        for item in items:
            if item.get_closest_marker("slow") is not None:
                item.add_marker(skip_slow)
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if gpu_items and not _cuda_available():
        skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
        for item in gpu_items:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The MNIST folder (see :mod:`mnist_data`); skips without one, fails with ``CI=true``."""
    return require_mnist()
