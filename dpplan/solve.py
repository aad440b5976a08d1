"""Solvers: the noise multiplier, epochs or batch size that meet a target ε.

Each solver returns a **new plan** (``plan.replace(...)``) and guarantees, by recomputing ε
for the answer with the same method, that it does not exceed the target. By default
(``method="best"``) every method is solved and the most favourable plan kept, so the answer
follows the headline rule (the smallest upper bound wins); :func:`solve_plan` returns a
:class:`Solution` that also names the certifying method and what bounded the answer (the
target, a search cap, or the method's own limits). The search itself
is dp-accounting's ``calibrate_dp_mechanism`` (Brent's method with a final one-sided fix-up),
driven through the backend's ``fresh()`` accountant, so the ε seen by the search and the ε
reported for the answer are one computation.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import dp_accounting

from dpplan import _validate
from dpplan.accounting import METHODS, _check_plan, _is_phased, get_accountant
from dpplan.accounting.events import dpsgd_event
from dpplan.errors import AccountingError, InfeasibleTargetError
from dpplan.plan import MAX_EPOCHS, MAX_TOTAL_STEPS, NOISE_MULTIPLIER_MAX, TrainingPlan

__all__ = [
    "BEST",
    "BEST_ORDER",
    "FIELDS",
    "NOISE_MULTIPLIER_SEARCH_MIN",
    "TARGET_EPSILON_MAX",
    "Solution",
    "solve_batch_size",
    "solve_epochs",
    "solve_noise_multiplier",
    "solve_plan",
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


class _Probe:
    """Memoised "does ``value`` meet the target?" for one plan field and method.

    ``probe(value)`` is True (fits), False (ε computed and over the target) or None (the
    backend refused: it cannot bound ε there). A refusal is not an answer, so it is never
    read as "over budget because ε is large": the searches below treat it as unknown.
    """

    def __init__(self, backend, make_plan: Callable[[float], TrainingPlan], target: float):
        self.backend = backend
        self.make_plan = make_plan
        self.target = target
        self.results: dict[float, bool | None] = {}
        self.epsilons: dict[float, float] = {}
        self.refusals: dict[float, str] = {}

    def __call__(self, value: float) -> bool | None:
        if value not in self.results:
            try:
                found = self.backend.epsilon(self.make_plan(value))
            except AccountingError as exc:
                self.results[value] = None
                self.refusals[value] = str(exc)
            else:
                self.epsilons[value] = found
                self.results[value] = found <= self.target
        return self.results[value]

    def refusal_note(self, field: str) -> str:
        """A sentence naming where the backend refused, in the plan's own terms ('' if not)."""
        if not self.refusals:
            return ""
        values = sorted(self.refusals)
        reason = _refusal_reason(self.refusals[values[0]])
        shown = ", ".join(f"{v:g}" for v in values[:4]) + (", ..." if len(values) > 4 else "")
        return (
            f" {self.backend.name} could not compute ε at {field}={shown} ({reason}); "
            "method='rdp' or 'pld' can account for those values."
        )


def _refusal_reason(message: str) -> str:
    if "grid" in message and "would need" in message:
        return "its grid would be too large"
    if "floating-point" in message:
        return "delta is too small for its floating-point error budget"
    return "it cannot bound ε there"


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
    """dp-accounting's calibration on ``[low, high]``, where ``high`` fits and ``low`` does not.

    Where the backend refuses, its ε counts as +inf (a valid upper bound): the search treats
    the point as over budget, and the answer is still one the backend computed.
    """
    backend = get_accountant(method)
    try:
        return dp_accounting.calibrate_dp_mechanism(
            make_fresh_accountant=lambda: backend.fresh(refusal_as_infinity=True),
            make_event_from_param=lambda value: dpsgd_event(make_plan(value)),
            target_epsilon=target_epsilon,
            target_delta=delta,
            bracket_interval=dp_accounting.ExplicitBracketInterval(low, high),
            discrete=discrete,
            tol=tol,
        )
    except ValueError as exc:  # brentq found no sign change: the bracket was wrong
        raise AccountingError(f"{method} solver failed in [{low}, {high}]: {exc}") from exc


