"""What dpplan computes and decides about stored runs, above the store.

The store (:mod:`dpplan.store`) keeps records; this module adds the two things that need
more than storage:

- the one ε shown for an epoch and for a run: the smallest upper bound recorded (accounting
  decides the tie order, and a diverged run's unrecorded epoch is computed from its plan, as
  are the steps of epochs a stop or crash abandoned mid-way, :func:`spent_segments`);
- the delete policy: a run of a comparison group or sweep whose training touched the data
  is kept, because the group's composed ε in reports must keep counting it.

It imports neither torch nor opacus, so the CLI and the app use it on any machine.
"""

from __future__ import annotations

from dpplan.errors import StateConflictError
from dpplan.store import EpochRecord, RunRecord, RunStore

__all__ = [
    "abandoned_note",
    "delete_run",
    "epoch_epsilon",
    "epochs_counted",
    "plan_epoch_epsilons",
    "run_epsilon",
    "spent_phased",
    "spent_segments",
    "whole_epochs_spent",
]


def plan_epoch_epsilons(plan) -> tuple[dict[str, float], ...]:
    """Every method's ε after each epoch of a run's plan, as the trainer records them.

    A TrainingPlan's epochs are whole; a :class:`~dpplan.PhasedPlan`'s are its (possibly
    partial) epochs numbered on across phases (:meth:`~dpplan.PhasedPlan.epoch_ends`).

    Raises:
        AccountingError: if every method failed.
    """
    from dpplan.accounting import compare
    from dpplan.accounting.composition import epoch_epsilons

    if not hasattr(plan, "phases"):
        return epoch_epsilons(plan)
    comparison = compare(plan)
    return tuple(
        {curve.method: curve.epsilons[index] for curve in comparison.curves}
        for index in range(len(plan.epoch_ends()))
    )


def epoch_epsilon(record: EpochRecord, method: str) -> tuple[float, str]:
    """Return (ε, its method): the smallest upper bound recorded for an epoch.

    Args:
        record: the epoch's record.
        method: the method of ``record.epsilon`` (the run's ``method``), used when no
            per-method ε was recorded.

    Raises:
        PlanError: if the record names an unknown method.
    """
    if not record.epsilons:
        return record.epsilon, method
    from dpplan.accounting.composition import headline_of

    best, value = headline_of(record.epsilons)
    return value, best


def spent_segments(run: RunRecord) -> list:
    """Every noisy step ``run`` took, as :class:`~dpplan.accounting.segments.Segment` s: its
    plan's steps through :attr:`~RunRecord.epochs_spent`, plus its
    :attr:`~RunRecord.abandoned_steps`.

    A TrainingPlan's abandoned steps are at its own mechanism. A phased plan's are accounted
    at the mechanism with its largest sample rate and smallest noise multiplier (which
    dominates every phase's, so the ε is an upper bound whichever phase they were in).
    """
    from dpplan.accounting.segments import Segment
    from dpplan.phased import PhasedPlan

    plan = run.plan
    phased = plan if isinstance(plan, PhasedPlan) else PhasedPlan(phases=(plan,))
    segments = [
        Segment(sample_rate=q, noise_multiplier=sigma, steps=n)
        for q, sigma, n in phased.mechanisms(phased.steps_after(run.epochs_spent))
    ]
    if run.abandoned_steps:
        extra = _dominating_phase(phased)
        segments.append(
            Segment(
                sample_rate=extra.sample_rate,
                noise_multiplier=extra.noise_multiplier,
                steps=run.abandoned_steps,
            )
        )
    return segments


def _dominating_phase(phased):
    """A phase whose mechanism dominates every phase's: the largest sample rate (batch size)
    and the smallest noise multiplier of any phase."""
    widest = max(phased.phases, key=lambda phase: phase.sample_rate)
    return widest.replace(noise_multiplier=min(phase.noise_multiplier for phase in phased.phases))


