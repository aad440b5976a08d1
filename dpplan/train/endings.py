"""How a training run ends early, and the libraries' warnings it silences.

Kept apart from :mod:`dpplan.train.core` (which re-exports these names) so the core stays
small; imports no torch.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Diverged", "StopRequested", "quiet_libraries"]


class StopRequested(Exception):
    """``should_stop`` returned True mid-epoch; the partial epoch is discarded."""


class Diverged(Exception):
    """Training produced a non-finite loss or weights; the epoch is discarded.

    Attributes:
        epoch: the epoch in which it happened (1-based).
        reason: what was non-finite, in words (with the step, when known).
    """

    def __init__(self, epoch: int, reason: str) -> None:
        super().__init__(f"diverged in epoch {epoch}: {reason}")
        self.epoch, self.reason = epoch, reason


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """Silence the libraries' known, harmless warnings during training."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Full backward hook.*")
        warnings.filterwarnings("ignore", message=".*secure_mode.*")
        warnings.filterwarnings("ignore", message=".*Optimal order is the.*")
        yield
