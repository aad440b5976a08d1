"""The sweep protocol, as pure functions: plans, trials, selection, the frontier.

* :func:`solve_plans`: for every (target ε, batch size, epochs) the noise multiplier is
  solved (``spec.method``, PRV by default), so the plan's ε is at most its target and every
  point of the frontier sits at its ε.
* Grid protocol (``spec.random_repeats is None``): for every (ε, B, E, schedule) each
  learning rate is trained with the first seed; the rate with the best final **validation**
  accuracy is selected (the test set never selects), then repeated with the other seeds
  (as :func:`dpplan.train.compare.compare_schedules` does for one plan).
* Random protocol (Papernot & Steinke 2022): for every ε a Poisson(``random_repeats``)
  number K of configurations, each drawn uniformly from the (B, E, schedule, learning rate)
  grid with a generator seeded from the OS's secret entropy (:func:`draw_random_trials`);
  the best on validation accuracy is the tuned model, then repeated with the other seeds
  to measure its spread.
* :func:`frontier`: the point of each ε is the configuration with the best validation
  accuracy (over every B, E and schedule), reported by test accuracy mean ± sample std
  over its seeds; one curve per schedule answers "one-cycle or plateau?" at every ε.

Nothing here trains, stores or imports torch or ray; :mod:`dpplan.sweep.execute` runs the
trials these functions name.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from dpplan.errors import PlanError
from dpplan.plan import TrainingPlan
from dpplan.sweep.results import FrontierPoint
from dpplan.sweep.spec import SweepSpec
from dpplan.train.specs import Plateau, ScheduleSpec, grid_for

__all__ = [
    "PlanKey",
    "Trial",
    "TrialOutcome",
    "draw_random_trials",
    "frontier",
    "plan_key_of",
    "planned_trials",
    "plans_from_dict",
    "plans_to_dict",
    "ready_trials",
    "solve_plans",
]

#: (target ε, batch size, epochs): the key of a solved plan.
PlanKey = tuple[float, int, int]
#: (batch size, epochs, schedule kind, learning rate): one configuration of the grid.
Config = tuple[int, int, str, float]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Trial:
    """One training run of a sweep.

    Attributes:
        key: unique within the sweep; names ε, B, E, schedule, learning rate, seed (and the
            draw, for the random protocol).
        target_epsilon: the plan's target ε.
        batch_size: the plan's B.
        epochs: the plan's E.
        kind: the schedule kind.
        lr: the learning rate (peak for one-cycle).
        seed: the model-initialisation seed.
        phase: ``"select"`` (first seed, chooses the learning rate) or ``"repeat"``.
        group: the selection group this trial belongs to.
        evaluate_every: the sweep's ``plateau_every``: a plateau trial's schedule is stepped
            on the validation loss every this many optimizer steps (None: once per epoch).
    """

    key: str
    target_epsilon: float
    batch_size: int
    epochs: int
    kind: str
    lr: float
    seed: int
    phase: str
    group: str
    evaluate_every: int | None = None

    @property
    def plan_key(self) -> PlanKey:
        """The key of this trial's plan in :func:`solve_plans`' mapping."""
        return (self.target_epsilon, self.batch_size, self.epochs)

    @property
    def schedule(self) -> ScheduleSpec:
        """The schedule spec (dpplan's defaults with this learning rate; a plateau stepped
        every ``evaluate_every`` steps when that is set)."""
        spec = grid_for(self.kind, [self.lr])[0]
        if self.evaluate_every is not None and isinstance(spec, Plateau):
            return dataclasses.replace(spec, evaluate_every=self.evaluate_every)
        return spec

    @property
    def config(self) -> Config:
        """(B, E, schedule kind, learning rate): what the seeds repeat."""
        return (self.batch_size, self.epochs, self.kind, self.lr)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TrialOutcome:
    """What a finished (or failed) trial gave, read from the store.

    Attributes:
        key: the trial's key.
        status: ``"finished"`` or ``"failed"``.
        run_id: the stored run (None for a failed trial).
        validation_accuracy: final-epoch validation accuracy (None if failed).
        test_accuracy: final-epoch test accuracy (None if failed).
        epochs_done: epochs the run completed.
        diverged: the run's loss or weights became non-finite: a finished trial with no
            accuracy, never selected and left out of every point's mean.
        validation_loss: final-epoch validation loss (None if failed or unknown).
        test_loss: final-epoch test loss (None if failed or unknown).
    """

    key: str
    status: str
    run_id: int | None = None
    validation_accuracy: float | None = None
    test_accuracy: float | None = None
    epochs_done: int = 0
    diverged: bool = False
    validation_loss: float | None = None
    test_loss: float | None = None

    @property
    def score(self) -> float | None:
        """What selects, higher is better: the validation accuracy; for a task that is not a
        classification (its accuracy is NaN, e.g. a regression) minus the validation loss.
        None when neither is finite."""
        if self.validation_accuracy is not None and math.isfinite(self.validation_accuracy):
            return float(self.validation_accuracy)
        if self.validation_loss is not None and math.isfinite(self.validation_loss):
            return -float(self.validation_loss)
        return None


def solve_plans(spec: SweepSpec) -> dict[PlanKey, TrainingPlan]:
    """Return the plan of every (target ε, B, E): the noise multiplier solved for the target.

    Raises:
        InfeasibleTargetError: if some target cannot be met (the message names it).
        AccountingError: if the solver's method fails for a plan.
    """
    from dpplan.solve import solve_noise_multiplier

    size = spec.dataset_size
    plans = {}
    for target in spec.target_epsilons:
        for batch_size in spec.batch_sizes:
            for epochs in spec.epochs:
                start = TrainingPlan(
                    dataset_size=size,
                    batch_size=batch_size,
                    noise_multiplier=1.0,
                    epochs=epochs,
                    delta=spec.delta,
                    max_grad_norm=spec.max_grad_norm,
                )
                plans[(target, batch_size, epochs)] = solve_noise_multiplier(
                    start, target_epsilon=target, method=spec.method
                )
    return plans


def plans_to_dict(plans: Mapping[PlanKey, TrainingPlan], *, method: str) -> list[dict[str, Any]]:
    """Return the solved plans as JSON-ready rows, each with its ε (by ``method``)."""
    from dpplan.accounting import epsilon

    return [
        {
            "target_epsilon": target,
            "batch_size": batch_size,
            "epochs": epochs,
            "plan": plan.to_dict(),
            "epsilon": epsilon(plan, method=method),
            "method": method,
        }
        for (target, batch_size, epochs), plan in plans.items()
    ]


def plans_from_dict(rows: Sequence[Mapping[str, Any]]) -> dict[PlanKey, TrainingPlan]:
    """Inverse of :func:`plans_to_dict` (the ε column is dropped)."""
    return {
        (
            float(row["target_epsilon"]),
            int(row["batch_size"]),
            int(row["epochs"]),
        ): TrainingPlan.from_dict(row["plan"])
        for row in rows
    }


def _configurations(spec: SweepSpec) -> list[tuple[int, int, str, float]]:
    return [
        (batch_size, epochs, kind, lr)
        for batch_size in spec.batch_sizes
        for epochs in spec.epochs
        for kind in spec.schedules
        for lr in spec.learning_rates(kind)
    ]


def draw_random_trials(spec: SweepSpec, *, rng: Any = None) -> dict[str, Any]:
    """Draw the random protocol's trials: K ~ Poisson(μ) configurations per target ε.

    The number of trials and the configurations come from a numpy generator seeded with
    128 bits from :mod:`secrets` (the OS's secret entropy), never from the sweep's seeds:
    Papernot & Steinke's guarantee needs K to stay secret. Keep the store private.

    Args:
        spec: a spec with ``random_repeats`` set.
        rng: a ``numpy.random.Generator`` (tests only); default a secretly seeded one.

    Returns:
        ``{"mean": μ, "per_target": {repr(ε): [[B, E, kind, lr], ...]}}`` (JSON-ready).

    Raises:
        PlanError: if ``spec.random_repeats`` is None.
    """
    import numpy as np

    if spec.random_repeats is None:
        raise PlanError("random_repeats", None, "a mean number of trials for this protocol")
    rng = rng if rng is not None else np.random.default_rng(secrets.randbits(128))
    configurations = _configurations(spec)
    per_target = {}
    for target in spec.target_epsilons:
        count = int(rng.poisson(spec.random_repeats))
        picks = rng.integers(0, len(configurations), size=count)
        per_target[repr(target)] = [list(configurations[int(i)]) for i in picks]
    return {"mean": spec.random_repeats, "per_target": per_target}


def _key(target: float, config: Config, seed: int, draw: int | None) -> str:
    batch_size, epochs, kind, lr = config
    prefix = f"eps={target!r}" + ("" if draw is None else f"/draw={draw}")
    return f"{prefix}/B={batch_size}/E={epochs}/{kind}/lr={lr!r}/seed={seed}"


def plan_key_of(key: str) -> PlanKey:
    """The plan key (target ε, B, E) of a trial's key (as :class:`Trial` writes it)."""
    fields = dict(part.split("=", 1) for part in key.split("/") if "=" in part)
    return (float(fields["eps"]), int(fields["B"]), int(fields["E"]))


def _selection(
    spec: SweepSpec, target: float, config: Config, group: str, draw: int | None = None
) -> Trial:
    """The selection trial (first seed) of ``config`` at ``target``, in ``group``."""
    batch_size, epochs, kind, lr = config
    seed = spec.seeds[0]
    return Trial(
        key=_key(target, config, seed, draw),
        target_epsilon=target,
        batch_size=int(batch_size),
        epochs=int(epochs),
        kind=str(kind),
        lr=float(lr),
        seed=seed,
        phase="select",
        group=group,
        evaluate_every=spec.plateau_every if kind == "plateau" else None,
    )


def _groups(spec: SweepSpec, draws: Mapping[str, Any] | None) -> list[tuple[str, list[Trial]]]:
    """Return every selection group and its selection trials (first seed), in grid order."""
    groups = []
    for target in spec.target_epsilons:
        if spec.random_repeats is not None:
            if draws is None:
                raise PlanError("draws", None, "the random protocol's drawn trials")
            group = f"eps={target!r}/random"
            picked = draws["per_target"].get(repr(target), [])
            groups.append(
                (
                    group,
                    [_selection(spec, target, tuple(c), group, i) for i, c in enumerate(picked)],
                )
            )
            continue
        for batch_size in spec.batch_sizes:
            for epochs in spec.epochs:
                for kind in spec.schedules:
                    group = f"eps={target!r}/B={batch_size}/E={epochs}/{kind}"
                    trials = [
                        _selection(spec, target, (batch_size, epochs, kind, lr), group)
                        for lr in spec.learning_rates(kind)
                    ]
                    groups.append((group, trials))
    return groups


def _winner(trials: Sequence[Trial], outcomes: Mapping[str, TrialOutcome]) -> Trial | None:
    """The finished trial with the best final validation accuracy (lowest validation loss
    for a task that is not a classification; first on ties)."""
    best, best_score = None, -math.inf
    for trial in trials:
        outcome = outcomes.get(trial.key)
        if outcome is None or outcome.status != "finished" or outcome.diverged:
            continue
        score = outcome.score
        if score is not None and score > best_score:
            best, best_score = trial, score
    return best


def _repeats(spec: SweepSpec, winner: Trial) -> list[Trial]:
    """The winner's configuration again with every other seed."""
    return [
        dataclasses.replace(
            winner,
            key=_key(winner.target_epsilon, winner.config, seed, None),
            seed=seed,
            phase="repeat",
        )
        for seed in spec.seeds[1:]
    ]


def ready_trials(
    spec: SweepSpec,
    outcomes: Mapping[str, TrialOutcome],
    draws: Mapping[str, Any] | None = None,
) -> list[Trial]:
    """Return every trial that can run now, given the outcomes so far (done ones included).

    Selection trials can always run; a group's repeats can run once every selection trial
    of the group has an outcome (finished or failed) and one of them finished.
    """
    ready = []
    for _, trials in _groups(spec, draws):
        ready.extend(trials)
        if all(trial.key in outcomes for trial in trials):
            winner = _winner(trials, outcomes)
            if winner is not None:
                ready.extend(_repeats(spec, winner))
    return ready


def planned_trials(spec: SweepSpec, draws: Mapping[str, Any] | None = None) -> int:
    """Return how many trials the sweep runs if every selection finds a winner."""
    repeats = len(spec.seeds) - 1
    return sum(len(trials) + (repeats if trials else 0) for _, trials in _groups(spec, draws))


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class _GroupResult:
    winner: Trial
    validation_accuracy: float
    score: float
    outcomes: tuple[TrialOutcome, ...]
    diverged: tuple[TrialOutcome, ...] = ()


def _group_results(
    spec: SweepSpec, outcomes: Mapping[str, TrialOutcome], draws: Mapping[str, Any] | None
) -> list[_GroupResult]:
    results = []
    for _, trials in _groups(spec, draws):
        if not all(trial.key in outcomes for trial in trials):
            continue
        winner = _winner(trials, outcomes)
        if winner is None:
            continue
        same = [winner, *_repeats(spec, winner)]
        ended = [
            outcomes[t.key]
            for t in same
            if t.key in outcomes and outcomes[t.key].status == "finished"
        ]
        results.append(
            _GroupResult(
                winner=winner,
                validation_accuracy=float(outcomes[winner.key].validation_accuracy),
                score=float(outcomes[winner.key].score),
                outcomes=tuple(o for o in ended if not o.diverged),
                diverged=tuple(o for o in ended if o.diverged),
            )
        )
    return results


def _best_per_kind(
    spec: SweepSpec, outcomes: Mapping[str, TrialOutcome], draws: Mapping[str, Any] | None
) -> list[_GroupResult]:
    """Random protocol: each schedule's best draw per ε (its first-seed run only)."""
    results = []
    for _, trials in _groups(spec, draws):
        for kind in spec.schedules:
            winner = _winner([t for t in trials if t.kind == kind], outcomes)
            if winner is not None:
                results.append(
                    _GroupResult(
                        winner=winner,
                        validation_accuracy=float(outcomes[winner.key].validation_accuracy),
                        score=float(outcomes[winner.key].score),
                        outcomes=(outcomes[winner.key],),
                    )
                )
    return results


def _point(
    result: _GroupResult,
    plans: Mapping[PlanKey, TrainingPlan],
    epsilons: Mapping[PlanKey, float],
    method: str,
) -> FrontierPoint:
    winner = result.winner
    tests = [float(o.test_accuracy) for o in result.outcomes]
    losses = [math.nan if o.test_loss is None else float(o.test_loss) for o in result.outcomes]
    validation_loss = result.outcomes[0].validation_loss if result.outcomes else None
    known = all(math.isfinite(loss) for loss in losses)  # runs stored before test loss: NaN
    return FrontierPoint(
        target_epsilon=winner.target_epsilon,
        epsilon=epsilons[winner.plan_key],
        epsilon_method=method,
        plan=plans[winner.plan_key],
        schedule=winner.schedule,
        validation_accuracy=result.validation_accuracy,
        test_accuracy_mean=statistics.fmean(tests),
        test_accuracy_std=statistics.stdev(tests) if len(tests) > 1 else 0.0,  # sample std
        seeds=tuple(int(o.key.rsplit("seed=", 1)[1]) for o in result.outcomes),
        run_ids=tuple(o.run_id for o in result.outcomes),
        diverged_seeds=tuple(int(o.key.rsplit("seed=", 1)[1]) for o in result.diverged),
        validation_loss=math.nan if validation_loss is None else float(validation_loss),
        test_loss_mean=statistics.fmean(losses) if known else math.nan,
        test_loss_std=(statistics.stdev(losses) if len(losses) > 1 else 0.0) if known else math.nan,
    )


def frontier(
    spec: SweepSpec,
    plans: Mapping[PlanKey, TrainingPlan],
    epsilons: Mapping[PlanKey, float],
    outcomes: Mapping[str, TrialOutcome],
    draws: Mapping[str, Any] | None = None,
) -> tuple[tuple[FrontierPoint, ...], dict[str, tuple[FrontierPoint, ...]]]:
    """Return (points, curves): the frontier and one curve per schedule.

    A point per target ε whose selection is complete: the configuration with the best
    first-seed validation accuracy over every (B, E, schedule) group, with the test accuracy
    mean ± sample std over the seeds it was trained with (a seed whose run diverged is left
    out of the mean and listed in ``diverged_seeds``). ``curves[kind]`` holds the same per ε,
    restricted to that schedule (random protocol: the best draw of that schedule, first seed
    only). Targets with no finished selection yet have no point.

    Args:
        spec: the sweep.
        plans: the solved plans (:func:`solve_plans`).
        epsilons: ε of each plan (by ``spec.method``, the points' ``epsilon_method``).
        outcomes: trial key -> outcome.
        draws: the random protocol's draws (:func:`draw_random_trials`).
    """
    results = _group_results(spec, outcomes, draws)
    points = []
    for target in spec.target_epsilons:
        at = [r for r in results if r.winner.target_epsilon == target]
        if at:
            best = max(at, key=lambda r: r.score)  # first in grid order on ties
            points.append(_point(best, plans, epsilons, spec.method))
    per_kind = _best_per_kind(spec, outcomes, draws) if spec.random_repeats is not None else results
    curves: dict[str, list[FrontierPoint]] = {kind: [] for kind in spec.schedules}
    for kind in spec.schedules:
        for target in spec.target_epsilons:
            at = [
                r for r in per_kind if r.winner.kind == kind and r.winner.target_epsilon == target
            ]
            if at:
                curves[kind].append(
                    _point(max(at, key=lambda r: r.score), plans, epsilons, spec.method)
                )
    return tuple(points), {kind: tuple(curve) for kind, curve in curves.items()}
