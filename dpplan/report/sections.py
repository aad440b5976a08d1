"""The sections of a plan's or a run's report: accounting, membership inference, tuning,
and the run's own record. :mod:`dpplan.report.build` assembles them into a ``Report``.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import dpplan
from dpplan import accounting
from dpplan.accounting.base import library_versions
from dpplan.phased import PhasedPlan
from dpplan.plan import TrainingPlan
from dpplan.report.model import Accounting, Curve, Epoch, Membership, Run, Tuning
from dpplan.run_policy import epoch_epsilon, spent_phased, whole_epochs_spent
from dpplan.store import RunRecord

#: False-positive rates at which the membership-inference bound is tabulated.
FALSE_POSITIVE_RATES = (1e-4, 1e-3, 1e-2, 0.1)
#: FPRs of the ROC chart: 10^-5 to 1, 30 points a decade.
ROC_RATES = tuple(10 ** (-5 + k / 30) for k in range(151))


def iso(timestamp: float) -> str:
    """A UNIX time as ISO 8601 in UTC, to the second."""
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat(timespec="seconds")


def jsonable(value: Any) -> Any:
    """Tuples as lists, numpy scalars as Python numbers."""
    return json.loads(json.dumps(value, default=float))


def warned(warnings: Sequence[str], failures: Mapping[str, str]) -> list[str]:
    """The accountants' warnings, then one line per method that failed."""
    return [*warnings, *(f"{m}: failed: {text}" for m, text in failures.items())]


_CURVE_SAME = ("method", "epsilons", "lower", "estimates", "warnings")


def accounting_section(
    comparison: accounting.Comparison, plan: TrainingPlan | PhasedPlan
) -> Accounting:
    libraries = {"dpplan": dpplan.__version__}
    for method in accounting.METHODS:
        libraries.update(library_versions(method))
    curves = []
    for curve in comparison.curves:
        library = next(key for key in curve.versions if key != "dpplan")
        curves.append(
            Curve(
                **{name: getattr(curve, name) for name in _CURVE_SAME},
                library=library,
                library_version=curve.versions[library],
                settings=jsonable(curve.settings),
            )
        )
    return Accounting(
        epochs=comparison.curves[0].epochs,
        steps=tuple(plan.steps_after(epoch) for epoch in comparison.curves[0].epochs),
        curves=tuple(curves),
        failures=dict(comparison.failures),
        method=comparison.headline_method,
        epsilon=comparison.headline_epsilon,
        no_amplification_epsilon=accounting.no_amplification_epsilon(plan),
        libraries=dict(sorted(libraries.items())),
    )


def membership_section(plan: TrainingPlan, epsilon: float) -> Membership:
    table = accounting.membership_tpr_bounds(plan, FALSE_POSITIVE_RATES, epsilon=epsilon)
    roc = accounting.membership_tpr_bounds(plan, ROC_RATES, epsilon=epsilon)
    return Membership(
        false_positive_rates=table.false_positive_rates,
        profile=table.profile,
        single=table.single,
        profile_method=table.method,
        roc_false_positive_rates=roc.false_positive_rates,
        roc_true_positive_rates=roc.profile,
    )


def tuning_section(
    plan: TrainingPlan,
    accounted: TrainingPlan,
    run: RunRecord | None,
    group: Sequence[RunRecord],
    tuning_runs: int | None,
) -> Tuning:
    """Other runs on the data: a run store group, a declared count, or none."""
    grouped = len(group) > 1
    runs = len(group) if grouped else tuning_runs or 1
    members = group if grouped else [run] if run else []
    leaky = tuple(m.id for m in group if m.records and not m.private) if grouped else ()
    composed = None
    if runs > 1 and not leaky:
        pairs = [whole_epochs_spent(m) for m in group] if grouped else None
        pairs = pairs or [(accounted, accounted.epochs)] * runs  # declared: K runs of the plan
        composed = accounting.compose_runs(pairs, delta=plan.delta)
    # A group's repeat-and-select ε is defined only when every run used this plan.
    selectable = all(m.plan == plan for m in group) if grouped else runs > 1
    return Tuning(
        source="group" if grouped else "none" if tuning_runs is None else "declared",
        runs=runs,
        group_id=group[0].group_id if grouped else run.group_id if run else None,
        run_ids=tuple(m.id for m in members),
        unfinished_run_ids=tuple(m.id for m in group if m.status in ("running", "queued"))
        if grouped
        else (),
        non_private_run_ids=leaky,
        epsilon_all=math.inf if leaky else composed and composed.epsilon,
        method_all=composed and composed.method,
        same_mechanism=composed and composed.same_mechanism,
        total_steps=composed and composed.total_steps,
        repeat_and_select_epsilon=accounting.repeat_and_select_epsilon(
            plan if grouped else accounted, mean_runs=runs
        )
        if selectable
        else None,
    )


