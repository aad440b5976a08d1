"""Exponential tilting of a privacy-loss PMF: choosing the tilt that keeps δ's tail cells
above the FFT round-off floor (used by :mod:`dpplan.accounting.roundoff`).

A tilt multiplies cell ``i`` by ``exp(tilt * i)`` before composing and divides it out after,
so the cells that decide δ far out in the tail are large while they are transformed. These
functions only pick the tilt (a Chernoff bound on the composed tail); the round-off bound
itself, and every FFT, stay in :mod:`dpplan.accounting.roundoff`.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["chernoff_tilt", "choose_tilt", "fit_tilt"]


def choose_tilt(probs: np.ndarray, count: int, *, interval: float, target: float) -> float:
    """λ per cell that minimises the Chernoff factor e^{count·log M(λ) − λ·J} at the composed
    linear index J = ``target`` / ``interval`` (a loss measured from the composed grid's
    first cell). Only a choice: any λ ≥ 0 gives a proven bound; a good one a tight one.
    """
    logs, index = _log_cells(probs)
    best, best_value = 0.0, 0.0
    for per_nat in np.geomspace(0.05, 400.0, 80):
        tilt = per_nat * interval
        shifted = logs + tilt * index
        top = float(shifted.max())
        log_mgf = top + math.log(float(np.exp(shifted - top).sum()))
        value = count * log_mgf - tilt * target / interval
        if value < best_value:
            best, best_value = tilt, value
    return best


#: Cells of the coarse copy of a PMF on which tilts are chosen (a choice only: any tilt is
#: proven, so the choice may be approximate).
_CHOICE_CELLS = 4096


def _log_cells(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log mass, index) of a coarse copy of ``probs``: blocks summed, each at its own mean
    index (so the mean, which long compositions multiply, is kept exactly)."""
    probs = np.asarray(probs, dtype=np.float64)
    block = max(1, -(-len(probs) // _CHOICE_CELLS))
    index = np.arange(len(probs), dtype=np.float64)
    if block > 1:
        cells = block * -(-len(probs) // block)
        padded = np.zeros(cells)
        padded[: len(probs)] = probs
        weighted = np.zeros(cells)
        weighted[: len(probs)] = probs * index
        masses = padded.reshape(-1, block).sum(axis=1)
        centres = np.arange(len(masses)) * block + (block - 1) / 2
        with np.errstate(invalid="ignore", divide="ignore"):
            means = weighted.reshape(-1, block).sum(axis=1) / masses
        index = np.where(masses > 0, means, centres)
        probs = masses
    with np.errstate(divide="ignore"):
        return np.log(probs), index


def chernoff_tilt(probs: np.ndarray, count: int, *, interval: float, delta: float) -> float:
    """λ per cell of the Chernoff bound ε(λ) = (count·log E[e^{λL}] + log(1/δ))/λ at its
    minimum: the tilt that centres the composed PMF near where δ is decided, chosen before
    the composition (the loss origin shifts ε(λ) by a constant, so it is left out). Only a
    choice: any λ ≥ 0 gives a proven bound.
    """
    logs, index = _log_cells(probs)
    best, best_value = 0.0, math.inf
    for per_nat in np.geomspace(0.05, 400.0, 80):
        shifted = logs + per_nat * interval * index
        top = float(shifted.max())
        log_mgf = top + math.log(float(np.exp(shifted - top).sum()))
        value = (count * log_mgf - math.log(delta)) / per_nat
        if value < best_value:
            best, best_value = per_nat * interval, value
    return best


def fit_tilt(
    probs: np.ndarray,
    counts: np.ndarray,
    *,
    starts: np.ndarray,
    sizes: np.ndarray,
    tilt: float,
    tail: float,
) -> float:
    """The largest tilt ≤ ``tilt`` (among ``tilt``·0.8^i) whose wrapped-around mass fits.

    Mass of the linear composition at index J ≥ start + n wraps to J − n and untilts with
    e^{λ·n} too much (non-negative, so still an upper bound, but loose); only cells at or
    above ``start`` (e.g. the index of loss 0, below which ε never lies) are read. By
    Chernoff at any λ' > λ, that mass times e^{λ·n} is at most
    e^{count·log M(λ') − λ'·start − (λ' − λ)·n}. Returns the largest candidate λ for which
    this is at most ``tail`` with n = ``sizes`` for every count, else 0. Only tightness
    depends on this choice, never validity.
    """
    if tilt <= 0:
        return 0.0
    logs, index = _log_cells(probs)
    candidates = tilt * 0.8 ** np.arange(16)
    others = np.unique(np.concatenate([candidates * r for r in np.geomspace(1.02, 5.0, 12)]))
    log_mgfs = []
    for other in others:
        shifted = logs + other * index
        top = float(shifted.max())
        log_mgfs.append(top + math.log(float(np.exp(shifted - top).sum())))
    log_mgfs = np.asarray(log_mgfs)
    counts = np.asarray(counts, dtype=np.float64)[:, None]
    starts = np.asarray(starts, dtype=np.float64)[:, None]
    sizes = np.asarray(sizes, dtype=np.float64)[:, None]
    for candidate in candidates:
        above = others > candidate * 1.01
        other = others[above][None, :]
        log_wrapped = counts * log_mgfs[above][None, :] - other * starts
        log_wrapped = log_wrapped - (other - candidate) * sizes
        if np.all(log_wrapped.min(axis=1) <= math.log(tail)):
            return float(candidate)
    return 0.0
