"""Text rendering for the command line: plan lines, training curves, run summaries, frontiers."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

from dpplan.errors import (
    DpplanError,
)
from dpplan.format import epsilon_text
from dpplan.store.records import ScheduleRecord
from dpplan.sweep.results import unstored_note


def _phase_lines(plan) -> list[str]:
    """Header lines of a phased plan: one row per phase."""
    lines = [
        (
            f"plan: {len(plan.phases)} phases, dataset_size={plan.dataset_size} "
            f"delta={plan.delta:g} total_steps={plan.total_steps}"
        )
    ]
    for index, (phase, steps) in enumerate(zip(plan.phases, plan.steps_per_phase)):
        lines.append(
            f"      phase {index + 1}: batch_size={phase.batch_size} "
            f"noise_multiplier={phase.noise_multiplier:g} epochs={phase.epochs} "
            f"steps={steps} sample_rate={phase.sample_rate:.6g}"
        )
    return lines


def plan_lines(plan) -> list[str]:
    if not hasattr(plan, "batch_size"):  # a PhasedPlan
        return _phase_lines(plan)
    return [
        (
            f"plan: dataset_size={plan.dataset_size} batch_size={plan.batch_size} "
            f"noise_multiplier={plan.noise_multiplier:g} epochs={plan.epochs} delta={plan.delta:g} "
            f"max_grad_norm={plan.max_grad_norm:g}"
        ),
        (
            f"      sample_rate={plan.sample_rate:.6g} steps_per_epoch={plan.steps_per_epoch} "
            f"total_steps={plan.total_steps}"
        ),
    ]


def curve_table(curves, every: int = 1) -> list[str]:
    """Return a per-epoch table of the curves: every ``every``-th epoch and the last."""
    headers = ["epoch", "steps"]
    columns: list[list[float]] = []
    for curve in curves:
        headers.append(f"{curve.method} ε")
        columns.append(list(curve.epsilons))
        if curve.lower is not None:
            headers.append(f"{curve.method} lower")
            columns.append(list(curve.lower))
    plan = curves[0].plan
    last = len(curves[0].epochs) - 1
    rows = [
        [str(epoch), str(plan.steps_after(epoch))] + [epsilon_text(c[row]) for c in columns]
        for row, epoch in enumerate(curves[0].epochs)
        if not epoch % every or row == last
    ]
    # Columns as wide as their widest cell, so large values never run together.
    widths = [max(7, len(h) + 2, *(len(r[i]) + 2 for r in rows)) for i, h in enumerate(headers)]
    return ["".join(c.rjust(w) for c, w in zip(cells, widths)) for cells in [headers, *rows]]


def record_epsilon_text(record: Any, method: str) -> str:
    """One epoch's ε as every surface shows it: the smallest upper bound, with its method."""
    from dpplan.run_policy import epoch_epsilon

    value, best = epoch_epsilon(record, method)
    return f"{epsilon_text(value)} ({best})" if math.isfinite(value) else "inf (non-private)"


def run_summary(run) -> list[str]:
    lines = [
        f"run {run.id}: {run.status}"
        + (f" ({run.stop_reason})" if run.stop_reason else "")
        + (f" error: {run.error}" if run.error else ""),
        (
            f"  device={run.device} seed={run.seed} private={run.private} "
            f"schedule={json.dumps(run.schedule)}"
        ),
    ]
    source = _data_source(run.options)
    if source:
        lines.append(f"  data: {source}")
    task = getattr(run, "task", None)
    if task is not None:
        spec = getattr(run, "task_spec", None)
        lines.append(f"  task: {task}" + (f" ({spec})" if spec else ""))
    lines += ["  " + line for line in plan_lines(run.plan)]
    if run.records:
        lines.append(
            "  epoch  steps  ε (smallest bound)  Opacus ε (rdp)  val acc  test acc    loss"
            "        lr  seconds"
        )
        for r in run.records:
            shown = record_epsilon_text(r, run.method) if run.private else epsilon_text(r.epsilon)
            lines.append(
                f"  {r.epoch:5d} {r.steps:6d} {shown:>19} {epsilon_text(r.epsilon_opacus):>15} "
                f"{r.validation_accuracy:8.2%} {r.test_accuracy:9.2%} {r.train_loss:7.4f} "
                f"{r.lr:9.3g} {r.seconds:8.1f}"
            )
        last = run.records[-1]
        if last.test_accuracy != last.test_accuracy:  # NaN: not a classification
            lines.append(f"  test loss after epoch {last.epoch}: {last.test_loss:.6g}")
        for name, value in last.metrics.items():
            lines.append(f"  {name} after epoch {last.epoch}: {value:.6g}")
    for warning in run.warnings:
        lines.append(f"  warning: {warning}")
    return lines


