"""What a sweep is asked to do: :class:`SweepSpec`, a frozen, validated value.

A sweep maps the ε-versus-accuracy frontier: for every target ε, every batch size and every
number of epochs of its grid, the noise multiplier is solved (PRV by default, never above
the target), and every schedule is tuned over its learning-rate grid on that plan. The
spec holds the grids, the run options shared by every trial (model, data, engine, ...) and
the seeds; it is validated once, when it is built, like :class:`~dpplan.plan.TrainingPlan`
(NaN, bools, duplicates and out-of-range values are refused with the field named), and its
size is bounded (:data:`MAX_TRIALS`) before anything is solved or trained.

This module imports neither torch nor ray.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from dpplan import _validate
from dpplan.accounting.base import METHODS
from dpplan.errors import PlanError
from dpplan.train.specs import (  # the default grids are defined with the schedules
    DEFAULT_CONSTANT_LRS,
    DEFAULT_ONE_CYCLE_LRS,
    DEFAULT_PLATEAU_LRS,
    MAX_LR,
    SCHEDULES,
    RunOptions,
    training_set_size,
)

__all__ = [
    "DEFAULT_CONSTANT_LRS",
    "DEFAULT_ONE_CYCLE_LRS",
    "DEFAULT_PLATEAU_LRS",
    "MAX_GRID_VALUES",
    "MAX_TRIALS",
    "SweepSpec",
    "task_of",
]

#: Most values in one grid (target ε, batch sizes, epochs, learning rates of a schedule, seeds).
MAX_GRID_VALUES = 32
#: Most trials a sweep may run (its grids multiplied out, with the seed repeats). A larger
#: sweep is refused before anything is solved: it is almost surely a typo, and every trial
#: also costs privacy (see the tuning cost).
MAX_TRIALS = 2000
#: Largest target ε accepted (the solvers' own limit).
_MAX_TARGET_EPSILON = 100.0
#: Largest mean number of trials of the repeat-and-select protocol.
_MAX_RANDOM_REPEATS = 1000.0


_LR_FIELDS = {"one_cycle": "one_cycle_lrs", "plateau": "plateau_lrs", "constant": "constant_lrs"}


def _sequence(name: str, value: object) -> tuple[object, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise PlanError(name, value, "a list of values")
    if not 1 <= len(value) <= MAX_GRID_VALUES:
        raise PlanError(
            name, value, f"a list of 1 to {MAX_GRID_VALUES} values", "Split very large sweeps."
        )
    return tuple(value)


def _distinct(name: str, values: tuple[Any, ...]) -> tuple[Any, ...]:
    if len(set(values)) != len(values):
        raise PlanError(name, values, "distinct values", "Remove the repeated value.")
    return values


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class SweepSpec:
    """A frontier sweep: target ε × batch size × epochs × schedule × learning rate × seed.

    Attributes:
        target_epsilons: the ε targets, each in (0, 100], distinct; stored ascending.
        delta: δ of every plan, in (0, 1).
        batch_sizes: expected batch sizes B, distinct, each in [1, dataset_size].
        epochs: numbers of epochs E, distinct, each in [1, 10000].
        schedules: schedule kinds to tune, distinct, from ``"one_cycle"``, ``"plateau"``,
            ``"constant"``.
        one_cycle_lrs: peak learning rates tried for ``one_cycle`` (if it is a schedule);
            default :data:`DEFAULT_ONE_CYCLE_LRS` (measured, see there).
        plateau_lrs: starting learning rates tried for ``plateau``; default
            :data:`DEFAULT_PLATEAU_LRS`.
        constant_lrs: learning rates tried for ``constant``.
        seeds: model-initialisation seeds, distinct, >= 0. The first selects each learning
            rate (on validation accuracy); the selected configuration is repeated with the
            others, and test accuracy is reported as mean ± sample std over all of them.
        options: run options shared by every trial (model, activation, device, data folder,
            subset sizes, engine, ...). ``options.seed`` is replaced by each trial's seed;
            the options must be private and have no ``target_epsilon`` of their own.
        method: accounting method the noise multiplier is solved with (default ``"prv"``).
        max_grad_norm: clipping norm C of every plan (does not change ε).
        task: ``"module:function"`` returning the :class:`~dpplan.train.Task` every trial
            trains (``None``: MNIST with ``options.model``). It is imported when the spec
            is built, so a bad one is refused before anything is stored; every plan's
            ``dataset_size`` is the task's training set size, and each trial imports it
            again (a Ray worker too: its module must be importable there, on ``PYTHONPATH``).
        random_repeats: ``None`` for the grid protocol (every configuration tried, ε of all
            runs composed); else the mean μ of the Poisson number of trials of Papernot &
            Steinke's repeat-and-select protocol, each trial a configuration drawn
            uniformly from the grid at its ε.
        simulate: ``None`` (train every plan), or K >= 2: predict the frontier by
            simulation (:mod:`dpplan.simulate`): every trial of a solved plan (σ, B, S
            steps) trains round(B/K) with σ/K for exactly S steps; the points are marked
            ``predicted_by_simulation``. Grid protocol only.
        simulate_data: ``"training"`` (default: the trials' own, large ε count against the
            training data) or ``"validation"`` (the trials train on the validation split,
            treated as public, and select on its other half).
        plateau_every: ``None`` (default: every plateau trial steps its schedule once per
            epoch), or N >= 1: every plateau trial steps it on the validation loss every N
            optimizer steps (:class:`~dpplan.train.Plateau`'s ``evaluate_every``; patience
            counts these evaluations), so a plateau can act within a run of one or two
            epochs. Needs ``"plateau"`` among the schedules.

    Raises:
        PlanError: naming the field, for a value out of range, NaN, a bool, an empty or
            too long grid, repeated values, a missing learning-rate grid for a chosen
            schedule, non-private or target-ε options, a batch size above the training set
            size, or a sweep of more than :data:`MAX_TRIALS` trials.

    Example:
        >>> spec = SweepSpec(target_epsilons=(3, 1), delta=1e-5, batch_sizes=(256,),
        ...                  epochs=(1,), schedules=("one_cycle",), one_cycle_lrs=(0.5, 2),
        ...                  seeds=(0, 1), options=RunOptions(subset=2000))
        >>> spec.target_epsilons, spec.trial_count
        ((1.0, 3.0), 6)
        >>> SweepSpec.from_dict(spec.to_dict()) == spec
        True
    """

    target_epsilons: tuple[float, ...]
    delta: float
    batch_sizes: tuple[int, ...]
    epochs: tuple[int, ...]
    schedules: tuple[str, ...] = ("one_cycle", "plateau")
    one_cycle_lrs: tuple[float, ...] = DEFAULT_ONE_CYCLE_LRS
    plateau_lrs: tuple[float, ...] = DEFAULT_PLATEAU_LRS
    constant_lrs: tuple[float, ...] = DEFAULT_CONSTANT_LRS
    seeds: tuple[int, ...] = (0, 1, 2)
    options: RunOptions = dataclasses.field(default_factory=RunOptions)
    method: str = "prv"
    max_grad_norm: float = 1.0
    random_repeats: float | None = None
    task: str | None = None
    simulate: int | None = None
    simulate_data: str = "training"
    plateau_every: int | None = None

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)
        if not isinstance(self.options, RunOptions):
            raise PlanError("options", self.options, "a dpplan.train.RunOptions")
        if not self.options.private:
            raise PlanError(
                "options", "private=False", "private options", "A sweep maps ε; it trains DP-SGD."
            )
        if self.options.reproducible:
            raise PlanError(
                "reproducible",
                True,
                "False for a sweep",
                "A sweep states ε for its tuning; noise derived from a public seed has no "
                "guarantee, and the random protocol needs independent trials.",
            )
        if self.options.target_epsilon is not None:
            raise PlanError(
                "target_epsilon",
                self.options.target_epsilon,
                "None in the sweep's run options",
                "Each plan is solved for its target ε; give the targets as target_epsilons.",
            )
        targets = tuple(
            _validate.finite_positive(maximum=_MAX_TARGET_EPSILON, target_epsilon=v)
            for v in _sequence("target_epsilons", self.target_epsilons)
        )
        set_("target_epsilons", tuple(sorted(_distinct("target_epsilons", targets))))
        set_("delta", _validate.open_interval(low=0.0, high=1.0, delta=self.delta))
        if self.task is not None:
            if not isinstance(self.task, str):
                raise PlanError("task", self.task, "'module:function' (a str)")
            set_("task", self.task.strip())
        size = self.dataset_size
        hint = (
            f"The training set has {size} examples (options.subset)."
            if self.task is None
            else f"The task {self.task!r} has {size} training examples."
        )
        set_(
            "batch_sizes",
            _distinct(
                "batch_sizes",
                tuple(
                    _validate.integer(
                        minimum=1,
                        maximum=size,
                        hint=hint,
                        batch_size=v,
                    )
                    for v in _sequence("batch_sizes", self.batch_sizes)
                ),
            ),
        )
        set_(
            "epochs",
            _distinct(
                "epochs",
                tuple(
                    _validate.integer(minimum=1, maximum=10_000, epochs=v)
                    for v in _sequence("epochs", self.epochs)
                ),
            ),
        )
        kinds = _sequence("schedules", self.schedules)
        for kind in kinds:
            _validate.choice(options=SCHEDULES, schedule=kind)
        set_("schedules", _distinct("schedules", kinds))
        for kind, field in _LR_FIELDS.items():
            value = getattr(self, field)
            if kind not in self.schedules and isinstance(value, (tuple, list)) and not value:
                set_(field, ())
                continue
            rates = tuple(
                _validate.finite_positive(
                    maximum=MAX_LR, hint="Learning rates above 100 are a likely typo.", lr=v
                )
                for v in _sequence(field, value)
            )
            set_(field, _distinct(field, rates))
        seeds = tuple(
            _validate.integer(minimum=0, maximum=2**63 - 1, seed=v)
            for v in _sequence("seeds", self.seeds)
        )
        set_("seeds", _distinct("seeds", seeds))
        _validate.choice(options=METHODS, method=self.method)
        set_("max_grad_norm", _validate.finite_positive(max_grad_norm=self.max_grad_norm))
        if self.random_repeats is not None:
            set_(
                "random_repeats",
                _validate.closed_interval(
                    low=1.0,
                    high=_MAX_RANDOM_REPEATS,
                    hint="The mean number of trials of the repeat-and-select protocol "
                    "(dp-accounting's RepeatAndSelectDpEvent needs a mean of at least 1).",
                    random_repeats=self.random_repeats,
                ),
            )
        self._check_simulation()
        if self.plateau_every is not None:
            set_(
                "plateau_every",
                _validate.integer(
                    minimum=1,
                    hint="Optimizer steps between a plateau's evaluations, e.g. 20; None "
                    "steps it once per epoch.",
                    plateau_every=self.plateau_every,
                ),
            )
            if "plateau" not in self.schedules:
                raise PlanError(
                    "plateau_every",
                    self.plateau_every,
                    "None unless 'plateau' is among the schedules",
                    "Add plateau to the schedules, or drop plateau_every.",
                )
        count = self.trial_count
        if count > MAX_TRIALS:
            raise PlanError(
                "trials",
                count,
                f"at most {MAX_TRIALS} trials (the grids multiplied out, with seed repeats)",
                "Shrink a grid, or split the sweep; every trial also costs privacy.",
            )

    @property
    def dataset_size(self) -> int:
        """The training set size every plan samples from: the task's, or MNIST's.

        Raises:
            PlanError: field ``task``, for a task that cannot be imported or built.
        """
        if self.task is None:
            return training_set_size(self.options)
        return task_of(self.task).dataset_size

    def _check_simulation(self) -> None:
        from dpplan.simulate import SIMULATION_DATA, check_batch_size

        _validate.choice(options=SIMULATION_DATA, simulate_data=self.simulate_data)
        if self.simulate is None:
            if self.simulate_data != "training":
                raise PlanError("simulate_data", self.simulate_data, "'training' without simulate")
            return
        if isinstance(self.simulate, bool) or self.simulate == 1:
            raise PlanError(
                "simulate", self.simulate, "an integer K >= 2, or None", "Omit it to train."
            )
        for batch in self.batch_sizes:
            check_batch_size(batch, self.simulate)
        object.__setattr__(self, "simulate", int(self.simulate))
        if self.task is not None:
            raise PlanError(
                "simulate",
                self.simulate,
                "None with a task",
                "Simulation is calibrated on MNIST only; sweep a task without --simulate.",
            )
        if self.random_repeats is not None:
            raise PlanError(
                "simulate",
                self.simulate,
                "None with random_repeats",
                "Simulated sweeps use the grid protocol (their trials are predictions).",
            )

    def learning_rates(self, kind: str) -> tuple[float, ...]:
        """Return the learning-rate grid of schedule ``kind``."""
        return getattr(self, _LR_FIELDS[kind])

    @property
    def configurations_per_target(self) -> int:
        """Configurations (B, E, schedule, learning rate) tried at one target ε."""
        rates = sum(len(self.learning_rates(kind)) for kind in self.schedules)
        return len(self.batch_sizes) * len(self.epochs) * rates

    @property
    def trial_count(self) -> int:
        """Trials of the grid protocol, or the expected trials of the random protocol."""
        repeats = len(self.seeds) - 1
        if self.random_repeats is not None:
            return len(self.target_epsilons) * (round(self.random_repeats) + repeats)
        groups = len(self.batch_sizes) * len(self.epochs) * len(self.schedules)
        return len(self.target_epsilons) * (self.configurations_per_target + groups * repeats)

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as a JSON-ready dict (``options`` as ``RunOptions.to_dict()``;
        ``plateau_every`` only when set, so a default spec is stored as before it existed)."""
        data = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if field.name != "options"
            and not (field.name == "plateau_every" and self.plateau_every is None)
        }
        data = {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
        data["options"] = self.options.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepSpec:
        """Build a spec from :meth:`to_dict` output.

        Raises:
            PlanError: for unknown keys, a missing required key or invalid values.
        """
        if not isinstance(data, Mapping):
            raise PlanError("spec", data, "a mapping of sweep fields")
        fields = {field.name: field for field in dataclasses.fields(cls)}
        for key, value in data.items():
            if key not in fields:
                raise PlanError(key, value, "not present: it is not a sweep field")
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key == "options":
                value = RunOptions.from_dict(dict(value))
            elif isinstance(value, list):
                value = tuple(value)
            values[key] = value
        for name, field in fields.items():
            required = (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            )
            if required and name not in values:
                raise PlanError(name, None, "given", "The field is required.")
        return cls(**values)


def task_of(spec: str) -> Any:
    """Return the :class:`~dpplan.train.Task` of ``"module:function"`` (imports torch).

    Raises:
        PlanError: field ``task``, naming the spec (see :func:`dpplan.train.load_task`).
    """
    from dpplan.train.tasks import load_task

    return load_task(spec)
