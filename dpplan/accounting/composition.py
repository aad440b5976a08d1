"""ε of several runs together, every method's ε per epoch, and the privacy profile.

* :func:`headline_of` is the one headline rule: the smallest upper bound wins, ties go to
  the method listed first in :data:`METHODS`. The minimum of valid upper bounds is a valid
  upper bound.
* :func:`epoch_epsilons` gives every method's ε after each epoch of a plan: what a trainer
  records per epoch, so a run shows one ε (the smallest, with its method) everywhere.
* :func:`compose_runs` gives ε of training several runs on the same data (hyper-parameter
  tuning, a sweep): their DP-SGD steps composed. :func:`repeat_and_select_epsilon` gives
  Papernot & Steinke's bound for a Poisson-distributed number of runs, for comparison.
* :func:`membership_tpr_bounds` bounds a membership-inference attack's true-positive rate
  from the whole privacy profile δ(ε) of the mechanism (from its PLD), which is much
  tighter at low false-positive rates than any single (ε, δ) pair.

Every ε and δ here is an upper bound.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence

from dpplan import _validate
from dpplan.accounting.base import METHODS, result_cache
from dpplan.accounting.segments import Segment, epsilon_of_segments
from dpplan.errors import AccountingError, PlanError
from dpplan.phased import PhasedPlan
from dpplan.plan import TrainingPlan

__all__ = [
    "ComposedEpsilon",
    "MembershipBound",
    "compose_runs",
    "epoch_epsilons",
    "headline_of",
    "membership_tpr_bounds",
    "no_amplification_epsilon",
    "repeat_and_select_epsilon",
]

#: Most points of the ε grid over which the privacy profile is minimised.
_PROFILE_POINTS = 600


def headline_of(epsilons: Mapping[str, float]) -> tuple[str, float]:
    """Return ``(method, ε)`` of the smallest upper bound (ties: :data:`METHODS` order).

    Args:
        epsilons: method -> ε upper bound, for the methods that answered (at least one).

    Returns:
        The method and its ε.

    Raises:
        PlanError: if ``epsilons`` is empty or names an unknown method.

    Example:
        >>> headline_of({"rdp": 1.2, "prv": 1.1, "pld": 1.1})
        ('prv', 1.1)
    """
    if not epsilons:
        raise PlanError("epsilons", dict(epsilons), "at least one method's ε")
    for method in epsilons:
        _validate.choice(options=METHODS, method=method)
    method = min(epsilons, key=lambda m: (epsilons[m], METHODS.index(m)))
    return method, float(epsilons[method])


def epoch_epsilons(plan: TrainingPlan) -> tuple[dict[str, float], ...]:
    """Return every method's ε after each epoch of ``plan``: one dict per epoch.

    A method whose library fails for the plan is left out of every dict. Each value equals
    the point of ``dpplan.epsilon_curve(plan, method=m)`` for that epoch.

    Raises:
        PlanError: if ``plan`` is not a TrainingPlan.
        AccountingError: if every method failed.

    Example:
        >>> plan = TrainingPlan(dataset_size=60000, batch_size=256, noise_multiplier=1.1,
        ...                     epochs=2, delta=1e-5)
        >>> per_epoch = epoch_epsilons(plan)
        >>> len(per_epoch), sorted(per_epoch[-1])
        (2, ['pld', 'prv', 'rdp'])
    """
    from dpplan.accounting import compare

    comparison = compare(plan)
    return tuple(
        {curve.method: curve.epsilons[index] for curve in comparison.curves}
        for index in range(plan.epochs)
    )


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ComposedEpsilon:
    """ε of several runs composed.

    Attributes:
        epsilon: the smallest upper bound of the methods that answered.
        method: its method.
        runs: how many runs were composed (runs with zero epochs count, adding nothing).
        same_mechanism: whether every run has the same sample rate and noise multiplier, so
            the runs together are one longer run of that mechanism.
        total_steps: noisy steps of all runs together.
    """

    epsilon: float
    method: str
    runs: int
    same_mechanism: bool
    total_steps: int


def _run_mechanisms(plan, epochs: int) -> tuple[tuple[float, float, int], ...]:
    """``(sample_rate, noise_multiplier, steps)`` of the first ``epochs`` epochs of a run of
    ``plan``: one mechanism for a TrainingPlan, its phases' for a PhasedPlan (epochs numbered
    on across phases, :meth:`~dpplan.PhasedPlan.epoch_ends`)."""
    if hasattr(plan, "phases"):
        return plan.mechanisms(plan.steps_after(epochs))
    steps = plan.steps_after(epochs)
    return ((plan.sample_rate, plan.noise_multiplier, steps),) if steps else ()


def compose_runs(runs: Sequence[tuple[object, int]], *, delta: float) -> ComposedEpsilon:
    """Return ε at ``delta`` of training every run in ``runs`` on the same data.

    Composing every run covers releasing all of them, hence any selection among them
    (choosing hyper-parameters by their validation accuracy). A run of a
    :class:`~dpplan.PhasedPlan` contributes each of its phases' steps. When every run shares one
    mechanism (sample rate and noise multiplier) they are one run of the summed steps and
    all three methods answer; otherwise the steps of each distinct mechanism are composed by
    RDP and PLD (:func:`~dpplan.accounting.segments.epsilon_of_segments`, dp-accounting's
    composition). The smallest upper bound is the headline.

    Args:
        runs: (plan, completed epochs) of each run, the plan a TrainingPlan or a PhasedPlan
            (whose epochs, possibly partial, are numbered on across phases); a run's
            unfinished epoch releases nothing and is not counted.
        delta: δ in (0, 1).

    Returns:
        A :class:`ComposedEpsilon`.

    Raises:
        PlanError: for an empty ``runs``, a run that is not (TrainingPlan, epochs in
            [0, plan.epochs]) or (PhasedPlan, epochs in [0, its epochs]), or ``delta``
            outside (0, 1).
        AccountingError: if every method failed.

    Example:
        >>> plan = TrainingPlan(dataset_size=60000, batch_size=256, noise_multiplier=1.1,
        ...                     epochs=2, delta=1e-5)
        >>> both = compose_runs([(plan, 2), (plan, 2)], delta=1e-5)
        >>> both.same_mechanism, both.total_steps
        (True, 940)
    """
    delta = _validate.open_interval(low=0.0, high=1.0, delta=delta)
    if isinstance(runs, (str, bytes)) or not runs:
        raise PlanError("runs", runs, "a non-empty list of (plan, epochs) pairs")
    mechanisms = []
    for plan, epochs in runs:
        if isinstance(plan, PhasedPlan):
            _validate.integer(minimum=0, maximum=len(plan.epoch_ends()), epochs=epochs)
        elif isinstance(plan, TrainingPlan):
            _validate.integer(minimum=0, maximum=plan.epochs, epochs=epochs)
        else:
            raise PlanError("runs", plan, "(TrainingPlan or PhasedPlan, epochs) pairs")
        mechanisms.extend(_run_mechanisms(plan, epochs))
    total_steps = sum(steps for _, _, steps in mechanisms)
    if not mechanisms:
        return ComposedEpsilon(
            epsilon=0.0, method=METHODS[0], runs=len(runs), same_mechanism=True, total_steps=0
        )
    same = len({(rate, sigma) for rate, sigma, _ in mechanisms}) == 1
    segments = [Segment(sample_rate=q, noise_multiplier=s, steps=n) for q, s, n in mechanisms]
    found: dict[str, float] = {}
    # Several mechanisms: prv-accountant's heterogeneous composition costs more than RDP and
    # PLD together (2.3 s against 0.9 s for three mechanisms), and PLD's bound was smaller.
    for method in METHODS if same else ("rdp", "pld"):
        try:
            found[method] = epsilon_of_segments(segments, delta=delta, method=method)
        except AccountingError:
            continue
    if not found:
        raise AccountingError(
            f"every method failed to compose {len(runs)} runs ({total_steps:,} noisy steps)"
        )
    method, epsilon = headline_of(found)
    return ComposedEpsilon(
        epsilon=epsilon, method=method, runs=len(runs), same_mechanism=same, total_steps=total_steps
    )


def no_amplification_epsilon(plan: TrainingPlan | PhasedPlan) -> float:
    """Return ε of ``plan``'s epochs if each example is used once per epoch, in any order.

    Without amplification by sampling or shuffling, each epoch is one Gaussian mechanism
    with noise multiplier σ for any one example (sensitivity C under add-or-remove), and E
    epochs compose to one with noise multiplier σ/√E (Dong, Roth & Su 2019); its exact ε
    (Balle & Wang 2018, ``dp_accounting.get_epsilon_gaussian``). This is the second number
    of TF Privacy's privacy statement. For a :class:`~dpplan.PhasedPlan` every started epoch
    of phase i counts with its σ_i: they compose to one Gaussian with 1/σ² = Σ_i e_i/σ_i².

    Example:
        >>> plan = TrainingPlan(dataset_size=60000, batch_size=256, noise_multiplier=1.1,
        ...                     epochs=2, delta=1e-5)
        >>> no_amplification_epsilon(plan) > dpplan.epsilon(plan)
        True
    """
    import dp_accounting

    if isinstance(plan, TrainingPlan):
        sigma = plan.noise_multiplier / math.sqrt(plan.epochs)
    else:
        precision = sum(
            -(-steps // phase.steps_per_epoch) / phase.noise_multiplier**2
            for phase, steps in zip(plan.phases, plan.steps_per_phase, strict=True)
        )
        sigma = 1 / math.sqrt(precision)
    return float(dp_accounting.get_epsilon_gaussian(sigma, plan.delta))


def repeat_and_select_epsilon(plan: TrainingPlan, *, mean_runs: float) -> float:
    """Return ε of running ``plan`` a Poisson(``mean_runs``) number of times, releasing the best.

    Papernot & Steinke 2022, Thm. 6, through dp-accounting's ``RepeatAndSelectDpEvent``
    (shape ∞) and its RDP accountant. It holds only when the number of runs is random; for
    a fixed number of runs use :func:`compose_runs`.

    Raises:
        AccountingError: if dp-accounting fails.

    Example:
        >>> plan = TrainingPlan(dataset_size=60000, batch_size=256, noise_multiplier=1.1,
        ...                     epochs=1, delta=1e-5)
        >>> repeat_and_select_epsilon(plan, mean_runs=4) > dpplan.epsilon(plan, method="rdp")
        True
    """
    import dp_accounting

    from dpplan.accounting import get_accountant
    from dpplan.accounting.events import dpsgd_event

    mean_runs = _validate.finite_positive(mean_runs=mean_runs)
    accountant = dp_accounting.rdp.RdpAccountant(orders=list(get_accountant("rdp").orders))
    event = dp_accounting.dp_event.RepeatAndSelectDpEvent(
        event=dpsgd_event(plan), mean=float(mean_runs), shape=math.inf
    )
    try:
        with quiet_absl():
            return float(accountant.compose(event).get_epsilon(plan.delta))
    except (ValueError, ArithmeticError) as exc:
        raise AccountingError(f"repeat-and-select failed for plan {plan.to_dict()}: {exc}") from exc


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class MembershipBound:
    """Upper bounds on a membership-inference attack's TPR at given FPRs.

    Attributes:
        false_positive_rates: the FPRs, ascending.
        profile: TPR bound from the whole privacy profile δ(ε) at each FPR.
        single: TPR bound from the one pair (``epsilon``, plan δ) at each FPR.
        epsilon: the ε of the single pair (the plan's headline ε).
        method: where δ(ε) came from: ``"pld"`` (else ``"rdp"``, if PLD failed).
    """

    false_positive_rates: tuple[float, ...]
    profile: tuple[float, ...]
    single: tuple[float, ...]
    epsilon: float
    method: str


def _pair_bound(epsilon, delta, fpr):
    """TPR bound of one (ε, δ) pair (Kairouz, Oh & Viswanath 2015); numpy-broadcast."""
    import numpy as np

    grow = np.exp(np.minimum(epsilon, 700.0))
    return np.clip(np.minimum(grow * fpr + delta, 1.0 - (1.0 - delta - fpr) / grow), 0.0, 1.0)


def membership_tpr_bounds(
    plan: TrainingPlan, false_positive_rates: Sequence[float], *, epsilon: float
) -> MembershipBound:
    """Bound the TPR of any membership-inference attack on ``plan`` at each FPR.

    An (ε, δ(ε))-DP mechanism for every ε limits every test of "example in" against
    "example out" (either way round) to ``TPR ≤ min(e^ε·FPR + δ(ε), 1 − e^−ε·(1 − δ(ε) −
    FPR))``, so the bound is the minimum over ε of the whole privacy profile (Kairouz, Oh &
    Viswanath 2015; Dong, Roth & Su 2019, Prop. 2.12). δ(ε) is the PLD's pessimistic
    (upper-bound) profile of the plan's composed steps (RDP's conversion if PLD fails), so
    the result is an upper bound; the minimum is over a grid of ε, which only loosens it.

    Args:
        plan: the plan (all its steps).
        false_positive_rates: FPRs in [0, 1].
        epsilon: ε of the single (ε, plan.delta) pair to compare with.

    Returns:
        A :class:`MembershipBound`.

    Raises:
        PlanError: for an FPR outside [0, 1].
        AccountingError: if both PLD and RDP fail.

    Example:
        >>> plan = TrainingPlan(dataset_size=60000, batch_size=256, noise_multiplier=1.1,
        ...                     epochs=2, delta=1e-5)
        >>> bound = membership_tpr_bounds(plan, [1e-3], epsilon=dpplan.epsilon(plan))
        >>> bound.profile[0] < bound.single[0]
        True
    """
    import numpy as np

    rates = tuple(
        _validate.closed_interval(low=0.0, high=1.0, false_positive_rate=f)
        for f in false_positive_rates
    )
    grid, deltas, method = _profile(plan)
    fpr = np.asarray(rates, dtype=float)[:, None]
    profile = _pair_bound(grid[None, :], deltas[None, :], fpr).min(axis=1)
    single = _pair_bound(epsilon, plan.delta, fpr[:, 0])
    return MembershipBound(
        false_positive_rates=rates,
        profile=tuple(float(max(v, f)) for v, f in zip(profile, rates)),
        single=tuple(float(v) for v in single),
        epsilon=float(epsilon),
        method=method,
    )


@result_cache(maxsize=16)
def _profile(plan: TrainingPlan):
    """Return (ε grid, δ(ε) upper bounds, method) for all of ``plan``'s steps."""
    import dp_accounting
    import numpy as np

    from dpplan.accounting import get_accountant
    from dpplan.accounting.events import dpsgd_event

    try:
        backend = get_accountant("pld")
        interval = backend.grid_interval(
            sample_rate=plan.sample_rate,
            noise_multiplier=plan.noise_multiplier,
            steps=plan.total_steps,
        )
        # The PLD backend's cached single-step PLD (the expensive part).
        from dpplan.accounting.pld import pld_per_step

        pld = pld_per_step(plan.sample_rate, plan.noise_multiplier, interval).self_compose(
            plan.total_steps
        )
        high = max(1.0, float(pld.get_epsilon_for_delta(1e-12)))
        grid = np.linspace(0.0, high, _PROFILE_POINTS)
        return grid, np.asarray(pld.get_delta_for_epsilon(grid), dtype=float), "pld"
    except (AccountingError, ValueError, ArithmeticError, MemoryError):
        pass
    try:
        accountant = dp_accounting.rdp.RdpAccountant(orders=list(get_accountant("rdp").orders))
        with quiet_absl():
            accountant.compose(dpsgd_event(plan))
            high = max(1.0, float(accountant.get_epsilon(1e-12)))
            grid = np.linspace(0.0, high, _PROFILE_POINTS // 4)
            deltas = np.array([accountant.get_delta(e) for e in grid])
        return grid, deltas, "rdp"
    except (ValueError, ArithmeticError) as exc:
        raise AccountingError(f"no privacy profile for plan {plan.to_dict()}: {exc}") from exc


class quiet_absl:
    """Drop dp-accounting's per-order "Excluding this order" log lines while composing
    (excluded orders cannot lower ε, so the bound stays valid)."""

    def __enter__(self) -> None:
        self.filter = logging.Filter()
        self.filter.filter = lambda record: "Excluding this order" not in record.getMessage()
        logging.getLogger("absl").addFilter(self.filter)

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("absl").removeFilter(self.filter)
