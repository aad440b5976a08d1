"""PLD backend: dp-accounting's privacy loss distributions (Koskela et al. 2020;
Doroshenko et al. 2022, connect-the-dots).

The single-step PLD of a Poisson-subsampled Gaussian is built once with the pessimistic
(upper-bound) discretisation, as dp-accounting's ``PLDAccountant`` builds it. The PLD after
``n`` steps is its ``n``-fold self-composition, computed as ``DensePLDPmf.self_compose``
computes it (an FFT power on a window given by Chernoff tail bounds, the truncated tail mass
moved to infinity) but for a whole curve at once: one FFT of each single-step PMF on a grid
sized for the last step count (rounded up to a length 2^a·3^b·5^c, the lengths the
round-off proof covers), then for each epoch a power of that transform (the previous
epoch's power times the power of the gap), an inverse FFT (two epochs per complex
transform) and a vectorised read-out. A K-epoch curve costs about one final query plus K/2
inverse transforms and K read-outs.

**Round-off, proven.** The float64 error of that composition has an a-priori bound
(:mod:`dpplan.accounting.roundoff`: Higham's Thm 24.2 argument applied to the radix-8/4/2/3/5
passes of pocketfft's complex transform, the power's rounding and Parseval), charged to δ
before ε is read, together with the rounding of the read-out's sums.
Every count is composed *exponentially tilted* towards where δ is decided for the last count
(the Chernoff-optimal tilt, weakened until the grid holds the tilted mass), which scales the
bound near the answer by a Chernoff factor. Where the charged bound is still large (tiny δ),
the last such count and up to 8 others are recomposed with tilts aimed at their own ε on
their own grids and the smallest certified bound kept; the counts between carry the next
bound. What is proven: ε is an upper bound for the exact composition of dp-accounting's
float64 single-step PMF (its pessimistic discretisation is dp-accounting's). What is
checked: an FFT-free direct-convolution reference (``tests/accounting/tail_reference.py``)
at δ from 1e-5 to 1e-14, and dp-accounting's own composition at moderate δ. Refusals: δ ≤
2e-15 (the 1e-15 tail moved to infinity would dominate) and any δ no tilt certifies, with an
``AccountingError`` naming δ. dp-accounting's private fields are read only through
:mod:`dpplan.accounting._internals`.

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

Long curves on large grids evaluate fewer epochs directly (:data:`CURVE_WORK`); the others
carry the bound of the next evaluated epoch (see ``Backend.MAX_CURVE_POINTS``). Every
evaluated epoch uses the final grid, and the last point equals ``epsilon(plan)``.
"""

from __future__ import annotations

import math

import dp_accounting
import numpy as np
from dp_accounting.pld import common, privacy_loss_distribution, privacy_loss_mechanism
from scipy import signal, special

from dpplan.accounting import _internals, roundoff
from dpplan.accounting.base import Backend, Computation, result_cache
from dpplan.errors import AccountingError

__all__ = [
    "DEFAULT_VALUE_DISCRETIZATION_INTERVAL",
    "MAX_COMPOSED_POINTS",
    "MAX_STEP_POINTS",
    "PLDAccountant",
]

#: dp-accounting's default grid for the privacy loss.
DEFAULT_VALUE_DISCRETIZATION_INTERVAL = 1e-4
#: Most cells of the single-step PLD (each costs ~2 µs to build, twice for add/remove).
MAX_STEP_POINTS = 1 << 19
#: Most cells of a composed PLD (one complex FFT of this length: ~1 s and ~0.4 GB here).
MAX_COMPOSED_POINTS = 1 << 22
#: Budget of FFT points × evaluated epochs for one curve (~1 s of inverse FFTs here); long
#: curves on large grids evaluate fewer epochs (at least MIN_CURVE_POINTS).
CURVE_WORK = 1 << 26
MIN_CURVE_POINTS = 10
#: Tilts tried for a tiny-δ answer, as fractions of the Chernoff-optimal one.
_TILT_FACTORS = (1.0, 0.9, 0.8, 0.7)
#: Round-off charged at an answer, as a fraction of δ, above which it is recomputed tilted.
_LOOSE = 1e-4
#: Step counts composed with a tilt when δ is below the untilted round-off bound: the last
#: one and at most this many more (each costs about one single query).
_TILTED_POINTS = 8
#: Cells of the coarse single-step PLD used to estimate grid sizes.
_PROBE_POINTS = 2000
#: dp-accounting's defaults: Gaussian tail truncation (ln mass) and composed tail mass.
_LOG_MASS_TRUNCATION_BOUND = -50.0
_TAIL_MASS_TRUNCATION = 1e-15
#: Smallest δ PLD answers: the truncated tail mass (moved to infinity) must stay below δ/2.
_MIN_DELTA = 2 * _TAIL_MASS_TRUNCATION


