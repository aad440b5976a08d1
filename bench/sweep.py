"""Sweep benchmarks: Ray's overhead (CPU), fractional-GPU throughput and the MNIST frontier.

    python bench/sweep.py [--trials 4] [--subset 20000] [--batch-size 256]    # Ray overhead
    python bench/sweep.py --throughput [--trials 16]                           # GPU owed
    python bench/sweep.py --frontier                                           # GPU owed

* overhead (default): the same trials (seed network, one epoch each, fused engine, CPU) run
  sequentially in this process (``LocalExecutor``) and through an embedded Ray with one CPU
  (``RayExecutor``, one trial at a time), in the same run, alternating, so the ratio measures
  what Ray adds per trial (task dispatch, object-store data, result transfer, worker start).
  Ray's own start (``ray.init``) is shown apart. Goal: ≤ 5 % for trials of ≥ 10 s.
* ``--throughput`` (needs a GPU): trials per hour with ``--gpus-per-trial 0.25`` against one
  trial at a time (``1.0``), 4-epoch seed-network trials at B = 512. Goal: ≥ 3x.
* ``--frontier`` (needs a GPU): the MNIST frontier with the fused engine; prints and runs the
  ``dpplan sweep`` command it stands for. Goal: ≥ 97 % at ε ≤ 1, ≥ 98.5 % at ε ≤ 3.

Stores go to a temporary folder. Every timing is wall-clock on this machine, printed as a
Markdown table with the machine's description.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import cpu_model, usable_cores

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"

#: The frontier command (issue 11): ε targets at δ = 1e-5, the tanh tempered CNN.
FRONTIER_ARGS = [
    "--epsilons",
    "0.5,1,2,3,8",
    "--batch-sizes",
    "512,1024,2048",
    "--epochs",
    "10,20,40",
    "--schedules",
    "one_cycle,plateau",
    "--one-cycle-lrs",
    "1,2,4",
    "--plateau-lrs",
    "0.5,1,2",
    "--seeds",
    "0,1,2",
    "--delta",
    "1e-5",
    "--model",
    "tempered",
    "--activation",
    "tanh",
    "--engine",
    "fused",
    "--device",
    "cuda",
    "--gpus-per-trial",
    "0.25",
]


def _spec(args, *, seeds, lrs, epochs=1, batch_size=None, device="cpu"):
    from dpplan.sweep import SweepSpec
    from dpplan.train import RunOptions

    options = RunOptions(
        subset=args.subset,
        validation_size=5000,
        test_subset=2000,
        device=device,
        data_dir=str(args.data_dir),
        download=False,
    )
    return SweepSpec(
        target_epsilons=(2.0,),
        delta=1e-5,
        batch_sizes=(batch_size or args.batch_size,),
        epochs=(epochs,),
        schedules=("one_cycle",),
        one_cycle_lrs=lrs,
        seeds=seeds,
        options=options,
    )


def _timed_sweep(spec, executor) -> tuple[float, int]:
    from dpplan.store import RunStore
    from dpplan.sweep import create_sweep, run_sweep

    store = RunStore(tempfile.mkdtemp(prefix="dpplan-bench-sweep-"))
    sweep_id = create_sweep(spec, store=store)
    started = time.perf_counter()
    result = run_sweep(sweep_id, store=store, executor=executor, close=False)
    return time.perf_counter() - started, result.trials.finished


def overhead(args) -> list[str]:
    import ray
    import torch

    from dpplan.sweep import LocalExecutor, RayExecutor

    torch.set_num_threads(1)  # as each Ray worker with one CPU
    lrs = tuple(0.5 + 0.25 * i for i in range(args.trials))
    spec = _spec(args, seeds=(0,), lrs=lrs)
    started = time.perf_counter()
    ray.init(num_cpus=1, num_gpus=0, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - started
    rows = []
    try:
        for round_ in range(args.rounds):
            for name, make in (
                ("in process", lambda: LocalExecutor()),
                ("Ray (1 CPU)", lambda: RayExecutor()),
            ):
                seconds, done = _timed_sweep(spec, make())
                rows.append((round_ + 1, name, seconds, done))
                print(
                    f"round {round_ + 1} {name}: {seconds:.1f} s for {done} trials",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        ray.shutdown()
    lines = [
        (
            f"Ray overhead: {args.trials} trials of one epoch (seed network, subset "
            f"{args.subset}, B = {args.batch_size}, fused engine, CPU, one torch thread); "
            f"ray.init {ray_start:.1f} s (not included)"
        ),
        "",
        "| round | executor | wall s | trials | s per trial | Ray / in process |",
        "|---|---|---|---|---|---|",
    ]
    for index, (round_, name, seconds, done) in enumerate(rows):
        ratio = f"{seconds / rows[index - 1][2]:.3f}" if name.startswith("Ray") else ""
        lines.append(
            f"| {round_} | {name} | {seconds:.1f} | {done} | {seconds / done:.2f} | {ratio} |"
        )
    local = sum(s for _, n, s, _ in rows if n == "in process")
    remote = sum(s for _, n, s, _ in rows if n.startswith("Ray"))
    lines += [
        "",
        f"All rounds: Ray / in process = {remote / local:.3f} ({(remote / local - 1):+.1%})",
    ]
    return lines


def throughput(args) -> list[str]:
    import ray
    import torch

    from dpplan.sweep import RayExecutor

    if not torch.cuda.is_available():
        raise SystemExit("--throughput needs a CUDA GPU (torch.cuda.is_available() is False)")
    lrs = tuple(1.0 + 0.25 * i for i in range(args.trials))
    spec = _spec(args, seeds=(0,), lrs=lrs, epochs=4, batch_size=512, device="cuda")
    lines = ["| GPU per trial | trials | wall s | trials per hour |", "|---|---|---|---|"]
    rates = {}
    for fraction in (1.0, 0.25):
        ray.init(include_dashboard=False, log_to_driver=False)
        try:
            seconds, done = _timed_sweep(spec, RayExecutor(gpus_per_trial=fraction))
        finally:
            ray.shutdown()
        rates[fraction] = done / seconds * 3600
        lines.append(f"| {fraction:g} | {done} | {seconds:.1f} | {rates[fraction]:.0f} |")
    lines += ["", f"Fractional GPUs: {rates[0.25] / rates[1.0]:.2f}x the trials per hour"]
    return lines


def frontier(args) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "dpplan.cli",
        "sweep",
        *FRONTIER_ARGS,
        "--data-dir",
        str(args.data_dir),
        "--json",
    ]
    print("running: dpplan sweep " + shlex.join(command[4:]), file=sys.stderr, flush=True)
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(completed.stderr[-4000:] or completed.stdout[-4000:])
    import json

    result = json.loads(completed.stdout)
    lines = [
        f"command: `dpplan sweep {shlex.join(command[4:-1])}`",
        f"wall time {time.perf_counter() - started:.0f} s, {result['runs_tried']} runs",
        "",
        "| target ε | ε | B | E | σ | schedule | lr | test accuracy (mean ± std) | seeds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for point in result["points"]:
        plan, schedule = point["plan"], point["schedule"]
        lines.append(
            f"| {point['target_epsilon']:g} | {point['epsilon']:.3f} | {plan['batch_size']} | "
            f"{plan['epochs']} | {plan['noise_multiplier']:.3f} | {schedule['kind']} | "
            f"{schedule.get('max_lr', schedule.get('lr')):g} | "
            f"{point['test_accuracy_mean']:.2%} ± {point['test_accuracy_std']:.2%} | "
            f"{len(point['seeds'])} |"
        )
    tuning = result["tuning"]
    lines += [
        "",
        (
            f"tuning: one run ε = {tuning['single_run_epsilon']:.3f}, all "
            f"{tuning['runs']} runs composed ε = {tuning['all_runs_epsilon']:.3f}"
        ),
    ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--throughput", action="store_true")
    parser.add_argument("--frontier", action="store_true")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--subset", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("DPPLAN_DATA_DIR", DEFAULT_DATA))
    )
    args = parser.parse_args()
    if args.frontier:
        lines = frontier(args)
    elif args.throughput:
        lines = throughput(args)
    else:
        lines = overhead(args)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"Machine: {cpu_model()}, {usable_cores()} usable cores, load {load:.1f}; "
        f"{time.strftime('%Y-%m-%d')}\n"
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