def _fitting_noise(probe: _Probe, guess: float) -> float | None:
    """Return a noise multiplier in [NOISE_MULTIPLIER_SEARCH_MIN, NOISE_MULTIPLIER_MAX] that
    the backend computes and that fits, or None.

    ε falls as σ grows, so it walks up from ``guess`` by factors of 2. PRV refuses both at
    small σ (ε, hence its grid, too large) and, for small δ, at large σ (round-off), so a
    refusal met above a computable σ that did not fit narrows down between the two; a refusal
    at the guess and everywhere above it means the computable σ lie below the guess.
    """
    sigma, over = guess, None
    while True:
        found = probe(sigma)
        if found:
            return sigma
        if found is None and over is not None:
            return _fitting_between(probe, over=over, refused=sigma)
        if found is False:
            over = sigma
        if sigma >= NOISE_MULTIPLIER_MAX:
            break
        sigma = min(sigma * 2, NOISE_MULTIPLIER_MAX)
    if probe(guess) is None:
        sigma = guess
        while sigma > NOISE_MULTIPLIER_SEARCH_MIN:
            sigma = max(sigma / 2, NOISE_MULTIPLIER_SEARCH_MIN)
            found = probe(sigma)
            if found:
                return sigma
            if found is False:
                return _fitting_between(probe, over=sigma, refused=guess)
    return None


def _fitting_between(probe: _Probe, *, over: float, refused: float) -> float | None:
    """Bisect (over, refused) for a σ that is computed and fits; None if there is none."""
    while refused - over > over * NOISE_MULTIPLIER_RELATIVE_TOL:
        middle = (over + refused) / 2
        found = probe(middle)
        if found:
            return middle
        if found is False:
            over = middle
        else:
            refused = middle
    return None


#: The PRV σ search aims this far (relative) below the target, so that prv-accountant's
#: long-double evaluation of the answer (which agrees with the float64 estimate to ~1e-7 in
#: ε) meets the target.
_PRV_ESTIMATE_MARGIN = 2e-6
#: Accepted estimates lie within this (relative) below the aimed-at ε, and within
#: ``_PRV_ACCEPT_ABSOLUTE`` in ε: σ is then within about 2e-4 of the smallest σ the estimate
#: certifies, and at large targets no larger than Opacus' (whose solver stops within 0.01).
_PRV_ACCEPT_BAND = 3e-4
_PRV_ACCEPT_ABSOLUTE = 1e-4
_PRV_MAX_ESTIMATES = 10


def _gaussian_guess(plan: TrainingPlan, target_epsilon: float) -> tuple[float, float] | None:
    """σ meeting ``target_epsilon`` in the central-limit (μ-GDP) approximation of DP-SGD, and
    d log ε / d log σ there: a starting point for the PRV search, never a bound.

    Bu, Dong, Long & Su 2020: T Poisson-subsampled Gaussian steps are approximately μ-GDP
    with μ = q·sqrt(T·(e^{1/σ²} - 1)); μ-GDP gives δ(ε) = Φ(-ε/μ + μ/2) - e^ε·Φ(-ε/μ - μ/2)
    (Dong, Roth & Su 2019).
    """
    from scipy import optimize, special

    delta, q, steps = plan.delta, plan.sample_rate, plan.total_steps

    def gdp_delta(epsilon: float, mu: float) -> float:
        return float(
            special.ndtr(-epsilon / mu + mu / 2)
            - math.exp(epsilon) * special.ndtr(-epsilon / mu - mu / 2)
        )

    def mu_for(epsilon: float) -> float:
        return optimize.brentq(lambda mu: gdp_delta(epsilon, mu) - delta, 1e-6, 200.0, xtol=1e-12)

    def sigma_for(mu: float) -> float:
        return 1 / math.sqrt(math.log1p((mu / q) ** 2 / steps))

    try:
        sigma = sigma_for(mu_for(target_epsilon))
        nearby = sigma_for(mu_for(target_epsilon * 1.01))
    except (ValueError, ArithmeticError):
        return None
    if not (sigma > 0 and nearby < sigma and math.isfinite(sigma)):
        return None
    return sigma, math.log(1.01) / math.log(nearby / sigma)


