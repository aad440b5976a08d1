"""A dp-accounting ``PrivacyAccountant`` that answers through a dpplan backend."""

from __future__ import annotations

import math

import dp_accounting
from dp_accounting import dp_event
from dp_accounting.privacy_accountant import NeighboringRelation

from dpplan.errors import AccountingError

CompositionErrorDetails = dp_accounting.PrivacyAccountant.CompositionErrorDetails


class BackendAccountant(dp_accounting.PrivacyAccountant):
    """Keeps ``(sample_rate, noise_multiplier, steps)`` and asks the backend for ε.

    Only one (sample_rate, noise_multiplier) pair may be composed: that is all a DP-SGD plan
    produces, and it keeps every backend exact for what it accepts. Validation happens
    before the ledger changes, so a refused event leaves the accountant untouched.
    """

    def __init__(self, backend, *, refusal_as_infinity: bool = False) -> None:
        super().__init__(NeighboringRelation.ADD_OR_REMOVE_ONE)
        self._backend = backend
        self._refusal_as_infinity = refusal_as_infinity
        self._mechanism: tuple[float, float] | None = None
        self._steps = 0

    def _maybe_compose(self, event: dp_event.DpEvent, count: int, do_compose: bool):
        if isinstance(event, dp_event.NoOpDpEvent):
            return None
        if isinstance(event, dp_event.SelfComposedDpEvent):
            return self._maybe_compose(event.event, event.count * count, do_compose)
        if isinstance(event, dp_event.PoissonSampledDpEvent) and isinstance(
            event.event, dp_event.GaussianDpEvent
        ):
            mechanism = (float(event.sampling_probability), float(event.event.noise_multiplier))
            if not (0 < mechanism[0] <= 1) or not (0 < mechanism[1] < float("inf")):
                return CompositionErrorDetails(
                    invalid_event=event,
                    error_message="sample rate must be in (0, 1] and noise multiplier finite > 0",
                )
            if self._mechanism is not None and self._mechanism != mechanism:
                return CompositionErrorDetails(
                    invalid_event=event,
                    error_message="only one (sample_rate, noise_multiplier) can be composed",
                )
            if do_compose:
                self._mechanism = mechanism
                self._steps += count
            return None
        return CompositionErrorDetails(invalid_event=event, error_message="Unsupported event.")

    def get_epsilon(self, target_delta: float) -> float:
        if self._mechanism is None or self._steps == 0:
            return 0.0
        sample_rate, noise_multiplier = self._mechanism
        try:
            return self._backend.compute(
                sample_rate=sample_rate,
                noise_multiplier=noise_multiplier,
                delta=target_delta,
                steps=(self._steps,),
            ).upper[-1]
        except AccountingError:
            if not self._refusal_as_infinity:
                raise
            # The backend cannot bound ε here; +inf is a valid (if useless) upper bound, so
            # a calibration treats this point as over budget and searches elsewhere.
            return math.inf

    def get_delta(self, target_epsilon: float) -> float:
        raise NotImplementedError("dpplan backends answer epsilon for a given delta only")