def _data_source(options: dict[str, Any]) -> str | None:
    """Where a run's MNIST came from, in words (None for runs stored before it was kept)."""
    source = options.get("data_source")
    if source is None:
        return None
    return f"MNIST {source}"


def fitting_noise(run: Any) -> str:
    """The σ with which every epoch of the run's plan meets its target ε, in words."""
    from dpplan.solve import solve_noise_multiplier

    target = run.options.get("target_epsilon")
    try:
        solved = solve_noise_multiplier(run.plan, target_epsilon=target, method=run.method)
    except DpplanError as exc:
        return f"No noise multiplier could be solved for it ({exc})."
    if hasattr(solved, "phases"):  # a PhasedPlan: every phase's σ scaled by one factor
        sigmas = ", ".join(f"{p.noise_multiplier:.4g}" for p in solved.phases)
        return (
            f"Phase noise multipliers {sigmas} (every phase's scaled by one factor) fit the "
            f"whole plan within target_epsilon={target:g} ({run.method}; from dpplan.solve_"
            "noise_multiplier)."
        )
    return (
        f"--noise-multiplier {solved.noise_multiplier:.4g} fits all {run.plan.epochs} "
        f"epoch(s) within target_epsilon={target:g} ({run.method}; from dpplan.solve_"
        "noise_multiplier)."
    )


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = round(seconds)
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
        if seconds >= 3600
        else (f"{seconds // 60}m{seconds % 60:02d}s")
    )


def _simulation_lines(result: dict[str, Any]) -> list[str]:
    """What a sweep predicted by simulation must say first (issue 22)."""
    mark = result.get("simulation")
    if not mark:
        return []
    measured = mark.get("calibration")
    error = (
        f"measured error at K = {mark['predicted_by_simulation']}: "
        f"{measured['mean_abs_error_points']:.1f} points on average, "
        f"{measured['worst_abs_error_points']:.1f} at worst ({measured['source']})"
        if measured
        else f"K = {mark['predicted_by_simulation']} is not calibrated: error unmeasured"
    )
    data = (
        "the validation split, treated as public (no training-data ε)"
        if mark["simulation_data"] == "validation"
        else "the training data (the trials' own, large ε is the composed ε below)"
    )
    return [
        (
            f"every point is {mark['label']}: trials trained B/K with σ/K for the plan's "
            f"steps on {data}; {error}"
        ),
        "",
    ]


