"""Build a :class:`~dpplan.report.model.Report` from a plan, a stored run or a stored sweep.

Every ε comes from :mod:`dpplan.accounting`: the curves and the headline from
:func:`~dpplan.accounting.compare`, ε of several runs from
:func:`~dpplan.accounting.compose_runs`, the membership-inference bound from
:func:`~dpplan.accounting.membership_tpr_bounds`; a sweep's from
:func:`dpplan.sweep.frontier_result` (whose tuning cost composes through the same
functions). The sections of a plan's or run's report are in :mod:`dpplan.report.sections`.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import platform
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dpplan
from dpplan import _validate, accounting
from dpplan.commands import PLAN_FLAGS, report_command
from dpplan.errors import PlanError
from dpplan.phased import truncated_phased  # noqa: F401 - re-exported (tests)
from dpplan.plan import TrainingPlan
from dpplan.report.model import (
    SCHEMA_ID,
    SCHEMA_VERSION,
    Assumptions,
    BestAtMost,
    FrontierPoint,
    Plan,
    Report,
    Reproducibility,
    ScheduleCurve,
    SolvedPlan,
    Sweep,
    SweepSimulation,
    SweepTrials,
    SweepTuning,
    TargetCost,
    report_from_dict,
)
from dpplan.report.sections import (
    FALSE_POSITIVE_RATES,
    accounting_section,
    group_epsilon_warning,
    membership_section,
    run_section,
    tuning_section,
    warned,
)
from dpplan.report.sections import iso as _iso
from dpplan.report.sections import jsonable as _jsonable
from dpplan.run_policy import abandoned_note, epochs_counted, spent_phased
from dpplan.selection import best_at
from dpplan.store import RunRecord, RunStore

__all__ = [
    "FALSE_POSITIVE_RATES",
    "FORMATS",
    "build_report",
    "build_run_report",
    "build_sweep_report",
    "load_run_report",
    "plan_hash",
    "save_run_report",
]

if TYPE_CHECKING:
    from dpplan.sweep.results import FrontierPoint as SweepPoint
    from dpplan.sweep.results import FrontierResult, TuningCost

#: Output formats of ``dpplan report``, and keys of ``Reproducibility.commands``.
FORMATS = ("md", "html", "json", "pdf")
#: Longest title and notes accepted (characters).
MAX_TITLE_LENGTH = 300
MAX_NOTES_LENGTH = 20_000


def plan_hash(plan: TrainingPlan) -> str:
    """Return SHA-256 of the plan's canonical JSON (the store's plan id is its first 16 digits).

    Example:
        >>> plan = TrainingPlan(dataset_size=100, batch_size=10, noise_multiplier=1.0,
        ...                     epochs=1, delta=1e-3)
        >>> len(plan_hash(plan))
        64
    """
    return digest(plan.to_dict())


def digest(data: Any) -> str:
    """SHA-256 of ``data``'s canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def git_state() -> tuple[str | None, bool | None]:
    """Return (commit, dirty) of the git checkout holding this dpplan, or (None, None)."""
    root = Path(dpplan.__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None, None

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(root), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = git("status", "--porcelain", "--", "dpplan", "pyproject.toml")
    return commit.strip(), (None if status is None else bool(status.strip()))


def _plan(plan: TrainingPlan) -> Plan:
    return Plan(**{name: getattr(plan, name) for name in Plan.model_fields})


def _plan_values(plan: TrainingPlan, run: RunRecord | None, store_home: str | None) -> dict:
    """The ``dpplan report`` flags that name the plan, or the run (and its store)."""
    if run is not None:
        return {"run": run.id, "home": store_home or None}
    return {flag.field: getattr(plan, flag.field) for flag in PLAN_FLAGS}


def new_report(
    kind: str,
    *,
    title: str | None,
    default_title: str,
    notes: str | None,
    values: Mapping[str, object],
    hashed: str | None,
    created_at: str | None,
    warnings: Sequence[str],
    assumptions: Assumptions | None = None,
    **sections: Any,
) -> Report:
    """A :class:`Report` of ``kind`` with its reproducibility section: ``dpplan report`` with
    the flags ``values`` (flag field -> value, :data:`dpplan.commands.REPORT_FLAGS`), the
    ``--title`` and ``--notes`` given, and ``--format``, regenerates it; ``hashed`` is the plan
    hash; every section not given is None."""
    values = {**values, "title": title, "notes": notes}
    commit, dirty = git_state()
    names = ("plan", "epochs", "total_steps", "accounting", "membership", "tuning", "run")
    return Report(
        schema_id=SCHEMA_ID,
        schema_version=SCHEMA_VERSION,
        kind=kind,
        assumptions=assumptions or Assumptions.of(kind),
        title=default_title if title is None else title,
        notes=notes,
        reproducibility=Reproducibility(
            dpplan_version=dpplan.__version__,
            python_version=platform.python_version(),
            git_commit=commit,
            git_dirty=dirty,
            plan_hash=hashed,
            created_at=created_at
            or datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            commands={fmt: report_command({**values, "format": fmt}) for fmt in FORMATS},
        ),
        warnings=tuple(dict.fromkeys(warnings)),
        **(dict.fromkeys(names) | sections),
    )


def check_texts(title: object, notes: object) -> tuple[str | None, str | None]:
    """The title and notes of a report, checked: None or a non-blank string of at most
    :data:`MAX_TITLE_LENGTH` or :data:`MAX_NOTES_LENGTH` characters (PlanError names the field)."""
    for name, value, most in (
        ("title", title, MAX_TITLE_LENGTH),
        ("notes", notes, MAX_NOTES_LENGTH),
    ):
        if value is not None and (
            not isinstance(value, str) or not value.strip() or len(value) > most
        ):
            raise PlanError(name, value, f"a non-blank string of at most {most} characters")
    return title, notes


def _check_run(plan: TrainingPlan | dpplan.PhasedPlan, run: object) -> None:
    """Refuse a ``run`` that is not a stored, private run of ``plan``."""
    if not isinstance(run, RunRecord):
        raise PlanError(
            "run", run, "a dpplan.store.RunRecord", "Load one with RunStore().get_run(run_id)."
        )
    if run.plan != plan:
        raise PlanError("run", run.id, "a run of the given plan", "Pass plan=run.plan.")
    if not run.private:
        raise PlanError(
            "run",
            run.id,
            "a private run",
            "A non-private baseline has no differential-privacy guarantee to report.",
        )


def _group(
    plan: TrainingPlan,
    run: RunRecord | None,
    group_runs: Sequence[RunRecord],
    tuning_runs: int | None,
) -> list[RunRecord]:
    """Check ``run`` and its group against ``plan``; return the group's runs by id."""
    if run is None:
        if group_runs:
            raise PlanError(
                "group_runs", len(group_runs), "empty without a run", "Pass run= as well."
            )
        return []
    _check_run(plan, run)
    if not run.records:
        raise PlanError(
            "run",
            run.id,
            "a run with at least one completed epoch",
            f"Run {run.id} is {run.status} with no epoch recorded.",
        )
    for member in group_runs:
        if (
            not isinstance(member, RunRecord)
            or run.group_id is None
            or member.group_id != run.group_id
        ):
            raise PlanError(
                "group_runs",
                getattr(member, "id", member),
                f"runs of the run's group {run.group_id!r}",
            )
    by_id = {member.id: member for member in group_runs} | {run.id: run}
    group = [by_id[key] for key in sorted(by_id)] if run.group_id is not None else [run]
    if tuning_runs is not None and len(group) > 1:
        raise PlanError(
            "tuning_runs",
            tuning_runs,
            "omitted for a run of a comparison group",
            f"The store records {len(group)} runs in group {run.group_id}.",
        )
    return group


def build_report(
    plan: TrainingPlan,
    *,
    run: RunRecord | None = None,
    group_runs: Sequence[RunRecord] = (),
    tuning_runs: int | None = None,
    title: str | None = None,
    notes: str | None = None,
    store_home: str | None = None,
    created_at: str | None = None,
) -> Report:
    """Build the ε-budget report of a plan, or of a run of it.

    Apart from the creation time and the git commit, the result depends only on the
    arguments: the same arguments give an equal report.

    Args:
        plan: the plan. For a run, pass ``run.plan``. A :class:`~dpplan.PhasedPlan` of several
            phases gets a phased report (a phase table; no run, tuning or membership sections).
        run: a stored, private run with at least one completed epoch; the report then
            accounts the epochs it completed and shows its per-epoch measurements.
        group_runs: every run of the run's comparison group (``run`` included or not), to
            account for hyper-parameter tuning. :func:`build_run_report` fills it in.
        tuning_runs: the number of training runs made on this data (≥ 1), when there is no
            group: the report then also gives ε of all of them composed.
        title: the report's title (default "DP-SGD privacy report", "... of run N" for a run),
            at most 300 characters.
        notes: the author's notes, shown as written (escaped), at most 20,000 characters.
        store_home: the run store folder, written into the regenerating command of a run.
        created_at: the creation time (ISO 8601); default now.

    Returns:
        A :class:`Report`. Its headline equals ``dpplan.compare(accounted_plan)``'s, where
        ``accounted_plan`` is ``plan`` cut to the run's completed epochs.

    Raises:
        PlanError: if ``plan`` is not a TrainingPlan, ``run`` does not match it, is
            non-private or has no completed epoch, a group run belongs to another group,
            ``tuning_runs`` is not an integer in [1, 10000] or given with a group, or the
            title or notes are invalid.
        AccountingError: if every accountant failed.

    Example:
        >>> plan = TrainingPlan(dataset_size=60000, batch_size=256, noise_multiplier=1.1,
        ...                     epochs=2, delta=1e-5)
        >>> report = build_report(plan, title="MNIST plan")
        >>> report.epsilon == dpplan.compare(plan).headline_epsilon
        True
    """
    if isinstance(plan, dpplan.PhasedPlan) and run is not None:
        return _phased_run_report(plan, run, group_runs, tuning_runs, title, notes, created_at)
    if isinstance(plan, dpplan.PhasedPlan) and (len(plan.phases) > 1 or plan.phase_steps):
        for name, value in (("run", run), ("group_runs", group_runs), ("tuning_runs", tuning_runs)):
            if value is not None and value != ():
                raise PlanError(name, value, "omitted for a phased plan", "Report the plan alone.")
        from dpplan.report.composition import build_phased_report

        return build_phased_report(plan, title=title, notes=notes, created_at=created_at)
    if isinstance(plan, dpplan.PhasedPlan):  # one phase, all its epochs: an ordinary plan
        plan = plan.phases[0]
    if not isinstance(plan, TrainingPlan):
        raise PlanError("plan", plan, "a dpplan.TrainingPlan", "Build one with TrainingPlan(...).")
    title, notes = check_texts(title, notes)
    if tuning_runs is not None:
        tuning_runs = _validate.integer(
            minimum=1,
            maximum=10_000,
            tuning_runs=tuning_runs,
            hint="Give the number of training runs on this data.",
        )
    group = _group(plan, run, group_runs, tuning_runs)
    # A diverged run's last epoch is not recorded, but its steps touched the data; so did
    # the steps of an epoch a stop abandoned (rounded up to whole epochs here).
    epochs_done = epochs_counted(run) if run is not None else plan.epochs
    accounted = plan if epochs_done == plan.epochs else plan.replace(epochs=epochs_done)
    note = abandoned_note(run) if run is not None else None
    comparison = accounting.compare(accounted)
    return new_report(
        "run" if run is not None else "plan",
        title=title,
        default_title="DP-SGD privacy report" + (f" of run {run.id}" if run is not None else ""),
        notes=notes,
        values=_plan_values(plan, run, store_home) | {"tuning_runs": tuning_runs},
        hashed=plan_hash(plan),
        created_at=created_at,
        warnings=warned(comparison.warnings, comparison.failures)
        + list(run.warnings if run is not None else ())
        + ([f"{note}, rounded up to whole epochs (ε is an upper bound)."] if note else []),
        plan=_plan(plan),
        epochs=accounted.epochs,
        total_steps=accounted.total_steps,
        accounting=accounting_section(comparison, accounted),
        membership=membership_section(accounted, comparison.headline_epsilon),
        tuning=tuning_section(plan, accounted, run, group, tuning_runs),
        run=run_section(run) if run is not None else None,
    )


def _phased_run_report(plan, run, group_runs, tuning_runs, title, notes, created_at) -> Report:
    """The report of a run of a phased plan: the phased report of the plan cut at the steps
    of the epochs the run completed (a diverged run's last, unrecorded epoch counted)."""
    from dpplan.report.composition import build_phased_report

    _check_run(plan, run)
    others = [r for r in group_runs if r.id != run.id]
    if tuning_runs is not None:
        raise PlanError(
            "tuning_runs",
            tuning_runs,
            "none for a phased run",
            "A phased run's tuning is its run group (e.g. a 'dpplan compare' of the plan).",
        )
    if run.epochs_spent < 1:
        raise PlanError("run", run.id, "a run with at least one completed epoch")
    accounted = spent_phased(run)  # an epoch a stop abandoned: one more phase
    note = abandoned_note(run)
    if note:
        note += " (as a last phase at the largest sample rate and smallest σ of any phase)."
        notes = f"{notes}\n\n{note}" if notes else note
    report = build_phased_report(
        accounted,
        title=title if title is not None else f"DP-SGD privacy report of run {run.id}",
        notes=notes,
        created_at=created_at,
    )
    if not others:
        return report
    # A phased report has no tuning section: the group's composed ε is stated as a warning.
    warning = group_epsilon_warning(run, [run, *others], delta=plan.delta)
    return report.model_copy(update={"warnings": (*report.warnings, warning)})


def build_run_report(
    store: RunStore,
    run_id: int,
    *,
    title: str | None = None,
    notes: str | None = None,
    created_at: str | None = None,
) -> Report:
    """Build the report of a stored run, with its comparison group from the same store.

    Raises:
        NotFoundError: if there is no such run.
        PlanError: if :func:`build_report` refuses it.
    """
    if not isinstance(store, RunStore):
        raise PlanError("store", store, "a dpplan.store.RunStore")
    run_id = _validate.integer(minimum=1, run_id=run_id, hint="List the runs with 'dpplan runs'.")
    run = store.get_run(run_id)
    group = (
        [other for other in store.list_runs() if other.group_id == run.group_id]
        if run.group_id is not None
        else []
    )
    return build_report(
        run.plan,
        run=run,
        group_runs=group,
        title=title,
        notes=notes,
        store_home=str(store.home.resolve()),
        created_at=created_at,
    )


def save_run_report(store: RunStore, report: Report) -> None:
    """Store a run's report with the run (``RunStore.save_report``), as JSON.

    Raises:
        PlanError: if ``report`` is not the report of a run, or the run is not in ``store``.
    """
    if not isinstance(report, Report) or report.run is None:
        raise PlanError(
            "report",
            getattr(report, "kind", report),
            "the report of a run",
            "Plan reports are not stored; write them to a file.",
        )
    store.get_run(report.run.id)
    store.save_report(report.run.id, report.to_dict())


def load_run_report(store: RunStore, run_id: int) -> Report | None:
    """Return the report stored with a run, or ``None`` if it has none.

    Raises:
        NotFoundError: if there is no such run.
        PlanError: if the stored report cannot be read: made by an older dpplan (the hint
            says how to rebuild it) or not a valid report.
    """
    run_id = _validate.integer(minimum=1, run_id=run_id, hint="List the runs with 'dpplan runs'.")
    store.get_run(run_id)
    data = store.load_report(run_id)
    if data is None:
        return None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if isinstance(version, int) and version < SCHEMA_VERSION:
        raise PlanError(
            "run",
            run_id,
            "a run whose stored report this dpplan can read",
            f"Its report was stored by an older dpplan (report schema {version}); "
            f"rebuild it with 'dpplan report --run {run_id}'.",
        )
    return report_from_dict(data)


# ---- sweeps ----------------------------------------------------------------------------------

#: What a random-protocol sweep report leaves out (``Sweep.withheld``): each reveals the
#: secret number of trials, or releases a trial the repeat-and-select guarantee does not cover.
RANDOM_WITHHELD = (
    "runs_tried",
    "trials",
    "run_ids",
    "seed_repeats",
    "all_runs_epsilon",
    "per_target_runs",
    "curves",
    "error",
)


def _frontier_point(point: SweepPoint, alone: SweepPoint | None = None) -> FrontierPoint:
    """A point of ``frontier_result``; with ``alone`` (random protocol) the selected model's
    own first-seed measurement (its curve point) replaces the mean over its repeats."""
    shown = point if alone is None else alone
    same = ("target_epsilon", "epsilon", "epsilon_method", "learning_rate", "validation_accuracy")
    return FrontierPoint(
        **{name: getattr(point, name) for name in same},
        plan=_plan(point.plan),
        schedule_kind=point.schedule.kind,
        schedule=_jsonable(point.schedule.to_dict()),
        test_accuracy_mean=shown.test_accuracy_mean,
        # One seed measures no spread: None (shown as such), never a spread of 0.
        test_accuracy_std=None
        if alone is not None or len(point.seeds) < 2
        else point.test_accuracy_std,
        seeds=tuple(shown.seeds[:1] if alone is not None else shown.seeds),
        run_ids=None if alone is not None else tuple(point.run_ids),
    )


def _selected_alone(point: SweepPoint, curves: Mapping[str, Sequence[SweepPoint]]) -> SweepPoint:
    """Random protocol: the selected trial's own (first-seed) point, from its schedule's
    curve, which holds each schedule's best draw at each ε measured with the first seed."""
    for other in curves.get(point.schedule.kind, ()):
        if (
            other.target_epsilon == point.target_epsilon
            and other.plan == point.plan
            and other.schedule == point.schedule
            and other.validation_accuracy == point.validation_accuracy
        ):
            return other
    raise PlanError(  # pragma: no cover - frontier() always has it
        "sweep", point.target_epsilon, "a selected trial with its first-seed measurement"
    )


def _best_at_most(points: Sequence[FrontierPoint]) -> tuple[BestAtMost, ...]:
    """For each target x: the point :func:`dpplan.selection.best_at` selects among ε ≤ x
    (best validation accuracy; the test set never selects; first in target order on ties)."""
    rows = []
    for bound in sorted({p.target_epsilon for p in points}):
        best = best_at(points, epsilon_at_most=bound)
        if best is not None:
            index = next(k for k, p in enumerate(points) if p is best)
            rows.append(BestAtMost(epsilon_at_most=bound, point=index))
    return tuple(rows)


def _sweep_tuning(tuning: TuningCost) -> SweepTuning:
    """The tuning cost; in the random protocol without the counts of runs (they are secret)."""
    secret = ("runs", "all_runs_epsilon", "all_runs_method") if tuning.random else ()

    def fields(row: Any, model: type) -> dict[str, Any]:
        return {name: None if name in secret else getattr(row, name) for name in model.model_fields}

    per_target = tuple(TargetCost(**fields(row, TargetCost)) for row in tuning.per_target)
    return SweepTuning(**fields(tuning, SweepTuning) | {"per_target": per_target})


#: The sweep spec's fields a Sweep section holds as they are (lists become tuples).
_SPEC_SAME = ("method", "delta", "target_epsilons", "batch_sizes", "epochs", "schedules")
_SPEC_SAME += ("seeds", "max_grad_norm")


def _sweep(result: FrontierResult, record: Any) -> Sweep:
    """The Sweep section from ``frontier_result`` (random protocol: the secret parts left out)."""
    spec = result.spec.to_dict()
    random = result.tuning.random
    curves = result.curves
    points = tuple(
        _frontier_point(p, _selected_alone(p, curves) if random else None) for p in result.points
    )
    options = _jsonable(spec["options"])
    return Sweep(
        id=result.sweep_id,
        status=result.status,
        error=None if random else record.error,
        protocol="random_repeats" if random else "grid",
        **{name: spec[name] for name in _SPEC_SAME},
        dataset_size=result.plans[0].plan.dataset_size,
        validation_size=int(options.get("validation_size", 0)),
        learning_rates={kind: tuple(spec[f"{kind}_lrs"]) for kind in spec["schedules"]},
        random_repeats=spec.get("random_repeats"),
        plateau_every=spec.get("plateau_every"),
        options=options,
        spec_hash=digest(spec),
        created_at=_iso(record.created_at),
        updated_at=_iso(record.updated_at),
        withheld=RANDOM_WITHHELD if random else (),
        runs_tried=None if random else result.runs_tried,
        trials=None if random else SweepTrials(**result.trials.to_dict()),
        plans=tuple(
            SolvedPlan(
                **{name: getattr(row, name) for name in SolvedPlan.model_fields}
                | {"plan": _plan(row.plan)}
            )
            for row in result.plans
        ),
        points=points,
        best=_best_at_most(points),
        curves=()
        if random
        else tuple(
            ScheduleCurve(schedule_kind=kind, points=tuple(_frontier_point(p) for p in curve))
            for kind, curve in curves.items()
        ),
        tuning=_sweep_tuning(result.tuning),
        simulation=_sweep_simulation(result),
    )


def _sweep_simulation(result: FrontierResult) -> SweepSimulation | None:
    """The simulation facts of a sweep predicted by simulation (:mod:`dpplan.simulate`)."""
    mark = result.simulation
    if not mark:
        return None
    costs = result.tuning.simulation or {}
    measured = mark.get("calibration") or {}
    return SweepSimulation(
        k=mark["predicted_by_simulation"],
        data=mark["simulation_data"],
        label=mark["label"],
        one_trial_epsilon=costs.get("one_trial_epsilon"),
        all_trials_epsilon=costs.get("all_trials_epsilon"),
        mean_abs_error_points=measured.get("mean_abs_error_points"),
        worst_abs_error_points=measured.get("worst_abs_error_points"),
        calibration_source=measured.get("source"),
    )


def _sweep_warnings(sweep: Sweep) -> tuple[str, ...]:
    """Facts a reader must not miss (the words are in the templates; these are short)."""
    warnings = []
    if sweep.status not in ("finished",):
        warnings.append(
            f"Sweep {sweep.id} is {sweep.status}: its points and tuning cost cover the trials "
            "stored so far."
        )
    missing = [
        t for t in sweep.target_epsilons if t not in {p.target_epsilon for p in sweep.points}
    ]
    if missing:
        warnings.append(
            "No point at target ε "
            + ", ".join(f"{t:g}" for t in missing)
            + " (no selection there has finished)."
        )
    if sweep.trials is not None and sweep.trials.failed:
        warnings.append(f"{sweep.trials.failed} trials failed; they released nothing.")
    sim = sweep.simulation
    if sim is not None:
        error = (
            f"measured error at K = {sim.k}: {sim.mean_abs_error_points:.1f} accuracy points "
            f"on average, {sim.worst_abs_error_points:.1f} at worst ({sim.calibration_source})"
            if sim.mean_abs_error_points is not None
            else f"K = {sim.k} was not calibrated: the error of these predictions is unmeasured"
        )
        spent = (
            "they trained on the validation split, treated as public, and cost no training-data ε"
            if sim.data == "validation"
            else f"they trained on the training data, and their own ε counts: one trial "
            f"ε = {sim.one_trial_epsilon:.4g}, all trials composed ε = "
            f"{sim.all_trials_epsilon:.4g} (σ/K is small)"
        )
        warnings.append(
            f"Every point is {sim.label}: each trial trained B/K with σ/K for its plan's "
            f"steps, not the plan itself; {error}. The ε of each point is its plan's (what "
            f"training it would cost); {spent}."
        )
    return tuple(warnings)


def build_sweep_report(
    store: RunStore,
    sweep_id: int,
    *,
    title: str | None = None,
    notes: str | None = None,
    created_at: str | None = None,
) -> Report:
    """Build the report of a stored sweep: its frontier, the best accuracy at ε ≤ x with the
    plan behind it, the per-schedule curves and the privacy cost of the tuning.

    The numbers are :func:`dpplan.sweep.frontier_result`'s. In the random protocol
    (``tuning["protocol"] == "random_repeats"``) the report leaves out every count of runs
    or trials, the runs' ids, the seed repeats of the selected models, ε of all runs
    composed, the per-schedule curves and the sweep's error text (``Sweep.withheld``):
    Papernot & Steinke's guarantee needs the number of trials to stay secret.

    Args:
        store: the run store holding the sweep.
        sweep_id: the sweep's id (``dpplan sweep`` prints it).
        title: the report's title (default "DP-SGD frontier report of sweep N").
        notes: the author's notes, shown as written (escaped).
        created_at: the creation time (ISO 8601); default now.

    Raises:
        NotFoundError: if there is no such sweep.
        PlanError: if the title or notes are invalid.
    """
    from dpplan.sweep import frontier_result

    if not isinstance(store, RunStore):
        raise PlanError("store", store, "a dpplan.store.RunStore")
    sweep_id = _validate.integer(
        minimum=1, sweep_id=sweep_id, hint="List the sweeps on the app's Frontier page."
    )
    title, notes = check_texts(title, notes)
    record = store.get_sweep(sweep_id)
    sweep = _sweep(frontier_result(store, sweep_id), record)
    return new_report(
        "sweep",
        title=title,
        default_title=f"DP-SGD frontier report of sweep {sweep_id}",
        notes=notes,
        values={"sweep": sweep_id, "home": str(store.home.resolve())},
        hashed=None,
        created_at=created_at,
        warnings=_sweep_warnings(sweep),
        sweep=sweep,
    )
