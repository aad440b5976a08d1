"""Sampling schemes beyond Poisson, accounted as dp-accounting accounts them (issue 20).

The ledger (:mod:`dpplan.ledger`) records steps of four schemes (:data:`SCHEMES`); this module
says which neighbouring relation each is stated for, which methods account it, and computes ε
for mechanisms that include fixed-size or truncated Poisson steps:

* ``"fixed_size"`` (replace-one; RDP only): batches of exactly ``batch_size`` drawn without
  replacement, independently every step: dp-accounting's ``SampledWithoutReplacementDpEvent``
  in its ``RdpAccountant`` with ``REPLACE_ONE`` (Wang, Balle & Kasiviswanathan 2019, Thm 27).
  Replacing one example moves a sum of gradients clipped to C by up to 2C, and dp-accounting
  passes the Gaussian's noise multiplier to a formula that expects noise / sensitivity
  (google/differential-privacy#378), so the event composed has σ/2 (:func:`fixed_size_event`).
  dp-accounting's PLD has no sampled-without-replacement event and prv-accountant no such PRV.
* ``"truncated_poisson"`` (add-or-remove-one; PLD only): Poisson sampling, a batch over
  ``max_batch_size`` cut to a random subset of that size: dp-accounting's
  ``TruncatedSubsampledGaussianDpEvent`` in its ``PLDAccountant`` (arXiv 2508.15089), composed
  with Poisson and shuffled steps in one PLD. RDP and PRV cannot account it.

It also holds :func:`largest_within`, the ledger's search for the steps that fit a budget.
"""

from __future__ import annotations

import dataclasses
import math

from dpplan.accounting.base import METHODS, result_cache
from dpplan.errors import AccountingError, PlanError

__all__ = [
    "ADD_OR_REMOVE_ONE",
    "REFUSALS",
    "REPLACE_ONE",
    "SCHEMES",
    "TRUNCATED_PLD_INTERVAL",
    "LedgerRecord",
    "Scheme",
    "check_scheme",
    "composed_epsilon",
    "fixed_size_event",
    "largest_within",
    "refuse_method",
]

#: Smallest PLD discretisation interval for ledgers with truncated Poisson records: the
#: pessimistic PLD stays an upper bound on a coarser grid (at 1e-3, ~2e-5 relative looser
#: than at 1e-4 for 200 steps at q = 0.01, σ = 1) and a query costs ~0.2 s instead of ~2 s.
TRUNCATED_PLD_INTERVAL = 1e-3

ADD_OR_REMOVE_ONE = "add_or_remove_one"
REPLACE_ONE = "replace_one"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Scheme:
    """A sampling scheme as the ledger accounts it.

    Attributes:
        name: the ``sampling`` value.
        relation: the neighbouring relation its ε is stated for.
        methods: the methods that account it (the others refuse it by name).
        accounted_as: the mechanism composed, in words.
    """

    name: str
    relation: str
    methods: tuple[str, ...]
    accounted_as: str


#: The sampling schemes a ledger records, by name.
SCHEMES = {
    scheme.name: scheme
    for scheme in (
        Scheme(
            name="poisson",
            relation=ADD_OR_REMOVE_ONE,
            methods=METHODS,
            accounted_as="Poisson-subsampled Gaussian at sample_rate",
        ),
        Scheme(
            name="shuffle",
            relation=ADD_OR_REMOVE_ONE,
            methods=METHODS,
            accounted_as="no amplification: one full-batch Gaussian per started epoch",
        ),
        Scheme(
            name="fixed_size",
            relation=REPLACE_ONE,
            methods=("rdp",),
            accounted_as="dp-accounting SampledWithoutReplacementDpEvent(N, batch_size, "
            "Gaussian(σ/2)), replace-one (sensitivity 2C)",
        ),
        Scheme(
            name="truncated_poisson",
            relation=ADD_OR_REMOVE_ONE,
            methods=("pld",),
            accounted_as="dp-accounting TruncatedSubsampledGaussianDpEvent(N, sample_rate, "
            "max_batch_size, σ)",
        ),
    )
}


