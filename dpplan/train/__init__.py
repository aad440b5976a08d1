"""DP-SGD training on MNIST with Opacus: the only part of dpplan that imports torch.

>>> from dpplan.train import RunOptions, training_set_size
>>> training_set_size(RunOptions(subset=1000, validation_size=200))
1000
"""

from dpplan.store import EpochRecord, RunRecord, RunStore
from dpplan.train.loop import RunOptions, resume, train, training_set_size
from dpplan.train.schedules import Constant, OneCycle, Plateau

__all__ = [
    "Constant",
    "EpochRecord",
    "OneCycle",
    "Plateau",
    "RunOptions",
    "RunRecord",
    "RunStore",
    "resume",
    "train",
    "training_set_size",
]
