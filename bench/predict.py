"""Calibrate prediction by simulation (issue 22): full runs against simulated runs, same plans.

For every plan of the calibration set (σ solved for a target ε at δ = 1e-5 on full MNIST:
55,000 training examples after the 5,000-example validation split; the 10,000 test images),
this trains, with every seed:

* the **full run** (K = 1): the plan itself, B with σ for its S steps;
* the **simulated runs** (K = 2, 4, 8, 16 by default): :func:`dpplan.simulate.simulated_plan`,
  round(B/K) with σ/K for exactly the same S steps (a step-level PhasedPlan).

Every run goes through the public trainer seam (:class:`dpplan.train.Trainer`, fused engine,
``threads=1``, the same learning-rate schedule for the full and the simulated runs), with its
own fresh sampling and noise entropy; ``seed`` sets the model's initialisation.

Reported per K: the mean and worst absolute error of the predicted test accuracy (the mean
over seeds of the simulated runs) against the full runs' mean; the mean signed error (bias);
whether the simulated runs order the two schedules of each plan as the full runs do (all
pairs, and pairs whose full runs differ by more than 1 point); the fraction of plan pairs
ordered alike (Kendall's concordance over every pair of the calibration configurations); and
the cost ratio: the full runs' CPU seconds over the simulated runs'.

**Cost is CPU time** (``time.process_time`` of the worker around building the trainer and
training, evaluation included), because the machine is shared: wall time depends on other
people's jobs. The trainer computes its ε curves for every run (dpplan's three accountants);
for a simulated plan that is seconds (σ/K is small, ε large). The bench computes each plan's
curves once per worker before timing (a memo of ``dpplan.accounting.compare`` and
``epoch_epsilons`` in the worker process: the same function of the same plan), reports that
accounting CPU in its own column, and times the training alone.

Results go to a JSON-lines file, one line per run, written by the parent process as runs
finish; a rerun skips the runs already there (``--results``), so a crash loses at most the
runs in flight. The summary (table and machine line) is printed and written as JSON beside
it (``--summary``).

Usage:
    python bench/predict.py [--ks 2,4,8,16] [--seeds 3] [--workers 1]
        [--results bench/results/predict_runs.jsonl] [--summary bench/results/predict.json]
        [--data-dir DIR] [--only-summary] [--configs a,b,...]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime
import itertools
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import cpu_model, usable_cores

import dpplan
from dpplan.simulate import simulated_plan

DELTA = 1e-5
TRAIN_SIZE = 55_000
VALIDATION_SIZE = 5_000
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"
RESULTS = ROOT / "bench" / "results" / "predict_runs.jsonl"
SUMMARY = ROOT / "bench" / "results" / "predict.json"
THREADS = 1
#: A simulation "collapses" when its mean test accuracy is this many points below the full
#: runs' (training broke down at the small batch; reported apart from the ordinary error).
COLLAPSE_POINTS = 20.0


@dataclasses.dataclass(frozen=True)
class Config:
    """One calibration configuration: a privacy plan (by target ε), a model, a schedule."""

    name: str
    plan_name: str
    epsilon: float
    batch_size: int
    epochs: int
    model: str  # "seed" or "tempered" (tanh)
    schedule: dict[str, Any]


#: The privacy plans: (name, target ε, B, epochs, model). Each is trained with both schedules.
PLANS = (
    ("p1", 1.0, 512, 2, "seed"),
    ("p2", 4.0, 256, 1, "seed"),
    ("p3", 2.0, 1024, 3, "seed"),
    ("p4", 8.0, 512, 1, "seed"),
    ("p5", 2.0, 512, 2, "tempered"),
    ("p6", 1.0, 1024, 1, "tempered"),
)
#: Schedules per model, fixed (not tuned): the full and the simulated runs use the same one.
#: Seed network: one-cycle peak 2 (selected for one epoch at B = 512 in BENCHMARKS' accuracy
#: section), plateau start 1. Tempered tanh CNN: one-cycle peak 1, plateau start 0.5
#: (notebook 03 selected constant 0.5 to 1 with momentum 0.5).
SCHEDULES = {
    "seed": ({"kind": "one_cycle", "max_lr": 2.0}, {"kind": "plateau", "lr": 1.0}),
    "tempered": ({"kind": "one_cycle", "max_lr": 1.0}, {"kind": "plateau", "lr": 0.5}),
}


def configs() -> list[Config]:
    found = []
    for name, eps, batch, epochs, model in PLANS:
        for schedule in SCHEDULES[model]:
            found.append(
                Config(f"{name}-{schedule['kind']}", name, eps, batch, epochs, model, schedule)
            )
    return found


def solved_plan(config: Config) -> dpplan.TrainingPlan:
    base = dpplan.TrainingPlan(
        dataset_size=TRAIN_SIZE,
        batch_size=config.batch_size,
        noise_multiplier=1.0,
        epochs=config.epochs,
        delta=DELTA,
    )
    return dpplan.solve_noise_multiplier(base, target_epsilon=config.epsilon)


def run_key(config: str, k: int, seed: int) -> str:
    return f"{config}|K={k}|seed={seed}"


# ---- worker side (imports torch) -------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _memo(function):
    cache: dict[Any, Any] = {}

    def wrapper(plan, *args, **kwargs):
        key = (plan, args, tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = function(plan, *args, **kwargs)
        return cache[key]

    return wrapper


def _init_worker(data_dir: str | None) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    import torch

    from dpplan import accounting
    from dpplan.train import RunOptions
    from dpplan.train.core import load_split

    torch.set_num_threads(THREADS)
    accounting.compare = _memo(accounting.compare)
    accounting.epoch_epsilons = _memo(accounting.epoch_epsilons)
    options = RunOptions(
        device="cpu", data_dir=data_dir, validation_size=VALIDATION_SIZE, threads=THREADS
    )
    _WORKER["data"] = load_split(options, torch.device("cpu"))
    _WORKER["data_dir"] = data_dir


def _train_one(task: dict[str, Any]) -> dict[str, Any]:
    from dpplan import accounting
    from dpplan.phased import PhasedPlan
    from dpplan.train import RunOptions, Trainer
    from dpplan.train.core import quiet_libraries
    from dpplan.train.specs import schedule_from_dict

    plan_dict = task["trained_plan"]
    plan = (
        dpplan.TrainingPlan.from_dict(plan_dict)
        if "phases" not in plan_dict
        else PhasedPlan.from_dict(plan_dict)
    )
    options = RunOptions(
        device="cpu",
        data_dir=_WORKER["data_dir"],
        validation_size=VALIDATION_SIZE,
        threads=THREADS,
        seed=task["seed"],
        method="rdp",  # the one method that answers for every simulated plan (PRV's grid
        # cannot hold σ/16 for hundreds of steps); the headline (min over methods) is kept too
        model=task["model"],
        activation="tanh" if task["model"] == "tempered" else "relu",
        engine="fused",
    )
    started = time.process_time()
    with quiet_libraries():
        if isinstance(plan, PhasedPlan):
            comparison = accounting.compare(plan)
            headline = comparison.headline_epsilon
        else:
            curves = accounting.epoch_epsilons(plan)
            headline = min(curves[-1].values())
    accounting_cpu = time.process_time() - started
    wall = time.perf_counter()
    started = time.process_time()
    trainer = Trainer(plan, schedule_from_dict(task["schedule"]), options, data=_WORKER["data"])
    records = []
    status, reason = trainer.run(on_epoch=records.append)
    train_cpu = time.process_time() - started
    wall = time.perf_counter() - wall
    last = records[-1] if records else None
    return {
        **{k: task[k] for k in ("key", "config", "plan_name", "k", "seed", "model", "schedule")},
        "trained_plan": plan_dict,
        "status": status,
        "stop_reason": reason,
        "steps": trainer.steps,
        "epochs_recorded": len(records),
        "test_accuracy": None if last is None else last.test_accuracy,
        "validation_accuracy": None if last is None else last.validation_accuracy,
        "epsilon_headline": headline,
        "epsilon_rdp": None if last is None else last.epsilon_rdp,
        "train_cpu_s": train_cpu,
        "accounting_cpu_s": accounting_cpu,
        "wall_s": wall,
        "finished_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


# ---- parent side (torch-free) ----------------------------------------------------------------


def read_results(path: Path) -> dict[str, dict[str, Any]]:
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a crash: rerun it
                    continue
                done[row["key"]] = row
    return done


def tasks_for(chosen: list[Config], ks: list[int], seeds: int) -> list[dict[str, Any]]:
    solved = {}
    tasks = []
    # seed-major, so that a partial run already holds every (config, K) for the first seeds
    for seed, config, k in itertools.product(range(seeds), chosen, [1, *ks]):
        if config.plan_name not in solved:
            solved[config.plan_name] = solved_plan(config)
        plan = solved[config.plan_name]
        trained = plan if k == 1 else simulated_plan(plan, k)
        tasks.append(
            {
                "key": run_key(config.name, k, seed),
                "config": config.name,
                "plan_name": config.plan_name,
                "k": k,
                "seed": seed,
                "model": config.model,
                "schedule": config.schedule,
                "trained_plan": trained.to_dict(),
                "plan": plan.to_dict(),
            }
        )
    return tasks


def _concordance(full: list[float], predicted: list[float]) -> tuple[int, int]:
    """(pairs ordered alike, pairs compared), ties in the full runs skipped."""
    alike = total = 0
    for i, j in itertools.combinations(range(len(full)), 2):
        if full[i] == full[j]:
            continue
        total += 1
        alike += (full[i] - full[j]) * (predicted[i] - predicted[j]) > 0
    return alike, total


def summarise(rows: dict[str, dict[str, Any]], ks: list[int]) -> dict[str, Any]:
    by: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows.values():
        by.setdefault((row["config"], row["k"]), []).append(row)
    names = sorted({c for c, _ in by})

    def mean_acc(config: str, k: int) -> float | None:
        values = [r["test_accuracy"] for r in by.get((config, k), []) if r["status"] == "finished"]
        return statistics.fmean(values) if values else None

    def cpu(config: str, k: int) -> list[float]:
        return [r["train_cpu_s"] for r in by.get((config, k), [])]

    full = {c: mean_acc(c, 1) for c in names}
    per_k = []
    for k in ks:
        pairs = [(c, full[c], mean_acc(c, k)) for c in names]
        pairs = [(c, f, p) for c, f, p in pairs if f is not None and p is not None]
        if not pairs:
            continue
        errors = [abs(p - f) * 100 for _, f, p in pairs]
        collapsed = [c for c, f, p in pairs if (f - p) * 100 > COLLAPSE_POINTS]
        kept = [abs(p - f) * 100 for c, f, p in pairs if c not in collapsed]
        signed = [(p - f) * 100 for _, f, p in pairs]
        worst = max(pairs, key=lambda x: abs(x[2] - x[1]))
        schedule_pairs = []
        for plan_name in sorted({c.split("-")[0] for c, _, _ in pairs}):
            one = [x for x in pairs if x[0] == f"{plan_name}-one_cycle"]
            plateau = [x for x in pairs if x[0] == f"{plan_name}-plateau"]
            if one and plateau:
                full_diff = (one[0][1] - plateau[0][1]) * 100
                sim_diff = (one[0][2] - plateau[0][2]) * 100
                schedule_pairs.append(
                    {
                        "plan": plan_name,
                        "full_one_cycle_minus_plateau": full_diff,
                        "predicted_one_cycle_minus_plateau": sim_diff,
                        "alike": full_diff * sim_diff > 0,
                    }
                )
        alike, compared = _concordance([f for _, f, _ in pairs], [p for _, _, p in pairs])
        full_cpu = sum(sum(cpu(c, 1)) for c, _, _ in pairs)
        sim_cpu = sum(sum(cpu(c, k)) for c, _, _ in pairs)
        full_n = sum(len(cpu(c, 1)) for c, _, _ in pairs)
        sim_n = sum(len(cpu(c, k)) for c, _, _ in pairs)
        sim_accounting = [r["accounting_cpu_s"] for c, _, _ in pairs for r in by[(c, k)]]
        big = [s for s in schedule_pairs if abs(s["full_one_cycle_minus_plateau"]) > 1]
        per_k.append(
            {
                "k": k,
                "configs": len(pairs),
                "runs_full": full_n,
                "runs_simulated": sim_n,
                "mean_abs_error_points": statistics.fmean(errors),
                "worst_abs_error_points": max(errors),
                "worst_config": worst[0],
                "collapsed": collapsed,
                "mean_abs_error_points_without_collapsed": statistics.fmean(kept) if kept else None,
                "worst_abs_error_points_without_collapsed": max(kept) if kept else None,
                "mean_signed_error_points": statistics.fmean(signed),
                "schedule_order_alike": sum(s["alike"] for s in schedule_pairs),
                "schedule_pairs": len(schedule_pairs),
                "schedule_order_alike_over_1_point": sum(s["alike"] for s in big),
                "schedule_pairs_over_1_point": len(big),
                "schedule_detail": schedule_pairs,
                "plan_pairs_alike": alike,
                "plan_pairs": compared,
                "full_cpu_s_per_run": full_cpu / full_n if full_n else None,
                "simulated_cpu_s_per_run": sim_cpu / sim_n if sim_n else None,
                "cost_ratio": (full_cpu / full_n) / (sim_cpu / sim_n) if sim_cpu else None,
                "simulated_accounting_cpu_s_max": max(sim_accounting, default=None),
                "trial_epsilon_headline": {
                    c: by[(c, k)][0]["epsilon_headline"] for c, _, _ in pairs
                },
            }
        )
    detail = []
    for c in names:
        item = {"config": c}
        for k in [1, *ks]:
            runs = by.get((c, k), [])
            values = [r["test_accuracy"] for r in runs if r["status"] == "finished"]
            item[f"K={k}"] = {
                "mean": statistics.fmean(values) if values else None,
                "values": values,
                "failed": [r["status"] for r in runs if r["status"] != "finished"],
                "cpu_s": [round(r["train_cpu_s"], 2) for r in runs],
                "epsilon_headline": runs[0]["epsilon_headline"] if runs else None,
            }
        detail.append(item)
    return {"per_k": per_k, "configs": detail}


#: The MNIST frontier grid of issue 11 (BENCHMARKS.md, bench/sweep.py --frontier): tanh
#: tempered CNN, 5 targets x 3 B x 3 E x (3 one-cycle + 3 plateau LRs + 2 x 2 seed repeats).
FRONTIER_GRID = {
    "model": "tempered",
    "targets": 5,
    "batch_sizes": (512, 1024, 2048),
    "epochs": (10, 20, 40),
    "trials_per_plan": 3 + 3 + 2 * 2,
}


def _run_shape(row: dict[str, Any]) -> tuple[int, int, int]:
    """(steps, simulated batch size, epochs evaluated) of a stored run."""
    plan = row["trained_plan"]
    if "phases" in plan:
        (phase,) = plan["phases"]
        batch, steps = phase["batch_size"], phase.get("steps")
        per_epoch = -(-plan["dataset_size"] // batch)
        steps = steps if steps is not None else per_epoch * phase["epochs"]
    else:
        batch = plan["batch_size"]
        per_epoch = -(-plan["dataset_size"] // batch)
        steps = per_epoch * plan["epochs"]
    return steps, batch, -(-steps // per_epoch)


def cost_model(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Least-squares fit, per model, of a run's CPU seconds: a·steps + b·steps·B + c·epochs
    evaluated (B the batch size trained, full or simulated), from every run of the bench."""
    import numpy as np

    fits = {}
    for model in sorted({r["model"] for r in rows.values()}):
        mine = [r for r in rows.values() if r["model"] == model]
        if len(mine) < 4:
            continue
        shapes = [_run_shape(r) for r in mine]
        x = np.array([[s, s * b, e] for s, b, e in shapes], dtype=float)
        y = np.array([r["train_cpu_s"] for r in mine])
        coef, *_ = np.linalg.lstsq(x, y, rcond=None)
        predicted = x @ coef
        fits[model] = {
            "per_step_s": float(coef[0]),
            "per_step_example_s": float(coef[1]),
            "per_epoch_evaluated_s": float(coef[2]),
            "runs": len(mine),
            "median_relative_error": float(np.median(np.abs(predicted - y) / y)),
        }
    return fits


