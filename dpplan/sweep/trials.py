"""The worker side of a sweep: one trial trained by the training core, and the local executor.

:func:`run_trial` is what a Ray task (or :class:`LocalExecutor`) runs: it rebuilds the plan,
schedule and options from their ``to_dict`` forms and calls :func:`dpplan.train.core.train`,
with MNIST handed over from the driver (:func:`split_arrays`, through Ray's object store)
or loaded from the worker's own data folder. Nothing here touches the store.

Importing this module loads neither torch nor ray (they load when a trial runs).
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any

from dpplan.plan import TrainingPlan

__all__ = ["LocalExecutor", "TrialFunction", "run_trial", "split_arrays"]

#: What an executor runs for each trial: ``trial(payload, data) -> result dict``.
TrialFunction = Callable[[Mapping[str, Any], "Mapping[str, Any] | None"], dict[str, Any]]


def split_arrays(options: Any) -> dict[str, Any]:
    """Load and split MNIST once on the driver's CPU, as numpy arrays for the object store."""
    import torch

    from dpplan.train.core import load_split

    split = load_split(options, torch.device("cpu"))
    arrays: dict[str, Any] = {
        f.name: getattr(split, f.name).numpy()
        for f in dataclasses.fields(split)
        if f.name != "source"
    }
    return {**arrays, "source": split.source}


def run_trial(payload: Mapping[str, Any], data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Train one trial with the storage-free training core and return its result.

    Args:
        payload: ``{"key", "plan", "schedule", "options"}`` (the ``to_dict`` forms).
        data: the MNIST split as numpy arrays (from the object store), or None to load it
            from the worker's own data folder (``options.data_dir``).

    Returns:
        ``{"result": TrainingResult, "versions": {...}, "seconds": wall time, "host": ...}``.
    """
    import socket

    import torch

    from dpplan.train.core import MnistSplit, resolve_device, train, versions
    from dpplan.train.specs import RunOptions, schedule_from_dict

    started = time.perf_counter()
    plan = TrainingPlan.from_dict(payload["plan"])
    schedule = schedule_from_dict(payload["schedule"])
    options = RunOptions.from_dict(dict(payload["options"]))
    # One trial, one thread per CPU it reserved (options.threads): torch's default of one
    # thread per core made concurrent trials fight over the cores (BENCHMARKS.md).
    torch.set_num_threads(options.threads)
    device = resolve_device(options.device)
    split = None
    if data is not None:
        split = MnistSplit(
            **{
                name: torch.tensor(array, device=device)
                for name, array in data.items()
                if name != "source"
            },
            source=data.get("source"),
        )
    result = train(plan, schedule, options, data=split, device=device)
    return {
        "result": result,
        "versions": versions(),
        "seconds": time.perf_counter() - started,
        "host": socket.gethostname(),
    }


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

    def prepare(self, options: Any) -> None:
        """Load the data the trials share (once: a second call does nothing)."""
        if self.ship_data and self._data is None:
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
