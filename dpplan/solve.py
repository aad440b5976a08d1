"""Solvers: the noise multiplier, epochs or batch size that meet a target ε.

Each solver returns a **new plan** (``plan.replace(...)``) and guarantees, by recomputing ε
for the answer with the same method, that it does not exceed the target. By default
(``method="best"``) every method is solved and the most favourable plan kept, so the answer
follows the headline rule (the smallest upper bound wins); :func:`solve_plan` returns a
:class:`Solution` that also names the certifying method and what bounded the answer (the
target, a search cap, or the method's own limits). One method's search
lives in :mod:`dpplan.solve_search`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from dpplan import _validate
from dpplan.accounting import METHODS, check_plan, get_accountant, is_phased
from dpplan.errors import AccountingError, InfeasibleTargetError, PlanError
from dpplan.plan import TrainingPlan
from dpplan.solve_search import (
    NOISE_MULTIPLIER_RELATIVE_TOL,
    NOISE_MULTIPLIER_SEARCH_MIN,
    TARGET_EPSILON_MAX,
    checked_target,
    search_cap,
    solve_batch_with,
    solve_epochs_with,
    solve_noise_with,
)

__all__ = [
    "BEST",
    "BEST_ORDER",
    "FIELDS",
    "NOISE_MULTIPLIER_SEARCH_MIN",
    "TARGET_EPSILON_MAX",
    "Solution",
    "solve_batch_size",
    "solve_epochs",
    "solve_fields",
    "solve_noise_multiplier",
    "solve_plan",
]

_SOLVE_ONE = {
    "noise_multiplier": solve_noise_with,
    "epochs": solve_epochs_with,
    "batch_size": solve_batch_with,
}
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
    cap, name = search_cap(plan, field)
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


def _solution(
    solved: TrainingPlan,
    field: str,
    target_epsilon: float,
    *,
    requested: str,
    method: str,
    **more: Any,
) -> Solution:
    """The :class:`Solution` of ``solved``, certified by ``method``: its ε and what bounded it."""
    return Solution(
        plan=solved,
        field=field,
        target_epsilon=target_epsilon,
        requested_method=requested,
        method=method,
        epsilon=get_accountant(method).epsilon(solved),
        **_bound(solved, field, method, target_epsilon),
        **more,
    )


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
    check_plan(plan)
    field = _validate.choice(options=FIELDS, hint="Choose what to solve for.", field=field)
    target_epsilon = checked_target(target_epsilon)
    requested = _method(method)
    solve_one = _SOLVE_ONE[field]
    if requested != BEST:
        return _solution(
            solve_one(plan, target_epsilon, requested),
            field,
            target_epsilon,
            requested=requested,
            method=requested,
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
                else following > search_cap(plan, field)[0]
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
    return _solution(
        solved,
        field,
        target_epsilon,
        requested=BEST,
        method=name,
        candidates=candidates,
        notes=notes,
    )


def _search_start(field: str, fields: Mapping[str, object]) -> object:
    """Where the search for ``field`` starts, a value every valid set of the other fields
    admits: σ = 1 (the σ search's first guess), one epoch (the epochs search's lowest), or the
    whole dataset as one batch (the batch search's highest, the fewest steps)."""
    if field == "noise_multiplier":
        return 1.0
    if field == "epochs":
        return 1
    size = fields.get("dataset_size")
    return size if isinstance(size, int) else 1  # an invalid size is refused by its own name


def solve_fields(
    fields: Mapping[str, object], *, field: str, target_epsilon: float, method: str = BEST
) -> Solution:
    """Solve for ``field`` from the plan's other fields, as :func:`solve_plan` does.

    Args:
        fields: every plan field but ``field`` (``max_grad_norm`` may be left out), as
            :meth:`TrainingPlan.to_dict` spells them.
        field, target_epsilon, method: as for :func:`solve_plan`.

    Returns:
        A :class:`Solution`, as :func:`solve_plan`'s.

    Raises:
        PlanError: naming ``field`` when ``fields`` holds it; for a missing, unknown or
            invalid field, target or method.
        InfeasibleTargetError, AccountingError: as :func:`solve_plan`.

    Example:
        >>> fields = dict(dataset_size=60000, batch_size=256, epochs=10, delta=1e-5)
        >>> solution = solve_fields(fields, field="noise_multiplier", target_epsilon=2.0,
        ...                         method="rdp")
        >>> round(solution.value, 2)
        0.86
    """
    field = _validate.choice(options=FIELDS, hint="Choose what to solve for.", field=field)
    if field in fields:
        raise PlanError(
            field,
            fields[field],
            f"absent when solving for {field}",
            f"Leave {field} out: the solver finds it.",
        )
    plan = TrainingPlan.from_dict({**fields, field: _search_start(field, fields)})
    return solve_plan(plan, field=field, target_epsilon=target_epsilon, method=method)


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
        target_epsilon, method: as for :func:`solve_plan`.

    Returns:
        A new plan with the solved ``noise_multiplier``.

    Raises:
        InfeasibleTargetError: if no σ <= 1000 that a method can compute meets the target.
        PlanError, AccountingError: as :func:`solve_plan`.

    Example:
        >>> plan = TrainingPlan(dataset_size=60000, batch_size=256, noise_multiplier=1.0,
        ...                     epochs=10, delta=1e-5)
        >>> solved = solve_noise_multiplier(plan, target_epsilon=2.0, method="rdp")
        >>> round(solved.noise_multiplier, 2), epsilon(solved, method="rdp") <= 2.0
        (0.86, True)
    """
    if is_phased(plan):  # PhasedPlan: every phase's σ scaled by one factor
        from dpplan.solve_phased import solve_phased_noise

        return solve_phased_noise(
            plan, target_epsilon=checked_target(target_epsilon), method=method
        )
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
        target_epsilon, method: as for :func:`solve_plan`.

    Returns:
        A new plan with the solved ``epochs``.

    Raises:
        InfeasibleTargetError: if even one epoch (or the fewest ``method`` can compute)
            exceeds the target.
        PlanError, AccountingError: as :func:`solve_plan`.

    Example:
        >>> plan = TrainingPlan(dataset_size=60000, batch_size=256, noise_multiplier=1.1,
        ...                     epochs=1, delta=1e-5)
        >>> solve_epochs(plan, target_epsilon=2.0, method="rdp").epochs
        36
    """
    if is_phased(plan):  # PhasedPlan: the last phase's epochs
        from dpplan.solve_phased import solve_phased_epochs

        return solve_phased_epochs(
            plan, target_epsilon=checked_target(target_epsilon), method=method
        )
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
        target_epsilon, method: as for :func:`solve_plan`.

    Returns:
        A new plan with the solved ``batch_size``.

    Raises:
        InfeasibleTargetError: if even the smallest batch (or the smallest ``method`` can
            compute) exceeds the target.
        PlanError, AccountingError: as :func:`solve_plan`.

    Example:
        >>> plan = TrainingPlan(dataset_size=60000, batch_size=1, noise_multiplier=1.1,
        ...                     epochs=10, delta=1e-5)
        >>> solved = solve_batch_size(plan, target_epsilon=1.0, method="rdp")
        >>> epsilon(solved, method="rdp") <= 1.0 < epsilon(solved.replace(
        ...     batch_size=solved.batch_size + 1), method="rdp")
        True
    """
    return solve_plan(plan, field="batch_size", target_epsilon=target_epsilon, method=method).plan
