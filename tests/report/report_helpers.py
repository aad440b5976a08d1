"""Helpers shared by the report tests (plans, stored runs, the Chromium binary)."""

from __future__ import annotations

import shutil

import dpplan
from dpplan.store import EpochRecord, RunStore

#: An MNIST-sized plan with few epochs, so every accountant answers in about a second.
PLAN = dpplan.TrainingPlan(
    dataset_size=60000, batch_size=256, noise_multiplier=1.1, epochs=3, delta=1e-5
)


def chromium_binary() -> str | None:
    """Return the path of a headless-capable Chromium, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def epoch_record(plan: dpplan.TrainingPlan, epoch: int, **changes) -> EpochRecord:
    """A plausible stored epoch of ``plan`` (for store-only tests that do not train)."""
    values = {
        "epoch": epoch,
        "steps": plan.steps_after(epoch),
        "epsilon": 0.5 * epoch,
        "epsilon_rdp": 0.6 * epoch,
        "epsilon_opacus": 0.6 * epoch,
        "train_loss": 1.0 / epoch,
        "validation_loss": 1.1 / epoch,
        "validation_accuracy": 0.7 + 0.05 * epoch,
        "test_accuracy": 0.69 + 0.05 * epoch,
        "lr": 0.1,
        "seconds": 1.5,
    }
    values.update(changes)
    return EpochRecord(**values)


def stored_run(
    store: RunStore,
    plan: dpplan.TrainingPlan,
    *,
    epochs: int | None = None,
    status: str = "finished",
    private: bool = True,
    group_id: str | None = None,
    stop_reason: str | None = None,
    every_method: bool = False,
) -> int:
    """Create a run in ``store`` with ``epochs`` recorded epochs (default: all of them); with
    ``every_method``, each epoch records every method's ε as the trainer does."""
    run_id = store.create_run(
        plan=plan,
        schedule={"kind": "constant", "lr": 0.1, "momentum": 0.0},
        options={"model": "seed", "method": "prv", "seed": 0},
        device="cpu",
        seed=0,
        private=private,
        versions={"dpplan": dpplan.__version__},
        group_id=group_id,
    )
    per_epoch = dpplan.accounting.epoch_epsilons(plan) if every_method else None
    for epoch in range(1, (plan.epochs if epochs is None else epochs) + 1):
        extra = {}
        if per_epoch is not None:
            extra = {"epsilons": per_epoch[epoch - 1], "epsilon": per_epoch[epoch - 1]["prv"]}
        store.record_epoch(run_id, epoch_record(plan, epoch, **extra))
    store.finish_run(run_id, status=status, stop_reason=stop_reason)
    return run_id
