"""The DP-SGD training loop: Opacus on MNIST, driven by a :class:`~dpplan.plan.TrainingPlan`.

The plan is the single source of truth: batches are Poisson-sampled at exactly
``plan.sample_rate`` for exactly ``plan.steps_per_epoch`` steps per epoch, with
``plan.noise_multiplier`` and ``plan.max_grad_norm`` (STYLE §3.2; Opacus is never left to
infer the sample rate from a data loader). After every epoch the run records dpplan's ε for
the steps the optimizer hook counted, and the ε of Opacus' own RDP accountant fed by the same
hook; if dpplan's RDP and Opacus' RDP disagree, the run carries a warning.

Data stays on the training device as tensors; each step draws a Bernoulli mask on the device,
so there is no per-step DataLoader overhead.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
import secrets
import time
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from dpplan import _validate
from dpplan.accounting import METHODS, epsilon_curve
from dpplan.errors import DataError, PlanError, StoreError
from dpplan.plan import TrainingPlan
from dpplan.store import EpochRecord, RunRecord, RunStore, _plan_id
from dpplan.train.data import DATA_DIR_ENV, _no_folder_message, load_mnist, split_validation
from dpplan.train.models import ACTIVATIONS, MODELS, make_model
from dpplan.train.schedules import (
    ScheduleSpec,
    make_optimizer,
    make_scheduler,
    schedule_from_dict,
)

__all__ = [
    "MNIST_TRAIN_SIZE",
    "RunOptions",
    "queue_run",
    "resume",
    "run_queued",
    "train",
    "training_set_size",
]

MNIST_TRAIN_SIZE = 60_000
MNIST_TEST_SIZE = 10_000
#: Relative disagreement between dpplan's RDP ε and Opacus' RDP ε that flags a run. The two
#: use different RDP order grids, which alone moves ε by ~1e-4.
EPSILON_AGREEMENT_RTOL = 1e-2
DEVICES = ("auto", "cpu", "cuda")
#: Layout version of run checkpoints (read with ``torch.load(weights_only=True)``).
CHECKPOINT_FORMAT = 2
#: How often a running epoch checks the store for a stop request.
STOP_POLL_SECONDS = 2.0
#: How often a running epoch reports its progress to ``on_step`` (at most once per interval).
PROGRESS_SECONDS = 2.0


class _StopRequested(Exception):
    """A stop was requested mid-epoch; the partial epoch is discarded."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RunOptions:
    """How to train a plan: settings that do not change ε (STYLE §3.2).

    Attributes:
        model: ``"seed"`` (the super-convergence study's network) or ``"tempered"``
            (Papernot et al.'s CNN).
        activation: ``"relu"`` or ``"tanh"`` (tempered model only).
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``.
        seed: seed of the model initialisation and of dropout. The Poisson sampling and the
            DP noise are drawn from generators seeded with fresh OS entropy (``secrets``),
            never from this public seed: the guarantee needs the noise to be secret.
        split_seed: seed of the validation split. It is the same for every run by default,
            so one run's training examples are never another run's (unprotected) validation
            examples.
        reproducible: derive sampling and noise from ``seed`` too, so a run can be repeated
            bit for bit. For experiments only: anyone who knows the seed can recompute the
            noise, so such a run carries no privacy guarantee against them (the run records
            a warning).
        data_dir: folder with the MNIST IDX files (see :func:`dpplan.train.data.load_mnist`).
            Stored as an absolute path, so a run can be resumed from any working folder.
            ``None`` takes ``$DPPLAN_DATA_DIR`` (made absolute) when it is set, else means
            the per-user cache folder. A folder named here or in ``$DPPLAN_DATA_DIR`` must
            exist (a mistyped name is refused, never created); only the cache folder is
            created and downloaded into.
        download: whether missing MNIST files may be downloaded.
        validation_size: examples held out of the 60,000 MNIST training examples for
            plateau scheduling and learning-rate selection, chosen by ``split_seed``.
        subset: train on ``subset`` examples only: the first ``subset`` of the examples
            left after the validation split (which always splits all 60,000, so the
            validation examples do not depend on ``subset``); ``None`` uses all
            ``60,000 - validation_size``.
        test_subset: evaluate on the first ``test_subset`` test examples; ``None`` uses all.
        method: dpplan accounting method for the recorded ε.
        target_epsilon: stop before an epoch whose ε would exceed this; ``None`` never stops.
        private: ``False`` trains the non-private baseline (no clipping, no noise; ε = ∞).
        eval_batch_size: batch size for evaluation (no effect on results).
    """

    model: str = "seed"
    activation: str = "relu"
    device: str = "auto"
    seed: int = 0
    split_seed: int = 0
    reproducible: bool = False
    data_dir: str | None = None
    download: bool = True
    validation_size: int = 5000
    subset: int | None = None
    test_subset: int | None = None
    method: str = "prv"
    target_epsilon: float | None = None
    private: bool = True
    eval_batch_size: int = 4096

    def __post_init__(self) -> None:
        _validate.choice(options=MODELS, hint="Pick a model.", model=self.model)
        _validate.choice(options=ACTIVATIONS, activation=self.activation)
        if self.model == "seed" and self.activation != "relu":
            raise PlanError("activation", self.activation, "'relu' for model='seed'",
                            "Use model='tempered' for tanh.")
        _validate.choice(options=DEVICES, device=self.device)
        _validate.integer(minimum=0, maximum=2**63 - 1, seed=self.seed)
        _validate.integer(minimum=0, maximum=2**63 - 1, split_seed=self.split_seed)
        if not isinstance(self.reproducible, bool):
            raise PlanError("reproducible", self.reproducible, "True or False")
        _validate.integer(minimum=1, maximum=MNIST_TRAIN_SIZE - 1,
                          validation_size=self.validation_size,
                          hint="Keep some examples for training.")
        if self.subset is not None:
            _validate.integer(minimum=1, maximum=MNIST_TRAIN_SIZE - self.validation_size,
                              subset=self.subset,
                              hint=f"validation_size={self.validation_size} examples are held "
                              f"out of the {MNIST_TRAIN_SIZE:,} first.")
        object.__setattr__(self, "data_dir", _absolute_data_dir(self.data_dir))
        if self.test_subset is not None:
            _validate.integer(minimum=1, maximum=MNIST_TEST_SIZE, test_subset=self.test_subset)
        _validate.choice(options=METHODS, method=self.method)
        if self.target_epsilon is not None:
            _validate.finite_positive(target_epsilon=self.target_epsilon)
        if not isinstance(self.private, bool):
            raise PlanError("private", self.private, "True or False")
        if not isinstance(self.download, bool):
            raise PlanError("download", self.download, "True or False")
        _validate.integer(minimum=1, eval_batch_size=self.eval_batch_size)

    def to_dict(self) -> dict[str, Any]:
        """Return the options as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunOptions:
        """Build options from :meth:`to_dict` output.

        Raises:
            PlanError: for unknown keys or invalid values.
        """
        known = {field.name for field in dataclasses.fields(cls)}
        for key in data:
            if key not in known:
                raise PlanError(key, data[key], "not present: it is not a run option")
        return cls(**data)


def training_set_size(options: RunOptions) -> int:
    """Return the number of training examples a run samples from (its plan's dataset_size).

    That is ``options.subset`` when set, else the 60,000 MNIST training examples less the
    ``validation_size`` held out.

    Example:
        >>> training_set_size(RunOptions())
        55000
        >>> training_set_size(RunOptions(subset=1000, validation_size=200))
        1000
    """
    if options.subset is not None:
        return options.subset
    return MNIST_TRAIN_SIZE - options.validation_size


def _absolute_data_dir(data_dir: object) -> str | None:
    """Return ``data_dir`` (or ``$DPPLAN_DATA_DIR``) as an absolute path; None for the cache.

    Raises:
        PlanError: ``data_dir`` is not None, a non-empty str or an os.PathLike.
    """
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV) or None
        if data_dir is None:
            return None
    if not isinstance(data_dir, (str, os.PathLike)) or isinstance(data_dir, bytes):
        raise PlanError("data_dir", data_dir, "a folder path (str or os.PathLike) or None")
    text = os.fspath(data_dir)
    if not text:
        raise PlanError("data_dir", data_dir, "a non-empty folder path or None",
                        f"Pass None to use {DATA_DIR_ENV} or the per-user cache folder.")
    return os.path.abspath(os.path.expanduser(text))


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class _Data:
    """The tensors one run uses: its training part, validation part and test part."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def _split_indices(options: RunOptions) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (training, validation) indices into the 60,000 MNIST training examples.

    The validation examples depend only on ``split_seed`` and ``validation_size``, never on
    ``subset`` or the run's seed, so one run's training examples are never another's
    validation examples; the training examples are the first ``training_set_size`` of the
    rest, in MNIST order.
    """
    everything = torch.arange(MNIST_TRAIN_SIZE)
    (train_index, _), (validation_index, _) = split_validation(
        everything, everything, validation_size=options.validation_size, seed=options.split_seed,
    )
    return train_index[:training_set_size(options)], validation_index


def _load_data(options: RunOptions, device: torch.device) -> _Data:
    """Load, verify and split MNIST for a run (before anything is stored).

    Raises:
        DataError: MNIST is missing or corrupt, cannot be downloaded, or the folder the
            options name does not exist (it is not created).
    """
    data = load_mnist(options.data_dir, download=options.download, device=device,
                      create_folder=options.data_dir is None)
    train_index, validation_index = _split_indices(options)
    train_index, validation_index = train_index.to(device), validation_index.to(device)
    test_count = options.test_subset or MNIST_TEST_SIZE
    return _Data(
        train_x=data.train_images[train_index], train_y=data.train_labels[train_index],
        val_x=data.train_images[validation_index], val_y=data.train_labels[validation_index],
        test_x=data.test_images[:test_count], test_y=data.test_labels[:test_count],
    )


def resolve_device(device: str) -> torch.device:
    """Return the torch device for ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Raises:
        PlanError: if ``"cuda"`` is asked for and CUDA is not available.
    """
    _validate.choice(options=DEVICES, device=device)
    if device == "cuda" and not torch.cuda.is_available():
        raise PlanError("device", device, "'cpu' or 'auto' on this machine",
                        "CUDA is not available here (torch.cuda.is_available() is False).")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def _versions() -> dict[str, str]:
    found = {}
    for name in ("dpplan", "torch", "opacus", "dp-accounting", "prv-accountant"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


@torch.no_grad()
def _evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
              batch_size: int) -> tuple[float, float]:
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(images), batch_size):
        logits = model(images[start:start + batch_size])
        target = labels[start:start + batch_size]
        loss_sum += float(F.cross_entropy(logits, target, reduction="sum"))
        correct += int((logits.argmax(dim=1) == target).sum())
    return loss_sum / len(images), correct / len(images)


def _atomic_save(state: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    with open(temporary, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _checkpoint_problem(state: object, run: RunRecord, last: int) -> str | None:
    """Return why a loaded checkpoint does not fit the stored run, or None if it does."""
    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}, not a dpplan checkpoint"
    if state.get("format") != CHECKPOINT_FORMAT:
        return (f"it has format {state.get('format')!r}, this dpplan reads format "
                f"{CHECKPOINT_FORMAT} (it was written by an older dpplan, or not by dpplan)")
    if state.get("run_id") != run.id:
        return f"it belongs to run {state.get('run_id')!r}, not run {run.id}"
    if state.get("plan_id") != _plan_id(run.plan):
        return "it was written for another plan than the run's"
    epoch, steps = state.get("epoch"), state.get("steps")
    if not _is_int(epoch) or not 1 <= epoch <= run.plan.epochs:
        return f"its epoch {epoch!r} is not in [1, {run.plan.epochs}]"
    # The loop records an epoch, then writes its checkpoint: a process killed in between
    # leaves the checkpoint one epoch behind; that epoch is then redone from the same state.
    if not (epoch == last or epoch == last - 1):
        return (f"it is at epoch {epoch}, but the store has {last} recorded epoch(s); a "
                f"checkpoint must be at the last recorded epoch ({last}) or the one before")
    if not _is_int(steps) or steps != run.plan.steps_after(epoch):
        return (f"its step count {steps!r} is not the plan's {run.plan.steps_after(epoch)} "
                f"steps after epoch {epoch}")
    history = state.get("accountant_history")
    if run.private:
        if not isinstance(history, list) or not all(
            isinstance(item, list) and len(item) == 3 and _is_int(item[2])
            and all(isinstance(x, float) and math.isfinite(x) for x in item[:2])
            for item in history
        ):
            return "its Opacus accountant history is not a list of [σ, q, steps]"
        if sum(item[2] for item in history) != steps or any(
            not math.isclose(item[0], run.plan.noise_multiplier, rel_tol=1e-12)
            or not math.isclose(item[1], run.plan.sample_rate, rel_tol=1e-12)
            for item in history
        ):
            return "its Opacus accountant history does not match the plan's σ, q and steps"
    elif history is not None:
        return "it carries an accountant history, but the run is not private"
    for key in ("torch_rng", "generator", "noise_generator"):
        value = state.get(key)
        if not isinstance(value, torch.Tensor) or value.dtype != torch.uint8:
            return f"its {key} is not a random-number state (a uint8 tensor)"
    for key in ("model", "optimizer", "controller"):
        if not isinstance(state.get(key), dict):
            return f"its {key} state is missing"
    return None


def _read_checkpoint(store: RunStore, run: RunRecord) -> dict[str, Any] | None:
    """Load a run's checkpoint and check it against the store before anything changes.

    The file is read with ``torch.load(weights_only=True)``, so it cannot run code. Returns
    None when there is no checkpoint and no recorded epoch (the run starts afresh).

    Raises:
        StoreError: if the checkpoint is missing while epochs are recorded, cannot be read,
            or does not match the stored run (run id, plan, epoch, steps, accountant).
    """
    path = store.checkpoint_path(run.id)
    last = run.records[-1].epoch if run.records else 0
    kept = (f"Nothing was changed; the run's {last} recorded epoch(s) are kept in "
            f"{store.path}.")
    if not path.exists() and not path.is_symlink():
        if last == 0:
            return None
        raise StoreError(
            f"run {run.id}'s checkpoint {path} is missing, though {last} epoch(s) of the run "
            f"are recorded, so it cannot continue. Restore the file, or start a new run. {kept}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        text = str(exc).strip()
        first = text.splitlines()[0][:300] if text else ""
        raise StoreError(
            f"run {run.id}'s checkpoint {path} cannot be read ({type(exc).__name__}: {first}). "
            "It is damaged, truncated, or was not written by dpplan; it was loaded with "
            "weights_only=True, so nothing in it ran. Move it aside and start a new run, or "
            f"restore it from a backup. {kept}") from exc
    problem = _checkpoint_problem(state, run, last)
    if problem is not None:
        raise StoreError(
            f"run {run.id}'s checkpoint {path} does not match the run store: {problem}. Move "
            f"it aside and start a new run, or restore the right file. {kept}")
    state["path"] = str(path)
    return state


class _Run:
    """One training run's state: model, optimizer, accountants, sampler, counters."""

    def __init__(self, plan: TrainingPlan, schedule: ScheduleSpec, options: RunOptions,
                 device: torch.device, data: _Data | None = None) -> None:
        self.plan, self.schedule, self.options, self.device = plan, schedule, options, device
        torch.manual_seed(options.seed)
        if data is None:
            data = _load_data(options, device)
        self.train_x, self.train_y = data.train_x, data.train_y
        self.val_x, self.val_y = data.val_x, data.val_y
        self.test_x, self.test_y = data.test_x, data.test_y
        if plan.dataset_size != len(self.train_x):
            raise PlanError(
                "dataset_size", plan.dataset_size,
                f"{len(self.train_x)}, the number of training examples after holding out "
                f"validation_size={options.validation_size}",
                "dpplan derives dataset_size from the data; build the plan with "
                "dataset_size=training_set_size(options).",
            )
        model = make_model(options.model, activation=options.activation).to(device)
        optimizer = make_optimizer(schedule, model.parameters())
        self.opacus_accountant = None
        self.steps = 0
        # Sampling and noise come from their own generators, seeded with fresh entropy unless
        # the run is explicitly reproducible (then from the public seed: no guarantee).
        noise_seed, sample_seed = (
            (options.seed + 2, options.seed + 1) if options.reproducible
            else (secrets.randbits(63), secrets.randbits(63))
        )
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(sample_seed)
        self.noise_generator = torch.Generator(device=device)
        self.noise_generator.manual_seed(noise_seed)
        if options.private:
            from opacus import GradSampleModule
            from opacus.accountants import RDPAccountant
            from opacus.optimizers import DPOptimizer

            model = GradSampleModule(model, loss_reduction="mean")
            optimizer = DPOptimizer(
                optimizer,
                noise_multiplier=plan.noise_multiplier,
                max_grad_norm=plan.max_grad_norm,
                expected_batch_size=plan.batch_size,
                loss_reduction="mean",
                generator=self.noise_generator,
            )
            self.opacus_accountant = RDPAccountant()
            optimizer.attach_step_hook(
                self.opacus_accountant.get_optimizer_hook_fn(sample_rate=plan.sample_rate)
            )
        self.model, self.optimizer = model, optimizer
        self.controller = make_scheduler(schedule, optimizer, total_steps=plan.total_steps)

    @property
    def hook_steps(self) -> int:
        """Noisy steps counted by the optimizer hook (Opacus' accountant history)."""
        if self.opacus_accountant is None:
            return self.steps
        return sum(count for _, _, count in self.opacus_accountant.history)

    def _bare_model(self) -> torch.nn.Module:
        return getattr(self.model, "_module", self.model)

    def _bare_optimizer(self) -> torch.optim.Optimizer:
        return getattr(self.optimizer, "original_optimizer", self.optimizer)

    def state(self, epoch: int, run_id: int | None = None) -> dict[str, Any]:
        """Return the checkpoint after ``epoch``: only tensors and plain Python values, so
        ``torch.load(weights_only=True)`` reads it (see :func:`_read_checkpoint`)."""
        history = None
        if self.opacus_accountant is not None:
            history = [[float(sigma), float(rate), int(count)]
                       for sigma, rate, count in self.opacus_accountant.history]
        return {
            "format": CHECKPOINT_FORMAT,
            "run_id": run_id,
            "plan_id": _plan_id(self.plan),
            "epoch": int(epoch),
            "steps": int(self.steps),
            "model": self._bare_model().state_dict(),
            "optimizer": self._bare_optimizer().state_dict(),
            "controller": self.controller.state_dict(),
            "accountant_history": history,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": (list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available()
                         else None),
            "generator": self.generator.get_state(),
            "noise_generator": self.noise_generator.get_state(),
        }

    def load(self, state: dict[str, Any]) -> int:
        """Restore a checkpoint checked by :func:`_read_checkpoint`; return its epoch.

        Raises:
            StoreError: if the checkpoint's tensors do not fit this run's model or optimizer.
        """
        try:
            self._bare_model().load_state_dict(state["model"])
            self._bare_optimizer().load_state_dict(state["optimizer"])
            self.controller.load_state_dict(state["controller"])
            if self.opacus_accountant is not None:
                self.opacus_accountant.history = [
                    (float(sigma), float(rate), int(count))
                    for sigma, rate, count in state["accountant_history"]]
            torch.set_rng_state(state["torch_rng"])
            if state["cuda_rng"] is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda_rng"])
            self.generator.set_state(state["generator"])
            self.noise_generator.set_state(state["noise_generator"])
        except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise StoreError(
                f"checkpoint {state.get('path', '(unnamed)')} does not fit this run's model, "
                f"optimizer or random states ({type(exc).__name__}: {exc}). Move it aside and "
                "start a new run; the recorded epochs are kept.") from exc
        self.steps = int(state["steps"])
        return int(state["epoch"])

    def train_epoch(self, should_stop: Callable[[], bool] | None = None,
                    on_step: Callable[[int, int], None] | None = None) -> tuple[float, float]:
        """Run exactly ``plan.steps_per_epoch`` Poisson-sampled steps; return (loss, seconds).

        ``should_stop`` is polled every few seconds; when it returns True the epoch is
        abandoned (raise :class:`_StopRequested`) and the run continues later from the last
        checkpoint, so a partial epoch is never recorded. ``on_step(k, steps_per_epoch)`` is
        called after step ``k`` at most once every ``PROGRESS_SECONDS`` (never after the
        last step: the epoch's record follows).
        """
        self.model.train()
        count = len(self.train_x)
        rate = self.plan.sample_rate
        steps_per_epoch = self.plan.steps_per_epoch
        loss_sum, loss_batches = 0.0, 0
        started = last_poll = last_report = time.perf_counter()
        for step in range(1, steps_per_epoch + 1):
            if should_stop is not None and time.perf_counter() - last_poll > STOP_POLL_SECONDS:
                last_poll = time.perf_counter()
                if should_stop():
                    raise _StopRequested
            # float64: float32 uniforms are multiples of 2^-24, which would sample slightly
            # above the accounted rate.
            mask = torch.rand(count, generator=self.generator, device=self.device,
                              dtype=torch.float64) < rate
            index = mask.nonzero().squeeze(1)
            images, labels = self.train_x[index], self.train_y[index]
            self.optimizer.zero_grad(set_to_none=True)
            logits = self.model(images)
            if len(index):
                loss = F.cross_entropy(logits, labels)
                loss_sum += float(loss.detach())
                loss_batches += 1
            else:  # an empty Poisson batch is still a noisy step
                loss = logits.sum() * 0.0
            loss.backward()
            self.optimizer.step()
            self.controller.after_step()
            self.steps += 1
            if (on_step is not None and step < steps_per_epoch
                    and time.perf_counter() - last_report >= PROGRESS_SECONDS):
                last_report = time.perf_counter()
                on_step(step, steps_per_epoch)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - started
        return (loss_sum / loss_batches if loss_batches else math.nan), seconds


