"""PRV backend: prv-accountant's privacy random variables (Gopi, Lee, Wutschitz 2021).

prv-accountant builds the privacy random variable of one Poisson-subsampled Gaussian step,
sizes a safe domain for the largest number of steps (its Remark 5.6), truncates it and
discretises it (cell-centred, mean-preserving). dpplan then composes that one discretisation
for every requested step count with a single forward FFT and one inverse FFT per count (two
counts per inverse, as the real and imaginary parts of one complex transform), the Fourier
composition of prv-accountant's ``composers.Fourier``, and reads ε with the formula of
``DiscretePrivacyRandomVariable.compute_epsilon``. Three things differ from the library, each
for speed or for the proof, and none loosens the guarantee:

* the grid length is rounded up to an even 2^a·3^b·5^c (prv-accountant's sizes are often
  twice a prime, which costs ~100x; and these are the lengths the round-off proof covers,
  :func:`dpplan.accounting.roundoff.check_length`); the mesh is unchanged and the domain
  only widens (Remark 5.6's safe domain size is a lower bound);
* the library's long-double CDF is evaluated once per cell edge (the library evaluates every
  inner edge twice), with its own expression, bit for bit (:func:`_library_cdf`);
* the composition runs in float64 rather than long double. Its round-off has a proven
  a-priori bound (:mod:`dpplan.accounting.roundoff`: Higham's Thm 24.2 argument applied to
  the radix-8/4/2/3/5 passes of pocketfft's complex transform), charged to δ's error
  budget before the upper bound is read, with the rounding of the read-out's sums. Where
  that bound does not fit in δ, the count is recomposed exponentially tilted towards its
  answer; where even that does not fit, PRV refuses (``AccountingError`` naming δ and the
  limit); use RDP, or PLD. (The estimate used before, negative mass plus 4 ulp, was 116x
  short in a constructed case, q = 0.01, σ = 0.4, 2,000 steps; that case is a test.)

The reported ε is prv-accountant's *upper* bound (estimate + ``eps_error``, at δ minus
``delta_error``); the lower bound and the estimate are kept for display.
"""

from __future__ import annotations

import math

import numpy as np
from prv_accountant.domain import Domain
from prv_accountant.privacy_random_variables import (
    PoissonSubsampledGaussianMechanism,
    PrivacyRandomVariableTruncated,
)
from prv_accountant.privacy_random_variables import (
    poisson_subsampled_gaussian_mechanism as _prv_library,
)
from scipy import special

from dpplan.accounting import roundoff
from dpplan.accounting.base import Backend, Computation, library_failure, register_cache
from dpplan.errors import AccountingError

__all__ = ["DEFAULT_EPS_ERROR", "MAX_GRID_POINTS", "PRVAccountant"]

#: Additive error of ε between the estimate and each bound (Opacus uses the same).
DEFAULT_EPS_ERROR = 0.01
#: delta_error = delta * this fraction (Opacus uses delta / 1000).
DEFAULT_DELTA_ERROR_FRACTION = 1e-3
#: Largest discretisation grid. Beyond it a query takes more than ~10 s and >1 GB.
MAX_GRID_POINTS = 1 << 22


