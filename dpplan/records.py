"""The records of a training run that every layer reads: torch-free and SQLite-free.

:class:`EpochRecord` is what one epoch of a run measured. The trainer
(:mod:`dpplan.train`) produces it, the run store (:mod:`dpplan.store`) stores it, reports and
the app read it; this module imports none of them (nor torch, nor sqlite3), so each can use
it. ``dpplan.store.EpochRecord`` is the same class.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from dpplan.format import json_safe

__all__ = ["EpochRecord"]


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
        validation_accuracy: accuracy on the validation split, in [0, 1] (NaN for a task
            that is not a classification).
        test_accuracy: accuracy on the test set, in [0, 1] (NaN likewise).
        lr: learning rate at the end of the epoch.
        seconds: wall time of the epoch's training steps.
        epsilons: every accounting method's ε after these steps (method -> upper bound;
            ``dpplan.accounting.epoch_epsilons``). Empty for runs recorded before dpplan
            recorded them: then only ``epsilon``, from the run's ``method``, is known.
        test_loss: loss on the test set (NaN for runs recorded before it was kept).
        metrics: the task's own metric on the validation and test sets
            (``{"validation_<name>": …, "test_<name>": …}``; empty without a metric).
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
    test_loss: float = math.nan
    metrics: dict[str, float] = dataclasses.field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the record as a JSON-ready dict (infinite ε as the string ``"inf"``)."""
        data = {k: json_safe(v) for k, v in dataclasses.asdict(self).items()}
        data["epsilons"] = {k: json_safe(v) for k, v in self.epsilons.items()}
        data["metrics"] = {k: json_safe(v) for k, v in self.metrics.items()}
        return data
