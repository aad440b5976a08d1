"""PLD backend: dp-accounting's privacy loss distributions (Koskela et al. 2020;
Doroshenko et al. 2022, connect-the-dots).

The single-step PLD of a Poisson-subsampled Gaussian is built once with the pessimistic
(upper-bound) discretisation, as dp-accounting's ``PLDAccountant`` builds it; the PLD after
``n`` steps is that PLD self-composed ``n`` times (one FFT power), so each point equals what
a fresh ``PLDAccountant`` would report for ``n`` steps.

For long curves the intermediate epochs use a coarser grid (still pessimistic, so still upper
bounds, looser by a few thousandths of ε); the last point always uses the configured grid, so
it equals ``epsilon(plan)``. The settings of the curve record both grids.
"""

from __future__ import annotations

import functools

import dp_accounting
from dp_accounting.pld import privacy_loss_distribution

from dpplan.accounting.base import Backend, Computation
from dpplan.errors import AccountingError

__all__ = ["DEFAULT_VALUE_DISCRETIZATION_INTERVAL", "PLDAccountant"]

#: dp-accounting's default grid for the privacy loss.
DEFAULT_VALUE_DISCRETIZATION_INTERVAL = 1e-4
#: Curves with more intermediate points than this coarsen the grid of those points in
#: proportion, which bounds the time of a curve to about this many queries.
FULL_RESOLUTION_POINTS = 10


@functools.lru_cache(maxsize=32)
def _pld_per_step(sample_rate: float, noise_multiplier: float, interval: float):
    return privacy_loss_distribution.from_gaussian_mechanism(
        standard_deviation=noise_multiplier,
        sampling_prob=sample_rate,
        value_discretization_interval=interval,
        pessimistic_estimate=True,
        neighboring_relation=dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE,
    )


class PLDAccountant(Backend):
    """Privacy-loss-distribution accounting through dp-accounting.

    Args:
        value_discretization_interval: width of the privacy-loss grid; smaller is tighter
            and slower. The pessimistic discretisation keeps every ε an upper bound.
    """

    MAX_CURVE_POINTS = 100
    name = "pld"

    def __init__(
        self, value_discretization_interval: float = DEFAULT_VALUE_DISCRETIZATION_INTERVAL
    ) -> None:
        self.value_discretization_interval = float(value_discretization_interval)

    def _compute(
        self, *, sample_rate: float, noise_multiplier: float, delta: float, steps: tuple[int, ...]
    ) -> Computation:
        """Return PLD ε upper bounds after each entry of ``steps``.

        Raises:
            AccountingError: if dp-accounting fails (e.g. out of memory).
        """
        interval = self.value_discretization_interval
        intermediate = max(0, len(steps) - 1)
        coarse_interval = interval * max(1.0, intermediate / FULL_RESOLUTION_POINTS)
        try:
            epsilons = []
            for index, count in enumerate(steps):
                grid = interval if index == len(steps) - 1 else coarse_interval
                step = _pld_per_step(sample_rate, noise_multiplier, grid)
                epsilons.append(float(step.self_compose(count).get_epsilon_for_delta(delta)))
        except (ValueError, ArithmeticError, MemoryError) as exc:
            raise AccountingError(
                f"pld accountant failed for sample_rate={sample_rate}, "
                f"noise_multiplier={noise_multiplier}: {exc!r}. Try method='rdp' or 'prv'."
            ) from exc
        settings = {
            "value_discretization_interval": interval,
            "pessimistic_estimate": True,
            "tail_mass_truncation": 1e-15,
        }
        if coarse_interval != interval:
            settings["intermediate_epochs_discretization_interval"] = coarse_interval
        return Computation(upper=tuple(epsilons), settings=settings)
