"""Where the test suite finds MNIST: one rule for every test that trains or reads the data.

The folders looked at, in order (the first that holds the four IDX ``.gz`` files wins):

1. ``$DPPLAN_TEST_MNIST`` (a copy kept for the tests);
2. ``$DPPLAN_DATA_DIR`` (where dpplan itself reads MNIST, so a user's data is found);
3. ``../shared/data/mnist`` next to the repository (the team's shared copy).

Without MNIST the tests that need it skip, and the skip says where it looked. With
``CI=true`` they fail instead: a CI run that silently skipped the training tests would pass
without testing them. The suite never downloads MNIST.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest

#: The four files (as in ``dpplan.train.data.MNIST_FILES``; not imported, so this module
#: does not load torch).
MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
#: The environment variables looked at, in order.
MNIST_ENV = ("DPPLAN_TEST_MNIST", "DPPLAN_DATA_DIR")
SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def mnist_candidates(
    environ: Mapping[str, str] | None = None, shared: Path | None = None
) -> list[tuple[str, Path]]:
    """The folders to look in, in order, each with where it came from."""
    environ = os.environ if environ is None else environ
    candidates = [(f"${name}", Path(environ[name])) for name in MNIST_ENV if environ.get(name)]
    return candidates + [("the shared folder", SHARED_MNIST if shared is None else shared)]


def has_mnist(folder: Path) -> bool:
    """Whether ``folder`` holds the four MNIST files."""
    return all((folder / name).is_file() for name in MNIST_FILES)


def find_mnist(environ: Mapping[str, str] | None = None, shared: Path | None = None) -> Path | None:
    """The first folder of :func:`mnist_candidates` that holds MNIST, or None."""
    return next((p for _, p in mnist_candidates(environ, shared) if has_mnist(p)), None)


def in_ci(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this is a CI run (``CI=true``, as GitHub Actions and GitLab CI set it)."""
    environ = os.environ if environ is None else environ
    return environ.get("CI", "").strip().lower() in ("true", "1")


def require_mnist(environ: Mapping[str, str] | None = None, shared: Path | None = None) -> Path:
    """Return the MNIST folder; skip the test without one, or fail it under ``CI=true``."""
    found = find_mnist(environ, shared)
    if found is not None:
        return found
    looked = "; ".join(f"{source} = {path}" for source, path in mnist_candidates(environ, shared))
    message = (
        f"MNIST IDX files ({', '.join(MNIST_FILES)}) not found in: {looked}. Set "
        "DPPLAN_TEST_MNIST or DPPLAN_DATA_DIR to a folder that holds them."
    )
    if in_ci(environ):
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)
