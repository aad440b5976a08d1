"""``dpplan runs`` (list, show, stop, delete, resume)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from dpplan.cli.common import EXIT_OK, dump
from dpplan.cli.render import run_summary, stop_text
from dpplan.errors import (
    NotFoundError,
)
from dpplan.format import epsilon_text


def _sweep_trial_of(store: Any, run: Any) -> dict[str, Any] | None:
    """Return the sweep trial a run belongs to (sweep id, key, status, error), if any."""
    group = run.group_id or ""
    if not (group.startswith("sweep-") and group[6:].isdigit()):
        return None
    try:
        record = store.get_sweep(int(group[6:]))
    except NotFoundError:
        return None
    for trial in record.trials:
        if trial.run_id == run.id:
            return {
                "sweep_id": record.id,
                "key": trial.key,
                "status": trial.status,
                "error": trial.error,
            }
    return None


def _planned_epochs(plan: Any) -> int:
    """The epochs a run of ``plan`` records (a PhasedPlan's possibly partial ones)."""
    return len(plan.epoch_ends()) if hasattr(plan, "phases") else plan.epochs


def cmd_runs(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    from dpplan.run_policy import abandoned_note, delete_run, run_epsilon
    from dpplan.store import RunStore

    store = RunStore()
    if args.action in ("show", "stop", "delete"):
        run_id = args.run_id
        if args.action == "stop":
            done = store.request_stop(run_id, force=args.force)
            if not args.json:
                out(stop_text(done))
        elif args.action == "delete":
            delete_run(store, run_id)
            out(dump({"deleted": run_id}) if args.json else f"deleted run {run_id}")
            return EXIT_OK
        run = store.get_run(run_id)
        trial = _sweep_trial_of(store, run)
        if args.json:
            data = run.to_dict()
            if trial is not None:
                data["sweep_trial"] = trial
            out(dump(data))
            return EXIT_OK
        lines = run_summary(run)
        note = abandoned_note(run) if run.private else None
        if note is not None:
            spent, method = run_epsilon(run)
            lines.append(f"  ε spent: {epsilon_text(spent)} ({method}); {note}")
        if trial is not None:
            lines.append(f"  sweep {trial['sweep_id']} trial {trial['key']}: {trial['status']}")
            if trial["error"]:
                lines += [f"    {line}" for line in trial["error"].splitlines()]
        out("\n".join(lines))
        return EXIT_OK
    runs = store.list_runs()
    if args.json:
        out(dump({"runs": [run.to_dict() for run in runs], "store": str(store.path)}))
        return EXIT_OK
    lines = [
        f"store: {store.path}",
        "   id  status       schedule    lr      epochs   ε (method)  test acc  device",
    ]
    for run in runs:
        last = run.records[-1] if run.records else None
        lr = run.schedule.learning_rate
        # One ε per run: the smallest upper bound recorded, labelled with its method.
        best = run_epsilon(run) if run.private else None
        shown = (
            f"{epsilon_text(best[0])} ({best[1]})"
            if best
            else ("-" if last is None else f"{epsilon_text(last.epsilon)} (none)")
        )
        lines.append(
            f"{run.id:5d}  {run.status:<11}  {run.schedule['kind']:<10} {lr:<7g} "
            f"{len(run.records):>3}/{_planned_epochs(run.plan):<3}  "
            f"{shown:>13}  "
            f"{f'{last.test_accuracy:.2%}' if last else '-':>8}  {run.device}"
        )
    out("\n".join(lines))
    return EXIT_OK
