"""Fourier-domain self-composition of a PMF with an a-priori (proven) float64 error bound.

Both fast paths (``pld.py``, ``prv.py``) compose one single-step PMF ``x`` (non-negative,
summing to at most 1) ``k`` times as ``irfft(rfft(x, n) ** k, n)``, a circular convolution on
``n`` cells. This module does that composition and returns, with each composed PMF, a bound
on the L1 distance between the computed cells and the exact circular convolution of ``x``.
The bound is a-priori: it follows from the standard floating-point error analysis, not from
looking at the output.

**The bound.** With unit round-off u = 2⁻⁵³ and L = ⌈log₂ n⌉:

* forward and inverse FFT: ‖fl(F v) − F v‖₂ ≤ β‖F v‖₂ with β = Lη/(1 − Lη),
  η = μ + γ₄(√2 + μ), γ₄ = 4u/(1 − 4u), μ the twiddle-factor error (Higham, *Accuracy and
  Stability of Numerical Algorithms*, 2nd ed., Thm. 24.2; Schatzman 1996, "Accuracy of the
  discrete Fourier transform and the fast Fourier transform", SIAM J. Sci. Comput. 17). The
  theorem is for radix-2 Cooley-Tukey; scipy's pocketfft is mixed-radix with real-input
  packing and precomputed twiddles, so η is taken with μ = 2u and multiplied by
  :data:`FFT_MARGIN` (the measured error is orders of magnitude below β either way, see
  ``tests/accounting/test_roundoff.py``).
* the power: |X| ≤ Σx = s on every frequency, so for the computed X̂ = X + e,
  |X̂ᵏ − Xᵏ| ≤ k (s + ‖e‖₂)ᵏ⁻¹ |e|; the power itself is computed here by repeated squaring,
  whose componentwise relative error is at most (1 + ρ)ᵏ⁻¹ − 1 for a complex product with
  relative error ρ (ρ = √5·u, Brent, Percival & Zimmermann 2007; ρ = 4u is used).
* ‖F v‖₂ = √n‖v‖₂ (Parseval) turns spectral errors into cell errors, and
  ‖·‖₁ ≤ √n‖·‖₂ turns the L2 bound into the L1 bound on δ: with m_j the error of cell j,
  δ(ε) = Σ_{t_j > ε} p_j (1 − e^{ε − t_j}) moves by at most Σ|m_j|.

The total is about √n·(k + 2)·β·‖x‖₂. This is the same shape as the FFT-accounting error
analyses of Koskela, Jälkö, Prediger & Honkela (2021, AISTATS, "Tight differential privacy
for discrete-valued mechanisms and for the subsampled Gaussian mechanism using FFT") and
Gopi, Lee & Wutschitz (2021, NeurIPS, "Numerical composition of differential privacy"),
who bound the discretisation and truncation errors and treat round-off as negligible; here
it is bounded.

**Tiny δ: exponential tilting.** An absolute bound on the whole PMF is useless when δ is
below it (δ ≲ 1e-9 on large grids). Composing the tilted PMF x_j e^{λ j h} / M(λ) instead
(M(λ) = Σ x_j e^{λ j h}, still non-negative with sum ≤ 1) and untilting the composed cells
by e^{k log M(λ) − λ J h} (J the composed index) leaves the exact result unchanged but scales
the error of every cell at loss ≥ t by at most e^{k log M(λ) − λ t}: a Chernoff factor,
small exactly where δ is decided. Cells below the answer may be inaccurate; δ(ε) never reads
them. Wrapped-around mass of the circular convolution is non-negative (the linear
composition has only non-negative indices), so it only adds to δ. :func:`certified_epsilon`
reads ε so that δ(ε) of the exact composition plus the error bound is at most δ.

What this proves: the ε read from a composed PMF is an upper bound for the *exact*
composition of the float64 single-step PMF the library built (dp-accounting's pessimistic
PLD, prv-accountant's discretised PRV), under the error model above. The single-step PMFs
themselves are the libraries' own (float64, or long double for prv-accountant's CDF).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import fft, signal

__all__ = [
    "FFT_MARGIN",
    "ComposedPMF",
    "Composer",
    "binary_power",
    "certified_epsilon",
    "chernoff_tilt",
    "choose_tilt",
    "fft_relative_error",
    "fit_tilt",
]

#: Unit round-off of float64.
UNIT_ROUNDOFF = 2.0**-53
#: Factor on Higham's per-level η for mixed radices, real-input packing and scaling.
FFT_MARGIN = 4.0
#: Relative error of one complex float64 product (√5·u proven; 4u used).
_PRODUCT_ERROR = 4.0 * UNIT_ROUNDOFF


def _gamma(count: float) -> float:
    """Higham's γ_m = m u / (1 − m u)."""
    return count * UNIT_ROUNDOFF / (1 - count * UNIT_ROUNDOFF)


