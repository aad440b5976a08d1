"""Benchmark dpplan's DP-SGD trainer against plain non-private PyTorch on the same model.

For every batch size B the same run times, one after the other:

(a) **dpplan DP-SGD**: the real :meth:`dpplan.train.loop._Run.train_epoch`, built from a
    :class:`~dpplan.TrainingPlan` with ``noise_multiplier=1.0`` and ``max_grad_norm=1.0``
    and the default :class:`~dpplan.train.loop.RunOptions` (MNIST on the device, 5,000
    examples held out for validation, so batches are Poisson-sampled from 55,000). Each
    step is exactly what users run: a Bernoulli mask on the device, Opacus
    ``GradSampleModule`` forward/backward, ``DPOptimizer`` (per-sample clipping, Gaussian
    noise with ``expected_batch_size=B``, the Opacus RDP accountant's step hook), the
    one-cycle learning-rate step, and the per-step loss read-back. To time ``--steps``
    steps instead of a whole epoch, the run's plan is swapped for a view whose
    ``steps_per_epoch`` is the number of steps wanted (the sample rate is unchanged).
(b) **non-private PyTorch**: the same network (fresh, same seed), same optimizer (SGD
    with the same learning rate and momentum), fixed-size batches of B drawn with
    ``torch.randint`` from the same on-device tensors; zero_grad, forward, cross-entropy,
    backward, step. No hooks, no clipping, no noise, no per-step host synchronisation.

Both paths take 3 warm-up steps, then ``--steps`` timed steps each (default: a full epoch
on CUDA, 30 steps, at most one epoch, on the CPU), run in ``--rounds`` alternating chunks
so that a change in machine load hits both paths alike. CUDA is synchronised before every
timer read. Seconds per epoch are the mean seconds per step times ``ceil(60000 / B)``, the step
count of one 60,000-example MNIST epoch; rows timing fewer steps than that are
extrapolated and the table says so. ``torch``'s thread count is left at its default.

Usage:
    python bench/trainer.py [--device auto|cpu|cuda] [--batch-sizes 256,1024,4096]
        [--steps N] [--rounds R] [--model seed|tempered] [--data-dir DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import json
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _machine import cpu_model, usable_cores

from dpplan.plan import TrainingPlan
from dpplan.train.data import DATA_DIR_ENV
from dpplan.train.loop import RunOptions, _Run, training_set_size
from dpplan.train.models import MODELS, make_model
from dpplan.train.schedules import OneCycle, make_optimizer

EPOCH_EXAMPLES = 60_000
"""Examples in one MNIST training epoch; an epoch is ``ceil(EPOCH_EXAMPLES / B)`` steps."""
WARMUP_STEPS = 3
CPU_DEFAULT_STEPS = 30
NOISE_MULTIPLIER = 1.0
MAX_GRAD_NORM = 1.0
DELTA = 1e-5
SEED = 0
SCHEDULE = OneCycle(max_lr=0.5)
"""The learning-rate schedule of the DP-SGD run; the baseline's SGD gets the same start
learning rate and momentum. Neither changes the time per step."""
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"

REFERENCE_H100 = (
    # (model, B, Opacus hooks s/epoch, non-private eager s/epoch), as reported in issue #4.
    ("seed", 256, 1.53, 0.84),
    ("seed", 1024, 0.47, 0.39),
)


@dataclasses.dataclass(frozen=True)
class _StepWindow:
    """A view of a plan that runs ``steps_per_epoch`` steps at the plan's sample rate.

    :meth:`_Run.train_epoch` reads ``plan.sample_rate`` and ``plan.steps_per_epoch``;
    every other attribute is forwarded to the real plan.
    """

    plan: TrainingPlan
    steps_per_epoch: int

    def __getattr__(self, name: str) -> Any:
        return getattr(self.plan, name)


def machine_info(device: torch.device) -> dict[str, Any]:
    """Return CPU model, core counts, library versions and the CUDA device, if any.

    Args:
        device: the device the benchmark runs on.

    Returns:
        A JSON-ready dict.
    """
    cpu = cpu_model()
    usable = usable_cores()
    versions = {}
    for name in ("dpplan", "torch", "opacus"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "versions": versions,
        "device": str(device),
        "cuda_device": None,
        "cuda_version": torch.version.cuda,
    }
    if device.type == "cuda":
        info["cuda_device"] = torch.cuda.get_device_name(device)
    return info


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def resolve_data_dir(data_dir: str | None) -> str | None:
    """Return the MNIST folder to pass to dpplan.

    ``--data-dir`` when given; else ``None`` when ``$DPPLAN_DATA_DIR`` is set (dpplan reads
    it); else the shared folder next to the checkout if it exists; else ``None`` (dpplan's
    per-user cache folder).
    """
    if data_dir:
        return data_dir
    if os.environ.get(DATA_DIR_ENV):
        return None
    return str(SHARED_MNIST) if SHARED_MNIST.is_dir() else None


class DpplanPath:
    """dpplan's DP-SGD trainer (:class:`_Run`), run a given number of steps at a time.

    Args:
        options: run options (model, device, data folder); validation_size and the rest at
            their defaults, as users run them.
        batch_size: expected Poisson batch size B.
        total_steps: warm-up plus timed steps; the plan covers at least this many.
        device: the resolved torch device.
    """

    def __init__(self, options: RunOptions, batch_size: int, total_steps: int,
                 device: torch.device) -> None:
        dataset_size = training_set_size(options)
        epochs = math.ceil(total_steps / math.ceil(dataset_size / batch_size))
        self.plan = TrainingPlan(dataset_size=dataset_size, batch_size=batch_size,
                                 noise_multiplier=NOISE_MULTIPLIER, epochs=epochs, delta=DELTA,
                                 max_grad_norm=MAX_GRAD_NORM)
        self.run = _Run(self.plan, SCHEDULE, options, device)

    def steps(self, count: int) -> tuple[float, float]:
        """Run ``count`` steps of the real ``train_epoch``; return (wall s, process CPU s).

        The wall time is ``train_epoch``'s own, read after it synchronises CUDA.
        """
        self.run.plan = _StepWindow(self.plan, count)
        cpu_started = time.process_time()
        try:
            _, seconds = self.run.train_epoch()
        finally:
            self.run.plan = self.plan
        return seconds, time.process_time() - cpu_started

    def check(self, expected: int) -> None:
        """Check that Opacus' accountant hook counted ``expected`` noisy steps.

        Raises:
            RuntimeError: if it counted a different number.
        """
        if self.run.hook_steps != expected:
            raise RuntimeError(f"Opacus counted {self.run.hook_steps} noisy steps, expected "
                               f"{expected}: the DP-SGD path did not run as timed")


class PlainPath:
    """Non-private PyTorch: fixed-size batches of B from on-device tensors, SGD step.

    Args:
        model_name: the network, one of :data:`dpplan.train.models.MODELS`.
        images: training images on ``device``.
        labels: training labels on ``device``.
        batch_size: examples per batch, drawn with replacement by ``torch.randint``.
        device: the torch device.
    """

    def __init__(self, model_name: str, images: torch.Tensor, labels: torch.Tensor,
                 batch_size: int, device: torch.device) -> None:
        torch.manual_seed(SEED)
        self.model = make_model(model_name).to(device)
        self.optimizer = make_optimizer(SCHEDULE, self.model.parameters())
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(SEED + 1)
        self.images, self.labels = images, labels
        self.batch_size, self.device = batch_size, device

    def steps(self, count: int) -> tuple[float, float]:
        """Run ``count`` steps; return (wall s, process CPU s), CUDA synchronised first."""
        self.model.train()
        size = len(self.images)
        _sync(self.device)
        cpu_started = time.process_time()
        started = time.perf_counter()
        for _ in range(count):
            index = torch.randint(size, (self.batch_size,), generator=self.generator,
                                  device=self.device)
            self.optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(self.model(self.images[index]), self.labels[index])
            loss.backward()
            self.optimizer.step()
        _sync(self.device)
        return time.perf_counter() - started, time.process_time() - cpu_started


def measure(options: RunOptions, batch_size: int, steps: int, rounds: int,
            device: torch.device) -> dict[str, float]:
    """Time both paths at one batch size, interleaved so that load changes hit both alike.

    Each path takes :data:`WARMUP_STEPS` warm-up steps; then the ``steps`` timed steps of
    each are split into ``rounds`` chunks, run alternately (DP-SGD chunk, non-private
    chunk, ...).

    Args:
        options: dpplan run options.
        batch_size: the batch size B.
        steps: timed steps per path.
        rounds: number of interleaved chunks, at most ``steps``.
        device: the resolved torch device.

    Returns:
        Wall and process-CPU seconds of the timed steps of each path.
    """
    dpplan_path = DpplanPath(options, batch_size, WARMUP_STEPS + steps, device)
    plain_path = PlainPath(options.model, dpplan_path.run.train_x, dpplan_path.run.train_y,
                           batch_size, device)
    dpplan_path.steps(WARMUP_STEPS)
    plain_path.steps(WARMUP_STEPS)
    totals = {"dp_wall": 0.0, "dp_cpu": 0.0, "plain_wall": 0.0, "plain_cpu": 0.0}
    rounds = min(rounds, steps)
    for chunk in (steps // rounds + (index < steps % rounds) for index in range(rounds)):
        wall, cpu = dpplan_path.steps(chunk)
        totals["dp_wall"] += wall
        totals["dp_cpu"] += cpu
        wall, cpu = plain_path.steps(chunk)
        totals["plain_wall"] += wall
        totals["plain_cpu"] += cpu
    dpplan_path.check(WARMUP_STEPS + steps)
    return totals


def fmt_s(value: float) -> str:
    """Format seconds with three significant digits."""
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def markdown(rows: list[dict[str, Any]]) -> str:
    """Return the results as a Markdown table."""
    lines = [
        ("| model | device | B | steps timed | dpplan DP-SGD s/epoch | non-private s/epoch "
         "| DP / non-private |"),
        "|---|---|---:|---|---:|---:|---:|",
    ]
    for row in rows:
        timed = (f"{row['steps']} of {row['epoch_steps']} (full epoch)"
                 if row["steps"] == row["epoch_steps"]
                 else f"{row['steps']} of {row['epoch_steps']} (extrapolated)")
        lines.append(
            f"| {row['model']} | {row['device']} | {row['batch_size']} | {timed} "
            f"| {fmt_s(row['dp_s_per_epoch'])} | {fmt_s(row['plain_s_per_epoch'])} "
            f"| {row['ratio']:.2f}× |"
        )
    return "\n".join(lines)


def parse_batch_sizes(text: str) -> list[int]:
    """Parse ``"256,1024"`` into ``[256, 1024]``.

    Raises:
        argparse.ArgumentTypeError: for anything but positive integers.
    """
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        message = f"not a comma-separated list of integers: {text!r}"
        raise argparse.ArgumentTypeError(message) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be positive integers: {text!r}")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(
        description="Seconds per MNIST epoch: dpplan's DP-SGD trainer vs non-private PyTorch.")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto = CUDA when available, else CPU (default auto)")
    parser.add_argument("--batch-sizes", type=parse_batch_sizes, default=[256, 1024, 4096],
                        help="comma-separated batch sizes (default 256,1024,4096)")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per path after 3 warm-up steps (default: a full "
                             f"epoch on CUDA, {CPU_DEFAULT_STEPS} steps but at most one "
                             "epoch on the CPU)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleave the timed steps of the two paths in this many "
                             "alternating chunks (default 5)")
    parser.add_argument("--model", choices=MODELS, default="seed",
                        help="network (default seed)")
    parser.add_argument("--data-dir", default=None,
                        help=f"folder with the MNIST IDX files (default ${DATA_DIR_ENV}, else "
                             f"{SHARED_MNIST} if present, else dpplan's cache folder)")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="also write the results as JSON to FILE")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the machine, the table and the reference note.

    Returns:
        0 on success; 2 for invalid arguments (including ``--device cuda`` without CUDA).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda was asked for, but CUDA is not available here "
              "(torch.cuda.is_available() is False); use --device cpu or --device auto.",
              file=sys.stderr)
        return 2
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available()
                          else "cpu")
    options = RunOptions(model=args.model, device=device.type,
                         data_dir=resolve_data_dir(args.data_dir), seed=SEED)
    pool = training_set_size(options)
    too_big = [size for size in args.batch_sizes if size > pool]
    if too_big:
        parser.error(f"batch sizes must be at most {pool} (the training examples): {too_big}")

    started = datetime.datetime.now(datetime.UTC)
    info = machine_info(device)
    load_start = os.getloadavg()
    command = "python bench/trainer.py" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:]
                                           else "")
    print("# dpplan trainer benchmark\n")
    print(f"- command: `{command}`")
    print(f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}")
    print(f"- machine: {info['platform']}; CPU {info['cpu']}; {info['cores']} cores "
          f"({info['usable_cores']} usable); torch threads {info['torch_threads']} (default)")
    print(f"- CUDA device: {info['cuda_device'] or 'none'}"
          + (f" (CUDA {info['cuda_version']})" if info["cuda_device"] else ""))
    print("- versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items())
          + f"; Python {info['python']}")
    sys.stdout.flush()

    rows: list[dict[str, Any]] = []
    total_started = time.perf_counter()
    with warnings.catch_warnings():
        # The same warnings dpplan's trainer silences; none changes what is timed.
        warnings.filterwarnings("ignore", message=".*Full backward hook.*")
        warnings.filterwarnings("ignore", message=".*secure_mode.*")
        warnings.filterwarnings("ignore", message=".*Optimal order is the.*")
        for batch_size in args.batch_sizes:
            epoch_steps = math.ceil(EPOCH_EXAMPLES / batch_size)
            steps = args.steps or (epoch_steps if device.type == "cuda"
                                   else min(CPU_DEFAULT_STEPS, epoch_steps))
            print(f"B={batch_size}: timing {steps} steps per path ...", file=sys.stderr,
                  flush=True)
            times = measure(options, batch_size, steps, args.rounds, device)
            dp_epoch = times["dp_wall"] / steps * epoch_steps
            plain_epoch = times["plain_wall"] / steps * epoch_steps
            rows.append({
                "model": args.model,
                "device": info["cuda_device"] or "cpu",
                "batch_size": batch_size,
                "steps": steps,
                "epoch_steps": epoch_steps,
                "extrapolated": steps != epoch_steps,
                "dp_s_per_step": times["dp_wall"] / steps,
                "plain_s_per_step": times["plain_wall"] / steps,
                "dp_cpu_s_per_step": times["dp_cpu"] / steps,
                "plain_cpu_s_per_step": times["plain_cpu"] / steps,
                "dp_s_per_epoch": dp_epoch,
                "plain_s_per_epoch": plain_epoch,
                "ratio": dp_epoch / plain_epoch,
            })
    total = time.perf_counter() - total_started
    load_end = os.getloadavg()

    print(f"- total run {total:.0f} s; DP-SGD: σ={NOISE_MULTIPLIER:g}, C={MAX_GRAD_NORM:g}, "
          f"expected batch B, Poisson-sampled from {pool:,} on-device examples (dpplan's "
          f"default 5,000-example validation hold-out); non-private: fixed batches of B")
    print(f"- load average (1/5/15 min) at start {load_start[0]:.2f}/{load_start[1]:.2f}/"
          f"{load_start[2]:.2f}, at end {load_end[0]:.2f}/{load_end[1]:.2f}/{load_end[2]:.2f}")
    print(f"- s/epoch = mean s/step over the timed steps (after {WARMUP_STEPS} warm-up steps) "
          f"× ceil({EPOCH_EXAMPLES:,} / B); rows marked \"extrapolated\" timed fewer steps "
          f"than one epoch; the two paths' timed steps alternate in {args.rounds} chunks")
    print()
    print(markdown(rows))
    print()
    reference = "; ".join(
        f"{model} network, B={size}: Opacus hooks {dp:g} s/epoch, non-private eager "
        f"{plain:g} s/epoch ({dp / plain:.2f}×)" for model, size, dp, plain in REFERENCE_H100)
    print(f"Reference (H100, issue #4), quoted, not measured by this run: {reference}.")
    if args.json:
        data = {
            "command": command,
            "date": started.isoformat(),
            "total_s": total,
            "machine": info,
            "load_average_start": load_start,
            "load_average_end": load_end,
            "warmup_steps": WARMUP_STEPS,
            "rounds": args.rounds,
            "epoch_examples": EPOCH_EXAMPLES,
            "training_pool": pool,
            "noise_multiplier": NOISE_MULTIPLIER,
            "max_grad_norm": MAX_GRAD_NORM,
            "schedule": SCHEDULE.to_dict(),
            "rows": rows,
            "reference_h100_issue_4": [
                {"model": m, "batch_size": b, "opacus_hooks_s_per_epoch": d,
                 "non_private_eager_s_per_epoch": p} for m, b, d, p in REFERENCE_H100
            ],
        }
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