def group_epsilon_warning(run: RunRecord, group: Sequence[RunRecord], *, delta: float) -> str:
    """What a report without a tuning section (a phased run's) says of ``run``'s group: ε of
    all the group's runs composed (:func:`~dpplan.accounting.compose_runs`, phased runs
    included), or that a run trained without DP leaves none."""
    from dpplan.format import epsilon_text

    leaky = [m.id for m in group if m.records and not m.private]
    if leaky:
        stated = f"runs {', '.join(map(str, leaky))} trained without DP, so no ε covers them all"
    else:
        # Every noisy step of each run, an abandoned (stopped) epoch's included (spent_phased).
        spent = [p for p in map(spent_phased, group) if p is not None]
        composed = accounting.compose_runs([(p, len(p.epoch_ends())) for p in spent], delta=delta)
        stated = (
            f"ε of all {composed.runs} runs composed ({composed.total_steps:,} noisy steps) is "
            f"{epsilon_text(composed.epsilon)} ({composed.method}) at δ={delta:g}"
        )
    return (
        f"Run {run.id} is one of {len(group)} runs of group {run.group_id} on the same data; "
        f"this report's ε covers run {run.id} alone, not a selection among them: {stated}."
    )


_EPOCH_SAME = ("epoch", "steps", "epsilon_rdp", "epsilon_opacus", "lr", "seconds")
_MEASURED = ("validation_loss", "validation_accuracy", "test_accuracy")


def run_section(run: RunRecord) -> Run:
    differences = [
        abs(r.epsilon_rdp - r.epsilon_opacus) / r.epsilon_opacus
        for r in run.records
        if math.isfinite(r.epsilon_rdp) and math.isfinite(r.epsilon_opacus) and r.epsilon_opacus > 0
    ]
    epochs = []
    for r in run.records:
        epsilon, method = epoch_epsilon(r, run.method)
        # A loss or accuracy that is not finite (a diverged epoch) is None.
        same = {name: getattr(r, name) for name in _EPOCH_SAME}
        same |= {name: v if math.isfinite(v := getattr(r, name)) else None for name in _MEASURED}
        epochs.append(Epoch(**same, epsilon=epsilon, method=method, epsilons=dict(r.epsilons)))
    same = ("id", "status", "stop_reason", "error", "device", "seed", "group_id", "warnings")
    # Where the data came from replaces the download permission once it is known
    # (download=True read as if MNIST had been downloaded, though a folder held it).
    known = run.options.get("data_source") is not None
    options = {k: v for k, v in run.options.items() if not (known and k == "download")}
    return Run(
        **{name: getattr(run, name) for name in same},
        engine=run.options.engine if run.private else "non_private",  # old runs: Opacus
        recorded_method=run.method,
        options=jsonable(options),
        schedule=jsonable(dict(run.schedule)),
        versions=dict(run.versions),
        created_at=iso(run.created_at),
        updated_at=iso(run.updated_at),
        training_seconds=math.fsum(r.seconds for r in run.records),
        steps_counted=run.records[-1].steps,
        opacus_max_relative_difference=max(differences) if differences else None,
        epochs=tuple(epochs),
        task=getattr(run, "task", None),
        task_spec=getattr(run, "task_spec", None),
    )
