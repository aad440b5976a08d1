"""The run store: plans, training runs, their per-epoch records and sweeps, in SQLite.

One database file, ``runs.sqlite3``, in the dpplan home folder: ``$DPPLAN_HOME`` if set,
else ``$XDG_DATA_HOME/dpplan``, else ``~/.local/share/dpplan``. Checkpoints live next to it
in ``checkpoints/``.

The package's modules, one job each:

- :mod:`~dpplan.store.schema`: the tables and their versioned migrations;
- :mod:`~dpplan.store.database`: the file (where it lives, opening, read-only stores);
- :mod:`~dpplan.store.liveness`: process liveness from ``/proc``, leases and heartbeats;
- :mod:`~dpplan.store.records`: the typed records read back;
- :mod:`~dpplan.store.runs` and :mod:`~dpplan.store.sweeps`: the two repositories.

:class:`RunStore` is both repositories on one file. The store computes no privacy and holds
no policy: the ε shown for a run and which runs may be deleted are decided in
:mod:`dpplan.run_policy`. This package imports neither torch nor opacus (nor the
accounting), so the CLI's ``runs`` command and the planner app can read runs on any machine.
"""

from __future__ import annotations

from dpplan.store.database import default_home, stored_id
from dpplan.store.liveness import (
    HEARTBEAT_SECONDS,
    LEASE_SECONDS,
    Liveness,
    process_alive,
    process_start,
)
from dpplan.store.records import (
    STATUSES,
    EpochRecord,
    OptionsRecord,
    RunRecord,
    ScheduleRecord,
    SweepRecord,
    SweepTrialRecord,
    plan_id,
)
from dpplan.store.runs import RunsRepository, StopOutcome, StopResult
from dpplan.store.schema import SCHEMA_VERSION
from dpplan.store.sweeps import SweepsRepository

__all__ = [
    "HEARTBEAT_SECONDS",
    "LEASE_SECONDS",
    "SCHEMA_VERSION",
    "STATUSES",
    "EpochRecord",
    "Liveness",
    "OptionsRecord",
    "RunRecord",
    "RunStore",
    "ScheduleRecord",
    "StopOutcome",
    "StopResult",
    "SweepRecord",
    "SweepTrialRecord",
    "default_home",
    "plan_id",
    "process_alive",
    "process_start",
    "stored_id",
]


class RunStore(RunsRepository, SweepsRepository):
    """SQLite store of plans, runs, epoch records and sweeps.

    Args:
        home: folder holding ``runs.sqlite3`` and ``checkpoints/``; default
            :func:`default_home`.
        liveness: process and time queries and heartbeat threads (inject a fake in tests);
            default :class:`Liveness`.

    See :class:`~dpplan.store.database.StoreDatabase` for opening, read-only stores and
    migration, and the two repositories for the methods.
    """
