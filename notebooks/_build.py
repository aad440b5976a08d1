"""Build the notebooks from their reviewable sources in ``notebooks/src/``.

Each source is a Python file in the "percent" format: ``# %%`` starts a code cell (``# %%
tags=["parameters"]`` tags it), ``# %% [markdown]`` starts a Markdown cell whose lines are
written as ``# text``. This script writes ``notebooks/NN_name.ipynb`` for every
``src/NN_name.py``, without outputs; ``python notebooks/run_all.py --full`` then executes them
in place so the committed notebooks carry their figures.

    python notebooks/_build.py            # rebuild every notebook (clears outputs)
    python notebooks/_build.py --only 02  # rebuild the notebooks whose name contains "02"
    python notebooks/_build.py --check    # exit 1 if a notebook's cells differ from its source
    python notebooks/_build.py --resync   # copy re-formatted sources in, keeping the outputs
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "src"
_MARKER = re.compile(r"^# %%(?P<markdown> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$")


def parse(text: str) -> list[nbformat.NotebookNode]:
    """Return the cells of a percent-format source, in order."""
    cells: list[nbformat.NotebookNode] = []
    kind, tags, lines = None, [], []

    def flush() -> None:
        if kind is None:
            return
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        if kind == "markdown":
            body = "\n".join(re.sub(r"^# ?", "", line) for line in lines)
            cell = nbformat.v4.new_markdown_cell(body)
        else:
            cell = nbformat.v4.new_code_cell("\n".join(lines))
        if tags:
            cell.metadata["tags"] = list(tags)
        cells.append(cell)

    for line in text.splitlines():
        match = _MARKER.match(line)
        if match:
            flush()
            kind = "markdown" if match["markdown"] else "code"
            tags = json.loads(match["tags"]) if match["tags"] else []
            lines = []
        elif kind is not None:
            lines.append(line)
    flush()
    return cells


def build(source: Path) -> nbformat.NotebookNode:
    """Return the notebook of one source file, without outputs."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = parse(source.read_text(encoding="utf-8"))
    notebook.metadata["kernelspec"] = {
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "name": "python3",
    }
    notebook.metadata["language_info"] = {"name": "python"}
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"{source.stem[:2]}-{index:02d}"
    return notebook


def target_of(source: Path) -> Path:
    return HERE / f"{source.stem}.ipynb"


def sources() -> list[Path]:
    return sorted(SOURCES.glob("[0-9][0-9]_*.py"))


def _same(want: nbformat.NotebookNode, have: nbformat.NotebookNode) -> bool:
    """Whether two cells are the same: equal Markdown, or code with the same syntax tree
    (so a formatter's changes to either copy do not count)."""
    if want.cell_type != have.cell_type:
        return False
    if want.cell_type != "code" or want.source == have.source:
        return want.source == have.source
    try:
        return ast.dump(ast.parse(want.source)) == ast.dump(ast.parse(have.source))
    except SyntaxError:
        return False


def differences(source: Path) -> list[str]:
    """Return how the committed notebook's cells differ from its source (empty if none)."""
    target = target_of(source)
    if not target.exists():
        return [f"{target.name} is missing"]
    built = build(source).cells
    committed = nbformat.read(target, as_version=4).cells
    found = []
    if len(built) != len(committed):
        found.append(f"{target.name}: {len(committed)} cells, source has {len(built)}")
    for index, (want, have) in enumerate(zip(built, committed)):
        if not _same(want, have):
            found.append(f"{target.name}: cell {index} differs from {source.name}")
        elif want.metadata.get("tags", []) != have.metadata.get("tags", []):
            found.append(f"{target.name}: cell {index} tags differ")
    return found


def resync(source: Path) -> list[str]:
    """Copy the source's text into the committed notebook where the cells are the same
    (formatting only), keeping the outputs; return the cells that really differ."""
    found = differences(source)
    if found:
        return found
    target = target_of(source)
    notebook = nbformat.read(target, as_version=4)
    for want, have in zip(build(source).cells, notebook.cells):
        have.source = want.source
    nbformat.write(notebook, target)
    return []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="compare the committed notebooks with their sources"
    )
    parser.add_argument(
        "--resync",
        action="store_true",
        help="copy sources that differ only in formatting, keeping outputs",
    )
    parser.add_argument("--only", help="only the notebooks whose name contains this")
    args = parser.parse_args()
    if args.resync:
        found = [line for source in sources() for line in resync(source)]
        print("\n".join(found) or "notebooks resynced with their sources")
        return 1 if found else 0
    if args.check:
        found = [line for source in sources() for line in differences(source)]
        print("\n".join(found) or "notebooks match their sources")
        return 1 if found else 0
    for source in sources():
        if args.only and args.only not in source.stem:
            continue
        nbformat.write(build(source), target_of(source))
        print(f"wrote {target_of(source).relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
