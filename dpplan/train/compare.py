"""A fair comparison of learning-rate schedules at equal ε.

For each schedule, every learning rate of its grid is trained on the same plan with the
first seed; the rate with the best final **validation** accuracy is selected (the test set is
never used for selection); the selected rate is then trained with the remaining seeds. The
result is test accuracy after every epoch, as mean ± std over seeds, against the plan's ε,
which is the same for every schedule because they share the plan.

For a task that is not a classification (:class:`~dpplan.train.Task` with
``classification=False``, e.g. a regression), the rate with the lowest final validation
loss is selected and the summary's measure is the test loss (lower is better).

Tuning costs privacy too: each run touches the training data. The comparison records how many
runs were tried; their selection is **not** covered by the plan's ε (see Papernot & Steinke
2022 on private hyper-parameter tuning).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dpplan.errors import PlanError
from dpplan.plan import TrainingPlan
from dpplan.run_policy import epoch_epsilon
from dpplan.store import RunRecord, RunStore
from dpplan.train.runs import start_run
from dpplan.train.specs import (
    DEFAULT_ONE_CYCLE_LRS,
    DEFAULT_PLATEAU_LRS,
    Constant,
    OneCycle,
    Plateau,
    RunOptions,
    ScheduleSpec,
)

__all__ = ["DEFAULT_GRIDS", "ScheduleComparison", "ScheduleSummary", "compare_schedules"]

#: Default learning-rate grids: the ones sweeps use, measured by the notebooks (see
#: :data:`dpplan.train.specs.DEFAULT_ONE_CYCLE_LRS`); the published one-cycle peak 15.62
#: diverges in this set-up.
DEFAULT_GRIDS: Mapping[str, tuple[ScheduleSpec, ...]] = {
    "one_cycle": tuple(OneCycle(max_lr=lr) for lr in DEFAULT_ONE_CYCLE_LRS),
    "plateau": tuple(Plateau(lr=lr) for lr in DEFAULT_PLATEAU_LRS),
}


def grid_for(kind: str, learning_rates: Sequence[float]) -> tuple[ScheduleSpec, ...]:
    """Return the specs of schedule ``kind`` for each learning rate (dpplan's defaults).

    Raises:
        PlanError: for an unknown kind or an invalid learning rate.
    """
    if kind == "one_cycle":
        return tuple(OneCycle(max_lr=lr) for lr in learning_rates)
    if kind == "plateau":
        return tuple(Plateau(lr=lr) for lr in learning_rates)
    if kind == "constant":
        return tuple(Constant(lr=lr) for lr in learning_rates)
    raise PlanError("schedule", kind, "one of 'one_cycle', 'plateau', 'constant'")


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ScheduleSummary:
    """One schedule's selected learning rate and its accuracy-vs-ε curve over seeds."""

    kind: str
    selected: dict[str, Any] = dataclasses.field(hash=False)
    tried: tuple[dict[str, Any], ...]
    run_ids: tuple[int, ...]
    epochs: tuple[int, ...]
    epsilons: tuple[float, ...]
    accuracy_mean: tuple[float, ...]
    accuracy_std: tuple[float, ...]
    epsilon_methods: tuple[str, ...] = ()
    #: What ``accuracy_mean``/``accuracy_std`` measure: ``"test_accuracy"`` (higher is better)
    #: or, for a task that is not a classification, ``"test_loss"`` (lower is better).
    measure: str = "test_accuracy"

    def best_accuracy_at(self, epsilon: float) -> float | None:
        """Best mean of the measure (highest accuracy, or lowest loss) over epochs whose
        ε ≤ ``epsilon`` (None if none)."""
        values = [a for e, a in zip(self.epsilons, self.accuracy_mean) if e <= epsilon]
        if not values:
            return None
        return min(values) if self.measure == "test_loss" else max(values)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ScheduleComparison:
    """The result of :func:`compare_schedules`."""

    plan: TrainingPlan
    group_id: str
    seeds: tuple[int, ...]
    runs_tried: int
    summaries: tuple[ScheduleSummary, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "plan": self.plan.to_dict(),
            "group_id": self.group_id,
            "seeds": list(self.seeds),
            "runs_tried": self.runs_tried,
            "tuning_note": (
                f"{self.runs_tried} training runs touched the data; selecting among them is "
                "not covered by the plan's epsilon."
            ),
            "schedules": [
                {
                    **{k: v for k, v in dataclasses.asdict(s).items()},
                    "epsilons": [e if math.isfinite(e) else "inf" for e in s.epsilons],
                }
                for s in self.summaries
            ],
        }


def _final_validation(run: RunRecord, *, classification: bool = True) -> float:
    """The run's selection score, higher is better: its final validation accuracy (minus its
    final validation loss when not a classification); -inf for a run without one, or that
    diverged (never selected)."""
    if run.status == "diverged" or not run.records:
        return -math.inf
    last = run.records[-1]
    score = last.validation_accuracy if classification else -last.validation_loss
    return score if math.isfinite(score) else -math.inf


def summarize(
    kind: str,
    tried: Sequence[RunRecord],
    selected_runs: Sequence[RunRecord],
    *,
    measure: str = "test_accuracy",
) -> ScheduleSummary:
    """Build a :class:`ScheduleSummary` from stored runs (mean ± std of test accuracy, or
    of ``measure``: ``"test_loss"`` for a task that is not a classification).

    ε per epoch is the smallest upper bound recorded (the one every surface shows). Runs
    that diverged are left out of the mean (unless every selected run diverged).
    """
    run_ids = tuple(run.id for run in selected_runs)
    selected_runs = [run for run in selected_runs if run.status != "diverged"] or list(
        selected_runs
    )
    length = min(len(run.records) for run in selected_runs)
    epochs = tuple(range(1, length + 1))
    means, stds = [], []
    for index in range(length):
        values = [getattr(run.records[index], measure) for run in selected_runs]
        means.append(statistics.fmean(values))
        stds.append(statistics.pstdev(values) if len(values) > 1 else 0.0)
    return ScheduleSummary(
        kind=kind,
        selected=dict(selected_runs[0].schedule),
        tried=tuple(dict(run.schedule) for run in tried),
        run_ids=run_ids,
        epochs=epochs,
        epsilons=tuple(
            epoch_epsilon(selected_runs[0].records[i], selected_runs[0].method)[0]
            for i in range(length)
        ),
        epsilon_methods=tuple(
            epoch_epsilon(selected_runs[0].records[i], selected_runs[0].method)[1]
            for i in range(length)
        ),
        accuracy_mean=tuple(means),
        accuracy_std=tuple(stds),
        measure=measure,
    )


def compare_schedules(
    plan: TrainingPlan,
    *,
    grids: Mapping[str, Sequence[ScheduleSpec]] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    options: RunOptions | None = None,
    store: RunStore | None = None,
    on_run: Callable[[RunRecord], None] | None = None,
    task: Any = None,
) -> ScheduleComparison:
    """Compare schedules on one plan: tune each one's learning rate, then repeat over seeds.

    Args:
        plan: the plan every run trains (so every schedule is compared at equal ε).
        grids: schedule kind -> specs to try; default :data:`DEFAULT_GRIDS`.
        seeds: seeds; the first selects the learning rate, all are reported.
        options: run options (``seed`` is overridden per run).
        store: the run store; default ``RunStore()``.
        on_run: called with each finished run.
        task: the :class:`~dpplan.train.Task` every run trains; ``None`` for MNIST.

    Returns:
        A :class:`ScheduleComparison`.

    Raises:
        PlanError: for empty grids or seeds, or invalid specs or options.
    """
    grids = dict(DEFAULT_GRIDS if grids is None else grids)
    if not grids or any(len(specs) == 0 for specs in grids.values()):
        raise PlanError("grids", grids, "a non-empty grid of schedules per kind")
    seeds = tuple(seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise PlanError("seeds", seeds, "one or more distinct seeds")
    options = options or RunOptions()
    store = store or RunStore()
    group_id = uuid.uuid4().hex[:12]
    runs_tried = 0
    summaries = []

    def run(spec: ScheduleSpec, seed: int) -> RunRecord:
        nonlocal runs_tried
        runs_tried += 1
        result = start_run(
            plan,
            spec,
            dataclasses.replace(options, seed=seed),
            store=store,
            group_id=group_id,
            task=task,
        )
        if on_run is not None:
            on_run(result)
        return result

    classification = True if task is None else bool(task.classification)
    measure = "test_accuracy" if classification else "test_loss"
    for kind, specs in grids.items():
        tried = [run(spec, seeds[0]) for spec in specs]
        best = max(tried, key=lambda r: _final_validation(r, classification=classification))
        best_spec = specs[tried.index(best)]
        repeats = [run(best_spec, seed) for seed in seeds[1:]]
        summaries.append(summarize(kind, tried, [best, *repeats], measure=measure))
    return ScheduleComparison(
        plan=plan, group_id=group_id, seeds=seeds, runs_tried=runs_tried, summaries=tuple(summaries)
    )