def composed_epsilon(items: list, *, dataset_size: int, delta: float, method: str) -> float:
    """Return ``method``'s ε upper bound for ``items`` (``(mechanism, count)`` pairs, a
    mechanism ``(q, σ)`` (Poisson) or ``(q, σ, scheme, batch size)``) some of which are
    fixed-size or truncated Poisson, computed as dp-accounting's accountants compute a ``ComposedDpEvent`` of one
    ``SelfComposedDpEvent`` per mechanism (:func:`fixed_size_event`, or dp-accounting's
    ``PoissonSampledDpEvent`` / ``TruncatedSubsampledGaussianDpEvent``): RDP (replace-one; only
    fixed-size records reach it) sums count × per-step RDP and converts it with
    ``compute_epsilon``, as ``RdpAccountant`` does; PLD composes each mechanism's
    one-step PLD self-composed ``count`` times onto the identity, as ``PLDAccountant``
    does. The one-step RDP vectors and PLDs are cached (they cost 0.1-0.2 s each)."""
    import dp_accounting

    from dpplan.accounting import get_accountant

    backend = get_accountant(method)
    try:
        if method == "rdp":
            if any(len(m) == 2 or m[2] != "fixed_size" for m, _ in items):
                raise AccountingError("rdp composes only fixed-size records here")
            orders = tuple(backend.orders)
            total = 0
            for m, count in items:
                total = total + count * _fixed_size_rdp(dataset_size, m[3], m[1], orders)
            rdp = dp_accounting.rdp.rdp_privacy_accountant
            return float(rdp.compute_epsilon(orders, total, delta)[0])
        total_steps = sum(c for _, c in items)
        interval = max(  # the sensitivity-2 part of truncation: size the grid for σ/2
            TRUNCATED_PLD_INTERVAL,
            *(
                backend.grid_interval(
                    sample_rate=m[0],
                    noise_multiplier=m[1] / 2 if len(m) > 2 else m[1],
                    steps=total_steps,
                )
                for m, _ in items
            ),
        )
        pld = dp_accounting.pld.privacy_loss_distribution.identity(
            value_discretization_interval=interval
        )
        for m, count in items:
            pld = pld.compose(_one_step_pld(dataset_size, m, interval).self_compose(count))
        return float(pld.get_epsilon_for_delta(delta))
    except (ValueError, RuntimeError, ArithmeticError, MemoryError) as exc:
        raise AccountingError(
            f"{method} accountant failed for {[m[2:3] or ('poisson',) for m, _ in items]}: {exc!r}"
        ) from exc


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class LedgerRecord:
    """Consecutive noisy steps of one kind.

    Attributes:
        noise_multiplier: σ of every step.
        sample_rate: Poisson sample rate q (batch_size / dataset_size when a batch size was
            given).
        steps: number of steps.
        batch_size: the (expected) batch size given, or ``None`` if a sample rate was given.
        sampling: the scheme (:data:`SCHEMES`): ``"poisson"`` (Poisson sampling at
            ``sample_rate``), ``"shuffle"`` (shuffled fixed batches of ``batch_size``, each
            example once per epoch), ``"fixed_size"`` (``batch_size`` examples drawn without
            replacement every step) or ``"truncated_poisson"`` (Poisson, cut to
            ``max_batch_size``).
        max_batch_size: the truncation of ``"truncated_poisson"`` records, else ``None``.
    """

    noise_multiplier: float
    sample_rate: float
    steps: int
    batch_size: int | None = None
    sampling: str = "poisson"
    max_batch_size: int | None = None

    @property
    def kind(self) -> LedgerRecord:
        """The record without its step count: records of one kind merge."""
        return dataclasses.replace(self, steps=0)

    def to_dict(self) -> dict:
        """Return the record's fields, JSON-ready (``max_batch_size`` only when set)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if data["max_batch_size"] is None:
            del data["max_batch_size"]
        return data


#: Why a method refuses a scheme (dp-accounting 0.6.0, prv-accountant).
REFUSALS = {
    ("pld", "fixed_size"): "dp-accounting's PLDAccountant has no sampled-without-replacement "
    "event; nothing is accounted as if Poisson.",
    ("prv", "fixed_size"): "prv-accountant has no sampled-without-replacement PRV; nothing is "
    "accounted as if Poisson.",
    ("rdp", "truncated_poisson"): "dp-accounting's RdpAccountant has no truncated Poisson "
    "event; nothing is accounted as if Poisson.",
    ("prv", "truncated_poisson"): "prv-accountant has no truncated Poisson PRV; nothing is "
    "accounted as if Poisson.",
}


@result_cache(maxsize=64)
def _fixed_size_rdp(dataset_size: int, batch_size: int, noise_multiplier: float, orders: tuple):
    """Per-step RDP of :func:`fixed_size_event`, as dp-accounting's ``RdpAccountant``
    (``REPLACE_ONE``) computes it for that event."""
    from dpplan.accounting._internals import sample_wor_gaussian_rdp

    vector = sample_wor_gaussian_rdp(batch_size / dataset_size, noise_multiplier / 2, orders)
    vector.setflags(write=False)
    return vector


@result_cache(maxsize=32)
def _one_step_pld(dataset_size: int, mechanism: tuple, interval: float):
    """One step's PLD (add-or-remove), as dp-accounting's ``PLDAccountant`` builds it for a
    ``PoissonSampledDpEvent`` of a Gaussian or a ``TruncatedSubsampledGaussianDpEvent``."""
    from dp_accounting.pld import privacy_loss_distribution as pld

    from dpplan.accounting.pld import pld_per_step

    if len(mechanism) == 2:  # the PLD backend's, shared with phased plans and compose_runs
        return pld_per_step(mechanism[0], mechanism[1], interval)
    return pld.from_truncated_subsampled_gaussian_mechanism(
        dataset_size=dataset_size,
        sampling_probability=mechanism[0],
        truncated_batch_size=mechanism[3],
        noise_multiplier=mechanism[1],
        value_discretization_interval=interval,
        neighboring_relation=_add_or_remove(),
    )


def _add_or_remove():
    import dp_accounting

    return dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE


def fixed_size_event(dataset_size: int, batch_size: int, noise_multiplier: float):
    """Return dp-accounting's event for one fixed-size (without replacement) DP-SGD step.

    ``SampledWithoutReplacementDpEvent(dataset_size, batch_size, GaussianDpEvent(σ/2))``, for
    dp-accounting's RdpAccountant with ``REPLACE_ONE``: replacing one example moves a sum of
    gradients clipped to C by up to 2C, so noise / sensitivity is σ/2 (dp-accounting passes the
    Gaussian's multiplier to a formula that expects noise / sensitivity; see
    google/differential-privacy#378).

    Example:
        >>> fixed_size_event(100, 10, 2.0).event.noise_multiplier
        1.0
    """
    import dp_accounting

    return dp_accounting.SampledWithoutReplacementDpEvent(
        source_dataset_size=dataset_size,
        sample_size=batch_size,
        event=dp_accounting.GaussianDpEvent(noise_multiplier / 2),
    )


def largest_within(measure, budget: float, limit: int, *, start: int) -> int:
    """Largest k in [start, limit] with ``measure(k) <= budget``, given that ``start`` fits
    (k = 0 always does); ``measure`` is non-decreasing up to discretisation jitter.

    Doubling brackets the boundary; then interpolation in the bracket (probing the guess and
    its neighbour, so a good guess ends the search) alternates with bisection, so the bracket
    at least halves every two rounds. The answer fits and the next count does not.
    """
    if limit <= start:
        return start
    low, low_value = start, (measure(start) if start else 0.0)
    step = max(1, start // 4)
    while True:
        probe = min(limit, low + step)
        value = measure(probe)
        if not (value <= budget):
            high, high_value = probe, value
            break
        low, low_value = probe, value
        if probe == limit:
            return limit
        step *= 2
    interpolate = True
    while high - low > 1:
        if interpolate and math.isfinite(high_value) and high_value > low_value:
            share = (budget - low_value) / (high_value - low_value)
            guess = min(high - 1, max(low + 1, low + round(share * (high - low))))
            guesses = [guess, guess + 1] if measure(guess) <= budget else [guess, guess - 1]
        else:
            guesses = [(low + high) // 2]
        for guess in guesses:
            if not (low < guess < high):
                continue
            value = measure(guess)
            if value <= budget:
                low, low_value = guess, value
            else:
                high, high_value = guess, value
        interpolate = not interpolate
    return low


def check_scheme(
    sampling: str, *, relation: str | None, recorded: tuple[str, ...], methods: tuple[str, ...]
) -> None:
    """Refuse ``sampling`` in a ledger whose records have another neighbouring ``relation``
    (``None``: no record yet) or whose ``methods`` cannot account it with ``recorded``.

    Raises:
        PlanError: (field ``sampling``) naming the relations, or the methods that can.
    """
    scheme = SCHEMES[sampling]
    if relation is not None and scheme.relation != relation:
        raise PlanError(
            "sampling",
            sampling,
            f"a scheme with this ledger's neighbouring relation ({relation}, from its "
            f"{recorded} records), not {scheme.relation}",
            "One ε states one relation; converting by group privacy (a replace-one pair is "
            "two add/remove steps apart) would double ε and more, so dpplan does not mix "
            "them. Use one ledger per relation.",
        )
    schemes = (*recorded, sampling)
    if not any(all(m in SCHEMES[s].methods for s in schemes) for m in methods):
        raise PlanError(
            "sampling",
            sampling,
            f"a scheme one of this ledger's methods {methods} accounts (with the schemes "
            f"recorded, {recorded}); {sampling!r} is accounted only by "
            f"{', '.join(scheme.methods)}",
            "Build the ledger with methods that include it.",
        )


def refuse_method(method: str, schemes: tuple[str, ...]) -> None:
    """Refuse ``method`` if it cannot account one of ``schemes``, naming the scheme.

    Raises:
        PlanError: (field ``method``) with the methods that can, and why this one cannot.
    """
    refused = [s for s in schemes if method not in SCHEMES[s].methods]
    if refused:
        scheme = SCHEMES[refused[0]]
        raise PlanError(
            "method",
            method,
            f"a method that accounts sampling={scheme.name!r} ({scheme.relation}): "
            f"{', '.join(scheme.methods)}",
            REFUSALS[(method, scheme.name)],
        )
