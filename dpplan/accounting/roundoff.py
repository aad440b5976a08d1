"""Fourier-domain self-composition of a PMF with an a-priori (proven) float64 error bound.

Both fast paths (``pld.py``, ``prv.py``) compose one single-step PMF ``x`` (non-negative,
summing to at most 1) ``k`` times as a circular convolution on ``n`` cells: one forward FFT of
``x``, the ``k``-th power of its spectrum, one inverse FFT. This module does that composition
and returns, with each composed PMF, a bound on the L1 distance between the computed cells
and the exact circular convolution of ``x``. The bound is a-priori: it follows from a
floating-point error analysis of the operations performed, not from looking at the output.

**Which FFT, and which lengths.** The transforms are scipy's pocketfft *complex* transforms
(``scipy.fft.fft`` on a complex array, ``scipy.fft.ifft``) at lengths ``n = 2^a·3^b·5^c``
only (:func:`check_length` refuses any other length; both fast paths round their grids up
with :func:`fft_length`). For such lengths pocketfft's ``cfftp`` runs (never Bluestein: the
largest prime factor p ≤ 5 has p² ≤ n, or n < 50), factoring ``n`` into radix-8 passes, at
most one radix-4 and one radix-2 pass, then radix-3 and radix-5 passes
(``cfftp::factorize``). Each pass is, operation by operation, a product of *levels*:

* ``a`` **add levels** in all (3 per radix-8 pass, 2 per radix-4, 1 per radix-2): butterflies
  ``x ± y`` on disjoint pairs (norm √2), with the exact rotations by ±i (``ROTX90``). Each
  computed output is ``(x ± y)(1 + δ)`` per real component, ``|δ| ≤ u``: relative error u;
* one **45° rotation level** per radix-8 pass (``ROTX45``/``ROTX135`` on two of eight
  entries: ``h·(x.r ± x.i)`` with ``h = fl(1/√2)``; norm 1): relative error γ₃;
* one **radix-3 or radix-5 butterfly level** per such pass (``pass3``, ``pass5``: the
  3- or 5-point DFT of disjoint blocks, norm √r): every real output component is a sum of
  input components with coefficients of modulus ≤ 1 (rounded constants cos, sin(2πj/r))
  reached through at most m = 4 (radix 3) or 6 (radix 5) roundings, so each complex output
  is within √2·γ_m·Σ_k(|x_k.r| + |x_k.i|) ≤ 2γ_m‖x‖₁ ≤ 2γ_m√r‖x‖₂ of the exact one, and the
  level's relative normwise error is 2√r·γ_m (contracted multiply-adds only remove roundings);
* one **twiddle level** per pass (``special_mul`` by a tabulated ``ω̂`` with |ω̂ − ω| ≤ μ;
  norm 1): relative error ``μ + √2·γ₂·(1 + μ)`` (Higham Lemma 3.5 for the complex product);
* for the inverse, the scaling by fl(1/n) (norm 1/n, exact for a power of two): γ₂.

This is the structure of Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed.,
SIAM 2002, **Theorem 24.2**, whose proof applies verbatim to any product of levels
``M_m ⋯ M_1`` whose norms multiply to ‖F_n‖₂ = √n (the scaling: 1/√n for the inverse): if
each computed level satisfies ‖fl(M_l v) − M_l v‖₂ ≤ η_l‖M_l‖₂‖v‖₂, then ‖ŷ − y‖₂ ≤
(∏(1 + η_l) − 1)·‖y‖₂ (Higham's (1 + η)^L − 1 ≤ Lη/(1 − Lη) for radix 2; the same argument
as Ramos 1971, "Roundoff error analysis of the fast Fourier transform", Math. Comp. 25, and
Schatzman 1996, SIAM J. Sci. Comput. 17, for general factorisations). Here the norms
multiply to (√2)^a·(√3)^b·(√5)^c = √n exactly. :func:`fft_relative_error` returns that β.

The twiddle error μ follows from pocketfft's ``sincos_2pibyn``: each twiddle is the product
of two table entries, each ``(cos θ̂, sin θ̂)`` with θ̂ = fl(j·fl(π/(4n))) ≤ π/4 (relative
argument error ≤ 2u, so ≤ (π/4)·2u absolute) and cos, sin within 1 ulp (≤ 2u relative; the
assumption on the platform's libm, true of glibc), then one complex product (√2·γ₂):
μ ≤ 2e + e² + √2γ₂(1 + e)² with e = (π/4)·3.01u + 2u ≈ 4.4u (3.01u covers the argument's
rounding with or without an 80-bit long double), i.e. μ ≈ 11.6u.

Real input is transformed as complex input with zero imaginary part (so pocketfft's
complex algorithm above runs, not its real-data FFTPACK passes, which this analysis does not
cover); only the half spectrum k = 0 … n/2 is kept and powered, and the inverse runs on the
Hermitian extension (entries n − k = conj of entries k), whose error is at most √2 times the
half's; the real part of the inverse is taken (its error is at most the complex error).

**The rest of the bound.** With unit round-off u = 2⁻⁵³:

* the power: |X| ≤ Σx = s on every frequency, so for the computed X̂ = X + e,
  |X̂ᵏ − Xᵏ| ≤ k (s + ‖e‖₂)ᵏ⁻¹ |e|; the power itself is computed by repeated squaring, whose
  componentwise relative error is at most (1 + ρ)ᵏ⁻¹ − 1 for a complex product with relative
  error ρ (ρ = √2·γ₂ ≤ 4u is used);
* ‖F v‖₂ = √n‖v‖₂ (Parseval) and ‖x^{*k}‖₂ ≤ s^{k−1}‖x‖₂ (Young) give the norms the relative
  errors multiply, and ‖·‖₁ ≤ √n‖·‖₂ turns the L2 bound on the cells into the L1 bound on δ:
  with m_j the error of cell j, δ(ε) = Σ_{t_j > ε} p_j (1 − e^{ε − t_j}) moves by at most
  Σ|m_j|;
* underflow (gradual: an absolute error ≤ 2⁻¹⁰⁷⁵ per rounding that underflows; additions
  that underflow are exact) adds at most :data:`UNDERFLOW_L1` · (k + 2) · G to the L1 bound,
  G = max(1, (s + ‖e‖₂)ᵏ⁻¹), for n ≤ 2⁴⁰: fewer than 2¹⁰ roundings per cell in each
  transform and per leaf of the power, 2⁵⁰ cells, each error amplified by at most 4n ≤ 2⁴²
  on its way to the L1 norm of the cells (and by G in the power): < 2⁹⁵·2⁻¹⁰⁷⁵ < 2⁻⁹⁴⁰.

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
PLD, prv-accountant's discretised PRV), given IEEE double arithmetic with round-to-nearest,
pocketfft's complex FFT at lengths 2^a·3^b·5^c as described above, and a libm whose cos and sin are
within 1 ulp. What is checked rather than proven: that description of pocketfft (read from
its source, ``pocketfft_hdronly.hpp``, as vendored by scipy) and the libm assumption; the
tests compare the bound with long-double recompositions and direct convolutions
(``tests/accounting/test_roundoff.py``), where the measured error is orders of magnitude
below it. The single-step PMFs themselves are the libraries' own (float64, or long double
for prv-accountant's CDF).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import numpy as np
from scipy import fft, signal

from dpplan.accounting.tilting import chernoff_tilt, choose_tilt, fit_tilt

__all__ = [
    "MAX_LENGTH",
    "UNDERFLOW_L1",
    "ComposedPMF",
    "Composer",
    "binary_power",
    "certified_epsilon",
    "check_length",
    "chernoff_tilt",
    "choose_tilt",
    "compose_curve",
    "compose_each",
    "fft_length",
    "fft_relative_error",
    "fit_tilt",
    "inverse_pair",
    "least_certified_epsilon",
    "twiddle_error",
]

#: Unit round-off of float64.
UNIT_ROUNDOFF = 2.0**-53
#: Longest FFT the analysis (and :data:`UNDERFLOW_L1`) covers.
MAX_LENGTH = 1 << 40
#: Underflow's share of the L1 error, per composition step and growth factor (n ≤ 2⁴⁰;
#: module docstring).
UNDERFLOW_L1 = 2.0**-940
#: Relative error of one complex float64 product, √2·γ₂ (Higham Lemma 3.5), rounded up.
_PRODUCT_ERROR = 4.0 * UNIT_ROUNDOFF


def _gamma(count: float) -> float:
    """Higham's γ_m = m u / (1 − m u)."""
    return count * UNIT_ROUNDOFF / (1 - count * UNIT_ROUNDOFF)


