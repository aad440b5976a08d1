"""Build the dp-accounting event that a plan composes (the accounting currency)."""

from __future__ import annotations

import dp_accounting

from dpplan import _validate
from dpplan.plan import TrainingPlan

__all__ = ["dpsgd_event"]


def dpsgd_event(plan: TrainingPlan, *, steps: int | None = None) -> dp_accounting.DpEvent:
    """Return the event for ``steps`` Poisson-subsampled Gaussian steps of ``plan``.

    Args:
        plan: a validated plan; its ``sample_rate`` and ``noise_multiplier`` are used.
        steps: number of noisy steps, 0..plan.total_steps; ``None`` means all of them.

    Returns:
        ``SelfComposedDpEvent(PoissonSampledDpEvent(sample_rate, GaussianDpEvent(σ)), steps)``,
        or ``NoOpDpEvent()`` for zero steps.

    Raises:
        PlanError: if ``steps`` is not an integer in ``[0, plan.total_steps]``.

    Example:
        >>> plan = TrainingPlan(dataset_size=100, batch_size=10, noise_multiplier=1.0,
        ...                     epochs=2, delta=1e-3)
        >>> dpsgd_event(plan).count
        20
    """
    if steps is None:
        steps = plan.total_steps
    steps = _validate.integer(minimum=0, maximum=plan.total_steps, steps=steps)
    if steps == 0:
        return dp_accounting.NoOpDpEvent()  # dp-accounting refuses a count of 0
    step_event = dp_accounting.PoissonSampledDpEvent(
        sampling_probability=plan.sample_rate,
        event=dp_accounting.GaussianDpEvent(noise_multiplier=plan.noise_multiplier),
    )
    return dp_accounting.SelfComposedDpEvent(event=step_event, count=steps)
