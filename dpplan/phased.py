"""Phased plans: DP-SGD whose batch size or noise multiplier changes between phases.

A :class:`PhasedPlan` is a sequence of :class:`~dpplan.plan.TrainingPlan` phases run one after
another on the same data: every phase shares ``dataset_size`` and ``delta``, and has its own
batch size, noise multiplier and epochs. A phase may stop mid-epoch (``phase_steps``), so
early stopping after step 1,234 is a plan too.

Plans (phased or not) are Poisson-sampled: they describe what dpplan's trainer runs, and every
ε of a plan is for add-or-remove-one neighbours. Other sampling schemes (shuffled, fixed-size,
truncated Poisson batches) are accounted by :class:`dpplan.Ledger`; a plan file naming another
``sampling`` is refused with that pointer.

Like :class:`TrainingPlan`, a phased plan is validated when it is built and never changes. It
reduces to segments (``sample_rate``, ``noise_multiplier``, ``steps``), which is all the
accountants need; this module imports no accounting code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from dpplan import _validate
from dpplan.errors import PlanError
from dpplan.plan import MAX_TOTAL_STEPS, TrainingPlan

__all__ = ["MAX_PHASES", "PhasedPlan", "truncated_phased"]

#: Most phases of one plan (each distinct phase is one more mechanism to compose).
MAX_PHASES = 64


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class PhasedPlan:
    """DP-SGD in phases, each a :class:`TrainingPlan` on the same dataset and δ.

    Attributes:
        phases: the phases in training order (at least one, at most 64). All share
            ``dataset_size`` and ``delta``; ``max_grad_norm`` may differ (it does not change ε).
        phase_steps: empty (every phase runs all its epochs), or one entry per phase: ``None``
            (all of that phase's steps) or the number of noisy steps it runs, in
            ``[1, phase.total_steps]``; a phase may so end mid-epoch.

    Example:
        >>> warmup = TrainingPlan(dataset_size=60000, batch_size=256, noise_multiplier=1.5,
        ...                       epochs=2, delta=1e-5)
        >>> plan = PhasedPlan(phases=[warmup, warmup.replace(batch_size=1024, epochs=3)])
        >>> plan.steps_per_phase, plan.total_steps
        ((470, 177), 647)
    """

    phases: tuple[TrainingPlan, ...]
    phase_steps: tuple[int | None, ...] = ()

    def __post_init__(self) -> None:
        phases = self.phases
        if isinstance(phases, (str, bytes, Mapping)) or not isinstance(phases, Sequence):
            raise PlanError("phases", phases, "a non-empty list of TrainingPlan phases")
        phases = tuple(phases)
        if not 1 <= len(phases) <= MAX_PHASES:
            raise PlanError(
                "phases", len(phases), f"between 1 and {MAX_PHASES} phases", "Give the phases."
            )
        for index, phase in enumerate(phases):
            if not isinstance(phase, TrainingPlan):
                raise PlanError(f"phases[{index}]", phase, "a dpplan.TrainingPlan")
        first = phases[0]
        for index, phase in enumerate(phases[1:], start=1):
            for name in ("dataset_size", "delta"):
                if getattr(phase, name) != getattr(first, name):
                    raise PlanError(
                        name,
                        getattr(phase, name),
                        f"the same in every phase ({getattr(first, name)!r} in phase 0, "
                        f"{getattr(phase, name)!r} in phase {index})",
                        "All phases train on the same data and state one guarantee.",
                    )
        steps = self.phase_steps
        if isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence):
            raise PlanError("phase_steps", steps, "a list with one entry per phase, or empty")
        steps = tuple(steps)
        if steps and len(steps) != len(phases):
            raise PlanError(
                "phase_steps",
                steps,
                f"empty or one entry per phase ({len(phases)})",
                "Use None for a phase that runs all its epochs.",
            )
        steps = tuple(
            None
            if count is None
            else _validate.integer(
                minimum=1,
                maximum=phase.total_steps,
                hint=f"Phase {index} has {phase.total_steps} steps; raise its epochs to run more.",
                phase_steps=count,
            )
            for index, (count, phase) in enumerate(zip(steps, phases))
        )
        if all(count is None for count in steps):
            steps = ()
        total = sum(
            phase.total_steps if count is None else count
            for phase, count in zip(phases, steps or (None,) * len(phases))
        )
        if total > MAX_TOTAL_STEPS:
            raise PlanError(
                "phases",
                f"{len(phases)} phases",
                f"at most {MAX_TOTAL_STEPS:,} noisy steps in all (here {total:,})",
                "Lower epochs or raise batch sizes.",
            )
        object.__setattr__(self, "phases", phases)
        object.__setattr__(self, "phase_steps", steps)

    @property
    def dataset_size(self) -> int:
        """Records N, shared by every phase."""
        return self.phases[0].dataset_size

    @property
    def delta(self) -> float:
        """The δ of the guarantee, shared by every phase."""
        return self.phases[0].delta

    @property
    def steps_per_phase(self) -> tuple[int, ...]:
        """Noisy steps each phase runs."""
        if not self.phase_steps:
            return tuple(phase.total_steps for phase in self.phases)
        return tuple(
            phase.total_steps if count is None else count
            for phase, count in zip(self.phases, self.phase_steps)
        )

    @property
    def total_steps(self) -> int:
        """Noisy steps over all phases."""
        return sum(self.steps_per_phase)

    def epoch_ends(self) -> tuple[int, ...]:
        """Cumulative step counts at the end of every (possibly partial) epoch, all phases.

        Example:
            >>> one = TrainingPlan(dataset_size=100, batch_size=10, noise_multiplier=1.0,
            ...                    epochs=2, delta=1e-3)
            >>> PhasedPlan(phases=[one, one], phase_steps=[None, 15]).epoch_ends()
            (10, 20, 30, 35)
        """
        ends, done = [], 0
        for phase, steps in zip(self.phases, self.steps_per_phase):
            ends.extend(
                done + min(steps, phase.steps_after(e))
                for e in range(1, phase.epochs + 1)
                if phase.steps_after(e - 1) < steps
            )
            done += steps
        return tuple(ends)

    def steps_after(self, epoch: int) -> int:
        """Return the noisy steps taken after ``epoch`` (possibly partial) epochs, all phases."""
        return 0 if epoch == 0 else self.epoch_ends()[epoch - 1]

    def mechanisms(self, steps: int | None = None) -> tuple[tuple[float, float, int], ...]:
        """``(sample_rate, noise_multiplier, steps)`` of each phase for the first ``steps``.

        Args:
            steps: noisy steps taken so far, in [0, total_steps]; ``None`` means all.

        Raises:
            PlanError: if ``steps`` is out of range.
        """
        if steps is None:
            steps = self.total_steps
        left = _validate.integer(minimum=0, maximum=self.total_steps, steps=steps)
        found = []
        for phase, count in zip(self.phases, self.steps_per_phase):
            taken = min(count, left)
            if taken:
                found.append((phase.sample_rate, phase.noise_multiplier, taken))
            left -= taken
        return tuple(found)

    def replace(self, **changes: object) -> PhasedPlan:
        """Return a new, re-validated phased plan with ``changes`` applied."""
        for name, value in changes.items():
            if name not in ("phases", "phase_steps"):
                raise PlanError(name, value, "not set: it is not a PhasedPlan field")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"dataset_size", "delta", "phases": [...]}``, JSON-ready.

        Each phase has ``batch_size``, ``noise_multiplier``, ``epochs``, ``max_grad_norm`` and,
        if it stops mid-epoch, ``steps``.
        """
        phases = []
        for index, phase in enumerate(self.phases):
            item: dict[str, Any] = {
                "batch_size": phase.batch_size,
                "noise_multiplier": phase.noise_multiplier,
                "epochs": phase.epochs,
                "max_grad_norm": phase.max_grad_norm,
            }
            if self.phase_steps and self.phase_steps[index] is not None:
                item["steps"] = self.phase_steps[index]
            phases.append(item)
        return {"dataset_size": self.dataset_size, "delta": self.delta, "phases": phases}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> PhasedPlan:
        """Build a phased plan from :meth:`to_dict` output.

        Raises:
            PlanError: for unknown keys, missing fields or invalid values.
        """
        if not isinstance(data, Mapping):
            raise PlanError("plan", data, "a mapping with dataset_size, delta and phases")
        phases = data.get("phases")
        phases = phases if isinstance(phases, (list, tuple)) else ()
        for item in (data, *(p for p in phases if isinstance(p, Mapping))):
            if "sampling" in item:
                raise PlanError(
                    "sampling",
                    item["sampling"],
                    "absent: plans are Poisson-sampled (the scheme dpplan's trainer runs)",
                    "Account shuffled, fixed-size or truncated Poisson batches with "
                    "dpplan.Ledger(...).record(sampling=...).",
                )
        unknown = sorted(set(data) - {"dataset_size", "delta", "phases"})
        if unknown:
            raise PlanError(unknown[0], data[unknown[0]], "absent: not a PhasedPlan key")
        for name in ("dataset_size", "delta", "phases"):
            if name not in data:
                raise PlanError(name, None, "given", "The field is required.")
        items = data["phases"]
        if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Sequence):
            raise PlanError("phases", items, "a list of phase mappings")
        phases, steps = [], []
        for item in items:
            if not isinstance(item, Mapping):
                raise PlanError("phases", item, "a list of phase mappings")
            fields = {k: v for k, v in item.items() if k != "steps"}
            phases.append(
                TrainingPlan.from_dict(
                    {"dataset_size": data["dataset_size"], "delta": data["delta"], **fields}
                )
            )
            steps.append(item.get("steps"))
        return cls(phases=phases, phase_steps=steps)


def truncated_phased(plan: PhasedPlan, steps: int) -> PhasedPlan:
    """Return ``plan`` cut after its first ``steps`` noisy steps (phases after the cut
    dropped, the phase it falls in given in steps).

    Raises:
        PlanError: if ``steps`` is not in [1, plan.total_steps].
    """
    steps = _validate.integer(minimum=1, maximum=plan.total_steps, steps=steps)
    phases, counts, left = [], [], steps
    for phase, count in zip(plan.phases, plan.steps_per_phase):
        if left <= 0:
            break
        taken = min(count, left)
        phases.append(phase)
        counts.append(None if taken == phase.total_steps else taken)
        left -= taken
    return PhasedPlan(phases=phases, phase_steps=counts)
