"""Learning-rate schedules in torch: the optimizer and the controller a spec asks for.

The specs themselves (:class:`OneCycle`, :class:`Plateau`, :class:`Constant`) live in the
torch-free :mod:`dpplan.train.specs` and are re-exported here. :func:`make_optimizer` builds
the ``torch.optim.SGD`` a spec asks for, and :func:`make_scheduler` wraps the matching torch
scheduler in an :class:`LrController` that the trainer calls after every optimizer step and
after every epoch. Both work on an Opacus ``DPOptimizer`` too: it subclasses
``torch.optim.Optimizer`` and proxies ``param_groups`` and ``defaults`` to the SGD it wraps.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from dpplan import _validate
from dpplan.errors import PlanError
from dpplan.train.specs import (
    MAX_LR,
    SCHEDULES,
    Constant,
    OneCycle,
    Plateau,
    ScheduleSpec,
    check_spec,
    schedule_from_dict,
)

__all__ = [
    "MAX_LR",
    "SCHEDULES",
    "Constant",
    "LrController",
    "OneCycle",
    "Plateau",
    "ScheduleSpec",
    "make_optimizer",
    "make_scheduler",
    "schedule_from_dict",
]


def make_optimizer(
    spec: ScheduleSpec, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]]
) -> torch.optim.SGD:
    """Build the SGD optimizer a schedule spec asks for.

    The learning rate is ``spec.initial_lr``; the momentum is ``spec.momentum``, or
    ``max_momentum`` for a :class:`OneCycle` with ``cycle_momentum`` (the value one-cycle
    starts from). Wrap the result in an Opacus ``DPOptimizer`` for DP-SGD, then pass either
    to :func:`make_scheduler`.

    Args:
        spec: the schedule.
        params: the model's parameters, or parameter groups, as ``torch.optim.SGD`` takes.

    Returns:
        A ``torch.optim.SGD``.

    Raises:
        PlanError: if ``spec`` is not a schedule spec (field ``schedule``).

    Example:
        >>> layer = torch.nn.Linear(2, 1)
        >>> make_optimizer(OneCycle(max_lr=1.0), layer.parameters()).param_groups[0]["momentum"]
        0.95
    """
    spec = check_spec(spec)
    return torch.optim.SGD(params, lr=spec.initial_lr, momentum=spec.initial_momentum)


class LrController:
    """Drives a torch learning-rate scheduler from the training loop.

    Built by :func:`make_scheduler`. Call :meth:`after_step` after every optimizer step and
    :meth:`after_epoch` after every epoch's validation; each forwards to the scheduler only
    for the schedule that needs it (one-cycle per step, plateau per epoch, constant never).
    A plateau with ``evaluate_every`` is stepped by :meth:`after_evaluation` instead, on
    the validation loss the loop measures whenever :meth:`evaluation_due` says so.

    Attributes:
        spec: the schedule spec.
        total_steps: the number of optimizer steps the run takes.
    """

    def __init__(
        self, spec: ScheduleSpec, optimizer: torch.optim.Optimizer, *, total_steps: int
    ) -> None:
        """Create the scheduler; see :func:`make_scheduler` for the arguments and errors."""
        self.spec = check_spec(spec)
        self.total_steps = _validate.integer(minimum=1, total_steps=total_steps)
        if not isinstance(optimizer, torch.optim.Optimizer) or "momentum" not in optimizer.defaults:
            raise PlanError(
                "optimizer",
                optimizer,
                "a torch.optim.SGD, or an Opacus DPOptimizer wrapping one",
                "Build it with make_optimizer(spec, params).",
            )
        self._optimizer = optimizer
        self._steps_taken = 0
        for group in optimizer.param_groups:
            group["lr"] = self.spec.initial_lr
            group["momentum"] = self.spec.initial_momentum
        self._one_cycle: torch.optim.lr_scheduler.OneCycleLR | None = None
        self._plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
        if isinstance(self.spec, OneCycle):
            self._one_cycle = torch.optim.lr_scheduler.OneCycleLR(
                optimizer,
                max_lr=self.spec.max_lr,
                total_steps=self.total_steps,
                pct_start=_torch_pct_start(self.spec.pct_start, self.total_steps),
                anneal_strategy="cos",
                cycle_momentum=self.spec.cycle_momentum,
                base_momentum=self.spec.base_momentum,
                max_momentum=self.spec.max_momentum,
                div_factor=self.spec.div_factor,
                final_div_factor=self.spec.final_div_factor,
            )
        elif isinstance(self.spec, Plateau):
            self._plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer,
                mode="min",
                factor=self.spec.factor,
                patience=self.spec.patience,
                min_lr=self.spec.min_lr,
            )

    @property
    def steps_taken(self) -> int:
        """How many times :meth:`after_step` has been called."""
        return self._steps_taken

    def after_step(self) -> None:
        """Advance the schedule by one optimizer step (one-cycle only).

        After the last of ``total_steps`` steps the learning rate stays at its final value.

        Raises:
            PlanError: for one-cycle, if called more than ``total_steps`` times (field
                ``total_steps``).
        """
        self._steps_taken += 1
        if self._one_cycle is None:
            return
        if self._steps_taken > self.total_steps:
            raise PlanError(
                "total_steps",
                self.total_steps,
                f"at least the number of optimizer steps taken ({self._steps_taken})",
                "Pass total_steps = epochs * steps_per_epoch to make_scheduler.",
            )
        if self._steps_taken < self.total_steps:
            self._one_cycle.step()

    @property
    def evaluate_every(self) -> int | None:
        """Optimizer steps between the plateau's validation evaluations; None when the
        schedule is stepped per epoch (or is not a plateau)."""
        return self.spec.evaluate_every if isinstance(self.spec, Plateau) else None

    def evaluation_due(self) -> bool:
        """Return whether the loop should now measure the validation loss and pass it to
        :meth:`after_evaluation`: a plateau with ``evaluate_every = N`` after every ``N``-th
        optimizer step (counted by :meth:`after_step`)."""
        every = self.evaluate_every
        return every is not None and self._steps_taken > 0 and self._steps_taken % every == 0

    def after_evaluation(self, validation_loss: float) -> None:
        """Report a validation loss measured every ``evaluate_every`` steps (plateau with
        ``evaluate_every`` only; otherwise nothing happens).

        Args:
            validation_loss: the mean validation loss. NaN and infinities are accepted
                and count as evaluations that did not improve.

        Raises:
            PlanError: if ``validation_loss`` is not a real number (field
                ``validation_loss``).
        """
        _check_loss(validation_loss)
        if self._plateau is not None and self.evaluate_every is not None:
            self._plateau.step(float(validation_loss))

    def after_epoch(self, validation_loss: float) -> None:
        """Report an epoch's validation loss (plateau without ``evaluate_every`` only).

        Args:
            validation_loss: the epoch's mean validation loss. NaN and infinities are
                accepted and count as epochs that did not improve.

        Raises:
            PlanError: if ``validation_loss`` is not a real number (field
                ``validation_loss``).
        """
        _check_loss(validation_loss)
        if self._plateau is not None and self.evaluate_every is None:
            self._plateau.step(float(validation_loss))

    def state_dict(self) -> dict[str, Any]:
        """Return the controller's state (steps taken and the torch scheduler's state)."""
        state: dict[str, Any] = {"steps_taken": self._steps_taken}
        for name in ("_one_cycle", "_plateau"):
            scheduler = getattr(self, name)
            if scheduler is not None:
                state[name] = scheduler.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (used to resume a run)."""
        self._steps_taken = int(state["steps_taken"])
        for name in ("_one_cycle", "_plateau"):
            scheduler = getattr(self, name)
            if scheduler is not None and name in state:
                scheduler.load_state_dict(state[name])

    def current_lr(self) -> float:
        """Return the learning rate the next optimizer step will use."""
        return float(self._optimizer.param_groups[0]["lr"])

    def current_momentum(self) -> float:
        """Return the momentum the next optimizer step will use."""
        return float(self._optimizer.param_groups[0]["momentum"])


