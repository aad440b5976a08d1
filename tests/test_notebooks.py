"""The notebooks (issue 13): they run in quick mode on the CPU and draw their figures; the
committed copies carry a full run's outputs, match their sources and use only the public API.

Each notebook is executed by ``notebooks/run_all.py`` with ``QUICK = True`` injected after its
``parameters`` cell, into a temporary folder (never over the committed file), with MNIST from
the folder ``tests/mnist_data.py`` finds; the training notebooks skip without it (fail with
``CI=true``). All four take about 2 minutes on 2 shared cores.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import sys
from pathlib import Path

import pytest
from mnist_data import find_mnist, require_mnist

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = (
    "01_accounting",
    "02_super_convergence",
    "03_tempered_sigmoids",
    "04_tour",
    "05_ledger",
    "06_own_task",
)
TRAINS = {"02_super_convergence", "03_tempered_sigmoids", "04_tour"}


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_notebooks_{name}", NOTEBOOKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run_all():
    return _load("run_all")


@pytest.fixture(scope="module")
def build():
    return _load("_build")


def _outputs(notebook, output_type: str | None = None):
    for cell in notebook.cells:
        if cell.cell_type == "code":
            for output in cell.get("outputs", []):
                if output_type is None or output.get("output_type") == output_type:
                    yield output


def test_the_four_notebooks_and_their_sources_exist(build):
    assert tuple(path.stem for path in build.sources()) == NAMES
    assert all((NOTEBOOKS / f"{name}.ipynb").exists() for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_in_quick_mode_and_draws_figures(name, run_all, tmp_path, monkeypatch):
    mnist = require_mnist() if name in TRAINS else find_mnist()  # skips, or fails in CI
    if mnist is not None:
        monkeypatch.setenv("DPPLAN_DATA_DIR", str(mnist))
    monkeypatch.setenv("DPPLAN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MPLBACKEND", "Agg")  # the notebooks select the inline backend
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # small models; the cores are shared
    committed = NOTEBOOKS / f"{name}.ipynb"
    before = committed.read_bytes()

    notebook, seconds, written = run_all.execute(
        committed, quick=True, output_dir=tmp_path / "out", timeout=600
    )

    assert written == tmp_path / "out" / committed.name
    assert committed.read_bytes() == before  # never executed over the committed file
    assert any("injected-parameters" in cell.metadata.get("tags", []) for cell in notebook.cells)
    assert not list(_outputs(notebook, "error"))
    assert run_all.count_outputs(notebook, "image/png") >= 1
    assert any(
        "QUICK = True" in output.get("data", {}).get("text/markdown", "")
        for output in _outputs(notebook)
    )  # the run header states the mode
    print(f"{name}: {seconds:.0f} s")


def test_quick_injection_follows_the_parameters_cell(run_all):
    notebook = nbformat.read(NOTEBOOKS / "04_tour.ipynb", as_version=4)
    index = next(
        i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])
    )
    assert notebook.cells[index].source.startswith("QUICK = False")
    injected = run_all.with_quick(notebook).cells[index + 1]
    assert injected.metadata["tags"] == ["injected-parameters"]
    assert injected.source.endswith("QUICK = True")


def test_committed_notebooks_match_their_sources(build):
    assert [line for source in build.sources() for line in build.differences(source)] == []


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_carries_a_full_run(name):
    path = NOTEBOOKS / f"{name}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    assert not list(_outputs(notebook, "error"))
    assert all(
        cell.execution_count is not None for cell in notebook.cells if cell.cell_type == "code"
    )
    figures = [
        output["data"]["image/png"]
        for output in _outputs(notebook)
        if "image/png" in output.get("data", {})
    ]
    assert figures, "commit the notebook with the outputs of run_all.py --full"
    assert max(len(figure) for figure in figures) < 200_000  # base64 PNG at modest DPI
    assert path.stat().st_size < 1_500_000
    header = "".join(
        output.get("data", {}).get("text/markdown", "") for output in _outputs(notebook)
    )
    assert "QUICK = False" in header and "dpplan 0." in header and "Run on 20" in header


def _dpplan_imports(source: str):
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dpplan"):
            yield node.module, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("dpplan"):
                    yield alias.name, []


@pytest.mark.parametrize("name", NAMES)
def test_notebooks_use_only_the_public_api(name):
    pytest.importorskip("torch")
    source = (NOTEBOOKS / "src" / f"{name}.py").read_text(encoding="utf-8")
    for module_name, names in _dpplan_imports(source):
        assert not any(part.startswith("_") for part in module_name.split(".")), module_name
        module = importlib.import_module(module_name)
        for imported in names:
            assert imported in module.__all__, f"{module_name}.{imported} is not public"
    assert not re.search(r"\bdpplan(\.\w+)*\._[^_]", source), "a private dpplan name is used"


def test_full_run_on_cuda_refuses_without_a_gpu(run_all, monkeypatch, capsys):
    monkeypatch.setattr(run_all, "_cuda_available", lambda: False)
    monkeypatch.setattr(sys, "argv", ["run_all.py", "--full", "--device", "cuda"])
    monkeypatch.setattr(run_all, "execute", lambda *a, **k: pytest.fail("must not execute"))
    assert run_all.main() == 2
    assert "no CUDA GPU" in capsys.readouterr().err
