"""``clear_caches`` empties every cache of the accounting modules (issue 19).

Benchmarks call it to time cold queries, so a cache it missed would make a "cold" time warm.
Each cache registers itself (``base.result_cache`` / ``base.register_cache``); these tests
fail if a module adds a cache some other way, or if a registered cache survives a clear.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from dpplan.accounting import base, clear_caches, compare, get_accountant
from dpplan.plan import TrainingPlan

FOLDER = Path(base.__file__).parent
MODULES = sorted(FOLDER.glob("*.py"))
#: Module-level containers that are not caches of results.
NOT_CACHES = {"__init__.py": {"_BACKENDS"}, "base.py": {"CACHE_CLEARERS"}}


def _decorator_name(node: ast.expr) -> str:
    target = node.func if isinstance(node, ast.Call) else node
    return ast.unparse(target)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_every_cache_decorator_registers_itself(path):
    raw = [
        f"{path.name}:{node.lineno} {node.name}"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for decorator in node.decorator_list
        if _decorator_name(decorator).split(".")[-1] in {"cache", "lru_cache", "cached_property"}
    ]
    assert raw == [], "use base.result_cache so clear_caches empties it"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_every_module_level_dict_cache_is_registered(path):
    empty = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.AnnAssign | ast.Assign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            value = node.value
            is_empty_container = (
                (isinstance(value, ast.Dict) and not value.keys)
                or (isinstance(value, ast.List) and not value.elts)
                or (
                    isinstance(value, ast.Call)
                    and _decorator_name(value).split(".")[-1]
                    in {"dict", "OrderedDict", "defaultdict"}
                )
            )
            for target in targets:
                name = ast.unparse(target)
                if is_empty_container and name not in NOT_CACHES.get(path.name, set()):
                    empty.append(f"{path.name}:{node.lineno} {name}")
    assert empty == [], "wrap a module-level cache in base.register_cache({})"


def test_the_checks_find_an_unregistered_cache(tmp_path, monkeypatch):
    planted = tmp_path / "planted.py"
    planted.write_text(
        "import functools\n_SEEN: dict = {}\n@functools.lru_cache(maxsize=4)\ndef f(x):\n"
        "    return x\n"
    )
    with pytest.raises(AssertionError):
        test_every_cache_decorator_registers_itself(planted)
    with pytest.raises(AssertionError):
        test_every_module_level_dict_cache_is_registered(planted)


def test_clear_caches_empties_every_registered_cache():
    plan = TrainingPlan(
        dataset_size=60_000, batch_size=256, noise_multiplier=1.1, epochs=2, delta=1e-5
    )
    compare(plan)
    get_accountant("prv").estimate_upper(
        sample_rate=plan.sample_rate,
        noise_multiplier=plan.noise_multiplier,
        delta=plan.delta,
        steps=plan.total_steps,
    )
    prv = importlib.import_module("dpplan.accounting.prv")
    assert prv._DOMAINS  # the estimate filled a registered dict cache
    modules = [
        importlib.import_module(
            "dpplan.accounting" if path.stem == "__init__" else f"dpplan.accounting.{path.stem}"
        )
        for path in MODULES
    ]
    lru = [
        value
        for module in modules
        for value in vars(module).values()
        if hasattr(value, "cache_info")
    ]
    assert any(cache.cache_info().currsize for cache in lru)
    assert len(base.CACHE_CLEARERS) >= len(lru)
    clear_caches()
    assert [cache for cache in lru if cache.cache_info().currsize] == []
    assert prv._DOMAINS == {}
