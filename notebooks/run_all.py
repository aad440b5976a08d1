"""Execute the notebooks: quick (into a temporary folder) or full (in place, for committing).

    python notebooks/run_all.py --quick                  # QUICK = True, CPU, into a temp folder
    python notebooks/run_all.py --full                   # QUICK = False, written in place
    python notebooks/run_all.py --full --only 02         # one notebook (name or number)
    python notebooks/run_all.py --quick --output-dir out # keep the executed quick copies
    python notebooks/run_all.py --full --device cuda     # the published scale, on a GPU

Quick mode injects a cell ``QUICK = True`` after the cell tagged ``parameters`` (papermill's
convention) and never touches the committed files. Full mode runs the notebooks as committed
(``QUICK = False``) and writes them back with their outputs. MNIST is read from
``$DPPLAN_DATA_DIR`` (or dpplan's per-user cache). ``--threads N`` sets ``OMP_NUM_THREADS``
for the kernels: 1 is fastest for these small models on a CPU shared with other work.
The training notebooks run the published scale (all of MNIST, 25 and 60 epochs) when their
kernel sees a GPU and reduced CPU settings otherwise; ``--device cuda`` refuses to start
without a GPU (so a published-scale run cannot silently fall back to the CPU settings), and
``--device cpu`` hides any GPU from the kernels (``CUDA_VISIBLE_DEVICES=""``).
Needs nbclient, nbformat, ipykernel and matplotlib (``pip install -e ".[notebooks]"``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
KERNEL = "python3"


def notebooks(only: str | None = None) -> list[Path]:
    """Return the notebooks in order, or those whose name contains ``only``."""
    found = sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
    if only:
        found = [path for path in found if only in path.stem]
    return found


def with_quick(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Insert ``QUICK = True`` after the ``parameters`` cell, tagged ``injected-parameters``."""
    for index, cell in enumerate(notebook.cells):
        if "parameters" in cell.metadata.get("tags", []):
            injected = nbformat.v4.new_code_cell(
                "# Parameters injected by run_all.py\nQUICK = True"
            )
            injected.metadata["tags"] = ["injected-parameters"]
            injected["id"] = "injected-parameters"
            notebook.cells.insert(index + 1, injected)
            return notebook
    raise ValueError("the notebook has no cell tagged 'parameters'")


def execute(
    path: Path, *, quick: bool, output_dir: Path | None = None, timeout: int = 1800
) -> tuple[nbformat.NotebookNode, float, Path]:
    """Execute one notebook and write it: into ``output_dir`` (quick) or in place (full).

    Returns:
        The executed notebook, the seconds it took, and where it was written.

    Raises:
        nbclient.exceptions.CellExecutionError: if a cell raised.
    """
    notebook = nbformat.read(path, as_version=4)
    if quick:
        notebook = with_quick(notebook)
        output_dir = Path(output_dir or tempfile.mkdtemp(prefix="dpplan-notebooks-"))
        output_dir.mkdir(parents=True, exist_ok=True)
        target, workdir = output_dir / path.name, output_dir
    else:
        target, workdir = path, path.parent
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name=KERNEL,
        record_timing=False,
        resources={"metadata": {"path": str(workdir)}},
    )
    started = time.perf_counter()
    try:
        client.execute()
    finally:
        seconds = time.perf_counter() - started
        nbformat.write(notebook, target)
    return notebook, seconds, target


def count_outputs(notebook: nbformat.NotebookNode, mime: str = "image/png") -> int:
    """Return how many outputs of ``notebook`` carry ``mime``."""
    return sum(
        mime in output.get("data", {})
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="QUICK = True, into a temp folder")
    mode.add_argument("--full", action="store_true", help="QUICK = False, written in place")
    parser.add_argument("--only", help="run only the notebooks whose name contains this")
    parser.add_argument("--output-dir", type=Path, help="where quick runs are written")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for the kernels")
    parser.add_argument(
        "--timeout", type=int, default=1800, help="seconds a single cell may run (default 1800)"
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="cuda: require a GPU (published scale); cpu: hide GPUs (reduced settings)",
    )
    args = parser.parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    elif args.device == "cuda" and not _cuda_available():
        print(
            "--device cuda: no CUDA GPU is visible to torch here; the published-scale runs "
            "need one (use --device auto or cpu for the reduced CPU settings)",
            file=sys.stderr,
        )
        return 2
    quick = not args.full
    paths = notebooks(args.only)
    if not paths:
        print("no notebook matches", file=sys.stderr)
        return 2
    total = 0.0
    for path in paths:
        notebook, seconds, target = execute(
            path, quick=quick, output_dir=args.output_dir, timeout=args.timeout
        )
        total += seconds
        print(
            f"{path.name}: {seconds:.0f} s, {count_outputs(notebook)} figures -> {target}",
            flush=True,
        )
    print(f"{len(paths)} notebooks, {total:.0f} s ({'quick' if quick else 'full'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
