"""RDP backend: dp-accounting's ``RdpAccountant`` (Mironov 2017; Canonne et al. 2020).

RDP composes linearly in the number of steps, so the per-step RDP vector of one
Poisson-subsampled Gaussian step is computed once (by dp-accounting) and every epoch's ε is
the library's RDP-to-(ε, δ) conversion of ``steps * rdp_per_step``.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant

from dpplan.accounting.base import Backend, Computation, result_cache
from dpplan.errors import AccountingError

__all__ = ["DEFAULT_ORDERS", "RDPAccountant"]

#: dp-accounting's default orders (1.1 ... 1024). When the optimal order lands on an edge
#: of the grid the curve carries a warning.
DEFAULT_ORDERS: tuple[float, ...] = tuple(
    float(o) for o in rdp_privacy_accountant.DEFAULT_RDP_ORDERS
)


class _CountExcludedOrders(logging.Filter):
    """Swallow dp-accounting's per-order "failed to converge" log lines, counting them."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if "Excluding this order" in record.getMessage():
            self.count += 1
            return False
        return True


@result_cache(maxsize=256)
def rdp_per_step(sample_rate: float, noise_multiplier: float, orders: tuple[float, ...]):
    """Return (per-step RDP vector, number of orders dp-accounting excluded)."""
    accountant = rdp_privacy_accountant.RdpAccountant(orders=list(orders))
    event = dp_event.PoissonSampledDpEvent(
        sampling_probability=sample_rate,
        event=dp_event.GaussianDpEvent(noise_multiplier=noise_multiplier),
    )
    counter = _CountExcludedOrders()
    logger = logging.getLogger("absl")
    logger.addFilter(counter)
    try:
        accountant.compose(event, 1)
    finally:
        logger.removeFilter(counter)
    rdp = accountant.rdp
    rdp.setflags(write=False)
    return rdp, counter.count


class RDPAccountant(Backend):
    """Rényi-DP accounting through dp-accounting.

    Args:
        orders: the RDP orders to optimise over (each > 1). The default covers ε from
            about 0.01 to several hundred.
    """

    name = "rdp"

    def __init__(self, orders: tuple[float, ...] = DEFAULT_ORDERS) -> None:
        self.orders = tuple(float(order) for order in orders)

    def _compute(
        self, *, sample_rate: float, noise_multiplier: float, delta: float, steps: tuple[int, ...]
    ) -> Computation:
        """Return RDP ε upper bounds after each entry of ``steps``.

        Raises:
            AccountingError: if dp-accounting fails.
        """
        try:
            rdp, excluded = rdp_per_step(sample_rate, noise_multiplier, self.orders)
            orders = np.asarray(self.orders)
            results = [
                rdp_privacy_accountant.compute_epsilon(orders, rdp * count, delta)
                for count in steps
            ]
        except (ValueError, ArithmeticError) as exc:
            raise AccountingError(
                f"rdp accountant failed for sample_rate={sample_rate}, "
                f"noise_multiplier={noise_multiplier}: {exc}. Try method='pld'."
            ) from exc
        epsilons = tuple(float(epsilon) for epsilon, _ in results)
        optimal_order = float(results[-1][1])
        warnings: tuple[str, ...] = ()
        if excluded:
            warnings += (
                (
                    f"dp-accounting excluded {excluded} of {len(self.orders)} RDP orders whose "
                    "series did not converge (they cannot lower ε, so the bound stays valid)."
                ),
            )
        if optimal_order in (self.orders[0], self.orders[-1]) and math.isfinite(epsilons[-1]):
            warnings += (
                (
                    f"The optimal RDP order {optimal_order:g} is at the edge of the order grid "
                    f"[{self.orders[0]:g}, {self.orders[-1]:g}], so the RDP bound may be loose; "
                    "compare with method='prv' or 'pld'."
                ),
            )
        return Computation(
            upper=epsilons,
            settings={
                "orders": f"{len(self.orders)} orders in [{self.orders[0]:g}, {self.orders[-1]:g}]",
                "optimal_order": optimal_order,
                "conversion": "Canonne, Kamath, Steinke 2020, Prop. 12 (via dp-accounting)",
            },
            warnings=warnings,
        )
