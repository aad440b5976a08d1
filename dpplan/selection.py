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
        validation_loss: selects with ``by="validation_loss"`` (None: never selected).
    """

    epsilon: float
    validation_accuracy: float | None
    test_accuracy: float | None = None
    label: Any = None
    validation_loss: float | None = None


#: What :func:`best_at` may select by: attribute -> +1 (higher wins) or -1 (lower wins).
SELECT_BY = {"validation_accuracy": 1.0, "validation_loss": -1.0}


def best_at(
    candidates: Iterable[T], *, epsilon_at_most: float, by: str = "validation_accuracy"
) -> T | None:
    """Return the candidate with the best validation accuracy among those with ε ≤ x.

    Candidates without a finite validation accuracy (a diverged run, a missing record) or
    with a non-finite ε are never selected. On ties the first candidate wins.

    Args:
        candidates: objects with ``epsilon`` and ``validation_accuracy`` attributes.
        epsilon_at_most: the bound x.
        by: ``"validation_accuracy"`` (highest wins), or ``"validation_loss"`` (lowest wins:
            a task that is not a classification, e.g. a regression; report its test loss).

    Returns:
        The selected candidate (report its test accuracy), or None if none fits.

    Raises:
        ValueError: for a ``by`` other than those of :data:`SELECT_BY`.

    >>> a = Candidate(epsilon=1.0, validation_accuracy=None, validation_loss=0.3)
    >>> b = Candidate(epsilon=1.0, validation_accuracy=None, validation_loss=0.2)
    >>> best_at([a, b], epsilon_at_most=1.0, by="validation_loss") is b
    True
    """
    if by not in SELECT_BY:
        raise ValueError(f"by={by!r} is invalid: expected one of {sorted(SELECT_BY)}")
    sign = SELECT_BY[by]
    best, best_score = None, -math.inf
    for candidate in candidates:
        value, epsilon = getattr(candidate, by, None), candidate.epsilon
        if value is None or not math.isfinite(value) or not math.isfinite(epsilon):
            continue
        score = sign * value
        if epsilon <= epsilon_at_most and score > best_score:
            best, best_score = candidate, score
    return best