def _solve_prv_noise(plan: TrainingPlan, target_epsilon: float) -> TrainingPlan | None:
    """The PRV σ solve with one or two rigorous evaluations; None to use the general search.

    prv-accountant's long-double discretisation costs most of a PRV query, so the search runs
    on ``PRVAccountant.estimate_upper`` (the same computation in float64, on one domain sized
    for the smallest σ tried: ~1e-7 from the rigorous ε) with secant steps in (log σ, log ε)
    from the central-limit guess, aiming just below the target. Only the answer is evaluated
    rigorously; if it misses the target, σ is raised a little and evaluated again. Any
    refusal or non-convergence hands over to the general search, which handles refusals.
    """
    start = _gaussian_guess(plan, target_epsilon)
    if start is None:
        return None
    sigma, elasticity = start
    backend = get_accountant("prv")
    aim = target_epsilon * (1 - _PRV_ESTIMATE_MARGIN)
    band = min(_PRV_ACCEPT_BAND, _PRV_ACCEPT_ABSOLUTE / target_epsilon)

    def in_range(value: float) -> bool:
        return NOISE_MULTIPLIER_SEARCH_MIN <= value <= NOISE_MULTIPLIER_MAX

    sizing = sigma * 0.97
    previous: tuple[float, float] | None = None
    try:
        for _ in range(_PRV_MAX_ESTIMATES):
            if not in_range(sigma):
                return None
            if sigma < sizing:
                sizing = sigma * 0.97
            estimate = backend.estimate_upper(
                sample_rate=plan.sample_rate,
                noise_multiplier=sigma,
                delta=plan.delta,
                steps=plan.total_steps,
                domain_noise_multiplier=sizing,
            )
            if not (0 < estimate < math.inf):
                return None
            error = math.log(estimate / aim)
            if -band <= error <= 0:
                break
            if previous is not None and previous[1] != error:
                elasticity = (error - previous[1]) / (math.log(sigma) - previous[0])
            if not (elasticity < 0):
                return None
            previous = (math.log(sigma), error)
            # Aim at the middle of the accepted band.
            sigma = math.exp(math.log(sigma) - (error + band / 2) / elasticity)
        else:
            return None
        for _ in range(3):
            candidate = plan.replace(noise_multiplier=sigma)
            if backend.epsilon(candidate) <= target_epsilon:
                return candidate
            sigma *= 1 + band
    except AccountingError:
        return None
    return None


def _solve_noise(plan: TrainingPlan, target_epsilon: float, method: str) -> TrainingPlan:
    """The σ solve with one method (see :func:`solve_noise_multiplier`)."""
    backend = get_accountant(method)
    if method == "prv":
        fast = _solve_prv_noise(plan, target_epsilon)
        if fast is not None:
            return _checked(fast, method, target_epsilon)
    probe = _Probe(backend, lambda sigma: plan.replace(noise_multiplier=sigma), target_epsilon)
    # Start near RDP's answer (cheap; PRV and PLD usually certify a little less noise).
    guess = 1.0
    if method != "rdp":
        try:
            guess = _solve_noise(plan, target_epsilon, "rdp").noise_multiplier
        except InfeasibleTargetError:
            guess = NOISE_MULTIPLIER_MAX
    high = _fitting_noise(probe, guess)
    if high is None:
        raise InfeasibleTargetError(
            f"no noise_multiplier <= {NOISE_MULTIPLIER_MAX:g} reaches ε <= {target_epsilon:g} "
            f"at delta={plan.delta:g} with sample_rate={plan.sample_rate:.4g} over "
            f"{plan.total_steps:,} steps ({method}). Raise target_epsilon, or lower epochs or "
            "batch_size, or raise delta." + probe.refusal_note("noise_multiplier")
        )
    # Walk down until a σ does not fit (or the backend refuses it: no certificate there).
    factor = 2.0 if method == "rdp" else 1.25
    while True:
        if high <= NOISE_MULTIPLIER_SEARCH_MIN:
            return _checked(plan.replace(noise_multiplier=high), method, target_epsilon)
        low = max(high / factor, NOISE_MULTIPLIER_SEARCH_MIN)
        if not probe(low):
            break
        high = low
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


@dataclasses.dataclass(frozen=True)
class _NoFit:
    """Why no value fits: the smallest value ``method`` computes and its ε (None: none)."""

    value: int | None
    epsilon: float | None
    note: str


