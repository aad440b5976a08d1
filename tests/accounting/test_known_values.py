"""Known ε values from other libraries' tests and from papers (STYLE §3.9 item 3).

Each row's id names its source. Values are compared with ``rtol`` (never exact equality)
across libraries, and every row states its step count exactly: at q = 0.04 one step moves
PRV's ε by ~0.002 (STYLE Appendix B).

q = 0.04 is expressed as a plan with dataset_size=25, batch_size=1 (steps_per_epoch=25), so
90 epochs are exactly 2250 steps. 2249 steps (Opacus' PRV test) is not a multiple of 25, so
that row calls the backend's ``compute`` directly.
"""

from __future__ import annotations

import math

import dp_accounting
import pytest

from dpplan.accounting import epsilon, get_accountant
from dpplan.plan import TrainingPlan
from dpplan.solve import solve_noise_multiplier

# Opacus' test configuration (C, opacus/tests/accountants_test.py): σ=1.5, q=0.04, δ=1e-5.
OPACUS_PLAN = TrainingPlan(
    dataset_size=25, batch_size=1, noise_multiplier=1.5, epochs=90, delta=1e-5
)

KNOWN_PLAN_VALUES = [
    pytest.param(
        "rdp", 7.32933, 1e-3, id="dp_accounting-RdpAccountant-default-orders-2250steps-STYLE-AppB"
    ),
    pytest.param("rdp", 7.32911117143, 1e-3, id="opacus-accountants_test-RDP-2250steps"),
    pytest.param("pld", 6.76879, 1e-3, id="dp_accounting-PLDAccountant-1e-4-2250steps-STYLE-AppB"),
    pytest.param(
        "prv",
        6.77913,
        1e-3,
        id="prv_accountant-upper-eps_error0.01-delta_error1e-8-2250steps-STYLE-AppB",
    ),
]


def test_opacus_plan_is_q004_over_2250_steps():
    assert OPACUS_PLAN.sample_rate == 0.04
    assert OPACUS_PLAN.steps_per_epoch == 25
    assert OPACUS_PLAN.total_steps == 2250


@pytest.mark.parametrize(("method", "expected", "rtol"), KNOWN_PLAN_VALUES)
def test_known_value_for_plan(method, expected, rtol):
    assert epsilon(OPACUS_PLAN, method=method) == pytest.approx(expected, rel=rtol)


KNOWN_COMPUTE_VALUES = [
    # (method, sample_rate, noise_multiplier, delta, steps, expected, rtol)
    pytest.param(
        "prv", 0.04, 1.5, 1e-5, 2249, 6.777395712, 1e-3, id="opacus-accountants_test-PRV-2249steps"
    ),
    pytest.param(
        "prv", 0.04, 1.5, 1e-5, 2249, 6.77740, 1e-3, id="prv_accountant-upper-2249steps-STYLE-AppB"
    ),
    pytest.param(
        "pld",
        0.04,
        1.5,
        1e-5,
        2249,
        6.76705,
        1e-3,
        id="dp_accounting-PLDAccountant-2249steps-STYLE-AppB",
    ),
    # jax_privacy's module doctest (B accounting.py:15-50) prints ε ≈ 3.77 (two decimals).
    # dpplan's PLD gives 3.7697: within half a unit of the last printed digit, so the
    # tolerance is that rounding (5e-3 / 3.77 ≈ 1.4e-3), tighter than the 1e-2 first planned.
    pytest.param(
        "pld",
        0.1,
        3.0,
        1e-6,
        512,
        3.77,
        1.4e-3,
        id="jax_privacy-accounting.py-doctest-PLD-sigma3-q0.1-512steps",
    ),
]


