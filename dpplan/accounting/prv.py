"""PRV backend: prv-accountant's privacy random variables (Gopi, Lee, Wutschitz 2021).

prv-accountant builds the privacy random variable of one Poisson-subsampled Gaussian step,
sizes a safe domain for the largest number of steps (its Remark 5.6), truncates it and
discretises it (cell-centred, mean-preserving). dpplan then composes that one discretisation
for every requested step count with a single forward FFT and one inverse FFT per count, the
Fourier composition of prv-accountant's ``composers.Fourier``, and reads ε with the formula of
``DiscretePrivacyRandomVariable.compute_epsilon``. Two things differ from the library, both
for speed, and neither loosens the guarantee:

* the grid length is rounded up to an FFT-friendly size (prv-accountant's sizes are often
  twice a prime, which costs ~100x); the mesh is unchanged and the domain only widens;
* the composition runs in float64 rather than long double. The round-off of the FFT is
  bounded from the computed PMF's negative mass (a true PMF has none) and added to δ's error
  budget before ε is read, so the reported upper bound stays an upper bound.

The reported ε is prv-accountant's *upper* bound (estimate + ``eps_error``, at δ minus
``delta_error``); the lower bound and the estimate are kept for display.
"""

from __future__ import annotations

import math

import numpy as np
from prv_accountant import discretisers
from prv_accountant.accountant import compute_safe_domain_size
from prv_accountant.domain import Domain
from prv_accountant.privacy_random_variables import (
    PoissonSubsampledGaussianMechanism,
    PrivacyRandomVariableTruncated,
)
from scipy import fft

from dpplan.accounting.base import Backend, Computation
from dpplan.errors import AccountingError

__all__ = ["DEFAULT_EPS_ERROR", "MAX_GRID_POINTS", "PRVAccountant"]

