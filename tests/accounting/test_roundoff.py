"""The round-off module's bound holds (issue 18): against long-double recompositions (the
constructed cases where the old estimates fell 16x and 116x short, on the mixed-radix real FFT
used then), against pocketfft's own long-double transform at the power-of-two lengths the proof
covers (and refusing the others), against exact direct
convolutions with and without a tilt, and at the PLD and PRV read-outs. Tiny δ refuses or
tilts, never answers silently.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import fft

from dpplan import TrainingPlan, epsilon_curve
from dpplan.accounting import _internals, get_accountant, roundoff
from dpplan.accounting import pld as pld_module
from dpplan.accounting import prv as prv_module
from dpplan.errors import AccountingError


def _long_double_composition(probs: np.ndarray, size: int, count: int) -> np.ndarray:
    """The same circular composition in long double (scipy's pocketfft supports it)."""
    wide = fft.rfft(probs.astype(np.longdouble), size)
    return fft.irfft(wide**count, size)


def test_binary_power_error_is_within_its_bound():
    rng = np.random.default_rng(0)
    values = np.exp(1j * rng.uniform(0, 2 * np.pi, 1000)) * rng.uniform(0.999, 1.0, 1000)
    for count in (2, 7, 1000, 2350):
        power, bound = roundoff.binary_power(values, count)
        exact = values.astype(np.clongdouble) ** count
        relative = np.abs(power - exact) / np.abs(exact)
        assert float(relative.max()) <= bound, count
        assert bound < 1e-11


def test_pld_bound_covers_the_long_double_error_where_every_cell_is_positive():
    # q = 0.01, σ = 0.3, 500 steps: every composed cell is positive, and the old estimate
    # (negative mass plus 4 ulp, over the grid) was 16x short of the true error here, with
    # the mixed-radix real FFT used then.
    interval = pld_module.PLDAccountant().grid_interval(
        sample_rate=0.01, noise_multiplier=0.3, steps=500
    )
    pmf = _internals.dense_pmfs(pld_module.pld_per_step(0.01, 0.3, interval))[0]
    lower, upper = pld_module._convolve_bounds(pmf.probs, np.array([500.0]))
    size = roundoff.fft_length(max(int(upper[0] - lower[0] + 1), len(pmf.probs)))
    composer = roundoff.Composer(pmf.probs, size)
    composed = composer.inverse(composer.power(500), 500)
    true_error = float(
        np.abs(composed.cells - _long_double_composition(pmf.probs, size, 500)).sum()
    )
    assert 0 < true_error <= composed.error


def test_prv_bound_covers_the_long_double_error_in_the_constructed_case():
    # q = 0.01, σ = 0.4, 2,000 steps: PRV's old estimate was 116x short here (mixed-radix
    # real FFT).
    backend = get_accountant("prv")
    domain, prv, _, _ = backend._domain(0.01, 0.4, 1e-5, 2000)
    pmf, _ = prv_module._discretise(prv, domain)
    size = len(pmf)  # the domain is a power of two (roundoff.fft_length)
    composer = roundoff.Composer(pmf, size)
    composed = composer.inverse(composer.power(2000), 2000)
    true_error = float(np.abs(composed.cells - _long_double_composition(pmf, size, 2000)).sum())
    assert 0 < true_error <= composed.error


def _direct(probs: np.ndarray, count: int) -> np.ndarray:
    result = probs
    for _ in range(count - 1):
        result = np.convolve(result, probs)  # direct sums of non-negative terms: exact-ish
    return result


@pytest.mark.parametrize("tilt", [0.0, 0.05, 0.3])
def test_tilted_composition_untilts_to_the_direct_convolution_within_the_bound(tilt):
    rng = np.random.default_rng(1)
    probs = rng.uniform(0, 1, 40) * np.exp(-0.2 * np.arange(40))
    probs /= probs.sum() * (1 + 1e-9)
    count, size = 12, 512  # the linear composition (12·39 + 1 = 469 cells) fits
    composer = roundoff.Composer(probs, size, tilt)
    composed = composer.inverse(composer.power(count), count)
    exact = _direct(probs, count)
    index = np.arange(len(exact))
    factor = np.exp(composed.log_scale - composed.tilt * index)
    untilted_error = np.abs(composed.cells[: len(exact)] * factor - exact)
    # Above any cell j, the untilted error is at most the bound times the factor at j.
    for j in range(0, len(exact), 25):
        assert untilted_error[j:].sum() <= composed.error * factor[j] * (1 + 1e-9) + 1e-300


@pytest.mark.parametrize("size", [512, 480, 675])  # 2^9, 2^5·3·5, 3^3·5^2 (odd)
@pytest.mark.parametrize("tilt", [0.0, 0.1])
def test_curve_compositions_two_per_inverse_are_within_their_bound(size, tilt):
    rng = np.random.default_rng(3)
    probs = rng.uniform(0, 1, 40) * np.exp(-0.1 * np.arange(40))
    probs /= probs.sum()
    counts = [2, 4, 5, 8, 11]  # 11·39 + 1 = 430 cells: no wrap-around on any grid
    composer = roundoff.Composer(probs, size, tilt)
    # (A list keeps only the last PMF's cells intact: the others share a reused buffer.)
    curve = list(roundoff.compose_curve(composer, counts))
    assert [c.count for c in curve] == counts
    single = composer.inverse(composer.power(counts[-1]), counts[-1])
    assert np.array_equal(curve[-1].cells, single.cells)  # the last: a direct power, alone
    for count, composed in zip(counts, roundoff.compose_curve(composer, counts)):
        exact = _direct(probs, count)
        factor = np.exp(composed.log_scale - composed.tilt * np.arange(len(exact)))
        untilted = np.asarray(composed.cells[: len(exact)]) * factor
        error = np.abs(untilted - exact)
        assert error.sum() > 0
        for j in range(0, len(exact), 20):  # above every cell j: within the bound there
            assert error[j:].sum() <= composed.error * factor[j] * (1 + 1e-9) + 1e-300
        assert np.abs(composed.cells[len(exact) :]).sum() <= composed.error * (1 + 1e-9)


@pytest.mark.parametrize("size", [512, 675])
def test_trials_composed_in_pairs_are_within_their_bound(size):
    rng = np.random.default_rng(4)
    probs = rng.uniform(0, 1, 40) * np.exp(-0.15 * np.arange(40))
    probs /= probs.sum()
    count = 9  # 9·39 + 1 = 352 cells: no wrap-around
    exact = _direct(probs, count)
    trials = [(0.0, size), (0.3, size), (0.1, size), (0.2, 2 * size), (0.05, size)]
    seen = []
    for index, composed in roundoff.compose_each(probs, count, trials):
        seen.append(index)
        tilt = trials[index][0]
        single = roundoff.Composer(probs, trials[index][1], tilt)
        assert composed.tilt == single.tilt and composed.log_scale == count * single.log_mgf
        factor = np.exp(composed.log_scale - composed.tilt * np.arange(len(exact)))
        error = np.abs(np.asarray(composed.cells[: len(exact)]) * factor - exact)
        assert error.sum() > 0
        for j in range(0, len(exact), 20):
            assert error[j:].sum() <= composed.error * factor[j] * (1 + 1e-9) + 1e-300
    assert sorted(seen) == list(range(len(trials)))
    first, second = roundoff.Composer.pair(probs, size, (0.0, 0.3))
    for paired, tilt in ((first, 0.0), (second, 0.3)):
        single = roundoff.Composer(probs, size, tilt)
        gap = float(np.sqrt(np.sum(np.abs(paired.transform - single.transform) ** 2)))
        assert gap <= paired.spectrum_error + single.spectrum_error
    with pytest.raises(ValueError, match="one grid length"):
        roundoff.inverse_pair(
            (first, first.power(2), 2), (roundoff.Composer(probs, 1024), first.power(2), 2)
        )


def test_certified_epsilon_is_above_the_exact_read_out():
    rng = np.random.default_rng(2)
    probs = rng.uniform(0, 1, 60)
    probs /= probs.sum()
    count, size = 8, 512
    exact = _direct(probs, count)
    losses = 0.05 * np.arange(len(exact)) - 3.0
    for tilt in (0.0, 0.1):
        composer = roundoff.Composer(probs, size, tilt)
        composed = composer.inverse(composer.power(count), count)
        for delta in (1e-3, 1e-6, 1e-9):
            value = roundoff.certified_epsilon(
                composed,
                composed.cells[: len(exact)],
                first_index=0,
                first_loss=-3.0,
                interval=0.05,
                infinity_mass=0.0,
                delta=delta,
            )
            if value is None:
                continue
            # The exact composition's δ at the certified ε is at most δ.
            above = losses > value
            assert float((exact[above] * (1 - np.exp(value - losses[above]))).sum()) <= delta


def test_fft_relative_error_grows_with_log_length():
    assert roundoff.fft_relative_error(1 << 10) < roundoff.fft_relative_error(1 << 20)
    assert roundoff.fft_relative_error(1 << 22) < 1e-12


# --- the lengths the proof covers: powers of two, complex transforms -------------------


@pytest.mark.parametrize("size", [0, 1, 7, 11, 14, 7 << 17, 11 * 243 * 8, (1 << 20) + 2, 1 << 41])
def test_lengths_the_proof_does_not_cover_are_refused(size):
    with pytest.raises(ValueError, match="not covered by the round-off proof"):
        roundoff.check_length(size)
    with pytest.raises(ValueError, match="not covered by the round-off proof"):
        roundoff.fft_relative_error(size)
    if size >= 2:
        with pytest.raises(ValueError, match="not covered by the round-off proof"):
            roundoff.Composer(np.full(2, 0.5), size)


def _covered(size: int) -> bool:
    try:
        return roundoff.check_length(size) == size
    except ValueError:
        return False


@pytest.mark.parametrize("cells", [1, 2, 7, 13, 97, 1000, 1021, 4097, 30011])
def test_fft_length_is_the_shortest_covered_length(cells):
    for even in (False, True):
        size = roundoff.fft_length(cells, even=even)
        assert _covered(size) and size >= cells and (size % 2 == 0 or not even)
        shorter = [
            n for n in range(max(cells, 2), size) if _covered(n) and (n % 2 == 0 or not even)
        ]
        assert not shorter, (cells, even, size, shorter[:3])
    assert roundoff.fft_length(768000) == 768000  # 2^11·3·5^3: prv-accountant's usual size


def test_a_pmf_longer_than_the_fft_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        roundoff.Composer(np.full(9, 0.1), 8)


# Lengths 2^a with a mod 3 = 0, 1, 2 (pocketfft's radix-8 passes alone, then a radix-2 or a
# radix-4 pass as well: ``cfftp::factorize``) and with factors 3 and 5, so every pass type the
# proof covers runs, short lengths (below 50) included.
@pytest.mark.parametrize(
    "size",
    [
        2,
        3,
        4,
        5,
        8,
        15,
        45,
        1 << 9,
        1 << 10,
        1 << 11,
        1 << 16,
        1 << 17,
        3**9,
        5**6,
        2**9 * 3 * 5**3,
    ],
)
def test_pocketfft_complex_error_is_within_the_proven_beta(size):
    rng = np.random.default_rng(size)
    value = rng.standard_normal(size) + 1j * rng.standard_normal(size)
    wide = value.astype(np.clongdouble)
    beta = roundoff.fft_relative_error(size)
    for computed, exact in (
        (fft.fft(value), fft.fft(wide)),
        (fft.ifft(value), fft.ifft(wide)),
    ):
        error = float(np.sqrt(np.sum(np.abs(computed - exact) ** 2)))
        norm = float(np.sqrt(np.sum(np.abs(exact) ** 2)))
        assert error <= beta * norm
        assert error > 0 or size <= 5  # the comparison is not vacuous


def test_fast_paths_compose_only_at_lengths_the_proof_covers(monkeypatch):
    sizes = []
    original = roundoff.Composer.__init__

    def recording(self, probs, size, tilt=0.0):
        sizes.append(size)
        original(self, probs, size, tilt)

    monkeypatch.setattr(roundoff.Composer, "__init__", recording)
    plan = TrainingPlan(
        dataset_size=60000, batch_size=256, noise_multiplier=1.1, epochs=3, delta=1e-12
    )
    for method in ("pld", "prv"):
        get_accountant(method).compute(
            sample_rate=plan.sample_rate,
            noise_multiplier=plan.noise_multiplier,
            delta=plan.delta,
            steps=(plan.steps_per_epoch, plan.total_steps),
        )
    get_accountant("prv").estimate_upper(
        sample_rate=plan.sample_rate, noise_multiplier=1.0, delta=1e-5, steps=plan.total_steps
    )
    assert len(sizes) >= 4
    assert all(roundoff.check_length(size) == size for size in sizes), sizes


# --- tiny δ: refuse or tilt, never a silent number -------------------------------------


def test_pld_refuses_below_its_tail_truncation_naming_delta_and_the_limit():
    plan = TrainingPlan(
        dataset_size=60000, batch_size=256, noise_multiplier=1.1, epochs=2, delta=1e-16
    )
    with pytest.raises(AccountingError, match=r"delta=1e-16.*limit is delta > 2e-15"):
        epsilon_curve(plan, method="pld")


def test_pld_tiny_delta_curve_is_tilted_and_never_decreases():
    plan = TrainingPlan(
        dataset_size=60000, batch_size=256, noise_multiplier=1.1, epochs=4, delta=1e-13
    )
    curve = epsilon_curve(plan, method="pld")
    # The untilted bound is too coarse at δ = 1e-13: answers are tilted recompositions.
    assert curve.settings["tilted_recomputations"] >= 1
    assert list(curve.epsilons) == sorted(curve.epsilons)
    assert all(math.isfinite(value) for value in curve.epsilons)


def test_prv_refuses_when_no_tilt_certifies(monkeypatch):
    # Make every composition's bound astronomically large (tilted or not): PRV must refuse,
    # naming δ. (A bound of 1 would not do: tilted, it degrades to a Chernoff bound.)
    original = roundoff.Composer._composed  # every inverse FFT's result passes here

    def inflated(self, cells, count, cell_l2):
        composed = original(self, cells, count, cell_l2)
        return roundoff.ComposedPMF(
            cells=composed.cells,
            count=composed.count,
            error=1e300,
            tilt=composed.tilt,
            log_scale=composed.log_scale,
            relative=composed.relative,
        )

    monkeypatch.setattr(roundoff.Composer, "_composed", inflated)
    with pytest.raises(AccountingError, match="delta=1e-05"):
        prv_module.PRVAccountant().compute(
            sample_rate=0.01, noise_multiplier=1.0, delta=1e-5, steps=(100,)
        )


def test_no_module_but_roundoff_runs_an_fft():
    # Every Fourier-domain composition of dpplan's own goes through the round-off module (its
    # proof covers only its transforms); other paths compose with the libraries' own code.
    import pathlib
    import re

    import dpplan

    package = pathlib.Path(dpplan.__file__).parent
    pattern = re.compile(r"\bfft\b|numpy\.fft|scipy\.fft|\bfftconvolve\b|\bpocketfft\b")
    offenders = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path.name != "roundoff.py"
        for line in path.read_text().splitlines()
        if not line.lstrip().startswith("#")
        and pattern.search(line.split("#")[0])
        and ("import" in line or "fft." in line or "fftconvolve(" in line)
    ]
    assert not offenders, offenders
    assert pattern.search((package / "accounting" / "roundoff.py").read_text())  # not vacuous
