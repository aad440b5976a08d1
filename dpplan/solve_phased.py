"""Solvers for phased plans: one noise factor for every phase, or the last phase's epochs.

``dpplan.solve_noise_multiplier`` and ``solve_epochs`` hand a
:class:`~dpplan.phased.PhasedPlan` here. Both search with dp-accounting's
``calibrate_dp_mechanism`` driven by dpplan's own dp-accounting accountant (so the phases
compose as in ``dpplan.epsilon``), then recompute ε for the answer and never return a plan
over the target.
"""

from __future__ import annotations

import dp_accounting

from dpplan import _validate
from dpplan.accounting.base import METHODS
from dpplan.accounting.phased import phased_epsilon
from dpplan.accounting.privacy_accountant import dp_accounting_accountant
from dpplan.errors import AccountingError, InfeasibleTargetError
from dpplan.phased import PhasedPlan
from dpplan.plan import MAX_EPOCHS, MAX_TOTAL_STEPS, NOISE_MULTIPLIER_MAX, NOISE_MULTIPLIER_MIN

__all__ = ["solve_phased_epochs", "solve_phased_noise"]

#: Relative tolerance of the noise factor.
FACTOR_RELATIVE_TOL = 1e-3


def _event(plan: PhasedPlan) -> dp_accounting.DpEvent:
    return dp_accounting.ComposedDpEvent(
        [
            dp_accounting.SelfComposedDpEvent(
                dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), n
            )
            for q, sigma, n in plan.mechanisms()
        ]
    )


def _checked(plan: PhasedPlan, method: str, target_epsilon: float) -> PhasedPlan:
    achieved = phased_epsilon(plan, method)
    if not (achieved <= target_epsilon):
        raise AccountingError(
            f"phased solver postcondition failed: {method} ε={achieved!r} > target_epsilon="
            f"{target_epsilon!r} for {plan.to_dict()}. Please report this."
        )
    return plan


def _scaled(plan: PhasedPlan, factor: float) -> PhasedPlan:
    return plan.replace(
        phases=[p.replace(noise_multiplier=p.noise_multiplier * factor) for p in plan.phases]
    )


def _fits(plan: PhasedPlan, method: str, target: float) -> bool:
    try:
        return phased_epsilon(plan, method) <= target
    except AccountingError:
        return False  # certifies nothing


def _solve_noise(plan: PhasedPlan, *, target_epsilon: float, method: str) -> PhasedPlan:
    """Scale every phase's noise multiplier by the smallest factor that meets the target.

    The schedule's shape (the ratios between the phases' σ) is kept. The factor is within
    0.1% of the smallest that ``method`` certifies, and every σ stays in [0.01, 1000].

    Raises:
        PlanError: for an invalid target or method.
        InfeasibleTargetError: if even the largest allowed factor exceeds the target.
        AccountingError: if the library fails, or (never expected) the answer overshoots.
    """
    method = _validate.choice(options=METHODS, method=method)
    sigmas = [p.noise_multiplier for p in plan.phases]
    low_limit = NOISE_MULTIPLIER_MIN / min(sigmas)
    high_limit = NOISE_MULTIPLIER_MAX / max(sigmas)
    high = min(1.0, high_limit)
    while not _fits(_scaled(plan, high), method, target_epsilon):
        if high >= high_limit:
            raise InfeasibleTargetError(
                f"no common noise factor <= {high_limit:g} (largest σ {NOISE_MULTIPLIER_MAX:g}) "
                f"reaches ε <= {target_epsilon:g} at delta={plan.delta:g} over "
                f"{plan.total_steps:,} steps in {len(plan.phases)} phases ({method}). Raise "
                "target_epsilon or shorten the phases."
            )
        high = min(high * 2, high_limit)
    low = high
    while True:
        if low <= low_limit:
            return _checked(_scaled(plan, low_limit), method, target_epsilon)
        low = max(low / 2, low_limit)
        if not _fits(_scaled(plan, low), method, target_epsilon):
            break
        high = low
    factor = dp_accounting.calibrate_dp_mechanism(
        make_fresh_accountant=lambda: dp_accounting_accountant(method),
        make_event_from_param=lambda value: _event(_scaled(plan, value)),
        target_epsilon=target_epsilon,
        target_delta=plan.delta,
        bracket_interval=dp_accounting.ExplicitBracketInterval(low, high),
        tol=low * FACTOR_RELATIVE_TOL / 2,
    )
    return _checked(_scaled(plan, factor), method, target_epsilon)


