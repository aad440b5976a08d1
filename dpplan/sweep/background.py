"""Run a validated :class:`SweepSpec` in a background driver (the app's Frontier page uses this).

:func:`launch_sweep` takes a spec that was built (hence validated) in the caller's process,
checks that Ray is installed, writes the spec as JSON (``SweepSpec.to_dict``) next to a log
file under ``$DPPLAN_HOME/sweeps/``, and starts ``python -m dpplan.sweep.background SPEC``
in its own process group (:func:`dpplan.background.launch_detached`), so closing the app
does not stop it. The child
(:func:`main`) reads the spec back with ``SweepSpec.from_dict`` and runs it as ``dpplan
sweep`` does by default (on an embedded Ray, one CPU per trial): solved and stored, then
each trial; its progress lines and the final result (``FrontierResult.to_dict()``, as JSON)
go to the log. The sweep itself is in the run store as soon as its plans are solved.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from dpplan.background import launch_detached, read_request
from dpplan.errors import DpplanError, MissingDependencyError, PlanError
from dpplan.store import RunStore
from dpplan.sweep.ray_executor import RAY_HINT
from dpplan.sweep.spec import SweepSpec

__all__ = ["launch_sweep", "main"]


def launch_sweep(spec: SweepSpec) -> tuple[int, Path]:
    """Start a background driver that runs ``spec`` on an embedded Ray; return (PID, log file).

    Args:
        spec: the sweep, already validated (building a :class:`SweepSpec` validates it).

    Returns:
        The driver's process id and its log file (progress, then the result as JSON).

    Raises:
        PlanError: (field ``spec``) if ``spec`` is not a :class:`SweepSpec`.
        MissingDependencyError: if Ray (the ``[sweep]`` extra) is not installed.
    """
    if not isinstance(spec, SweepSpec):
        raise PlanError("spec", spec, "a dpplan.sweep.SweepSpec")
    if importlib.util.find_spec("ray") is None:
        raise MissingDependencyError(
            "ray", extra="sweep", purpose="to run a sweep on Ray", hint=RAY_HINT
        )
    return launch_detached("dpplan.sweep.background", spec.to_dict(), kind="sweeps")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sweep whose spec (``SweepSpec.to_dict`` JSON) is in the file ``argv[0]``.

    Returns:
        0 if every trial finished, 1 if some failed, 2 if the sweep could not start.
    """
    from dpplan.sweep.execute import create_sweep, run_sweep
    from dpplan.sweep.ray_executor import RayExecutor

    try:
        spec = SweepSpec.from_dict(read_request(list(sys.argv[1:] if argv is None else argv)))
        executor = RayExecutor()
        store = RunStore()
        sweep_id = create_sweep(spec, store=store, executor=executor)
    except (DpplanError, OSError, ValueError) as error:
        print(f"error: {error}", flush=True)
        return 2
    print(f"sweep {sweep_id} created on ray (dpplan frontier {sweep_id} shows it)", flush=True)

    def progress(state) -> None:
        if state.last is not None:
            print(
                f"sweep {state.sweep_id}: {state.done}/{state.planned} trials done, "
                f"{state.running} running, {state.failed} failed ({state.last})",
                flush=True,
            )

    result = run_sweep(sweep_id, store=store, executor=executor, on_progress=progress)
    print(json.dumps(result.to_dict(), indent=2), flush=True)
    return 0 if result.trials.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
