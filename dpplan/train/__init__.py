"""DP-SGD training on MNIST or the user's own task: the only part of dpplan that imports torch.

Layers, bottom up:

* :mod:`dpplan.train.specs`: schedules and :class:`RunOptions`, torch-free typed specs;
* :mod:`dpplan.train.tasks`: :class:`Task` (the user's model, data and loss), the built-in
  MNIST task and :func:`load_task` (``"module:function"``);
* :mod:`dpplan.train.engines`: the per-step work (``fused`` or ``opacus``);
* :mod:`dpplan.train.core`: :class:`Trainer` and :func:`train`, storage-free;
* :mod:`dpplan.train.runs`: :func:`start_run`, :func:`resume` and the queue, which store
  runs in SQLite with checkpoints.

>>> from dpplan.train import RunOptions, training_set_size
>>> training_set_size(RunOptions(subset=1000, validation_size=200))
1000
"""

from typing import TYPE_CHECKING

from dpplan._lazy import lazy_names
from dpplan.records import EpochRecord
from dpplan.store import RunRecord, RunStore
from dpplan.train.specs import ENGINES, Constant, OneCycle, Plateau, RunOptions, training_set_size

if TYPE_CHECKING:
    from dpplan.train.core import Trainer, TrainingResult, train
    from dpplan.train.runs import resume, start_run
    from dpplan.train.tasks import Task, load_task, mnist_task

#: Names that import torch; they load on first use, so the specs above (and the store, the
#: app and the CLI that use them) stay torch-free.
__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "dpplan.train.core": ("Trainer", "TrainingResult", "train"),
        "dpplan.train.runs": ("resume", "start_run"),
        "dpplan.train.tasks": ("Task", "load_task", "mnist_task"),
    },
)


def cuda_available() -> bool:
    """Return whether torch is installed and sees a CUDA GPU.

    The first call imports torch (seconds); without torch the answer is False.
    """
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


__all__ = [
    "ENGINES",
    "Constant",
    "EpochRecord",
    "OneCycle",
    "Plateau",
    "RunOptions",
    "RunRecord",
    "RunStore",
    "Task",
    "Trainer",
    "TrainingResult",
    "cuda_available",
    "load_task",
    "mnist_task",
    "resume",
    "start_run",
    "train",
    "training_set_size",
]
