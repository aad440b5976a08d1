"""ε and δ of DP-SGD segments with different sample rates and noise multipliers.

A *segment* is ``steps`` Poisson-subsampled Gaussian steps at one sample rate q and noise
multiplier σ. Phased plans, the ledger and dpplan's dp-accounting accountant all reduce what
they account to a sequence of segments and call :func:`epsilon_of_segments` (or
:func:`delta_of_segments`), the one primitive they share.

Composition is commutative, so segments with the same (q, σ) are merged wherever they sit.
When one (q, σ) remains, the backend's own fast path answers (the same computation as
``dpplan.epsilon(plan)``); with several, each method uses its library's heterogeneous path:

* ``"rdp"``: the per-step RDP vectors (dp-accounting's, cached) times their counts, summed
  and converted by dp-accounting's ``compute_epsilon``, which is what ``RdpAccountant`` does
  for a composed event;
* ``"pld"``: each distinct (q, σ)'s one-step PLD (dp-accounting's, cached) self-composed and
  composed as dp-accounting's ``PLDAccountant`` does, on the grid dpplan's PLD backend would
  use for the largest segment (pessimistic, so an upper bound);
* ``"prv"``: prv-accountant's ``PRVAccountant`` with one PRV per (q, σ) and
  ``max_self_compositions`` the counts, reporting its upper bound.

``"best"`` answers the smallest upper bound of the methods that succeed; the minimum of valid
upper bounds is a valid upper bound. Every ε and δ returned is an upper bound.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

from dpplan import _validate
from dpplan.accounting.base import METHODS, MIN_NOISE_MULTIPLIER, library_failure, result_cache
from dpplan.errors import AccountingError, PlanError

__all__ = [
    "SEGMENT_METHODS",
    "Segment",
    "delta_of_segments",
    "epsilon_of_segments",
    "merge_segments",
]

#: Methods the segment primitive accepts: the three accountants and ``"best"``.
SEGMENT_METHODS = (*METHODS, "best")
#: δ error of prv-accountant's ``compute_delta`` (there is no target δ to scale it by).
PRV_GET_DELTA_ERROR = 1e-10


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Segment:
    """``steps`` Poisson-subsampled Gaussian steps at one sample rate and noise multiplier.

    Attributes:
        sample_rate: Poisson sample rate q in [0, 1]; q = 0 uses no record (ε = 0).
        noise_multiplier: σ, finite, >= 0.01 (the backends' floor).
        steps: number of steps, an integer >= 0.

    Example:
        >>> Segment(sample_rate=0.01, noise_multiplier=1.0, steps=100).steps
        100
    """

    sample_rate: float
    noise_multiplier: float
    steps: int

    def __post_init__(self) -> None:
        sample_rate = _validate.closed_interval(low=0.0, high=1.0, sample_rate=self.sample_rate)
        noise_multiplier = _validate.finite_positive(noise_multiplier=self.noise_multiplier)
        if not (noise_multiplier >= MIN_NOISE_MULTIPLIER):
            raise PlanError(
                "noise_multiplier",
                self.noise_multiplier,
                f"a finite number >= {MIN_NOISE_MULTIPLIER:g}",
                "Below it a single step already costs ε in the hundreds.",
            )
        steps = _validate.integer(minimum=0, steps=self.steps)
        object.__setattr__(self, "sample_rate", sample_rate)
        object.__setattr__(self, "noise_multiplier", noise_multiplier)
        object.__setattr__(self, "steps", steps)

    @property
    def mechanism(self) -> tuple[float, float]:
        """``(sample_rate, noise_multiplier)``: segments with equal mechanisms merge."""
        return (self.sample_rate, self.noise_multiplier)


def merge_segments(segments: Iterable[Segment]) -> tuple[Segment, ...]:
    """Return one segment per distinct (q, σ), sorted by (q, σ).

    The order is canonical, so the same steps in any order give bit-identical results.

    Segments without steps or with q = 0 change nothing and are dropped.

    Raises:
        PlanError: if an item is not a :class:`Segment`.

    Example:
        >>> a = Segment(sample_rate=0.01, noise_multiplier=1.0, steps=10)
        >>> b = Segment(sample_rate=0.02, noise_multiplier=1.0, steps=5)
        >>> [s.steps for s in merge_segments([a, b, a])]
        [20, 5]
    """
    counts: dict[tuple[float, float], int] = {}
    for segment in segments:
        if not isinstance(segment, Segment):
            raise PlanError("segments", segment, "a sequence of dpplan Segment values")
        if segment.steps and segment.sample_rate > 0:
            counts[segment.mechanism] = counts.get(segment.mechanism, 0) + segment.steps
    return tuple(
        Segment(sample_rate=q, noise_multiplier=sigma, steps=steps)
        for (q, sigma), steps in sorted(counts.items())
    )


def _method(method: object) -> str:
    return _validate.choice(
        options=SEGMENT_METHODS,
        hint="'best' answers the smallest upper bound of the three.",
        method=method,
    )


def _best(compute, name: str) -> float:
    """Smallest value of ``compute(method)`` over the methods that succeed."""
    found, failures = [], []
    for method in METHODS:
        try:
            found.append(compute(method))
        except AccountingError as exc:
            failures.append(f"{method}: {exc}")
    if not found:
        raise AccountingError(f"every method failed to compute {name}: " + "; ".join(failures))
    return min(found)


def epsilon_of_segments(segments: Iterable[Segment], *, delta: float, method: str) -> float:
    """Return the ε upper bound at ``delta`` of all ``segments`` composed.

    Args:
        segments: the segments, in any order (composition is commutative).
        delta: δ in (0, 1).
        method: ``"rdp"``, ``"prv"``, ``"pld"`` or ``"best"``.

    Returns:
        ε >= 0 (0 when nothing is composed); ``math.inf`` where the method's bound is infinite.

    Raises:
        PlanError: for an invalid segment, δ or method.
        AccountingError: if the library fails (for ``"best"``: if every method fails).

    Example:
        >>> phases = [Segment(sample_rate=0.01, noise_multiplier=1.0, steps=500),
        ...           Segment(sample_rate=0.02, noise_multiplier=2.0, steps=500)]
        >>> round(epsilon_of_segments(phases, delta=1e-5, method="rdp"), 3)
        1.895
    """
    merged = merge_segments(segments)
    delta = _validate.open_interval(low=0.0, high=1.0, delta=delta)
    method = _method(method)
    if not merged:
        return 0.0
    if method == "best":
        return _best(lambda m: _epsilon(merged, delta, m), "ε")
    return _epsilon(merged, delta, method)


@result_cache(maxsize=512)  # a pure function of its inputs; phased curves and reports repeat it
def _epsilon(merged: tuple[Segment, ...], delta: float, method: str) -> float:
    from dpplan.accounting import get_accountant

    backend = get_accountant(method)
    if len(merged) == 1:  # one mechanism: the backend's fast path, as dpplan.epsilon(plan)
        (only,) = merged
        return backend.compute(
            sample_rate=only.sample_rate,
            noise_multiplier=only.noise_multiplier,
            delta=delta,
            steps=(only.steps,),
        ).upper[-1]
    with library_failure(
        lambda exc: (
            f"{method} accountant failed to compose {len(merged)} mechanisms "
            f"{[s.mechanism for s in merged]}: {exc!r}. Try another method."
        )
    ):
        if method == "rdp":
            from dp_accounting.rdp import rdp_privacy_accountant

            return float(
                rdp_privacy_accountant.compute_epsilon(
                    backend.orders, _rdp_vector(merged, backend.orders), delta
                )[0]
            )
        if method == "pld":
            return float(_pld(merged, backend).get_epsilon_for_delta(delta))
        return float(
            _prv_accountant(merged, backend, delta * backend.delta_error_fraction).compute_epsilon(
                delta, [s.steps for s in merged]
            )[2]
        )


def delta_of_segments(segments: Iterable[Segment], *, epsilon: float, method: str) -> float:
    """Return the δ upper bound at ``epsilon`` of all ``segments`` composed.

    Args:
        segments: the segments, in any order.
        epsilon: ε >= 0; ``math.inf`` gives δ = 0.
        method: ``"rdp"``, ``"prv"``, ``"pld"`` or ``"best"``.

    Returns:
        δ in [0, 1].

    Raises:
        PlanError: for an invalid segment, ε or method.
        AccountingError: if the library fails (for ``"best"``: if every method fails).

    Example:
        >>> steps = [Segment(sample_rate=0.01, noise_multiplier=1.0, steps=500)]
        >>> delta_of_segments(steps, epsilon=2.0, method="pld") < 1e-5
        True
    """
    merged = merge_segments(segments)
    method = _method(method)
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not (epsilon >= 0):
        raise PlanError("epsilon", epsilon, "a number >= 0 (math.inf allowed)")
    if not merged or epsilon == math.inf:
        return 0.0
    if method == "best":
        return _best(lambda m: _delta(merged, float(epsilon), m), "δ")
    return _delta(merged, float(epsilon), method)


def _delta(merged: tuple[Segment, ...], epsilon: float, method: str) -> float:
    from dpplan.accounting import get_accountant

    backend = get_accountant(method)
    with library_failure(
        lambda exc: (
            f"{method} accountant failed to bound δ at ε={epsilon:g} for "
            f"{[s.mechanism for s in merged]}: {exc!r}. Try another method."
        )
    ):
        if method == "rdp":
            from dp_accounting.rdp import rdp_privacy_accountant

            value = rdp_privacy_accountant.compute_delta(
                backend.orders, _rdp_vector(merged, backend.orders), epsilon
            )[0]
        elif method == "pld":
            value = _pld(merged, backend).get_delta_for_epsilon(epsilon)
        else:
            value = _prv_accountant(merged, backend, PRV_GET_DELTA_ERROR).compute_delta(
                epsilon, [s.steps for s in merged]
            )[2]
    return min(1.0, max(0.0, float(value)))


def _rdp_vector(merged: tuple[Segment, ...], orders: tuple[float, ...]):
    """Σ count × per-step RDP (dp-accounting's per-step vectors, cached by the RDP backend)."""
    import numpy as np

    from dpplan.accounting.rdp import rdp_per_step

    total = np.zeros(len(orders))
    for segment in merged:
        total = total + rdp_per_step(segment.sample_rate, segment.noise_multiplier, orders)[0] * (
            segment.steps
        )
    return total


def _pld(merged: tuple[Segment, ...], backend):
    """The PLD of every segment composed, as dp-accounting's ``PLDAccountant`` composes a
    ``ComposedDpEvent`` of one ``SelfComposedDpEvent`` per segment (each one-step PLD
    self-composed onto the identity), on one (pessimistic) grid; the one-step PLDs are the PLD
    backend's cached ones (0.1-0.3 s each to build), so a phased curve builds each once."""
    import dp_accounting

    from dpplan.accounting.pld import pld_per_step

    total = sum(s.steps for s in merged)
    interval = max(
        backend.grid_interval(
            sample_rate=s.sample_rate, noise_multiplier=s.noise_multiplier, steps=total
        )
        for s in merged
    )
    pld = dp_accounting.pld.privacy_loss_distribution.identity(
        value_discretization_interval=interval
    )
    for s in merged:
        pld = pld.compose(
            pld_per_step(s.sample_rate, s.noise_multiplier, interval).self_compose(s.steps)
        )
    return pld


def _prv_accountant(merged: tuple[Segment, ...], backend, delta_error: float):
    """prv-accountant's heterogeneous PRVAccountant, one PRV per segment."""
    import prv_accountant
    from prv_accountant.privacy_random_variables import PoissonSubsampledGaussianMechanism

    return prv_accountant.PRVAccountant(
        prvs=[
            PoissonSubsampledGaussianMechanism(
                sampling_probability=s.sample_rate, noise_multiplier=s.noise_multiplier
            )
            for s in merged
        ],
        eps_error=backend.eps_error,
        delta_error=delta_error,
        max_self_compositions=[s.steps for s in merged],
    )