def frontier_lines(result: dict[str, Any]) -> list[str]:
    tuning = result["tuning"]
    predicted = f" [{result['simulation']['label']}]" if result.get("simulation") else ""
    lines = [
        (
            f"sweep {result['sweep_id']}: {result['status']}; {result['runs_tried']} runs "
            f"tried; trials {result['trials']['finished']} finished"
            + (
                f" ({result['trials']['diverged']} diverged: no accuracy, never selected)"
                if result["trials"].get("diverged")
                else ""
            )
            + f", {result['trials']['failed']} failed of {result['trials']['planned']} planned"
        ),
    ]
    if note := unstored_note(result.get("unstored_attempts", 0)):
        lines.append(note)
    if result.get("task"):
        lines.append(f"task: {result['task']} (--task)")
    points = list(result["points"]) + [p for c in result["curves"].values() for p in c]
    # A task that is not a classification (a regression) has no accuracy: it is selected by
    # validation loss and reported by test loss.
    by_loss = bool(points) and points[0].get("validation_accuracy") == "nan"
    lines += [
        "",
        *_simulation_lines(result),
        (
            "frontier (configuration with the lowest validation loss at each ε; test "
            f"loss mean ± sample std over seeds){predicted}:"
            if by_loss
            else "frontier (configuration with the best validation accuracy at each ε; test "
            f"accuracy mean ± sample std over seeds){predicted}:"
        ),
        "  target ε        ε      B    E        σ  schedule    lr      "
        + ("test loss" if by_loss else "test acc ")
        + "       seeds",
    ]

    def row(point: dict[str, Any]) -> str:
        plan, schedule = point["plan"], point["schedule"]
        lr = ScheduleRecord(schedule).learning_rate
        # One seed measures no spread: say so instead of printing "± 0.00%".
        if by_loss:
            value = f"{float(point['test_loss_mean']):9.4g}"
            spread = f"± {float(point['test_loss_std']):.3g}"
        else:
            value = f"{point['test_accuracy_mean']:7.2%}"
            spread = f"± {point['test_accuracy_std']:.2%}"
        if len(point["seeds"]) <= 1:
            spread = "(1 seed: no spread measured)"
        return (
            f"  {point['target_epsilon']:8g} {epsilon_text(point['epsilon']):>8} "
            f"{plan['batch_size']:6d} {plan['epochs']:4d} {plan['noise_multiplier']:8.4f}"
            f"  {schedule['kind']:<10} {lr:<6g} {value} "
            f"{spread}  {','.join(map(str, point['seeds']))}"
            + (
                f" (seed {','.join(map(str, point['diverged_seeds']))} diverged)"
                if point.get("diverged_seeds")
                else ""
            )
        )

    lines += [row(point) for point in result["points"]] or ["  (no point yet)"]
    for kind, curve in result["curves"].items():
        lines += ["", f"{kind}:"] + [row(point) for point in curve]
    if not by_loss:
        lines += _schedule_differences(result["curves"])
    all_runs = f"all {tuning['runs']} runs composed:"
    lines += [
        "",
        f"privacy cost of tuning (δ = {tuning['delta']:g}, upper bounds):",
        f"  {'one run:':<25}ε = {epsilon_text(tuning['single_run_epsilon'])}",
        f"  {all_runs:<25}ε = {epsilon_text(tuning['all_runs_epsilon'])}"
        + (f" ({tuning['all_runs_method']})" if tuning.get("all_runs_method") else ""),
    ]
    if "repeat_and_select_epsilon" in tuning:
        lines.append(
            f"  repeat-and-select (Poisson mean {tuning['random_repeats']:g}): ε = "
            f"{epsilon_text(tuning['repeat_and_select_epsilon'])} for the selected model"
        )
    for row_ in tuning["per_target"]:
        text = f"  at target ε {row_['target_epsilon']:g}: {row_['runs']} runs"
        if "all_runs_epsilon" in row_:
            text += f", composed ε = {epsilon_text(row_['all_runs_epsilon'])}"
        if "repeat_and_select_epsilon" in row_:
            text += f", repeat-and-select ε = {epsilon_text(row_['repeat_and_select_epsilon'])}"
        lines.append(text)
    lines.append(f"  validation: {tuning['covers']['validation']}.")
    if "simulation" in tuning.get("covers", {}):
        lines.append(f"  simulation: {tuning['covers']['simulation']}.")
    failures = result.get("failures", [])
    if failures:
        lines += ["", f"failed trials ({len(failures)}):"]
        for failure in failures:
            run = f" (run {failure['run_id']})" if failure.get("run_id") is not None else ""
            lines.append(f"  {failure['key']}{run}:")
            lines += [
                f"    {line}" for line in (failure["error"] or "no error recorded").splitlines()
            ]
    if "repeat_and_select_epsilon" in tuning:
        lines.append(
            "  keep private: the number of runs and trials and the composed ε above "
            "give away how many trials ran, which the repeat-and-select guarantee "
            "needs to stay secret; publish 'dpplan report --sweep ID', which leaves "
            "them out."
        )
    return lines


