"""What dpplan computes and decides about stored runs, above the store.

The store (:mod:`dpplan.store`) keeps records; this module adds the two things that need
more than storage:

- the one ε shown for an epoch and for a run: the smallest upper bound recorded (accounting
  decides the tie order, and a diverged run's unrecorded epoch is computed from its plan);
- the delete policy: a run of a comparison group or sweep whose training touched the data
  is kept, because the group's composed ε in reports must keep counting it.

It imports neither torch nor opacus, so the CLI and the app use it on any machine.
"""

from __future__ import annotations

from dpplan.errors import StateConflictError
from dpplan.store import EpochRecord, RunRecord, RunStore

__all__ = ["delete_run", "epoch_epsilon", "plan_epoch_epsilons", "run_epsilon"]


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


def run_epsilon(run: RunRecord) -> tuple[float, str] | None:
    """Return (ε, method) after the last epoch of ``run`` that touched the data: the smallest
    upper bound (only the run's own method for runs recorded before every method was), or
    ``None`` without such an epoch. This is the one ε shown for a run. For a run that
    diverged it counts the epoch it diverged in, whose steps were taken."""
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
