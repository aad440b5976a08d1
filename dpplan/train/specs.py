"""What a training run is asked to do, as typed, torch-free values.

Every layer (trainer, run store, reports, app, CLI) holds these specs, never dicts:

* schedule specs, :class:`OneCycle`, :class:`Plateau` and :class:`Constant`, frozen and
  validated at construction, with one set of defaults used everywhere;
* :class:`RunOptions`, the settings of a run that do not change ε (model, device, seeds,
  data folder, engine, ...), and :func:`training_set_size`, the plan's ``dataset_size``
  for those options.

This module imports neither torch nor opacus (tested), so the store, the report, the app
and the CLI can use it on any machine.

Schedules:

* :class:`OneCycle`: Smith's one-cycle policy (super-convergence), the learning rate rising
  from ``max_lr / div_factor`` to ``max_lr`` and annealing to
  ``max_lr / (div_factor * final_div_factor)``, with momentum cycling the opposite way
  between ``max_momentum`` and ``base_momentum``. Stepped after every optimizer step.
* :class:`Plateau`: the conventional baseline of the super-convergence study, multiplying
  the learning rate by ``factor`` (0.1) when the validation loss has not improved for
  ``patience + 1`` (2) epochs. Stepped after every epoch.
* :class:`Constant`: a fixed learning rate.

The learning rate does not affect ε (it is applied after the Gaussian mechanism), which is
why schedules are kept out of ``TrainingPlan``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeAlias

from dpplan import _validate
from dpplan.accounting.base import METHODS
from dpplan.errors import PlanError

__all__ = [
    "ACTIVATIONS",
    "DATA_DIR_ENV",
    "DEFAULT_THREADS",
    "DEVICES",
    "ENGINES",
    "MAX_LR",
    "MNIST_TEST_SIZE",
    "MNIST_TRAIN_SIZE",
    "MODELS",
    "SCHEDULES",
    "Constant",
    "OneCycle",
    "Plateau",
    "RunOptions",
    "ScheduleSpec",
    "grid_for",
    "schedule_from_dict",
    "training_set_size",
]

MNIST_TRAIN_SIZE = 60_000
MNIST_TEST_SIZE = 10_000
#: Environment variable naming the MNIST folder.
DATA_DIR_ENV = "DPPLAN_DATA_DIR"
#: Models of :mod:`dpplan.train.models`.
MODELS: tuple[str, ...] = ("seed", "tempered")
#: Hidden-layer activations accepted by the tempered CNN.
ACTIVATIONS: tuple[str, ...] = ("tanh", "relu")
DEVICES = ("auto", "cpu", "cuda")
#: Step engines of :mod:`dpplan.train.engines` (the first is the default).
ENGINES = ("fused", "opacus")
#: CPU threads a run uses by default (``torch.set_num_threads``). Measured in BENCHMARKS.md
#: ("CPU threads"): on a shared 2-core machine one thread was fastest, and torch's default
#: (one per core) made an epoch up to 10x slower once other processes competed for the cores.
#: A sweep runs one thread per trial.
DEFAULT_THREADS = 1
#: Largest ``threads`` accepted.
MAX_THREADS = 1024
#: Accounting methods (as :data:`dpplan.accounting.METHODS`, without importing it).

SCHEDULES: tuple[str, ...] = ("one_cycle", "plateau", "constant")
"""Schedule kinds, as spelled in ``to_dict()["kind"]``."""

MAX_LR = 100.0
"""Largest learning rate a spec accepts. The super-convergence study peaked at 15.62."""

#: Default learning-rate grids, from what the benchmarks measured on MNIST with the seed
#: network (BENCHMARKS.md "Accuracy evidence", full MNIST, 2026-12-03): one-cycle peaks 2
#: (1 epoch) and 1 (4 epochs) were selected; the per-epoch plateau started best at 1 and 2
#: (2026-11-23), while a plateau stepped every 25 steps selected 8, above this grid (pass
#: ``plateau_lrs`` to reach it). Notebook 02's 8,000-image subset selected smaller peaks
#: (0.1-0.5). The super-convergence study's peak 15.62 diverges in this set-up (notebook 02:
#: 11.4% after one epoch), so it is not a default; give it with ``one_cycle_lrs`` to try it.
DEFAULT_ONE_CYCLE_LRS = (0.5, 1.0, 2.0)
DEFAULT_PLATEAU_LRS = (0.5, 1.0, 2.0)
DEFAULT_CONSTANT_LRS = (0.1, 0.5)

_LR_HINT = f"Learning rates above {MAX_LR:g} are refused as a likely typo."


def _finite_in(
    *,
    low: float,
    high: float | None = None,
    high_open: bool = False,
    hint: str = "",
    **kwargs: object,
) -> float:
    """Return ``value`` as a float if it is finite and in ``[low, high]`` (or ``[low, high)``).

    The comparisons are written so that NaN fails them; bools and non-numbers are refused.

    Raises:
        PlanError: if the value is out of range, NaN, infinite, a bool or not a number.
    """
    ((name, value),) = kwargs.items()
    if high is None:
        expected = f"a finite number >= {low:g}"
    else:
        expected = f"a finite number in [{low:g}, {high:g}{')' if high_open else ']'}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise PlanError(name, value, expected, hint)
    result = float(value)
    in_range = math.isfinite(result) and result >= low
    if high is not None:
        in_range = in_range and (result < high if high_open else result <= high)
    if not in_range:
        raise PlanError(name, value, expected, hint)
    return result


def _learning_rate(**kwargs: object) -> float:
    """A learning rate (``lr=`` or ``max_lr=``): finite, in (0, MAX_LR]."""
    return _validate.finite_positive(maximum=MAX_LR, hint=_LR_HINT, **kwargs)


def _momentum(**kwargs: object) -> float:
    return _finite_in(low=0.0, high=1.0, high_open=True, **kwargs)


def _flag(**kwargs: object) -> bool:
    ((name, value),) = kwargs.items()
    if not isinstance(value, bool):
        raise PlanError(name, value, "True or False")
    return value


def _store(spec: object, **values: object) -> None:
    """Write normalised field values into a frozen, slotted dataclass."""
    for name, value in values.items():
        object.__setattr__(spec, name, value)


class _Spec:
    """What every schedule spec has: its ``kind`` and its mapping (subclasses are frozen,
    slotted dataclasses)."""

    __slots__ = ()
    kind: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as a JSON-ready mapping, with ``"kind"`` first.

        Example:
            >>> OneCycle(max_lr=1.0).to_dict()["kind"]
            'one_cycle'
        """
        data: dict[str, Any] = {"kind": self.kind}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            data[field.name] = getattr(self, field.name)
        return data


