"""Solvers: the noise multiplier, epochs or batch size that meet a target ε.

Each solver returns a **new plan** (``plan.replace(...)``) and guarantees, by recomputing ε
for the answer with the same method, that it does not exceed the target. The search itself
is dp-accounting's ``calibrate_dp_mechanism`` (Brent's method with a final one-sided fix-up),
driven through the backend's ``fresh()`` accountant, so the ε seen by the search and the ε
reported for the answer are one computation.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import dp_accounting

from dpplan import _validate
from dpplan.accounting import _check_plan, get_accountant
from dpplan.accounting.events import dpsgd_event
from dpplan.errors import AccountingError, InfeasibleTargetError
from dpplan.plan import MAX_EPOCHS, MAX_TOTAL_STEPS, NOISE_MULTIPLIER_MAX, TrainingPlan

__all__ = [
    "NOISE_MULTIPLIER_SEARCH_MIN",
    "TARGET_EPSILON_MAX",
    "solve_batch_size",
    "solve_epochs",
    "solve_noise_multiplier",
]

#: Smallest noise multiplier the σ solver considers; below it DP-SGD's ε is rarely useful
#: and the PRV/PLD grids explode.
NOISE_MULTIPLIER_SEARCH_MIN = 0.1
#: Largest target ε accepted. Beyond it the guarantee says little.
TARGET_EPSILON_MAX = 100.0
#: Relative tolerance of the σ solver (the answer is within this of the smallest σ that fits).
NOISE_MULTIPLIER_RELATIVE_TOL = 1e-3


def _target(target_epsilon: object) -> float:
    return _validate.finite_positive(
        maximum=TARGET_EPSILON_MAX,
        hint="Give the ε you want to guarantee, e.g. 3.0.",
        target_epsilon=target_epsilon,
    )


def _checked(plan: TrainingPlan, method: str, target_epsilon: float) -> TrainingPlan:
    """Postcondition: recompute ε for the answer; never return a plan over budget."""
    achieved = get_accountant(method).epsilon(plan)
    if not (achieved <= target_epsilon):
        raise AccountingError(
            f"solver postcondition failed: {method} ε={achieved!r} > target_epsilon="
            f"{target_epsilon!r} for plan {plan.to_dict()}. Please report this."
        )
    return plan


def _calibrate(
    method: str,
    make_plan: Callable[[float], TrainingPlan],
    *,
    target_epsilon: float,
    delta: float,
    low: float,
    high: float,
    discrete: bool,
    tol: float | None = None,
) -> float:
    backend = get_accountant(method)
    try:
        return dp_accounting.calibrate_dp_mechanism(
            make_fresh_accountant=backend.fresh,
            make_event_from_param=lambda value: dpsgd_event(make_plan(value)),
            target_epsilon=target_epsilon,
            target_delta=delta,
            bracket_interval=dp_accounting.ExplicitBracketInterval(low, high),
            discrete=discrete,
            tol=tol,
        )
    except ValueError as exc:  # brentq found no sign change: the bracket was wrong
        raise AccountingError(f"{method} solver failed in [{low}, {high}]: {exc}") from exc


def _computable_bracket(status: Callable[[float], bool | None], *, bad: float, good: float,
                        tol: float) -> tuple[float | None, float]:
    """Narrow ``[bad, good]`` until its low end is computable and does not fit.

    ``status(x)`` is True (fits), False (computable, does not fit) or None (the backend
    cannot compute ε there, which happens only for large ε). ``good`` fits. Returns
    ``(low, high)`` with ``status(low) is False`` and ``status(high) is True``, or
    ``(None, high)`` when nothing computable and unfitting is left within ``tol``.
    """
    while good - bad > tol:
        if status(bad) is False:
            return bad, good
        middle = (bad + good) / 2
        found = status(middle)
        if found is True:
            good = middle
        elif found is False:
            return middle, good
        else:
            bad = middle
    return None, good


def solve_noise_multiplier(
    plan: TrainingPlan, *, target_epsilon: float, method: str = "prv"
) -> TrainingPlan:
    """Return ``plan`` with the smallest noise multiplier whose ε meets ``target_epsilon``.

    The answer is within 0.1% of the smallest σ that ``method`` accepts and never exceeds
    the target. The search covers σ in [0.1, 1000]; if even σ = 0.1 meets the target, σ = 0.1
    is returned.

    Args:
        plan: the plan; its noise_multiplier is ignored.
        target_epsilon: the ε to meet at ``plan.delta``, in (0, 100].
        method: ``"rdp"``, ``"prv"`` (default) or ``"pld"``.

    Returns:
        A new plan with the solved ``noise_multiplier``.

    Raises:
        PlanError: for an invalid plan, target or method.
        InfeasibleTargetError: if no σ <= 1000 meets the target.
        AccountingError: if the library fails, or (never expected) the answer overshoots.

    Example:
        >>> plan = TrainingPlan(dataset_size=60000, batch_size=256, noise_multiplier=1.0,
        ...                     epochs=10, delta=1e-5)
        >>> solved = solve_noise_multiplier(plan, target_epsilon=2.0, method="rdp")
        >>> round(solved.noise_multiplier, 2), epsilon(solved, method="rdp") <= 2.0
        (0.86, True)
    """
    _check_plan(plan)
    target_epsilon = _target(target_epsilon)
    backend = get_accountant(method)

    def fits(sigma: float) -> bool:
        # A σ whose ε the backend cannot compute (ε too large for its grid) does not fit.
        try:
            return backend.epsilon(plan.replace(noise_multiplier=sigma)) <= target_epsilon
        except AccountingError:
            return False

    if not fits(NOISE_MULTIPLIER_MAX):
        raise InfeasibleTargetError(
            f"no noise_multiplier <= {NOISE_MULTIPLIER_MAX:g} reaches ε <= {target_epsilon:g} "
            f"at delta={plan.delta:g} with sample_rate={plan.sample_rate:.4g} over "
            f"{plan.total_steps:,} steps ({method}). Raise target_epsilon, or lower epochs or "
            "batch_size, or raise delta."
        )
    # Bracket: start near σ = 1 (or RDP's answer, which is never below PRV's or PLD's by
    # more than the PRV error term) and walk by factors of 2.
    guess = 1.0
    if method != "rdp":
        guess = solve_noise_multiplier(plan, target_epsilon=target_epsilon,
                                       method="rdp").noise_multiplier
    high = min(guess, NOISE_MULTIPLIER_MAX)
    while not fits(high):
        high = min(high * 2, NOISE_MULTIPLIER_MAX)
    low = max(high / (1.25 if method != "rdp" else 2), NOISE_MULTIPLIER_SEARCH_MIN)
    while fits(low):
        if low == NOISE_MULTIPLIER_SEARCH_MIN:
            return _checked(plan.replace(noise_multiplier=low), method, target_epsilon)
        high, low = low, max(low / 2, NOISE_MULTIPLIER_SEARCH_MIN)
    def status(sigma: float) -> bool | None:
        try:
            return backend.epsilon(plan.replace(noise_multiplier=sigma)) <= target_epsilon
        except AccountingError:
            return None

    low, high = _computable_bracket(status, bad=low, good=high,
                                    tol=high * NOISE_MULTIPLIER_RELATIVE_TOL / 2)
    if low is None:  # nothing computable and unfitting is left: the fitting end is the answer
        return _checked(plan.replace(noise_multiplier=high), method, target_epsilon)
    sigma = _calibrate(
        method,
        lambda value: plan.replace(noise_multiplier=value),
        target_epsilon=target_epsilon,
        delta=plan.delta,
        low=low,
        high=high,
        discrete=False,
        tol=low * NOISE_MULTIPLIER_RELATIVE_TOL / 2,  # calibrate may add tol once more
    )
    return _checked(plan.replace(noise_multiplier=sigma), method, target_epsilon)


def _largest_fitting(
    plan: TrainingPlan,
    field: str,
    *,
    low: int,
    high: int,
    target_epsilon: float,
    method: str,
) -> TrainingPlan:
    """Largest integer ``field`` in [low, high] whose plan meets the target (ε increasing)."""
    backend = get_accountant(method)

    def candidate(value: float) -> TrainingPlan:
        return plan.replace(**{field: int(round(value))})

    def fits(value: int) -> bool:
        return backend.epsilon(candidate(value)) <= target_epsilon

    if not fits(low):
        return None
    # Find an upper end that does not fit by doubling from `low`, so the search stays where
    # one query is cheap. A value the backend cannot compute (AccountingError: grid too
    # large) is treated as not fitting: the answer may then be smaller than the true
    # maximum, never larger.
    upper = low
    while upper < high:
        upper = min(high, upper * 2)
        try:
            fitted = fits(upper)
        except AccountingError:
            fitted = False
        if not fitted:
            break
        low = upper
    else:
        return _checked(candidate(low), method, target_epsilon)
    # `upper` does not fit; make sure its ε is computable, so the search can evaluate it.
    while upper - low > 1:
        try:
            backend.epsilon(candidate(upper))
            break
        except AccountingError:
            middle = (low + upper) // 2
            if _fits_or_false(fits, middle):
                low = middle
            else:
                upper = middle
    if upper - low <= 1:
        value = low
    else:
        value = _calibrate(
            method,
            candidate,
            target_epsilon=target_epsilon,
            delta=plan.delta,
            low=low,
            high=upper,
            discrete=True,
        )
        value = int(value)
        while value > low and not fits(value):  # calibrate is one-sided; stay safe anyway
            value -= 1
    while value < high and _fits_or_false(fits, value + 1):  # maximality: next must not fit
        value += 1
    return _checked(candidate(value), method, target_epsilon)


def _fits_or_false(fits: Callable[[int], bool], value: int) -> bool:
    try:
        return fits(value)
    except AccountingError:
        return False


def solve_epochs(plan: TrainingPlan, *, target_epsilon: float, method: str = "prv") -> TrainingPlan:
    """Return ``plan`` with the largest number of epochs whose ε meets ``target_epsilon``.

    Adding one more epoch to the answer exceeds the target (or the epoch limit).

    Args:
        plan: the plan; its epochs are ignored.
        target_epsilon: the ε to meet at ``plan.delta``, in (0, 100].
        method: ``"rdp"``, ``"prv"`` (default) or ``"pld"``.

    Returns:
        A new plan with the solved ``epochs``.

    Raises:
        PlanError: for an invalid plan, target or method.
        InfeasibleTargetError: if even one epoch exceeds the target.
        AccountingError: if the library fails, or (never expected) the answer overshoots.

    Example:
        >>> plan = TrainingPlan(dataset_size=60000, batch_size=256, noise_multiplier=1.1,
        ...                     epochs=1, delta=1e-5)
        >>> solve_epochs(plan, target_epsilon=2.0, method="rdp").epochs
        36
    """
    _check_plan(plan)
    target_epsilon = _target(target_epsilon)
    get_accountant(method)
    high = min(MAX_EPOCHS, MAX_TOTAL_STEPS // plan.steps_per_epoch)
    solved = _largest_fitting(
        plan, "epochs", low=1, high=high, target_epsilon=target_epsilon, method=method
    )
    if solved is None:
        one = get_accountant(method).epsilon(plan.replace(epochs=1))
        raise InfeasibleTargetError(
            f"one epoch already costs ε={one:.4g} > target_epsilon={target_epsilon:g} at "
            f"delta={plan.delta:g} with noise_multiplier={plan.noise_multiplier:g} and "
            f"sample_rate={plan.sample_rate:.4g} ({method}). Raise noise_multiplier or "
            "target_epsilon, or lower batch_size."
        )
    return solved


def solve_batch_size(
    plan: TrainingPlan, *, target_epsilon: float, method: str = "prv"
) -> TrainingPlan:
    """Return ``plan`` with the largest expected batch size whose ε meets ``target_epsilon``.

    Epochs stay fixed, so a larger batch means a higher sample rate and fewer steps. The
    answer is locally maximal: one more record per batch exceeds the target. ε is not
    monotone in the batch size where ``ceil(dataset_size / batch_size)`` drops a step, so a
    larger batch past such a threshold can occasionally fit as well.

    Args:
        plan: the plan; its batch_size is ignored.
        target_epsilon: the ε to meet at ``plan.delta``, in (0, 100].
        method: ``"rdp"``, ``"prv"`` (default) or ``"pld"``.

    Returns:
        A new plan with the solved ``batch_size``.

    Raises:
        PlanError: for an invalid plan, target or method.
        InfeasibleTargetError: if even the smallest batch exceeds the target.
        AccountingError: if the library fails, or (never expected) the answer overshoots.

    Example:
        >>> plan = TrainingPlan(dataset_size=60000, batch_size=1, noise_multiplier=1.1,
        ...                     epochs=10, delta=1e-5)
        >>> solved = solve_batch_size(plan, target_epsilon=1.0, method="rdp")
        >>> epsilon(solved, method="rdp") <= 1.0 < epsilon(solved.replace(
        ...     batch_size=solved.batch_size + 1), method="rdp")
        True
    """
    _check_plan(plan)
    target_epsilon = _target(target_epsilon)
    get_accountant(method)
    # Smallest batch whose total step count stays within MAX_TOTAL_STEPS.
    max_steps_per_epoch = MAX_TOTAL_STEPS // plan.epochs
    low = max(1, math.ceil(plan.dataset_size / max_steps_per_epoch))
    while plan.epochs * math.ceil(plan.dataset_size / low) > MAX_TOTAL_STEPS:
        low += 1
    solved = _largest_fitting(
        plan, "batch_size", low=low, high=plan.dataset_size, target_epsilon=target_epsilon,
        method=method,
    )
    if solved is None:
        smallest = get_accountant(method).epsilon(plan.replace(batch_size=low))
        raise InfeasibleTargetError(
            f"even batch_size={low} costs ε={smallest:.4g} > target_epsilon="
            f"{target_epsilon:g} over {plan.epochs} epochs at delta={plan.delta:g} with "
            f"noise_multiplier={plan.noise_multiplier:g} ({method}). Raise noise_multiplier "
            "or target_epsilon, or lower epochs."
        )
    return solved
