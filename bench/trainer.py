"""Benchmark dpplan's DP-SGD step engines against each other and against non-private PyTorch.

For every batch size B the same run trains, one row after the other, the seed network on the
same on-device MNIST tensors with the same plan (σ = 1, C = 1, δ = 1e-5, expected batch B),
through the public trainer seam only (:class:`dpplan.train.Trainer`,
:func:`dpplan.train.engines.make_engine`, :class:`dpplan.train.RunOptions`):

============================  ==========================================================
row                           step engine
============================  ==========================================================
``opacus``                    ``RunOptions(engine="opacus")``: Opacus ``GradSampleModule``
                              hooks and ``DPOptimizer``
``fused eager``               ``make_engine("fused", ..., compile=False)``: ``torch.func``
                              ``vmap(grad)`` per-example gradients, clip and sum, eager
``fused compiled``            the same with ``compile=True`` (padded to a static cap)
``non-private eager``         ``RunOptions(private=False)``: plain SGD on the batch's mean
                              loss (no clipping, no noise)
``non-private compiled``      the same step with the model's forward and loss
                              ``torch.compile``\\ d (:class:`CompiledNonPrivateEngine`,
                              padded to the fused engine's cap so shapes stay static)
============================  ==========================================================

Every row draws the same Poisson batches (``reproducible=True``: sampling and noise from the
public seed; fine for timing, no privacy guarantee) and runs the real
:meth:`Trainer.train_epoch` (Bernoulli mask on the device, engine step, one-cycle schedule
step, per-step loss read-back; CUDA synchronised at the end). On CUDA the rows run one
after the other; on the CPU every row is built and warmed up first and the timed epochs then
go round-robin across the rows, so that the load of other processes hits all rows alike. Per
row:

1. ``--warmup-steps`` steps (default 3) through :meth:`Trainer.step`, timed on their own:
   the "warm-up s" column, which holds the whole ``torch.compile`` cost of compiled rows
   (a first compile: the run uses a fresh Inductor cache unless ``--warm-compile-cache`` or
   ``$TORCHINDUCTOR_CACHE_DIR`` is given);
2. the schedule is restarted (:func:`make_scheduler`, so the timed epochs follow the plan's
   one-cycle schedule from its first step), then ``--epochs`` full epochs of the plan
   (``plan.steps_per_epoch`` steps over the training pool: 55,000 examples, or ``--subset``),
   timed by ``train_epoch`` itself;
3. test accuracy on the 10,000 MNIST test examples, a sanity column (one epoch of DP-SGD at
   this schedule, not a tuned result);
4. on CUDA, peak GPU memory (``torch.cuda.max_memory_allocated``, reset before the row is
   built; it includes the shared MNIST tensors, printed once in the header).

Seconds per epoch are reported per 60,000-example epoch: the timed seconds per step times
``ceil(60000 / B)``. The ratio columns are: Opacus' s/epoch ÷ the row's (the speed-up over
Opacus), and the row's s/epoch ÷ the non-private eager and ÷ the non-private compiled row's.

Compiled rows run by default on CUDA only. On the CPU compiling takes ~50 s per row and was
slower than eager in a probe, so they are left out unless ``--cpu-compile`` is given. On the
CPU the default is B = 512 on a ``--subset`` of 10,240 examples (20 steps per epoch), so a
run takes a minute or two.

Usage:
    python bench/trainer.py [--device auto|cpu|cuda] [--batch-sizes 256,1024,4096]
        [--epochs 1] [--subset N] [--warmup-steps 3] [--cpu-compile] [--warm-compile-cache]
        [--threads N]
        [--profile] [--model seed|tempered] [--data-dir DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import importlib.metadata
import json
import math
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _machine import cpu_model, usable_cores

from dpplan.plan import TrainingPlan
from dpplan.train import OneCycle, RunOptions, Trainer, training_set_size
from dpplan.train.core import load_split
from dpplan.train.engines import NonPrivateEngine, batch_cap, make_engine
from dpplan.train.models import MODELS
from dpplan.train.schedules import make_scheduler
from dpplan.train.specs import DATA_DIR_ENV

EPOCH_EXAMPLES = 60_000
"""Examples in one MNIST training epoch; an epoch is ``ceil(EPOCH_EXAMPLES / B)`` steps."""
NOISE_MULTIPLIER = 1.0
MAX_GRAD_NORM = 1.0
DELTA = 1e-5
SEED = 0
SCHEDULE = OneCycle(max_lr=2.0)
"""DP-SGD rows: one-cycle with the peak learning rate selected for one epoch at B = 512 in
BENCHMARKS' accuracy section. The schedule does not change the time per step."""
NON_PRIVATE_SCHEDULE = OneCycle(max_lr=0.2)
"""Non-private rows: their unclipped, noise-free gradients diverge at the DP rows' peak."""
CPU_DEFAULT_SUBSET = 10_240
CUDA_DEFAULT_BATCH_SIZES = (256, 1024, 4096)
CPU_DEFAULT_BATCH_SIZES = (512,)
EVAL_BATCH = 4096
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"