class PRVAccountant(Backend):
    """Privacy-random-variable accounting through prv-accountant.

    Args:
        eps_error: additive ε error between estimate and bounds, > 0.
        delta_error_fraction: δ error as a fraction of δ, in (0, 1).
    """

    MAX_CURVE_POINTS = 400
    #: Budget of grid points × evaluated epochs for one curve (~2 s of inverse FFTs here).
    CURVE_WORK = 80_000_000
    name = "prv"

    def __init__(
        self,
        eps_error: float = DEFAULT_EPS_ERROR,
        delta_error_fraction: float = DEFAULT_DELTA_ERROR_FRACTION,
    ) -> None:
        self.eps_error = float(eps_error)
        self.delta_error_fraction = float(delta_error_fraction)

    def max_curve_points(self, plan) -> int:
        """Evaluate fewer epochs directly on large grids, so a curve stays within seconds."""
        try:
            points = self.grid_points(
                sample_rate=plan.sample_rate,
                noise_multiplier=plan.noise_multiplier,
                delta=plan.delta,
                steps=plan.total_steps,
            )
        except (AccountingError, ValueError, ArithmeticError):
            return self.MAX_CURVE_POINTS  # compute() reports the error
        return max(20, min(self.MAX_CURVE_POINTS, self.CURVE_WORK // points))

    def grid_points(
        self, *, sample_rate: float, noise_multiplier: float, delta: float, steps: int
    ) -> int:
        """Return the grid size a query for ``steps`` steps needs (cheap: no discretisation)."""
        return len(self._domain(sample_rate, noise_multiplier, delta, steps)[0])

    def _domain(self, sample_rate, noise_multiplier, delta, steps):
        delta_error = delta * self.delta_error_fraction
        prv = PoissonSubsampledGaussianMechanism(
            sampling_probability=sample_rate, noise_multiplier=noise_multiplier
        )
        half_width = _safe_domain_size(
            prv, steps, eps_error=self.eps_error, delta_error=delta_error
        )
        # Theorem 5.5 of Gopi et al., as in prv_accountant.PRVAccountant.
        mesh = self.eps_error / math.sqrt(steps / 2 * math.log(12 / delta_error))
        half_points = math.ceil(half_width / mesh)
        if 2 * half_points + 2 > MAX_GRID_POINTS:
            raise AccountingError(
                f"prv accountant would need a grid of {2 * half_points + 2:,} points "
                f"(limit {MAX_GRID_POINTS:,}) for sample_rate={sample_rate:g}, "
                f"noise_multiplier={noise_multiplier:g}, {steps:,} steps; the plan's ε is very "
                "large or the step count very high. Use method='rdp' or 'pld'."
            )
        # Even and 2^a·3^b·5^c: the lengths the round-off proof covers (roundoff.check_length).
        size = roundoff.fft_length(2 * half_points + 2, even=True)
        left = size // 2 - 1
        domain = Domain(-left * mesh, (left + 1) * mesh, size)
        return domain, prv, left, delta_error

    def _compute(
        self, *, sample_rate: float, noise_multiplier: float, delta: float, steps: tuple[int, ...]
    ) -> Computation:
        """Return PRV ε bounds after each entry of ``steps``.

        Raises:
            AccountingError: if prv-accountant fails, the grid would be too large, or δ is
                too small for the numerical error budget.
        """
        with library_failure(
            lambda exc: (
                f"prv accountant failed for sample_rate={sample_rate:g}, "
                f"noise_multiplier={noise_multiplier:g}: {exc}. Use method='rdp' or 'pld'."
            )
        ):
            domain, prv, left, delta_error = self._domain(
                sample_rate, noise_multiplier, delta, steps[-1]
            )
            pmf, mean_shift = _discretise(prv, domain)
        lower, estimates, upper = _compose_and_read(
            pmf,
            steps=steps,
            mesh=domain.dt(),
            left=left,
            mean_shift=mean_shift,
            log_mass_finite=math.log1p(-float(prv.pm_inf)),
            delta=delta,
            delta_error=delta_error,
            eps_error=self.eps_error,
        )
        size = len(domain)
        mesh = domain.dt()
        return Computation(
            upper=tuple(upper),
            lower=tuple(lower),
            estimates=tuple(estimates),
            settings={
                "eps_error": self.eps_error,
                "delta_error": delta_error,
                "grid_points": size,
                "mesh": mesh,
                "domain": [domain.t_min(), domain.t_max()],
            },
        )

    def estimate_upper(
        self,
        *,
        sample_rate: float,
        noise_multiplier: float,
        delta: float,
        steps: int,
        domain_noise_multiplier: float | None = None,
    ) -> float:
        """Return a fast float64 estimate of the upper bound ``compute`` returns: no guarantee.

        The same computation as :meth:`compute` for one step count, except that the PRV's CDF
        is evaluated in float64 (its tails through the complementary error function, so
        without cancellation) instead of prv-accountant's long double, and the domain may be
        the safe domain of ``domain_noise_multiplier`` (a smaller σ needs a wider domain, so
        one domain can serve a whole search). It costs about a tenth of a rigorous query and
        agrees with it to about 1e-6 in ε; the σ solver searches with it and verifies its
        answer with :meth:`compute`. Never report its value as a bound.

        Raises:
            AccountingError: where :meth:`compute` would refuse (grid too large, δ too small).
        """
        sizing = noise_multiplier if domain_noise_multiplier is None else domain_noise_multiplier
        with library_failure(lambda exc: f"prv estimate failed: {exc}"):
            key = (sample_rate, sizing, delta, steps, self.eps_error, self.delta_error_fraction)
            if key not in _DOMAINS:
                if len(_DOMAINS) >= 16:
                    _DOMAINS.clear()
                _DOMAINS[key] = self._domain(sample_rate, sizing, delta, steps)
            domain, _, left, delta_error = _DOMAINS[key]
            pmf, mean_shift = _discretise(
                _Float64PRV(sample_rate, noise_multiplier), domain, float64=True
            )
        return _compose_and_read(
            pmf,
            steps=(steps,),
            mesh=domain.dt(),
            left=left,
            mean_shift=mean_shift,
            log_mass_finite=0.0,
            delta=delta,
            delta_error=delta_error,
            eps_error=self.eps_error,
        )[2][0]


#: Tilts tried for a tiny-δ upper bound, as fractions of the Chernoff-optimal one.
_TILT_FACTORS = (1.0, 0.8)
#: Round-off charged at the last answer, as a fraction of δ, above which it is recomputed
#: with a tilt aimed at the estimate (the smaller bound is kept).
_LOOSE = 1e-3
#: Step counts given a tilted composition when δ is below the untilted round-off bound:
#: the last one and at most this many more; the counts between carry the next bound.
_TILTED_POINTS = 4

#: Domains of recent estimates, so a search sizes one domain for all its estimates.
_DOMAINS: dict[tuple, tuple] = register_cache({})
#: prv-accountant's RDP orders for sizing the safe domain (``other_accountants.RDP``).
_RDP_ORDERS = np.array([1.0 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)))


def _safe_domain_size(prv, steps: int, *, eps_error: float, delta_error: float) -> float:
    """prv-accountant's ``compute_safe_domain_size`` (Remark 5.6 of Gopi et al.) for one PRV.

    The library builds the RDP vector of the PRV twice (once per bound); here it is built
    once and both bounds read from it, with the library's formulas, so the value is the same.
    """
    rdp = np.array([prv.rdp(order) for order in _RDP_ORDERS])

    def rdp_epsilon(delta: float, count: int) -> float:
        eps = (
            rdp * count
            - np.log(delta * _RDP_ORDERS) / (_RDP_ORDERS - 1)
            + np.log1p(-1 / _RDP_ORDERS)
        )
        return float(eps[np.nanargmin(eps)])

    largest = max(rdp_epsilon(delta_error / 4, steps), rdp_epsilon(delta_error / 8 / steps, 1))
    return max(largest, eps_error) + 3


class _Float64PRV:
    """The Poisson-subsampled Gaussian PRV of prv-accountant in float64 (estimates only).

    Same CDF as ``PoissonSubsampledGaussianMechanism.cdf``: with z = log(1 + (e^t - 1)/p),
    a = (2σ²z - 1)/(2√2σ), b = (2σ²z + 1)/(2√2σ), F(t) = 1 - p/2·erfc(a) - (1-p)/2·erfc(b)
    for t > log(1 - p), else 0. Evaluated as (p/2)·erfc(-a) + ((1-p)/2)·erfc(-b) left of 0
    and as one minus the survival function right of it, so neither tail cancels.
    """

    pm_inf = 0.0

    def __init__(self, sample_rate: float, noise_multiplier: float) -> None:
        self.p = float(sample_rate)
        self.sigma = float(noise_multiplier)

    def _parts(self, t):
        t = np.asarray(t, dtype=np.float64)
        valid = t > math.log1p(-self.p) if self.p < 1 else np.ones_like(t, dtype=bool)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            z = np.log1p(np.expm1(np.where(valid, t, 0.0)) / self.p)
        scale = 2 * math.sqrt(2) * self.sigma
        a = (2 * self.sigma**2 * z - 1) / scale
        b = (2 * self.sigma**2 * z + 1) / scale
        return valid, a, b

    def survival(self, t):
        valid, a, b = self._parts(t)
        tail = self.p / 2 * special.erfc(a) + (1 - self.p) / 2 * special.erfc(b)
        return np.where(valid, tail, 1.0)

    def cdf(self, t):
        valid, a, b = self._parts(t)
        head = self.p / 2 * special.erfc(-a) + (1 - self.p) / 2 * special.erfc(-b)
        return np.where(valid, head, 0.0)


def _library_cdf(prv, t: np.ndarray) -> np.ndarray:
    """``prv.cdf(t)``, bit for bit, at about three quarters of the cost.

    ``PoissonSubsampledGaussianMechanism.cdf`` (prv-accountant 0.2.0) computes its long-double
    argument ``z = log((p - 1)/p + e^t/p)`` twice (both branches of an ``np.where`` are the
    same expression) and ``2σ²z`` twice; this is the same expression, the same operations in
    the same order and precision, each computed once (``tests/accounting/test_fast_paths.py``
    checks the bits). Other PRVs go to their own ``cdf``.
    """
    if type(prv) is not PoissonSubsampledGaussianMechanism:
        return prv.cdf(t)
    sigma, p = prv.sigma, prv.p
    z = _prv_library.log((p - 1) / p + np.exp(t) / p)
    scaled = 2 * np.power(sigma, 2) * z
    root2 = _prv_library.M_SQRT2
    return np.where(
        t > _prv_library.log(1 - p),
        (
            (1.0 / 2.0) * p * (-special.erfc(np.double((1.0 / 4.0) * root2 * (scaled - 1) / sigma)))
            - 1.0
            / 2.0
            * (p - 1)
            * (-special.erfc(np.double((1.0 / 4.0) * root2 * (scaled + 1) / sigma)))
            + 1
        ),
        0.0,
    )


def _discretise(prv, domain: Domain, *, float64: bool = False) -> tuple[np.ndarray, float]:
    """prv-accountant's cell-centred, mean-preserving discretisation of ``prv`` truncated to
    ``domain`` (``discretisers.CellCentred`` on ``PrivacyRandomVariableTruncated``).

    The library evaluates the CDF at both edges of every cell, so every inner edge twice;
    here each edge once (the library's own long-double CDF unless ``float64``), and the cell
    masses are the differences. Returns (PMF as float64, the mean shift of the domain).

    Raises:
        RuntimeError: as the library, if the discrete mean is off by half a cell or more.
    """
    t_min, t_max, mesh = domain.t_min(), domain.t_max(), domain.dt()
    centres = domain.ts()
    edges = np.empty(len(centres) + 1, dtype=centres.dtype)
    edges[:-1] = centres - mesh / 2
    edges[-1] = centres[-1] + mesh / 2
    edges = np.clip(edges, t_min, t_max)
    truncated = PrivacyRandomVariableTruncated(prv, t_min, t_max)
    if float64:
        # Left of 0 difference the CDF, right of it the survival function: no cancellation.
        split = int(np.searchsorted(edges, 0.0))
        values = np.concatenate((prv.cdf(edges[:split]), -prv.survival(edges[split:])))
        masses = np.diff(values)
        if 0 < split < len(edges):  # the cell across 0: F(right) - F(left) = 1 - S - F
            masses[split - 1] = 1.0 - prv.survival(edges[split]) - prv.cdf(edges[split - 1])
        pmf = masses / (prv.cdf(t_max) - prv.cdf(t_min))
    else:
        cdf = _library_cdf(prv, edges)
        pmf = np.diff(cdf) / truncated.remaining_mass
    mean_shift = truncated.mean() - np.dot(centres, pmf)
    if not (abs(mean_shift) < mesh / 2):
        raise RuntimeError("Discrete mean differs from continuous mean significantly.")
    return np.asarray(pmf, dtype=np.float64), float(mean_shift)


def _compose_and_read(
    pmf: np.ndarray,
    *,
    steps: tuple[int, ...],
    mesh: float,
    left: int,
    mean_shift: float,
    log_mass_finite: float,
    delta: float,
    delta_error: float,
    eps_error: float,
) -> tuple[list[float], list[float], list[float]]:
    """(lower, estimate, upper) ε after each count in ``steps``: Fourier powers of ``pmf``."""
    size = len(pmf)
    # One tilt for every count, towards where δ is decided for the last one (Chernoff),
    # weakened until the grid holds the tilted mass: the proven round-off bound then costs
    # little near the answers (:mod:`dpplan.accounting.roundoff`). Cell i of a count's
    # domain window is linear composed index (count - 1)·left + i; loss 0 is near i = left.
    counts = np.asarray(steps, dtype=np.float64)
    tilt = roundoff.fit_tilt(
        pmf,
        counts,
        starts=counts * left,
        sizes=np.full(len(steps), size),
        tilt=roundoff.chernoff_tilt(pmf, steps[-1], interval=mesh, delta=delta),
        tail=delta * 1e-9,
    )
    composer = roundoff.Composer(pmf, size, tilt)

    def t_min_of(count: int) -> float:
        return -left * mesh + count * mean_shift

    loose = False
    lower, estimates, upper = [], [], []
    start_epsilon = 0.0

    def _read(composed: roundoff.ComposedPMF, count: int) -> tuple:
        return _epsilon_bounds(
            np.roll(composed.cells, (-(count - 1) * left) % size),
            t_min=t_min_of(count),
            mesh=mesh,
            delta=delta,
            delta_error=delta_error,
            eps_error=eps_error,
            log_mass_finite=log_mass_finite * count,
            start_epsilon=start_epsilon,
            composed=composed,
            first_index=(count - 1) * left,
        )

    start_epsilon = 0.0
    # Every count but the last two at a time per inverse FFT; the last a direct power on its
    # own, so it is bit-for-bit the value a single query for that count returns.
    curve = roundoff.compose_curve(composer, steps)
    for position, (count, composed) in enumerate(zip(steps, curve)):
        try:
            bounds = _read(composed, count)
        except AccountingError:
            if composed.tilt == 0:
                raise
            # The answer lies where the tilted cells are unreadable (ε near 0): this
            # count again, untilted.
            plain = roundoff.Composer(pmf, size)
            composed = plain.inverse(plain.power(count), count)
            bounds = _read(composed, count)
        if position == len(steps) - 1 and bounds[2] is not None:
            # The round-off charged at the answer (the tilt may have been weakened to fit
            # the grid): over _LOOSE·δ, a tilt aimed at the estimate may be tighter.
            offset = (count - 1) * left + (bounds[2] - eps_error - t_min_of(count)) / mesh
            charged = composed.error * math.exp(
                min(700.0, composed.log_scale - composed.tilt * offset)
            )
            loose = charged > _LOOSE * delta
        start_epsilon = max(0.0, bounds[0] - eps_error)
        lower.append(bounds[0])
        estimates.append(bounds[1])
        upper.append(bounds[2])

    def tilted_at(index: int) -> float:
        """The ε bound of ``steps[index]`` with a tilt aimed at its estimate."""
        count = steps[index]
        delta_inf = -math.expm1(log_mass_finite * count)
        return _tilted_upper(
            pmf,
            count=count,
            mesh=mesh,
            left=left,
            mean_shift=mean_shift,
            delta_fin=(delta - delta_inf) / (1 - delta_inf),
            delta=delta,
            delta_error=delta_error,
            eps_error=eps_error,
            guess=estimates[index],
        )

    if loose:
        try:
            upper[-1] = min(upper[-1], tilted_at(len(steps) - 1))
        except AccountingError:
            pass  # the first bound stands
    missing = [i for i, value in enumerate(upper) if value is None]
    chosen = set(missing[-1:])
    chosen.update(
        missing[round(k * (len(missing) - 1) / _TILTED_POINTS)]
        for k in range(_TILTED_POINTS)
        if missing
    )
    for index in sorted(chosen):
        upper[index] = tilted_at(index)
    following = math.inf  # ε never decreases with more steps: carry the next bound
    for index in range(len(upper) - 1, -1, -1):
        if upper[index] is not None:
            following = min(following, upper[index])
        upper[index] = following
    return lower, estimates, upper


def _epsilon_bounds(
    pmf: np.ndarray,
    *,
    t_min: float,
    mesh: float,
    delta: float,
    delta_error: float,
    eps_error: float,
    log_mass_finite: float,
    start_epsilon: float = 0.0,
    composed: roundoff.ComposedPMF,
    first_index: int = 0,
) -> tuple[float, float, float]:
    """Return (lower, estimate, upper) ε of a discrete PRV, as prv-accountant computes them.

    ``pmf[j]`` is the mass at privacy loss ``t_min + j * mesh``. The hockey-stick divergence
    is δ(ε) = Σ_{t ≥ ε} p(t) (1 - e^{ε - t}); within a cell it is solved exactly as
    ε = log((d1 - δ) / d2) with d1, d2 the tail sums of p and p·e^{-t}. Only the tail
    right of ``start_epsilon`` (a known lower bound on every answer, e.g. 0 or the previous
    epoch's lower bound) is summed; if an answer falls left of it the whole grid is used.
    ``composed`` carries the proven round-off bound of the FFT composition
    (:mod:`dpplan.accounting.roundoff`); the upper bound is read by
    :func:`~dpplan.accounting.roundoff.certified_epsilon`, which charges it and the float64
    sums' rounding to δ.

    If ``composed`` is tilted, ``pmf`` holds its (tilted) cells and ``first_index`` the
    linear composed index of ``pmf[0]``; the lower bound and estimate are read from the
    untilted cells where the round-off bound is below δ (zero below), the upper bound from
    the tilted ones. The upper bound is None when the round-off bound leaves no room in δ's
    budget (the caller then composes with a tilt aimed at the estimate).
    """
    delta_inf = -math.expm1(log_mass_finite)
    delta_fin = (delta - delta_inf) / (1 - delta_inf)
    if delta_fin <= 0:
        return (math.inf, math.inf, math.inf)
    # Proven bound on Σ|computed − exact| of the composed cells (not an estimate); when
    # tilted, the bound above cell i is error·e^{log_factor[i]} in untilted units.
    cells = pmf
    log_error = math.log(max(composed.error, 1e-300))
    if composed.tilt > 0:
        # Cells below ``cut`` have a round-off bound above δ: unreadable, left at zero.
        cut = (log_error + composed.log_scale - math.log(delta)) / composed.tilt - first_index
        cut = min(max(0, math.ceil(cut)), len(pmf))
        log_factor = composed.log_scale - composed.tilt * (first_index + np.arange(cut, len(pmf)))
        pmf = np.zeros_like(cells)
        with np.errstate(under="ignore"):
            pmf[cut:] = cells[cut:] * np.exp(np.minimum(log_factor, 700.0))

    def error_above(loss: float) -> float:
        if composed.tilt <= 0:
            return composed.error
        index = max(int((loss - t_min) / mesh), 0)
        return math.exp(
            min(700.0, log_error + composed.log_scale - composed.tilt * (first_index + index))
        )

    def tail_sums(start: int):
        t = t_min + mesh * np.arange(start, len(pmf))
        p = pmf[start:]
        d1 = np.cumsum(p[::-1])[::-1]
        d2 = np.cumsum((p * np.exp(-t))[::-1])[::-1]
        return start, t, d1, d2, np.exp(t) * d2 - d1

    window = tail_sums(max(0, int((start_epsilon - t_min) / mesh) - 1))

    def find_epsilon(target: float) -> float:
        nonlocal window
        start, _t, d1, d2, ndelta = window
        index = int(np.searchsorted(ndelta, -target, side="left"))
        if index <= 0 and start > 0:
            window = tail_sums(0)  # the answer lies left of the window
            return find_epsilon(target)
        if index <= 0 or index >= len(d1) or not (d1[index] - target > 0) or not (d2[index] > 0):
            raise AccountingError(
                f"prv accountant cannot compute epsilon at delta={delta:g} on its grid "
                f"[{t_min:.3g}, {t_min + mesh * (len(pmf) - 1):.3g}]. Use method='rdp' or 'pld'."
            )
        return math.log((d1[index] - target) / d2[index])

    estimate = find_epsilon(delta_fin)
    error_mass = error_above(estimate - 2 * eps_error)
    try:
        lower = find_epsilon(delta_fin + delta_error + error_mass) - eps_error
    except AccountingError:  # the round-off bound swamps δ: 0 is a (useless) lower bound
        lower = 0.0
    # The upper bound: ε with δ(ε) of the exact composition, plus the proven round-off and
    # the float64 sums' rounding, at most δ - delta_error (with m_j the error of cell j,
    # δ(ε) moves by Σ m_j (1 - e^{ε - t_j}), at most the total error mass).
    upper = None
    if not (error_mass * 4 > delta_fin - delta_error):  # prv-accountant's own margin
        upper = roundoff.certified_epsilon(
            composed,
            cells,
            first_index=first_index,
            first_loss=t_min,
            interval=mesh,
            infinity_mass=0.0,
            delta=delta_fin - delta_error,
            start=max(0.0, start_epsilon),
        )
    if upper is None:  # the caller composes again with a tilt
        return (max(lower, 0.0), max(estimate, 0.0), None)
    return (max(lower, 0.0), max(estimate, 0.0), max(upper + eps_error, 0.0))


def _tilted_upper(
    pmf: np.ndarray,
    *,
    count: int,
    mesh: float,
    left: int,
    mean_shift: float,
    delta_fin: float,
    delta: float,
    delta_error: float,
    eps_error: float,
    guess: float,
) -> float:
    """prv-accountant's upper bound after ``count`` steps from an exponentially tilted
    composition (δ below the untilted round-off bound; :mod:`dpplan.accounting.roundoff`).

    Raises:
        AccountingError: if even the tilted round-off bound leaves no room in δ.
    """
    size = len(pmf)
    origin = count * (-left * mesh + mean_shift)  # loss of linear composed index 0
    first_index = (count - 1) * left  # linear index of the domain's first cell
    upper = math.inf
    if math.isfinite(guess) and delta_fin - delta_error > 0:
        tilt = roundoff.choose_tilt(pmf, count, interval=mesh, target=guess - origin)
        # Any tilt is proven; a strong one lets far-tail cells dominate and wrap around, so
        # try a few, including the strongest whose wrapped-around mass the grid holds.
        fitted = roundoff.fit_tilt(
            pmf, [count], starts=[count * left], sizes=[size], tilt=tilt, tail=delta * 1e-9
        )
        trials = [(trial, size) for trial in sorted({tilt * f for f in _TILT_FACTORS} | {fitted})]
        # Two trials at a time (one forward and one inverse FFT per pair).
        upper = roundoff.least_certified_epsilon(
            pmf,
            count,
            trials,
            first_index=first_index,
            width=size,
            first_loss=origin + first_index * mesh,
            interval=mesh,
            infinity_mass=0.0,
            delta=delta_fin - delta_error,
        )
    if not math.isfinite(upper):
        raise AccountingError(
            f"prv accountant cannot certify epsilon at delta={delta:g} after {count:,} steps: "
            "the proven floating-point (float64) round-off bound of its FFT composition exceeds delta even "
            "with exponential tilting. Increase delta or use method='rdp'."
        )
    return max(upper + eps_error, 0.0)