@pytest.mark.parametrize(
    ("method", "sample_rate", "noise_multiplier", "delta", "steps", "expected", "rtol"),
    KNOWN_COMPUTE_VALUES,
)
def test_known_value_for_step_count(
    method, sample_rate, noise_multiplier, delta, steps, expected, rtol
):
    result = get_accountant(method).compute(
        sample_rate=sample_rate, noise_multiplier=noise_multiplier, delta=delta, steps=(steps,)
    )
    assert result.upper[-1] == pytest.approx(expected, rel=rtol)


def test_one_step_moves_prv_epsilon_by_about_0002():
    # STYLE Appendix B: 2249 vs 2250 steps differ by ~0.0017 in PRV's ε, so cross-library
    # tests must state the step count exactly.
    prv = get_accountant("prv")
    both = prv.compute(sample_rate=0.04, noise_multiplier=1.5, delta=1e-5, steps=(2249, 2250))
    assert 0.001 < both.upper[1] - both.upper[0] < 0.003


def _jax_privacy_event(noise_multiplier: float, steps: int) -> dp_accounting.DpEvent:
    return dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(0.1, dp_accounting.GaussianDpEvent(noise_multiplier)),
        steps,
    )


def test_jax_privacy_doctest_calibrated_noise_multiplier():
    # jax_privacy's doctest: calibrating σ to ε = 1 (PLD, q=0.1, 512 steps, δ=1e-6) gives
    # σ ≈ 9.66. 512 steps at q = 0.1 cannot be a plan (steps_per_epoch would be 10), so this
    # drives dpplan's PLD backend through its fresh() accountant, as dpplan's solvers do.
    sigma = dp_accounting.calibrate_dp_mechanism(
        make_fresh_accountant=get_accountant("pld").fresh,
        make_event_from_param=lambda value: _jax_privacy_event(value, 512),
        target_epsilon=1.0,
        target_delta=1e-6,
        bracket_interval=dp_accounting.ExplicitBracketInterval(5.0, 15.0),
        tol=1e-3,
    )
    assert sigma == pytest.approx(9.66, abs=0.005)


def test_jax_privacy_doctest_calibrated_steps():
    # jax_privacy's doctest: the most steps at σ = 3 with ε ≤ 2 (PLD, q=0.1, δ=1e-6) is 155.
    steps = dp_accounting.calibrate_dp_mechanism(
        make_fresh_accountant=get_accountant("pld").fresh,
        make_event_from_param=lambda value: _jax_privacy_event(3.0, value),
        target_epsilon=2.0,
        target_delta=1e-6,
        bracket_interval=dp_accounting.ExplicitBracketInterval(1, 512),
        discrete=True,
    )
    assert steps == 155


# --- Frisk et al., "Super-convergence and Differential Privacy" (2021) ---------------
#
# The paper (shared/papers/super-convergence-and-dp.md, §V.A and §V.C) trains on MNIST,
# N = 60000, δ = 1e-5, accounts with Opacus' RDP accountant, and reports ε = 1.75 after
# 1 epoch (one-cycle model) and ε = 7.27 after 25 epochs (plateau model). It does **not**
# report σ or the batch size, so its ε cannot be recomputed forwards, and no single (σ, B)
# gives both numbers (checked for B in 32..2048: at the σ giving 1.75 after one epoch,
# 25 epochs cost 2.2 to 5.9, not 7.27), so the two models used different settings.
#
# What is testable: with an assumed batch size (B = 256 here), dpplan's RDP solver finds a
# σ whose ε under Opacus' own RDP analysis is the paper's number to within 1%, i.e. dpplan's
# RDP backend agrees with the paper's accountant at the paper's operating points. For the
# same plans PLD and PRV certify much smaller ε: about 0.55x the paper's value after one
# epoch and 0.87x after 25 epochs (RDP's conversion to (ε, δ) is loosest for few steps).
# Those factors depend on the assumed B (0.40-0.65x and 0.84-0.89x for B in 64..600), so
# the test checks them in ranges wide enough for B = 256 only.
SUPER_CONVERGENCE = [
    pytest.param(1, 1.75, (0.5, 0.6), id="Frisk2021-super-convergence-SecV.C-1epoch-eps1.75"),
    pytest.param(25, 7.27, (0.84, 0.9), id="Frisk2021-super-convergence-SecV.C-25epochs-eps7.27"),
]
OPACUS_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))


