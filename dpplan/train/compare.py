"""A fair comparison of learning-rate schedules at equal ε.

For each schedule, every learning rate of its grid is trained on the same plan with the
first seed; the rate with the best final **validation** accuracy is selected (the test set is
never used for selection); the selected rate is then trained with the remaining seeds. The
result is test accuracy after every epoch, as mean ± sample standard deviation over seeds,
against the plan's ε, which is the same for every schedule because they share the plan; the
schedules' final-epoch means are compared by the difference with its 95% Welch t interval
(:func:`dpplan.stats.mean_difference`).

The plan may be a :class:`~dpplan.PhasedPlan` (σ, batch size and sampling rate changing at
phase boundaries): every run then trains the same phased plan, and the summaries' epochs are
its (possibly partial) epochs numbered on across phases (:meth:`~dpplan.PhasedPlan.epoch_ends`),
with its ε curve.

For a task that is not a classification (:class:`~dpplan.train.Task` with
``classification=False``, e.g. a regression), the rate with the lowest final validation
loss is selected and the summary's measure is the test loss (lower is better).

Tuning costs privacy too: each run touches the training data. The comparison records how many
runs were tried; their selection is **not** covered by the plan's ε (see Papernot & Steinke
2022 on private hyper-parameter tuning).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dpplan import _validate
from dpplan.errors import PlanError
from dpplan.format import json_float
from dpplan.phased import PhasedPlan
from dpplan.plan import TrainingPlan
from dpplan.run_policy import epoch_epsilon
from dpplan.selection import Candidate, best_at
from dpplan.stats import MeanDifference, mean_difference, sample_std
from dpplan.store import RunRecord, RunStore
from dpplan.train.runs import start_run
from dpplan.train.specs import (
    DEFAULT_ONE_CYCLE_LRS,
    DEFAULT_PLATEAU_LRS,
    OneCycle,
    Plateau,
    RunOptions,
    ScheduleSpec,
    grid_for,
    schedule_from_dict,
    training_set_size,
)

__all__ = [
    "DEFAULT_GRIDS",
    "ScheduleComparison",
    "ScheduleSummary",
    "compare_schedules",
    "grid_for",
    "launch_comparison",
    "main",
    "plan_from_dict",
    "planned_runs",
    "with_plateau_every",
]

#: Default learning-rate grids: the ones sweeps use, measured by the notebooks (see
#: :data:`dpplan.train.specs.DEFAULT_ONE_CYCLE_LRS`); the published one-cycle peak 15.62
#: diverges in this set-up.
DEFAULT_GRIDS: Mapping[str, tuple[ScheduleSpec, ...]] = {
    "one_cycle": tuple(OneCycle(max_lr=lr) for lr in DEFAULT_ONE_CYCLE_LRS),
    "plateau": tuple(Plateau(lr=lr) for lr in DEFAULT_PLATEAU_LRS),
}


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ScheduleSummary:
    """One schedule's selected learning rate and its accuracy-vs-ε curve over seeds.

    ``accuracy_std`` is the sample standard deviation over the seeds (n - 1 in the
    denominator; 0.0 for one seed, which measures no spread); ``final_values`` holds each
    counted seed's value at the last epoch (diverged runs left out), so ``len(final_values)``
    is the n of every mean.
    """

    kind: str
    selected: dict[str, Any] = dataclasses.field(hash=False)
    tried: tuple[dict[str, Any], ...]
    run_ids: tuple[int, ...]
    epochs: tuple[int, ...]
    epsilons: tuple[float, ...]
    accuracy_mean: tuple[float, ...]
    accuracy_std: tuple[float, ...]
    epsilon_methods: tuple[str, ...] = ()
    validation_mean: tuple[float, ...] = ()
    #: What ``accuracy_mean``/``accuracy_std`` (and ``validation_mean``) measure:
    #: ``"test_accuracy"`` (validation and test accuracy, higher is better) or, for a task
    #: that is not a classification, ``"test_loss"`` (validation and test loss, lower is
    #: better).
    measure: str = "test_accuracy"
    final_values: tuple[float, ...] = ()

    def best_accuracy_at(self, epsilon: float) -> float | None:
        """Mean test accuracy (test loss, for measure ``"test_loss"``) at the epoch with the
        best mean validation accuracy (lowest validation loss) among the epochs whose
        ε ≤ ``epsilon`` (:func:`dpplan.selection.best_at`; None if none)."""
        sign = -1.0 if self.measure == "test_loss" else 1.0
        chosen = best_at(
            (
                Candidate(epsilon=e, validation_accuracy=sign * v, test_accuracy=a)
                for e, v, a in zip(
                    self.epsilons, self.validation_mean, self.accuracy_mean, strict=False
                )
            ),
            epsilon_at_most=epsilon,
        )
        return None if chosen is None else chosen.test_accuracy


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ScheduleComparison:
    """The result of :func:`compare_schedules`; ``plan`` is the plan every run trained (a
    TrainingPlan or a PhasedPlan)."""

    plan: TrainingPlan | PhasedPlan
    group_id: str
    seeds: tuple[int, ...]
    runs_tried: int
    summaries: tuple[ScheduleSummary, ...]

    def differences(self) -> list[tuple[str, str, MeanDifference]]:
        """Each pair of schedules (in order) compared at their final epoch: ``(a, b, d)``
        with ``d`` the mean of ``a`` minus the mean of ``b`` over seeds and its 95% Welch t
        interval (NaN, verdict ``"cannot tell"``, with one seed on a side)."""
        return [
            (a.kind, b.kind, mean_difference(a.final_values, b.final_values))
            for a, b in itertools.combinations(self.summaries, 2)
            if _comparable(a.final_values) and _comparable(b.final_values)
        ]

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
                    "epsilons": [json_float(e) for e in s.epsilons],
                }
                for s in self.summaries
            ],
            "differences": [
                {
                    "a": a,
                    "b": b,
                    "measure": self.summaries[0].measure,
                    "difference": d.difference,
                    "low": None if math.isnan(d.low) else d.low,
                    "high": None if math.isnan(d.high) else d.high,
                    "confidence": d.confidence,
                    "n_a": d.n_a,
                    "n_b": d.n_b,
                    "verdict": d.verdict,
                }
                for a, b, d in self.differences()
            ],
        }


def _comparable(values: Sequence[float]) -> bool:
    """Whether ``values`` can enter a mean difference: one or more, all finite."""
    return bool(values) and all(math.isfinite(v) for v in values)


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
    """Build a :class:`ScheduleSummary` from stored runs (mean ± sample std of test accuracy,
    or of ``measure``: ``"test_loss"`` for a task that is not a classification).

    ε per epoch is the smallest upper bound recorded (the one every surface shows). Runs
    that diverged are left out of the mean (unless every selected run diverged).
    """
    run_ids = tuple(run.id for run in selected_runs)
    selected_runs = [run for run in selected_runs if run.status != "diverged"] or list(
        selected_runs
    )
    length = min(len(run.records) for run in selected_runs)
    epochs = tuple(range(1, length + 1))
    validation_measure = "validation_loss" if measure == "test_loss" else "validation_accuracy"
    means, stds, validations = [], [], []
    for index in range(length):
        values = [getattr(run.records[index], measure) for run in selected_runs]
        means.append(statistics.fmean(values))
        stds.append(sample_std(values))
        validations.append(
            statistics.fmean(
                getattr(run.records[index], validation_measure) for run in selected_runs
            )
        )
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
        validation_mean=tuple(validations),
        measure=measure,
        final_values=tuple(
            float(getattr(run.records[length - 1], measure)) for run in selected_runs
        )
        if length
        else (),
    )


def _checked(
    grids: Mapping[str, Sequence[ScheduleSpec]] | None,
    seeds: Sequence[int],
    plateau_every: int | None = None,
) -> tuple[dict[str, tuple[ScheduleSpec, ...]], tuple[int, ...]]:
    grids = {
        kind: tuple(specs) for kind, specs in (DEFAULT_GRIDS if grids is None else grids).items()
    }
    if plateau_every is not None:
        grids = {kind: with_plateau_every(specs, plateau_every) for kind, specs in grids.items()}
        if not any(isinstance(spec, Plateau) for specs in grids.values() for spec in specs):
            raise PlanError(
                "plateau_every",
                plateau_every,
                "None unless a grid holds a plateau schedule",
                "Add a plateau grid, or drop plateau_every.",
            )
    if not grids or any(len(specs) == 0 for specs in grids.values()):
        raise PlanError("grids", grids, "a non-empty grid of schedules per kind")
    seeds = tuple(seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise PlanError("seeds", seeds, "one or more distinct seeds")
    return grids, seeds


def with_plateau_every(specs: Sequence[ScheduleSpec], every: int) -> tuple[ScheduleSpec, ...]:
    """Return ``specs`` with every :class:`~dpplan.train.Plateau` stepped on the validation
    loss every ``every`` optimizer steps (``evaluate_every``); other kinds unchanged.

    Args:
        specs: schedule specs (a grid).
        every: optimizer steps between a plateau's evaluations, an integer >= 1.

    Returns:
        The specs, in order, each plateau with ``evaluate_every=every``.

    Raises:
        PlanError: field ``plateau_every``, unless ``every`` is an integer >= 1.

    Example:
        >>> with_plateau_every(DEFAULT_GRIDS["plateau"], 20)[0].evaluate_every
        20
    """
    every = _validate.integer(
        minimum=1, hint="Optimizer steps between evaluations, e.g. 20.", plateau_every=every
    )
    return tuple(
        dataclasses.replace(spec, evaluate_every=every) if isinstance(spec, Plateau) else spec
        for spec in specs
    )


def _checked_plan(plan: object) -> TrainingPlan | PhasedPlan:
    """``plan`` if it is a TrainingPlan or a PhasedPlan.

    Raises:
        PlanError: field ``plan`` otherwise.
    """
    if not isinstance(plan, (TrainingPlan, PhasedPlan)):
        raise PlanError(
            "plan", plan, "a dpplan.TrainingPlan or dpplan.PhasedPlan", "Build one first."
        )
    return plan


def plan_from_dict(data: Mapping[str, Any]) -> TrainingPlan | PhasedPlan:
    """The plan of a comparison's JSON (``ScheduleComparison.to_dict()["plan"]``): a
    PhasedPlan for a mapping with ``phases``, else a TrainingPlan.

    Raises:
        PlanError: for invalid fields.
    """
    if isinstance(data, Mapping) and "phases" in data:
        return PhasedPlan.from_dict(data)
    return TrainingPlan.from_dict(data)


def compare_schedules(
    plan: TrainingPlan | PhasedPlan,
    *,
    grids: Mapping[str, Sequence[ScheduleSpec]] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    options: RunOptions | None = None,
    store: RunStore | None = None,
    on_run: Callable[[RunRecord], None] | None = None,
    group_id: str | None = None,
    task: Any = None,
    plateau_every: int | None = None,
) -> ScheduleComparison:
    """Compare schedules on one plan: tune each one's learning rate, then repeat over seeds.

    Args:
        plan: the plan every run trains (so every schedule is compared at equal ε): a
            TrainingPlan, or a PhasedPlan whose phases every run trains in turn.
        grids: schedule kind -> specs to try; default :data:`DEFAULT_GRIDS`.
        seeds: seeds; the first selects the learning rate, all are reported.
        options: run options (``seed`` is overridden per run).
        store: the run store; default ``RunStore()``.
        on_run: called with each finished run.
        group_id: the comparison's run group (default: a new random id).
        task: the :class:`~dpplan.train.Task` every run trains; ``None`` for MNIST.
        plateau_every: ``None`` (the grids as given: the default plateau steps once per
            epoch), or N >= 1: every plateau spec of the grids is stepped on the validation
            loss every N optimizer steps (``Plateau.evaluate_every``), so it can act within
            a short run.

    Returns:
        A :class:`ScheduleComparison`.

    Raises:
        PlanError: for a plan that is neither a TrainingPlan nor a PhasedPlan, empty grids or
            seeds, invalid specs or options, or a ``plateau_every`` that is not an integer >= 1.
    """
    plan = _checked_plan(plan)
    grids, seeds = _checked(grids, seeds, plateau_every)
    options = options or RunOptions()
    store = store or RunStore()
    group_id = group_id or uuid.uuid4().hex[:12]
    runs_tried = 0
    summaries = []

    def run(spec: ScheduleSpec, seed: int) -> RunRecord:
        nonlocal runs_tried
        runs_tried += 1
        extra = {} if task is None else {"task": task}
        result = start_run(
            plan,
            spec,
            dataclasses.replace(options, seed=seed),
            store=store,
            group_id=group_id,
            **extra,
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


def planned_runs(grids: Mapping[str, Sequence[ScheduleSpec]], seeds: Sequence[int]) -> int:
    """Return how many runs :func:`compare_schedules` trains: every rate of each grid with
    the first seed, then the selected rate of each schedule with the other seeds."""
    return sum(len(specs) + len(seeds) - 1 for specs in grids.values())


def launch_comparison(
    plan: TrainingPlan | PhasedPlan,
    *,
    grids: Mapping[str, Sequence[ScheduleSpec]],
    seeds: Sequence[int],
    options: RunOptions,
    task: str | None = None,
    plateau_every: int | None = None,
) -> tuple[int, Path, str]:
    """Run :func:`compare_schedules` in a background process (the app's Compare page).

    Everything is validated here, in the caller's process; the child receives the plan (a
    TrainingPlan or a PhasedPlan, read back by :func:`plan_from_dict`), the specs and the
    options as JSON (their ``to_dict`` forms), and ``task``, a
    ``"module:function"`` (:func:`~dpplan.train.load_task`) it imports again, and stores each
    run in group ``group_id`` as it finishes. ``plateau_every`` is applied to the plateau
    specs here, as in :func:`compare_schedules`.

    Returns:
        (the child's PID, its log file, the comparison's run group).

    Raises:
        PlanError: for a plan that is neither a TrainingPlan nor a PhasedPlan, empty grids or
            seeds, repeated seeds, invalid specs, options or ``plateau_every``, a task
            that cannot be loaded, or a plan whose ``dataset_size`` is not
            ``training_set_size(options)`` (the task's training set size, with a task).
    """
    from dpplan.background import launch_detached

    grids, seeds = _checked(grids, seeds, plateau_every)
    plan = _checked_plan(plan)
    if not isinstance(options, RunOptions):
        raise PlanError("options", options, "a dpplan.train.RunOptions")
    if task is not None:
        from dpplan.train.tasks import check_dataset_size, load_task

        check_dataset_size(plan.dataset_size, load_task(task))
    elif plan.dataset_size != training_set_size(options):
        raise PlanError(
            "dataset_size",
            plan.dataset_size,
            f"{training_set_size(options)}, the training examples these options use",
            "Build the plan with dataset_size=training_set_size(options).",
        )
    for seed in seeds:  # each run's options, validated here rather than in the child
        dataclasses.replace(options, seed=seed)
    group_id = uuid.uuid4().hex[:12]
    request = {
        "plan": plan.to_dict(),
        "grids": {kind: [spec.to_dict() for spec in specs] for kind, specs in grids.items()},
        "seeds": list(seeds),
        "options": options.to_dict(),
        "group_id": group_id,
        "task": task,
    }
    pid, log = launch_detached("dpplan.train.compare", request, kind="comparisons")
    return pid, log, group_id


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison whose request (:func:`launch_comparison`) is in the file ``argv[0]``.

    Returns:
        0 when every run ended, 2 if the request was refused.
    """
    import json
    import sys

    from dpplan.background import read_request
    from dpplan.errors import DpplanError

    try:
        request = read_request(list(sys.argv[1:] if argv is None else argv))
        plan = plan_from_dict(request["plan"])
        grids = {
            kind: tuple(schedule_from_dict(spec) for spec in specs)
            for kind, specs in request["grids"].items()
        }
        options = RunOptions.from_dict(dict(request["options"]))
        seeds = [int(seed) for seed in request["seeds"]]
        group_id = str(request["group_id"])
        task = None
        if request.get("task") is not None:
            from dpplan.train.tasks import load_task

            task = load_task(str(request["task"]))
    except (DpplanError, OSError, ValueError, KeyError, TypeError) as error:
        print(f"error: {error}", flush=True)
        return 2

    def show(run: RunRecord) -> None:
        print(f"comparison {group_id}: run {run.id} {run.status}", flush=True)

    result = compare_schedules(
        plan, grids=grids, seeds=seeds, options=options, group_id=group_id, on_run=show, task=task
    )
    print(json.dumps(result.to_dict(), indent=2), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
