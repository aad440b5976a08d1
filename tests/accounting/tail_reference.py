"""An independent, tail-accurate reference for PLD composition: no FFT at all.

The k-fold self-convolution of a single-step PMF is computed by repeated squaring with
``numpy.convolve``, which sums products directly (it never uses an FFT). Every cell is a sum
of non-negative products, so its float64 relative error is at most about
(number of products) × 2⁻⁵³ per convolution: tiny cells in the tail (1e-30 and below) are as
accurate, relatively, as the bulk. This is what the Fourier-domain fast paths cannot do, and
why it is a reference for tiny δ. Cells below ``FLOOR`` × the largest are dropped after each
convolution; the dropped mass above the kept cells is moved to +∞ (pessimistic), the dropped
mass below is at most 1e-60 of the total and cannot move δ ≥ 1e-14.

ε is read from the exact formula δ(ε) = m_∞ + Σ_{t_j > ε} p_j (1 − e^{ε − t_j}), solved within
the cell where it crosses δ.

Used by ``test_reference_tail.py``; also a script: ``python tests/accounting/tail_reference.py``
prints the reference values for the δ = 1e-12 plan at coarse grids.
"""

from __future__ import annotations

import math

import dp_accounting
import numpy as np
from dp_accounting.pld import privacy_loss_distribution

from dpplan.accounting import _internals

FLOOR = 1e-60


def _trim(cells: np.ndarray, offset: int) -> tuple[np.ndarray, int, float]:
    keep = np.flatnonzero(cells > FLOOR * cells.max())
    first, last = int(keep[0]), int(keep[-1]) + 1
    return cells[first:last].copy(), offset + first, float(cells[last:].sum())


def exact_self_compose(probs: np.ndarray, count: int) -> tuple[np.ndarray, int, float]:
    """(cells, index of cell 0, mass moved to +∞) of the ``count``-fold self-convolution."""
    result, result_offset, dropped = None, 0, 0.0
    base, base_offset = np.asarray(probs, dtype=np.float64), 0
    remaining = int(count)
    while True:
        if remaining & 1:
            if result is None:
                result, result_offset = base.copy(), base_offset
            else:
                result, result_offset, lost = _trim(
                    np.convolve(result, base), result_offset + base_offset
                )
                dropped += lost
        remaining >>= 1
        if not remaining:
            break
        base, base_offset, lost = _trim(np.convolve(base, base), 2 * base_offset)
        # Mass dropped from the base is dropped from every later product that uses it;
        # bounding it by its total (each product keeps total mass ≤ 1) stays pessimistic.
        dropped += lost * (remaining + 1)
    return result, result_offset, dropped


def epsilon_from_pmf(
    cells: np.ndarray, *, first_loss: float, interval: float, infinity_mass: float, delta: float
) -> float:
    """Smallest ε ≥ 0 with δ(ε) ≤ ``delta`` for a PMF on a grid (exact formula)."""
    if infinity_mass >= delta:
        return math.inf
    losses = first_loss + interval * np.arange(len(cells))
    top = losses[-1]
    tail = infinity_mass + np.cumsum(cells[::-1])[::-1]
    weighted = np.cumsum((cells * np.exp(top - losses))[::-1])[::-1]  # Σ_{i≥j} p_i e^{top-t_i}
    at_grid = tail - weighted * np.exp(losses - top)
    index = int(np.flatnonzero(at_grid <= delta)[0])
    if index == 0:
        return max(0.0, float(losses[0]))
    # On (t_{j-1}, t_j]: δ(ε) = tail_j − e^{ε − top} weighted_j.
    return max(
        0.0, float(losses[index - 1]), math.log((tail[index] - delta) / weighted[index]) + top
    )


def single_step_pld(sample_rate: float, noise_multiplier: float, interval: float):
    """dp-accounting's pessimistic (connect-the-dots) single-step PLD, add-or-remove."""
    return privacy_loss_distribution.from_gaussian_mechanism(
        standard_deviation=noise_multiplier,
        sampling_prob=sample_rate,
        value_discretization_interval=interval,
        pessimistic_estimate=True,
        neighboring_relation=dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE,
    )


def exact_pld_epsilon(
    sample_rate: float, noise_multiplier: float, steps: int, delta: float, interval: float
) -> float:
    """ε of the exact ``steps``-fold composition of dp-accounting's pessimistic PLD (the
    larger of remove and add): what the PLD fast path bounds, computed without an FFT."""
    values = []
    for pmf in _internals.dense_pmfs(single_step_pld(sample_rate, noise_multiplier, interval)):
        cells, offset, dropped = exact_self_compose(pmf.probs, steps)
        infinity = -math.expm1(steps * math.log1p(-pmf.infinity_mass)) + dropped
        values.append(
            epsilon_from_pmf(
                cells,
                first_loss=(pmf.lower_loss * steps + offset) * pmf.discretization,
                interval=pmf.discretization,
                infinity_mass=infinity,
                delta=delta,
            )
        )
    return max(values)


if __name__ == "__main__":  # pragma: no cover - a script
    for grid in (1e-2, 5e-3, 2e-3):
        value = exact_pld_epsilon(256 / 60000, 1.1, 2350, 1e-12, grid)
        print(f"delta=1e-12 plan, pessimistic PLD at interval {grid:g}, exact: {value:.9f}")
