"""ε of phased plans, and ε after any number of steps of any plan.

``dpplan.epsilon``, ``epsilon_curve`` and ``compare`` hand a :class:`~dpplan.phased.PhasedPlan`
to this module. A phased plan is a sequence of segments (one per phase) composed by
:func:`~dpplan.accounting.segments.epsilon_of_segments`: a one-phase plan is the backend's
fast path, bit for bit the ε of that :class:`TrainingPlan`.
"""

from __future__ import annotations

import dataclasses

from dpplan import _validate
from dpplan.accounting.base import METHODS, EpsilonCurve, library_versions, monotone_upper
from dpplan.accounting.segments import Segment, epsilon_of_segments
from dpplan.errors import PlanError
from dpplan.phased import PhasedPlan
from dpplan.plan import TrainingPlan

__all__ = ["MAX_COMPOSED_POINTS", "epsilon_at", "phased_curve"]

#: Most curve points a PRV or PLD curve composes several phases for (each one library call
#: of about a second); the points between carry the next evaluated point's bound, which is
#: valid (ε never decreases with more steps) and only looser. RDP evaluates every point.
MAX_COMPOSED_POINTS = 12


def _segments(plan: PhasedPlan | TrainingPlan, steps: int | None) -> list[Segment]:
    if isinstance(plan, TrainingPlan):
        plan = PhasedPlan(phases=(plan,))
    return [
        Segment(sample_rate=q, noise_multiplier=sigma, steps=n)
        for q, sigma, n in plan.mechanisms(steps)
    ]


def epsilon_at(plan: PhasedPlan | TrainingPlan, *, steps: int, method: str = "prv") -> float:
    """Return the ε upper bound after the first ``steps`` noisy steps of ``plan``.

    Early stopping after step 1,234 has an exact ε: that of the 1,234 steps taken.

    Args:
        plan: a TrainingPlan or PhasedPlan.
        steps: noisy steps taken, in [0, plan.total_steps].
        method: ``"rdp"``, ``"prv"`` (default), ``"pld"`` or ``"best"``.

    Raises:
        PlanError: for a wrong plan type, step count or method.
        AccountingError: if the library fails.

    Example:
        >>> plan = TrainingPlan(dataset_size=60000, batch_size=256, noise_multiplier=1.1,
        ...                     epochs=10, delta=1e-5)
        >>> epsilon_at(plan, steps=plan.total_steps, method="rdp") == epsilon(plan, method="rdp")
        True
    """
    if not isinstance(plan, (TrainingPlan, PhasedPlan)):
        raise PlanError("plan", plan, "a dpplan.TrainingPlan or PhasedPlan")
    return epsilon_of_segments(_segments(plan, steps), delta=plan.delta, method=method)


def phased_epsilon(plan: PhasedPlan, method: str) -> float:
    """ε after every step of ``plan`` (what ``dpplan.epsilon`` returns for a PhasedPlan)."""
    method = _validate.choice(options=METHODS, method=method)
    return epsilon_of_segments(_segments(plan, None), delta=plan.delta, method=method)


def phased_curve(plan: PhasedPlan, method: str) -> EpsilonCurve:
    """ε after every (possibly partial) epoch, the epochs numbered on across phases.

    The last point equals ``phased_epsilon(plan, method)``. Points inside the first phase use
    the backend's curve machinery; later points compose the phases so far.
    """
    method = _validate.choice(options=METHODS, method=method)
    from dpplan.accounting import get_accountant

    backend = get_accountant(method)
    ends = plan.epoch_ends()
    first_phase_steps = plan.steps_per_phase[0]
    values: list[float | None] = [None] * len(ends)
    first = [i for i, end in enumerate(ends) if end <= first_phase_steps]
    if len(plan.phases) == 1 and not plan.phase_steps:
        return dataclasses.replace(backend.epsilon_curve(plan.phases[0]), plan=plan)
    if first:
        computed = backend.compute(
            sample_rate=plan.phases[0].sample_rate,
            noise_multiplier=plan.phases[0].noise_multiplier,
            delta=plan.delta,
            steps=tuple(ends[i] for i in first),
        )
        for i, value in zip(first, computed.upper):
            values[i] = value
    rest = [i for i in range(len(ends)) if values[i] is None]
    if method != "rdp" and len(rest) > MAX_COMPOSED_POINTS:
        phase_ends = set()
        done = 0
        for count in plan.steps_per_phase:
            done += count
            phase_ends.add(done)
        chosen = {rest[-1]}
        chosen.update(i for i in rest if ends[i] in phase_ends)
        spaced = max(1, MAX_COMPOSED_POINTS - len(chosen))
        chosen.update(rest[round(k * (len(rest) - 1) / spaced)] for k in range(spaced))
        rest = sorted(chosen)
    for i in rest:
        values[i] = epsilon_of_segments(_segments(plan, ends[i]), delta=plan.delta, method=method)
    following = values[-1]
    carried = []
    for value in reversed(values):  # unevaluated points carry the next evaluated bound
        if value is not None:
            following = value
        carried.append(following)
    epsilons = monotone_upper(carried[::-1])
    settings: dict = {"phases": len(plan.phases), "steps": list(ends)}
    if any(v is None for v in values):
        settings["evaluated_points"] = (
            f"{sum(v is not None for v in values)} of {len(ends)}; other points carry the bound "
            "of the next evaluated point (valid, looser)"
        )
    return EpsilonCurve(
        method=method,
        plan=plan,
        epochs=tuple(range(1, len(ends) + 1)),
        epsilons=tuple(epsilons),
        settings=settings,
        versions=library_versions(method),
        warnings=_plan_warnings(plan),
    )


def _plan_warnings(plan: PhasedPlan) -> tuple[str, ...]:
    """The plan-level warnings (δ >= 1/dataset_size): the phases share both."""
    from dpplan.accounting import plan_warnings

    return plan_warnings(plan.phases[0])
