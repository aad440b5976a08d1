"""Where the suite finds MNIST (tests/mnist_data.py): the order, the skip, and CI=true failing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mnist_data import MNIST_FILES, find_mnist, mnist_candidates, require_mnist

TESTS = Path(__file__).resolve().parent


def _mnist_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    for name in MNIST_FILES:
        (path / name).write_bytes(b"")  # the lookup checks the files are there, not content
    return path


@pytest.fixture
def three(tmp_path) -> dict[str, Path]:
    return {name: _mnist_folder(tmp_path / name) for name in ("test_mnist", "data_dir", "shared")}


def test_lookup_order_test_folder_then_data_dir_then_shared(three):
    environ = {
        "DPPLAN_TEST_MNIST": str(three["test_mnist"]),
        "DPPLAN_DATA_DIR": str(three["data_dir"]),
    }
    assert find_mnist(environ, three["shared"]) == three["test_mnist"]
    (three["test_mnist"] / MNIST_FILES[-1]).unlink()  # incomplete: the next folder is used
    assert find_mnist(environ, three["shared"]) == three["data_dir"]
    del environ["DPPLAN_DATA_DIR"]
    assert find_mnist(environ, three["shared"]) == three["shared"]
    assert (
        find_mnist({"DPPLAN_DATA_DIR": str(three["data_dir"])}, three["shared"])
        == three["data_dir"]
    )
    assert [source for source, _ in mnist_candidates(environ, three["shared"])] == [
        "$DPPLAN_TEST_MNIST",
        "the shared folder",
    ]


def test_missing_mnist_skips_naming_every_folder(tmp_path):
    environ = {"DPPLAN_DATA_DIR": str(tmp_path / "empty"), "CI": "false"}
    with pytest.raises(pytest.skip.Exception, match="DPPLAN_DATA_DIR = .*empty.*shared folder"):
        require_mnist(environ, tmp_path / "no-shared")


def test_missing_mnist_fails_with_ci_true(tmp_path):
    with pytest.raises(pytest.fail.Exception, match="CI=true and MNIST IDX files"):
        require_mnist({"CI": "true"}, tmp_path / "no-shared")


def test_ci_true_fails_the_run_instead_of_skipping(tmp_path):
    # A whole pytest run, as CI starts it, on a test that needs MNIST with none to be found.
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(
            f"""
            import importlib.util
            import sys
            from pathlib import Path

            sys.path.insert(0, {str(TESTS)!r})
            import mnist_data

            mnist_data.SHARED_MNIST = Path({str(tmp_path / "no-shared")!r})
            spec = importlib.util.spec_from_file_location("suite_conftest", {str(TESTS / "conftest.py")!r})
            suite = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(suite)
            mnist_dir = suite.mnist_dir  # the suite's own fixture
            """
        )
    )
    (tmp_path / "test_needs_mnist.py").write_text("def test_it(mnist_dir):\n    pass\n")
    environ = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)}

    def run(**extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
            check=False,
            cwd=tmp_path,
            env={**environ, **extra},
            capture_output=True,
            text=True,
            timeout=120,
        )

    skipped = run(CI="false")
    assert skipped.returncode == 0 and "1 skipped" in skipped.stdout, skipped.stdout
    failed = run(CI="true")
    assert failed.returncode == 1 and "1 error" in failed.stdout, failed.stdout
    assert "CI=true and MNIST IDX files" in failed.stdout
