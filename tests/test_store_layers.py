"""The store's place among the layers (issue 19): ``dpplan/store/`` imports nothing above it
(no accounting, trainer, sweeps, reports, CLI or app), its modules stay small, and no other
module uses a private name of the store.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STORE = sorted((ROOT / "dpplan" / "store").glob("*.py"))
#: What the store may import from dpplan: the bottom layers (plans, phased plans, the
#: torch-free epoch records) and itself.
ALLOWED = (
    "dpplan.errors",
    "dpplan.plan",
    "dpplan.phased",
    "dpplan.records",
    "dpplan._validate",
    "dpplan.store",
)


def _dpplan_imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every ``dpplan`` import in a file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dpplan"):
            names = [alias.name for alias in node.names]
            if node.module == "dpplan":  # `from dpplan import _validate`
                found += [(f"dpplan.{name}", []) for name in names]
            else:
                found.append((node.module, names))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.startswith("dpplan")]
    return found


@pytest.mark.parametrize("path", STORE, ids=lambda p: p.name)
def test_store_imports_only_lower_layers(path):
    for module, _ in _dpplan_imports(path):
        assert module.startswith(ALLOWED), f"{path.name} imports {module}"


@pytest.mark.parametrize("path", STORE, ids=lambda p: p.name)
def test_store_modules_stay_under_700_lines(path):
    assert len(path.read_text().splitlines()) <= 700


def test_no_private_store_name_is_used_elsewhere():
    files = [
        p
        for folder in ("dpplan", "app", "bench", "notebooks/src", "tests")
        for p in (ROOT / folder).rglob("*.py")
    ]
    used = [
        (str(p.relative_to(ROOT)), module, name)
        for p in files
        if p.parent != ROOT / "dpplan" / "store"
        for module, names in _dpplan_imports(p)
        if module.startswith("dpplan.store")
        for name in names
        if name.startswith("_")
    ]
    assert used == []


def test_run_policy_stays_below_the_trainer_and_the_cli():
    for module, _ in _dpplan_imports(ROOT / "dpplan" / "run_policy.py"):
        assert not module.startswith(
            ("dpplan.train", "dpplan.cli", "dpplan.report", "dpplan.sweep")
        )