#: (label, RunOptions.engine, private, compile); compile None = not a compiled/eager choice.
ROWS: tuple[tuple[str, str, bool, bool | None], ...] = (
    ("opacus", "opacus", True, None),
    ("fused eager", "fused", True, False),
    ("fused compiled", "fused", True, True),
    ("non-private eager", "fused", False, False),
    ("non-private compiled", "fused", False, True),
)

REFERENCE_H100 = (
    # (model, B, Opacus hooks s/epoch, non-private eager s/epoch), as reported in issue #4.
    ("seed", 256, 1.53, 0.84),
    ("seed", 1024, 0.47, 0.39),
)

GOALS_H200 = (
    "fused ≤ 0.25 s/epoch at B=256 (≥ 6× Opacus), ≤ 0.06 s at B=1024 (≥ 10×), ≤ 0.03 s at "
    "B=4096; DP fused ÷ non-private eager ≤ 1.0×, ÷ non-private compiled ≤ 1.3×; peak memory "
    "at B=4096 within 2× of Opacus"
)


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """Silence the warnings dpplan's trainer silences; none changes what is timed."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Full backward hook.*")
        warnings.filterwarnings("ignore", message=".*secure_mode.*")
        warnings.filterwarnings("ignore", message=".*Optimal order is the.*")
        yield


class CompiledNonPrivateEngine(NonPrivateEngine):
    """Non-private SGD whose forward and loss are ``torch.compile``\\ d (static shapes).

    Each Poisson batch is padded to ``cap`` examples (zero weight), like the compiled fused
    engine's, so one graph serves every step; a batch above the cap is done in chunks whose
    gradients accumulate. The update is the eager engine's: the mean loss over the real
    examples, backward, ``optimizer.step()``.

    Args:
        model: the bare model (what the trainer evaluates).
        optimizer: its SGD optimizer.
        cap: the padded chunk length (the fused engine's :func:`batch_cap`).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, cap: int) -> None:
        super().__init__(model, optimizer)
        self.cap = cap

        def weighted_loss_sum(
            images: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor
        ) -> torch.Tensor:
            losses = F.cross_entropy(model(images), labels, reduction="none")
            return (losses * weights).sum()

        self._loss_sum = torch.compile(weighted_loss_sum, dynamic=False)

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        count, total = len(images), 0.0
        for start in range(0, count, self.cap):
            chunk_x, chunk_y = images[start : start + self.cap], labels[start : start + self.cap]
            weights = torch.ones(len(chunk_x), device=images.device, dtype=torch.float32)
            pad = self.cap - len(chunk_x)
            if pad:
                chunk_x = torch.cat([chunk_x, chunk_x.new_zeros((pad, *chunk_x.shape[1:]))])
                chunk_y = torch.cat([chunk_y, chunk_y.new_zeros((pad,))])
                weights = torch.cat([weights, weights.new_zeros((pad,))])
            loss = self._loss_sum(chunk_x, chunk_y, weights) / count
            loss.backward()
            total += float(loss.detach())
        self.optimizer.step()
        self._plain_steps += 1
        return total if count else math.nan


def machine_info(device: torch.device) -> dict[str, Any]:
    """Return CPU model, core counts, library versions and the CUDA device, if any.

    Args:
        device: the device the benchmark runs on.

    Returns:
        A JSON-ready dict.
    """
    versions = {}
    for name in ("dpplan", "torch", "opacus"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
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


@torch.no_grad()
def test_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``images`` the model classifies correctly (eval mode)."""
    model.eval()
    correct = 0
    for start in range(0, len(images), EVAL_BATCH):
        logits = model(images[start : start + EVAL_BATCH])
        correct += int((logits.argmax(dim=1) == labels[start : start + EVAL_BATCH]).sum())
    return correct / len(images)


def schedule_of(label: str) -> OneCycle:
    """The learning-rate schedule of row ``label`` (it does not change the time per step)."""
    private = next(row[2] for row in ROWS if row[0] == label)
    return SCHEDULE if private else NON_PRIVATE_SCHEDULE


def build_trainer(
    label: str, plan: TrainingPlan, options: RunOptions, data: Any, device: torch.device
) -> Trainer:
    """Return a :class:`Trainer` whose engine is the one row ``label`` times."""
    _, engine, private, compile_ = next(row for row in ROWS if row[0] == label)
    trainer = Trainer(
        plan,
        schedule_of(label),
        dataclasses.replace(options, engine=engine, private=private),
        data=data,
        device=device,
    )
    if private and engine == "fused":
        trainer.engine = make_engine(
            "fused",
            trainer.model,
            trainer.engine.optimizer,
            plan,
            private=True,
            noise_generator=trainer.noise_generator,
            compile=compile_,
        )
        if trainer.engine.compiled != compile_:
            raise RuntimeError(f"{label}: the fused engine did not take compile={compile_}")
    elif not private and compile_:
        trainer.engine = CompiledNonPrivateEngine(
            trainer.model, trainer.engine.optimizer, batch_cap(plan.batch_size)
        )
    return trainer


class RowRun:
    """One row's trainer: built and warmed up on construction, then timed epoch by epoch.

    On CUDA the peak-memory counter is reset before the trainer is built, so
    :meth:`result` reports the row's own peak (rows then must run one after the other).
    """

    def __init__(
        self,
        label: str,
        plan: TrainingPlan,
        options: RunOptions,
        data: Any,
        device: torch.device,
        *,
        warmup_steps: int,
    ) -> None:
        self.label, self.plan, self.device, self.warmup_steps = label, plan, device, warmup_steps
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        self.trainer = build_trainer(label, plan, options, data, device)
        with quiet_libraries():
            self.trainer.model.train()
            _sync(device)
            started = time.perf_counter()
            for _ in range(warmup_steps):
                self.trainer.step()
            _sync(device)
            self.warmup_s = time.perf_counter() - started
        # Restart the schedule so the timed epochs run the plan's one-cycle from step 1.
        self.trainer.controller = make_scheduler(
            self.trainer.schedule, self.trainer.engine.optimizer, total_steps=plan.total_steps
        )
        self.epoch_s: list[float] = []
        self.losses: list[float] = []
        self.process_cpu_s = 0.0

    def epoch(self) -> None:
        """Time one epoch of the plan (``Trainer.train_epoch``, CUDA synchronised)."""
        cpu_started = time.process_time()
        with quiet_libraries():
            loss, seconds = self.trainer.train_epoch()
        self.process_cpu_s += time.process_time() - cpu_started
        self.epoch_s.append(seconds)
        self.losses.append(loss)

    def result(self) -> dict[str, Any]:
        """Check the step count, evaluate, and return the row's measurements.

        Raises:
            RuntimeError: if the engine counted another number of steps than were run.
        """
        trainer = self.trainer
        expected = self.warmup_steps + len(self.epoch_s) * self.plan.steps_per_epoch
        if trainer.steps != expected:
            raise RuntimeError(
                f"{self.label}: the engine counted {trainer.steps} steps, expected {expected}"
            )
        cuda = self.device.type == "cuda"
        peak = torch.cuda.max_memory_allocated(self.device) if cuda else None
        return {
            "warmup_s": self.warmup_s,
            "epoch_s": self.epoch_s,
            "process_cpu_s": self.process_cpu_s,
            "train_loss": self.losses,
            "test_accuracy": test_accuracy(trainer.model, trainer.data.test_x, trainer.data.test_y),
            "peak_gpu_bytes": peak,
            "engine": trainer.engine.name,
            "engine_class": type(trainer.engine).__name__,
            "compiled_at_end": getattr(trainer.engine, "compiled", None),
        }


def measure_rows(
    labels: list[str],
    plan: TrainingPlan,
    options: RunOptions,
    data: Any,
    device: torch.device,
    *,
    epochs: int,
    warmup_steps: int,
    interleave: bool,
) -> dict[str, dict[str, Any]]:
    """Time every row at one batch size; return each row's measurements by label.

    With ``interleave`` every row is built and warmed up first, then the timed epochs go
    round-robin (epoch 1 of each row, epoch 2 of each row, ...), so a change in machine load
    hits all rows alike; without it (CUDA: each row's peak memory must be its own) each row
    runs to the end and is freed before the next is built.
    """

    def log(message: str) -> None:
        print(f"B={plan.batch_size}: {message}", file=sys.stderr, flush=True)

    results: dict[str, dict[str, Any]] = {}
    if interleave:
        runs = {}
        for label in labels:
            log(f"{label}: build and {warmup_steps} warm-up steps ...")
            runs[label] = RowRun(label, plan, options, data, device, warmup_steps=warmup_steps)
        for epoch in range(1, epochs + 1):
            for label, run in runs.items():
                log(f"{label}: epoch {epoch} of {epochs} ({plan.steps_per_epoch} steps) ...")
                run.epoch()
        for label, run in runs.items():
            results[label] = run.result()
        return results
    for label in labels:
        log(f"{label}: {warmup_steps} warm-up steps + {epochs} × {plan.steps_per_epoch} steps")
        run = RowRun(label, plan, options, data, device, warmup_steps=warmup_steps)
        for _ in range(epochs):
            run.epoch()
        results[label] = run.result()
        del run
    return results


def profile_fused_step(
    plan: TrainingPlan, options: RunOptions, data: Any, device: torch.device, steps: int = 3
) -> str:
    """Profile ``steps`` fused eager steps (after 2 warm-up steps); return the op table."""
    from torch.profiler import ProfilerActivity, profile

    # Enough epochs that the schedule covers the profiled steps.
    plan = plan.replace(epochs=max(plan.epochs, math.ceil((steps + 2) / plan.steps_per_epoch)))
    trainer = build_trainer("fused eager", plan, options, data, device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with quiet_libraries():
        for _ in range(2):
            trainer.step()
        with profile(activities=activities) as prof:
            for _ in range(steps):
                trainer.step()
            _sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=20)


def ratios(row: dict[str, Any], measured: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """The ratio columns of one row (``None`` where the other row was not timed)."""

    def seconds(label: str) -> float | None:
        other = measured.get(label)
        return None if other is None else other["s_per_epoch"]

    opacus, eager, compiled = (
        seconds(label) for label in ("opacus", "non-private eager", "non-private compiled")
    )
    own = row["s_per_epoch"]
    return {
        "speedup_vs_opacus": None if opacus is None else opacus / own,
        "ratio_non_private_eager": None if eager is None else own / eager,
        "ratio_non_private_compiled": None if compiled is None else own / compiled,
    }


def fmt_s(value: float) -> str:
    """Format seconds with three significant digits."""
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def markdown(rows: list[dict[str, Any]], cuda: bool) -> str:
    """Return the results as a Markdown table."""
    header = (
        "| B | row | warm-up s | steps timed | s/epoch (60k) |"
        + ("" if cuda else " CPU s/step |")
        + " Opacus ÷ row | row ÷ non-private eager | row ÷ non-private compiled |"
        + (" peak GPU MiB |" if cuda else "")
        + " test acc |"
    )
    lines = [header, "|---:|---|---:|---|---:|" + "---:|" * 5]

    def ratio(value: float | None) -> str:
        return "–" if value is None else f"{value:.2f}×"

    for row in rows:
        memory = cpu_time = ""
        if cuda:
            memory = f" {row['peak_gpu_bytes'] / 2**20:,.0f} |"
        else:
            cpu_time = f" {row['process_cpu_s_per_step']:.3f} |"
        lines.append(
            f"| {row['batch_size']} | {row['row']} | {fmt_s(row['warmup_s'])} "
            f"| {row['timed_steps']} ({row['epochs']}×{row['steps_per_epoch']}) "
            f"| {fmt_s(row['s_per_epoch'])} |{cpu_time} {ratio(row['speedup_vs_opacus'])} "
            f"| {ratio(row['ratio_non_private_eager'])} "
            f"| {ratio(row['ratio_non_private_compiled'])} |{memory} "
            f"{row['test_accuracy']:.2%} |"
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
        description="Seconds per MNIST epoch of dpplan's step engines (Opacus, fused eager "
        "and compiled) and of non-private PyTorch (eager and compiled)."
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="auto = CUDA when available, else CPU (default auto)",
    )
    parser.add_argument(
        "--batch-sizes",
        type=parse_batch_sizes,
        default=None,
        help="comma-separated batch sizes (default 256,1024,4096 on CUDA, 512 on the CPU)",
    )
    parser.add_argument(
        "--epochs", type=int, default=1, help="timed epochs per row after the warm-up (default 1)"
    )
    parser.add_argument(
        "--subset",
        type=int,
        default=None,
        help="train on this many examples (the plan's dataset_size); 0 = all "
        f"55,000 (default: all on CUDA, {CPU_DEFAULT_SUBSET:,} on the CPU)",
    )
    parser.add_argument(
        "--warmup-steps",
        type=int,
        default=3,
        help="untimed-in-s/epoch steps before the epochs; they hold the compile time (default 3)",
    )
    parser.add_argument(
        "--cpu-compile",
        action="store_true",
        help="also time the compiled rows on the CPU (off by default: ~50 s of "
        "compilation per row, and slower than eager in a probe)",
    )
    parser.add_argument(
        "--warm-compile-cache",
        action="store_true",
        help="use Inductor's usual on-disk cache (default: a fresh temporary one, so "
        "warm-up s holds a first compile)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads(N) (default: torch's default)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also print a torch.profiler table of 3 fused eager steps at the first batch size",
    )
    parser.add_argument("--model", choices=MODELS, default="seed", help="network (default seed)")
    parser.add_argument(
        "--data-dir",
        default=None,
        help=f"folder with the MNIST IDX files (default ${DATA_DIR_ENV}, else "
        f"{SHARED_MNIST} if present, else dpplan's cache folder)",
    )
    parser.add_argument(
        "--json", default=None, metavar="FILE", help="also write the results as JSON to FILE"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the machine, the table and the reference note.

    Returns:
        0 on success; 2 for invalid arguments (including ``--device cuda`` without CUDA).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "error: --device cuda was asked for, but CUDA is not available here "
            "(torch.cuda.is_available() is False); use --device cpu or --device auto.",
            file=sys.stderr,
        )
        return 2
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    if args.warmup_steps < 0:
        parser.error("--warmup-steps must be at least 0")
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    if not args.warm_compile_cache and "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        # A fresh Inductor cache, so "warm-up s" is a first compile, not a cache hit.
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="dpplan-bench-inductor-")
    device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")
    cuda = device.type == "cuda"
    batch_sizes = args.batch_sizes or list(
        CUDA_DEFAULT_BATCH_SIZES if cuda else CPU_DEFAULT_BATCH_SIZES
    )
    subset = args.subset if args.subset is not None else (None if cuda else CPU_DEFAULT_SUBSET)
    subset = subset or None
    labels = [row[0] for row in ROWS if cuda or args.cpu_compile or not row[3]]
    options = RunOptions(
        model=args.model,
        device=device.type,
        data_dir=resolve_data_dir(args.data_dir),
        seed=SEED,
        reproducible=True,
        subset=subset,
        # The Trainer sets torch's threads from the options: keep --threads (or torch's
        # default when it is not given) instead of RunOptions' default of 1.
        threads=torch.get_num_threads(),
    )
    pool = training_set_size(options)
    too_big = [size for size in batch_sizes if size > pool]
    if too_big:
        parser.error(f"batch sizes must be at most {pool} (the training examples): {too_big}")

    started = datetime.datetime.now(datetime.UTC)
    info = machine_info(device)
    load_start = os.getloadavg()
    command = "python bench/trainer.py" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
    data = load_split(options, device)
    data_bytes = sum(
        t.numel() * t.element_size()
        for t in (data.train_x, data.train_y, data.val_x, data.val_y, data.test_x, data.test_y)
    )
    print("# dpplan trainer benchmark\n")
    print(f"- command: `{command}`")
    print(f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}")
    threads_note = "set by --threads" if args.threads else "default"
    print(
        f"- machine: {info['platform']}; CPU {info['cpu']}; {info['cores']} cores "
        f"({info['usable_cores']} usable); torch threads {info['torch_threads']} "
        f"({threads_note})"
    )
    print(
        f"- CUDA device: {info['cuda_device'] or 'none'}"
        + (f" (CUDA {info['cuda_version']})" if info["cuda_device"] else "")
    )
    print(
        "- versions: "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items())
        + f"; Python {info['python']}"
    )
    sys.stdout.flush()

    rows: list[dict[str, Any]] = []
    profile_table = None
    total_started = time.perf_counter()
    for batch_size in batch_sizes:
        plan = TrainingPlan(
            dataset_size=pool,
            batch_size=batch_size,
            noise_multiplier=NOISE_MULTIPLIER,
            epochs=args.epochs,
            delta=DELTA,
            max_grad_norm=MAX_GRAD_NORM,
        )
        if args.profile and profile_table is None:
            print(f"B={batch_size}: profiling fused eager steps ...", file=sys.stderr, flush=True)
            profile_table = profile_fused_step(plan, options, data, device)
        measured = measure_rows(
            labels,
            plan,
            options,
            data,
            device,
            epochs=args.epochs,
            warmup_steps=args.warmup_steps,
            interleave=not cuda,
        )
        timed = args.epochs * plan.steps_per_epoch
        for label, result in measured.items():
            s_per_step = sum(result["epoch_s"]) / timed
            result.update(
                {
                    "row": label,
                    "model": args.model,
                    "device": info["cuda_device"] or "cpu",
                    "batch_size": batch_size,
                    "epochs": args.epochs,
                    "steps_per_epoch": plan.steps_per_epoch,
                    "timed_steps": timed,
                    "warmup_steps": args.warmup_steps,
                    "s_per_step": s_per_step,
                    "process_cpu_s_per_step": result["process_cpu_s"] / timed,
                    "s_per_epoch": s_per_step * math.ceil(EPOCH_EXAMPLES / batch_size),
                }
            )
            print(
                f"  {label}: warm-up {result['warmup_s']:.2f} s, {s_per_step:.4f} s/step, "
                f"test accuracy {result['test_accuracy']:.4f}",
                file=sys.stderr,
                flush=True,
            )
        for result in measured.values():
            result.update(ratios(result, measured))
            rows.append(result)
    total = time.perf_counter() - total_started
    load_end = os.getloadavg()

    print(
        f"- total run {total:.0f} s; DP-SGD: σ={NOISE_MULTIPLIER:g}, C={MAX_GRAD_NORM:g}, "
        f"expected batch B, Poisson-sampled from {pool:,} on-device training examples"
        + (
            f" (--subset {pool:,})"
            if subset
            else " (dpplan's default 5,000-example validation hold-out)"
        )
        + f"; one-cycle max_lr={SCHEDULE.max_lr:g} (non-private rows "
        f"{NON_PRIVATE_SCHEDULE.max_lr:g}); every row draws the same "
        "batches (reproducible=True)"
    )
    print(
        f"- load average (1/5/15 min) at start {load_start[0]:.2f}/{load_start[1]:.2f}/"
        f"{load_start[2]:.2f}, at end {load_end[0]:.2f}/{load_end[1]:.2f}/{load_end[2]:.2f}"
    )
    print(
        (
            "- rows built and warmed up one after the other, then their timed epochs run "
            "round-robin"
            if not cuda
            else "- rows run one after the other (each row's peak memory is its own)"
        )
        + f"; warm-up s = the first {args.warmup_steps} steps "
        "(all compile time); s/epoch (60k) = timed s/step × ceil(60,000 / B) over the "
        f"{args.epochs} timed epoch(s) of ceil({pool:,} / B) steps"
        + (
            "; compiled rows left out on the CPU (use --cpu-compile)"
            if not cuda and not args.cpu_compile
            else ""
        )
    )
    if not cuda:
        print(
            "- CPU s/step = process CPU seconds (all of this process's threads) per timed "
            "step: the work done, less sensitive than wall time to other processes' load"
        )
    if cuda:
        print(
            f"- peak GPU MiB = torch.cuda.max_memory_allocated, reset per row; includes "
            f"the MNIST tensors ({data_bytes / 2**20:,.0f} MiB)"
        )
    print()
    print(markdown(rows, cuda))
    print()
    reference = "; ".join(
        f"{model} network, B={size}: Opacus hooks {dp:g} s/epoch, non-private eager "
        f"{plain:g} s/epoch ({dp / plain:.2f}×)"
        for model, size, dp, plain in REFERENCE_H100
    )
    print(f"Reference (H100, issue #4), quoted, not measured by this run: {reference}.")
    print(f"Goals (H200, issue 10), quoted: {GOALS_H200}.")
    if profile_table is not None:
        print("\n## Profile: fused eager steps (torch.profiler)\n")
        print("```\n" + profile_table + "\n```")
    if args.json:
        data_json = {
            "command": command,
            "date": started.isoformat(),
            "total_s": total,
            "machine": info,
            "load_average_start": load_start,
            "load_average_end": load_end,
            "warmup_steps": args.warmup_steps,
            "epochs": args.epochs,
            "epoch_examples": EPOCH_EXAMPLES,
            "training_pool": pool,
            "subset": subset,
            "noise_multiplier": NOISE_MULTIPLIER,
            "max_grad_norm": MAX_GRAD_NORM,
            "schedule": SCHEDULE.to_dict(),
            "non_private_schedule": NON_PRIVATE_SCHEDULE.to_dict(),
            "mnist_bytes_on_device": data_bytes,
            "rows": rows,
            "profile": profile_table,
            "reference_h100_issue_4": [
                {
                    "model": m,
                    "batch_size": b,
                    "opacus_hooks_s_per_epoch": d,
                    "non_private_eager_s_per_epoch": p,
                }
                for m, b, d, p in REFERENCE_H100
            ],
            "goals_h200_issue_10": GOALS_H200,
        }
        Path(args.json).write_text(json.dumps(data_json, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