def _largest_fitting(
    plan: TrainingPlan,
    field: str,
    *,
    low: int,
    high: int,
    target_epsilon: float,
    method: str,
) -> TrainingPlan | _NoFit:
    """Largest integer ``field`` in [low, high] whose plan meets the target (ε increasing).

    Values the backend cannot compute (e.g. PRV's grid too large for many steps) certify
    nothing; they are never taken as the answer, and never read as "over budget" when
    deciding that no value fits.
    """
    backend = get_accountant(method)

    def candidate(value: float) -> TrainingPlan:
        return plan.replace(**{field: round(value)})

    probe = _Probe(backend, candidate, target_epsilon)
    found = probe(low)
    if found is None:
        # The smallest value is not computable (typically: too many steps for the grid).
        # Find the smallest computable one by doubling, then bisect back for a fitting one.
        refused, value = low, low
        while found is None and value < high:
            refused, value = value, min(high, value * 2)
            found = probe(value)
        if found is None:
            return _NoFit(None, None, probe.refusal_note(field))
        while not found and value - refused > 1:
            middle = (refused + value) // 2
            result = probe(middle)
            if result is None:
                refused = middle
            elif result:
                value, found = middle, True
            else:
                value = middle
        if not found:
            return _NoFit(value, probe.epsilons[value], probe.refusal_note(field))
        low = value
    elif not found:
        return _NoFit(low, probe.epsilons[low], "")
    # Find an upper end that does not fit by doubling from `low`, so the search stays where
    # one query is cheap. A refused value is not a fitting one: the answer may then be
    # smaller than the true maximum, never larger.
    upper = low
    while upper < high:
        upper = min(high, upper * 2)
        if not probe(upper):
            break
        low = upper
    else:
        return _checked(candidate(low), method, target_epsilon)
    if upper - low <= 1:
        value = low
    else:
        value = int(
            _calibrate(
                method,
                candidate,
                target_epsilon=target_epsilon,
                delta=plan.delta,
                low=low,
                high=upper,
                discrete=True,
            )
        )
        while value > low and not probe(value):  # calibrate is one-sided; stay safe anyway
            value -= 1
    while value < high and probe(value + 1):  # maximality: the next must not fit
        value += 1
    return _checked(candidate(value), method, target_epsilon)


def _no_fit(result: _NoFit, method: str) -> None:
    """Raise AccountingError when ``method`` could compute ε for no candidate at all."""
    if result.value is None:
        raise AccountingError(
            f"{method} cannot compute ε for any candidate value of this plan." + result.note
        )


def _solve_epochs(plan: TrainingPlan, target_epsilon: float, method: str) -> TrainingPlan:
    """The epochs solve with one method (see :func:`solve_epochs`)."""
    high = _epochs_cap(plan)[0]
    solved = _largest_fitting(
        plan, "epochs", low=1, high=high, target_epsilon=target_epsilon, method=method
    )
    if isinstance(solved, _NoFit):
        _no_fit(solved, method)
        first = (
            "one epoch already costs"
            if solved.value == 1
            else (f"even epochs={solved.value}, the fewest {method} can compute, costs")
        )
        raise InfeasibleTargetError(
            f"{first} ε={solved.epsilon:.4g} > target_epsilon={target_epsilon:g} at "
            f"delta={plan.delta:g} with noise_multiplier={plan.noise_multiplier:g} and "
            f"sample_rate={plan.sample_rate:.4g} ({method}). Raise noise_multiplier or "
            "target_epsilon, or lower batch_size." + solved.note
        )
    return solved


def _solve_batch(plan: TrainingPlan, target_epsilon: float, method: str) -> TrainingPlan:
    """The batch-size solve with one method (see :func:`solve_batch_size`)."""
    # Smallest batch whose total step count stays within MAX_TOTAL_STEPS.
    max_steps_per_epoch = MAX_TOTAL_STEPS // plan.epochs
    low = max(1, math.ceil(plan.dataset_size / max_steps_per_epoch))
    while plan.epochs * math.ceil(plan.dataset_size / low) > MAX_TOTAL_STEPS:
        low += 1
    solved = _largest_fitting(
        plan,
        "batch_size",
        low=low,
        high=plan.dataset_size,
        target_epsilon=target_epsilon,
        method=method,
    )
    if isinstance(solved, _NoFit):
        _no_fit(solved, method)
        raise InfeasibleTargetError(
            f"even batch_size={solved.value}"
            + (f", the smallest {method} can compute," if solved.note else "")
            + f" costs ε={solved.epsilon:.4g} > target_epsilon="
            f"{target_epsilon:g} over {plan.epochs} epochs at delta={plan.delta:g} with "
            f"noise_multiplier={plan.noise_multiplier:g} ({method}). Raise noise_multiplier "
            "or target_epsilon, or lower epochs." + solved.note
        )
    return solved


def _cap(plan: TrainingPlan, field: str) -> tuple[int, str]:
    """The largest epochs or batch size the solver considers, and the limit's name."""
    if field == "batch_size":
        return plan.dataset_size, f"dataset_size={plan.dataset_size:,}"
    return _epochs_cap(plan)


