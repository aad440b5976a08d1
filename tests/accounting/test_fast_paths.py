"""Issue 14's fast paths stay upper bounds: the PLD curve composed in the Fourier domain,
the PRV backend's one-CDF-per-edge discretisation and float64 estimate, the PRV σ search on
that estimate, and the CLI's RDP path without dp-accounting's package ``__init__``.
Nothing here is timed.
"""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys

import dp_accounting
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prv_accountant import discretisers
from prv_accountant.privacy_random_variables import (
    PoissonSubsampledGaussianMechanism,
    PrivacyRandomVariableTruncated,
)

from dpplan import solve
from dpplan.accounting import epsilon_curve, get_accountant
from dpplan.accounting import pld as pld_module
from dpplan.accounting import prv as prv_module
from dpplan.plan import TrainingPlan

MNIST = TrainingPlan(dataset_size=60000, batch_size=256, noise_multiplier=1.1, epochs=3, delta=1e-5)


# --- PLD: Fourier-domain curve -------------------------------------------------------


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([(1000, 20), (10000, 100), (60000, 600), (2000, 2000)]),
    st.floats(min_value=0.8, max_value=4.0),
    st.integers(min_value=2, max_value=14),
)
def test_pld_curve_never_decreases_and_ends_at_the_single_query(sizes, noise_multiplier, epochs):
    plan = TrainingPlan(
        dataset_size=sizes[0],
        batch_size=sizes[1],
        noise_multiplier=noise_multiplier,
        epochs=epochs,
        delta=1e-5,
    )
    backend = get_accountant("pld")
    raw = backend.compute(
        sample_rate=plan.sample_rate,
        noise_multiplier=noise_multiplier,
        delta=plan.delta,
        steps=tuple(plan.steps_after(e) for e in range(1, epochs + 1)),
    ).upper
    # The backend's raw per-epoch bounds already increase (no smoothing needed) ...
    assert all(a <= b for a, b in itertools.pairwise(raw))
    # ... and the curve's last point is the single query for the whole plan.
    assert epsilon_curve(plan, method="pld").epsilon == backend.epsilon(plan)


@pytest.mark.parametrize("epochs", [1, 4])
def test_pld_curve_points_bound_dp_accountings_self_composition(epochs):
    # Same single-step PLD, composed by the library per epoch: dpplan is never tighter
    # (up to the library's own unbudgeted FFT round-off) and within 5e-5 (dpplan charges a
    # proven round-off bound, ~3e-9 here, to δ = 1e-5: about 1e-5 of ε).
    plan = MNIST.replace(epochs=epochs)
    curve = epsilon_curve(plan, method="pld")
    step = pld_module.pld_per_step(
        plan.sample_rate, plan.noise_multiplier, curve.settings["value_discretization_interval"]
    )
    for epoch, value in zip(curve.epochs, curve.epsilons, strict=True):
        library = step.self_compose(plan.steps_after(epoch)).get_epsilon_for_delta(plan.delta)
        assert library - 1e-8 <= value <= library * (1 + 5e-5), epoch


def test_pld_read_out_equals_dp_accountings_on_the_same_pmf():
    from dp_accounting.pld import pld_pmf

    rng = np.random.default_rng(7)
    probs = rng.random(5000) ** 8
    probs /= probs.sum() * (1 + 1e-7)
    for lower_loss, delta in [(-2000, 1e-5), (-100, 1e-3), (10, 1e-6), (-4999, 0.5)]:
        pmf = pld_pmf.DensePLDPmf(1e-3, lower_loss, probs, 1e-9, True)
        expected = pmf.get_epsilon_for_delta(delta)
        found = pld_module._epsilon_for_delta(
            probs, first_loss=lower_loss * 1e-3, interval=1e-3, infinity_mass=1e-9, delta=delta
        )
        assert found == pytest.approx(expected, rel=1e-9, abs=1e-12), (lower_loss, delta)


