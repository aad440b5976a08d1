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

from dpplan._lazy import lazy_names
from dpplan.errors import *  # the whole hierarchy (errors.__all__), listed in __all__ below
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
__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "dpplan.accounting": (
            "METHODS",
            "Comparison",
            "EpsilonCurve",
            "compare",
            "epsilon",
            "epsilon_curve",
            "get_accountant",
            "plan_warnings",
        ),
        "dpplan.accounting.privacy_accountant": ("dp_accounting_accountant",),
        "dpplan.accounting.phased": ("epsilon_at",),
        "dpplan.solve": (
            "Solution",
            "solve_batch_size",
            "solve_epochs",
            "solve_noise_multiplier",
            "solve_plan",
        ),
    },
)

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