@result_cache(maxsize=32)
def pld_per_step(sample_rate: float, noise_multiplier: float, interval: float):
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


@result_cache(maxsize=256)
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


@result_cache(maxsize=256)
def _composed_loss_width(sample_rate: float, noise_multiplier: float, steps: int) -> float:
    """Estimated width (in nats) of the PLD after ``steps`` self-compositions.

    dp-accounting truncates the composed PLD to the tail bounds of
    ``common.compute_self_convolve_bounds``; they are computed here on a coarse copy of the
    single-step PLD, which costs milliseconds and predicts the width to a few percent.
    """
    probe, pld = _probe_pld(sample_rate, noise_multiplier)
    width = 0.0
    for probs in _internals.pmf_arrays(pld):  # sizes only
        lower, upper = common.compute_self_convolve_bounds(probs, steps, _TAIL_MASS_TRUNCATION)
        width = max(width, (upper - lower + 1) * probe)
    return width


@result_cache(maxsize=32)
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

    def max_curve_points(self, plan) -> int:
        """Evaluate fewer epochs directly on large grids, so a curve stays within about a second.

        Every evaluated epoch costs one inverse FFT per PLD of the final epoch's grid; the
        budget :data:`CURVE_WORK` bounds their total length.
        """
        try:
            interval = self.grid_interval(
                sample_rate=plan.sample_rate,
                noise_multiplier=plan.noise_multiplier,
                steps=plan.total_steps,
            )
            width = _composed_loss_width(plan.sample_rate, plan.noise_multiplier, plan.total_steps)
        except (AccountingError, ValueError, ArithmeticError):
            return self.MAX_CURVE_POINTS  # compute() reports the error
        cells = 2 * max(1.0, width / interval)  # two PLDs (remove, add)
        return int(max(MIN_CURVE_POINTS, min(self.MAX_CURVE_POINTS, CURVE_WORK // cells)))

    def _compute(
        self, *, sample_rate: float, noise_multiplier: float, delta: float, steps: tuple[int, ...]
    ) -> Computation:
        """Return PLD ε upper bounds after each entry of ``steps``.

        Raises:
            AccountingError: if dp-accounting fails (e.g. out of memory), the grid cannot be
                sized, δ ≤ 2e-15, or no tilt brings the proven round-off bound below δ.
        """
        requested = self.value_discretization_interval
        interval = self.grid_interval(
            sample_rate=sample_rate, noise_multiplier=noise_multiplier, steps=steps[-1]
        )
        if not (delta > _MIN_DELTA):
            raise AccountingError(
                f"pld accountant cannot certify epsilon at delta={delta:g}: its limit is "
                f"delta > {_MIN_DELTA:g} (a tail mass of {_TAIL_MASS_TRUNCATION:g} is moved to "
                "infinity). Use method='rdp'."
            )
        try:
            step = pld_per_step(sample_rate, noise_multiplier, interval)
            pmfs = _internals.dense_pmfs(step)
            per_pmf = [_compose_and_read(pmf, steps, delta) for pmf in pmfs]
            missing = [i for i in range(len(steps)) if any(r[0][i] is None for r in per_pmf)]
            loose = sorted({i for r in per_pmf for i in r[3]} - set(missing))
            # δ below the untilted bound: tilted compositions for the last such count and
            # up to _TILTED_POINTS others; the counts between carry the next bound. Loose
            # answers (much round-off charged) get the same treatment, keeping the smaller.
            chosen = set()
            for group in (missing, loose):
                chosen.update(group[-1:])
                chosen.update(
                    group[round(k * (len(group) - 1) / _TILTED_POINTS)]
                    for k in range(_TILTED_POINTS)
                    if group
                )
            for index in sorted(chosen):
                for pmf, (eps, guesses, *_) in zip(pmfs, per_pmf):
                    if eps[index] is None:
                        eps[index] = _tilted_epsilon(pmf, steps[index], delta, guesses[index])
                    elif index in loose:
                        try:
                            tilted = _tilted_epsilon(pmf, steps[index], delta, guesses[index])
                        except AccountingError:
                            continue
                        eps[index] = min(eps[index], tilted)
        except AccountingError:
            raise
        except (ValueError, ArithmeticError, MemoryError) as exc:
            raise AccountingError(
                f"pld accountant failed for sample_rate={sample_rate}, "
                f"noise_multiplier={noise_multiplier}: {exc!r}. Try method='rdp' or 'prv'."
            ) from exc
        # dp-accounting's rule for add-or-remove: the larger ε of the two PLDs.
        epsilons = [
            None if None in values else max(values) for values in zip(*(r[0] for r in per_pmf))
        ]
        following = math.inf  # the smallest bound computed for this many steps or more
        for index in range(len(epsilons) - 1, -1, -1):
            if epsilons[index] is not None:
                following = min(following, epsilons[index])
            epsilons[index] = following
        settings = {
            "value_discretization_interval": interval,
            "pessimistic_estimate": True,
            "tail_mass_truncation": _TAIL_MASS_TRUNCATION,
            "composition": "Fourier-domain powers of the single-step PLD on one grid sized for "
            "the last step count; a proven float64 round-off bound charged to δ",
            "fft_points": max(r[2] for r in per_pmf),
            "tilted_recomputations": len(chosen),
        }
        if missing:
            settings["tiny_delta"] = (
                f"delta={delta:g} is below the untilted round-off bound for {len(missing)} "
                f"step counts: {len(chosen)} of them use an exponentially tilted composition, "
                "the others carry the next one's bound"
            )
        if interval != requested:
            settings["coarsened"] = (
                f"grid widened from {requested:g} to {interval:g} to bound the work (at "
                f"{requested:g} it would need more than {MAX_STEP_POINTS:,} single-step or "
                f"{MAX_COMPOSED_POINTS:,} composed cells); still pessimistic, so still an "
                "upper bound, only looser"
            )
        return Computation(upper=tuple(epsilons), settings=settings)


def _convolve_bounds(probs: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """dp-accounting's ``common.compute_self_convolve_bounds`` for many counts at once.

    The Chernoff bounds use the log-MGF of the single-step PMF at 40 orders; it does not
    depend on the count, so it is computed once and each count costs a few multiplications.
    Returns (lower, upper) index bounds of the ``count``-fold convolution, outside which its
    mass is at most the tail truncation.
    """
    size = len(probs)
    orders = np.concatenate((np.arange(-20, 0), np.arange(1, 21))) / size
    with np.errstate(divide="ignore"):
        log_mgfs = np.array(
            [special.logsumexp(np.arange(size) * order, b=probs) for order in orders]
        )
    log_two_over_tail = math.log(2 / _TAIL_MASS_TRUNCATION)
    lower = np.zeros(len(counts), dtype=np.int64)
    upper = (size - 1) * counts.astype(np.int64)
    for order, log_mgf in zip(orders, log_mgfs):
        with np.errstate(invalid="ignore", over="ignore"):
            bound = (counts * log_mgf + log_two_over_tail) / order
        finite = np.isfinite(bound)
        if order > 0:
            upper = np.where(finite, np.minimum(upper, np.ceil(np.where(finite, bound, 0))), upper)
        else:
            lower = np.where(finite, np.maximum(lower, np.floor(np.where(finite, bound, 0))), lower)
    return lower.astype(np.int64), upper.astype(np.int64)


def _compose_and_read(
    pmf: _internals.SinglePMF, steps: tuple[int, ...], delta: float
) -> tuple[list[float | None], list[float], int]:
    """ε after each step count in ``steps`` of one dense single-step PMF, the uncertified
    read-outs (to aim the tilt where ε is None) and the FFT length.

    One FFT of the single-step PMF on a grid long enough for the last count's window (a
    length the round-off proof covers); each count is then a power of that transform (the
    previous count's power times the power of the gap, or a direct power), an inverse FFT
    (two counts per complex transform, the last alone) and a vectorised read-out. The
    window and the infinity mass follow ``DensePLDPmf.self_compose`` (tail mass 1e-15 moved
    to infinity: pessimistic); mass outside a count's window wraps into it, which can only
    add to δ. The float64 round-off is bounded a priori (:mod:`dpplan.accounting.roundoff`)
    and charged to δ; where that bound is too large for δ the entry is None.
    """
    probs = pmf.probs
    counts = np.asarray(steps, dtype=np.float64)
    lower, upper = _convolve_bounds(probs, counts)
    widths = upper - lower + 1
    # Lengths 2^a·3^b·5^c: the ones the round-off proof covers (roundoff.check_length).
    last_size = roundoff.fft_length(max(widths[-1], len(probs)))
    size = roundoff.fft_length(max(widths.max(), len(probs)))
    # One tilt for every count, towards where δ is decided for the last one (Chernoff), or
    # less where the grids are too short for its wrapped-around mass: the proven round-off
    # bound then costs little near the answers (:mod:`dpplan.accounting.roundoff`).
    tilt = roundoff.fit_tilt(
        probs,
        counts,
        starts=np.maximum(lower, -pmf.lower_loss * counts),  # loss 0: ε is never below
        sizes=np.where(np.arange(len(steps)) == len(steps) - 1, last_size, size),
        tilt=roundoff.chernoff_tilt(probs, steps[-1], interval=pmf.discretization, delta=delta),
        tail=delta * 1e-9,
    )
    composers = {size: roundoff.Composer(probs, size, tilt)}
    if last_size != size:  # the last count on its own grid, as a single query computes it
        composers[last_size] = roundoff.Composer(probs, last_size, tilt)
    log_keep = math.log1p(-pmf.infinity_mass)
    epsilons: list[float | None] = []
    guesses: list[float] = []
    loose: list[int] = []
    start = 0.0
    # Every count but the last two at a time per inverse FFT; the last as a direct power on
    # its own grid, so it equals a single query for it (roundoff.compose_curve).
    curve = roundoff.compose_curve(composers[size], steps, last=composers[last_size])
    for position, (count, composed) in enumerate(zip(steps, curve)):
        grid = last_size if position == len(steps) - 1 else size
        window = np.take(composed.cells, (lower[position] + np.arange(widths[position])) % grid)
        infinity_mass = _TAIL_MASS_TRUNCATION - math.expm1(count * log_keep)
        first_loss = (pmf.lower_loss * count + int(lower[position])) * pmf.discretization
        if not (infinity_mass <= delta):  # the tail moved to infinity alone exceeds δ
            epsilons.append(math.inf)
            guesses.append(math.inf)
            continue
        epsilon = roundoff.certified_epsilon(
            composed,
            window,
            first_index=int(lower[position]),
            first_loss=first_loss,
            interval=pmf.discretization,
            infinity_mass=infinity_mass,
            delta=delta,
            start=start,
        )
        epsilons.append(epsilon)
        if epsilon is None:
            # δ below the untilted round-off bound: an uncertified read-out aims the tilt.
            guesses.append(
                _epsilon_for_delta(
                    window,
                    first_loss=first_loss,
                    interval=pmf.discretization,
                    infinity_mass=infinity_mass,
                    delta=delta,
                )
            )
            continue
        guesses.append(epsilon)
        # The round-off charged at the answer (the tilt may have been weakened to fit the
        # grid): over _LOOSE·δ, a tilted composition on a longer grid may be tighter.
        offset = int(lower[position]) + (epsilon - first_loss) / pmf.discretization
        charged = composed.error * math.exp(min(700.0, composed.log_scale - composed.tilt * offset))
        if charged > _LOOSE * delta:
            loose.append(position)
        start = epsilon if math.isfinite(epsilon) else start
    return epsilons, guesses, size, loose


def _tilted_epsilon(pmf: _internals.SinglePMF, count: int, delta: float, guess: float) -> float:
    """ε after ``count`` steps from exponentially tilted compositions (tiny δ).

    Any tilt gives a proven bound (:mod:`dpplan.accounting.roundoff`), so a few are tried
    and the smallest bound kept: the tilt that minimises the Chernoff factor at ``guess``
    (an uncertified ε) and weaker ones (a strong tilt lets far-tail cells dominate the
    tilted PMF and its wrapped-around mass), on the count's grid and on one twice as long.

    Raises:
        AccountingError: if no tilt brings the round-off bound below δ.
    """
    probs = pmf.probs
    lower, upper = _convolve_bounds(probs, np.asarray([count], dtype=np.float64))
    lower, width = int(lower[0]), int(upper[0] - lower[0] + 1)
    origin = pmf.lower_loss * count * pmf.discretization  # loss of composed index 0
    infinity_mass = _TAIL_MASS_TRUNCATION - math.expm1(count * math.log1p(-pmf.infinity_mass))
    best = math.inf
    if math.isfinite(guess):
        tilt = roundoff.choose_tilt(
            probs, count, interval=pmf.discretization, target=max(guess, 0.0) - origin
        )
        grid = roundoff.fft_length(max(width, len(probs)))
        trials = [(tilt * f, grid) for f in _TILT_FACTORS]
        trials.append((tilt, 2 * grid))
        # Trials on one grid two at a time (one forward and one inverse FFT per pair).
        best = roundoff.least_certified_epsilon(
            probs,
            count,
            trials,
            first_index=lower,
            width=width,
            first_loss=origin + lower * pmf.discretization,
            interval=pmf.discretization,
            infinity_mass=infinity_mass,
            delta=delta,
        )
    if not math.isfinite(best):
        raise AccountingError(
            f"pld accountant cannot certify epsilon at delta={delta:g} after {count:,} steps: "
            "the proven floating-point (float64) round-off bound of the FFT composition exceeds delta even "
            "with exponential tilting. Use method='rdp'."
        )
    return best


def _epsilon_for_delta(
    probs: np.ndarray,
    *,
    first_loss: float,
    interval: float,
    infinity_mass: float,
    delta: float,
    start: float = 0.0,
) -> float:
    """The smallest ε >= 0 with δ(ε) <= ``delta``: ``DensePLDPmf.get_epsilon_for_delta``,
    vectorised.

    ``probs[j]`` is the mass at privacy loss ``first_loss + j * interval``; δ(ε) =
    infinity_mass + Σ_{t_j > ε} p_j (1 - e^{ε - t_j}). With D_j = infinity_mass +
    Σ_{i >= j} p_i and G_j = Σ_{i >= j} p_i e^{t_j - t_i} (a stable backward recursion,
    G_j = p_j + e^{-interval} G_{j+1}, which never overflows), δ(t_j) = D_j - G_j, and on
    (t_{j-1}, t_j] δ(ε) = D_j - e^{ε - t_j} G_j, solved exactly. Only the tail above
    ``start`` (a value at most the answer, e.g. the previous count's ε) is summed first.
    """
    if not (infinity_mass <= delta):
        return math.inf
    first = 0
    if start > first_loss:
        first = max(0, int((start - first_loss) / interval) - 2)
    while True:
        tail = probs[first:]
        mass = infinity_mass + np.cumsum(tail[::-1])[::-1]
        weighted = signal.lfilter([1.0], [1.0, -math.exp(-interval)], tail[::-1])[::-1]
        above = np.flatnonzero(mass - weighted <= delta)
        index = int(above[0]) if len(above) else len(tail)
        if index == 0 and first > 0:
            first = 0  # the answer lies below the window: use the whole PMF
            continue
        break
    if index >= len(tail):  # δ(t_last) = infinity_mass <= delta, so this cannot happen
        return max(0.0, first_loss + (len(probs) - 1) * interval)
    remaining, weight = float(mass[index]), float(weighted[index])
    loss = first_loss + (first + index) * interval
    if not (remaining > delta):  # only through round-off; t_j itself is safe
        return max(0.0, loss)
    if not (weight > 0):
        return max(0.0, loss)
    return max(0.0, loss + math.log((remaining - delta) / weight))
