"""dpplan: plan DP-SGD privacy budgets.

Build a :class:`TrainingPlan`, then ask for ε after every epoch with three accountants
(RDP, PRV, PLD), or solve for the noise multiplier, epochs or batch size that meet a target
ε. Every ε dpplan reports is an upper bound.

Example:
    >>> import dpplan
    >>> plan = dpplan.TrainingPlan(dataset_size=60000, batch_size=256,
    ...                            noise_multiplier=1.1, epochs=10, delta=1e-5)
    >>> round(dpplan.epsilon(plan, method="rdp"), 3)
    1.1
"""

from typing import TYPE_CHECKING

from dpplan.errors import (
    AccountingError,
    BudgetExhausted,
    DataError,
    DpplanError,
    InfeasibleTargetError,
    MissingDependencyError,
    NotFoundError,
    PlanError,
    StateConflictError,
    StoreError,
    UsageError,
)
from dpplan.ledger import Ledger
from dpplan.phased import PhasedPlan
from dpplan.plan import TrainingPlan

if TYPE_CHECKING:  # the accounting names load on first use (see __getattr__)
    from dpplan.accounting import (
        METHODS,
        Comparison,
        EpsilonCurve,
        compare,
        dp_accounting_accountant,
        epsilon,
        epsilon_at,
        epsilon_curve,
        get_accountant,
        plan_warnings,
    )
    from dpplan.solve import (
        Solution,
        solve_batch_size,
        solve_epochs,
        solve_noise_multiplier,
        solve_plan,
    )

#: Names whose modules import dp-accounting (~1 s); they load on first use, so
#: ``import dpplan``, ``dpplan --version`` and ``--help`` stay fast.
_LAZY = {
    "METHODS": "dpplan.accounting",
    "Comparison": "dpplan.accounting",
    "EpsilonCurve": "dpplan.accounting",
    "compare": "dpplan.accounting",
    "dp_accounting_accountant": "dpplan.accounting.privacy_accountant",
    "epsilon": "dpplan.accounting",
    "epsilon_curve": "dpplan.accounting",
    "epsilon_at": "dpplan.accounting.phased",
    "get_accountant": "dpplan.accounting",
    "plan_warnings": "dpplan.accounting",
    "Solution": "dpplan.solve",
    "solve_batch_size": "dpplan.solve",
    "solve_epochs": "dpplan.solve",
    "solve_noise_multiplier": "dpplan.solve",
    "solve_plan": "dpplan.solve",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dpplan' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0"

__all__ = [
    "METHODS",
    "AccountingError",
    "BudgetExhausted",
    "Comparison",
    "DataError",
    "DpplanError",
    "EpsilonCurve",
    "InfeasibleTargetError",
    "Ledger",
    "MissingDependencyError",
    "NotFoundError",
    "PhasedPlan",
    "PlanError",
    "Solution",
    "StateConflictError",
    "StoreError",
    "TrainingPlan",
    "UsageError",
    "__version__",
    "compare",
    "dp_accounting_accountant",
    "epsilon",
    "epsilon_at",
    "epsilon_curve",
    "get_accountant",
    "plan_warnings",
    "solve_batch_size",
    "solve_epochs",
    "solve_noise_multiplier",
    "solve_plan",
]
