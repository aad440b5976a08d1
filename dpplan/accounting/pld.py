"""PLD backend: dp-accounting's privacy loss distributions (Koskela et al. 2020;
Doroshenko et al. 2022, connect-the-dots).

The single-step PLD of a Poisson-subsampled Gaussian is built once with the pessimistic
(upper-bound) discretisation, as dp-accounting's ``PLDAccountant`` builds it; the PLD after
``n`` steps is that PLD self-composed ``n`` times (one FFT power), so each point equals what
a fresh ``PLDAccountant`` would report for ``n`` steps.

**Bounded work.** The cost of a query grows with the number of grid cells: the single-step
PLD spans its privacy-loss range (about 1/(2σ²) for small σ) and the composed PLD its tail
bounds, each divided by the discretisation interval. Before any expensive call both sizes
are estimated cheaply (dp-accounting's own loss range and its self-convolution tail bounds,
on a coarse 2,000-point copy of the single-step PLD). If the configured interval would need
more than :data:`MAX_STEP_POINTS` or :data:`MAX_COMPOSED_POINTS` cells, the interval is
widened until it fits. A wider pessimistic grid still gives an upper bound, only a looser one.
It happens only for extreme plans (σ below about 0.2, or composed privacy-loss ranges of
hundreds of nats, typically ε in the hundreds or more); in the cases measured the bound moved
by less than 0.1% (e.g. 1025.927 instead of 1025.925 for σ = 0.1 over 976,570 steps). The
curve's settings record the interval used and why.

For long curves the intermediate epochs use a coarser grid (still pessimistic, so still upper
bounds, looser by a few thousandths of ε); the last point always uses the grid of a single
query for the plan, so it equals ``epsilon(plan)``. The settings of the curve record both
grids.
"""

from __future__ import annotations

import functools
import math

import dp_accounting
from dp_accounting.pld import common, privacy_loss_distribution, privacy_loss_mechanism

from dpplan.accounting.base import Backend, Computation
from dpplan.errors import AccountingError

__all__ = [
    "DEFAULT_VALUE_DISCRETIZATION_INTERVAL",
    "MAX_COMPOSED_POINTS",
    "MAX_STEP_POINTS",
    "PLDAccountant",
]

#: dp-accounting's default grid for the privacy loss.
DEFAULT_VALUE_DISCRETIZATION_INTERVAL = 1e-4
#: Curves with more intermediate points than this coarsen the grid of those points in
#: proportion, which bounds the time of a curve to about this many queries.
FULL_RESOLUTION_POINTS = 10
#: Most cells of the single-step PLD (each costs ~2 µs to build, twice for add/remove).
MAX_STEP_POINTS = 1 << 19
#: Most cells of a composed PLD (one complex FFT of this length: ~1 s and ~0.4 GB here).
MAX_COMPOSED_POINTS = 1 << 22
#: Most composed cells summed over a curve's intermediate epochs.
CURVE_COMPOSED_POINTS = 1 << 24
#: Cells of the coarse single-step PLD used to estimate grid sizes.
_PROBE_POINTS = 2000
#: dp-accounting's defaults: Gaussian tail truncation (ln mass) and composed tail mass.
_LOG_MASS_TRUNCATION_BOUND = -50.0
_TAIL_MASS_TRUNCATION = 1e-15


@functools.lru_cache(maxsize=32)
def _pld_per_step(sample_rate: float, noise_multiplier: float, interval: float):
    return privacy_loss_distribution.from_gaussian_mechanism(
        standard_deviation=noise_multiplier,
        sampling_prob=sample_rate,
        value_discretization_interval=interval,
        pessimistic_estimate=True,
        neighboring_relation=dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE,
    )


def _adjacencies(sample_rate: float):
    remove = privacy_loss_mechanism.AdjacencyType.REMOVE
    if sample_rate == 1:  # dp-accounting builds only the REMOVE distribution then
        return (remove,)
    return (remove, privacy_loss_mechanism.AdjacencyType.ADD)


@functools.lru_cache(maxsize=256)
def _step_loss_width(sample_rate: float, noise_multiplier: float) -> float:
    """Width (in nats) of the single-step privacy-loss range dp-accounting discretises."""
    width = 0.0
    for adjacency in _adjacencies(sample_rate):
        bounds = privacy_loss_mechanism.GaussianPrivacyLoss(
            noise_multiplier,
            sensitivity=1,
            pessimistic_estimate=True,
            log_mass_truncation_bound=_LOG_MASS_TRUNCATION_BOUND,
            sampling_prob=sample_rate,
            adjacency_type=adjacency,
        ).connect_dots_bounds()
        width = max(width, float(bounds.epsilon_upper) - float(bounds.epsilon_lower))
    if not (math.isfinite(width) and width >= 0):
        raise ArithmeticError(f"privacy-loss range {width!r}")
    return width


