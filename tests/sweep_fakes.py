"""Sweep fakes: a finished sweep whose trials 'trained' instantly (for tests of what reads
sweeps), and a trial function whose worker dies once (for Ray's retries).

Shared by the Frontier page's tests and the sweep report's tests (``tests/`` is on
``sys.path`` through ``tests/conftest.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dpplan.store import EpochRecord, RunStore
from dpplan.sweep import SweepSpec, create_sweep, frontier_result, protocol


def store_fake_sweep(
    store: RunStore, spec: SweepSpec, accuracy: Callable[[protocol.Trial], float]
) -> int:
    """Create ``spec``'s sweep in ``store``, 'train' every trial the protocol asks for with
    validation accuracy ``accuracy(trial)`` (test accuracy 0.01 lower), finish it; return its id.
    """
    sweep_id = create_sweep(spec, store=store, rng=np.random.default_rng(9))
    record = store.get_sweep(sweep_id)
    plans = protocol.plans_from_dict(record.plans)
    outcomes: dict[str, protocol.TrialOutcome] = {}
    while ready := [
        t for t in protocol.ready_trials(spec, outcomes, record.draws) if t.key not in outcomes
    ]:
        for trial in ready:
            plan, score = plans[trial.plan_key], accuracy(trial)
            run_id = store.create_run(
                plan=plan,
                schedule=trial.schedule.to_dict(),
                options={},
                device="cpu",
                seed=trial.seed,
                private=True,
                versions={},
                group_id=f"sweep-{sweep_id}",
            )
            store.record_epoch(
                run_id,
                EpochRecord(
                    epoch=1,
                    steps=plan.steps_per_epoch,
                    epsilon=trial.target_epsilon,
                    epsilon_rdp=trial.target_epsilon,
                    epsilon_opacus=trial.target_epsilon,
                    train_loss=1.0,
                    validation_loss=1.0,
                    validation_accuracy=score,
                    test_accuracy=score - 0.01,
                    lr=trial.lr,
                    seconds=1.0,
                ),
            )
            store.finish_run(run_id, status="finished")
            store.record_trial(sweep_id, trial.key, run_id, None)
            outcomes[trial.key] = protocol.TrialOutcome(
                key=trial.key,
                status="finished",
                run_id=run_id,
                validation_accuracy=score,
                test_accuracy=score - 0.01,
                epochs_done=1,
            )
    store.finish_sweep(
        sweep_id, status="finished", tuning=frontier_result(store, sweep_id).tuning.to_dict()
    )
    return sweep_id


def dying_once(marker: str) -> Callable[..., dict]:
    """A trial function for an executor (``RayExecutor(trial=...)``): the first attempt that
    creates the file ``marker`` kills its worker (``os._exit``), later attempts train as
    :func:`dpplan.train.trial.run_trial` does. A closure, so Ray ships it by value: the
    workers need not import this module."""

    def trial(payload, data=None):
        import os

        from dpplan.sweep.trials import run_trial

        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return run_trial(payload, data)
        os._exit(1)  # this attempt's worker dies

    return trial
