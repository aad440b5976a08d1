"""The README's examples run and assert what they claim (like prv-accountant's test_readme)."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest
from mnist_data import require_mnist

from dpplan.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_python_blocks_run(capsys, tmp_path, monkeypatch):
    # Each block runs verbatim in a fresh namespace, as a reader pasting it would run it; the
    # environment is what a user sets (DPPLAN_DATA_DIR), not names injected by the test.
    monkeypatch.setenv("DPPLAN_HOME", str(tmp_path))
    mnist = require_mnist()  # skips without MNIST, fails with CI=true
    monkeypatch.setenv("DPPLAN_DATA_DIR", str(mnist))
    blocks = _blocks("python")
    assert len(blocks) >= 2, "README has no python examples"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {"__name__": "__main__"})  # noqa: S102
    out = capsys.readouterr().out
    assert "ε =" in out and "EpochRecord(epoch=1" in out


def _cli_examples() -> list[list[str]]:
    commands = []
    for block in _blocks("console"):
        for line in block.splitlines():
            if line.startswith("$ dpplan "):
                commands.append(shlex.split(line[len("$ dpplan ") :]))
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


def test_the_first_command_installs_every_extra_the_app_and_cli_use():
    # The README's commands install ".[all]"; PDF reports (app and --format pdf) must not
    # need a second install.
    assert '".[all]"' in _blocks("console")[0]
    pyproject = tomllib.loads((README.parent / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    [everything] = extras["all"]
    included = set(re.fullmatch(r"dpplan\[(.*)\]", everything).group(1).split(","))
    assert {"train", "app", "pdf", "sweep", "test"} <= included
