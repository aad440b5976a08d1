"""One method's search: the noise multiplier, epochs or batch size that meet a target ε.

:mod:`dpplan.solve` calls these for each method it tries and picks among the answers. The
search is dp-accounting's ``calibrate_dp_mechanism`` (Brent's method with a final one-sided
fix-up) driven through the backend's ``fresh()`` accountant, after a bracketing walk that
treats a backend's refusal as "unknown", never as "over budget"; every answer passes
:func:`checked`, the postcondition that recomputes ε with the same method.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import dp_accounting

from dpplan import _validate
from dpplan.accounting import get_accountant
from dpplan.accounting.events import dpsgd_event
from dpplan.errors import AccountingError, InfeasibleTargetError
from dpplan.plan import MAX_EPOCHS, MAX_TOTAL_STEPS, NOISE_MULTIPLIER_MAX, TrainingPlan

#: Smallest noise multiplier the σ solver considers; below it DP-SGD's ε is rarely useful
#: and the PRV/PLD grids explode.
NOISE_MULTIPLIER_SEARCH_MIN = 0.1
#: Largest target ε accepted. Beyond it the guarantee says little.
TARGET_EPSILON_MAX = 100.0
#: Relative tolerance of the σ solver (the answer is within this of the smallest σ that fits).
NOISE_MULTIPLIER_RELATIVE_TOL = 1e-3


def checked_target(target_epsilon: object) -> float:
    return _validate.finite_positive(
        maximum=TARGET_EPSILON_MAX,
        hint="Give the ε you want to guarantee, e.g. 3.0.",
        target_epsilon=target_epsilon,
    )


def checked(plan: TrainingPlan, method: str, target_epsilon: float) -> TrainingPlan:
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


def solve_noise_with(plan: TrainingPlan, target_epsilon: float, method: str) -> TrainingPlan:
    """The σ solve with one method (see :func:`dpplan.solve.solve_noise_multiplier`)."""
    backend = get_accountant(method)
    if method == "prv":
        fast = _solve_prv_noise(plan, target_epsilon)
        if fast is not None:
            return checked(fast, method, target_epsilon)
    probe = _Probe(backend, lambda sigma: plan.replace(noise_multiplier=sigma), target_epsilon)
    # Start near RDP's answer (cheap; PRV and PLD usually certify a little less noise).
    guess = 1.0
    if method != "rdp":
        try:
            guess = solve_noise_with(plan, target_epsilon, "rdp").noise_multiplier
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
            return checked(plan.replace(noise_multiplier=high), method, target_epsilon)
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
    return checked(plan.replace(noise_multiplier=sigma), method, target_epsilon)


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
        return checked(candidate(low), method, target_epsilon)
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
    return checked(candidate(value), method, target_epsilon)


def _no_fit(result: _NoFit, method: str) -> None:
    """Raise AccountingError when ``method`` could compute ε for no candidate at all."""
    if result.value is None:
        raise AccountingError(
            f"{method} cannot compute ε for any candidate value of this plan." + result.note
        )


def solve_epochs_with(plan: TrainingPlan, target_epsilon: float, method: str) -> TrainingPlan:
    """The epochs solve with one method (see :func:`dpplan.solve.solve_epochs`)."""
    high = epochs_cap(plan)[0]
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


def solve_batch_with(plan: TrainingPlan, target_epsilon: float, method: str) -> TrainingPlan:
    """The batch-size solve with one method (see :func:`dpplan.solve.solve_batch_size`)."""
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


def search_cap(plan: TrainingPlan, field: str) -> tuple[int, str]:
    """The largest epochs or batch size the solver considers, and the limit's name."""
    if field == "batch_size":
        return plan.dataset_size, f"dataset_size={plan.dataset_size:,}"
    return epochs_cap(plan)


def epochs_cap(plan: TrainingPlan) -> tuple[int, str]:
    """The most epochs the solver considers, and the limit's name."""
    by_steps = MAX_TOTAL_STEPS // plan.steps_per_epoch
    if by_steps < MAX_EPOCHS:
        return by_steps, (
            f"MAX_TOTAL_STEPS={MAX_TOTAL_STEPS:,} steps at {plan.steps_per_epoch:,} steps per epoch"
        )
    return MAX_EPOCHS, f"MAX_EPOCHS={MAX_EPOCHS:,}"
