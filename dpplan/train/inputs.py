"""What a training run is given, how it is evaluated, and what it returns.

The parts of :mod:`dpplan.train.core` around the :class:`~dpplan.train.core.Trainer`: views
of a plan (:func:`as_phased`, :func:`plan_epochs`), the MNIST split and device of a run,
:func:`check_inputs`, :func:`evaluate` and :class:`TrainingResult`. ``dpplan.train.core``
re-exports every public name here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata

import torch
import torch.nn.functional as F

from dpplan import _validate
from dpplan.errors import PlanError
from dpplan.phased import PhasedPlan
from dpplan.plan import TrainingPlan
from dpplan.records import EpochRecord
from dpplan.train.data import load_mnist, split_validation
from dpplan.train.specs import (
    DEVICES,
    MNIST_TEST_SIZE,
    MNIST_TRAIN_SIZE,
    RunOptions,
    ScheduleSpec,
    schedule_from_dict,
    training_set_size,
)
from dpplan.train.tasks import Task, check_dataset_size

__all__ = [
    "MnistSplit",
    "TrainingResult",
    "as_phased",
    "check_inputs",
    "evaluate",
    "load_split",
    "plan_epochs",
    "resolve_device",
    "split_indices",
    "torch_threads",
    "versions",
]


def as_phased(plan: TrainingPlan | PhasedPlan) -> PhasedPlan:
    """Return ``plan`` as a :class:`~dpplan.phased.PhasedPlan` (one phase for a TrainingPlan)."""
    return plan if isinstance(plan, PhasedPlan) else PhasedPlan(phases=(plan,))


def plan_epochs(plan: TrainingPlan | PhasedPlan) -> int:
    """Return the epochs a run of ``plan`` records: its (possibly partial) epochs, all phases.

    Example:
        >>> one = TrainingPlan(dataset_size=100, batch_size=10, noise_multiplier=1.0,
        ...                    epochs=2, delta=1e-3)
        >>> plan_epochs(one), plan_epochs(PhasedPlan(phases=[one, one], phase_steps=[None, 15]))
        (2, 4)
    """
    if isinstance(plan, TrainingPlan):
        return plan.epochs
    return len(plan.epoch_ends())


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class MnistSplit:
    """The tensors one run uses: its training part, validation part and test part, and
    where they came from (``source``: :attr:`~dpplan.train.data.MnistData.provenance`, or
    None when unknown)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    source: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TrainingResult:
    """What :func:`train` produced: the plan, how it was trained, and every epoch's record.

    Attributes:
        plan: the plan trained (a TrainingPlan or a PhasedPlan).
        schedule: the learning-rate schedule spec.
        options: the run options.
        device: the torch device it ran on (e.g. ``"cpu"``, ``"cuda:0"``).
        engine: the step engine (``"fused"``, ``"opacus"`` or ``"non_private"``).
        status: ``"finished"`` (every epoch), ``"stopped"`` (``should_stop`` asked),
            ``"diverged"`` (a non-finite loss or weights; the epochs before it are kept) or
            ``"not_started"`` (the first epoch alone would exceed ``target_epsilon``).
        stop_reason: why it ended early, or ``None``.
        records: one :class:`~dpplan.store.EpochRecord` per finished epoch.
        warnings: warnings about the run (e.g. ε cross-check, reproducible noise).
        data_source: where the MNIST files came from (folder, and what was downloaded),
            or None when unknown.
        diverged_epoch: for status ``diverged``, the epoch it diverged in (not recorded; its
            steps count against privacy), else None.
        task: the task's name (``"mnist-seed"``, ... for the built-in MNIST tasks).
    """

    plan: TrainingPlan | PhasedPlan
    schedule: ScheduleSpec
    options: RunOptions
    device: str
    engine: str
    status: str
    stop_reason: str | None
    records: tuple[EpochRecord, ...]
    warnings: tuple[str, ...]
    data_source: str | None = None
    diverged_epoch: int | None = None
    task: str | None = None


