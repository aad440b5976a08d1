"""Names a package loads on first use (PEP 562), so importing it stays cheap.

``dpplan`` defers the accounting names (dp-accounting takes about a second to import) and
``dpplan.train`` the names that import torch.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def lazy_names(
    package: str, modules: Mapping[str, tuple[str, ...]]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """Return ``(__getattr__, __dir__)`` for ``package``, loading each name on first use.

    Args:
        package: the package's ``__name__``.
        modules: module name -> the names it provides.

    Returns:
        The module-level ``__getattr__`` (which imports the name's module, keeps the value in
        the package's namespace and returns it) and ``__dir__`` (the names so far and the
        lazy ones).
    """
    where = {name: module for module, names in modules.items() for name in names}
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> object:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name]), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(where))

    return __getattr__, __dir__
