"""The ledger: account a training loop as it runs, and stop it at a budget.

A :class:`Ledger` records what a DP-SGD loop actually did (noisy steps, each with its noise
multiplier and Poisson sample rate) and answers ε for everything recorded at any time. With
a budget, :meth:`Ledger.record` refuses (``BudgetExhausted``) a record that would take ε over
it, and leaves the ledger unchanged, so ``ledger.record(...)`` before ``optimizer.step()`` is a
budget guard for any loop. :meth:`Ledger.remaining_steps` says exactly how many more steps of a
kind fit.

**Sampling.** Every record names its scheme; each scheme is accounted as the libraries
account it, by the methods that can, under one neighbouring relation (:data:`SCHEMES`):

``"poisson"`` (add-or-remove-one; RDP, PRV, PLD); ``"shuffle"`` (add-or-remove-one; RDP, PRV,
PLD), accounted with **no** amplification, as no tight analysis of shuffling is known (each
started epoch is one full-batch Gaussian step per example; :meth:`Ledger.as_if_poisson_epsilon`
gives the "as if Poisson" number, not a guarantee); ``"fixed_size"`` (replace-one; RDP only)
and ``"truncated_poisson"`` (add-or-remove-one; PLD only), as dp-accounting accounts them
(see :mod:`dpplan.accounting.schemes`).

One ε states one relation, so a ``"fixed_size"`` record is refused (``PlanError``) in a
ledger of the other schemes and vice versa (converting would need group privacy: ε doubled
and more). Nothing is accounted as if Poisson: a method that cannot account a scheme recorded
refuses it by name; the headline is the smallest bound of the methods that can.

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
then computed exactly). A fixed-size step costs ~2 ms with the guard; a truncated Poisson step
one PLD self-composition (~0.07 s at N = 10,000).
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from dpplan import _validate
from dpplan.accounting.base import METHODS
from dpplan.accounting.schemes import (
    SCHEMES,
    TRUNCATED_PLD_INTERVAL,
    LedgerRecord,
    Scheme,
    check_scheme,
    composed_epsilon,
    fixed_size_event,
    largest_within,
    refuse_method,
)
from dpplan.errors import AccountingError, BudgetExhausted, PlanError
from dpplan.plan import MAX_DATASET_SIZE, MAX_TOTAL_STEPS, NOISE_MULTIPLIER_MIN

__all__ = [
    "BLOCK_POINTS",
    "SCHEMES",
    "TRUNCATED_PLD_INTERVAL",
    "Ledger",
    "LedgerRecord",
    "Scheme",
    "fixed_size_event",
]

#: Most step counts a PRV or PLD block of bounds covers ahead of the current count.
BLOCK_POINTS = 64
_SAMPLING = tuple(SCHEMES)
_KEYS = ("format", "dataset_size", "delta", "budget", "methods", "records")
#: Schema version of :meth:`Ledger.to_dict`.
FORMAT_VERSION = 1


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
        methods: tuple[str, ...] = METHODS,
    ) -> None:
        self.dataset_size = _validate.integer(
            minimum=1, maximum=MAX_DATASET_SIZE, dataset_size=dataset_size
        )
        self.delta = _validate.open_interval(low=0.0, high=1.0, delta=delta)
        self.budget = None if budget is None else _validate.finite_positive(budget=budget)
        if isinstance(methods, str) or not methods:
            raise PlanError("methods", methods, "a non-empty tuple of method names")
        chosen = {_validate.choice(options=METHODS, method=method) for method in methods}
        self.methods = tuple(method for method in METHODS if method in chosen)
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

        if any(len(mechanism) > 2 for mechanism in self._counts):  # fixed-size, truncated
            raise PlanError("sampling", self.schemes, "only 'poisson' or 'shuffle' records")
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

    total_steps = property(lambda self: self._steps, doc="Noisy steps recorded.")

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
            sampling: ``"poisson"`` (default), ``"shuffle"`` (give ``batch_size``: one batch
                per example per epoch of ``ceil(dataset_size / batch_size)`` steps, accounted
                without amplification), ``"fixed_size"`` (give ``batch_size``; replace-one;
                RDP only) or ``"truncated_poisson"`` (PLD only). See :data:`SCHEMES`.
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
        check_scheme(
            sampling,
            relation=self.neighbouring_relation if self._records else None,
            recorded=self.schemes,
            methods=self.methods,
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
                value = composed_epsilon(
                    items, dataset_size=self.dataset_size, delta=self.delta, method=method
                )
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
        method = min(found, key=lambda m: (found[m], METHODS.index(m)))
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
        method = _validate.choice(options=METHODS, method=method)
        refuse_method(method, self.schemes)
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
            >>> ledger.record(noise_multiplier=2.0, batch_size=10, sampling="fixed_size")
            >>> ledger.guarantee()["neighbouring_relation"]
            'replace_one'
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

        method = _validate.choice(options=METHODS, method=method)
        if set(self.schemes) - {"poisson", "shuffle"}:
            raise PlanError("sampling", self.schemes, "only 'poisson' or 'shuffle' records")
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
            start = largest_within(
                lambda k: self._exact_value("rdp", self._after(kind, k)),
                self.budget,
                limit,
                start=0,
            )
        value = largest_within(
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
        """Return the ledger as JSON-safe data (records name their ``sampling``; the
        ``neighbouring_relation`` of every ε is stated); :meth:`from_dict` restores it."""
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
        known = {*_KEYS, "neighbouring_relation"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PlanError(unknown[0], data[unknown[0]], "absent: not a ledger key")
        if data.get("format") != FORMAT_VERSION:
            raise PlanError("format", data.get("format"), f"{FORMAT_VERSION}")
        for name in ("dataset_size", "delta"):
            if name not in data:
                raise PlanError(name, None, "given", "Save the ledger with Ledger.to_dict().")
        if not isinstance(data.get("records", []), list):
            raise PlanError("records", data["records"], "a list of record mappings")
        ledger = cls(
            dataset_size=data["dataset_size"],
            delta=data["delta"],
            budget=data.get("budget"),
            methods=tuple(data.get("methods", METHODS)),
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