def _solve_epochs(plan: PhasedPlan, *, target_epsilon: float, method: str) -> PhasedPlan:
    """Return ``plan`` with the largest number of epochs of its last phase that fits.

    The last phase then runs whole epochs (any ``phase_steps`` entry for it is dropped).
    One more epoch of the last phase exceeds the target (or the step or epoch limit).

    Raises:
        PlanError: for an invalid target or method.
        InfeasibleTargetError: if even one epoch of the last phase exceeds the target.
        AccountingError: if the library fails, or (never expected) the answer overshoots.
    """
    method = _validate.choice(options=METHODS, method=method)
    last = plan.phases[-1]
    steps = list(plan.phase_steps) if plan.phase_steps else [None] * len(plan.phases)
    steps[-1] = None
    before = sum(plan.steps_per_phase[:-1])
    high = min(MAX_EPOCHS, (MAX_TOTAL_STEPS - before) // last.steps_per_epoch)

    def with_epochs(epochs: float) -> PhasedPlan:
        return plan.replace(
            phases=[*plan.phases[:-1], last.replace(epochs=round(epochs))], phase_steps=steps
        )

    if high < 1 or not _fits(with_epochs(1), method, target_epsilon):
        raise InfeasibleTargetError(
            f"one epoch of the last phase already exceeds ε={target_epsilon:g} at "
            f"delta={plan.delta:g} after the earlier phases ({method}). Raise target_epsilon "
            "or noise_multiplier, or shorten the earlier phases."
        )
    low, upper = 1, 1
    while upper < high:
        upper = min(high, upper * 2)
        if not _fits(with_epochs(upper), method, target_epsilon):
            break
        low = upper
    else:
        return _checked(with_epochs(low), method, target_epsilon)
    while upper - low > 1:  # bisection: low fits, upper does not
        middle = (low + upper) // 2
        if _fits(with_epochs(middle), method, target_epsilon):
            low = middle
        else:
            upper = middle
    return _checked(with_epochs(low), method, target_epsilon)


#: The method name that solves with every method and keeps the most favourable answer.
BEST = "best"


def _best(solver, plan: PhasedPlan, target_epsilon: float, key, better) -> PhasedPlan:
    """Solve with every method; keep the answer ``key`` ranks first (each certified by its own).

    RDP (cheap) answers first; a later method is solved in full only if it certifies the next
    better value than the best so far (``better(answer)``), which costs one query.
    """
    best, refusals = None, []
    for method in ("rdp", "pld", "prv"):
        if best is not None:
            candidate = better(best)
            if candidate is None or not _fits(candidate, method, target_epsilon):
                continue
        try:
            answer = solver(plan, target_epsilon=target_epsilon, method=method)
        except (InfeasibleTargetError, AccountingError) as error:
            refusals.append(error)
            continue
        if best is None or key(answer) < key(best):
            best = answer
    if best is None:
        raise refusals[0]
    return best


def _less_noise(plan: PhasedPlan) -> PhasedPlan | None:
    factor = 1 - 2 * FACTOR_RELATIVE_TOL
    if min(p.noise_multiplier for p in plan.phases) * factor < NOISE_MULTIPLIER_MIN:
        return None
    return _scaled(plan, factor)


def _one_more_epoch(plan: PhasedPlan) -> PhasedPlan | None:
    last = plan.phases[-1]
    if last.epochs + 1 > MAX_EPOCHS or (plan.total_steps + last.steps_per_epoch) > MAX_TOTAL_STEPS:
        return None
    return plan.replace(phases=[*plan.phases[:-1], last.replace(epochs=last.epochs + 1)])


def solve_phased_noise(plan: PhasedPlan, *, target_epsilon: float, method: str) -> PhasedPlan:
    """Scale every phase's noise multiplier by the smallest factor that meets the target.

    ``method="best"`` solves with every method and keeps the smallest factor (its ε is
    certified by the method that found it); otherwise see the one-method solve below.

    Raises:
        PlanError: for an invalid target or method.
        InfeasibleTargetError: if even the largest allowed factor exceeds the target.
        AccountingError: if the library fails, or (never expected) the answer overshoots.
    """
    if method == BEST:
        return _best(
            _solve_noise, plan, target_epsilon, lambda p: p.phases[0].noise_multiplier, _less_noise
        )
    return _solve_noise(plan, target_epsilon=target_epsilon, method=method)


def solve_phased_epochs(plan: PhasedPlan, *, target_epsilon: float, method: str) -> PhasedPlan:
    """Return ``plan`` with the largest number of epochs of its last phase that fits.

    ``method="best"`` solves with every method and keeps the most epochs.

    Raises:
        PlanError: for an invalid target or method.
        InfeasibleTargetError: if even one epoch of the last phase exceeds the target.
        AccountingError: if the library fails, or (never expected) the answer overshoots.
    """
    if method == BEST:
        return _best(
            _solve_epochs, plan, target_epsilon, lambda p: -p.phases[-1].epochs, _one_more_epoch
        )
    return _solve_epochs(plan, target_epsilon=target_epsilon, method=method)