def _schedule_differences(curves: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Each pair of schedule curves compared at every target ε they share: the difference
    of the final test accuracy means with its 95% Welch t interval over seeds (from each
    point's mean, sample std and seed count)."""
    from dpplan.stats import difference_from_summaries  # scipy: only when a sweep is shown

    lines = []
    for a, b in itertools.combinations(curves, 2):
        others = {point["target_epsilon"]: point for point in curves[b]}
        for point in curves[a]:
            other = others.get(point["target_epsilon"])
            if other is None or not point["seeds"] or not other["seeds"]:
                continue
            summaries = [
                float(p[key])
                for p in (point, other)
                for key in ("test_accuracy_mean", "test_accuracy_std")
            ]
            if not all(math.isfinite(v) for v in summaries):
                continue
            mean_a, std_a, mean_b, std_b = summaries
            difference = difference_from_summaries(
                mean_a, std_a, len(point["seeds"]), mean_b, std_b, len(other["seeds"])
            )
            lines.append(
                f"  target ε {point['target_epsilon']:g}: {a} − {b}: {difference.describe(a, b)}"
            )
    if lines:
        header = (
            "schedules at equal target ε (final test accuracy; 95% Welch t interval over "
            'seeds, "tied" within ±1 point):'
        )
        lines[:0] = ["", header]
    return lines


def _grid_text(spec: dict[str, Any]) -> str:
    """Return a sweep's grid in a few words: ``ε 1,3 × B 256 × E 1 × one_cycle 3 LRs ...``,
    ending with the task it trains (``on MNIST`` or ``on module:function``)."""

    def values(key: str) -> str:
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in spec.get(key, []))

    kinds = " ".join(
        f"{kind} {len(spec.get(f'{kind}_lrs', []))} LRs" for kind in spec.get("schedules", [])
    )
    text = (
        f"ε {values('target_epsilons')} × B {values('batch_sizes')} × E {values('epochs')} "
        f"× {kinds} × {len(spec.get('seeds', []))} seeds"
    )
    if spec.get("random_repeats") is not None:
        text += f" (random, mean {spec['random_repeats']:g})"
    if spec.get("plateau_every") is not None:
        text += f" (plateau evaluated every {spec['plateau_every']} steps)"
    if spec.get("simulate") is not None:
        on = ", public validation data" if spec.get("simulate_data") == "validation" else ""
        text += f" (predicted by simulation at K={spec['simulate']}{on})"
    return f"{text} on {spec.get('task') or 'MNIST'}"


def sweep_summary(record: Any) -> dict[str, Any]:
    from dpplan.sweep import SweepSpec
    from dpplan.sweep.protocol import planned_trials

    try:
        planned: int | None = planned_trials(SweepSpec.from_dict(record.spec), record.draws)
    except (DpplanError, KeyError, TypeError):
        planned = None  # a spec this version cannot read; the rest is still shown
    return {
        "sweep_id": record.id,
        "status": record.status,
        "grid": _grid_text(record.spec),
        "task": record.spec.get("task"),
        "spec": record.spec,
        "trials": {
            "planned": planned,
            "finished": sum(1 for t in record.trials if t.status == "finished"),
            "failed": sum(1 for t in record.trials if t.status == "failed"),
        },
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "error": record.error,
    }


def stop_text(result: Any) -> str:
    """Say what :meth:`~dpplan.store.RunStore.request_stop` did (a ``StopResult``)."""
    from dpplan.store import LEASE_SECONDS, StopOutcome

    run_id = result.run_id
    if result.outcome is StopOutcome.CANCELLED:
        return f"cancelled queued run {run_id}"
    if result.outcome is StopOutcome.ALREADY_ENDED:
        return f"run {run_id} is already {result.status}; nothing to stop"
    if result.outcome is StopOutcome.MARKED_STOPPED:
        return (
            f"marked run {run_id} as stopped (it showed as {result.status}: {result.owner}); "
            f"its records and checkpoint are kept; 'dpplan train --resume {run_id}' continues "
            "it"
            + (
                ". If that process still runs, it stops at its next check"
                if result.forced and result.owner_alive
                else ""
            )
        )
    if result.outcome is StopOutcome.REQUESTED_STALE:
        return (
            f"asked run {run_id} to stop, but it has not sent a heartbeat for more than "
            f"{LEASE_SECONDS:.0f} s ({result.owner}). If its process is gone, mark it stopped "
            f"with 'dpplan runs stop {run_id} --force'"
        )
    return f"asked run {run_id} to stop; it stops within seconds"
