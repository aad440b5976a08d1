"""The stored values: epoch records, run records and sweep records (frozen, typed).

Pure data: nothing here computes privacy. The one ε shown for a run or an epoch (the
smallest upper bound) is computed above the store, in :mod:`dpplan.run_policy`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from dpplan.plan import TrainingPlan
from dpplan.records import EpochRecord, json_value

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


def plan_id(plan: TrainingPlan) -> str:
    """Return the stored id of a plan: a hash of its canonical JSON (16 hex digits)."""
    text = json.dumps(plan.to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
    #: The task trained (``"mnist-seed"``, ... for the built-in MNIST tasks; None for runs
    #: stored before tasks were recorded), its data fingerprint
    #: (:meth:`dpplan.train.Task.fingerprint`) and the ``"module:function"`` it was loaded
    #: from (None for the built-in tasks and for tasks passed as objects).
    task: str | None = None
    task_fingerprint: dict[str, Any] | None = dataclasses.field(default=None, hash=False)
    task_spec: str | None = None

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