def _factors(size: int) -> tuple[int, int, int] | None:
    """(a, b, c) with ``size`` = 2^a · 3^b · 5^c, or None if it has another prime factor."""
    exponents = []
    for prime in (2, 3, 5):
        count = 0
        while size % prime == 0:
            size //= prime
            count += 1
        exponents.append(count)
    return tuple(exponents) if size == 1 else None


def check_length(size: int) -> int:
    """Return ``size`` if the round-off proof covers an FFT of that length, else raise.

    The proof (module docstring) covers pocketfft's complex transform at lengths 2^a·3^b·5^c
    from 2 to :data:`MAX_LENGTH`: its radix-8/4/2/3/5 passes. Other prime factors (7, 11 and
    the generic or Bluestein passes) and pocketfft's real-data passes have operation
    sequences that it does not analyse.

    Raises:
        ValueError: for any other length.
    """
    size = int(size)
    if not (2 <= size <= MAX_LENGTH) or _factors(size) is None:
        raise ValueError(
            f"FFT length {size} is not covered by the round-off proof: it covers lengths "
            "2^a·3^b·5^c from 2 to 2^40 only (pocketfft's radix-8/4/2/3/5 complex passes); "
            "use roundoff.fft_length() to choose a length"
        )
    return size


def fft_length(cells: int, *, even: bool = False) -> int:
    """The shortest FFT length the proof covers (2^a·3^b·5^c) that holds ``cells`` cells;
    an even one if ``even``."""
    cells = max(int(cells), 2)
    if even:
        return 2 * _smooth_at_least(-(-cells // 2))
    return check_length(_smooth_at_least(cells))


def _smooth_at_least(cells: int) -> int:
    """The smallest 2^a·3^b·5^c ≥ ``cells``."""
    best = 1 << max(0, math.ceil(math.log2(cells)))  # a power of two always qualifies
    five = 1
    while five < best:
        three = five
        while three < best:
            length = three
            while length < cells:
                length *= 2
            best = min(best, length)
            three *= 3
        five *= 5
    return best


def twiddle_error() -> float:
    """μ: bound on |ω̂ − ω| for every twiddle factor of pocketfft's ``sincos_2pibyn``."""
    u = UNIT_ROUNDOFF
    # One table entry: argument θ̂ = fl(j·fl(π/(4n))) ≤ π/4, relative error ≤ 2u + 2⁻⁶³ where
    # π/(4n) is formed in 80-bit long double and rounded once, ≤ 3u + 3u² where long double
    # is double; 3.01u covers both. cos and sin within 1 ulp: ≤ 2u relative each.
    entry = (math.pi / 4) * 3.01 * u + 2 * u
    # The twiddle is the complex product of two entries (each of modulus ≤ 1 + entry).
    return 2 * entry + entry * entry + math.sqrt(2) * _gamma(2) * (1 + entry) ** 2


#: Relative normwise error of pocketfft's radix-3 and radix-5 butterflies (``pass3``,
#: ``pass5``; module docstring): 2√r·γ_m with m = 4 and 6 roundings on any path.
_BUTTERFLY_3 = 2 * math.sqrt(3) * _gamma(4)
_BUTTERFLY_5 = 2 * math.sqrt(5) * _gamma(6)


def fft_relative_error(size: int) -> float:
    """Return β: ‖fl(FFT v) − FFT v‖₂ ≤ β ‖FFT v‖₂ for pocketfft's complex transform of
    length ``size`` = 2^a·3^b·5^c (forward, or inverse including its 1/n scaling).

    β = (1 + u)^a · (1 + γ₃)^R · (1 + 2√3γ₄)^b · (1 + 2√5γ₆)^c · (1 + η_w)^P · (1 + γ₂) − 1
    with R = ⌊a/3⌋ radix-8 passes, P passes in all, η_w = μ + √2·γ₂·(1 + μ) and γ₂ for the
    inverse's scaling by fl(1/n) (module docstring; Higham Thm. 24.2's argument).

    Raises:
        ValueError: for a length :func:`check_length` refuses.
    """
    twos, threes, fives = _factors(check_length(size))
    radix8, rest = divmod(twos, 3)
    passes = radix8 + (1 if rest else 0) + threes + fives
    mu = twiddle_error()
    twiddle = mu + math.sqrt(2) * _gamma(2) * (1 + mu)
    log_growth = (
        twos * math.log1p(UNIT_ROUNDOFF)
        + radix8 * math.log1p(_gamma(3))
        + threes * math.log1p(_BUTTERFLY_3)
        + fives * math.log1p(_BUTTERFLY_5)
        + passes * math.log1p(twiddle)
        + math.log1p(_gamma(2))
    )
    return math.expm1(log_growth) * (1 + 1e-9)  # the last factor covers this evaluation


def binary_power(values: np.ndarray, count: int) -> tuple[np.ndarray, float]:
    """Return (``values ** count`` by repeated squaring, componentwise relative error bound).

    Each of the ≤ count − 1 factors' rounding enters the result at most once per leaf it
    multiplies, so the relative error is at most (1 + ρ)^(count − 1) − 1 (absent underflow,
    which :data:`UNDERFLOW_L1` covers).
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
        size: FFT length, a power of two (:func:`fft_length`) ≥ ``len(probs)`` and ≥ the
            composed support that matters (wrap-around only adds).
        tilt: λ per grid cell (≥ 0). 0 composes ``probs`` unchanged.

    Raises:
        ValueError: for a negative cell or tilt, a PMF longer than ``size``, or a length the
            round-off proof does not cover (:func:`check_length`).
        ArithmeticError: if the tilted PMF cannot be formed in float64.
    """

    def __init__(self, probs: np.ndarray, size: int, tilt: float = 0.0) -> None:
        x = self._prepare(probs, size, tilt)
        # The complex transform of the zero-imaginary input (never pocketfft's real-data
        # passes, which the proof does not cover); the half spectrum k = 0 … n/2 is kept.
        padded = np.zeros(self.size, dtype=np.complex128)
        padded.real[: len(x)] = x
        self.transform = fft.fft(padded, overwrite_x=True)[: self.size // 2 + 1].copy()
        # ‖FFT(x) − computed‖₂ ≤ β‖FFT x‖₂ = β√n‖x‖₂ over all n frequencies, so over the half.
        self.spectrum_error = self.beta * math.sqrt(self.size) * self.norm2

    def _prepare(self, probs: np.ndarray, size: int, tilt: float) -> np.ndarray:
        """Check the arguments, set the tilt's and the norms' fields; the (tilted) PMF."""
        probs = np.asarray(probs, dtype=np.float64)
        if not (probs.min() >= 0) or not (tilt >= 0):
            raise ValueError("a PMF is non-negative and the tilt >= 0")
        self.size = check_length(size)
        if len(probs) > self.size:
            raise ValueError(f"a PMF of {len(probs)} cells does not fit an FFT of {self.size}")
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
            # relative to the exact tilted cell (cells that underflow: UNDERFLOW_L1).
            finite = logs[np.isfinite(logs)]
            spread = float(np.abs(finite).max()) + abs(self.log_mgf)
            self.cell_relative = 2 * (spread + 6) * UNIT_ROUNDOFF
        self.mass = float(x.sum()) * (1 + _gamma(len(x)))
        self.norm2 = float(np.sqrt(np.dot(x, x))) * (1 + _gamma(len(x) + 2))
        self.beta = fft_relative_error(self.size)
        return x

    @classmethod
    def pair(cls, probs: np.ndarray, size: int, tilts: tuple[float, float]) -> tuple:
        """Two composers of ``probs`` on one grid with two tilts, from one forward FFT.

        Z = FFT(x₁ + i·x₂) for the real x₁, x₂ (placing them is exact) gives
        X₁ = (Z_k + conj Z_{n−k})/2 and X₂ = (Z_k − conj Z_{n−k})/(2i), the halving and the
        division by i exact. The map Z ↦ (Z + conj(R Z))/2 has norm ≤ 1, so with
        ‖Ẑ − Z‖₂ ≤ β√n·√(‖x₁‖₂² + ‖x₂‖₂²) and the addition's rounding (≤ u of the result),
        ‖X̂_j − X_j‖₂ ≤ (1 + u)·β√n·√(‖x₁‖₂² + ‖x₂‖₂²) + u·√n‖x_j‖₂.

        Raises:
            As :class:`Composer`.
        """
        first, second = cls.__new__(cls), cls.__new__(cls)
        x_first = first._prepare(probs, size, tilts[0])
        x_second = second._prepare(probs, size, tilts[1])
        size = first.size
        padded = np.zeros(size, dtype=np.complex128)
        padded.real[: len(x_first)] = x_first
        padded.imag[: len(x_second)] = x_second
        both = fft.fft(padded, overwrite_x=True)
        half = size // 2
        mirrored = np.empty(half + 1, dtype=np.complex128)  # conj(Z_{n−k}), k = 0 … n/2
        mirrored[0] = both[0]
        mirrored[1:] = both[size - 1 : size - half - 1 : -1]
        np.conjugate(mirrored, out=mirrored)
        head = both[: half + 1]
        first.transform = (head + mirrored) * 0.5
        second.transform = (head - mirrored) * -0.5j  # 1/(2i): exact
        joint = math.hypot(first.norm2, second.norm2)
        root = math.sqrt(size)
        for composer in (first, second):
            composer.spectrum_error = (
                (1 + UNIT_ROUNDOFF) * composer.beta * root * joint
                + UNIT_ROUNDOFF * root * composer.norm2
            ) * (1 + 1e-9)
        return first, second

    def power(self, count: int) -> tuple[np.ndarray, float]:
        """(half spectrum ** count, its relative error bound), by repeated squaring."""
        return binary_power(self.transform, count)

    @staticmethod
    def multiply(
        first: tuple[np.ndarray, float], second: tuple[np.ndarray, float]
    ) -> tuple[np.ndarray, float]:
        """Product of two computed powers and the relative error bound of the product."""
        relative = (1 + first[1]) * (1 + second[1]) * (1 + _PRODUCT_ERROR) - 1
        return first[0] * second[0], relative

    def _hermitian(
        self, first: np.ndarray, second: np.ndarray | None = None, out: np.ndarray | None = None
    ) -> np.ndarray:
        """The length-n spectrum whose entries k ≤ n/2 are ``first`` (+ i·``second``) and
        whose entries n − k are conj(``first``) (+ i·conj(``second``)): the Hermitian
        extension of one half spectrum, or of two at once (their inverses are then the real
        and the imaginary part of one inverse FFT)."""
        half = self.size // 2
        top = self.size - half - 1  # the last mirrored index: half − 1, or half if n is odd
        full = np.empty(self.size, dtype=np.complex128) if out is None else out
        if second is None:
            full[: half + 1] = first
            np.conjugate(first[top:0:-1], out=full[half + 1 :])
        else:
            rotated = 1j * second  # exact: (−Im, Re)
            np.add(first, rotated, out=full[: half + 1])
            np.conjugate(first[top:0:-1] - rotated[top:0:-1], out=full[half + 1 :])
        return full

    def _spectral(self, power: tuple[np.ndarray, float], count: int) -> tuple[float, float]:
        """(bound on ‖P̂ − Xᵏ‖₂ over the Hermitian extension, bound on ‖P̂‖₂ there)."""
        _, relative = power
        root = math.sqrt(self.size)
        s, e = self.mass, self.spectrum_error
        # Growth factors (s + e)^(count - 1) and s^(count - 1), in logs (s may exceed 1 by
        # a few ulp, e is tiny).
        grow = math.exp((count - 1) * math.log(s + e)) if s + e > 0 else 0.0
        # ‖X^count‖₂ over all frequencies = √n‖x^{*count}‖₂ ≤ √n s^(count-1) ‖x‖₂ (Young).
        exact_norm = math.exp((count - 1) * math.log(s)) * root * self.norm2 if s > 0 else 0.0
        perturbed = count * grow * e  # ‖X̂^k − X^k‖₂ over the half spectrum
        spectral = perturbed + relative * (exact_norm + perturbed)  # ‖P̂ − X^k‖₂, half
        full = math.sqrt(2) * spectral  # the Hermitian extension: every entry at most twice
        return full, exact_norm + full

    def _composed(self, cells: np.ndarray, count: int, cell_l2: float) -> ComposedPMF:
        s, e = self.mass, self.spectrum_error
        grow = math.exp((count - 1) * math.log(s + e)) if s + e > 0 else 0.0
        underflow = UNDERFLOW_L1 * (count + 2) * max(1.0, grow)
        return ComposedPMF(
            cells=cells,
            count=int(count),
            error=math.sqrt(self.size) * cell_l2 * (1 + 1e-9) + underflow,  # L2 -> L1
            tilt=self.tilt,
            log_scale=count * self.log_mgf,
            relative=math.expm1(count * math.log1p(self.cell_relative)),
        )

    def inverse(self, power: tuple[np.ndarray, float], count: int) -> ComposedPMF:
        """The composed PMF of a computed power of the transform, with its L1 error bound."""
        full, norm = self._spectral(power, count)
        # Inverse: ‖ifft(P̂) − x^{*k}‖₂ ≤ full/√n + β‖P̂‖₂/√n.
        cell_l2 = (full + self.beta * norm) / math.sqrt(self.size)
        spectrum = fft.ifft(self._hermitian(power[0]), overwrite_x=True)
        return self._composed(spectrum.real, count, cell_l2)

    def inverse_pair(
        self,
        first: tuple[tuple[np.ndarray, float], int],
        second: tuple[tuple[np.ndarray, float], int],
        *,
        out: np.ndarray | None = None,
    ) -> tuple[ComposedPMF, ComposedPMF]:
        """Two composed PMFs, (power, count) each, from one complex inverse FFT
        (:func:`inverse_pair` with this composer for both)."""
        return inverse_pair((self, *first), (self, *second), out=out)

    def compose(self, counts) -> Iterator[ComposedPMF]:
        """The composed PMF after each of ``counts`` (increasing), in order.

        Each power is the previous one times the power of the gap (cached: evenly spaced
        counts have one or two gaps), or a direct power when the gap is large; the inverse
        FFTs run two counts at a time (:meth:`inverse_pair`), in one buffer reused for the
        whole curve (a fresh 16·n-byte array per count costs as much as the transform, in
        page faults). So each yielded PMF's cells are valid only until the iterator is
        advanced: read them, or copy them, before asking for the next.
        """
        buffer = np.empty(self.size, dtype=np.complex128)
        power, power_steps = None, 0
        gap_powers: dict[int, tuple] = {}
        pending: list[tuple[tuple[np.ndarray, float], int]] = []
        for count in counts:
            gap = count - power_steps
            if power is None or 4 * gap > count:
                power = self.power(count)
            else:
                if gap not in gap_powers:
                    if len(gap_powers) >= 4:
                        gap_powers.clear()
                    gap_powers[gap] = self.power(gap)
                power = self.multiply(power, gap_powers[gap])
            power_steps = count
            pending.append((power, count))
            if len(pending) == 2:
                yield from self.inverse_pair(*pending, out=buffer)
                pending = []
        if pending:
            yield self.inverse(*pending[0])


def inverse_pair(first: tuple, second: tuple, *, out: np.ndarray | None = None) -> tuple:
    """Two composed PMFs, each given as (composer, power, count) on one grid length, from one
    complex inverse FFT.

    ifft(P̂₁ + i·P̂₂) = ifft(P̂₁) + i·ifft(P̂₂) and both are real in exact arithmetic, so the
    real and imaginary parts of the computed inverse are the two compositions, each within
    the error of the whole: (‖P̂₁ − X₁^{k₁}‖₂ + ‖P̂₂ − X₂^{k₂}‖₂ + (β(1 + u) + u)·
    (‖P̂₁‖₂ + ‖P̂₂‖₂))/√n in L2 (u: the rounding of P̂₁ + i·P̂₂, over the Hermitian
    extensions). With ``out`` (a complex array of length n) the transform runs in it, and
    both results are views of it.

    Raises:
        ValueError: if the two composers' grids differ.
    """
    (composer_a, power_a, count_a), (composer_b, power_b, count_b) = first, second
    if composer_a.size != composer_b.size:
        raise ValueError("paired inverse FFTs need one grid length")
    full_a, norm_a = composer_a._spectral(power_a, count_a)
    full_b, norm_b = composer_b._spectral(power_b, count_b)
    scale = composer_a.beta * (1 + UNIT_ROUNDOFF) + UNIT_ROUNDOFF
    cell_l2 = (full_a + full_b + scale * (norm_a + norm_b)) / math.sqrt(composer_a.size)
    both = fft.ifft(composer_a._hermitian(power_a[0], power_b[0], out), overwrite_x=True)
    return (
        composer_a._composed(both.real, count_a, cell_l2),
        composer_b._composed(both.imag, count_b, cell_l2),
    )


def compose_each(probs: np.ndarray, count: int, trials) -> Iterator[tuple[int, ComposedPMF]]:
    """(index, composed PMF) for each trial (tilt, grid length) of composing ``probs``
    ``count`` times, in pairs: trials on one grid share a forward FFT (:meth:`Composer.pair`)
    and an inverse one (:func:`inverse_pair`)."""
    trials = list(trials)
    by_size: dict[int, list[int]] = {}
    for index, (_, size) in enumerate(trials):
        by_size.setdefault(int(size), []).append(index)
    for size, indices in by_size.items():
        for start in range(0, len(indices), 2):
            group = indices[start : start + 2]
            if len(group) == 1:
                composer = Composer(probs, size, trials[group[0]][0])
                yield group[0], composer.inverse(composer.power(count), count)
                continue
            composers = Composer.pair(probs, size, (trials[group[0]][0], trials[group[1]][0]))
            composed = inverse_pair(*((c, c.power(count), count) for c in composers))
            yield from zip(group, composed)


def compose_curve(
    composer: Composer, counts, *, last: Composer | None = None
) -> Iterator[ComposedPMF]:
    """The composed PMF after each of ``counts``: all but the last by :meth:`Composer.compose`
    (cells valid until the iterator is advanced), the last as a direct power inverted on its
    own (on ``last`` if given), so that it is bit for bit what a single query for that count
    computes."""
    counts = [int(count) for count in counts]
    yield from composer.compose(counts[:-1])
    final = composer if last is None else last
    yield final.inverse(final.power(counts[-1]), counts[-1])


def least_certified_epsilon(
    probs: np.ndarray,
    count: int,
    trials,
    *,
    first_index: int,
    width: int,
    first_loss: float,
    interval: float,
    infinity_mass: float,
    delta: float,
) -> float:
    """The smallest ε that any trial (tilt, grid length) of composing ``probs`` ``count``
    times certifies (:func:`compose_each`, :func:`certified_epsilon`); ``math.inf`` if none.

    The window of each composition is its ``width`` cells from linear index ``first_index``
    (at loss ``first_loss``), read around the trial's grid.
    """
    best = math.inf
    for index, composed in compose_each(probs, count, trials):
        grid = trials[index][1]
        epsilon = certified_epsilon(
            composed,
            np.take(composed.cells, (first_index + np.arange(width)) % grid),
            first_index=first_index,
            first_loss=first_loss,
            interval=interval,
            infinity_mass=infinity_mass,
            delta=delta,
        )
        if epsilon is not None:
            best = min(best, epsilon)
    return best


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
