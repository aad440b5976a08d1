"""A sweep's results as frozen, typed values: :class:`FrontierResult` and :class:`TuningCost`.

:func:`dpplan.sweep.frontier_result` and :func:`dpplan.sweep.run_sweep` return a
:class:`FrontierResult`; the CLI, the app and the report read its attributes. ``to_dict()``
gives the JSON-ready dict ``dpplan sweep --json`` and ``dpplan frontier --json`` print (its
shape is the CLI's contract); :class:`TuningCost` also round-trips through the store
(``to_dict`` / ``from_dict``).

This module imports neither torch nor ray.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from dpplan.errors import PlanError
from dpplan.format import json_safe
from dpplan.plan import TrainingPlan
from dpplan.selection import best_at
from dpplan.sweep.spec import SweepSpec
from dpplan.train.specs import ScheduleSpec

__all__ = [
    "FrontierPoint",
    "FrontierResult",
    "SolvedPlan",
    "TargetTuning",
    "TrialCounts",
    "TrialFailure",
    "TuningCost",
    "unstored_note",
]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class FrontierPoint:
    """The selected configuration at one target ε (of the frontier, or of one schedule's curve).

    Attributes:
        target_epsilon: the target the plan was solved for.
        epsilon: ε of the plan (``epsilon_method``), at most the target.
        epsilon_method: the accountant that gave ``epsilon``.
        plan: the solved plan.
        schedule: the selected schedule and learning rate.
        validation_accuracy: the first seed's final validation accuracy (what selected it).
        test_accuracy_mean: final test accuracy, mean over ``seeds``.
        test_accuracy_std: its sample standard deviation (n - 1 in the denominator; 0.0 for
            one seed, which measures no spread).
        seeds: the seeds whose runs count (diverged ones left out).
        run_ids: their stored runs.
        diverged_seeds: seeds whose run diverged (left out of the mean).
        validation_loss: the first seed's final validation loss (what selected it for a
            task that is not a classification, e.g. a regression, whose accuracies are NaN).
        test_loss_mean: final test loss, mean over ``seeds`` (what a regression reports).
        test_loss_std: its sample standard deviation (n - 1; 0.0 for one seed).
    """

    target_epsilon: float
    epsilon: float
    epsilon_method: str
    plan: TrainingPlan
    schedule: ScheduleSpec
    validation_accuracy: float
    test_accuracy_mean: float
    test_accuracy_std: float
    seeds: tuple[int, ...]
    run_ids: tuple[int, ...]
    diverged_seeds: tuple[int, ...] = ()
    validation_loss: float = math.nan
    test_loss_mean: float = math.nan
    test_loss_std: float = math.nan

    @property
    def classification(self) -> bool:
        """Whether the point was selected and is reported by accuracy (else by loss)."""
        return math.isfinite(self.validation_accuracy)

    @property
    def learning_rate(self) -> float:
        """The schedule's learning rate (the peak for one-cycle)."""
        return float(
            self.schedule.max_lr if self.schedule.kind == "one_cycle" else self.schedule.lr
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the point as the CLI's JSON prints it."""
        return {
            "target_epsilon": self.target_epsilon,
            "epsilon": self.epsilon,
            "plan": self.plan.to_dict(),
            "schedule": self.schedule.to_dict(),
            "validation_accuracy": json_safe(self.validation_accuracy),
            "test_accuracy_mean": json_safe(self.test_accuracy_mean),
            "test_accuracy_std": json_safe(self.test_accuracy_std),
            "seeds": list(self.seeds),
            "run_ids": list(self.run_ids),
            "diverged_seeds": list(self.diverged_seeds),
            "epsilon_method": self.epsilon_method,
            "validation_loss": json_safe(self.validation_loss),
            "test_loss_mean": json_safe(self.test_loss_mean),
            "test_loss_std": json_safe(self.test_loss_std),
        }


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class SolvedPlan:
    """One solved plan of a sweep: (target ε, B, E), the plan and its ε by ``method``."""

    target_epsilon: float
    batch_size: int
    epochs: int
    plan: TrainingPlan
    epsilon: float
    method: str

    def to_dict(self) -> dict[str, Any]:
        return _fields_dict(self)

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> SolvedPlan:
        """Build from a stored row (``dpplan.sweep.protocol.plans_to_dict``)."""
        return cls(
            target_epsilon=float(row["target_epsilon"]),
            batch_size=int(row["batch_size"]),
            epochs=int(row["epochs"]),
            plan=TrainingPlan.from_dict(row["plan"]),
            epsilon=float(row["epsilon"]),
            method=str(row["method"]),
        )


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TargetTuning:
    """The tuning cost at one target ε (see :class:`TuningCost`)."""

    target_epsilon: float
    single_run_epsilon: float
    runs: int
    all_runs_epsilon: float | None = None
    all_runs_method: str | None = None
    repeat_and_select_epsilon: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return _fields_dict(
            self,
            unless_none=(("all_runs_epsilon", "all_runs_method"), ("repeat_and_select_epsilon",)),
        )


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TuningCost:
    """The privacy cost of a sweep's tuning, every ε an upper bound at ``delta``.

    Attributes:
        delta: the sweep's δ.
        single_run_epsilon: ε of one run (the largest of the solved plans').
        runs: stored runs of the sweep.
        protocol: ``"grid"`` or ``"random_repeats"``.
        per_target: the same per target ε.
        covers: what each number covers, in words (:data:`dpplan.sweep.COVERAGE`).
        all_runs_epsilon: ε of every stored run composed (0.0 with no run).
        all_runs_method: the accountant that composed them (None with no run).
        random_repeats: the random protocol's mean number of trials (None for the grid).
        repeat_and_select_epsilon: Papernot & Steinke's ε of the selected models (random
            protocol only).
        simulation: for a sweep predicted by simulation, K, the data and the trials' own ε
            (:func:`dpplan.simulate.simulated_tuning`); else None.
    """

    delta: float
    single_run_epsilon: float
    runs: int
    protocol: str
    per_target: tuple[TargetTuning, ...]
    covers: Mapping[str, str]
    all_runs_epsilon: float
    all_runs_method: str | None
    random_repeats: float | None = None
    repeat_and_select_epsilon: float | None = None
    simulation: Mapping[str, Any] | None = None

    @property
    def random(self) -> bool:
        """Whether this is the random (repeat-and-select) protocol."""
        return self.protocol == "random_repeats"

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready ``tuning`` object (as stored and as the CLI prints it)."""
        return _fields_dict(
            self, unless_none=(("random_repeats", "repeat_and_select_epsilon"), ("simulation",))
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TuningCost:
        """Build from :meth:`to_dict` output (a stored sweep's tuning).

        Raises:
            PlanError: (field ``tuning``) if a required key is missing.
        """
        try:
            return cls(
                delta=float(data["delta"]),
                single_run_epsilon=float(data["single_run_epsilon"]),
                runs=int(data["runs"]),
                protocol=str(data["protocol"]),
                per_target=tuple(
                    TargetTuning(
                        target_epsilon=float(row["target_epsilon"]),
                        single_run_epsilon=float(row["single_run_epsilon"]),
                        runs=int(row["runs"]),
                        all_runs_epsilon=_optional_float(row.get("all_runs_epsilon")),
                        all_runs_method=row.get("all_runs_method"),
                        repeat_and_select_epsilon=_optional_float(
                            row.get("repeat_and_select_epsilon")
                        ),
                    )
                    for row in data["per_target"]
                ),
                covers=dict(data["covers"]),
                all_runs_epsilon=float(data["all_runs_epsilon"]),
                all_runs_method=data.get("all_runs_method"),
                random_repeats=_optional_float(data.get("random_repeats")),
                repeat_and_select_epsilon=_optional_float(data.get("repeat_and_select_epsilon")),
                simulation=data.get("simulation"),
            )
        except KeyError as missing:
            raise PlanError(
                "tuning", dict(data), f"a stored tuning cost with the key {missing}"
            ) from None


def _json_ready(value: Any) -> Any:
    if hasattr(value, "to_dict"):  # a plan, a spec, a row of this module
        return value.to_dict()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple):
        return [_json_ready(item) for item in value]
    return value


def _fields_dict(value: Any, *, unless_none: tuple[tuple[str, ...], ...] = ()) -> dict[str, Any]:
    """The dataclass ``value``'s fields, in order, as JSON-ready values (nested values by
    their ``to_dict``, mappings as dicts, tuples as lists).

    Each group of ``unless_none`` is left out when its first field is None.
    """
    data = {f.name: _json_ready(getattr(value, f.name)) for f in dataclasses.fields(value)}
    for group in unless_none:
        if data[group[0]] is None:
            for name in group:
                del data[name]
    return data


def _optional_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TrialCounts:
    """Trials of a sweep: ``planned`` (if every selection finds a winner), ``finished``,
    ``failed``, and ``diverged`` (finished with no accuracy, never selected)."""

    planned: int
    finished: int
    failed: int
    diverged: int

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TrialFailure:
    """A failed trial: its key, its stored run (None if none) and its error text."""

    key: str
    run_id: int | None
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "run_id": self.run_id, "error": self.error}


def unstored_note(count: int) -> str | None:
    """The sentence that says a sweep's ε counts its unstored attempts, or None without any."""
    if not count:
        return None
    return (
        f"{count} trial attempt{'s' if count != 1 else ''} may have trained and stored no run "
        "(cut off by a stopped or killed driver, failed, or in flight): each is counted whole "
        "in the runs tried and in ε of all runs."
    )


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class FrontierResult:
    """A sweep's frontier and tuning cost, computed from the store (running sweeps too).

    Attributes:
        sweep_id: the sweep.
        status: ``running``, ``finished``, ``failed``, ...
        spec: the sweep's spec.
        runs_tried: training runs of the sweep on the data: its stored runs and
            ``unstored_attempts``.
        trials: trial counts.
        points: one per target ε whose selection finished (best validation accuracy over
            every B, E and schedule).
        curves: schedule kind -> its points (the same selection within the schedule).
        plans: every solved plan with its ε.
        tuning: the privacy cost of the tuning.
        failures: the failed trials.
        simulation: for a sweep predicted by simulation (``SweepSpec.simulate``), how its
            points are marked (:func:`dpplan.simulate.marking`: K, the data, the label, the
            measured error at K); else None. ``to_dict`` marks every point with it.
        unstored_attempts: trial attempts that may have trained on the data and stored no
            run (cut off by a stopped or killed driver, failed, or in flight now); the tuning
            cost counts each as its whole plan.
    """

    sweep_id: int
    status: str
    spec: SweepSpec
    runs_tried: int
    trials: TrialCounts
    points: tuple[FrontierPoint, ...]
    curves: Mapping[str, tuple[FrontierPoint, ...]]
    plans: tuple[SolvedPlan, ...]
    tuning: TuningCost
    failures: tuple[TrialFailure, ...]
    simulation: Mapping[str, Any] | None = None
    unstored_attempts: int = 0

    def best_at(self, epsilon_at_most: float) -> FrontierPoint | None:
        """The frontier point with the best validation accuracy among ε ≤ x
        (:func:`dpplan.selection.best_at`); report its test accuracy. For a task that is not
        a classification (a regression), the lowest validation loss; report its test loss."""
        if self.points and not self.points[0].classification:
            return best_at(self.points, epsilon_at_most=epsilon_at_most, by="validation_loss")
        return best_at(self.points, epsilon_at_most=epsilon_at_most)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready dict ``dpplan sweep --json`` / ``dpplan frontier --json`` print."""
        mark = (
            {}
            if self.simulation is None
            else {
                "predicted_by_simulation": self.simulation["predicted_by_simulation"],
                "simulation_data": self.simulation["simulation_data"],
                "label": self.simulation["label"],
            }
        )
        return {
            "sweep_id": self.sweep_id,
            "status": self.status,
            "task": self.spec.task,
            "spec": self.spec.to_dict(),
            "simulation": None if self.simulation is None else dict(self.simulation),
            "runs_tried": self.runs_tried,
            "unstored_attempts": self.unstored_attempts,
            "trials": self.trials.to_dict(),
            "points": [{**point.to_dict(), **mark} for point in self.points],
            "curves": {
                kind: [{**point.to_dict(), **mark} for point in curve]
                for kind, curve in self.curves.items()
            },
            "plans": [row.to_dict() for row in self.plans],
            "tuning": self.tuning.to_dict(),
            "failures": [failure.to_dict() for failure in self.failures],
        }