def train(
    plan: TrainingPlan,
    schedule: ScheduleSpec,
    options: RunOptions | None = None,
    *,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    store: RunStore | None = None,
    group_id: str | None = None,
    on_start: Callable[[RunRecord], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> RunRecord:
    """Train ``plan`` with DP-SGD (Opacus) on MNIST and store every epoch.

    Input is checked and MNIST is loaded and verified **before** the run is stored, so a
    bad argument or a bad data folder leaves no run behind.

    Args:
        plan: the plan; ``plan.dataset_size`` must equal ``training_set_size(options)``.
        schedule: a learning-rate schedule spec (``OneCycle``, ``Plateau``, ``Constant``).
        options: run options; default ``RunOptions()``.
        on_epoch: called with each :class:`EpochRecord` after it is stored.
        store: the run store; default ``RunStore()`` (``$DPPLAN_HOME``).
        group_id: tag shared by the runs of one comparison.
        on_start: called with the stored :class:`RunRecord` (status ``running``, no
            epochs) as soon as the run is created, before its first step.
        on_step: called as ``on_step(k, steps_per_epoch)`` within each epoch, at most once
            every ``PROGRESS_SECONDS`` seconds.

    Returns:
        The stored :class:`RunRecord`, with status ``finished`` (or ``stopped``).

    Raises:
        PlanError: for invalid plan, schedule or options, or a plan whose dataset_size is
            not ``training_set_size(options)`` (nothing is stored).
        DataError: if MNIST is missing or corrupt, cannot be downloaded, or a named data
            folder does not exist (nothing is stored).
    """
    options = options or RunOptions()
    if not isinstance(plan, TrainingPlan):
        raise PlanError("plan", plan, "a dpplan.TrainingPlan")
    if not isinstance(options, RunOptions):
        raise PlanError("options", options, "a RunOptions")
    schedule = schedule_from_dict(schedule.to_dict()) if hasattr(schedule, "to_dict") else (
        schedule_from_dict(schedule))
    if plan.dataset_size != training_set_size(options):
        raise PlanError(
            "dataset_size", plan.dataset_size,
            f"{training_set_size(options)}, the number of training examples of these options",
            "dpplan derives dataset_size from the data; build the plan with "
            "dataset_size=training_set_size(options).",
        )
    device = resolve_device(options.device)
    store = store or RunStore()
    data = _load_data(options, device)
    run_id = store.create_run(
        plan=plan, schedule=schedule.to_dict(), options=options.to_dict(), device=str(device),
        seed=options.seed, private=options.private, versions=_versions(), group_id=group_id,
    )
    if on_start is not None:
        on_start(store.get_run(run_id))
    return _execute(run_id, plan, schedule, options, device, store, on_epoch, start_state=None,
                    data=data, on_step=on_step)


def resume(run_id: int, *, store: RunStore | None = None,
           on_epoch: Callable[[EpochRecord], None] | None = None,
           data_dir: str | os.PathLike[str] | None = None) -> RunRecord:
    """Continue an interrupted (or stopped) run from its last checkpoint.

    The model, optimizer, schedule, Opacus accountant and every random-number state are
    restored, so accounting continues exactly where the checkpoint left it. ``data_dir``
    reads MNIST from another folder than the run's (the checksums make it the same data).

    The checkpoint is read with ``weights_only=True`` and checked against the store (run id,
    plan, epoch, steps, accountant) before anything changes; no stored record is ever
    deleted because of it. A run on another host whose heartbeat is stale (``interrupted``)
    is taken over.

    Raises:
        PlanError: if the run does not exist, is still running or finished, or stopped
            before its first epoch finished.
        StoreError: if the checkpoint is missing (while epochs are recorded), unreadable, or
            does not match the stored run; nothing is changed.
    """
    store = store or RunStore()
    run = store.get_run(run_id)
    if run.status not in ("interrupted", "stopped", "failed"):
        raise PlanError("run_id", run_id, "an interrupted, stopped or failed run",
                        f"Run {run_id} is {run.status}.")
    state = _read_checkpoint(store, run)
    if state is None:
        raise PlanError("run_id", run_id, "a run with a checkpoint",
                        f"It stopped before its first epoch finished (no epoch is recorded, "
                        f"no {store.checkpoint_path(run_id)}); start a new run.")
    options = RunOptions.from_dict(run.options)
    if data_dir is not None:
        options = dataclasses.replace(options, data_dir=data_dir)
    device = resolve_device(options.device)
    store.claim(run_id)
    return _execute(run_id, run.plan, schedule_from_dict(run.schedule), options, device,
                    store, on_epoch, start_state=state)


def run_queued(run_id: int, *, store: RunStore,
               on_epoch: Callable[[EpochRecord], None] | None = None) -> RunRecord:
    """Execute a run that a worker claimed from the queue (fresh, or resumed from checkpoint).

    Raises:
        PlanError, DataError: as :func:`train` (the run is stored as failed).
        StoreError: as :func:`resume`, for its checkpoint (the run is stored as failed).
    """
    run = store.get_run(run_id)
    try:
        options = RunOptions.from_dict(run.options)
        schedule = schedule_from_dict(run.schedule)
        device = resolve_device(options.device)
        state = _read_checkpoint(store, run)
    except Exception as exc:
        store.finish_run(run_id, status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    return _execute(run_id, run.plan, schedule, options, device, store, on_epoch,
                    start_state=state)


def queue_run(plan: TrainingPlan, schedule: ScheduleSpec, options: RunOptions, *,
              store: RunStore, group_id: str | None = None) -> int:
    """Validate and queue a run for a background worker; return its id.

    Raises:
        PlanError: for an invalid plan, schedule or options (nothing is stored).
        DataError: the data folder the options name does not exist (nothing is stored; the
            files themselves are verified when the worker loads them).
    """
    if not isinstance(plan, TrainingPlan):
        raise PlanError("plan", plan, "a dpplan.TrainingPlan")
    if plan.dataset_size != training_set_size(options):
        raise PlanError(
            "dataset_size", plan.dataset_size,
            f"{training_set_size(options)}, the number of training examples of these options",
            "dpplan derives dataset_size from the data.",
        )
    schedule = schedule_from_dict(schedule.to_dict())
    device = resolve_device(options.device)
    if options.data_dir is not None and not os.path.isdir(options.data_dir):
        raise DataError(_no_folder_message(Path(options.data_dir)))
    return store.create_run(
        plan=plan, schedule=schedule.to_dict(), options=options.to_dict(), device=str(device),
        seed=options.seed, private=options.private, versions=_versions(), group_id=group_id,
        status="queued",
    )


def _execute(run_id, plan, schedule, options, device, store, on_epoch, start_state, *,
             data: _Data | None = None,
             on_step: Callable[[int, int], None] | None = None) -> RunRecord:
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Full backward hook.*")
            warnings.filterwarnings("ignore", message=".*secure_mode.*")
            warnings.filterwarnings("ignore", message=".*Optimal order is the.*")
            _loop(run_id, plan, schedule, options, device, store, on_epoch, start_state,
                  data=data, on_step=on_step)
    except KeyboardInterrupt:
        store.finish_run(run_id, status="stopped", stop_reason="interrupted by the user")
        raise
    except Exception as exc:
        store.finish_run(run_id, status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    return store.get_run(run_id)


def _loop(run_id, plan, schedule, options, device, store, on_epoch, start_state, *,
          data: _Data | None = None,
          on_step: Callable[[int, int], None] | None = None) -> None:
    run = _Run(plan, schedule, options, device, data)
    first_epoch = 1
    if start_state is not None:
        first_epoch = run.load(start_state) + 1
    if options.private:
        curve = epsilon_curve(plan, method=options.method).epsilons
        rdp_curve = epsilon_curve(plan, method="rdp").epsilons
    run_warnings: list[str] = list(store.get_run(run_id).warnings)
    if options.private and options.reproducible:
        message = ("reproducible=True: sampling and noise were derived from the public seed, "
                   "so this run has no privacy guarantee against anyone who knows the seed "
                   "(for experiments only)")
        if message not in run_warnings:
            run_warnings.append(message)
    for epoch in range(first_epoch, plan.epochs + 1):
        if options.private and options.target_epsilon is not None and (
            curve[epoch - 1] > options.target_epsilon
        ):
            store.finish_run(
                run_id, status="finished",
                stop_reason=f"stopped before epoch {epoch}: its ε={curve[epoch - 1]:.4g} would "
                f"exceed target_epsilon={options.target_epsilon:g}",
            )
            return
        if store.stop_requested(run_id):
            store.finish_run(run_id, status="stopped", stop_reason="stop requested")
            return
        try:
            train_loss, seconds = run.train_epoch(lambda: store.stop_requested(run_id), on_step)
        except _StopRequested:
            store.finish_run(run_id, status="stopped",
                             stop_reason=f"stop requested during epoch {epoch}")
            return
        steps = run.hook_steps
        if steps != plan.steps_after(epoch):
            raise RuntimeError(
                f"the optimizer took {steps} steps after epoch {epoch}, the plan says "
                f"{plan.steps_after(epoch)}; accounting would not match training"
            )
        validation_loss, validation_accuracy = _evaluate(
            run.model, run.val_x, run.val_y, options.eval_batch_size)
        _, test_accuracy = _evaluate(run.model, run.test_x, run.test_y, options.eval_batch_size)
        run.controller.after_epoch(validation_loss)
        if options.private:
            epsilon, epsilon_rdp = curve[epoch - 1], rdp_curve[epoch - 1]
            epsilon_opacus = float(run.opacus_accountant.get_epsilon(plan.delta))
            if not math.isclose(epsilon_rdp, epsilon_opacus, rel_tol=EPSILON_AGREEMENT_RTOL):
                message = (f"epoch {epoch}: dpplan RDP ε={epsilon_rdp:.4g} and Opacus RDP "
                           f"ε={epsilon_opacus:.4g} disagree by more than "
                           f"{EPSILON_AGREEMENT_RTOL:.0%}")
                if message not in run_warnings:
                    run_warnings.append(message)
        else:
            epsilon = epsilon_rdp = epsilon_opacus = math.inf
        record = EpochRecord(
            epoch=epoch, steps=steps, epsilon=epsilon, epsilon_rdp=epsilon_rdp,
            epsilon_opacus=epsilon_opacus, train_loss=train_loss,
            validation_loss=validation_loss, validation_accuracy=validation_accuracy,
            test_accuracy=test_accuracy, lr=run.controller.current_lr(), seconds=seconds,
        )
        store.record_epoch(run_id, record, tuple(run_warnings))
        _atomic_save(run.state(epoch, run_id), store.checkpoint_path(run_id))
        if on_epoch is not None:
            on_epoch(record)
    store.finish_run(run_id, status="finished")