@functools.lru_cache(maxsize=256)
def _composed_loss_width(sample_rate: float, noise_multiplier: float, steps: int) -> float:
    """Estimated width (in nats) of the PLD after ``steps`` self-compositions.

    dp-accounting truncates the composed PLD to the tail bounds of
    ``common.compute_self_convolve_bounds``; they are computed here on a coarse copy of the
    single-step PLD, which costs milliseconds and predicts the width to a few percent.
    """
    probe, pld = _probe_pld(sample_rate, noise_multiplier)
    width = 0.0
    for pmf in (pld._pmf_remove, pld._pmf_add):  # sizes only: read the private arrays
        lower, upper = common.compute_self_convolve_bounds(pmf._probs, steps, _TAIL_MASS_TRUNCATION)
        width = max(width, (upper - lower + 1) * probe)
    return width


@functools.lru_cache(maxsize=32)
def _probe_pld(sample_rate: float, noise_multiplier: float):
    """A coarse (about 2,000-cell) single-step PLD, for sizing grids; (interval, PLD)."""
    probe = max(_step_loss_width(sample_rate, noise_multiplier) / _PROBE_POINTS, 1e-12)
    return probe, privacy_loss_distribution.from_gaussian_mechanism(
        standard_deviation=noise_multiplier,
        sampling_prob=sample_rate,
        value_discretization_interval=probe,
        pessimistic_estimate=True,
        neighboring_relation=dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE,
    )


def _round_up(value: float) -> float:
    """Round up to two significant digits (readable settings, shared cache entries)."""
    scale = 10.0 ** (math.floor(math.log10(value)) - 1)
    return math.ceil(value / scale * (1 - 1e-12)) * scale


class PLDAccountant(Backend):
    """Privacy-loss-distribution accounting through dp-accounting.

    Args:
        value_discretization_interval: width of the privacy-loss grid; smaller is tighter
            and slower. The pessimistic discretisation keeps every ε an upper bound. Plans
            that would need more than :data:`MAX_STEP_POINTS` or :data:`MAX_COMPOSED_POINTS`
            cells at this width use a wider grid (recorded in the curve's settings).
    """

    MAX_CURVE_POINTS = 100
    name = "pld"

    def __init__(
        self, value_discretization_interval: float = DEFAULT_VALUE_DISCRETIZATION_INTERVAL
    ) -> None:
        self.value_discretization_interval = float(value_discretization_interval)

    def grid_interval(self, *, sample_rate: float, noise_multiplier: float, steps: int) -> float:
        """Return the discretisation interval a query for ``steps`` steps uses.

        It is the configured interval unless that would need more than
        :data:`MAX_STEP_POINTS` single-step or :data:`MAX_COMPOSED_POINTS` composed cells;
        then it is the smallest (rounded up) interval within both limits.

        Raises:
            AccountingError: if the grid cannot be sized (e.g. a noise multiplier so small
                that the privacy-loss range overflows).
        """
        try:
            needed = max(
                _step_loss_width(sample_rate, noise_multiplier) / MAX_STEP_POINTS,
                _composed_loss_width(sample_rate, noise_multiplier, steps) / MAX_COMPOSED_POINTS,
            )
        except (ValueError, ArithmeticError, MemoryError) as exc:
            raise AccountingError(
                f"pld accountant cannot size its grid for sample_rate={sample_rate}, "
                f"noise_multiplier={noise_multiplier}, {steps:,} steps: {exc!r}. Try "
                "method='rdp'."
            ) from exc
        if not math.isfinite(needed):
            raise AccountingError(
                f"pld accountant cannot size its grid for sample_rate={sample_rate}, "
                f"noise_multiplier={noise_multiplier}: the privacy-loss range is not finite. "
                "Try method='rdp'."
            )
        interval = self.value_discretization_interval
        return interval if needed <= interval else _round_up(needed)

    def _compute(
        self, *, sample_rate: float, noise_multiplier: float, delta: float, steps: tuple[int, ...]
    ) -> Computation:
        """Return PLD ε upper bounds after each entry of ``steps``.

        Raises:
            AccountingError: if dp-accounting fails (e.g. out of memory) or the grid cannot
                be sized.
        """
        requested = self.value_discretization_interval
        interval = self.grid_interval(
            sample_rate=sample_rate, noise_multiplier=noise_multiplier, steps=steps[-1]
        )
        intermediate = len(steps) - 1
        coarse_interval = interval * max(1.0, intermediate / FULL_RESOLUTION_POINTS)
        if intermediate:
            # Each intermediate composition is at most as wide as the last one.
            width = _composed_loss_width(sample_rate, noise_multiplier, steps[-1])
            budget = intermediate * width / CURVE_COMPOSED_POINTS
            if budget > coarse_interval:
                coarse_interval = _round_up(budget)
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
            "tail_mass_truncation": _TAIL_MASS_TRUNCATION,
        }
        if interval != requested:
            settings["coarsened"] = (
                f"grid widened from {requested:g} to {interval:g} to bound the work (at "
                f"{requested:g} it would need more than {MAX_STEP_POINTS:,} single-step or "
                f"{MAX_COMPOSED_POINTS:,} composed cells); still pessimistic, so still an "
                "upper bound, only looser"
            )
        if coarse_interval != interval and intermediate:
            settings["intermediate_epochs_discretization_interval"] = coarse_interval
        return Computation(upper=tuple(epsilons), settings=settings)