def _check_loss(validation_loss: object) -> None:
    if isinstance(validation_loss, bool) or not isinstance(validation_loss, numbers.Real):
        raise PlanError("validation_loss", validation_loss, "a real number")


def _torch_pct_start(pct_start: float, total_steps: int) -> float:
    """Return a ``pct_start`` that torch's ``OneCycleLR`` can use for ``total_steps``.

    ``OneCycleLR`` ends the rising phase at step ``pct_start * total_steps - 1`` and divides
    by that number at step 0, so ``pct_start * total_steps == 1`` raises
    ``ZeroDivisionError``. The defined answer is a one-step rise (step 0 at ``max_lr``);
    the largest float below ``pct_start`` gives it to within rounding.
    """
    while float(pct_start * total_steps) - 1 == 0:
        pct_start = math.nextafter(pct_start, 0.0)
    return pct_start


def make_scheduler(
    spec: ScheduleSpec, optimizer: torch.optim.Optimizer, *, total_steps: int
) -> LrController:
    """Attach a schedule to an optimizer.

    Sets every parameter group's learning rate and momentum to the spec's start values
    (``initial_lr`` and ``initial_momentum``). The optimizer may be a plain
    ``torch.optim.SGD`` from :func:`make_optimizer` or an Opacus ``DPOptimizer`` wrapping
    one.

    Args:
        spec: the schedule.
        optimizer: the optimizer whose ``param_groups`` the schedule drives.
        total_steps: the number of optimizer steps in the run, an integer >= 1
            (``epochs * steps_per_epoch``).

    Returns:
        The :class:`LrController` to call from the training loop.

    Raises:
        PlanError: if ``spec`` is not a schedule spec (field ``schedule``), if
            ``optimizer`` is not an SGD-like torch optimizer with a momentum setting
            (field ``optimizer``), or if
            ``total_steps`` is not an integer >= 1 (field ``total_steps``).

    Example:
        >>> layer = torch.nn.Linear(2, 1)
        >>> spec = OneCycle(max_lr=1.0, pct_start=0.5)
        >>> controller = make_scheduler(
        ...     spec, make_optimizer(spec, layer.parameters()), total_steps=10
        ... )
        >>> round(controller.current_lr(), 6)  # max_lr / div_factor
        0.04
    """
    return LrController(spec, optimizer, total_steps=total_steps)
