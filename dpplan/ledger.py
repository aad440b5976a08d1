"""The ledger: account a training loop as it runs, and stop it at a budget.

A :class:`Ledger` records what a DP-SGD loop actually did (noisy steps, each with its noise
multiplier and Poisson sample rate) and answers ε for everything recorded at any time. With
a budget, :meth:`Ledger.record` refuses (``BudgetExhausted``) a record that would take ε over
it, and leaves the ledger unchanged, so ``ledger.record(...)`` before ``optimizer.step()`` is a
budget guard for any loop. :meth:`Ledger.remaining_steps` says exactly how many more steps of a
kind fit.

**Sampling.** Every record names its scheme; each scheme is accounted as the libraries
account it, by the methods that can, under one neighbouring relation (:data:`SCHEMES`):

* ``"poisson"`` (add-or-remove-one; RDP, PRV, PLD): amplification by Poisson sampling.
* ``"shuffle"`` (add-or-remove-one; RDP, PRV, PLD): shuffled fixed batches, accounted with
  **no** amplification, as no tight analysis of shuffling is known: each started epoch is one
  full-batch Gaussian step per example. :meth:`Ledger.as_if_poisson_epsilon` gives the "as if
  Poisson" number beside it, which is not a guarantee.
* ``"fixed_size"`` (replace-one; RDP only): batches of exactly ``batch_size`` drawn without
  replacement, independently every step: dp-accounting's ``SampledWithoutReplacementDpEvent``
  in its ``RdpAccountant`` with ``REPLACE_ONE`` (Wang, Balle & Kasiviswanathan 2019, Thm 27).
  Replacing one example moves a sum of gradients clipped to C by up to 2C, and dp-accounting
  passes the Gaussian's noise multiplier to a formula that expects noise / sensitivity
  (google/differential-privacy#378), so the event dpplan composes has σ/2. dp-accounting's PLD
  has no sampled-without-replacement event and prv-accountant no such PRV: both refuse.
* ``"truncated_poisson"`` (add-or-remove-one; PLD only): Poisson sampling at ``sample_rate``,
  a batch over ``max_batch_size`` cut down to a random subset of that size: dp-accounting's
  ``TruncatedSubsampledGaussianDpEvent`` in its ``PLDAccountant`` (arXiv 2508.15089), composed
  with any Poisson and shuffled records in one PLD. RDP and PRV cannot account it and refuse.

One ε states one relation, so a ledger does not mix ``"fixed_size"`` with the other schemes:
such a record is refused (``PlanError``). A replace-one pair is two add/remove steps apart, so
a bound could only be converted by group privacy (ε doubled, δ multiplied by 1 + e^ε) and RDP
cannot compose Poisson steps under replace-one; dpplan refuses rather than mix loosely. Nothing
is accounted as if Poisson: a method that cannot account a scheme recorded refuses it by name,
and the headline is the smallest bound of the methods that can.

**Which ε.** ``epsilon(method="rdp" | "prv" | "pld")`` is that method's upper bound for
everything recorded, computed as ``dpplan.epsilon`` computes it (a ledger fed a plan's steps
gives the plan's ε exactly). ``epsilon()`` is the headline: the smallest upper bound of the
ledger's methods. The guard and :meth:`remaining_steps` use the headline of exact bounds.

**Speed.** ``epsilon()`` is meant to be called after every step. RDP is exact every time
(~0.1 ms). PRV and PLD cost 0.1-1 s per exact query, so the headline reuses bounds already
computed for *more* steps of the current kind: ε never decreases with more steps (the shorter
run is a post-processing of the longer one), so a bound for c >= n steps is a valid bound for
n steps. When no such bound is known, the exact bound for n steps is computed, together with
bounds for up to :data:`BLOCK_POINTS` step counts up to 2n (one discretisation, one inverse
FFT per count). Between those counts (at most ~1.6% apart) the headline is valid and slightly
looser than exact; with a budget it never exceeds the budget while the guard admits (it is
then computed exactly). Fixed-size steps cost about as much as RDP's (their per-step RDP is
cached, ~2 ms a step with the guard); truncated Poisson steps cost one PLD self-composition
per new step count (~0.07 s at N = 10,000, its one-step PLD cached).
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any

from dpplan import _validate
from dpplan.errors import AccountingError, BudgetExhausted, PlanError
from dpplan.plan import MAX_DATASET_SIZE, MAX_TOTAL_STEPS, NOISE_MULTIPLIER_MIN

__all__ = ["BLOCK_POINTS", "SCHEMES", "Ledger", "LedgerRecord", "Scheme"]

#: Most step counts a PRV or PLD block of bounds covers ahead of the current count.
BLOCK_POINTS = 64
#: Smallest PLD discretisation interval for ledgers with truncated Poisson records: the
#: pessimistic PLD stays an upper bound on a coarser grid (at 1e-3, ~2e-5 relative looser
#: than at 1e-4 for 200 steps at q = 0.01, σ = 1) and a query costs ~0.2 s instead of ~2 s.
TRUNCATED_PLD_INTERVAL = 1e-3
#: Schema version of :meth:`Ledger.to_dict`.
FORMAT_VERSION = 1
_METHODS = ("rdp", "prv", "pld")
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
            methods=_METHODS,
            accounted_as="Poisson-subsampled Gaussian at sample_rate",
        ),
        Scheme(
            name="shuffle",
            relation=ADD_OR_REMOVE_ONE,
            methods=_METHODS,
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
_SAMPLING = tuple(SCHEMES)


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

    def to_dict(self) -> dict[str, Any]:
        """Return the record's fields, JSON-ready (``max_batch_size`` only when set)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if data["max_batch_size"] is None:
            del data["max_batch_size"]
        return data