def _epochs_cap(plan: TrainingPlan) -> tuple[int, str]:
    """The most epochs the solver considers, and the limit's name."""
    by_steps = MAX_TOTAL_STEPS // plan.steps_per_epoch
    if by_steps < MAX_EPOCHS:
        return by_steps, (
            f"MAX_TOTAL_STEPS={MAX_TOTAL_STEPS:,} steps at {plan.steps_per_epoch:,} steps per epoch"
        )
    return MAX_EPOCHS, f"MAX_EPOCHS={MAX_EPOCHS:,}"


_SOLVE_ONE = {"noise_multiplier": _solve_noise, "epochs": _solve_epochs, "batch_size": _solve_batch}
#: The fields a solve can answer for.
FIELDS = tuple(_SOLVE_ONE)
#: The solvers' default ``method``: solve with every method and keep the most favourable plan.
BEST = "best"
#: The order in which ``method="best"`` tries the methods: the cheapest first, so a later
#: method is often settled by one query at the next better value. Ties go to the earlier one.
BEST_ORDER = ("rdp", "pld", "prv")
#: A forced PRV solve warns when prv-accountant's fixed error margin (``eps_error``, added to
#: every PRV upper bound) is at least this fraction of the target.
PRV_MARGIN_WARNING_FRACTION = 0.1


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Solution:
    """A solved plan, the method that certified it, and what bounded the answer.

    Attributes:
        plan: the solved plan (only ``field`` differs from the plan given).
        field: ``"noise_multiplier"``, ``"epochs"`` or ``"batch_size"``.
        target_epsilon: the target ε at ``plan.delta``.
        requested_method: the ``method`` asked for: ``"best"`` or one of the methods.
        method: the method that certified the answer (its ε is at most the target).
        epsilon: ε of ``plan`` by ``method``.
        bounded_by: what stopped the answer: ``"target"`` (the next better value, e.g. one
            more epoch, exceeds the target), ``"cap"`` (the search limit ``limit`` was
            reached with ε below the target) or ``"method_limit"`` (``method`` cannot
            compute ε for the next value, so it certifies nothing there).
        limit: the cap's value when ``bounded_by == "cap"``, else None.
        limit_name: what the cap is, e.g. ``"MAX_EPOCHS=10,000"`` (None unless capped).
        candidates: for ``method="best"``, each method tried -> its answer (a number), or
            None where it was not solved or failed; ``notes`` says why.
        notes: method -> why it has no answer in ``candidates``.
        warnings: valid-but-doubtful conditions, e.g. PRV's error margin large against the
            target.
    """

    plan: TrainingPlan
    field: str
    target_epsilon: float
    requested_method: str
    method: str
    epsilon: float
    bounded_by: str
    limit: float | None = None
    limit_name: str | None = None
    candidates: dict[str, float | None] = dataclasses.field(default_factory=dict, hash=False)
    notes: dict[str, str] = dataclasses.field(default_factory=dict, hash=False)
    warnings: tuple[str, ...] = ()

    @property
    def value(self) -> float:
        """The solved value: ``getattr(plan, field)``."""
        return getattr(self.plan, self.field)

    def bound_note(self) -> str:
        """One sentence saying what bounded the answer, e.g. that a cap did, not the target."""
        if self.bounded_by == "cap":
            return (
                f"bounded by the cap {self.field}={self.limit:g} ({self.limit_name}), not by "
                f"the target: ε = {self.epsilon:.4g} < target_epsilon = "
                f"{self.target_epsilon:g}"
            )
        if self.bounded_by == "method_limit":
            others = (
                "and no other method certifies one"
                if self.requested_method == BEST
                else "another method may allow more"
            )
            return (
                f"bounded by {self.method}'s limits: it cannot compute ε for a "
                f"{_better_word(self.field)} {self.field}; {others}"
            )
        return f"bounded by the target: a {_better_word(self.field)} {self.field} exceeds it"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (the plan, the certifying method and the bound)."""
        return {
            "solved": self.field,
            "value": self.value,
            "target_epsilon": self.target_epsilon,
            "requested_method": self.requested_method,
            "method": self.method,
            "epsilon": self.epsilon,
            "bounded_by": self.bounded_by,
            "limit": self.limit,
            "limit_name": self.limit_name,
            "candidates": dict(self.candidates),
            "notes": dict(self.notes),
            "warnings": list(self.warnings),
            "plan": self.plan.to_dict(),
        }


def _better_word(field: str) -> str:
    return "smaller" if field == "noise_multiplier" else "larger"


def _method(method: object) -> str:
    return _validate.choice(
        options=(BEST, *METHODS),
        hint="'best' (the default) solves with every method and keeps the most favourable plan.",
        method=method,
    )


def _improves(field: str, value: float, than: float) -> bool:
    return value < than if field == "noise_multiplier" else value > than


def _next_value(plan: TrainingPlan, field: str) -> float:
    """The next better value after ``plan``'s: 0.1% less noise, or one more epoch/record."""
    value = getattr(plan, field)
    if field == "noise_multiplier":
        return value * (1 - NOISE_MULTIPLIER_RELATIVE_TOL)
    return value + 1


