"""Your own tasks for dpplan: a tabular MLP and a small CNN, each on data built in a few lines.

Each function returns a :class:`dpplan.train.Task`; dpplan brings the plan, the Poisson
sampler, the DP-SGD engine, the accounting, the store and the frontier::

    PYTHONPATH=examples dpplan train --task my_tasks:blobs --batch-size 100 ...
    PYTHONPATH=examples dpplan sweep --task my_tasks:bars --local ...

The data are synthetic (seeded), so the examples run anywhere, offline, in seconds.

* :func:`blobs`: four Gaussian blobs in 16 dimensions, a 16-32-4 MLP, cross-entropy (the
  default loss). 2,000 training, 500 validation and 500 test points.
* :func:`bars`: 16×16 grey images holding a horizontal or a vertical bar under noise, a
  two-convolution CNN with GroupNorm. 2,000 training, 500 validation and 500 test images.
* :func:`bars_batchnorm`: the same CNN with BatchNorm, which DP-SGD cannot train per example
  (dpplan refuses it and names GroupNorm).
"""

from __future__ import annotations

import torch
from torch import nn

from dpplan.train import Task

FEATURES, CLASSES = 16, 4


def _blobs(count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    centres = 2.0 * torch.eye(CLASSES, FEATURES)
    labels = torch.randint(0, CLASSES, (count,), generator=generator)
    return centres[labels] + torch.randn(count, FEATURES, generator=generator), labels


def blobs() -> Task:
    """A tabular classification task: four blobs, a small MLP."""
    generator = torch.Generator().manual_seed(0)
    return Task(
        name="blobs",
        train=_blobs(2000, generator),
        validation=_blobs(500, generator),
        test=_blobs(500, generator),
        model=lambda: nn.Sequential(nn.Linear(FEATURES, 32), nn.Tanh(), nn.Linear(32, CLASSES)),
    )


SIDE = 16


def _bars(count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Images with one bright bar, horizontal (label 0) or vertical (label 1), plus noise."""
    labels = torch.randint(0, 2, (count,), generator=generator)
    where = torch.randint(2, SIDE - 2, (count,), generator=generator)
    images = 0.8 * torch.randn(count, 1, SIDE, SIDE, generator=generator)
    for i in range(count):
        if labels[i] == 0:
            images[i, 0, where[i], :] += 1.5
        else:
            images[i, 0, :, where[i]] += 1.5
    return images, labels


def _cnn(norm: type[nn.Module] = nn.GroupNorm) -> nn.Module:
    def normalise(channels: int) -> nn.Module:
        return nn.GroupNorm(2, channels) if norm is nn.GroupNorm else nn.BatchNorm2d(channels)

    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        normalise(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        normalise(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 2),
    )


def bars() -> Task:
    """An image classification task: horizontal or vertical bars, a small CNN (GroupNorm)."""
    generator = torch.Generator().manual_seed(0)
    return Task(
        name="bars",
        train=_bars(2000, generator),
        validation=_bars(500, generator),
        test=_bars(500, generator),
        model=_cnn,
    )


def bars_batchnorm() -> Task:
    """The bars task with BatchNorm2d in the CNN: refused (use GroupNorm)."""
    task = bars()
    return Task(
        name="bars-batchnorm",
        train=task.train,
        validation=task.validation,
        test=task.test,
        model=lambda: _cnn(nn.BatchNorm2d),
    )
