"""Tasks: the user's model, data and loss, trained with dpplan's plan, sampler, engines and store.

A :class:`Task` is what Opacus' ``make_private`` taught everyone to bring: a model (a callable
returning a fresh ``nn.Module``), data (training, validation and test sets, as ``(inputs,
targets)`` tensors or torch ``Dataset`` objects) and a loss. dpplan brings the rest: the
plan's ``dataset_size`` is the task's training set size, batches are Poisson-sampled from it,
each step is a DP-SGD step of the chosen engine on the task's loss, and every epoch records ε,
the losses and (for classification) the accuracies.

MNIST with the seed network or the tempered CNN is the built-in task (:func:`mnist_task`),
built on this same seam from :class:`~dpplan.train.specs.RunOptions`; runs without a task
train it exactly as before.

:func:`load_task` imports ``"module:function"`` and calls the function for a task, which is
how the CLI's ``--task`` and sweep workers find a user's task.

Example:
    >>> import torch
    >>> from torch import nn
    >>> x, y = torch.randn(100, 4), torch.randint(0, 2, (100,))
    >>> task = Task(name="toy", train=(x[:60], y[:60]), validation=(x[60:80], y[60:80]),
    ...             test=(x[80:], y[80:]), model=lambda: nn.Linear(4, 2))
    >>> task.dataset_size, task.classification
    (60, True)
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import math
import re
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dpplan.errors import PlanError

__all__ = [
    "MNIST_TASKS",
    "Task",
    "check_model",
    "describe_fingerprint",
    "load_task",
    "mnist_task",
    "task_name_for",
]

#: The built-in tasks' names: MNIST with each network of :mod:`dpplan.train.models`.
MNIST_TASKS = ("mnist-seed", "mnist-tempered-relu", "mnist-tempered-tanh")
#: Longest task name accepted.
MAX_NAME_LENGTH = 200
_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Metric = Callable[[torch.Tensor, torch.Tensor], Any]


def _as_pair(field: str, value: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(inputs, targets)`` tensors from a pair of tensors or a torch Dataset."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        inputs, targets = value
        if not isinstance(inputs, torch.Tensor) or not isinstance(targets, torch.Tensor):
            raise PlanError(
                field,
                f"({type(inputs).__name__}, {type(targets).__name__})",
                "a pair of torch tensors (inputs, targets) or a torch Dataset",
                "Convert numpy arrays with torch.as_tensor.",
            )
    elif isinstance(value, torch.utils.data.Dataset):
        try:
            count = len(value)  # type: ignore[arg-type]
        except TypeError:
            raise PlanError(field, value, "a Dataset with a length (a map-style Dataset)") from None
        if count == 0:
            raise PlanError(field, "an empty Dataset", "at least one example")
        items = [value[i] for i in range(count)]
        if not all(isinstance(item, (tuple, list)) and len(item) == 2 for item in items):
            raise PlanError(field, value, "a Dataset whose items are (input, target) pairs")
        inputs = torch.stack([torch.as_tensor(item[0]) for item in items])
        targets = torch.stack([torch.as_tensor(item[1]) for item in items])
    else:
        raise PlanError(
            field, type(value).__name__, "a pair of tensors (inputs, targets) or a torch Dataset"
        )
    if inputs.dim() == 0 or targets.dim() == 0:
        raise PlanError(field, "a scalar tensor", "tensors whose first dimension is the examples")
    if len(inputs) != len(targets):
        raise PlanError(
            field,
            f"{len(inputs)} inputs and {len(targets)} targets",
            "as many targets as inputs",
        )
    if len(inputs) == 0:
        raise PlanError(field, "no examples", "at least one example")
    return inputs, targets


def _integer(tensor: torch.Tensor) -> bool:
    return not (tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool)


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Task:
    """A training task: a model factory, data and a loss (see the module docstring).

    Attributes:
        name: a short name (recorded with every run, shown in reports), 1-200 characters.
        train: the training set: ``(inputs, targets)`` tensors or a map-style torch
            ``Dataset`` of ``(input, target)`` pairs (stacked into tensors). Its size is the
            plan's ``dataset_size``; it is what the privacy guarantee protects.
        validation: the validation set, same forms (public, as in dpplan's MNIST runs: used
            for plateau scheduling and learning-rate selection, not protected).
        test: the test set, same forms.
        model: a callable returning a freshly initialised ``nn.Module`` (called once per run,
            under the run's seed).
        loss: ``loss(outputs, targets)``, the **mean** loss over a batch (a scalar tensor,
            like ``F.cross_entropy`` or ``F.mse_loss`` with the default reduction). ``None``
            means cross-entropy. Both engines take per-example gradients of it.
        metric: optional ``metric(outputs, targets)`` over a whole evaluation set, a number
            (recorded per epoch for the validation and test sets under ``metric_name``).
        metric_name: the metric's name in records (default: the function's ``__name__``).
        classification: whether accuracy (argmax of the outputs against integer targets) is
            reported. ``None`` (default): True when the training targets are integers.

    Raises:
        PlanError: naming the field, for a wrong type, an empty or mismatched set, or a
            classification task with non-integer targets.
    """

    name: str
    train: Any
    validation: Any
    test: Any
    model: Callable[[], nn.Module]
    loss: Loss | None = None
    metric: Metric | None = None
    metric_name: str | None = None
    classification: bool | None = None

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
            raise PlanError("name", name, f"a non-empty string of at most {MAX_NAME_LENGTH} chars")
        if any(c in name for c in "\n\r\t"):
            raise PlanError("name", name, "a one-line name")
        for field in ("train", "validation", "test"):
            object.__setattr__(self, field, _as_pair(field, getattr(self, field)))
        shapes = {f: tuple(getattr(self, f)[0].shape[1:]) for f in ("train", "validation", "test")}
        for field in ("validation", "test"):
            if shapes[field] != shapes["train"]:
                raise PlanError(
                    field,
                    f"inputs of shape {shapes[field]}",
                    f"the training inputs' shape {shapes['train']}",
                )
        if not callable(self.model):
            raise PlanError(
                "model", self.model, "a callable returning a fresh torch.nn.Module (e.g. a class)"
            )
        for field in ("loss", "metric"):
            value = getattr(self, field)
            if value is not None and not callable(value):
                raise PlanError(field, value, "a function (outputs, targets) -> value, or None")
        metric_name = self.metric_name
        if self.metric is not None and metric_name is None:
            metric_name = getattr(self.metric, "__name__", "metric")
            if not metric_name.isidentifier():
                metric_name = "metric"
        if metric_name is not None and (
            not isinstance(metric_name, str) or not metric_name.isidentifier()
        ):
            raise PlanError("metric_name", metric_name, "a name like 'mae' (letters, _, digits)")
        object.__setattr__(self, "metric_name", metric_name)
        targets = self.train[1]
        classification = self.classification
        if classification is None:
            classification = _integer(targets)
        elif not isinstance(classification, bool):
            raise PlanError("classification", classification, "True, False or None")
        if classification and not _integer(targets):
            raise PlanError(
                "classification",
                True,
                f"integer class targets (the training targets are {targets.dtype})",
                "Set classification=False for a regression target.",
            )
        if self.loss is None and not _integer(targets):
            raise PlanError(
                "loss",
                None,
                f"a loss for {targets.dtype} targets (the default is cross-entropy, which "
                "takes integer classes)",
                "Pass loss=torch.nn.functional.mse_loss for a regression target.",
            )
        object.__setattr__(self, "classification", classification)
        object.__setattr__(self, "_fingerprint", None)
        object.__setattr__(self, "_spec", None)

    @property
    def spec(self) -> str | None:
        """The ``"module:function"`` this task was loaded from by :func:`load_task` (so a
        resumed run, a background worker or a sweep worker can import it again), else None."""
        return self._spec  # type: ignore[attr-defined]

    @property
    def dataset_size(self) -> int:
        """Training examples: the plan's ``dataset_size``."""
        return len(self.train[0])

    @property
    def loss_function(self) -> Loss:
        """The loss the engines take gradients of (cross-entropy when ``loss`` is None)."""
        return F.cross_entropy if self.loss is None else self.loss

    def plan(self, **fields: Any):
        """Return a :class:`~dpplan.plan.TrainingPlan` with this task's ``dataset_size``.

        Raises:
            PlanError: for invalid plan fields, or a ``dataset_size`` given that disagrees.
        """
        from dpplan.plan import TrainingPlan

        if "dataset_size" in fields and fields["dataset_size"] != self.dataset_size:
            check_dataset_size(fields["dataset_size"], self)
        return TrainingPlan(**{**fields, "dataset_size": self.dataset_size})

    def fingerprint(self) -> dict[str, Any]:
        """Return what identifies the data: sizes, shapes, dtypes, and a SHA-256 of the
        training inputs and targets (their bytes, in order). Computed once per task."""
        cached = self._fingerprint  # type: ignore[attr-defined]
        if cached is not None:
            return dict(cached)
        digest = hashlib.sha256()
        for tensor in self.train:
            data = tensor.detach().to("cpu").contiguous()
            digest.update(f"{data.dtype}{tuple(data.shape)}".encode())
            if data.numel():
                digest.update(memoryview(data.reshape(-1).view(torch.uint8).numpy()))
        found = {
            "train": _describe(self.train),
            "validation": _describe(self.validation),
            "test": _describe(self.test),
            "train_sha256": digest.hexdigest(),
        }
        object.__setattr__(self, "_fingerprint", found)
        return dict(found)

    def build_model(self, seed: int) -> nn.Module:
        """Call ``model()`` with torch's global generator forked and seeded with ``seed``, so
        the initialisation is the seed's and no global random state changes.

        Raises:
            PlanError: if the callable fails or returns something that is not an nn.Module.
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = self.model()
        if not isinstance(model, nn.Module):
            raise PlanError(
                "model",
                type(model).__name__,
                "a callable returning a torch.nn.Module",
                f"task {self.name!r}'s model() returned something else.",
            )
        return model


def _describe(pair: tuple[torch.Tensor, torch.Tensor]) -> dict[str, Any]:
    inputs, targets = pair
    return {
        "examples": len(inputs),
        "input_shape": list(inputs.shape[1:]),
        "input_dtype": str(inputs.dtype).removeprefix("torch."),
        "target_shape": list(targets.shape[1:]),
        "target_dtype": str(targets.dtype).removeprefix("torch."),
    }


def check_dataset_size(dataset_size: object, task: Task) -> None:
    """Refuse a plan whose ``dataset_size`` is not ``task.dataset_size``, naming both.

    Raises:
        PlanError: field ``dataset_size``.
    """
    if dataset_size != task.dataset_size:
        raise PlanError(
            "dataset_size",
            dataset_size,
            f"{task.dataset_size}, the training examples of task {task.name!r}",
            "dpplan derives dataset_size from the task's training set; build the plan with "
            "task.plan(...) or dataset_size=task.dataset_size.",
        )


def check_model(model: nn.Module, engine: str) -> None:
    """Refuse, before training, a model DP-SGD cannot train one example at a time.

    BatchNorm (any ``_BatchNorm``) mixes the examples of a batch, so per-example gradients are
    not defined: refused for every engine, naming the layer and GroupNorm or LayerNorm. For
    the ``"opacus"`` engine, every other problem Opacus' ``ModuleValidator`` finds is refused
    too (the engine computes per-example gradients with Opacus' hooks).

    Raises:
        PlanError: field ``model``, naming the layer and the replacement.
    """
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            raise PlanError(
                "model",
                f"{type(module).__name__} at '{name or 'model'}'",
                "a model whose layers treat each example on its own",
                f"BatchNorm mixes the examples of a batch, so per-example gradients (engine "
                f"'{engine}') are not defined; use GroupNorm or LayerNorm instead "
                "(opacus.validators.ModuleValidator.fix(model) replaces it with GroupNorm).",
            )
    if engine == "opacus":
        from opacus.validators import ModuleValidator

        errors = ModuleValidator.validate(model, strict=False)
        if errors:
            raise PlanError(
                "model",
                "; ".join(str(e).strip().splitlines()[0] for e in errors[:3]),
                "layers Opacus can compute per-example gradients for",
                "Opacus' ModuleValidator refused it; ModuleValidator.fix(model) replaces "
                "what it can, or use engine='fused'.",
            )


def check_mean_loss(loss: Loss, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor):
    """Refuse a loss that does not average over the batch (e.g. ``reduction="sum"``).

    The engines clip each example's gradient of the loss of a batch of one and divide the
    noisy sum by the expected batch size, and evaluation multiplies the loss by the batch
    length, so the loss of a batch must be the mean of its examples' losses.

    Raises:
        PlanError: field ``loss``, if it is not a scalar or not the mean (to 1e-4).
    """
    count = min(len(inputs), 4)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            outputs = model(inputs[:count])
            batch = loss(outputs, targets[:count])
            single = [float(loss(outputs[i : i + 1], targets[i : i + 1])) for i in range(count)]
    except Exception as exc:
        raise PlanError(
            "loss",
            getattr(loss, "__name__", loss),
            "a function loss(outputs, targets) that works on the task's model outputs",
            f"It raised {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
        ) from exc
    finally:
        model.train(was_training)
    if not isinstance(batch, torch.Tensor) or batch.numel() != 1:
        raise PlanError(
            "loss",
            getattr(loss, "__name__", loss),
            "a function returning one number per batch (a scalar tensor)",
            "Use the default reduction='mean'.",
        )
    mean = sum(single) / count
    if math.isfinite(mean) and not math.isclose(float(batch), mean, rel_tol=1e-4, abs_tol=1e-6):
        raise PlanError(
            "loss",
            getattr(loss, "__name__", loss),
            f"the mean of the examples' losses over a batch ({mean:.6g} here; it gave "
            f"{float(batch):.6g})",
            "Use reduction='mean' (the default of torch's losses).",
        )


def describe_fingerprint(fingerprint: dict[str, Any] | None) -> str:
    """Return a fingerprint in words: examples, input shape and the hash's first 16 digits."""
    if not fingerprint:
        return "(none recorded)"
    train = fingerprint.get("train", {})
    return (
        f"{train.get('examples')} training examples of shape {tuple(train.get('input_shape', ()))}"
        f", sha256 {str(fingerprint.get('train_sha256', ''))[:16]}"
    )


def task_name_for(model: str, activation: str) -> str:
    """Return the built-in MNIST task's name for a model and activation."""
    return "mnist-seed" if model == "seed" else f"mnist-{model}-{activation}"


def mnist_task(options: Any, *, device: torch.device | None = None, data: Any = None) -> Task:
    """Return MNIST with the network ``options.model`` as a :class:`Task` (the built-in task).

    The data are :func:`dpplan.train.core.load_split` of ``options`` (or ``data``, an
    ``MnistSplit``), the loss cross-entropy, the model :func:`dpplan.train.models.make_model`.

    Raises:
        DataError: if MNIST cannot be loaded.
    """
    from dpplan.train.core import load_split, resolve_device
    from dpplan.train.models import make_model

    if data is None:
        data = load_split(options, resolve_device(options.device) if device is None else device)
    model, activation = options.model, options.activation
    return Task(
        name=task_name_for(model, activation),
        train=(data.train_x, data.train_y),
        validation=(data.val_x, data.val_y),
        test=(data.test_x, data.test_y),
        model=lambda: make_model(model, activation=activation),
        classification=True,
    )


def load_task(spec: str) -> Task:
    """Import ``"module:function"`` and return the :class:`Task` the function returns.

    The module must be importable (on ``sys.path``/``PYTHONPATH``, e.g. the current folder),
    the function callable with no arguments.

    Raises:
        PlanError: field ``task``, naming the spec: a malformed spec, an unknown module, a
            module that fails to import, an unknown function, or a function that fails or
            returns something other than a ``dpplan.train.Task``.

    Example:
        >>> load_task("no_such_module_xyz:make")
        Traceback (most recent call last):
        ...
        dpplan.errors.PlanError: task='no_such_module_xyz:make' is invalid: ...
    """
    if not isinstance(spec, str) or not _SPEC.match(spec.strip()):
        raise PlanError(
            "task",
            spec,
            "'module:function' (a module on the Python path and a function in it)",
            "For example --task my_tasks:blobs.",
        )
    module_name, function_name = spec.strip().split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise PlanError(
                "task",
                spec,
                f"a module that can be imported: no module named {exc.name!r}",
                "Put its folder on PYTHONPATH (or run from it).",
            ) from None
        raise PlanError(
            "task", spec, f"a module that imports: it needs the missing module {exc.name!r}"
        ) from exc
    except Exception as exc:
        raise PlanError(
            "task",
            spec,
            f"a module that imports without error: importing {module_name!r} raised "
            f"{type(exc).__name__}: {exc}",
        ) from exc
    function = getattr(module, function_name, None)
    if function is None or not callable(function):
        raise PlanError(
            "task",
            spec,
            f"a function of module {module_name!r}: it has "
            + ("no attribute " if function is None else "a non-callable ")
            + repr(function_name),
        )
    try:
        task = function()
    except PlanError:
        raise
    except Exception as exc:
        raise PlanError(
            "task",
            spec,
            f"a function that returns a Task: {function_name}() raised {type(exc).__name__}: {exc}",
        ) from exc
    if not isinstance(task, Task):
        raise PlanError(
            "task",
            spec,
            f"a function returning a dpplan.train.Task: {function_name}() returned a "
            f"{type(task).__name__}",
        )
    object.__setattr__(task, "_spec", spec.strip())
    return task
