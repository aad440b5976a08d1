"""The stored values: epoch records, run records and sweep records (frozen, typed).

Pure data: nothing here computes privacy. The one ε shown for a run or an epoch (the
smallest upper bound) is computed above the store, in :mod:`dpplan.run_policy`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dpplan.format import json_digest
from dpplan.plan import TrainingPlan
from dpplan.records import EpochRecord

__all__ = [
    "STATUSES",
    "EpochRecord",
    "OptionsRecord",
    "RunRecord",
    "ScheduleRecord",
    "SweepRecord",
    "SweepTrialRecord",
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
    return json_digest(plan.to_dict())[:16]


class _StoredFields(dict):
    """A read-only dict of a run's stored JSON fields, as stored (so JSON, ``dict(...)`` and
    ``==`` with a plain dict work), with typed properties for what callers read."""

    __slots__ = ()

    def _read_only(self, *args: object, **kwargs: object) -> None:
        raise TypeError(f"a {type(self).__name__} is read-only; build a new one")

    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __reduce__(self) -> tuple[type, tuple[dict[str, Any]]]:
        return type(self), (dict(self),)

    def to_dict(self) -> dict[str, Any]:
        """Return a plain, mutable copy."""
        return dict(self)


class ScheduleRecord(_StoredFields):
    """A stored learning-rate schedule: ``kind`` and the fields of its spec, as in
    ``dpplan.train.specs`` (``schedule_from_dict(record)`` rebuilds the spec; the store
    itself stays below the trainer and holds it torch-free).

    Example:
        >>> record = ScheduleRecord({"kind": "one_cycle", "max_lr": 2.0})
        >>> record.kind, record.learning_rate
        ('one_cycle', 2.0)
    """

    __slots__ = ()

    @property
    def kind(self) -> str:
        """``"one_cycle"``, ``"plateau"`` or ``"constant"``."""
        return str(self["kind"])

    @property
    def learning_rate(self) -> float:
        """The schedule's defining rate: one-cycle's peak ``max_lr``, else its ``lr``."""
        return float(self["max_lr"] if "max_lr" in self else self["lr"])


class OptionsRecord(_StoredFields):
    """A run's stored options (``RunOptions.to_dict()`` plus what the run found out about
    itself), with defaults for runs stored before an option existed."""

    __slots__ = ()

    @property
    def method(self) -> str:
        """The accounting method of the run's recorded ε (``"prv"`` before it was stored)."""
        return str(self.get("method", "prv"))

    @property
    def engine(self) -> str:
        """The step engine (``"opacus"`` for runs stored before there was a choice)."""
        return str(self.get("engine", "opacus"))


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RunRecord:
    """A stored run: what was planned, how it was trained, and what each epoch gave.

    ``schedule`` and ``options`` are typed records (any mapping given is converted).
    """

    id: int
    plan: TrainingPlan
    status: str
    schedule: ScheduleRecord = dataclasses.field(hash=False)
    options: OptionsRecord = dataclasses.field(hash=False)
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
    #: Noisy steps of epochs abandoned mid-way (a stop or a crash during an epoch, over all
    #: stops and resumes): not recorded, and a resume retrains that epoch, but they touched
    #: the data, so the run's ε counts them (:func:`dpplan.run_policy.run_epsilon`).
    abandoned_steps: int = 0
    #: The task trained (``"mnist-seed"``, ... for the built-in MNIST tasks; None for runs
    #: stored before tasks were recorded), its data fingerprint
    #: (:meth:`dpplan.train.Task.fingerprint`) and the ``"module:function"`` it was loaded
    #: from (None for the built-in tasks and for tasks passed as objects).
    task: str | None = None
    task_fingerprint: dict[str, Any] | None = dataclasses.field(default=None, hash=False)
    task_spec: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.schedule, ScheduleRecord):
            object.__setattr__(self, "schedule", ScheduleRecord(self.schedule))
        if not isinstance(self.options, OptionsRecord):
            object.__setattr__(self, "options", OptionsRecord(self.options))

    def to_dict(self) -> dict[str, Any]:
        """Return the run as a JSON-ready dict (plan, status, per-epoch records, ...)."""
        data = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if field.name not in ("plan", "records")
        }
        data["schedule"], data["options"] = dict(self.schedule), dict(self.options)
        data["warnings"] = list(self.warnings)
        data["plan"] = self.plan.to_dict()
        data["records"] = [record.to_dict() for record in self.records]
        return data

    @property
    def method(self) -> str:
        """The accounting method of each record's ``epsilon`` (the run's option)."""
        return self.options.method

    @property
    def epochs_spent(self) -> int:
        """Epochs whose steps touched the data: the recorded ones, and for a run that
        diverged, the epoch it diverged in too (not recorded, but its steps were taken)."""
        return max(len(self.records), self.diverged_epoch or 0)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class SweepTrialRecord:
    """A trial of a sweep: ``finished`` (its run) or ``failed`` (the error), ``running`` (in
    flight, no outcome yet) or ``abandoned`` (cut off, to be run again); ``abandoned`` counts
    its attempts cut off by a stopped or killed driver (each trained on the data and stored no
    run)."""

    key: str
    run_id: int | None
    status: str
    error: str | None
    abandoned: int = 0

    @property
    def has_outcome(self) -> bool:
        """Finished or failed: the trial is not run again."""
        return self.status in ("finished", "failed")

    @property
    def unstored_attempts(self) -> int:
        """Attempts of this trial that may have trained on the data and stored no run: those
        cut off (``abandoned``), the one in flight, and a failure that stored no run (it
        may have failed mid-training)."""
        in_flight = self.status == "running"
        return self.abandoned + in_flight + (self.status == "failed" and self.run_id is None)


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
