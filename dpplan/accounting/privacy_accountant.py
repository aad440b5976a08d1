"""dpplan as a dp-accounting ``PrivacyAccountant`` (add-or-remove neighbours).

:func:`dp_accounting_accountant` returns an empty accountant for ``"rdp"``, ``"prv"``,
``"pld"`` or ``"best"``; pass it (or ``lambda: dp_accounting_accountant("prv")``) wherever
dp-accounting's accountants go, e.g. ``dp_accounting.calibrate_dp_mechanism``.

Supported events: ``NoOpDpEvent``, ``NonPrivateDpEvent`` (ε = ∞), ``GaussianDpEvent`` (a step
with sample rate 1), ``PoissonSampledDpEvent(GaussianDpEvent)``, and ``SelfComposedDpEvent``
and ``ComposedDpEvent`` of those, with any mix of (sample rate, noise multiplier); the ``"pld"`` and ``"best"`` accountants also
account ``TruncatedSubsampledGaussianDpEvent`` (Poisson batches capped at a maximum size), through
dp-accounting's PLD, the only method with an analysis of it. A Gaussian
with noise multiplier 0 releases its input (ε = ∞, as dp-accounting's RDP accountant counts
it). Anything else is refused as dp-accounting's contract says: ``supports`` is False and
``compose`` raises ``UnsupportedEventError`` naming the innermost unsupported event; a refused
event leaves the accountant unchanged (the whole event is checked before any state changes).

``get_epsilon`` and ``get_delta`` answer through
:func:`dpplan.accounting.segments.epsilon_of_segments` and ``delta_of_segments``: upper
bounds, and the backend's fast path when one (sample rate, σ) is composed.
"""

from __future__ import annotations

import math
import numbers

import dp_accounting
from dp_accounting import dp_event
from dp_accounting.privacy_accountant import NeighboringRelation

from dpplan import _validate
from dpplan.accounting.base import MIN_NOISE_MULTIPLIER
from dpplan.accounting.segments import (
    SEGMENT_METHODS,
    Segment,
    delta_of_segments,
    epsilon_of_segments,
)
from dpplan.errors import PlanError

__all__ = ["DpplanPrivacyAccountant", "dp_accounting_accountant"]

_Details = dp_accounting.PrivacyAccountant.CompositionErrorDetails


