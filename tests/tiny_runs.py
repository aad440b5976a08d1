"""Small real training set-ups shared by the trainer, worker, report and app tests.

One place for the tiny MNIST options (1,000-1,200 training examples on the CPU, RDP), the plan
that trains on them, the matching CLI flags, a run stopped after its first epoch, and a stored
stand-in for a finished run (for orchestration tests that must not train).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dpplan

#: The plan every tiny run trains: B = 64, σ = 1, δ = 1e-4 (its dataset size comes from the options).
PLAN_FIELDS = {"batch_size": 64, "noise_multiplier": 1.0, "epochs": 2, "delta": 1e-4}


def tiny_options(mnist_dir: Path | str, **changes):
    """RunOptions for 1,000 MNIST training examples (200 validation, 300 test) on the CPU."""
    from dpplan.train import RunOptions

    values = {
        "subset": 1000,
        "validation_size": 200,
        "test_subset": 300,
        "data_dir": str(mnist_dir),
        "device": "cpu",
        "method": "rdp",
    }
    return RunOptions(**{**values, **changes})


def tiny_plan(options, **changes) -> dpplan.TrainingPlan:
    """The tiny plan (:data:`PLAN_FIELDS`) on the training set ``options`` selects."""
    from dpplan.train import training_set_size

    values = {"dataset_size": training_set_size(options), **PLAN_FIELDS}
    return dpplan.TrainingPlan(**{**values, **changes})


def data_flags(mnist_dir: Path | str) -> list[str]:
    """The CLI flags that select :func:`tiny_options`' data, device and method."""
    return [
        "--subset",
        "1000",
        "--validation-size",
        "200",
        "--test-subset",
        "300",
        "--data-dir",
        str(mnist_dir),
        "--device",
        "cpu",
        "--method",
        "rdp",
    ]


def stopped_after_one_epoch(store, options, plan=None):
    """Train ``plan`` (default: the tiny plan, 2 epochs) and stop it after its first epoch."""
    from dpplan.train import Constant, start_run

    ids = []
    run = start_run(
        plan or tiny_plan(options),
        Constant(lr=0.2),
        options,
        store=store,
        on_start=lambda run: ids.append(run.id),
        on_epoch=lambda record: store.request_stop(ids[0]),
    )
    assert run.status == "stopped" and len(run.records) == 1
    return run


def stored_run(
    validation: Callable[[float, int], float],
    test: Callable[[float, int], float],
    *,
    method: str | None = None,
) -> Callable:
    """A stand-in for ``start_run`` that stores a finished run without training.

    Each epoch's validation and test accuracy are ``validation(lr, seed)`` and
    ``test(lr, seed)``, so a test can tell which rule selected which run; ε comes from
    ``method`` (default: the options' method).
    """
    from dpplan.records import EpochRecord

    def start_run(plan, schedule, options, *, store, group_id):
        spec = schedule.to_dict()
        lr = spec.get("max_lr", spec.get("lr"))
        run_id = store.create_run(
            plan=plan,
            schedule=spec,
            options=options.to_dict(),
            device="cpu",
            seed=options.seed,
            private=True,
            versions={},
            group_id=group_id,
        )
        curve = dpplan.epsilon_curve(plan, method=method or options.method).epsilons
        # A PhasedPlan's epochs (possibly partial) run on across its phases.
        epochs = len(plan.epoch_ends()) if hasattr(plan, "phases") else plan.epochs
        for epoch in range(1, epochs + 1):
            store.record_epoch(
                run_id,
                EpochRecord(
                    epoch=epoch,
                    steps=plan.steps_after(epoch),
                    epsilon=curve[epoch - 1],
                    epsilon_rdp=curve[epoch - 1],
                    epsilon_opacus=curve[epoch - 1],
                    train_loss=1.0,
                    validation_loss=1.0,
                    validation_accuracy=validation(lr, options.seed),
                    test_accuracy=test(lr, options.seed),
                    lr=lr,
                    seconds=0.0,
                ),
            )
        store.finish_run(run_id, status="finished")
        return store.get_run(run_id)

    return start_run
