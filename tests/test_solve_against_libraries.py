"""The solvers' "never over target", checked by the libraries themselves (issue 18).

dpplan's own tests check a solved plan through dpplan's backends, the same cached code that
produced it. Here each solved plan's ε is recomputed from scratch by the library the method
wraps: dp-accounting's ``RdpAccountant`` (dpplan's orders) and ``PLDAccountant`` (the same
1e-4 grid), and prv-accountant's ``PRVAccountant`` upper bound (dpplan's eps_error and
delta_error). dpplan's bounds are never below the libraries' (it charges its round-off on
top), so a solved plan must be within target by the library too.
"""

from __future__ import annotations

import dp_accounting
import pytest

from dpplan import TrainingPlan
from dpplan.accounting import get_accountant
from dpplan.solve import solve_batch_size, solve_epochs, solve_noise_multiplier

PLAN = TrainingPlan(dataset_size=2000, batch_size=40, noise_multiplier=1.0, epochs=4, delta=1e-5)
TARGET = 2.0


def _library_epsilon(plan: TrainingPlan, method: str) -> float:
    event = dp_accounting.PoissonSampledDpEvent(
        plan.sample_rate, dp_accounting.GaussianDpEvent(plan.noise_multiplier)
    )
    if method == "rdp":
        accountant = dp_accounting.rdp.RdpAccountant(orders=list(get_accountant("rdp").orders))
        return accountant.compose(event, plan.total_steps).get_epsilon(plan.delta)
    if method == "pld":
        accountant = dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-4)
        return accountant.compose(event, plan.total_steps).get_epsilon(plan.delta)
    from prv_accountant import PRVAccountant
    from prv_accountant.privacy_random_variables import PoissonSubsampledGaussianMechanism

    backend = get_accountant("prv")
    accountant = PRVAccountant(
        prvs=[
            PoissonSubsampledGaussianMechanism(
                noise_multiplier=plan.noise_multiplier, sampling_probability=plan.sample_rate
            )
        ],
        eps_error=backend.eps_error,
        delta_error=plan.delta * backend.delta_error_fraction,
        max_self_compositions=[plan.total_steps],
    )
    return accountant.compute_epsilon(plan.delta, [plan.total_steps])[2]


@pytest.mark.parametrize("method", ["rdp", "pld", "prv"])
@pytest.mark.parametrize(
    "solver", [solve_noise_multiplier, solve_epochs, solve_batch_size], ids=lambda f: f.__name__
)
def test_solved_plan_is_within_target_by_the_library_itself(method, solver):
    solved = solver(PLAN, target_epsilon=TARGET, method=method)
    assert _library_epsilon(solved, method) <= TARGET
