"""The README's examples run and assert what they claim (like prv-accountant's test_readme)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from dpplan.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


MNIST_DIR = README.parents[1] / "shared" / "data" / "mnist"


def test_readme_python_blocks_run(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DPPLAN_HOME", str(tmp_path))
    blocks = _blocks("python")
    assert len(blocks) >= 2, "README has no python examples"
    namespace = {"MNIST_DIR": str(MNIST_DIR)}  # blocks build on each other, as a reader would
    for block in blocks:
        if "MNIST_DIR" in block and not (MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
            pytest.skip(f"MNIST not found in {MNIST_DIR}")
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
    out = capsys.readouterr().out
    assert "ε =" in out and "EpochRecord(epoch=1" in out


def _cli_examples() -> list[list[str]]:
    commands = []
    for block in _blocks("console"):
        for line in block.splitlines():
            if line.startswith("$ dpplan "):
                commands.append(shlex.split(line[len("$ dpplan "):]))
    return commands


@pytest.mark.parametrize("argv", _cli_examples(), ids=lambda argv: " ".join(argv[:2]))
def test_readme_cli_examples_succeed(argv, capsys):
    assert main(argv) == 0
    assert capsys.readouterr().out.strip()


def test_readme_names_the_two_commands():
    text = README.read_text()
    setup = _blocks("console")[:2]
    assert "dpplan" in setup[0] and "pytest" in setup[1]
    ci = (README.parent / ".ci" / "run").read_text()
    assert setup[1].strip() in ci, ".ci/run must call the README's test command"
    assert "## Two commands" in text
