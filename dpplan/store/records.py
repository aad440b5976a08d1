"""The stored values: epoch records, run records and sweep records (frozen, typed).

Pure data: nothing here computes privacy. The one ε shown for a run or an epoch (the
smallest upper bound) is computed above the store, in :mod:`dpplan.run_policy`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any

from dpplan.plan import TrainingPlan

__all__ = [
    "STATUSES",
    "EpochRecord",
    "RunRecord",
    "SweepRecord",
    "SweepTrialRecord",
    "json_value",
    "plan_id",
]

#: Run statuses. ``interrupted`` is derived on read for runs whose process died. ``diverged``:
#: the loss or weights became non-finite (the epochs before are kept, ``stop_reason`` says
#: where); ``not_started``: the first epoch alone would exceed ``target_epsilon``, so nothing
#: was trained.
STATUSES = (
    "queued",
    "running",
    "finished",
    "failed",
    "stopped",
    "interrupted",
    "diverged",
    "not_started",
)


def json_value(value: Any) -> Any:
    """Return ``value`` ready for JSON: a non-finite float as ``"inf"``, ``"-inf"``, ``"nan"``."""
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
    return value


def plan_id(plan: TrainingPlan) -> str:
    """Return the stored id of a plan: a hash of its canonical JSON (16 hex digits)."""
    text = json.dumps(plan.to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class EpochRecord:
    """What one epoch of a run measured.

    Attributes:
        epoch: 1-based epoch number.
        steps: noisy steps taken so far (counted by the step engine's accountant).
        epsilon: dpplan's ε upper bound after these steps (``inf`` for non-private runs).
        epsilon_rdp: dpplan's RDP ε for the same steps (cross-checks Opacus).
        epsilon_opacus: ε from Opacus' own RDP accountant, counted by its step hook.
        train_loss: mean training loss over the epoch's batches.
        validation_loss: loss on the held-out validation split.
        validation_accuracy: accuracy on the validation split, in [0, 1].
        test_accuracy: accuracy on the test set, in [0, 1].
        lr: learning rate at the end of the epoch.
        seconds: wall time of the epoch's training steps.
        epsilons: every accounting method's ε after these steps (method -> upper bound;
            ``dpplan.accounting.epoch_epsilons``). Empty for runs recorded before dpplan
            recorded them: then only ``epsilon``, from the run's ``method``, is known.
    """

    epoch: int
    steps: int
    epsilon: float
    epsilon_rdp: float
    epsilon_opacus: float
    train_loss: float
    validation_loss: float
    validation_accuracy: float
    test_accuracy: float
    lr: float
    seconds: float
    epsilons: dict[str, float] = dataclasses.field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the record as a JSON-ready dict (infinite ε as the string ``"inf"``)."""
        data = {k: json_value(v) for k, v in dataclasses.asdict(self).items()}
        data["epsilons"] = {k: json_value(v) for k, v in self.epsilons.items()}
        return data


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RunRecord:
    """A stored run: what was planned, how it was trained, and what each epoch gave."""

    id: int
    plan: TrainingPlan
    status: str
    schedule: dict[str, Any] = dataclasses.field(hash=False)
    options: dict[str, Any] = dataclasses.field(hash=False)
    device: str
    seed: int
    private: bool
    versions: dict[str, str] = dataclasses.field(hash=False)
    group_id: str | None
    error: str | None
    stop_reason: str | None
    warnings: tuple[str, ...]
    created_at: float
    updated_at: float
    records: tuple[EpochRecord, ...]
    diverged_epoch: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the run as a JSON-ready dict (plan, status, per-epoch records, ...)."""
        data = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if field.name not in ("plan", "records")
        }
        data["warnings"] = list(self.warnings)
        data["plan"] = self.plan.to_dict()
        data["records"] = [record.to_dict() for record in self.records]
        return data

    @property
    def method(self) -> str:
        """The accounting method of each record's ``epsilon`` (the run's option)."""
        return str(self.options.get("method", "prv"))

    @property
    def epochs_spent(self) -> int:
        """Epochs whose steps touched the data: the recorded ones, and for a run that
        diverged, the epoch it diverged in too (not recorded, but its steps were taken)."""
        return max(len(self.records), self.diverged_epoch or 0)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class SweepTrialRecord:
    """A trial of a sweep with an outcome: ``finished`` (its run) or ``failed``."""

    key: str
    run_id: int | None
    status: str
    error: str | None


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class SweepRecord:
    """A stored sweep (see :mod:`dpplan.sweep`): its spec, solved plans, random draws,
    status (``running``, ``finished``, ``failed``, ``stopped`` or ``interrupted``), tuning
    cost and the trials with an outcome. Its runs are the runs of group :attr:`group_id`."""

    id: int
    spec: dict[str, Any] = dataclasses.field(hash=False)
    plans: list[dict[str, Any]] = dataclasses.field(hash=False)
    draws: dict[str, Any] | None = dataclasses.field(hash=False)
    status: str
    tuning: dict[str, Any] | None = dataclasses.field(hash=False)
    error: str | None
    created_at: float
    updated_at: float
    trials: tuple[SweepTrialRecord, ...]

    @property
    def group_id(self) -> str:
        """The group id of the sweep's runs."""
        return f"sweep-{self.id}"