def epochs_counted(run: RunRecord) -> int:
    """Return the whole epochs to account for ``run``: :attr:`~RunRecord.epochs_spent`, and
    for a TrainingPlan run with :attr:`~RunRecord.abandoned_steps`, those steps rounded up to
    whole epochs and added (possibly past the plan's end: a resume retrains the abandoned
    epoch). An upper bound on every step the run took. A phased run's epochs are its
    :attr:`~RunRecord.epochs_spent` (phased runs are not composed by whole epochs; a phased
    run's report uses :func:`spent_phased`)."""
    epochs = run.epochs_spent
    if not run.abandoned_steps or hasattr(run.plan, "phases"):
        return epochs
    return epochs + -(-run.abandoned_steps // run.plan.steps_per_epoch)


def whole_epochs_spent(run: RunRecord) -> tuple:
    """Return ``(plan, epochs)`` for composing ``run`` by whole epochs
    (:func:`dpplan.accounting.compose_runs`): ``(run.plan, epochs_counted(run))``, the plan
    given more epochs when the count passes its end (bit for bit ``(run.plan,
    run.epochs_spent)`` without abandoned steps)."""
    plan, epochs = run.plan, epochs_counted(run)
    if hasattr(plan, "phases") or epochs <= plan.epochs:
        return plan, epochs
    return plan.replace(epochs=epochs), epochs


def spent_phased(run: RunRecord):
    """Return a phased plan of every noisy step ``run`` took: its plan cut after
    :attr:`~RunRecord.epochs_spent`, then its :attr:`~RunRecord.abandoned_steps` as one more
    phase at the dominating mechanism (as :func:`spent_segments`), or ``None`` without any
    step."""
    from dpplan.phased import PhasedPlan, truncated_phased

    plan = run.plan
    phased = plan if isinstance(plan, PhasedPlan) else PhasedPlan(phases=(plan,))
    steps = phased.steps_after(run.epochs_spent)
    cut = truncated_phased(phased, steps) if steps else None
    if not run.abandoned_steps:
        return cut
    phases, counts = (list(cut.phases), list(cut.steps_per_phase)) if cut else ([], [])
    extra = _dominating_phase(phased)
    phases.append(extra.replace(epochs=-(-run.abandoned_steps // extra.steps_per_epoch)))
    counts.append(run.abandoned_steps)
    return PhasedPlan(
        phases=phases,
        phase_steps=[None if n == p.total_steps else n for p, n in zip(phases, counts)],
    )


def abandoned_note(run: RunRecord) -> str | None:
    """The sentence that says a run's ε counts its abandoned steps, or None without any."""
    if not run.abandoned_steps:
        return None
    count = run.abandoned_steps
    return (
        f"{count} step{'s' if count != 1 else ''} of an abandoned (stopped) epoch "
        f"{'are' if count != 1 else 'is'} counted"
    )


def run_epsilon(run: RunRecord) -> tuple[float, str] | None:
    """Return (ε, method) after the last epoch of ``run`` that touched the data: the smallest
    upper bound (only the run's own method for runs recorded before every method was), or
    ``None`` without such an epoch. This is the one ε shown for a run. For a run that
    diverged it counts the epoch it diverged in, whose steps were taken; for a run with
    :attr:`~RunRecord.abandoned_steps` (an epoch stopped mid-way: a resume retrains it) it
    counts those steps too, composed with the spent epochs' (:func:`spent_segments`).

    Raises:
        AccountingError: if every method failed (for a run with abandoned steps).
    """
    if run.private and run.abandoned_steps:
        from dpplan.accounting import METHODS
        from dpplan.accounting.composition import headline_of
        from dpplan.accounting.segments import epsilon_of_segments
        from dpplan.errors import AccountingError

        segments, found, failures = spent_segments(run), {}, []
        for method in METHODS:
            try:
                found[method] = epsilon_of_segments(segments, delta=run.plan.delta, method=method)
            except AccountingError as exc:
                failures.append(f"{method}: {exc}")
        if not found:
            raise AccountingError("every method failed: " + "; ".join(failures))
        method, value = headline_of(found)
        return value, method
    if run.private and run.epochs_spent > len(run.records):
        from dpplan.accounting.composition import headline_of

        # The plan's curve at that epoch, as the trainer recorded it for every epoch.
        method, value = headline_of(plan_epoch_epsilons(run.plan)[run.epochs_spent - 1])
        return value, method
    return epoch_epsilon(run.records[-1], run.method) if run.records else None


def delete_run(store: RunStore, run_id: int) -> None:
    """Delete a run, its records and its checkpoint, unless a group's ε must count it.

    Raises:
        PlanError: if ``run_id`` is not a whole number in range.
        NotFoundError: if there is no such run.
        StateConflictError: if the run is running or queued, or belongs to a comparison
            group (or sweep) and trained at least one epoch.
        StoreError: if the store is read-only, or the checkpoint cannot be removed.
    """
    run = store.get_run(run_id)
    if run.group_id is not None and run.records and run.status not in ("running", "queued"):
        raise StateConflictError(
            "run_id",
            run_id,
            "a run outside a comparison group",
            f"Run {run_id} belongs to group {run.group_id}; its training touched the data, "
            "and the group's composed ε in reports must keep counting it.",
        )
    store.delete_run(run_id)