#: Additive error of ε between the estimate and each bound (Opacus uses the same).
DEFAULT_EPS_ERROR = 0.01
#: delta_error = delta * this fraction (Opacus uses delta / 1000).
DEFAULT_DELTA_ERROR_FRACTION = 1e-3
#: Largest discretisation grid. Beyond it a query takes more than ~10 s and >1 GB.
MAX_GRID_POINTS = 1 << 22
_FLOAT_EPS = float(np.finfo(np.float64).eps)


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
            points = self.grid_points(sample_rate=plan.sample_rate,
                                      noise_multiplier=plan.noise_multiplier,
                                      delta=plan.delta, steps=plan.total_steps)
        except (AccountingError, ValueError, ArithmeticError):
            return self.MAX_CURVE_POINTS  # compute() reports the error
        return max(20, min(self.MAX_CURVE_POINTS, self.CURVE_WORK // points))

    def grid_points(self, *, sample_rate: float, noise_multiplier: float, delta: float,
                    steps: int) -> int:
        """Return the grid size a query for ``steps`` steps needs (cheap: no discretisation)."""
        return len(self._domain(sample_rate, noise_multiplier, delta, steps)[0])

    def _domain(self, sample_rate, noise_multiplier, delta, steps):
        delta_error = delta * self.delta_error_fraction
        prv = PoissonSubsampledGaussianMechanism(
            sampling_probability=sample_rate, noise_multiplier=noise_multiplier
        )
        half_width = compute_safe_domain_size(
            [prv], [steps], eps_error=self.eps_error, delta_error=delta_error
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
        size = fft.next_fast_len(2 * half_points + 2, real=True)
        while size % 2:
            size = fft.next_fast_len(size + 1, real=True)
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
        try:
            domain, prv, left, delta_error = self._domain(
                sample_rate, noise_multiplier, delta, steps[-1]
            )
            truncated = PrivacyRandomVariableTruncated(prv, domain.t_min(), domain.t_max())
            discrete = discretisers.CellCentred().discretise(truncated, domain)
        except AccountingError:
            raise
        except (ValueError, RuntimeError, ArithmeticError, MemoryError) as exc:
            raise AccountingError(
                f"prv accountant failed for sample_rate={sample_rate:g}, "
                f"noise_multiplier={noise_multiplier:g}: {exc}. Use method='rdp' or 'pld'."
            ) from exc
        size = len(domain)
        mesh = domain.dt()
        mean_shift = float(discrete.domain.shifts())
        log_mass_finite = float(discrete.log_pmc_inf)
        transform = fft.rfft(np.asarray(discrete.pmf, dtype=np.float64))
        lower, estimates, upper = [], [], []
        power, power_steps = None, 0
        step_powers: dict[int, np.ndarray] = {}
        start_epsilon = 0.0
        for position, count in enumerate(steps):
            gap = count - power_steps
            if power is None or 4 * gap > count or position == len(steps) - 1:
                # The last count is always a direct power, so it is bit-for-bit the value a
                # single query for that count returns.
                power = transform**count
            else:
                if gap not in step_powers:
                    if len(step_powers) >= 4:  # evenly spaced epochs give 1-2 distinct gaps
                        step_powers.clear()
                    step_powers[gap] = transform**gap
                power = power * step_powers[gap]
            power_steps = count
            pmf = fft.irfft(power, n=size, workers=-1)
            pmf = np.roll(pmf, (-(count - 1) * left) % size)
            t_min = -left * mesh + count * mean_shift
            bounds = _epsilon_bounds(
                pmf,
                t_min=t_min,
                mesh=mesh,
                delta=delta,
                delta_error=delta_error,
                eps_error=self.eps_error,
                log_mass_finite=log_mass_finite * count,
                start_epsilon=start_epsilon,
            )
            start_epsilon = max(0.0, bounds[0] - self.eps_error)
            lower.append(bounds[0])
            estimates.append(bounds[1])
            upper.append(bounds[2])
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
) -> tuple[float, float, float]:
    """Return (lower, estimate, upper) ε of a discrete PRV, as prv-accountant computes them.

    ``pmf[j]`` is the mass at privacy loss ``t_min + j * mesh``. The hockey-stick divergence
    is δ(ε) = Σ_{t ≥ ε} p(t) (1 - e^{ε - t}); within a cell it is solved exactly as
    ε = log((d1 - δ) / d2) with d1, d2 the tail sums of p and p·e^{-t}. Only the tail
    right of ``start_epsilon`` (a known lower bound on every answer, e.g. 0 or the previous
    epoch's lower bound) is summed; if an answer falls left of it the whole grid is used.
    """
    delta_inf = -math.expm1(log_mass_finite)
    delta_fin = (delta - delta_inf) / (1 - delta_inf)
    if delta_fin <= 0:
        return (math.inf, math.inf, math.inf)
    # Round-off of the float64 FFT: a true PMF is non-negative, so the negative mass of the
    # computed one measures the noise floor. Budget it generously over the whole grid.
    noise_floor = max(-float(pmf.min()), 0.0) + 4 * _FLOAT_EPS * float(pmf.max())
    error_mass = noise_floor * len(pmf)
    if error_mass * 4 > delta_fin - delta_error:  # mirrors prv-accountant's own check
        raise AccountingError(
            f"prv accountant cannot resolve delta={delta:g}: floating-point error "
            f"(~{error_mass:.1e}) would dominate. Increase delta or use method='rdp'."
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
        start, t, d1, d2, ndelta = window
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

    lower = find_epsilon(delta_fin + delta_error + error_mass) - eps_error
    estimate = find_epsilon(delta_fin)
    # For the upper bound, lower the δ target by the round-off allowance. With m_j the error
    # of cell j, δ(ε) = Σ_{t_j ≥ ε} p_j (1 - e^{ε - t_j}) moves by Σ m_j (1 - e^{ε - t_j}),
    # whose coefficients lie in [0, 1): at most the total error mass.
    target = delta_fin - delta_error - error_mass
    if not (target > 0):
        raise AccountingError(
            f"prv accountant cannot resolve delta={delta:g}: floating-point error would "
            "dominate. Increase delta or use method='rdp'."
        )
    upper = find_epsilon(target)
    return (max(lower, 0.0), max(estimate, 0.0), max(upper + eps_error, 0.0))
