"""ε for a :class:`~dpplan.plan.TrainingPlan`, from three accountants.

``method`` is one of :data:`METHODS`:

* ``"rdp"``: Rényi DP through dp-accounting's ``RdpAccountant``;
* ``"prv"``: privacy random variables through prv-accountant (upper bound reported);
* ``"pld"``: privacy loss distributions through dp-accounting (pessimistic estimate).

Every ε returned here is an upper bound on the plan's privacy loss at its δ.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import warnings
from typing import Any

from dpplan import _validate
from dpplan.accounting.base import CACHE_CLEARERS, METHODS, Backend, EpsilonCurve
from dpplan.accounting.composition import (
    ComposedEpsilon,
    MembershipBound,
    compose_runs,
    epoch_epsilons,
    headline_of,
    membership_tpr_bounds,
    no_amplification_epsilon,
    repeat_and_select_epsilon,
)
from dpplan.errors import AccountingError, PlanError
from dpplan.plan import TrainingPlan

__all__ = [
    "METHODS",
    "Comparison",
    "ComposedEpsilon",
    "EpsilonCurve",
    "MembershipBound",
    "clear_caches",
    "compare",
    "compose_runs",
    "epoch_epsilons",
    "epsilon",
    "epsilon_curve",
    "get_accountant",
    "headline_of",
    "membership_tpr_bounds",
    "no_amplification_epsilon",
    "plan_warnings",
    "repeat_and_select_epsilon",
]

_BACKEND_CLASSES = {
    "rdp": ("dpplan.accounting.rdp", "RDPAccountant"),
    "prv": ("dpplan.accounting.prv", "PRVAccountant"),
    "pld": ("dpplan.accounting.pld", "PLDAccountant"),
}
_BACKENDS: dict[str, Backend] = {}


def get_accountant(method: str) -> Backend:
    """Return the backend for ``method`` with its default settings.

    Backends are imported lazily, so asking for ``"rdp"`` does not load prv-accountant.

    Args:
        method: ``"rdp"``, ``"prv"`` or ``"pld"``.

    Returns:
        A backend with ``epsilon(plan)``, ``epsilon_curve(plan)`` and ``fresh()``.

    Raises:
        PlanError: if ``method`` is not one of :data:`METHODS`.

    Example:
        >>> get_accountant("rdp").name
        'rdp'
    """
    method = _validate.choice(options=METHODS, hint="Pick an accounting method.", method=method)
    if method not in _BACKENDS:
        module_name, class_name = _BACKEND_CLASSES[method]
        _BACKENDS[method] = getattr(importlib.import_module(module_name), class_name)()
    return _BACKENDS[method]


def clear_caches() -> None:
    """Forget every cached accounting result (per-step RDP vectors, PLDs, query results).

    Results are cached because they are pure functions of their inputs; benchmarks clear
    the caches to time cold queries.
    """
    for backend in _BACKENDS.values():
        backend.clear_cache()
    for clear in CACHE_CLEARERS:  # every module-level cache registers itself there
        clear()


def plan_warnings(plan: TrainingPlan) -> tuple[str, ...]:
    """Return warnings about valid but doubtful plan settings (e.g. δ ≥ 1/dataset_size).

    Example:
        >>> plan = TrainingPlan(dataset_size=1000, batch_size=10, noise_multiplier=1.0,
        ...                     epochs=1, delta=0.01)
        >>> plan_warnings(plan)[0].startswith("delta=0.01 >= 1/dataset_size")
        True
    """
    found = []
    if plan.delta >= 1 / plan.dataset_size:
        found.append(
            f"delta={plan.delta:g} >= 1/dataset_size={1 / plan.dataset_size:.3g}: a mechanism "
            "that publishes one random record outright meets this δ. Choose delta well below "
            "1/dataset_size (e.g. 1/(10*dataset_size))."
        )
    return tuple(found)


def _warn(plan: TrainingPlan) -> tuple[str, ...]:
    found = plan_warnings(plan)
    for message in found:
        warnings.warn(message, UserWarning, stacklevel=3)
    return found


def epsilon(plan: TrainingPlan, *, method: str = "prv") -> float:
    """Return the ε upper bound after all steps of ``plan``.

    Args:
        plan: the training plan, or a :class:`~dpplan.phased.PhasedPlan` (its phases
            composed; a curve's epochs run on across the phases).
        method: ``"rdp"``, ``"prv"`` (default) or ``"pld"``.

    Returns:
        ε such that training with ``plan`` is (ε, plan.delta)-DP; an upper bound.

    Raises:
        PlanError: if ``plan`` is not a TrainingPlan or ``method`` is unknown.
        AccountingError: if the library fails; the message suggests another method.

    Example:
        >>> plan = TrainingPlan(dataset_size=60000, batch_size=256, noise_multiplier=1.1,
        ...                     epochs=10, delta=1e-5)
        >>> round(epsilon(plan, method="rdp"), 3)
        1.1
    """
    if is_phased(plan):
        return _phased().phased_epsilon(plan, method)
    check_plan(plan)
    _warn(plan)
    return get_accountant(method).epsilon(plan)


def epsilon_curve(plan: TrainingPlan, *, method: str = "prv") -> EpsilonCurve:
    """Return ε after every epoch of ``plan`` (one upper bound per epoch, never decreasing).

    The last point equals ``epsilon(plan, method=method)``.

    Args:
        plan, method: as for :func:`epsilon`.

    Returns:
        An :class:`EpsilonCurve` with the bounds, settings and library versions.

    Raises:
        PlanError, AccountingError: as :func:`epsilon`.

    Example:
        >>> plan = TrainingPlan(dataset_size=60000, batch_size=256, noise_multiplier=1.1,
        ...                     epochs=3, delta=1e-5)
        >>> curve = epsilon_curve(plan, method="rdp")
        >>> curve.epochs, curve.epsilon == epsilon(plan, method="rdp")
        ((1, 2, 3), True)
    """
    if is_phased(plan):
        return _phased().phased_curve(plan, method)
    check_plan(plan)
    found = _warn(plan)
    curve = get_accountant(method).epsilon_curve(plan)
    if found:
        curve = dataclasses.replace(curve, warnings=curve.warnings + found)
    return curve


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Comparison:
    """The ε curves of several methods for one plan, and the headline ε.

    Attributes:
        plan: the plan.
        curves: the curves of the methods that succeeded, in :data:`METHODS` order.
        failures: method -> error message, for methods whose library failed.
        headline_method: the method with the smallest final upper bound.
        headline_epsilon: that bound. The minimum of valid upper bounds is a valid bound.
        warnings: plan-level warnings (e.g. δ ≥ 1/dataset_size).
    """

    plan: TrainingPlan
    curves: tuple[EpsilonCurve, ...]
    failures: dict[str, str] = dataclasses.field(default_factory=dict, hash=False)
    headline_method: str
    headline_epsilon: float
    warnings: tuple[str, ...] = ()

    def curve(self, method: str) -> EpsilonCurve:
        """Return the curve of ``method``.

        Raises:
            PlanError: if ``method`` is unknown.
            AccountingError: if that method failed for this plan.
        """
        method = _validate.choice(options=METHODS, method=method)
        for item in self.curves:
            if item.method == method:
                return item
        raise AccountingError(self.failures.get(method, f"{method} was not computed"))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict: plan, results, failures, headline."""
        return {
            "plan": self.plan.to_dict(),
            "results": [curve.to_dict() for curve in self.curves],
            "failures": dict(self.failures),
            "headline": {
                "method": self.headline_method,
                "epsilon": self.headline_epsilon,
                "delta": self.plan.delta,
            },
            "warnings": list(self.warnings),
        }


def compare(plan: TrainingPlan, *, methods: tuple[str, ...] = METHODS) -> Comparison:
    """Return every method's ε curve and the headline: the smallest final upper bound.

    A method whose library fails is reported in ``failures``; the others are still shown.

    Args:
        plan: the training plan, or a :class:`~dpplan.phased.PhasedPlan` (its phases
            composed; a curve's epochs run on across the phases).
        methods: the methods to run, a subset of :data:`METHODS`.

    Returns:
        A :class:`Comparison`.

    Raises:
        PlanError: if ``plan`` is not a TrainingPlan or a method is unknown.
        AccountingError: if every method failed.

    Example:
        >>> plan = TrainingPlan(dataset_size=60000, batch_size=256, noise_multiplier=1.1,
        ...                     epochs=2, delta=1e-5)
        >>> result = compare(plan, methods=("rdp", "pld"))
        >>> result.headline_method
        'pld'
    """
    if not is_phased(plan):
        check_plan(plan)
    if isinstance(methods, str) or not methods:
        raise PlanError(
            "methods",
            methods,
            "a non-empty tuple of method names",
            f"Choose from {', '.join(METHODS)}.",
        )
    for method in methods:
        _validate.choice(options=METHODS, method=method)
    if is_phased(plan):  # its phases composed; the plan-level warnings are the first phase's
        found, kind = plan_warnings(plan.phases[0]), "phased plan"
        curve_of = functools.partial(_phased().phased_curve, plan)
    else:
        found, kind = _warn(plan), "plan"
        curve_of = lambda method: get_accountant(method).epsilon_curve(plan)
    curves, failures = [], {}
    for method in METHODS:
        if method not in methods:
            continue
        try:
            curves.append(curve_of(method))
        except AccountingError as exc:
            failures[method] = str(exc)
    if not curves:
        raise AccountingError(
            f"every accounting method failed for this {kind}: "
            + "; ".join(f"{m}: {msg}" for m, msg in failures.items())
        )
    best = min(curves, key=lambda c: (c.epsilon, METHODS.index(c.method)))
    return Comparison(
        plan=plan,
        curves=tuple(curves),
        failures=failures,
        headline_method=best.method,
        headline_epsilon=best.epsilon,
        warnings=found,
    )


def _phased():
    """:mod:`dpplan.accounting.phased`, imported on use (it imports this package)."""
    return importlib.import_module("dpplan.accounting.phased")


def is_phased(plan: object) -> bool:
    """Whether ``plan`` is a :class:`~dpplan.phased.PhasedPlan` (answered by ``phased.py``)."""
    from dpplan.phased import PhasedPlan

    return isinstance(plan, PhasedPlan)


def check_plan(plan: object) -> None:
    """Raise PlanError unless ``plan`` is a :class:`~dpplan.plan.TrainingPlan`."""
    if not isinstance(plan, TrainingPlan):
        raise PlanError("plan", plan, "a dpplan.TrainingPlan", "Build one with TrainingPlan(...).")
