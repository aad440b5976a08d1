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

from dpplan.accounting import (
    METHODS,
    Comparison,
    EpsilonCurve,
    compare,
    epsilon,
    epsilon_curve,
    get_accountant,
    plan_warnings,
)
from dpplan.errors import AccountingError, DataError, DpplanError, InfeasibleTargetError, PlanError
from dpplan.plan import TrainingPlan
from dpplan.solve import solve_batch_size, solve_epochs, solve_noise_multiplier

__version__ = "0.1.0"

__all__ = [
    "METHODS",
    "AccountingError",
    "Comparison",
    "DataError",
    "DpplanError",
    "EpsilonCurve",
    "InfeasibleTargetError",
    "PlanError",
    "TrainingPlan",
    "__version__",
    "compare",
    "epsilon",
    "epsilon_curve",
    "get_accountant",
    "plan_warnings",
    "solve_batch_size",
    "solve_epochs",
    "solve_noise_multiplier",
]