def test_pld_read_out_is_infinite_when_the_infinity_mass_exceeds_delta():
    probs = np.full(10, 0.1)
    assert (
        pld_module._epsilon_for_delta(
            probs, first_loss=0.0, interval=0.1, infinity_mass=2e-5, delta=1e-5
        )
        == math.inf
    )


# --- PRV: discretisation and float64 estimate ---------------------------------------


@pytest.mark.parametrize(
    ("sample_rate", "noise_multiplier", "steps"),
    [(256 / 60000, 1.1, 705), (0.04, 1.5, 200), (1.0, 5.0, 10), (4096 / 50000, 2.0, 130)],
)
def test_prv_discretisation_matches_prv_accountants_cell_centred(
    sample_rate, noise_multiplier, steps
):
    backend = get_accountant("prv")
    domain, prv, _, _ = backend._domain(sample_rate, noise_multiplier, 1e-5, steps)
    truncated = PrivacyRandomVariableTruncated(prv, domain.t_min(), domain.t_max())
    library = discretisers.CellCentred().discretise(truncated, domain)
    pmf, shift = prv_module._discretise(prv, domain)
    # One CDF per edge: the cells partition the domain exactly (the library's cells, of
    # width dt in float64 around long-double centres, overlap by up to ~1e-15).
    assert np.abs(pmf - np.asarray(library.pmf, dtype=np.float64)).max() < 1e-12
    assert shift == pytest.approx(float(library.domain.shifts()), abs=1e-12)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-12)
    estimate, _ = prv_module._discretise(
        prv_module._Float64PRV(sample_rate, noise_multiplier), domain, float64=True
    )
    assert np.abs(estimate - pmf).max() < 1e-14


@pytest.mark.parametrize(
    ("sample_rate", "noise_multiplier"), [(256 / 60000, 1.1), (0.04, 0.5), (1.0, 5.0), (0.5, 2.0)]
)
def test_prv_cdf_evaluated_once_per_edge_is_the_librarys_bit_for_bit(sample_rate, noise_multiplier):
    prv = PoissonSubsampledGaussianMechanism(
        sampling_probability=sample_rate, noise_multiplier=noise_multiplier
    )
    domain, _, _, _ = get_accountant("prv")._domain(sample_rate, noise_multiplier, 1e-5, 100)
    edges = np.concatenate(([-50.0, -1.0, 0.0], domain.ts()[::7], [30.0, 1e3]))
    library = prv.cdf(edges)
    ours = prv_module._library_cdf(prv, edges)
    assert ours.dtype == library.dtype
    # Exact equality of every value (long double's padding bytes are not compared).
    assert np.array_equal(ours, library) and not np.isnan(ours).any()
    assert 0 < np.count_nonzero((ours > 0) & (ours < 1))  # not a constant comparison


def test_prv_safe_domain_size_is_prv_accountants():
    from prv_accountant.accountant import compute_safe_domain_size

    prv = PoissonSubsampledGaussianMechanism(sampling_probability=0.01, noise_multiplier=0.9)
    assert prv_module._safe_domain_size(
        prv, 3000, eps_error=0.01, delta_error=1e-8
    ) == compute_safe_domain_size([prv], [3000], eps_error=0.01, delta_error=1e-8)


@pytest.mark.parametrize("plan", [MNIST, MNIST.replace(batch_size=4096, noise_multiplier=2.0)])
def test_prv_estimate_tracks_the_rigorous_upper_bound(plan):
    backend = get_accountant("prv")
    rigorous = backend.epsilon(plan)
    for sizing in (None, plan.noise_multiplier * 0.9):
        estimate = backend.estimate_upper(
            sample_rate=plan.sample_rate,
            noise_multiplier=plan.noise_multiplier,
            delta=plan.delta,
            steps=plan.total_steps,
            domain_noise_multiplier=sizing,
        )
        assert estimate == pytest.approx(rigorous, abs=1e-6)


