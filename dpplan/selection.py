"""The one rule for "best accuracy at ε ≤ x": selected on validation, reported on test.

Every surface that answers "what is the best accuracy at ε ≤ x?" (the sweep report, the
app's Frontier and Compare pages, :class:`dpplan.train.compare.ScheduleSummary`) calls
:func:`best_at`. Among the candidates whose ε is at most x it returns the one with the best
**validation** accuracy (the first on ties); the caller reports that candidate's **test**
accuracy. The test set never selects: choosing by test accuracy would report the maximum of
noisy measurements, a number biased upwards.

This module imports nothing from dpplan (it sits below the sweep, the trainer, the report
and the app) and no third-party package.

>>> a = Candidate(epsilon=1.0, validation_accuracy=0.90, test_accuracy=0.93)
>>> b = Candidate(epsilon=1.0, validation_accuracy=0.92, test_accuracy=0.91)
>>> best_at([a, b], epsilon_at_most=1.0).test_accuracy   # b wins on validation
0.91
>>> best_at([a, b], epsilon_at_most=0.5) is None
True
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any, Protocol, TypeVar

__all__ = ["Candidate", "Scored", "best_at"]


class Scored(Protocol):
    """What :func:`best_at` reads: ε (an upper bound) and the validation accuracy."""

    @property
    def epsilon(self) -> float: ...

    @property
    def validation_accuracy(self) -> float | None: ...


T = TypeVar("T", bound=Scored)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Candidate:
    """A generic candidate: ε, validation and test accuracy, and what it stands for.

    Attributes:
        epsilon: ε of the candidate (an upper bound).
        validation_accuracy: selects (None: never selected).
        test_accuracy: reported.
        label: what the candidate is (e.g. a schedule line and an epoch), for the caller.
    """

    epsilon: float
    validation_accuracy: float | None
    test_accuracy: float | None = None
    label: Any = None


def best_at(candidates: Iterable[T], *, epsilon_at_most: float) -> T | None:
    """Return the candidate with the best validation accuracy among those with ε ≤ x.

    Candidates without a finite validation accuracy (a diverged run, a missing record) or
    with a non-finite ε are never selected. On ties the first candidate wins.

    Args:
        candidates: objects with ``epsilon`` and ``validation_accuracy`` attributes.
        epsilon_at_most: the bound x.

    Returns:
        The selected candidate (report its test accuracy), or None if none fits.
    """
    best, best_score = None, -math.inf
    for candidate in candidates:
        score, epsilon = candidate.validation_accuracy, candidate.epsilon
        if score is None or not math.isfinite(score) or not math.isfinite(epsilon):
            continue
        if epsilon <= epsilon_at_most and score > best_score:
            best, best_score = candidate, score
    return best
