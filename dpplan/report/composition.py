"""Reports of a phased plan (a phase table) and of a ledger (its records), as :class:`Report`.

Both reuse the plan report's pieces; one compact layout (``ledger.md.j2``) shows either. Every
ε comes from :mod:`dpplan.accounting` (``compare`` of the phased plan) or from the ledger.
"""

from __future__ import annotations

import dpplan
from dpplan import accounting
from dpplan.accounting.base import METHODS, library_versions
from dpplan.errors import AccountingError, PlanError
from dpplan.format import json_digest
from dpplan.ledger import SCHEMES, Ledger
from dpplan.phased import PhasedPlan
from dpplan.report import build, sections
from dpplan.report.model import Assumptions, LedgerEntry, LedgerFacts, Phase, Phased, Report

__all__ = ["build_ledger_report", "build_phased_report"]


_PHASE_SAME = ("batch_size", "noise_multiplier", "epochs", "sample_rate")


def build_phased_report(
    plan: PhasedPlan,
    *,
    title: str | None = None,
    notes: str | None = None,
    plan_file: str = "plan.json",
    created_at: str | None = None,
) -> Report:
    """Build the report of a phased plan: a phase table and ε after every epoch.

    Args:
        plan: the phased plan (a one-phase plan that runs all its epochs is an ordinary
            plan: use :func:`~dpplan.report.build_report`, which hands it on).
        title, notes, created_at: as :func:`~dpplan.report.build_report`.
        plan_file: the file the regenerating command reads (``--plan FILE``).

    Returns:
        A report of kind ``"phased"``; its headline equals ``dpplan.compare(plan)``'s.

    Raises:
        PlanError: for a plan that is not a PhasedPlan, or an invalid title or notes.
        AccountingError: if every accountant failed.
    """
    if not isinstance(plan, PhasedPlan):
        raise PlanError("plan", plan, "a dpplan.PhasedPlan")
    title, notes = build.check_texts(title, notes)
    comparison = accounting.compare(plan)
    ends = plan.epoch_ends()
    phases, done = [], 0
    for index, (phase, steps) in enumerate(zip(plan.phases, plan.steps_per_phase)):
        done += steps
        point = ends.index(done)
        best = min(comparison.curves, key=lambda c: (c.epsilons[point], METHODS.index(c.method)))
        same = {name: getattr(phase, name) for name in _PHASE_SAME}
        at = {"epsilon": best.epsilons[point], "method": best.method}
        phases.append(Phase(**same, **at, phase=index + 1, steps=steps))
    return build.new_report(
        "phased",
        title=title,
        default_title="DP-SGD privacy report of a phased plan",
        notes=notes,
        values={"plan": plan_file},
        hashed=json_digest(plan.to_dict()),
        created_at=created_at,
        warnings=sections.warned(comparison.warnings, comparison.failures),
        epochs=len(ends),
        total_steps=plan.total_steps,
        accounting=sections.accounting_section(comparison, plan),
        phased=Phased(dataset_size=plan.dataset_size, delta=plan.delta, phases=tuple(phases)),
    )


def build_ledger_report(
    ledger: Ledger,
    *,
    title: str | None = None,
    notes: str | None = None,
    ledger_file: str = "ledger.json",
    created_at: str | None = None,
) -> Report:
    """Build the report of a :class:`~dpplan.Ledger`: its records, scheme, neighbouring
    relation, each method's ε (or why it refuses) and the headline.

    Args:
        ledger: the ledger (e.g. ``Ledger.from_dict(json.load(file))``).
        title, notes, created_at: as :func:`~dpplan.report.build_report`.
        ledger_file: the file the regenerating command reads (``--ledger FILE``).

    Returns:
        A report of kind ``"ledger"``. Its headline is the smallest exact bound of the
        ledger's methods that account every scheme recorded.

    Raises:
        PlanError: for a ledger that is not a Ledger, or an invalid title or notes.
        AccountingError: if every method that can account the ledger failed.

    Example:
        >>> ledger = dpplan.Ledger(dataset_size=60000, delta=1e-5, methods=("rdp",))
        >>> ledger.record(noise_multiplier=1.1, batch_size=256, steps=1000,
        ...               sampling="fixed_size")
        >>> report = build_ledger_report(ledger)
        >>> report.assumptions.neighbouring_relation, report.epsilon == ledger.epsilon("rdp")
        ('replace_one_example', True)
    """
    if not isinstance(ledger, Ledger):
        raise PlanError("ledger", ledger, "a dpplan.Ledger", "Load one with Ledger.from_dict.")
    title, notes = build.check_texts(title, notes)
    epsilons, refused, failures = {}, {}, {}
    libraries = {"dpplan": dpplan.__version__}
    for method in ledger.methods:
        try:
            epsilons[method] = ledger.epsilon(method)
            libraries.update(library_versions(method))
        except PlanError as exc:  # the method cannot account a scheme recorded
            refused[method] = str(exc)
        except AccountingError as exc:
            failures[method] = str(exc)
    if not epsilons:
        raise AccountingError("every method failed for this ledger: " + "; ".join(failures))
    method = min(epsilons, key=lambda m: (epsilons[m], METHODS.index(m)))
    schemes = ledger.schemes
    as_if_poisson = None
    if "shuffle" in schemes and set(schemes) <= {"poisson", "shuffle"}:
        as_if_poisson = ledger.as_if_poisson_epsilon(method)
    same = ("dataset_size", "delta", "budget", "total_steps", "schemes", "neighbouring_relation")
    facts = LedgerFacts(
        **{name: getattr(ledger, name) for name in same},
        records=tuple(map(LedgerEntry.model_validate, ledger.records)),
        accounted_as={scheme: SCHEMES[scheme].accounted_as for scheme in schemes},
        epsilons=epsilons,
        refused=refused,
        failures=failures,
        method=method,
        epsilon=epsilons[method],
        as_if_poisson_epsilon=as_if_poisson,
        libraries=dict(sorted(libraries.items())),
    )
    warnings = sections.warned((), failures)
    if ledger.delta >= 1 / ledger.dataset_size:
        warnings.append(
            f"delta={ledger.delta:g} >= 1/dataset_size={1 / ledger.dataset_size:.3g}: a "
            "mechanism that publishes one random record outright meets this δ."
        )
    if ledger.budget is not None and facts.epsilon > ledger.budget:
        warnings.append(f"ε = {facts.epsilon:.6g} is over the ledger's budget {ledger.budget:g}.")
    return build.new_report(
        "ledger",
        title=title,
        default_title="DP-SGD privacy ledger report",
        notes=notes,
        values={"ledger": ledger_file},
        hashed=json_digest(ledger.to_dict()),
        created_at=created_at,
        warnings=warnings,
        assumptions=Assumptions.of(
            "ledger",
            relation=ledger.neighbouring_relation,
            sampling=schemes[0] if len(schemes) == 1 else ("mixed" if schemes else "poisson"),
        ),
        ledger=facts,
    )
