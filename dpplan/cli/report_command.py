"""``dpplan report``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from dpplan.cli.common import EXIT_OK, PLAN_FIELDS, plan_or_file
from dpplan.errors import NotFoundError, PlanError, UsageError
from dpplan.format import epsilon_text
from dpplan.phased import PhasedPlan

#: The report's modes (the flag that selects each, in order of precedence) and the flags each
#: refuses, with why: (mode flag, refused flags, expected, hint).
_REPORT_EXCLUSIONS = (
    (
        "ledger",
        (*PLAN_FIELDS, "plan", "run", "sweep", "tuning_runs", "stored"),
        "omitted with --ledger",
        "A ledger's report uses its own records.",
    ),
    (
        "sweep",
        (*PLAN_FIELDS, "run", "tuning_runs", "stored"),
        "omitted with --sweep",
        "A sweep's report uses the sweep's own plans and runs.",
    ),
    ("run", PLAN_FIELDS, "omitted with --run", "A run's report uses the run's own plan."),
    (
        "run",
        ("tuning_runs",),
        "omitted with --run",
        "A run's comparison group comes from the run store.",
    ),
    ("stored", ("title", "notes"), "omitted with --stored", "A stored report is shown as stored."),
)


def _refuse_excluded_flags(args: argparse.Namespace) -> None:
    """Refuse, in one place, every flag the selected report mode does not take.

    Raises:
        UsageError: naming the first refused flag given.
    """
    mode = (
        "ledger"
        if args.ledger is not None
        else "sweep"
        if args.sweep is not None
        else "run"
        if args.run is not None
        else "plan"
    )
    if mode == "plan" and args.stored:
        raise UsageError("stored", True, "used with --run ID", "Only runs store reports.")
    for selector, refused, expected, hint in _REPORT_EXCLUSIONS:
        if selector != mode and not (selector == "stored" and mode == "run" and args.stored):
            continue
        for name in refused:
            value = getattr(args, name, None)
            if value is not None and value is not False:
                raise UsageError(name, value, expected, hint)


def _ledger_report(args: argparse.Namespace):
    """The report of ``--ledger FILE`` (a ``Ledger.to_dict()`` saved as JSON)."""
    from dpplan.ledger import Ledger
    from dpplan.report import build_ledger_report

    try:
        data = json.loads(Path(args.ledger).expanduser().read_text())
    except OSError as exc:
        raise PlanError("ledger", args.ledger, "a readable JSON file", str(exc)) from None
    except ValueError as exc:
        raise PlanError(
            "ledger", args.ledger, "a JSON file of Ledger.to_dict()", f"It does not parse: {exc}."
        ) from None
    return build_ledger_report(
        Ledger.from_dict(data), title=args.title, notes=args.notes, ledger_file=args.ledger
    )


def cmd_report(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    from dpplan.report import (
        build_report,
        build_run_report,
        build_sweep_report,
        load_run_report,
        render,
        save_run_report,
    )
    from dpplan.store import RunStore

    _refuse_excluded_flags(args)
    stored_runs = args.sweep is not None or args.run is not None
    home = None if args.home is None else Path(args.home).expanduser()
    if stored_runs and home is not None and not (home / "runs.sqlite3").exists():
        raise NotFoundError(
            "home",
            args.home,
            "a folder holding runs.sqlite3",
            "Pass the folder of the run store (DPPLAN_HOME).",
        )
    if args.ledger is not None:
        report = _ledger_report(args)
    elif args.sweep is not None:
        report = build_sweep_report(
            RunStore(args.home),
            args.sweep,
            title=args.title,
            notes=args.notes,
        )
    elif args.run is not None:
        store = RunStore(args.home)
        run_id = args.run
        if args.stored:
            report = load_run_report(store, run_id)
            if report is None:
                raise NotFoundError(
                    "run",
                    run_id,
                    "a run with a stored report",
                    f"Make one with 'dpplan report --run {run_id}'.",
                )
        else:
            report = build_run_report(store, run_id, title=args.title, notes=args.notes)
            if report.run is not None:  # a phased run's report is the phased plan's: not stored
                save_run_report(store, report)
    else:
        plan = plan_or_file(args)
        if isinstance(plan, PhasedPlan):
            from dpplan.report import build_phased_report

            if args.tuning_runs is not None:
                raise UsageError(
                    "tuning_runs",
                    args.tuning_runs,
                    "omitted with a phased --plan FILE",
                    "A phased plan's report has no tuning section.",
                )
            report = build_phased_report(
                plan, title=args.title, notes=args.notes, plan_file=args.plan
            )
        else:
            report = build_report(
                plan, tuning_runs=args.tuning_runs, title=args.title, notes=args.notes
            )
    if args.format == "pdf" and args.output is None:
        raise UsageError(
            "output",
            None,
            "a file path with --format pdf",
            "A PDF is binary: add --output report.pdf.",
        )
    text = render(report, args.format)
    if args.output is None:
        out(text.rstrip("\n"))
        return EXIT_OK
    path = Path(args.output).expanduser()
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        if isinstance(text, bytes):
            temporary.write_bytes(text)
        else:
            temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        raise UsageError("output", args.output, "a writable file path", str(exc)) from None
    if report.sweep is not None:
        print(
            f"wrote {path} ({args.format}; sweep {report.sweep.id}, "
            f"{len(report.sweep.points)} points at δ = {report.delta:g})",
            file=sys.stderr,
        )
    else:
        print(
            f"wrote {path} ({args.format}; ε = {epsilon_text(report.epsilon)} at δ = "
            f"{report.delta:g}, {report.method})",
            file=sys.stderr,
        )
    return EXIT_OK