def fft_relative_error(size: int) -> float:
    """Return β: ‖fl(FFT v) − FFT v‖₂ ≤ β ‖FFT v‖₂ for a length-``size`` transform.

    Higham Thm. 24.2 with μ = 2u, times :data:`FFT_MARGIN` (see the module docstring).
    """
    levels = max(1, math.ceil(math.log2(max(size, 2))))
    mu = 2 * UNIT_ROUNDOFF
    eta = FFT_MARGIN * (mu + _gamma(4) * (math.sqrt(2) + mu))
    if levels * eta >= 0.5:
        raise ArithmeticError(f"FFT of {size} points is beyond the round-off analysis")
    return levels * eta / (1 - levels * eta)


def binary_power(values: np.ndarray, count: int) -> tuple[np.ndarray, float]:
    """Return (``values ** count`` by repeated squaring, componentwise relative error bound).

    Each of the ≤ count − 1 factors' rounding enters the result at most once per leaf it
    multiplies, so the relative error is at most (1 + ρ)^(count − 1) − 1.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, found {count}")
    result = None
    base = values
    remaining = int(count)
    while True:
        if remaining & 1:
            result = base.copy() if result is None else result * base
        remaining >>= 1
        if not remaining:
            break
        base = base * base
    return result, math.expm1((count - 1) * math.log1p(_PRODUCT_ERROR))


@dataclasses.dataclass(frozen=True)
class ComposedPMF:
    """A composed PMF on a circular grid, with its proven error.

    Attributes:
        cells: computed cells of the (tilted) composition, length ``size``.
        count: number of compositions.
        error: bound on Σ_j |cells_j − exact_j| (tilted units).
        tilt: λ, per grid cell (0 when untilted).
        log_scale: ``count * log M(λ)``; cell J (linear index) untilts by
            e^{log_scale − tilt·J}.
        relative: bound on the relative error of every exact cell from rounding the tilted
            single-step PMF (0 when untilted).
    """

    cells: np.ndarray
    count: int
    error: float
    tilt: float
    log_scale: float
    relative: float


class Composer:
    """Composes one single-step PMF by Fourier powers on one grid, tracking a proven bound.

    Args:
        probs: the single-step PMF (non-negative floats; its sum may be below 1).
        size: FFT length (≥ the composed support that matters; wrap-around only adds).
        tilt: λ per grid cell (≥ 0). 0 composes ``probs`` unchanged.

    Raises:
        ValueError: for a negative cell or tilt.
        ArithmeticError: if the tilted PMF cannot be formed in float64.
    """

    def __init__(self, probs: np.ndarray, size: int, tilt: float = 0.0) -> None:
        probs = np.asarray(probs, dtype=np.float64)
        if not (probs.min() >= 0) or not (tilt >= 0):
            raise ValueError("a PMF is non-negative and the tilt >= 0")
        self.size = int(size)
        self.tilt = float(tilt)
        if tilt == 0:
            x = probs
            self.log_mgf = 0.0
            self.cell_relative = 0.0
        else:
            with np.errstate(divide="ignore"):
                logs = np.log(probs) + self.tilt * np.arange(len(probs))
            top = float(logs.max())
            self.log_mgf = top + math.log(float(np.exp(logs - top).sum()))
            if not math.isfinite(self.log_mgf):
                raise ArithmeticError("tilted PMF overflows")
            x = np.exp(logs - self.log_mgf)
            # log, product, subtraction and exp of arguments up to |a|: ≤ (|a| + 4)·u each,
            # relative to the exact tilted cell (cells that underflow to 0 are ≤ 1e-300).
            finite = logs[np.isfinite(logs)]
            spread = float(np.abs(finite).max()) + abs(self.log_mgf)
            self.cell_relative = 2 * (spread + 6) * UNIT_ROUNDOFF
        self.mass = float(x.sum()) * (1 + _gamma(len(x)))
        self.norm2 = float(np.sqrt(np.dot(x, x))) * (1 + _gamma(len(x) + 2))
        self.beta = fft_relative_error(self.size)
        self.transform = fft.rfft(x, self.size)
        # ‖FFT(x) − computed‖₂ ≤ β‖FFT x‖₂ = β√n‖x‖₂; every frequency's error is below it.
        self.spectrum_error = self.beta * math.sqrt(self.size) * self.norm2

    def power(self, count: int) -> tuple[np.ndarray, float]:
        """(transform ** count, its relative error bound), by repeated squaring."""
        return binary_power(self.transform, count)

    @staticmethod
    def multiply(
        first: tuple[np.ndarray, float], second: tuple[np.ndarray, float]
    ) -> tuple[np.ndarray, float]:
        """Product of two computed powers and the relative error bound of the product."""
        relative = (1 + first[1]) * (1 + second[1]) * (1 + _PRODUCT_ERROR) - 1
        return first[0] * second[0], relative

    def inverse(self, power: tuple[np.ndarray, float], count: int) -> ComposedPMF:
        """The composed PMF of a computed power of the transform, with its L1 error bound."""
        spectrum, relative = power
        cells = fft.irfft(spectrum, self.size)
        root = math.sqrt(self.size)
        s, e = self.mass, self.spectrum_error
        # Growth factors (s + e)^(count - 1) and s^(count - 1), in logs (s may exceed 1 by
        # a few ulp, e is tiny).
        grow = math.exp((count - 1) * math.log(s + e)) if s + e > 0 else 0.0
        exact_norm = math.exp((count - 1) * math.log(s)) * root * self.norm2 if s > 0 else 0.0
        perturbed = count * grow * e  # ‖X̂^k − X^k‖₂
        spectral = perturbed + relative * (exact_norm + perturbed)  # ‖P̂ − X^k‖₂
        cell_l2 = spectral / root + self.beta * (exact_norm + spectral) / root
        error = 2.0 * root * cell_l2  # ×2: Hermitian half-spectrum, L2 -> L1
        return ComposedPMF(
            cells=cells,
            count=int(count),
            error=error,
            tilt=self.tilt,
            log_scale=count * self.log_mgf,
            relative=math.expm1(count * math.log1p(self.cell_relative)),
        )


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


def certified_epsilon(
    composed: ComposedPMF,
    window: np.ndarray,
    *,
    first_index: int,
    first_loss: float,
    interval: float,
    infinity_mass: float,
    delta: float,
    start: float = 0.0,
) -> float | None:
    """The smallest ε ≥ 0 this function can prove δ(ε) ≤ ``delta`` for; None if none.

    Args:
        composed: the composed PMF and its error bound.
        window: cells of ``composed`` in loss order (``window[i]`` at loss
            ``first_loss + i * interval``, linear composed index ``first_index + i``).
        first_index: linear composed index of ``window[0]`` (for untilting).
        first_loss: loss of ``window[0]``.
        interval: grid spacing in nats.
        infinity_mass: mass at +∞ (exact, added to δ(ε)).
        delta: the target.
        start: a value at most the answer (e.g. the previous count's ε); only the tail
            above it is summed (the whole window if the answer lies below).

    δ(ε) = infinity_mass + Σ_{t_j > ε} p_j (1 − e^{ε − t_j}). With D_j, G_j the tail sums of
    p and of p·e^{t_j − t_i} (upper and lower bounds of the float64 sums), and E_j the error
    bound of the cells at or above j, every ε in (t_{j−1}, t_j] with
    D_j + E_j − e^{ε − t_j} G_j ≤ δ is proven. Returns None when no cell qualifies (δ below
    the round-off bound).
    """
    size = len(window)
    tilt = composed.tilt / interval  # per nat
    log_untilt0 = composed.log_scale - composed.tilt * first_index
    if not (infinity_mass < delta) or not (composed.error >= 0):
        return None
    log_room = math.log(delta - infinity_mass)
    log_error = math.log(composed.error) if composed.error > 0 else -math.inf
    # Cells i where E_i = error·e^{log_untilt0 − tilt·t_i'} (t_i' = i·interval) ≤ δ.
    if tilt > 0:
        first = max(0, math.ceil((log_error + log_untilt0 - log_room) / (tilt * interval)))
    else:
        first = 0 if log_error + log_untilt0 < log_room else size
    lowest = first
    if start > first_loss:
        first = max(first, int((start - first_loss) / interval) - 2)
    gamma = _gamma(3 * size + 8)
    while first < size:
        offsets = np.arange(first, size)
        log_untilt = log_untilt0 - composed.tilt * offsets
        with np.errstate(over="ignore", under="ignore"):
            factor = np.exp(log_untilt)
        # The argument is a difference of terms up to |log_scale| and tilt·J, each rounded,
        # then exp rounds: relatively within 4u·(|log_scale| + tilt·J + |a| + 2).
        magnitude = abs(composed.log_scale) + composed.tilt * (abs(first_index) + offsets)
        slack = 1 + 4 * (magnitude + np.abs(log_untilt) + 2) * UNIT_ROUNDOFF
        p = np.maximum(window[first:], 0.0) * factor * slack * (1 + composed.relative)
        errors = composed.error * factor * slack
        tail = np.cumsum(p[::-1])[::-1] * (1 + gamma) + infinity_mass
        weighted = signal.lfilter([1.0], [1.0, -math.exp(-interval)], p[::-1])[::-1]
        weighted = weighted * (1 - gamma)
        bound = tail + errors - weighted
        ok = np.flatnonzero(bound <= delta)
        if not len(ok):
            return None
        index = int(ok[0])
        if index == 0 and first > lowest:
            first = lowest  # the answer may lie below the summed tail
            continue
        break
    else:
        return None
    loss = first_loss + (first + index) * interval
    excess = tail[index] + errors[index] - delta
    below = loss - interval
    if index == 0 or not (weighted[index] > 0):
        return max(0.0, loss)  # proven at t_j itself
    if not (excess > 0):
        return max(0.0, below)  # D_j + E_j ≤ δ: proven on all of [t_{j-1}, t_j]
    return max(0.0, below, loss + math.log(excess / weighted[index]))