def _fits(method: str, plan: TrainingPlan, target_epsilon: float) -> bool | None:
    """True/False: ``method``'s ε of ``plan`` meets the target or not; None: it refuses."""
    try:
        return get_accountant(method).epsilon(plan) <= target_epsilon
    except AccountingError:
        return None


#: ``method="best"`` screens PRV with its float64 estimate (``estimate_upper``, ~1e-7 from the
#: rigorous bound, a tenth of its cost) and skips a rigorous query where the estimate is over
#: the target by more than this (relative). Only the choice of methods to solve depends on
#: it; every answer is still certified rigorously.
_PRV_SCREEN_MARGIN = 1e-4


def _may_fit(method: str, plan: TrainingPlan, target_epsilon: float) -> bool | None:
    """As :func:`_fits`, but PRV answers False at once where its estimate is clearly over."""
    if method == "prv":
        try:
            estimate = get_accountant("prv").estimate_upper(
                sample_rate=plan.sample_rate,
                noise_multiplier=plan.noise_multiplier,
                delta=plan.delta,
                steps=plan.total_steps,
            )
        except AccountingError:
            return None
        if estimate > target_epsilon * (1 + _PRV_SCREEN_MARGIN):
            return False
    return _fits(method, plan, target_epsilon)


def _bound(plan: TrainingPlan, field: str, method: str, target_epsilon: float) -> dict:
    """What bounded a one-method answer: the target, a cap, or the method's own limits."""
    value = getattr(plan, field)
    if field == "noise_multiplier":
        if value <= NOISE_MULTIPLIER_SEARCH_MIN:
            return {
                "bounded_by": "cap",
                "limit": NOISE_MULTIPLIER_SEARCH_MIN,
                "limit_name": f"NOISE_MULTIPLIER_SEARCH_MIN={NOISE_MULTIPLIER_SEARCH_MIN:g}",
            }
        return {"bounded_by": "target"}
    cap, name = _cap(plan, field)
    if value >= cap:
        return {"bounded_by": "cap", "limit": cap, "limit_name": name}
    if _fits(method, plan.replace(**{field: value + 1}), target_epsilon) is None:
        return {"bounded_by": "method_limit"}
    return {"bounded_by": "target"}


def _prv_margin_warning(target_epsilon: float) -> tuple[str, ...]:
    margin = get_accountant("prv").eps_error
    if margin < PRV_MARGIN_WARNING_FRACTION * target_epsilon:
        return ()
    message = (
        f"prv adds a fixed error margin eps_error={margin:g} to every upper bound, "
        f"{margin / target_epsilon:.0%} of target_epsilon={target_epsilon:g}; "
        "method='best' (the default) uses whichever method certifies the most favourable plan."
    )
    return (message,)


