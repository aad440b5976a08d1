"""Long curves evaluate a bounded number of epochs; every point stays an upper bound."""

from __future__ import annotations

import math

import dp_accounting
import pytest

import dpplan
from dpplan.accounting import get_accountant

PLAN = dpplan.TrainingPlan(
    dataset_size=1000, batch_size=1000, noise_multiplier=10.0, epochs=250, delta=1e-5
)


@pytest.mark.parametrize("method", ["pld", "prv"])
def test_long_curve_points_are_upper_bounds(method):
    backend = get_accountant(method)
    curve = backend.epsilon_curve(PLAN)
    assert len(curve.epsilons) == PLAN.epochs
    assert curve.epsilon == backend.epsilon(PLAN)
    if method == "pld":
        assert curve.settings["evaluated_epochs"].startswith("100 of 250")
    # Full batch: T steps at σ compose to one Gaussian with σ/√T, whose ε is exact.
    for epoch in (1, 2, 37, 101, 249):
        exact = dp_accounting.get_epsilon_gaussian(
            PLAN.noise_multiplier / math.sqrt(epoch), PLAN.delta
        )
        assert curve.epsilons[epoch - 1] >= exact * (1 - 1e-9), epoch
        if curve.lower is not None:
            assert curve.lower[epoch - 1] <= exact, epoch
    if method == "pld":  # between evaluated epochs the bound is the next evaluated one's
        direct = backend.epsilon(PLAN.replace(epochs=1))
        assert curve.epsilons[0] >= direct


def test_evaluated_epochs_always_include_the_last():
    from dpplan.accounting.base import _evaluated_epochs

    assert _evaluated_epochs(5, None) == (1, 2, 3, 4, 5)
    assert _evaluated_epochs(5, 10) == (1, 2, 3, 4, 5)
    chosen = _evaluated_epochs(1000, 30)
    assert chosen[-1] == 1000 and len(chosen) == 30 and chosen == tuple(sorted(set(chosen)))
    # The first epoch is evaluated too, or it would carry a much looser later bound.
    assert chosen[0] == 1 and _evaluated_epochs(150, 100)[0] == 1
