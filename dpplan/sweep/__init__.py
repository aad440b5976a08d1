"""The ε-versus-accuracy frontier: sweeps of plans solved for target ε, tuned fairly, on Ray.

* :class:`SweepSpec` (:mod:`dpplan.sweep.spec`): target ε × batch size × epochs × schedule ×
  learning rate × seed, validated and bounded.
* :mod:`dpplan.sweep.protocol`: solved plans, trials, selection on validation accuracy with
  the first seed, repeats over the other seeds, the frontier and per-schedule curves.
* :mod:`dpplan.sweep.execute`: the driver: :func:`create_sweep`, :func:`run_sweep` (also
  resumes), :func:`frontier_result`.
* :mod:`dpplan.sweep.results`: what they return, frozen and typed: :class:`FrontierResult`
  (its points, trial counts, solved plans) and :class:`TuningCost`; ``to_dict()`` is the
  CLI's JSON.
* :mod:`dpplan.sweep.trials` (one trial, trained by :func:`dpplan.train.core.train`;
  :class:`LocalExecutor`) and :mod:`dpplan.sweep.ray_executor` (:class:`RayExecutor`, the
  ``[sweep]`` extra).
* :mod:`dpplan.sweep.background`: :func:`~dpplan.sweep.background.launch_sweep` starts a
  validated :class:`SweepSpec` in a background driver (the app's Frontier page).
* :mod:`dpplan.sweep.tuning`: the privacy cost of tuning (one run, all runs composed,
  Papernot & Steinke's repeat-and-select).

Importing this package loads neither torch nor ray.

>>> from dpplan.sweep import SweepSpec
>>> from dpplan.train import RunOptions
>>> SweepSpec(target_epsilons=(1, 3), delta=1e-5, batch_sizes=(256,), epochs=(2,),
...           options=RunOptions(subset=2000)).trial_count
20
"""

from dpplan.sweep.execute import Progress, create_sweep, frontier_result, run_sweep
from dpplan.sweep.ray_executor import RAY_ADDRESS_ENV, RayExecutor, import_ray
from dpplan.sweep.results import FrontierPoint, FrontierResult, TuningCost
from dpplan.sweep.spec import MAX_TRIALS, SweepSpec
from dpplan.sweep.trials import LocalExecutor
from dpplan.sweep.tuning import COVERAGE

__all__ = [
    "COVERAGE",
    "MAX_TRIALS",
    "RAY_ADDRESS_ENV",
    "FrontierPoint",
    "FrontierResult",
    "LocalExecutor",
    "Progress",
    "RayExecutor",
    "SweepSpec",
    "TuningCost",
    "create_sweep",
    "frontier_result",
    "import_ray",
    "run_sweep",
]