class _SteadySpec(_Spec):
    """A spec that starts at its ``lr`` and ``momentum`` (plateau and constant)."""

    __slots__ = ()
    lr: float
    momentum: float

    @property
    def initial_lr(self) -> float:
        """The learning rate of the first epoch, ``lr``."""
        return self.lr

    @property
    def initial_momentum(self) -> float:
        """The SGD momentum, ``momentum``."""
        return self.momentum


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class OneCycle(_Spec):
    """Smith's one-cycle learning-rate policy, stepped after every optimizer step.

    Wraps ``torch.optim.lr_scheduler.OneCycleLR`` (cosine annealing, two phases). The
    learning rate starts at ``max_lr / div_factor``, reaches ``max_lr`` at step index
    ``pct_start * total_steps - 1`` and anneals to ``max_lr / (div_factor *
    final_div_factor)`` at the last step. With ``cycle_momentum`` the SGD momentum moves the
    other way: ``max_momentum`` → ``base_momentum`` at the peak → ``max_momentum``, as in
    Smith (2018), "A disciplined approach to neural network hyper-parameters".

    Attributes:
        max_lr: peak learning rate, finite, in (0, 100].
        momentum: SGD momentum in [0, 1), used only when ``cycle_momentum`` is False.
        pct_start: fraction of the steps spent rising, in (0, 1).
        div_factor: ``max_lr / initial learning rate``, finite, >= 1.
        final_div_factor: ``initial learning rate / final learning rate``, finite, >= 1.
        cycle_momentum: whether momentum cycles inversely to the learning rate.
        base_momentum: momentum at the peak learning rate, in [0, 1).
        max_momentum: momentum at the start and the end, in [base_momentum, 1).

    Raises:
        PlanError: naming the field, if any attribute is out of range, NaN, infinite, of
            the wrong type (a bool where a number is expected), or if
            ``base_momentum > max_momentum``.

    Example:
        >>> OneCycle(max_lr=15.62).initial_lr
        0.6248
    """

    kind: ClassVar[str] = "one_cycle"

    max_lr: float
    momentum: float = 0.9
    pct_start: float = 0.25
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    cycle_momentum: bool = True
    base_momentum: float = 0.85
    max_momentum: float = 0.95

    def __post_init__(self) -> None:
        _store(
            self,
            max_lr=_learning_rate(max_lr=self.max_lr),
            momentum=_momentum(momentum=self.momentum),
            pct_start=_validate.open_interval(low=0.0, high=1.0, pct_start=self.pct_start),
            div_factor=_finite_in(low=1.0, div_factor=self.div_factor),
            final_div_factor=_finite_in(low=1.0, final_div_factor=self.final_div_factor),
            cycle_momentum=_flag(cycle_momentum=self.cycle_momentum),
            base_momentum=_momentum(base_momentum=self.base_momentum),
            max_momentum=_momentum(max_momentum=self.max_momentum),
        )
        if not (self.base_momentum <= self.max_momentum):
            raise PlanError(
                "base_momentum",
                self.base_momentum,
                f"<= max_momentum={self.max_momentum!r}",
                "Momentum cycles between max_momentum (at low learning rates) and "
                "base_momentum (at the peak learning rate).",
            )

    @property
    def initial_lr(self) -> float:
        """The learning rate of the first step, ``max_lr / div_factor``."""
        return self.max_lr / self.div_factor

    @property
    def initial_momentum(self) -> float:
        """The SGD momentum of the first step."""
        return self.max_momentum if self.cycle_momentum else self.momentum


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Plateau(_SteadySpec):
    """Reduce the learning rate when the validation loss stops improving.

    Wraps ``torch.optim.lr_scheduler.ReduceLROnPlateau(mode="min")`` with torch's default
    relative threshold (1e-4), stepped after every epoch with that epoch's validation
    loss. The learning rate is multiplied by ``factor`` once ``patience + 1`` epochs in a
    row fail to improve on the best loss so far, and never goes below ``min_lr``.

    With ``evaluate_every = N`` the scheduler is instead stepped every ``N`` optimizer
    steps on the validation loss measured then (the validation split only, public data:
    ε is unchanged), and ``patience`` counts those evaluations, so the schedule can act
    within a run of one or a few epochs. The per-epoch records are unchanged.

    Attributes:
        lr: starting learning rate, finite, in (0, 100].
        momentum: SGD momentum in [0, 1).
        factor: multiplier applied on a plateau, in (0, 1).
        patience: number of non-improving epochs (or evaluations, with
            ``evaluate_every``) tolerated, an integer >= 0.
        min_lr: floor of the learning rate, finite, in [0, lr].
        evaluate_every: None (the default: step the scheduler once per epoch) or an
            integer >= 1, the number of optimizer steps between validation evaluations
            that step the scheduler.

    Raises:
        PlanError: naming the field, if any attribute is out of range, NaN, infinite or of
            the wrong type (a bool or a non-integral float for ``patience`` or
            ``evaluate_every``).

    Example:
        >>> Plateau(lr=0.05, factor=0.1).initial_lr
        0.05
        >>> Plateau(lr=0.05, evaluate_every=20).evaluate_every
        20
    """

    kind: ClassVar[str] = "plateau"

    lr: float
    momentum: float = 0.0
    factor: float = 0.1
    patience: int = 1
    min_lr: float = 1e-5
    evaluate_every: int | None = None

    def __post_init__(self) -> None:
        lr = _learning_rate(lr=self.lr)
        _store(
            self,
            lr=lr,
            momentum=_momentum(momentum=self.momentum),
            factor=_validate.open_interval(low=0.0, high=1.0, factor=self.factor),
            patience=_validate.integer(minimum=0, patience=self.patience),
            min_lr=_finite_in(
                low=0.0, high=lr, hint="min_lr is a floor below lr.", min_lr=self.min_lr
            ),
            evaluate_every=None
            if self.evaluate_every is None
            else _validate.integer(
                minimum=1,
                hint="Optimizer steps between validation evaluations; None: once per epoch.",
                evaluate_every=self.evaluate_every,
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as a JSON-ready mapping, with ``"kind"`` first.

        ``evaluate_every`` is left out when it is None (once per epoch), so a default
        plateau's mapping, and the runs stored with it, are as before the field existed.

        Example:
            >>> Plateau(lr=0.05).to_dict()["patience"]
            1
            >>> "evaluate_every" in Plateau(lr=0.05).to_dict()
            False
        """
        data = _Spec.to_dict(self)
        if self.evaluate_every is None:
            del data["evaluate_every"]
        return data


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Constant(_SteadySpec):
    """A fixed learning rate.

    Attributes:
        lr: the learning rate, finite, in (0, 100].
        momentum: SGD momentum in [0, 1).

    Raises:
        PlanError: naming the field, if either attribute is out of range, NaN, infinite or
            a bool.

    Example:
        >>> Constant(lr=0.1).to_dict()
        {'kind': 'constant', 'lr': 0.1, 'momentum': 0.0}
    """

    kind: ClassVar[str] = "constant"

    lr: float
    momentum: float = 0.0

    def __post_init__(self) -> None:
        _store(self, lr=_learning_rate(lr=self.lr), momentum=_momentum(momentum=self.momentum))


ScheduleSpec: TypeAlias = OneCycle | Plateau | Constant
"""Any schedule spec."""

_SPEC_CLASSES: dict[str, type[ScheduleSpec]] = {
    cls.kind: cls for cls in (OneCycle, Plateau, Constant)
}


def grid_for(kind: str, learning_rates: Sequence[float]) -> tuple[ScheduleSpec, ...]:
    """Return the specs of schedule ``kind`` for each learning rate (dpplan's defaults).

    Raises:
        PlanError: for an unknown kind or an invalid learning rate.

    Example:
        >>> grid_for("plateau", [0.1, 0.5])[1].lr
        0.5
    """
    if kind not in _SPEC_CLASSES:
        raise PlanError("schedule", kind, "one of " + ", ".join(map(repr, SCHEDULES)))
    if kind == "one_cycle":
        return tuple(OneCycle(max_lr=lr) for lr in learning_rates)
    return tuple(_SPEC_CLASSES[kind](lr=lr) for lr in learning_rates)


def schedule_from_dict(data: Mapping[str, object]) -> ScheduleSpec:
    """Rebuild a spec from its :meth:`to_dict` form.

    Args:
        data: a mapping with a ``"kind"`` key (one of :data:`SCHEDULES`) and the spec's
            fields; fields with defaults may be left out.

    Returns:
        The spec, validated as at construction.

    Raises:
        PlanError: if ``data`` is not a mapping (field ``schedule``), if ``kind`` is
            missing or unknown (field ``kind``), if a key is not a field of that kind or a
            required field is missing (field named by the key), or if a value is invalid.

    Example:
        >>> schedule_from_dict({"kind": "plateau", "lr": 0.05, "factor": 0.1})
        Plateau(lr=0.05, momentum=0.0, factor=0.1, patience=1, min_lr=1e-05, evaluate_every=None)
    """
    if not isinstance(data, Mapping):
        raise PlanError("schedule", data, "a mapping with a 'kind' key")
    expected_kinds = "one of " + ", ".join(repr(kind) for kind in SCHEDULES)
    if "kind" not in data:
        raise PlanError("kind", None, expected_kinds, "The schedule mapping has no 'kind' key.")
    kind = data["kind"]
    if not isinstance(kind, str) or kind not in _SPEC_CLASSES:
        raise PlanError("kind", kind, expected_kinds)
    cls = _SPEC_CLASSES[kind]
    fields = {field.name: field for field in dataclasses.fields(cls)}
    for key, value in data.items():
        if key != "kind" and key not in fields:
            raise PlanError(
                str(key),
                value,
                f"a field of {cls.__name__} (one of {', '.join(fields)})",
                "Remove the key or check its spelling.",
            )
    for name, field in fields.items():
        has_default = field.default is not dataclasses.MISSING
        if name not in data and not has_default:
            raise PlanError(name, None, f"given for kind {kind!r}", "The key is required.")
    return cls(**{key: value for key, value in data.items() if key != "kind"})


def check_spec(spec: object) -> ScheduleSpec:
    if not isinstance(spec, (OneCycle, Plateau, Constant)):
        raise PlanError("schedule", spec, "a OneCycle, Plateau or Constant spec")
    return spec


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RunOptions:
    """How to train a plan: settings that do not change ε (STYLE §3.2).

    Attributes:
        model: ``"seed"`` (the super-convergence study's network) or ``"tempered"``
            (Papernot et al.'s CNN).
        activation: ``"relu"`` or ``"tanh"`` (tempered model only).
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``.
        seed: seed of the model initialisation and of dropout. The Poisson sampling and the
            DP noise are drawn from generators seeded with fresh OS entropy (``secrets``),
            never from this public seed: the guarantee needs the noise to be secret.
        split_seed: seed of the validation split. It is the same for every run by default,
            so one run's training examples are never another run's (unprotected) validation
            examples.
        reproducible: derive sampling and noise from ``seed`` too, so a run can be repeated
            bit for bit. For experiments only: anyone who knows the seed can recompute the
            noise, so such a run carries no privacy guarantee against them (the run records
            a warning).
        data_dir: folder with the MNIST IDX files (see :func:`dpplan.train.data.load_mnist`).
            Stored as an absolute path, so a run can be resumed from any working folder.
            ``None`` takes ``$DPPLAN_DATA_DIR`` (made absolute) when it is set, else means
            the per-user cache folder. A folder named here or in ``$DPPLAN_DATA_DIR`` must
            exist (a mistyped name is refused, never created); only the cache folder is
            created and downloaded into.
        download: whether missing MNIST files may be downloaded.
        validation_size: examples held out of the 60,000 MNIST training examples for
            plateau scheduling and learning-rate selection, chosen by ``split_seed``.
        subset: train on ``subset`` examples only: the first ``subset`` of the examples
            left after the validation split (which always splits all 60,000, so the
            validation examples do not depend on ``subset``); ``None`` uses all
            ``60,000 - validation_size``.
        test_subset: evaluate on the first ``test_subset`` test examples; ``None`` uses all.
        method: dpplan accounting method for the recorded ε.
        target_epsilon: stop before an epoch whose ε would exceed this; ``None`` never stops.
        private: ``False`` trains the non-private baseline (no clipping, no noise; ε = ∞).
        engine: how each DP-SGD step is computed (:mod:`dpplan.train.engines`):
            ``"fused"`` (per-example gradients with ``torch.func``, compiled on CUDA) or
            ``"opacus"`` (Opacus' hooks). Both perform the same mechanism; ε is the same.
        eval_batch_size: batch size for evaluation (no effect on results).
        threads: CPU threads torch uses for the run (``torch.set_num_threads``), an integer
            in [1, 1024]; default :data:`DEFAULT_THREADS`, measured fastest on a shared
            machine. It changes speed only, never ε, and may change when a run is resumed.
    """

    model: str = "seed"
    activation: str = "relu"
    device: str = "auto"
    seed: int = 0
    split_seed: int = 0
    reproducible: bool = False
    data_dir: str | None = None
    download: bool = True
    validation_size: int = 5000
    subset: int | None = None
    test_subset: int | None = None
    method: str = "prv"
    target_epsilon: float | None = None
    private: bool = True
    engine: str = "fused"
    eval_batch_size: int = 4096
    threads: int = DEFAULT_THREADS

    def __post_init__(self) -> None:
        _validate.choice(options=MODELS, hint="Pick a model.", model=self.model)
        _validate.choice(options=ACTIVATIONS, activation=self.activation)
        if self.model == "seed" and self.activation != "relu":
            raise PlanError(
                "activation",
                self.activation,
                "'relu' for model='seed'",
                "Use model='tempered' for tanh.",
            )
        _validate.choice(options=DEVICES, device=self.device)
        _validate.integer(minimum=0, maximum=2**63 - 1, seed=self.seed)
        _validate.integer(minimum=0, maximum=2**63 - 1, split_seed=self.split_seed)
        if not isinstance(self.reproducible, bool):
            raise PlanError("reproducible", self.reproducible, "True or False")
        _validate.integer(
            minimum=1,
            maximum=MNIST_TRAIN_SIZE - 1,
            validation_size=self.validation_size,
            hint="Keep some examples for training.",
        )
        if self.subset is not None:
            _validate.integer(
                minimum=1,
                maximum=MNIST_TRAIN_SIZE - self.validation_size,
                subset=self.subset,
                hint=f"validation_size={self.validation_size} examples are held "
                f"out of the {MNIST_TRAIN_SIZE:,} first.",
            )
        object.__setattr__(self, "data_dir", _absolute_data_dir(self.data_dir))
        if self.test_subset is not None:
            _validate.integer(minimum=1, maximum=MNIST_TEST_SIZE, test_subset=self.test_subset)
        _validate.choice(options=METHODS, method=self.method)
        if self.target_epsilon is not None:
            _validate.finite_positive(target_epsilon=self.target_epsilon)
        if not isinstance(self.private, bool):
            raise PlanError("private", self.private, "True or False")
        if not self.private and self.target_epsilon is not None:
            raise PlanError(
                "target_epsilon",
                self.target_epsilon,
                "None for a non-private run",
                "A non-private run has ε = ∞; drop target_epsilon or train privately.",
            )
        if not isinstance(self.download, bool):
            raise PlanError("download", self.download, "True or False")
        _validate.choice(
            options=ENGINES,
            hint="fused: torch.func (fast); opacus: Opacus' hooks.",
            engine=self.engine,
        )
        _validate.integer(minimum=1, eval_batch_size=self.eval_batch_size)
        threads = _validate.integer(
            minimum=1,
            maximum=MAX_THREADS,
            threads=self.threads,
            hint=f"One thread per run is fastest on a shared machine (default {DEFAULT_THREADS}).",
        )
        object.__setattr__(self, "threads", threads)

    def to_dict(self) -> dict[str, Any]:
        """Return the options as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunOptions:
        """Build options from :meth:`to_dict` output.

        Raises:
            PlanError: for unknown keys or invalid values.
        """
        known = {field.name for field in dataclasses.fields(cls)}
        for key, value in data.items():
            if key not in known:
                raise PlanError(key, value, "not present: it is not a run option")
        return cls(**data)


def training_set_size(options: RunOptions) -> int:
    """Return the number of training examples a run samples from (its plan's dataset_size).

    That is ``options.subset`` when set, else the 60,000 MNIST training examples less the
    ``validation_size`` held out.

    Example:
        >>> training_set_size(RunOptions())
        55000
        >>> training_set_size(RunOptions(subset=1000, validation_size=200))
        1000
    """
    if options.subset is not None:
        return options.subset
    return MNIST_TRAIN_SIZE - options.validation_size


def _absolute_data_dir(data_dir: object) -> str | None:
    """Return ``data_dir`` (or ``$DPPLAN_DATA_DIR``) as an absolute path; None for the cache.

    Raises:
        PlanError: ``data_dir`` is not None, a non-empty str or an os.PathLike.
    """
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV) or None
        if data_dir is None:
            return None
    if not isinstance(data_dir, (str, os.PathLike)) or isinstance(data_dir, bytes):
        raise PlanError("data_dir", data_dir, "a folder path (str or os.PathLike) or None")
    text = os.fspath(data_dir)
    if not text:
        raise PlanError(
            "data_dir",
            data_dir,
            "a non-empty folder path or None",
            f"Pass None to use {DATA_DIR_ENV} or the per-user cache folder.",
        )
    return os.path.abspath(os.path.expanduser(text))