def solve_plan(
    plan: TrainingPlan, *, field: str, target_epsilon: float, method: str = BEST
) -> Solution:
    """Solve ``plan`` for ``field`` at ``target_epsilon`` and say which method certified it.

    With ``method="best"`` (the default) it solves with each method (in :data:`BEST_ORDER`)
    and keeps the most favourable answer: the smallest noise multiplier, or the most epochs
    or the largest batch, whose ε *by the method that found it* meets the target. That is
    the headline rule (the smallest upper bound wins) applied to the solve: the solved
    plan's headline ε is at most the target, and no method certifies a better value (σ
    within the solver's 0.1%). A method is solved only if it meets the target at the next
    better value than the best so far (one query), so it adds little time when it cannot
    win. PRV thereby steps aside where its fixed error margin (``eps_error``, 0.01) is a large
    part of the target. A method that fails or cannot meet the target is skipped (``notes``
    says why). With a method named, that method alone is used.

    Args:
        plan: the plan; its value of ``field`` is ignored.
        field: ``"noise_multiplier"``, ``"epochs"`` or ``"batch_size"``.
        target_epsilon: the ε to meet at ``plan.delta``, in (0, 100].
        method: ``"best"`` (default), ``"rdp"``, ``"prv"`` or ``"pld"``.

    Returns:
        A :class:`Solution`: the plan, the certifying method, its ε and what bounded it.

    Raises:
        PlanError: for an invalid plan, field, target or method.
        InfeasibleTargetError: if no value meets the target (with ``"best"``: by any method).
        AccountingError: if the method can compute no candidate (``"best"``: no method can),
            the library fails, or (never expected) the answer overshoots.

    Example:
        >>> plan = TrainingPlan(dataset_size=60000, batch_size=256, noise_multiplier=1.0,
        ...                     epochs=10, delta=1e-5)
        >>> solution = solve_plan(plan, field="epochs", target_epsilon=100.0, method="rdp")
        >>> solution.plan.epochs, solution.bounded_by, solution.limit
        (4255, 'cap', 4255)
    """
    _check_plan(plan)
    field = _validate.choice(options=FIELDS, hint="Choose what to solve for.", field=field)
    target_epsilon = _target(target_epsilon)
    requested = _method(method)
    solve_one = _SOLVE_ONE[field]
    if requested != BEST:
        solved = solve_one(plan, target_epsilon, requested)
        return Solution(
            plan=solved,
            field=field,
            target_epsilon=target_epsilon,
            requested_method=requested,
            method=requested,
            epsilon=get_accountant(requested).epsilon(solved),
            **_bound(solved, field, requested, target_epsilon),
            warnings=_prv_margin_warning(target_epsilon) if requested == "prv" else (),
        )
    best: tuple[str, TrainingPlan] | None = None
    candidates: dict[str, float | None] = {}
    notes: dict[str, str] = {}
    infeasible = False
    for name in BEST_ORDER:
        candidates[name] = None
        if best is not None:
            leader, leading = best
            following = _next_value(leading, field)
            if (
                following < NOISE_MULTIPLIER_SEARCH_MIN
                if field == "noise_multiplier"
                else following > _cap(plan, field)[0]
            ):
                notes[name] = f"not tried: {leader} reached the cap"
                continue
            step = leading.replace(**{field: following})
            fits = _may_fit(name, step, target_epsilon)
            if not fits:
                verb = "cannot compute ε at" if fits is None else "does not certify"
                notes[name] = (
                    f"not solved: it {verb} {field}={following:g}, the next better value "
                    f"than {leader}'s"
                )
                continue
        try:
            solved = solve_one(plan, target_epsilon, name)
        except InfeasibleTargetError as exc:
            infeasible = True
            notes[name] = f"infeasible: {exc}"
            continue
        except AccountingError as exc:
            notes[name] = f"failed: {exc}"
            continue
        candidates[name] = getattr(solved, field)
        if best is None or _improves(field, getattr(solved, field), getattr(best[1], field)):
            best = (name, solved)
    if best is None:
        error = InfeasibleTargetError if infeasible else AccountingError
        raise error(
            "no accounting method meets the target: "
            + "; ".join(f"{name}: {notes[name]}" for name in BEST_ORDER)
        )
    name, solved = best
    return Solution(
        plan=solved,
        field=field,
        target_epsilon=target_epsilon,
        requested_method=BEST,
        method=name,
        epsilon=get_accountant(name).epsilon(solved),
        **_bound(solved, field, name, target_epsilon),
        candidates=candidates,
        notes=notes,
    )


def solve_noise_multiplier(
    plan: TrainingPlan, *, target_epsilon: float, method: str = BEST
) -> TrainingPlan:
    """Return ``plan`` with the smallest noise multiplier whose ε meets ``target_epsilon``.

    The answer is within 0.1% of the smallest σ that ``method`` certifies and never exceeds
    the target. The search covers σ in [0.1, 1000]; if even σ = 0.1 meets the target, σ = 0.1
    is returned. Where a method cannot compute ε (PRV's grid or round-off limits) it
    certifies nothing; the search looks past such points, never reading them as "over".
    With ``method="best"`` (the default) every method is tried and the smallest σ kept
    (see :func:`solve_plan`, which also says which method certified it).

    Args:
        plan: the plan; its noise_multiplier is ignored. For a PhasedPlan every phase's σ
            is scaled by one factor (the schedule's shape is kept) and a PhasedPlan returned.
        target_epsilon: the ε to meet at ``plan.delta``, in (0, 100].
        method: ``"best"`` (default), ``"rdp"``, ``"prv"`` or ``"pld"``.

    Returns:
        A new plan with the solved ``noise_multiplier``.

    Raises:
        PlanError: for an invalid plan, target or method.
        InfeasibleTargetError: if no σ <= 1000 that a method can compute meets the target.
        AccountingError: if the library fails, or (never expected) the answer overshoots.

    Example:
        >>> plan = TrainingPlan(dataset_size=60000, batch_size=256, noise_multiplier=1.0,
        ...                     epochs=10, delta=1e-5)
        >>> solved = solve_noise_multiplier(plan, target_epsilon=2.0, method="rdp")
        >>> round(solved.noise_multiplier, 2), epsilon(solved, method="rdp") <= 2.0
        (0.86, True)
    """
    if _is_phased(plan):  # PhasedPlan: every phase's σ scaled by one factor
        from dpplan.solve_phased import solve_phased_noise

        return solve_phased_noise(plan, target_epsilon=_target(target_epsilon), method=method)
    return solve_plan(
        plan, field="noise_multiplier", target_epsilon=target_epsilon, method=method
    ).plan