def resolve_device(device: str) -> torch.device:
    """Return the torch device for ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Raises:
        PlanError: if ``"cuda"`` is asked for and CUDA is not available.
    """
    _validate.choice(options=DEVICES, device=device)
    if device == "cuda" and not torch.cuda.is_available():
        raise PlanError(
            "device",
            device,
            "'cpu' or 'auto' on this machine",
            "CUDA is not available here (torch.cuda.is_available() is False).",
        )
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def versions() -> dict[str, str]:
    """Return the versions of dpplan and the libraries a run depends on."""
    found = {}
    for name in ("dpplan", "torch", "opacus", "dp-accounting", "prv-accountant"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def split_indices(options: RunOptions) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (training, validation) indices into the 60,000 MNIST training examples.

    The validation examples depend only on ``split_seed`` and ``validation_size``, never on
    ``subset`` or the run's seed, so one run's training examples are never another's
    validation examples; the training examples are the first ``training_set_size`` of the
    rest, in MNIST order.
    """
    everything = torch.arange(MNIST_TRAIN_SIZE)
    (train_index, _), (validation_index, _) = split_validation(
        everything, everything, validation_size=options.validation_size, seed=options.split_seed
    )
    return train_index[: training_set_size(options)], validation_index


def load_split(options: RunOptions, device: torch.device) -> MnistSplit:
    """Load, verify and split MNIST for a run.

    Raises:
        DataError: MNIST is missing or corrupt, cannot be downloaded, or the folder the
            options name does not exist (it is not created).
    """
    data = load_mnist(
        options.data_dir,
        download=options.download,
        device=device,
        create_folder=options.data_dir is None,
    )
    train_index, validation_index = split_indices(options)
    train_index, validation_index = train_index.to(device), validation_index.to(device)
    test_count = options.test_subset or MNIST_TEST_SIZE
    return MnistSplit(
        train_x=data.train_images[train_index],
        train_y=data.train_labels[train_index],
        val_x=data.train_images[validation_index],
        val_y=data.train_labels[validation_index],
        test_x=data.test_images[:test_count],
        test_y=data.test_labels[:test_count],
        source=data.provenance,
    )


def check_inputs(
    plan: object, schedule: object, options: object, task: object = None
) -> tuple[TrainingPlan | PhasedPlan, ScheduleSpec, RunOptions]:
    """Validate what a run is asked to do, once, before anything is loaded or stored.

    Returns:
        The plan, the schedule as a spec (a mapping is read with ``schedule_from_dict``) and
        the options (``RunOptions()`` for ``None``).

    Raises:
        PlanError: for a wrong type, an invalid schedule, or a plan whose ``dataset_size``
            is not ``training_set_size(options)`` (MNIST) or the task's training set size.
    """
    options = RunOptions() if options is None else options
    if not isinstance(plan, (TrainingPlan, PhasedPlan)):
        raise PlanError("plan", plan, "a dpplan.TrainingPlan or dpplan.PhasedPlan")
    if not isinstance(options, RunOptions):
        raise PlanError("options", options, "a RunOptions")
    spec = schedule_from_dict(schedule.to_dict() if hasattr(schedule, "to_dict") else schedule)
    if task is not None:
        if not isinstance(task, Task):
            raise PlanError(
                "task", task, "a dpplan.train.Task (or None for MNIST)", "See load_task."
            )
        check_dataset_size(plan.dataset_size, task)
    elif plan.dataset_size != training_set_size(options):
        raise PlanError(
            "dataset_size",
            plan.dataset_size,
            f"{training_set_size(options)}, the number of training examples of these options",
            "dpplan derives dataset_size from the data; build the plan with "
            "dataset_size=training_set_size(options).",
        )
    return plan, spec, options


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    task: Task | None = None,
) -> tuple[float, float, float]:
    """Return (mean loss, accuracy, metric) on a set; accuracy is NaN for a task that is not
    a classification, the metric NaN without one. Without a task (or with the default loss):
    cross-entropy summed per batch, as dpplan always computed it."""
    model.eval()
    loss = None if task is None else task.loss
    classification = True if task is None else task.classification
    metric = None if task is None else task.metric
    loss_sum, correct, outputs = 0.0, 0, []
    for start in range(0, len(images), batch_size):
        logits = model(images[start : start + batch_size])
        target = labels[start : start + batch_size]
        if loss is None:
            loss_sum += float(F.cross_entropy(logits, target, reduction="sum"))
        else:  # the task's loss is a batch mean
            loss_sum += float(loss(logits, target)) * len(target)
        if classification:
            correct += int((logits.argmax(dim=1) == target).sum())
        if metric is not None:
            outputs.append(logits)
    value = math.nan
    if metric is not None:
        value = float(metric(torch.cat(outputs), labels))
    accuracy = correct / len(images) if classification else math.nan
    return loss_sum / len(images), accuracy, value


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the body with ``count`` torch CPU threads, then restore the caller's count (torch's
    thread count is process-wide: a run must not change it for the rest of the program)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
