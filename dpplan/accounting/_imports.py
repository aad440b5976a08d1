"""Load dp-accounting's RDP module without running ``dp_accounting/__init__.py`` first.

dp-accounting's package ``__init__`` imports everything it has: ``mechanism_calibration``
(scipy.optimize) and ``pld`` (scipy.signal, scipy.stats), about 1 s of a CLI call, while the
RDP accountant needs only ``dp_event``, ``privacy_accountant`` and ``rdp``. The CLI's RDP path
calls :func:`defer_dp_accounting_init` before importing the RDP backend: ``dp_accounting``
is then a package whose submodules import as usual, and whose ``__init__`` runs, into the
same module object, on the first access to any other name (``dp_accounting.PLDAccountant``,
``calibrate_dp_mechanism``, ...). Nothing changes for code that imports dp-accounting
normally; the classes are the same objects either way.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

__all__ = ["defer_dp_accounting_init"]


def defer_dp_accounting_init() -> bool:
    """Make ``import dp_accounting`` cheap until a name outside its submodules is used.

    Only for single-threaded callers (the CLI); does nothing if dp-accounting is already
    imported or cannot be found. Returns whether the package ``__init__`` was deferred.
    """
    if "dp_accounting" in sys.modules:
        return False
    spec = importlib.util.find_spec("dp_accounting")
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        return False
    package = types.ModuleType("dp_accounting")
    package.__spec__ = spec
    package.__file__ = spec.origin
    package.__path__ = list(spec.submodule_search_locations)
    package.__package__ = "dp_accounting"
    package.__loader__ = spec.loader

    def __getattr__(name: str):  # module-level __getattr__ (PEP 562)
        if name.startswith("__"):
            raise AttributeError(name)
        if importlib.util.find_spec(f"dp_accounting.{name}") is not None:
            return importlib.import_module(f"dp_accounting.{name}")
        # Any other name: run the real package __init__ in this module, once.
        package.__dict__.pop("__getattr__", None)
        spec.loader.exec_module(package)
        return getattr(package, name)

    package.__getattr__ = __getattr__
    sys.modules["dp_accounting"] = package
    return True
