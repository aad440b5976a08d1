"""One sweep trial, trained by the training core: what a Ray task (or the local executor) runs.

:func:`run_trial` rebuilds the plan, schedule and options from their ``to_dict`` forms and
calls :func:`dpplan.train.core.train`, with MNIST handed over from the driver
(:func:`split_arrays`, through Ray's object store) or loaded from the worker's own data
folder. Nothing here touches the store. Importing this module loads no torch (it loads when a
trial runs).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

from dpplan.plan import TrainingPlan

__all__ = ["run_trial", "split_arrays"]


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
