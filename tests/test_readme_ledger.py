"""The README's phased-plan, training-loop and dp-accounting sections run (issues 20, 23).

tests/test_readme.py runs every README block (when MNIST is present); this runs these three
sections on their own, so their examples are checked on any machine.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SECTIONS = (
    "## Phased plans and early stopping",
    "## Your own training loop: a ledger and a budget guard",
    "## dpplan inside dp-accounting",
)


def _section_blocks(heading: str) -> list[str]:
    text = README.read_text()
    start = text.index(heading + "\n")
    end = text.find("\n## ", start + len(heading))
    section = text[start : end if end >= 0 else len(text)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


@pytest.mark.parametrize("heading", SECTIONS, ids=["phased", "own-loop", "dp-accounting"])
def test_section_blocks_run(heading, capsys):
    blocks = _section_blocks(heading)
    assert blocks, f"no python block under {heading!r}"
    if "opacus" in "".join(blocks):
        pytest.importorskip("opacus")
    for block in blocks:
        exec(compile(block, str(README), "exec"), {"__name__": "__main__"})  # noqa: S102
    out = capsys.readouterr().out
    if heading == SECTIONS[1]:
        assert "still fit" in out and "Opacus stopped after" in out
    if heading == SECTIONS[2]:
        assert "σ = " in out
