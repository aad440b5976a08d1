"""The one value type of dpplan: :class:`TrainingPlan`.

Invariants (every other module relies on them):

* ``sample_rate``, ``steps_per_epoch`` and ``total_steps`` are defined **only here**. The
  accountants compose exactly ``total_steps`` Poisson-subsampled Gaussian steps at
  ``sample_rate``, and the trainer runs exactly ``steps_per_epoch`` sampler steps per epoch
  at the same rate. ``steps_per_epoch`` rounds up, which errs towards more privacy loss.
* Every ε that dpplan reports for a plan is an upper bound.
* Settings that cannot change ε (device, seed, workers) are kept out of ``TrainingPlan``,
  so two plans with the same privacy settings compare equal and hash the same.
* A plan is validated when it is built and never changes; "what if" questions produce a
  new plan through :meth:`TrainingPlan.replace`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from dpplan import _validate
from dpplan.errors import PlanError

__all__ = [
    "MAX_DATASET_SIZE",
    "MAX_EPOCHS",
    "MAX_TOTAL_STEPS",
    "NOISE_MULTIPLIER_MAX",
    "NOISE_MULTIPLIER_MIN",
    "TrainingPlan",
]

#: Largest dataset accepted (records). Larger values are refused, not truncated.
MAX_DATASET_SIZE = 10**10
#: Largest number of epochs: the per-epoch ε curve holds one point per epoch.
MAX_EPOCHS = 10_000
#: Largest number of noisy steps. Keeps every accountant within seconds on a laptop; the
#: PRV and PLD grids grow with the number of composed steps.
MAX_TOTAL_STEPS = 1_000_000
#: Largest noise multiplier accepted. Beyond it ε is ~0 for any practical plan.
NOISE_MULTIPLIER_MAX = 1000.0
#: Smallest noise multiplier accepted. Below it a single Gaussian step already costs
#: ε in the hundreds for any sample rate (ε₀ ≈ √(2 ln(1.25/δ))/σ), and the accountants'
#: arithmetic leaves float range (σ = 1e-320 divides by zero).
NOISE_MULTIPLIER_MIN = 0.01

_DERIVED = ("sample_rate", "steps_per_epoch", "total_steps")


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TrainingPlan:
    """A DP-SGD training plan: what is sampled, how noisy each step is, for how long.

    Attributes:
        dataset_size: number of training records N the batches are sampled from, 1..10^10.
        batch_size: expected batch size B under Poisson sampling, in [1, dataset_size].
        noise_multiplier: noise standard deviation σ divided by the clipping norm,
            finite, in [0.01, 1000].
        epochs: number of epochs E, an integer in [1, 10000].
        delta: the δ of the (ε, δ) guarantee, in (0, 1). Choose δ well below 1/N.
        max_grad_norm: per-example clipping norm C > 0. It does not change ε; it is
            carried so the trainer and the report use the plan's value.

    Example:
        >>> plan = TrainingPlan(dataset_size=60000, batch_size=256, noise_multiplier=1.1,
        ...                     epochs=10, delta=1e-5)
        >>> plan.steps_per_epoch, plan.total_steps, round(plan.sample_rate, 6)
        (235, 2350, 0.004267)
    """

    dataset_size: int
    batch_size: int
    noise_multiplier: float
    epochs: int
    delta: float
    max_grad_norm: float = 1.0

    def __post_init__(self) -> None:
        dataset_size = _validate.integer(
            minimum=1,
            maximum=MAX_DATASET_SIZE,
            hint="Give the number of training records.",
            dataset_size=self.dataset_size,
        )
        batch_size = _validate.integer(
            minimum=1,
            hint="Give the expected batch size (records per step).",
            batch_size=self.batch_size,
        )
        if batch_size > dataset_size:
            raise PlanError(
                "batch_size",
                self.batch_size,
                f"in [1, dataset_size={dataset_size}]",
                "Lower batch_size or check dataset_size.",
            )
        noise_multiplier = _validate.closed_interval(
            low=NOISE_MULTIPLIER_MIN,
            high=NOISE_MULTIPLIER_MAX,
            hint="The noise multiplier is the noise std divided by max_grad_norm, e.g. 1.1; "
            "below 0.01 no plan has a meaningful ε.",
            noise_multiplier=self.noise_multiplier,
        )
        epochs = _validate.integer(
            minimum=1, maximum=MAX_EPOCHS, hint="Give a whole number of epochs.", epochs=self.epochs
        )
        delta = _validate.open_interval(
            low=0.0, high=1.0, hint="A common choice is delta < 1/dataset_size.", delta=self.delta
        )
        max_grad_norm = _validate.finite_positive(
            hint="The per-example clipping norm, e.g. 1.0.", max_grad_norm=self.max_grad_norm
        )
        total_steps = epochs * math.ceil(dataset_size / batch_size)
        if total_steps > MAX_TOTAL_STEPS:
            raise PlanError(
                "epochs",
                self.epochs,
                f"such that total_steps = epochs * steps_per_epoch <= {MAX_TOTAL_STEPS:,} "
                f"(here {epochs} * {math.ceil(dataset_size / batch_size)} = {total_steps:,})",
                "Raise batch_size or lower epochs; beyond this many steps the accountants "
                "cannot answer in bounded time.",
            )
        # Store normalised types (e.g. 256.0 -> 256) so equal plans hash the same.
        for name, value in (
            ("dataset_size", dataset_size),
            ("batch_size", batch_size),
            ("noise_multiplier", noise_multiplier),
            ("epochs", epochs),
            ("delta", delta),
            ("max_grad_norm", max_grad_norm),
        ):
            object.__setattr__(self, name, value)

    @property
    def sample_rate(self) -> float:
        """Poisson sample rate q = batch_size / dataset_size."""
        return self.batch_size / self.dataset_size

    @property
    def steps_per_epoch(self) -> int:
        """Noisy steps per epoch, ceil(dataset_size / batch_size)."""
        return -(-self.dataset_size // self.batch_size)

    @property
    def total_steps(self) -> int:
        """Noisy steps over the whole plan, epochs * steps_per_epoch."""
        return self.epochs * self.steps_per_epoch

    def steps_after(self, epoch: int) -> int:
        """Return the number of noisy steps taken after ``epoch`` full epochs."""
        return epoch * self.steps_per_epoch

    def replace(self, **changes: object) -> TrainingPlan:
        """Return a new, re-validated plan with ``changes`` applied.

        Raises:
            PlanError: if a change is not a plan field or makes the plan invalid.
        """
        fields = {f.name for f in dataclasses.fields(self)}
        for name, value in changes.items():
            if name not in fields:
                raise PlanError(
                    name,
                    value,
                    "not set: it is not a plan field",
                    f"Plan fields are {', '.join(sorted(fields))}.",
                )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, int | float]:
        """Return the plan's fields and its derived values as a JSON-ready dict."""
        data: dict[str, int | float] = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self)
        }
        data["sample_rate"] = self.sample_rate
        data["steps_per_epoch"] = self.steps_per_epoch
        data["total_steps"] = self.total_steps
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> TrainingPlan:
        """Build a plan from :meth:`to_dict` output (derived keys are checked, not trusted).

        Raises:
            PlanError: for unknown keys, missing fields, invalid values, or derived values
                that disagree with the fields.
        """
        if not isinstance(data, Mapping):
            raise PlanError("plan", data, "a mapping of plan fields")
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(fields) - set(_DERIVED))
        if unknown:
            raise PlanError(
                unknown[0],
                data[unknown[0]],
                "not present: it is not a plan field",
                f"Plan fields are {', '.join(fields)}.",
            )
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        for name in required:
            if name not in data:
                raise PlanError(name, None, "given", "The field is required.")
        plan = cls(**{name: data[name] for name in fields if name in data})
        for name in _DERIVED:
            if name in data:
                given, actual = data[name], getattr(plan, name)
                same = (
                    math.isclose(float(given), actual, rel_tol=1e-12)
                    if isinstance(given, (int, float)) and not isinstance(given, bool)
                    else False
                )
                if not same:
                    raise PlanError(
                        name,
                        given,
                        f"{actual!r}, the value derived from the fields",
                        "Drop derived keys or make them consistent.",
                    )
        return plan