def solve_epochs(plan: TrainingPlan, *, target_epsilon: float, method: str = BEST) -> TrainingPlan:
    """Return ``plan`` with the largest number of epochs whose ε meets ``target_epsilon``.

    Adding one more epoch to the answer exceeds the target (or the epoch limit, or is a
    plan ``method`` cannot compute, e.g. PRV's grid limit: such a plan certifies nothing).
    With ``method="best"`` (the default) every method is tried and the most epochs kept;
    :func:`solve_plan` also says which method certified them and whether a cap bounded them.

    Args:
        plan: the plan; its epochs are ignored. For a PhasedPlan the last phase's epochs
            are solved and a PhasedPlan returned.
        target_epsilon: the ε to meet at ``plan.delta``, in (0, 100].
        method: ``"best"`` (default), ``"rdp"``, ``"prv"`` or ``"pld"``.

    Returns:
        A new plan with the solved ``epochs``.

    Raises:
        PlanError: for an invalid plan, target or method.
        InfeasibleTargetError: if even one epoch (or the fewest ``method`` can compute)
            exceeds the target.
        AccountingError: if ``method`` can compute no candidate at all, the library fails,
            or (never expected) the answer overshoots.

    Example:
        >>> plan = TrainingPlan(dataset_size=60000, batch_size=256, noise_multiplier=1.1,
        ...                     epochs=1, delta=1e-5)
        >>> solve_epochs(plan, target_epsilon=2.0, method="rdp").epochs
        36
    """
    if _is_phased(plan):  # PhasedPlan: the last phase's epochs
        from dpplan.solve_phased import solve_phased_epochs

        return solve_phased_epochs(plan, target_epsilon=_target(target_epsilon), method=method)
    return solve_plan(plan, field="epochs", target_epsilon=target_epsilon, method=method).plan


def solve_batch_size(
    plan: TrainingPlan, *, target_epsilon: float, method: str = BEST
) -> TrainingPlan:
    """Return ``plan`` with the largest expected batch size whose ε meets ``target_epsilon``.

    Epochs stay fixed, so a larger batch means a higher sample rate and fewer steps. The
    answer is locally maximal: one more record per batch exceeds the target. ε is not
    monotone in the batch size where ``ceil(dataset_size / batch_size)`` drops a step, so a
    larger batch past such a threshold can occasionally fit as well. With ``method="best"``
    (the default) every method is tried and the largest batch kept (see :func:`solve_plan`).

    Args:
        plan: the plan; its batch_size is ignored.
        target_epsilon: the ε to meet at ``plan.delta``, in (0, 100].
        method: ``"best"`` (default), ``"rdp"``, ``"prv"`` or ``"pld"``.

    Returns:
        A new plan with the solved ``batch_size``.

    Raises:
        PlanError: for an invalid plan, target or method.
        InfeasibleTargetError: if even the smallest batch (or the smallest ``method`` can
            compute) exceeds the target.
        AccountingError: if ``method`` can compute no candidate at all, the library fails,
            or (never expected) the answer overshoots.

    Example:
        >>> plan = TrainingPlan(dataset_size=60000, batch_size=1, noise_multiplier=1.1,
        ...                     epochs=10, delta=1e-5)
        >>> solved = solve_batch_size(plan, target_epsilon=1.0, method="rdp")
        >>> epsilon(solved, method="rdp") <= 1.0 < epsilon(solved.replace(
        ...     batch_size=solved.batch_size + 1), method="rdp")
        True
    """
    return solve_plan(plan, field="batch_size", target_epsilon=target_epsilon, method=method).plan