class Ledger:
    """What a DP-SGD loop did so far, its ε, and an optional ε budget.

    Args:
        dataset_size: records N the batches are sampled from (1..10^10).
        delta: the δ of every ε, in (0, 1).
        budget: the largest ε allowed (finite, > 0), or ``None`` for no guard.
        methods: the methods whose smallest upper bound is the headline (default all three).
            ``("rdp",)`` makes every question cost well under a millisecond, at a looser ε;
            with PRV and PLD the first budget question for a kind of step costs a few exact
            queries (~0.1-1 s each).

    Raises:
        PlanError: for an invalid argument.

    Example:
        >>> ledger = Ledger(dataset_size=60000, delta=1e-5, budget=1.0, methods=("rdp",))
        >>> ledger.record(noise_multiplier=1.1, batch_size=256, steps=1000)
        >>> round(ledger.epsilon(), 3), ledger.remaining_steps(noise_multiplier=1.1,
        ...                                                   batch_size=256)
        (0.889, 709)
    """

    def __init__(
        self,
        *,
        dataset_size: int,
        delta: float,
        budget: float | None = None,
        methods: tuple[str, ...] = _METHODS,
    ) -> None:
        self.dataset_size = _validate.integer(
            minimum=1, maximum=MAX_DATASET_SIZE, dataset_size=dataset_size
        )
        self.delta = _validate.open_interval(low=0.0, high=1.0, delta=delta)
        self.budget = None if budget is None else _validate.finite_positive(budget=budget)
        if isinstance(methods, str) or not methods:
            raise PlanError("methods", methods, "a non-empty tuple of method names")
        chosen = {_validate.choice(options=_METHODS, method=method) for method in methods}
        self.methods = tuple(method for method in _METHODS if method in chosen)
        self._records: list[LedgerRecord] = []
        self._counts: dict[tuple[float, float], int] = {}
        self._last: tuple[float, float] | None = None
        self._steps = 0
        # (method, prefix, mechanism) -> sorted counts and their bounds (valid upper bounds).
        self._known: dict[tuple, tuple[list[int], list[float]]] = {}
        self._exact: dict[tuple, float] = {}
        # (state key, kind of step, how many of them fit the budget) for the last question.
        self._remaining: tuple[tuple, LedgerRecord, int] | None = None

    # --- recording -------------------------------------------------------------------------

    @property
    def records(self) -> tuple[LedgerRecord, ...]:
        """The records, consecutive identical ones merged."""
        return tuple(self._records)

    def segments(self):
        """Return what was recorded as :class:`~dpplan.accounting.segments.Segment` values,
        one per (sample rate, noise multiplier), for ``epsilon_of_segments`` at another δ."""
        from dpplan.accounting.segments import Segment

        if any(len(mechanism) > 2 for mechanism in self._counts):
            raise PlanError(
                "sampling",
                self.schemes,
                "only 'poisson' or 'shuffle' records to be given as Poisson segments",
                "Fixed-size and truncated Poisson steps are not Poisson segments.",
            )
        return tuple(
            Segment(sample_rate=q, noise_multiplier=s, steps=c)
            for (q, s), c in self._counts.items()
        )

    @property
    def schemes(self) -> tuple[str, ...]:
        """The sampling schemes recorded, in the order first recorded."""
        return tuple(dict.fromkeys(record.sampling for record in self._records))

    @property
    def neighbouring_relation(self) -> str:
        """The neighbouring relation every ε of this ledger is stated for:
        ``"add_or_remove_one"`` or ``"replace_one"`` (``"fixed_size"`` records). An empty
        ledger states ε = 0, true under both; it reports the default scheme's relation."""
        if self._records:
            return SCHEMES[self._records[0].sampling].relation
        return SCHEMES["poisson"].relation

    def capable_methods(self, schemes: tuple[str, ...] | None = None) -> tuple[str, ...]:
        """The ledger's methods that account every scheme in ``schemes`` (default: those
        recorded); the headline is the smallest bound among them."""
        schemes = self.schemes if schemes is None else schemes
        return tuple(
            method
            for method in self.methods
            if all(method in SCHEMES[scheme].methods for scheme in schemes)
        )

    @property
    def total_steps(self) -> int:
        """Noisy steps recorded."""
        return self._steps

    def _mechanism(
        self, noise_multiplier: object, batch_size: object, sample_rate: object
    ) -> tuple[float, float, int | None]:
        sigma = _validate.finite_positive(
            hint="The noise multiplier of the step (noise std / max_grad_norm).",
            noise_multiplier=noise_multiplier,
        )
        if not (sigma >= NOISE_MULTIPLIER_MIN):
            raise PlanError(
                "noise_multiplier", noise_multiplier, f"a finite number >= {NOISE_MULTIPLIER_MIN}"
            )
        if (batch_size is None) == (sample_rate is None):
            raise PlanError(
                "batch_size",
                batch_size,
                "given, or else sample_rate (exactly one of the two)",
                "Pass the expected batch size or the Poisson sample rate.",
            )
        if batch_size is not None:
            batch = _validate.integer(minimum=1, maximum=self.dataset_size, batch_size=batch_size)
            return batch / self.dataset_size, sigma, batch
        rate = _validate.closed_interval(low=0.0, high=1.0, sample_rate=sample_rate)
        if not (rate > 0):
            raise PlanError("sample_rate", sample_rate, "in (0, 1]")
        return rate, sigma, None

    def record(
        self,
        *,
        noise_multiplier: float,
        batch_size: int | None = None,
        sample_rate: float | None = None,
        steps: int = 1,
        sampling: str = "poisson",
        max_batch_size: int | None = None,
    ) -> None:
        """Record ``steps`` noisy steps; with a budget, refuse them if ε would exceed it.

        Call it *before* applying the update: a refused record raises and leaves both the
        ledger and (if you stop) the model as they were.

        Args:
            noise_multiplier: σ of the steps, finite, >= 0.01.
            batch_size: expected (Poisson) batch size, in [1, dataset_size]; or
            sample_rate: Poisson sample rate q in (0, 1] (give exactly one of the two).
            steps: number of steps, >= 1.
            sampling: ``"poisson"`` (default); ``"shuffle"``: shuffled batches of exactly
                ``batch_size`` (give ``batch_size``), each example in one batch per epoch of
                ``ceil(dataset_size / batch_size)`` steps. No tight analysis of shuffling is
                known, so a shuffled record is accounted with no amplification: every started
                epoch is one full-batch Gaussian step at σ for each example (sensitivity =
                clipping norm); ``"fixed_size"``: exactly ``batch_size`` examples drawn
                without replacement each step (replace-one neighbours; RDP only);
                ``"truncated_poisson"``: Poisson at ``batch_size`` / ``sample_rate``, batches
                cut to ``max_batch_size`` (PLD only). See :data:`SCHEMES`.
            max_batch_size: for ``"truncated_poisson"`` only: the largest batch, in
                [1, dataset_size].

        Raises:
            PlanError: for an invalid argument or sampling scheme; for a scheme whose
                neighbouring relation differs from the records' (``"fixed_size"`` with
                another scheme), or that none of the ledger's methods accounts.
            BudgetExhausted: if the budget is set and ε after the steps would exceed it.
            AccountingError: if every method fails.
        """
        kind = self._kind(noise_multiplier, batch_size, sample_rate, sampling, max_batch_size)
        steps = _validate.integer(minimum=1, maximum=MAX_TOTAL_STEPS, steps=steps)
        if self.total_steps + steps > MAX_TOTAL_STEPS:
            raise PlanError(
                "steps", steps, f"such that the ledger holds at most {MAX_TOTAL_STEPS:,} steps"
            )
        if self.budget is not None:
            fit = self._fitting(kind)
            if steps > fit:
                raise BudgetExhausted(
                    epsilon_before=self.epsilon(),
                    epsilon_after=self._headline_exact(self._after(kind, steps)),
                    budget=self.budget,
                    remaining_steps=fit,
                    delta=self.delta,
                    steps=steps,
                )
        remaining = self._remaining
        self._append(dataclasses.replace(kind, steps=steps))
        if remaining is not None and remaining[1] == kind:
            self._remaining = (self._key(), kind, remaining[2] - steps)

    def _kind(
        self, noise_multiplier, batch_size, sample_rate, sampling, max_batch_size=None
    ) -> LedgerRecord:
        sampling = _validate.choice(
            options=_SAMPLING,
            hint="See dpplan.ledger.SCHEMES; no scheme is accounted as if it were Poisson.",
            sampling=sampling,
        )
        q, sigma, batch = self._mechanism(noise_multiplier, batch_size, sample_rate)
        if sampling in ("shuffle", "fixed_size") and batch is None:
            raise PlanError(
                "batch_size",
                None,
                f"given for sampling={sampling!r}",
                "Give the fixed batch size.",
            )
        if sampling == "truncated_poisson":
            max_batch_size = _validate.integer(
                minimum=1,
                maximum=self.dataset_size,
                hint="The largest batch truncated Poisson sampling keeps.",
                max_batch_size=max_batch_size,
            )
        elif max_batch_size is not None:
            raise PlanError(
                "max_batch_size",
                max_batch_size,
                "None unless sampling='truncated_poisson'",
                "Only truncated Poisson sampling has a maximum batch size.",
            )
        self._check_scheme(sampling)
        return LedgerRecord(
            noise_multiplier=sigma,
            sample_rate=q,
            steps=0,
            batch_size=batch,
            sampling=sampling,
            max_batch_size=max_batch_size,
        )

    def _check_scheme(self, sampling: str) -> None:
        """Refuse a scheme of another neighbouring relation, or one no method accounts."""
        scheme = SCHEMES[sampling]
        if self._records and scheme.relation != self.neighbouring_relation:
            raise PlanError(
                "sampling",
                sampling,
                f"a scheme with this ledger's neighbouring relation ({self.neighbouring_relation}"
                f", from its {self.schemes} records), not {scheme.relation}",
                "One ε states one relation; converting by group privacy (a replace-one pair is "
                "two add/remove steps apart) would double ε and more, so dpplan does not mix "
                "them. Use one ledger per relation.",
            )
        if not self.capable_methods((*self.schemes, sampling)):
            raise PlanError(
                "sampling",
                sampling,
                f"a scheme one of this ledger's methods {self.methods} accounts (with the "
                f"schemes recorded, {self.schemes}); {sampling!r} is accounted only by "
                f"{', '.join(scheme.methods)}",
                "Build the ledger with methods that include it.",
            )

    def _contribution(self, record: LedgerRecord) -> tuple[tuple, int]:
        """(mechanism, count) a record adds: Poisson steps ``(q, σ)``, the started epochs of
        shuffled batches as full-batch Gaussian steps ``(1, σ)`` (no amplification), or
        ``(q, σ, scheme, batch size)`` for fixed-size and truncated Poisson steps."""
        if record.sampling == "shuffle":
            per_epoch = -(-self.dataset_size // record.batch_size)
            return (1.0, record.noise_multiplier), -(-record.steps // per_epoch)
        if record.sampling == "fixed_size":
            mechanism = (record.sample_rate, record.noise_multiplier, "fixed_size")
            return (*mechanism, record.batch_size), record.steps
        if record.sampling == "truncated_poisson":
            mechanism = (record.sample_rate, record.noise_multiplier, "truncated_poisson")
            return (*mechanism, record.max_batch_size), record.steps
        return (record.sample_rate, record.noise_multiplier), record.steps

    def _append(self, record: LedgerRecord) -> None:
        last = self._records[-1] if self._records else None
        if last is not None and last.kind == record.kind:
            self._add(last, -1)
            self._records[-1] = dataclasses.replace(last, steps=last.steps + record.steps)
        else:
            self._records.append(record)
        self._add(self._records[-1], 1)
        self._last = self._contribution(self._records[-1])[0]
        self._steps += record.steps

    def _add(self, record: LedgerRecord, sign: int) -> None:
        mechanism, count = self._contribution(record)
        total = self._counts.get(mechanism, 0) + sign * count
        if total:
            self._counts[mechanism] = total
        else:
            self._counts.pop(mechanism, None)

    # --- state keys --------------------------------------------------------------------------

    def _key(self) -> tuple:
        return (tuple(sorted(self._counts.items())), self._records[-1] if self._records else None)

    def _split(self, counts: Mapping[tuple[float, float], int], current) -> tuple:
        """(prefix, mechanism, n): the counts of other mechanisms, and the current one's."""
        prefix = tuple(sorted((m, c) for m, c in counts.items() if m != current))
        return prefix, current, counts.get(current, 0)

    def _after(self, kind: LedgerRecord, steps: int) -> tuple:
        """The state after ``steps`` more steps of ``kind`` (merged with the last record if
        it is of that kind)."""
        counts = dict(self._counts)
        last = self._records[-1] if self._records else None
        added = dataclasses.replace(kind, steps=steps)
        if last is not None and last.kind == kind:
            mechanism, count = self._contribution(last)
            counts[mechanism] -= count
            added = dataclasses.replace(last, steps=last.steps + steps)
        mechanism, count = self._contribution(added)
        counts[mechanism] = counts.get(mechanism, 0) + count
        return self._split({m: c for m, c in counts.items() if c}, mechanism)

    def _state(self) -> tuple:
        return self._split(self._counts, self._last)

    # --- ε -----------------------------------------------------------------------------------

    def _segments(self, state: tuple):
        from dpplan.accounting.segments import Segment

        prefix, mechanism, n = state
        items = [*prefix, (mechanism, n)] if n else list(prefix)
        return [Segment(sample_rate=q, noise_multiplier=s, steps=c) for (q, s), c in items]

    def _exact_value(self, method: str, state: tuple) -> float:
        """``method``'s upper bound for ``state``, as dpplan.epsilon computes it (cached)."""
        key = (method, *state)
        if key not in self._exact:
            prefix, mechanism, n = state
            items = [*prefix, (mechanism, n)] if n else list(prefix)
            if any(len(m) > 2 for m, _ in items):
                value = self._composed_epsilon(method, items)
            else:
                from dpplan.accounting.segments import epsilon_of_segments

                value = epsilon_of_segments(self._segments(state), delta=self.delta, method=method)
            if method == "rdp":
                return value  # cheap: not worth the memory
            if len(self._exact) > 4096:
                self._exact.clear()
            self._exact[key] = value
            self._remember(method, state, [state[2]], [value])
        return self._exact[key]

    def _composed_epsilon(self, method: str, items: list) -> float:
        """``method``'s bound for mechanisms some of which are fixed-size or truncated
        Poisson, computed as dp-accounting's accountants compute a ``ComposedDpEvent`` of one
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
                    total = total + count * _fixed_size_rdp(self.dataset_size, m[3], m[1], orders)
                rdp = dp_accounting.rdp.rdp_privacy_accountant
                return float(rdp.compute_epsilon(orders, total, self.delta)[0])
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
                pld = pld.compose(_one_step_pld(self.dataset_size, m, interval).self_compose(count))
            return float(pld.get_epsilon_for_delta(self.delta))
        except (ValueError, RuntimeError, ArithmeticError, MemoryError) as exc:
            raise AccountingError(
                f"{method} accountant failed for sampling {self.schemes}: {exc!r}"
            ) from exc

    def _remember(self, method: str, state: tuple, counts: list[int], bounds: list[float]) -> None:
        prefix, mechanism, _ = state
        found = self._known.setdefault((method, prefix, mechanism), ([], []))
        for count, bound in zip(counts, bounds):
            index = bisect.bisect_left(found[0], count)
            if index < len(found[0]) and found[0][index] == count:
                found[1][index] = min(found[1][index], bound)
            else:
                found[0].insert(index, count)
                found[1].insert(index, bound)

    def _carried(self, method: str, state: tuple) -> float | None:
        """The smallest known bound for n to n + ceil(n / BLOCK_POINTS) steps of the current
        kind (a valid bound for n steps, at most ~1.6% more steps away)."""
        prefix, mechanism, n = state
        found = self._known.get((method, prefix, mechanism))
        if not found:
            return None
        start = bisect.bisect_left(found[0], n)
        stop = bisect.bisect_right(found[0], n + max(1, math.ceil(n / BLOCK_POINTS)))
        return min(found[1][start:stop]) if stop > start else None

    def _ahead(self, method: str, state: tuple) -> None:
        """Remember bounds for up to BLOCK_POINTS step counts in (n, 2n] of the current kind
        (capped at what the budget admits), from one backend call; only one kind recorded."""
        prefix, mechanism, n = state
        if prefix or not n or len(mechanism) > 2:
            return
        end = min(2 * n, MAX_TOTAL_STEPS)
        remaining = self._remaining
        if (
            remaining is not None
            and remaining[0] == self._key()
            and remaining[1].sampling == "poisson"
            and (remaining[1].sample_rate, remaining[1].noise_multiplier) == mechanism
        ):
            end = min(end, n + remaining[2])
        if end <= n:
            return
        gap = max(1, math.ceil((end - n) / BLOCK_POINTS))
        counts = list(range(n + gap, end, gap)) + [end]
        from dpplan.accounting import get_accountant

        try:
            bounds = (
                get_accountant(method)
                .compute(
                    sample_rate=mechanism[0],
                    noise_multiplier=mechanism[1],
                    delta=self.delta,
                    steps=tuple(counts),
                )
                .upper
            )
        except AccountingError:
            return
        self._remember(method, state, counts, list(bounds))

    def _method_value(self, method: str, state: tuple, *, fast: bool) -> float:
        if method == "rdp" or not fast:
            return self._exact_value(method, state)
        if (method, *state) in self._exact:
            return self._exact[(method, *state)]
        carried = self._carried(method, state)
        if carried is not None:
            return carried
        value = self._exact_value(method, state)
        self._ahead(method, state)
        return value

    def _state_schemes(self, state: tuple) -> tuple[str, ...]:
        prefix, mechanism, n = state
        keys = [m for m, _ in prefix] + ([mechanism] if n else [])
        return tuple({m[2] if len(m) > 2 else "poisson" for m in keys})

    def _headline(self, state: tuple, *, fast: bool) -> tuple[str, float]:
        if not state[2] and not state[0]:
            return self.methods[0], 0.0
        found, failures = {}, []
        for method in self.capable_methods(self._state_schemes(state)):
            try:
                found[method] = self._method_value(method, state, fast=fast)
            except AccountingError as exc:
                failures.append(f"{method}: {exc}")
        if not found:
            raise AccountingError("every method failed for this ledger: " + "; ".join(failures))
        method = min(found, key=lambda m: (found[m], _METHODS.index(m)))
        if fast and self.budget is not None and found[method] > self.budget:
            # A carried bound above the budget for a state the guard admitted: be exact.
            return self._headline(state, fast=False)
        return method, found[method]

    def _headline_exact(self, state: tuple) -> float:
        return self._headline(state, fast=False)[1]

    def headline(self) -> tuple[str, float]:
        """Return ``(method, ε)``: the smallest upper bound for everything recorded."""
        return self._headline(self._state(), fast=True)

    def epsilon(self, method: str | None = None) -> float:
        """Return an ε upper bound at the ledger's δ for everything recorded.

        Args:
            method: ``None`` for the headline (the smallest bound of the ledger's methods
                that account every scheme recorded, see :meth:`headline`), or ``"rdp"``,
                ``"prv"`` or ``"pld"`` for that method's bound, computed as
                ``dpplan.epsilon`` computes it. The ε is for :attr:`neighbouring_relation`.

        Raises:
            PlanError: for an unknown method, or one that cannot account a scheme recorded
                (e.g. ``"pld"`` for ``"fixed_size"`` records), named with the scheme.
            AccountingError: if the method (for the headline: every method) fails.
        """
        if method is None:
            return self.headline()[1]
        method = _validate.choice(options=_METHODS, method=method)
        refused = [s for s in self.schemes if method not in SCHEMES[s].methods]
        if refused:
            scheme = SCHEMES[refused[0]]
            raise PlanError(
                "method",
                method,
                f"a method that accounts sampling={scheme.name!r} ({scheme.relation}): "
                f"{', '.join(scheme.methods)}",
                _REFUSALS[(method, scheme.name)],
            )
        state = self._state()
        if not state[2] and not state[0]:
            return 0.0
        return self._exact_value(method, state)

    def guarantee(self) -> dict[str, Any]:
        """Return the headline with what it is stated for, JSON-ready: ``epsilon``,
        ``delta``, ``method``, ``neighbouring_relation`` and ``sampling`` (the schemes
        recorded).

        Example:
            >>> ledger = Ledger(dataset_size=1000, delta=1e-5, methods=("rdp",))
            >>> ledger.record(noise_multiplier=2.0, batch_size=10, steps=5, sampling="fixed_size")
            >>> g = ledger.guarantee()
            >>> g["neighbouring_relation"], g["sampling"], g["method"]
            ('replace_one', ['fixed_size'], 'rdp')
        """
        method, value = self.headline()
        return {
            "epsilon": value,
            "delta": self.delta,
            "method": method,
            "neighbouring_relation": self.neighbouring_relation,
            "sampling": list(self.schemes),
        }

    def as_if_poisson_epsilon(self, method: str = "rdp") -> float:
        """Return ε as if the shuffled records had been Poisson-sampled: **not a guarantee**.

        Shuffled fixed batches are often accounted this way, but the Poisson analysis does
        not hold for them (Chua et al. 2024 show the gap can be large); dpplan's guarantee for
        them is :meth:`epsilon`. Shown for comparison only.

        Raises:
            PlanError: for an unknown method.
            AccountingError: if the method fails.
        """
        from dpplan.accounting.segments import Segment, epsilon_of_segments

        method = _validate.choice(options=_METHODS, method=method)
        other = [s for s in self.schemes if s not in ("poisson", "shuffle")]
        if other:
            raise PlanError(
                "sampling",
                other[0],
                "'poisson' or 'shuffle' records only for an 'as if Poisson' number",
                "It compares shuffled batches with Poisson sampling; other schemes have their "
                "own accounting (epsilon()).",
            )
        return epsilon_of_segments(
            [
                Segment(
                    sample_rate=r.sample_rate, noise_multiplier=r.noise_multiplier, steps=r.steps
                )
                for r in self._records
            ],
            delta=self.delta,
            method=method,
        )

    # --- the budget ---------------------------------------------------------------------------

    def _fitting(self, kind: LedgerRecord) -> int:
        """Most steps of ``kind`` that keep the exact headline within the budget."""
        key = self._key()
        if self._remaining is not None and self._remaining[:2] == (key, kind):
            return self._remaining[2]
        limit = MAX_TOTAL_STEPS - self.total_steps
        start = 0
        capable = self.capable_methods((*self.schemes, kind.sampling))
        if "rdp" in capable and len(capable) > 1:
            # RDP's own boundary (cheap) fits the headline too: the headline is at most RDP.
            start = _largest_within(
                lambda k: self._exact_value("rdp", self._after(kind, k)),
                self.budget,
                limit,
                start=0,
            )
        value = _largest_within(
            lambda k: self._headline_exact(self._after(kind, k)),
            self.budget,
            limit,
            start=start,
        )
        self._remaining = (key, kind, value)
        return value

    def remaining_steps(
        self,
        *,
        noise_multiplier: float,
        batch_size: int | None = None,
        sample_rate: float | None = None,
        sampling: str = "poisson",
        max_batch_size: int | None = None,
    ) -> int:
        """Return how many more such steps fit the budget: that many do, one more does not.

        "Fit" means the headline of exact bounds (the smallest of the ledger's methods) after
        the steps is at most the budget; :meth:`record` refuses by the same rule. Steps of
        the last record's kind continue it (for ``"shuffle"``: its current epoch).

        Raises:
            PlanError: for invalid arguments, or if the ledger has no budget.
            AccountingError: if every method fails.
        """
        kind = self._kind(noise_multiplier, batch_size, sample_rate, sampling, max_batch_size)
        if self.budget is None:
            raise PlanError(
                "budget",
                None,
                "set to ask for the remaining steps",
                "Build the ledger with Ledger(..., budget=ε).",
            )
        return self._fitting(kind)

    # --- persistence --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Return the ledger as JSON-safe data; :meth:`from_dict` restores it exactly.

        Every record names its ``sampling``; ``neighbouring_relation`` states the relation of
        every ε (derived from the records; checked on :meth:`from_dict`)."""
        return {
            "format": FORMAT_VERSION,
            "dataset_size": self.dataset_size,
            "delta": self.delta,
            "budget": self.budget,
            "methods": list(self.methods),
            "neighbouring_relation": self.neighbouring_relation,
            "records": [record.to_dict() for record in self._records],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ledger:
        """Rebuild a ledger from :meth:`to_dict` output (records are replayed unguarded).

        Raises:
            PlanError: for unknown keys, a wrong format or invalid records.
        """
        if not isinstance(data, Mapping):
            raise PlanError("ledger", data, "a mapping from Ledger.to_dict()")
        known = {
            "format",
            "dataset_size",
            "delta",
            "budget",
            "methods",
            "neighbouring_relation",
            "records",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise PlanError(unknown[0], data[unknown[0]], "absent: not a ledger key")
        if data.get("format") != FORMAT_VERSION:
            raise PlanError("format", data.get("format"), f"{FORMAT_VERSION}")
        ledger = cls(
            dataset_size=data["dataset_size"],
            delta=data["delta"],
            budget=data.get("budget"),
            methods=tuple(data.get("methods", _METHODS)),
        )
        fields = {f.name for f in dataclasses.fields(LedgerRecord)}
        for item in data.get("records", []):
            if not isinstance(item, Mapping) or set(item) - fields:
                raise PlanError("records", item, f"mappings with the keys {sorted(fields)}")
            batch = item.get("batch_size")
            kind = ledger._kind(
                item.get("noise_multiplier"),
                batch,
                None if batch is not None else item.get("sample_rate"),
                item.get("sampling", "poisson"),
                item.get("max_batch_size"),
            )
            if batch is not None and item.get("sample_rate") != kind.sample_rate:
                raise PlanError(
                    "sample_rate", item.get("sample_rate"), f"{kind.sample_rate!r} (batch_size/N)"
                )
            steps = _validate.integer(minimum=1, steps=item.get("steps"))
            ledger._append(dataclasses.replace(kind, steps=steps))
        stated = data.get("neighbouring_relation", ledger.neighbouring_relation)
        if stated != ledger.neighbouring_relation:
            raise PlanError(
                "neighbouring_relation",
                stated,
                f"{ledger.neighbouring_relation!r}, the relation of the records' sampling",
            )
        return ledger

    def __repr__(self) -> str:
        return (
            f"Ledger(dataset_size={self.dataset_size}, delta={self.delta!r}, "
            f"budget={self.budget!r}, steps={self.total_steps}, records={len(self._records)})"
        )


#: Why a method refuses a scheme (dp-accounting 0.6.0, prv-accountant).
_REFUSALS = {
    ("pld", "fixed_size"): "dp-accounting's PLDAccountant has no sampled-without-replacement "
    "event; nothing is accounted as if Poisson.",
    ("prv", "fixed_size"): "prv-accountant has no sampled-without-replacement PRV; nothing is "
    "accounted as if Poisson.",
    ("rdp", "truncated_poisson"): "dp-accounting's RdpAccountant has no truncated Poisson "
    "event; nothing is accounted as if Poisson.",
    ("prv", "truncated_poisson"): "prv-accountant has no truncated Poisson PRV; nothing is "
    "accounted as if Poisson.",
}


@functools.lru_cache(maxsize=64)
def _fixed_size_rdp(dataset_size: int, batch_size: int, noise_multiplier: float, orders: tuple):
    """Per-step RDP of :func:`fixed_size_event`, as dp-accounting's ``RdpAccountant``
    (``REPLACE_ONE``) computes it for that event."""
    from dp_accounting.rdp import rdp_privacy_accountant

    vector = rdp_privacy_accountant._compute_rdp_sample_wor_gaussian(
        q=batch_size / dataset_size, noise_multiplier=noise_multiplier / 2, orders=orders
    )
    vector.setflags(write=False)
    return vector


@functools.lru_cache(maxsize=32)
def _one_step_pld(dataset_size: int, mechanism: tuple, interval: float):
    """One step's PLD (add-or-remove), as dp-accounting's ``PLDAccountant`` builds it for a
    ``PoissonSampledDpEvent`` of a Gaussian or a ``TruncatedSubsampledGaussianDpEvent``."""
    from dp_accounting.pld import privacy_loss_distribution as pld

    relation = _add_or_remove()
    if len(mechanism) == 2:
        return pld.from_gaussian_mechanism(
            standard_deviation=mechanism[1],
            value_discretization_interval=interval,
            sampling_prob=mechanism[0],
            neighboring_relation=relation,
        )
    return pld.from_truncated_subsampled_gaussian_mechanism(
        dataset_size=dataset_size,
        sampling_probability=mechanism[0],
        truncated_batch_size=mechanism[3],
        noise_multiplier=mechanism[1],
        value_discretization_interval=interval,
        neighboring_relation=relation,
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


def _largest_within(measure, budget: float, limit: int, *, start: int) -> int:
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