class DpplanPrivacyAccountant(dp_accounting.PrivacyAccountant):
    """A dp-accounting ``PrivacyAccountant`` answering with one dpplan method.

    Build it with :func:`dp_accounting_accountant`. It keeps the composed steps as counts per
    (sample rate, noise multiplier) and whether a non-private event was composed.

    Args:
        method: ``"rdp"``, ``"prv"``, ``"pld"`` or ``"best"``.
    """

    def __init__(self, method: str = "best") -> None:
        super().__init__(NeighboringRelation.ADD_OR_REMOVE_ONE)
        self.method = _validate.choice(options=SEGMENT_METHODS, method=method)
        self._counts: dict[tuple[float, float], int] = {}
        self._non_private = False
        self._truncated_events: list[tuple[dp_event.DpEvent, int]] = []
        self._pld_cache: tuple | None = None

    @property
    def segments(self) -> tuple[Segment, ...]:
        """The composed steps, one :class:`Segment` per (sample rate, noise multiplier)."""
        return tuple(
            Segment(sample_rate=q, noise_multiplier=sigma, steps=steps)
            for (q, sigma), steps in self._counts.items()
        )

    def _maybe_compose(
        self, event: dp_event.DpEvent, count: int, do_compose: bool
    ) -> _Details | None:
        if isinstance(event, dp_event.NoOpDpEvent):
            return None
        if isinstance(event, dp_event.NonPrivateDpEvent):
            if do_compose and count > 0:
                self._non_private = True
            return None
        if isinstance(event, dp_event.SelfComposedDpEvent):
            return self._maybe_compose(event.event, event.count * count, do_compose)
        if isinstance(event, dp_event.ComposedDpEvent):
            for inner in event.events:
                details = self._maybe_compose(inner, count, do_compose)
                if details is not None:
                    return details
            return None
        if isinstance(event, dp_event.GaussianDpEvent):
            return self._gaussian(event, event, 1.0, count, do_compose)
        if isinstance(event, dp_event.PoissonSampledDpEvent) and isinstance(
            event.event, dp_event.GaussianDpEvent
        ):
            return self._gaussian(event, event.event, event.sampling_probability, count, do_compose)
        if isinstance(event, dp_event.TruncatedSubsampledGaussianDpEvent):
            return self._truncated(event, count, do_compose)
        return _Details(
            invalid_event=event,
            error_message=(
                "Unsupported event: dpplan accounts NoOp, NonPrivate, Gaussian and "
                "PoissonSampled(Gaussian) events, self-composed or composed."
            ),
        )

    def _gaussian(self, event, gaussian, sample_rate, count, do_compose) -> _Details | None:
        q, sigma = sample_rate, gaussian.noise_multiplier
        valid_q = isinstance(q, numbers.Real) and not isinstance(q, bool) and 0 <= q <= 1
        valid_sigma = (
            isinstance(sigma, numbers.Real)
            and not isinstance(sigma, bool)
            and (sigma == 0 or MIN_NOISE_MULTIPLIER <= sigma < math.inf)
        )
        if not (valid_q and valid_sigma):
            return _Details(
                invalid_event=event,
                error_message=(
                    f"sample rate {q!r} must be in [0, 1] and noise multiplier {sigma!r} 0 or "
                    f"finite and >= {MIN_NOISE_MULTIPLIER:g}"
                ),
            )
        if not isinstance(count, numbers.Integral) or isinstance(count, bool) or count < 0:
            return _Details(invalid_event=event, error_message=f"count {count!r} must be >= 0")
        if do_compose and count > 0 and q > 0:
            if sigma == 0:  # the input itself is released
                self._non_private = True
            else:
                key = (float(q), float(sigma))
                self._counts[key] = self._counts.get(key, 0) + int(count)
        return None

    def _truncated(self, event, count, do_compose) -> _Details | None:
        """Truncated Poisson sampling (batches capped at ``truncated_batch_size``): only
        dp-accounting's PLD accounts it, so only the ``"pld"`` and ``"best"`` accountants."""
        if self.method not in ("pld", "best"):
            return _Details(
                invalid_event=event,
                error_message=f"truncated Poisson sampling has no {self.method} analysis; use "
                "dp_accounting_accountant('pld') or ('best')",
            )
        sigma = event.noise_multiplier
        valid = (
            isinstance(sigma, numbers.Real)
            and MIN_NOISE_MULTIPLIER <= sigma < math.inf
            and isinstance(event.sampling_probability, numbers.Real)
            and 0 <= event.sampling_probability <= 1
            and isinstance(event.dataset_size, numbers.Integral)
            and isinstance(event.truncated_batch_size, numbers.Integral)
            and 1 <= event.truncated_batch_size <= event.dataset_size
        )
        if not valid:
            return _Details(
                invalid_event=event,
                error_message="need 1 <= truncated_batch_size <= dataset_size, sampling "
                f"probability in [0, 1] and noise multiplier finite >= {MIN_NOISE_MULTIPLIER:g}",
            )
        if do_compose and count > 0 and event.sampling_probability > 0:
            self._truncated_events.append((event, int(count)))
        return None

    def _pld_with_truncated(self):
        """dp-accounting's PLDAccountant holding every composed event (on dpplan's grid),
        kept until more events are composed."""
        key = (self.segments, tuple(self._truncated_events))
        if self._pld_cache is not None and self._pld_cache[0] == key:
            return self._pld_cache[1]
        from dpplan.accounting import get_accountant

        backend = get_accountant("pld")
        accountant = dp_accounting.pld.PLDAccountant(
            neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
            value_discretization_interval=backend.value_discretization_interval,
        )
        for segment in self.segments:
            accountant.compose(
                dp_event.PoissonSampledDpEvent(
                    segment.sample_rate, dp_event.GaussianDpEvent(segment.noise_multiplier)
                ),
                segment.steps,
            )
        for event, count in self._truncated_events:
            accountant.compose(event, count)
        self._pld_cache = (key, accountant)
        return accountant

    def get_epsilon(self, target_delta: float) -> float:
        """Return an upper bound on ε at ``target_delta`` for everything composed.

        0 when nothing is composed or δ >= 1; ∞ after a non-private event, or at δ = 0 (a
        Gaussian mechanism is not pure DP).

        Raises:
            PlanError: if ``target_delta`` is not a number in [0, 1].
            AccountingError: if the library fails.
        """
        delta = _validate.closed_interval(low=0.0, high=1.0, target_delta=target_delta)
        if self._non_private:
            return math.inf
        if not (self._counts or self._truncated_events) or delta == 1:
            return 0.0
        if delta == 0:
            return math.inf
        if self._truncated_events:
            return float(self._pld_with_truncated().get_epsilon(delta))
        return epsilon_of_segments(self.segments, delta=delta, method=self.method)

    def get_delta(self, target_epsilon: float) -> float:
        """Return an upper bound on δ at ``target_epsilon`` for everything composed.

        0 when nothing is composed or ε = ∞ (with no non-private event); 1 after a
        non-private event.

        Raises:
            PlanError: if ``target_epsilon`` is not a number >= 0.
            AccountingError: if the library fails.
        """
        if (
            isinstance(target_epsilon, bool)
            or not isinstance(target_epsilon, (int, float))
            or not (target_epsilon >= 0)
        ):
            raise PlanError("target_epsilon", target_epsilon, "a number >= 0 (math.inf allowed)")
        if self._non_private:
            return 1.0
        if self._truncated_events:
            if target_epsilon == math.inf:
                return 0.0
            return min(1.0, float(self._pld_with_truncated().get_delta(target_epsilon)))
        return delta_of_segments(self.segments, epsilon=target_epsilon, method=self.method)


def dp_accounting_accountant(method: str = "best") -> dp_accounting.PrivacyAccountant:
    """Return an empty dp-accounting ``PrivacyAccountant`` answering with dpplan's ``method``.

    Args:
        method: ``"rdp"``, ``"prv"``, ``"pld"`` or ``"best"`` (the smallest upper bound of
            the three).

    Returns:
        A :class:`DpplanPrivacyAccountant` with add-or-remove neighbours.

    Raises:
        PlanError: if ``method`` is unknown.

    Example:
        >>> import dp_accounting
        >>> event = dp_accounting.PoissonSampledDpEvent(0.01, dp_accounting.GaussianDpEvent(1.0))
        >>> accountant = dp_accounting_accountant("rdp").compose(event, 1000)
        >>> round(accountant.get_epsilon(1e-5), 3)
        2.101
    """
    return DpplanPrivacyAccountant(method)
