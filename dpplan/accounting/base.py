"""Shared types of the accounting backends: the :class:`EpsilonCurve` value and helpers."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import importlib.metadata
import itertools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from dpplan import _validate
from dpplan.errors import AccountingError, PlanError
from dpplan.format import json_float
from dpplan.plan import NOISE_MULTIPLIER_MIN, TrainingPlan

if TYPE_CHECKING:
    import dp_accounting

__all__ = ["METHODS", "EpsilonCurve", "library_versions"]

#: Accounting methods, in the order dpplan shows them.
METHODS = ("rdp", "prv", "pld")

#: Smallest noise multiplier a backend accepts: TrainingPlan's floor, checked again for
#: callers that reach a backend with their own σ (σ = 1e-320 divides by zero in
#: dp-accounting and hangs prv-accountant).
MIN_NOISE_MULTIPLIER = NOISE_MULTIPLIER_MIN

_METHOD_LIBRARY = {"rdp": "dp-accounting", "pld": "dp-accounting", "prv": "prv-accountant"}

#: What a library raises when it cannot answer (an AccountingError is a RuntimeError too).
LIBRARY_FAILURES = (ValueError, RuntimeError, ArithmeticError, MemoryError)


@contextlib.contextmanager
def library_failure(describe: Callable[[Exception], str]) -> Iterator[None]:
    """Raise ``AccountingError(describe(exc))`` for a library failure inside the block.

    An :class:`AccountingError` raised inside passes through unchanged.
    """
    try:
        yield
    except AccountingError:
        raise
    except LIBRARY_FAILURES as exc:
        raise AccountingError(describe(exc)) from exc


#: How to empty each cache of the accounting modules. Every cache registers itself here (by
#: :func:`result_cache` or :func:`register_cache`), so :func:`dpplan.accounting.clear_caches`
#: empties all of them without naming any.
CACHE_CLEARERS: list[Callable[[], None]] = []
_Function = TypeVar("_Function", bound=Callable[..., Any])
_Cache = TypeVar("_Cache", bound=dict)


def result_cache(maxsize: int | None) -> Callable[[_Function], _Function]:
    """``functools.lru_cache(maxsize=...)`` that :func:`dpplan.accounting.clear_caches` empties."""

    def decorate(function: _Function) -> _Function:
        cached = functools.lru_cache(maxsize=maxsize)(function)
        CACHE_CLEARERS.append(cached.cache_clear)
        return cached  # type: ignore[return-value]

    return decorate


def register_cache(cache: _Cache) -> _Cache:
    """Register a module-level dict used as a cache with :func:`~dpplan.accounting.clear_caches`."""
    CACHE_CLEARERS.append(cache.clear)
    return cache


@result_cache(maxsize=None)
def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - broken install
        return "unknown"


def library_versions(method: str) -> dict[str, str]:
    """Return ``{library: version}`` for the library behind ``method``."""
    library = _METHOD_LIBRARY[method]
    return {library: _version(library), "dpplan": _version("dpplan")}


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class EpsilonCurve:
    """ε after every epoch of a plan, from one accounting method.

    Attributes:
        method: ``"rdp"``, ``"prv"`` or ``"pld"``.
        plan: the plan that was accounted.
        epochs: ``(1, 2, ..., plan.epochs)``.
        epsilons: the ε upper bound after each epoch, never decreasing.
        lower: for PRV, a lower bound on the true ε after each epoch (else ``None``).
        estimates: for PRV, the point estimate after each epoch (else ``None``). Shown
            for information only; it is not a guarantee.
        settings: the numerical settings used (RDP orders, PLD discretisation, PRV errors).
        versions: library name -> version.
        warnings: valid-but-doubtful conditions, e.g. the optimal RDP order at the grid edge.
    """

    method: str
    plan: TrainingPlan
    epochs: tuple[int, ...]
    epsilons: tuple[float, ...]
    lower: tuple[float, ...] | None = None
    estimates: tuple[float, ...] | None = None
    settings: dict[str, Any] = dataclasses.field(default_factory=dict, hash=False)
    versions: dict[str, str] = dataclasses.field(default_factory=dict, hash=False)
    warnings: tuple[str, ...] = ()

    @property
    def epsilon(self) -> float:
        """The ε upper bound after the last epoch."""
        return self.epsilons[-1]

    def to_dict(self) -> dict[str, Any]:
        """Return the curve as a JSON-ready dict (infinite ε becomes the string "inf")."""
        data: dict[str, Any] = {
            "method": self.method,
            "epsilon": json_float(self.epsilon),
            "curve": {
                "epochs": list(self.epochs),
                "epsilon": [json_float(e) for e in self.epsilons],
            },
            "settings": dict(self.settings),
            "versions": dict(self.versions),
            "warnings": list(self.warnings),
        }
        if self.lower is not None:
            data["curve"]["epsilon_lower"] = [json_float(e) for e in self.lower]
        if self.estimates is not None:
            data["curve"]["epsilon_estimate"] = [json_float(e) for e in self.estimates]
        return data


def monotone_upper(values: list[float]) -> list[float]:
    """Return the suffix minimum of per-epoch upper bounds, which never decreases.

    The true ε never decreases with more steps, so an upper bound for epoch e + 1 also
    bounds epoch e: ``min(bound[e], bound[e + 1], ...)`` is still a valid upper bound for
    epoch e. This irons out discretisation jitter without loosening any point, and keeps
    the last point unchanged.
    """
    out = list(values)
    for index in range(len(out) - 2, -1, -1):
        out[index] = min(out[index], out[index + 1])
    return out


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Computation:
    """What a backend computes for several step counts of one (sample_rate, σ, δ)."""

    upper: tuple[float, ...]
    lower: tuple[float, ...] | None = None
    estimates: tuple[float, ...] | None = None
    settings: dict[str, Any] = dataclasses.field(default_factory=dict, hash=False)
    warnings: tuple[str, ...] = ()


def _evaluated_epochs(epochs: int, limit: int | None) -> tuple[int, ...]:
    """Epochs a curve evaluates: all of them, or ``limit`` evenly spaced ones incl. the first
    and the last (the first epoch would otherwise carry a later, much looser bound)."""
    if limit is None or epochs <= limit:
        return tuple(range(1, epochs + 1))
    spaced = max(1, limit - 1)
    chosen = {round(epochs * (k + 1) / spaced) for k in range(spaced)}
    return tuple(sorted(max(1, e) for e in chosen | {1, epochs}))


class Backend:
    """Base class of the three accounting backends.

    A backend implements :meth:`compute`, which returns ε upper bounds for several step
    counts of the same Poisson-subsampled Gaussian (sharing the expensive work between
    them). ``epsilon``, ``epsilon_curve`` and ``fresh`` are built on it here, once, so a
    plan's final ε, its curve's last point and the solvers' ε are the same computation.
    """

    name: str = ""
    #: Results kept per backend instance; solvers and the app ask for the same values often.
    CACHE_SIZE = 64
    #: Most epochs a curve evaluates directly (None: all). Longer curves evaluate this many
    #: evenly spaced epochs, always including the last, and give every other epoch the bound
    #: of the next evaluated one: still an upper bound (ε never decreases with more steps),
    #: only looser between evaluated epochs. This keeps any curve within bounded time.
    MAX_CURVE_POINTS: int | None = None

    def compute(
        self, *, sample_rate: float, noise_multiplier: float, delta: float, steps: tuple[int, ...]
    ) -> Computation:
        """Return ε bounds after each entry of ``steps`` (ascending, all >= 1).

        Inputs are validated here, before any library sees them. A sample rate of 0 has the
        defined answer ε = 0 (nothing is ever sampled), which some libraries cannot compute.

        Raises:
            PlanError: for a sample rate outside [0, 1], a noise multiplier that is not
                finite and >= MIN_NOISE_MULTIPLIER (0.01), δ outside (0, 1), or steps that
                are not ascending ints >= 1.
            AccountingError: if the library fails.
        """
        sample_rate = _validate.closed_interval(low=0.0, high=1.0, sample_rate=sample_rate)
        noise_multiplier = _validate.finite_positive(noise_multiplier=noise_multiplier)
        if not (noise_multiplier >= MIN_NOISE_MULTIPLIER):
            raise PlanError(
                "noise_multiplier",
                noise_multiplier,
                f"a finite number >= {MIN_NOISE_MULTIPLIER:g}",
                "Below it a single step already costs ε in the hundreds, and the accountants' "
                "arithmetic leaves float range.",
            )
        delta = _validate.open_interval(low=0.0, high=1.0, delta=delta)
        if isinstance(steps, (str, bytes)) or not steps:
            raise PlanError("steps", steps, "a non-empty tuple of step counts")
        steps = tuple(_validate.integer(minimum=1, steps=count) for count in steps)
        if any(b < a for a, b in itertools.pairwise(steps)):
            raise PlanError("steps", steps, "ascending step counts")
        if sample_rate == 0:
            return Computation(
                upper=tuple(0.0 for _ in steps),
                settings={"note": "sample_rate = 0: no record is ever used"},
            )
        cache = self.__dict__.setdefault("_cache", collections.OrderedDict())
        key = (sample_rate, noise_multiplier, delta, steps)
        if key in cache:
            cache.move_to_end(key)
        else:
            cache[key] = self._compute(
                sample_rate=sample_rate, noise_multiplier=noise_multiplier, delta=delta, steps=steps
            )
            while len(cache) > self.CACHE_SIZE:
                cache.popitem(last=False)
        result = cache[key]
        return dataclasses.replace(result, settings=dict(result.settings))

    def clear_cache(self) -> None:
        """Forget cached results (benchmarks use this to time cold queries)."""
        self.__dict__.pop("_cache", None)

    def _compute(
        self, *, sample_rate: float, noise_multiplier: float, delta: float, steps: tuple[int, ...]
    ) -> Computation:
        raise NotImplementedError

    def max_curve_points(self, plan: TrainingPlan) -> int | None:
        """Most epochs of ``plan``'s curve to evaluate directly (see MAX_CURVE_POINTS)."""
        return self.MAX_CURVE_POINTS

    def check(self, plan: TrainingPlan) -> None:
        """Refuse plans this backend cannot answer in bounded time (raise AccountingError)."""

    def epsilon(self, plan: TrainingPlan) -> float:
        """Return the ε upper bound after all of ``plan``'s steps."""
        self.check(plan)
        return self.compute(
            sample_rate=plan.sample_rate,
            noise_multiplier=plan.noise_multiplier,
            delta=plan.delta,
            steps=(plan.total_steps,),
        ).upper[-1]

    def epsilon_curve(self, plan: TrainingPlan) -> EpsilonCurve:
        """Return ε after every epoch of ``plan``; the last point equals ``epsilon(plan)``."""
        self.check(plan)
        epochs = tuple(range(1, plan.epochs + 1))
        evaluated = _evaluated_epochs(plan.epochs, self.max_curve_points(plan))
        result = self.compute(
            sample_rate=plan.sample_rate,
            noise_multiplier=plan.noise_multiplier,
            delta=plan.delta,
            steps=tuple(plan.steps_after(epoch) for epoch in evaluated),
        )
        settings = dict(result.settings)
        # Each epoch takes the values of the first evaluated epoch at or after it.
        index, source = [], 0
        for epoch in epochs:
            while evaluated[source] < epoch:
                source += 1
            index.append(source)
        if len(evaluated) < len(epochs):
            settings["evaluated_epochs"] = (
                f"{len(evaluated)} of {len(epochs)}; other epochs carry the bound of the next "
                "evaluated epoch (valid, looser)"
            )

        def spread(values: tuple[float, ...] | None) -> tuple[float, ...] | None:
            return None if values is None else tuple(values[i] for i in index)

        lower = result.lower
        if lower is not None and len(evaluated) < len(epochs):
            # A lower bound must not be carried backwards: use the previous evaluated epoch's.
            lower = tuple(
                lower[i] if evaluated[i] == epoch else (lower[i - 1] if i > 0 else 0.0)
                for epoch, i in zip(epochs, index)
            )
        else:
            lower = spread(lower)
        return EpsilonCurve(
            method=self.name,
            plan=plan,
            epochs=epochs,
            epsilons=tuple(monotone_upper(list(spread(result.upper)))),
            lower=lower,
            estimates=spread(result.estimates),
            settings=settings,
            versions=library_versions(self.name),
            warnings=result.warnings,
        )

    def fresh(self, *, refusal_as_infinity: bool = False) -> dp_accounting.PrivacyAccountant:
        """Return an empty dp-accounting ``PrivacyAccountant`` answering through this backend.

        It accepts ``NoOpDpEvent`` and (self-composed) Poisson-subsampled Gaussian events with
        one sample rate and noise multiplier, which is what dpplan's solvers compose, and lets
        ``dp_accounting.calibrate_dp_mechanism`` drive any of the three backends.

        Args:
            refusal_as_infinity: if True, ``get_epsilon`` answers +inf where the backend
                refuses (raises ``AccountingError``) instead of raising. +inf is a valid
                upper bound, and it lets a calibration search past points the backend
                cannot compute; the solvers use this.
        """
        from dpplan.accounting._adapter import BackendAccountant

        return BackendAccountant(self, refusal_as_infinity=refusal_as_infinity)
