"""``dpplan report``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from dpplan.cli.common import (
    EXIT_OK,
    PLAN_FLAGS,
    number,
    parse_run_id,
    parse_sweep_id,
    plan_from_args,
)
from dpplan.cli.render import fmt
from dpplan.errors import NotFoundError, PlanError, UsageError


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

    plan_flags = [f for f in PLAN_FLAGS if getattr(args, f, None) is not None]
    if args.sweep is not None:
        for name, value in [(f, getattr(args, f)) for f in plan_flags] + [
            ("run", args.run),
            ("tuning_runs", args.tuning_runs),
            ("stored", args.stored or None),
        ]:
            if value is not None:
                raise UsageError(
                    name,
                    value,
                    "omitted with --sweep",
                    "A sweep's report uses the sweep's own plans and runs.",
                )
        if args.home is not None and not (Path(args.home).expanduser() / "runs.sqlite3").exists():
            raise NotFoundError(
                "home",
                args.home,
                "a folder holding runs.sqlite3",
                "Pass the folder of the run store (DPPLAN_HOME).",
            )
        report = build_sweep_report(
            RunStore(args.home),
            parse_sweep_id("sweep", args.sweep),
            title=args.title,
            notes=args.notes,
        )
    elif args.run is not None:
        if plan_flags:
            raise UsageError(
                plan_flags[0],
                getattr(args, plan_flags[0]),
                "omitted with --run",
                "A run's report uses the run's own plan.",
            )
        if args.tuning_runs is not None:
            raise UsageError(
                "tuning_runs",
                args.tuning_runs,
                "omitted with --run",
                "A run's comparison group comes from the run store.",
            )
        if args.home is not None and not (Path(args.home).expanduser() / "runs.sqlite3").exists():
            raise NotFoundError(
                "home",
                args.home,
                "a folder holding runs.sqlite3",
                "Pass the folder of the run store (DPPLAN_HOME).",
            )
        store = RunStore(args.home)
        run_id = parse_run_id("run", args.run)
        if args.stored:
            if args.title is not None or args.notes is not None:
                raise UsageError(
                    "title" if args.title is not None else "notes",
                    args.title if args.title is not None else args.notes,
                    "omitted with --stored",
                    "A stored report is shown as stored.",
                )
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
            save_run_report(store, report)
    else:
        if args.stored:
            raise PlanError("stored", True, "used with --run ID", "Only runs store reports.")
        plan = plan_from_args(args)
        tuning_runs = None if args.tuning_runs is None else number("tuning_runs", args.tuning_runs)
        report = build_report(plan, tuning_runs=tuning_runs, title=args.title, notes=args.notes)
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
        raise PlanError("output", args.output, "a writable file path", str(exc)) from None
    if report.sweep is not None:
        print(
            f"wrote {path} ({args.format}; sweep {report.sweep.id}, "
            f"{len(report.sweep.points)} points at δ = {report.delta:g})",
            file=sys.stderr,
        )
    else:
        print(
            f"wrote {path} ({args.format}; ε = {fmt(report.epsilon)} at δ = "
            f"{report.delta:g}, {report.method})",
            file=sys.stderr,
        )
    return EXIT_OK