def frontier_estimate(fits: dict[str, dict[str, float]], ks: list[int]) -> list[dict[str, Any]]:
    """CPU hours of the frontier grid (:data:`FRONTIER_GRID`) trained in full and simulated
    at each K, from the cost model (an extrapolation: the bench's runs are 1-3 epochs)."""
    fit = fits.get(FRONTIER_GRID["model"])
    if fit is None:
        return []
    rows = []
    for k in [1, *ks]:
        seconds = 0.0
        for batch in FRONTIER_GRID["batch_sizes"]:
            for epochs in FRONTIER_GRID["epochs"]:
                per_epoch = -(-TRAIN_SIZE // batch)
                steps = per_epoch * epochs
                trained = round(batch / k)
                evaluated = -(-steps // -(-TRAIN_SIZE // trained))
                seconds += (
                    fit["per_step_s"] * steps
                    + fit["per_step_example_s"] * steps * trained
                    + fit["per_epoch_evaluated_s"] * evaluated
                )
        trials = FRONTIER_GRID["targets"] * FRONTIER_GRID["trials_per_plan"]
        total = seconds * trials
        rows.append(
            {
                "k": k,
                "trials": trials * len(FRONTIER_GRID["batch_sizes"]) * len(FRONTIER_GRID["epochs"]),
                "cpu_hours": total / 3600,
                "hours_on_2_cores": total / 3600 / 2,
            }
        )
    return rows


def machine_line() -> str:
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    load = os.getloadavg()
    return (
        f"machine: {platform.platform()}; CPU {cpu_model()}; {os.cpu_count()} cores "
        f"({usable_cores()} usable, shared); torch threads {THREADS}; commit {commit}; "
        f"load average {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}"
    )


def table(summary: dict[str, Any]) -> str:
    lines = [
        (
            "| K | configs (runs: full / sim) | mean abs error (points) | worst abs error | "
            "collapsed (> 20 points below) | mean / worst abs error without them | "
            "bias (sim − full) | schedule order alike (pairs > 1 pt) | plan pairs alike | "
            "CPU s/run full → sim | cost ratio | trial ε (headline), range |"
        ),
        "|---:|---|---:|---|---|---|---:|---|---|---|---:|---|",
    ]
    for row in summary["per_k"]:
        eps = list(row["trial_epsilon_headline"].values())
        lines.append(
            f"| {row['k']} | {row['configs']} ({row['runs_full']} / {row['runs_simulated']}) | "
            f"{row['mean_abs_error_points']:.2f} | {row['worst_abs_error_points']:.2f} "
            f"({row['worst_config']}) | {', '.join(row['collapsed']) or 'none'} | "
            + (
                f"{row['mean_abs_error_points_without_collapsed']:.2f} / "
                f"{row['worst_abs_error_points_without_collapsed']:.2f}"
                if row["mean_abs_error_points_without_collapsed"] is not None
                else "–"
            )
            + f" | {row['mean_signed_error_points']:+.2f} | "
            f"{row['schedule_order_alike']}/{row['schedule_pairs']} "
            f"({row['schedule_order_alike_over_1_point']}/{row['schedule_pairs_over_1_point']}) | "
            f"{row['plan_pairs_alike']}/{row['plan_pairs']} | "
            f"{row['full_cpu_s_per_run']:.1f} → {row['simulated_cpu_s_per_run']:.1f} | "
            f"{row['cost_ratio']:.1f}× | {min(eps):.3g} – {max(eps):.3g} |"
        )
    lines += [
        "",
        "| config | σ, B, epochs (full) | full K=1 mean test acc | "
        + " | ".join(f"K={row['k']}" for row in summary["per_k"])
        + " |",
        "|---|---|---:|" + "---:|" * len(summary["per_k"]),
    ]
    for item in summary["configs"]:
        full = item["K=1"]
        cells = []
        for row in summary["per_k"]:
            entry = item.get(f"K={row['k']}", {})
            cells.append("" if entry.get("mean") is None else f"{entry['mean']:.2%}")
        plan = item.get("plan", "")
        lines.append(
            f"| {item['config']} | {plan} | "
            + ("" if full["mean"] is None else f"{full['mean']:.2%} ({len(full['values'])})")
            + " | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", default="2,4,8,16")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--summary", default=str(SUMMARY))
    default_data = os.environ.get("DPPLAN_TEST_MNIST") or (
        str(SHARED_MNIST) if SHARED_MNIST.exists() else None
    )
    parser.add_argument("--data-dir", default=default_data)
    parser.add_argument("--configs", default=None, help="comma-separated config names")
    parser.add_argument("--only-summary", action="store_true", help="summarise, train nothing")
    parser.add_argument(
        "--write-calibration",
        default=None,
        metavar="FILE",
        help="also write the per-K errors predictions carry (dpplan/simulate_calibration.json)",
    )
    args = parser.parse_args()
    ks = [int(k) for k in args.ks.split(",")]
    chosen = configs()
    if args.configs:
        wanted = set(args.configs.split(","))
        chosen = [c for c in chosen if c.name in wanted]
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    done = read_results(results)
    tasks = tasks_for(chosen, ks, args.seeds)
    plans = {t["config"]: t["plan"] for t in tasks}
    todo = [t for t in tasks if t["key"] not in done]
    print(machine_line(), file=sys.stderr, flush=True)
    print(
        f"{len(tasks)} runs, {len(tasks) - len(todo)} already in {results}, "
        f"{len(todo)} to train with {args.workers} worker(s)",
        file=sys.stderr,
        flush=True,
    )
    started = time.time()
    if todo and not args.only_summary:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=args.workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(args.data_dir,),
        ) as pool:
            futures = {pool.submit(_train_one, task): task for task in todo}
            for future in concurrent.futures.as_completed(futures):
                task = futures[future]
                try:
                    row = future.result()
                except Exception as exc:  # noqa: BLE001 - record and go on; rerun retries it
                    print(f"FAILED {task['key']}: {exc!r}", file=sys.stderr, flush=True)
                    continue
                with results.open("a") as handle:
                    handle.write(json.dumps(row) + "\n")
                done[row["key"]] = row
                print(
                    f"{row['key']}: {row['status']} test {row['test_accuracy']} "
                    f"cpu {row['train_cpu_s']:.1f}s (+acct {row['accounting_cpu_s']:.1f}s) "
                    f"wall {row['wall_s']:.1f}s [{len(done)}/{len(tasks)}, "
                    f"{(time.time() - started) / 60:.1f} min]",
                    file=sys.stderr,
                    flush=True,
                )
    rows = {key: row for key, row in done.items() if row["config"] in plans}
    summary = summarise(rows, ks)
    for item in summary["configs"]:
        plan = plans.get(item["config"])
        if plan:
            item["plan"] = (
                f"σ={plan['noise_multiplier']:.3g}, B={plan['batch_size']}, {plan['epochs']} ep"
            )
    summary["machine"] = machine_line()
    summary["cost_model"] = cost_model(rows)
    summary["frontier_estimate"] = frontier_estimate(summary["cost_model"], ks)
    summary["cost_measure"] = (
        "time.process_time of the worker around building the trainer and training "
        "(evaluation included, ε accounting excluded: computed before timing, column "
        "accounting_cpu_s of the runs file)"
    )
    summary["date"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    summary["ks"] = ks
    summary["seeds"] = args.seeds
    text = summary["machine"] + "\n\n" + table(summary)
    for model, fit in summary["cost_model"].items():
        text += (
            f"\n\ncost model, {model}: CPU s ≈ {fit['per_step_s']:.3g}·steps + "
            f"{fit['per_step_example_s']:.3g}·steps·B + "
            f"{fit['per_epoch_evaluated_s']:.3g}·epochs evaluated ({fit['runs']} runs, "
            "median relative error "
            f"{fit['median_relative_error']:.0%})"
        )
    for row in summary["frontier_estimate"]:
        text += (
            f"\nfrontier grid ({row['trials']} trials) at K={row['k']}: "
            f"{row['cpu_hours']:.1f} CPU hours, {row['hours_on_2_cores']:.1f} h on 2 cores"
        )
    print(text)
    Path(args.summary).write_text(json.dumps(summary, indent=1, default=str) + "\n")
    if args.write_calibration:
        calibration = {
            "source": "bench/predict.py",
            "machine": summary["machine"],
            "date": summary["date"],
            "seeds": args.seeds,
            "cost_measure": summary["cost_measure"],
            "per_k": [
                {
                    key: row[key]
                    for key in (
                        "k",
                        "configs",
                        "runs_full",
                        "runs_simulated",
                        "mean_abs_error_points",
                        "worst_abs_error_points",
                        "worst_config",
                        "collapsed",
                        "mean_abs_error_points_without_collapsed",
                        "worst_abs_error_points_without_collapsed",
                        "mean_signed_error_points",
                        "schedule_order_alike",
                        "schedule_pairs",
                        "plan_pairs_alike",
                        "plan_pairs",
                        "cost_ratio",
                    )
                }
                for row in summary["per_k"]
            ],
        }
        Path(args.write_calibration).write_text(json.dumps(calibration, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
