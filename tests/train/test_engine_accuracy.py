"""Both DP-SGD step engines reach the same test accuracy on the same plan (slow: --run-slow).

The plan of BENCHMARKS' accuracy section (whose 2026-12-03 run selected max_lr = 1; 0.5 was
kept here, as measured below): the seed network on the full MNIST training set (55,000
examples after the 5,000-example validation split), B = 512, σ = 1, δ = 1e-5, 4 epochs of
one-cycle with max_lr = 0.5, on the CPU, trained by ``dpplan.train.train``
with ``RunOptions(engine="fused")`` and ``RunOptions(engine="opacus")`` for 3 seeds each.
The fused engine is checked step by step against Opacus on synthetic batches in
``test_engines.py``; this checks the end result of whole runs on real data: the two means
must agree within the seeds' own spread, ``|mean_fused - mean_opacus| <= 2 * max(std) +
0.01``.

``reproducible=True`` derives sampling and noise from each seed, so the test repeats and each
seed gives both engines the same batches and noise (dropout still differs: the fused engine
draws it per example). On one thread of the shared 2-core CPU the six runs took 7.2 minutes
at load 1.7-5.3 (fused 8-12 s, Opacus 19-24 s per epoch, plus evaluation and accounting):
the full training set fits a slow test, so no ``subset`` is used.
"""

from __future__ import annotations

import statistics
import sys

import pytest

from dpplan.plan import TrainingPlan
from dpplan.train import OneCycle, RunOptions, train, training_set_size

SEEDS = (0, 1, 2)
EPOCHS = 4
BATCH_SIZE = 512
NOISE_MULTIPLIER = 1.0
SCHEDULE = OneCycle(max_lr=0.5)


def _accuracies(engine: str, mnist_dir) -> list[float]:
    accuracies = []
    for seed in SEEDS:
        options = RunOptions(
            device="cpu",
            data_dir=str(mnist_dir),
            download=False,
            seed=seed,
            reproducible=True,
            engine=engine,
            method="rdp",
        )
        plan = TrainingPlan(
            dataset_size=training_set_size(options),
            batch_size=BATCH_SIZE,
            noise_multiplier=NOISE_MULTIPLIER,
            epochs=EPOCHS,
            delta=1e-5,
        )
        result = train(plan, SCHEDULE, options)
        assert result.engine == engine and result.status == "finished"
        assert [r.steps for r in result.records] == [plan.steps_after(e) for e in (1, 2, 3, 4)]
        accuracies.append(result.records[-1].test_accuracy)
        seconds = sum(r.seconds for r in result.records)
        print(
            f"{engine} seed {seed}: test accuracy {accuracies[-1]:.4f}, "
            f"ε(RDP) {result.records[-1].epsilon:.3f}, training {seconds:.1f} s",
            file=sys.stderr,
        )
    return accuracies


@pytest.mark.slow
def test_fused_and_opacus_reach_the_same_accuracy(mnist_dir):
    fused = _accuracies("fused", mnist_dir)
    opacus = _accuracies("opacus", mnist_dir)
    spread = max(statistics.stdev(fused), statistics.stdev(opacus))
    gap = abs(statistics.mean(fused) - statistics.mean(opacus))
    assert gap <= 2 * spread + 0.01, (fused, opacus)
    # Both learned: the accuracy section reports ~93.7% for this plan.
    assert min(fused + opacus) > 0.85, (fused, opacus)