@pytest.mark.parametrize(("epochs", "reported", "tight_ratio"), SUPER_CONVERGENCE)
def test_super_convergence_paper_epsilons(epochs, reported, tight_ratio):
    opacus_rdp = pytest.importorskip("opacus.accountants.analysis.rdp")
    plan = TrainingPlan(
        dataset_size=60000, batch_size=256, noise_multiplier=1.0, epochs=epochs, delta=1e-5
    )
    solved = solve_noise_multiplier(plan, target_epsilon=reported, method="rdp")
    rdp = opacus_rdp.compute_rdp(
        q=solved.sample_rate,
        noise_multiplier=solved.noise_multiplier,
        steps=solved.total_steps,
        orders=OPACUS_ORDERS,
    )
    opacus_epsilon, _ = opacus_rdp.get_privacy_spent(
        orders=OPACUS_ORDERS, rdp=rdp, delta=solved.delta
    )
    assert opacus_epsilon == pytest.approx(reported, rel=0.01)
    for method in ("pld", "prv"):
        ratio = epsilon(solved, method=method) / reported
        assert tight_ratio[0] <= ratio <= tight_ratio[1], (method, ratio)
    assert math.isfinite(solved.noise_multiplier)


# --- one step tells (issue 18): values that tell T from T ± 1 -----------------------------
#
# rtol 1e-3 cannot tell 2,249 from 2,250 steps (they differ by 2.6e-4 in PLD's ε). Here each
# method's ε at T − 1, T, T + 1 is computed by its library directly (not through dpplan's
# cached backends), and dpplan's ε at T must be nearer the library's ε at T than a quarter
# of the gap to either neighbour (PRV's charged round-off bound costs ~2e-4 here, a ninth
# of the gap; RDP and PLD are within 1e-5).


def _library_epsilon(method: str, steps: int) -> float:
    event = dp_accounting.PoissonSampledDpEvent(0.04, dp_accounting.GaussianDpEvent(1.5))
    if method == "rdp":
        orders = list(get_accountant("rdp").orders)
        accountant = dp_accounting.rdp.RdpAccountant(orders=orders)
        return accountant.compose(event, steps).get_epsilon(1e-5)
    if method == "pld":
        accountant = dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-4)
        return accountant.compose(event, steps).get_epsilon(1e-5)
    from prv_accountant import PRVAccountant
    from prv_accountant.privacy_random_variables import PoissonSubsampledGaussianMechanism

    accountant = PRVAccountant(
        prvs=[PoissonSubsampledGaussianMechanism(noise_multiplier=1.5, sampling_probability=0.04)],
        eps_error=0.01,
        delta_error=1e-8,
        max_self_compositions=[steps],
    )
    return accountant.compute_epsilon(1e-5, [steps])[2]


@pytest.mark.parametrize("method", ["rdp", "pld", "prv"])
@pytest.mark.parametrize("steps", [2249, 2250])
def test_known_value_tells_one_step_apart(method, steps):
    library = {count: _library_epsilon(method, count) for count in (steps - 1, steps, steps + 1)}
    gap = min(abs(library[steps] - library[steps - 1]), abs(library[steps + 1] - library[steps]))
    assert gap > 1e-4  # one step is visible at all
    ours = get_accountant(method).compute(
        sample_rate=0.04, noise_multiplier=1.5, delta=1e-5, steps=(steps,)
    )
    assert abs(ours.upper[-1] - library[steps]) < gap / 4, (ours.upper[-1], library)
    assert ours.upper[-1] >= library[steps] - 1e-8  # never tighter than the library