# --- PRV σ solve on the estimate -----------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "target"),
    [(MNIST.replace(epochs=20), 2.0), (MNIST.replace(batch_size=4096, epochs=30), 6.0)],
)
def test_prv_sigma_solve_evaluates_rigorously_once_and_stays_tight(plan, target, monkeypatch):
    backend = get_accountant("prv")
    backend.clear_cache()
    rigorous = []
    original = type(backend)._compute

    def counting(self, **kwargs):
        rigorous.append(kwargs["noise_multiplier"])
        return original(self, **kwargs)

    monkeypatch.setattr(type(backend), "_compute", counting)
    solved = solve.solve_noise_multiplier(plan, target_epsilon=target, method="prv")
    assert len(rigorous) == 1  # the answer, verified; the search ran on estimates
    assert backend.epsilon(solved) <= target
    # Tight: within 0.1% of the smallest σ that PRV certifies.
    assert backend.epsilon(solved.replace(noise_multiplier=solved.noise_multiplier * 0.999)) > (
        target
    )


def test_prv_sigma_solve_falls_back_to_the_general_search_when_estimates_fail(monkeypatch):
    from dpplan.errors import AccountingError

    def refuse(self, **kwargs):
        raise AccountingError("estimate refused")

    monkeypatch.setattr(prv_module.PRVAccountant, "estimate_upper", refuse)
    plan = MNIST.replace(epochs=5)
    solved = solve.solve_noise_multiplier(plan, target_epsilon=2.0, method="prv")
    assert get_accountant("prv").epsilon(solved) <= 2.0


def test_prv_sigma_solve_retries_when_the_rigorous_check_misses(monkeypatch):
    # An estimate that is optimistic by 1e-3 lands just over the target; the rigorous check
    # catches it and σ is raised until the rigorous ε fits (or the general search takes over).
    original = prv_module.PRVAccountant.estimate_upper

    def optimistic(self, **kwargs):
        return original(self, **kwargs) - 1e-3

    monkeypatch.setattr(prv_module.PRVAccountant, "estimate_upper", optimistic)
    solved = solve.solve_noise_multiplier(MNIST, target_epsilon=1.0, method="prv")
    assert get_accountant("prv").epsilon(solved) <= 1.0


# --- CLI: RDP without dp-accounting's package __init__ --------------------------------


def test_cli_rdp_epsilon_skips_dp_accountings_package_init_and_matches_the_library():
    code = (
        "import sys, json\n"
        "from dpplan.cli import main\n"
        "rc = main(['epsilon', '--method', 'rdp', '--dataset-size', '60000', '--batch-size',"
        " '256', '--noise-multiplier', '1.1', '--epochs', '3', '--delta', '1e-5', '--json'])\n"
        "heavy = [m for m in ('dp_accounting.pld', 'dp_accounting.mechanism_calibration',"
        " 'scipy.signal', 'scipy.optimize', 'prv_accountant') if m in sys.modules]\n"
        "print(json.dumps({'rc': rc, 'heavy': heavy}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    lines = done.stdout.strip().splitlines()
    status = json.loads(lines[-1])
    assert status == {"rc": 0, "heavy": []}
    result = json.loads("\n".join(lines[:-1]))
    library = dp_accounting.rdp.RdpAccountant(orders=list(get_accountant("rdp").orders))
    library.compose(
        dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(256 / 60000, dp_accounting.GaussianDpEvent(1.1)),
            MNIST.total_steps,
        )
    )
    assert result["epsilon"] == pytest.approx(library.get_epsilon(1e-5), rel=1e-12)


def test_deferred_package_init_runs_on_first_use_with_the_same_classes():
    code = (
        "from dpplan.accounting._imports import defer_dp_accounting_init\n"
        "assert defer_dp_accounting_init()\n"
        "from dp_accounting import dp_event\n"
        "from dp_accounting.rdp import rdp_privacy_accountant\n"
        "import dp_accounting\n"
        "assert dp_accounting.GaussianDpEvent is dp_event.GaussianDpEvent\n"
        "assert dp_accounting.rdp.RdpAccountant is rdp_privacy_accountant.RdpAccountant\n"
        "assert dp_accounting.pld.PLDAccountant is not None\n"
        "assert not defer_dp_accounting_init()\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "ok"
