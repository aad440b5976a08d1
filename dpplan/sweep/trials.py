"""The local executor of a sweep's trials (no Ray): tests and benchmarks.

What each trial runs, :func:`dpplan.train.trial.run_trial`, lives in the training layer (the
only one that imports torch); it is re-exported here. Importing this module loads neither
torch nor ray (they load when a trial runs).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping
from typing import Any

from dpplan.simulate import run_sweep_trial as run_trial  # ordinary or simulated (issue 22)
from dpplan.train.trial import split_arrays

__all__ = ["LocalExecutor", "TrialFunction", "run_trial", "split_arrays"]

#: What an executor runs for each trial: ``trial(payload, data) -> result dict``.
TrialFunction = Callable[[Mapping[str, Any], "Mapping[str, Any] | None"], dict[str, Any]]


class LocalExecutor:
    """Runs trials one at a time in this process (no Ray): tests and benchmarks.

    Args:
        ship_data: load and split MNIST once and hand it to every trial (as Ray does);
            False loads it per trial from ``options.data_dir``.
        trial: the function each trial runs (default :func:`run_trial`).
    """

    name = "local"
    capacity = 1

    def __init__(self, *, ship_data: bool = True, trial: TrialFunction = run_trial) -> None:
        self.ship_data = ship_data
        self.trial = trial
        self._queue: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
        self._data: dict[str, Any] | None = None

    def prepare(self, options: Any, *, task: str | None = None) -> None:
        """Load the data the trials share (once: a second call does nothing); nothing for a
        sweep of a user's ``task`` (each trial imports it)."""
        if self.ship_data and self._data is None and task is None:
            self._data = split_arrays(options)

    def submit(self, key: str, payload: dict[str, Any]) -> None:
        self._queue.append((key, payload))

    @property
    def in_flight(self) -> int:
        return len(self._queue)

    def wait(self, timeout: float | None = None) -> tuple[str, Any] | None:
        """Run the next trial; return (key, result dict or the exception it raised)."""
        key, payload = self._queue.popleft()
        try:
            return key, self.trial(payload, self._data)
        except Exception as exc:  # noqa: BLE001 - a failed trial is recorded, not fatal
            return key, exc

    def close(self) -> None:
        self._queue.clear()
