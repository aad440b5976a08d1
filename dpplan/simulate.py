"""Prediction by simulation: train a cheap stand-in of a plan at the same noise per step.

Sander et al. ("TAN without a burn: scaling laws of DP-SGD", ICML 2023) observe that, for a
fixed number of steps S, DP-SGD's accuracy is governed mainly by the noise on the averaged
gradient, σ·C/B. Scaling the batch size and the noise multiplier down together, B/K and σ/K,
keeps that noise per step while each step processes about K times fewer examples. A
*simulated* trial of a plan (σ, B, S steps) trains B/K with σ/K for exactly S steps, and its
accuracy predicts the plan's.

The construction (:func:`simulated_plan`), for every phase of the plan:

* **batch size** ``round(B / K)`` (nearest integer, halves up). The preserved quantity is the
  noise per step σ/B, so when K does not divide B the simulated noise per step differs from
  the plan's by the factor ``(B/K) / round(B/K)``; a rounding that moves it by more than
  :data:`ROUNDING_TOLERANCE` (2%) is refused, and ``B/K < 1`` is refused;
* **noise multiplier** exactly ``σ / K`` (refused below dpplan's smallest σ, 0.01);
* **steps** exactly the phase's steps (``plan.total_steps`` for a one-phase plan): the
  simulated phase is a step-level phase (``phase_steps``), because S steps at B/K rarely
  span whole epochs;
* ``max_grad_norm``, ``delta`` and (unless simulating on public data) ``dataset_size`` are
  the plan's.

Privacy: a simulated trial is not the release, and it is *not* free. It touches the data it
trains on with σ/K, so its own ε is large (:attr:`Simulation.trial_epsilon`). On the
training data that ε counts against the tuning budget. The alternative
(``data="validation"``) trains the simulation on the validation split, which dpplan already
treats as public; then the trials cost no training-data ε, and every prediction says which
data it came from.

This module imports no torch and no accounting code until an ε is asked for.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dpplan import _validate
from dpplan.accounting.base import METHODS
from dpplan.errors import PlanError
from dpplan.phased import PhasedPlan
from dpplan.plan import NOISE_MULTIPLIER_MAX, NOISE_MULTIPLIER_MIN, TrainingPlan

__all__ = [
    "CALIBRATION_FILE",
    "MAX_SIMULATE_K",
    "ROUNDING_TOLERANCE",
    "SIMULATION_DATA",
    "Simulation",
    "calibration",
    "check_batch_size",
    "composed_trials_epsilon",
    "marking",
    "public_split",
    "run_sweep_trial",
    "simulate",
    "simulated_plan",
    "simulated_tuning",
    "simulation_dataset_size",
]

#: Largest simulation factor accepted (beyond it σ/K falls below 0.01 for any usual σ).
MAX_SIMULATE_K = 1024
#: Largest relative change of the noise per step (σ/B) that rounding B/K may cause.
ROUNDING_TOLERANCE = 0.02
#: Which data a simulated trial trains on: the training data (its ε counts) or the
#: validation split, treated as public (no training-data ε).
SIMULATION_DATA = ("training", "validation")
#: The measured calibration (``bench/predict.py``'s summary, committed): the error of a
#: prediction at each K, which every prediction shown to users carries.
CALIBRATION_FILE = Path(__file__).with_name("simulate_calibration.json")


def _factor(k: object) -> int:
    return _validate.integer(
        minimum=1,
        maximum=MAX_SIMULATE_K,
        hint="simulate K divides the batch size and the noise multiplier; give a positive "
        "integer such as 2, 4, 8 or 16 (1 means train the plan itself).",
        simulate=k,
    )


def check_batch_size(batch_size: int, k: int) -> int:
    """Return the simulated batch size round(B/K), or raise as :func:`simulated_plan` does.

    For checks made before σ is known (a sweep's grid of batch sizes).

    Raises:
        PlanError: naming ``simulate`` if K is not a positive integer, B/K < 1 or the rounding
            moves the noise per step by more than :data:`ROUNDING_TOLERANCE`.
    """
    probe = TrainingPlan(
        dataset_size=max(int(batch_size), 1),
        batch_size=batch_size,
        noise_multiplier=NOISE_MULTIPLIER_MAX,
        epochs=1,
        delta=0.5,
    )
    return _simulated_phase(probe, _factor(k), 1, probe.dataset_size).batch_size


def _simulated_phase(phase: TrainingPlan, k: int, steps: int, dataset_size: int) -> TrainingPlan:
    exact = phase.batch_size / k
    if exact < 1:
        raise PlanError(
            "simulate",
            k,
            f"at most the batch size {phase.batch_size} (B/K = {exact:.3g} < 1 example)",
            "Lower K: a simulated step needs an expected batch of at least one example.",
        )
    batch = math.floor(exact + 0.5)
    mismatch = exact / batch - 1
    if abs(mismatch) > ROUNDING_TOLERANCE:
        divisors = [d for d in range(2, min(phase.batch_size, MAX_SIMULATE_K) + 1)]
        exact_ks = [d for d in divisors if phase.batch_size % d == 0][:6]
        raise PlanError(
            "simulate",
            k,
            f"a K for which round(B/K) keeps the noise per step σ/B within "
            f"{ROUNDING_TOLERANCE:.0%} (B = {phase.batch_size}: B/K = {exact:.4g} rounds to "
            f"{batch}, {mismatch:+.1%})",
            f"K dividing B exactly: {', '.join(map(str, exact_ks)) or 'none'}.",
        )
    if batch > dataset_size:
        raise PlanError(
            "simulate",
            k,
            f"a K leaving B/K = {batch} at most the {dataset_size} examples simulated on",
            "Raise K or simulate on more data.",
        )
    sigma = phase.noise_multiplier / k
    if sigma < NOISE_MULTIPLIER_MIN:
        raise PlanError(
            "simulate",
            k,
            f"a K leaving σ/K = {sigma:.3g} at least {NOISE_MULTIPLIER_MIN}",
            f"σ = {phase.noise_multiplier:g} allows K up to "
            f"{math.floor(phase.noise_multiplier / NOISE_MULTIPLIER_MIN)}.",
        )
    steps_per_epoch = math.ceil(dataset_size / batch)
    return TrainingPlan(
        dataset_size=dataset_size,
        batch_size=batch,
        noise_multiplier=sigma,
        epochs=math.ceil(steps / steps_per_epoch),
        delta=phase.delta,
        max_grad_norm=phase.max_grad_norm,
    )


def simulated_plan(
    plan: TrainingPlan | PhasedPlan, k: int, *, dataset_size: int | None = None
) -> PhasedPlan:
    """Return the simulated plan of ``plan`` at factor ``k``: B/K, σ/K, the same steps.

    Args:
        plan: the plan to predict (a TrainingPlan or a PhasedPlan; each phase is scaled).
        k: the simulation factor, a positive integer (1 gives the plan itself, in steps).
        dataset_size: the number of examples the simulation samples from; default the
            plan's (simulating on public data of another size changes only the sample rate,
            not the noise per step).

    Returns:
        A :class:`PhasedPlan` with one phase per phase of ``plan``, each with batch size
        ``round(B/K)``, noise multiplier ``σ/K`` and exactly the phase's steps
        (``phase_steps``); the same δ and ``max_grad_norm``.

    Raises:
        PlanError: naming ``simulate`` when K is not a positive integer, leaves B/K < 1 or
            above the data, rounds B/K by more than :data:`ROUNDING_TOLERANCE`, or leaves
            σ/K below 0.01; naming ``plan`` for a plan of another type.

    Example:
        >>> plan = TrainingPlan(dataset_size=55000, batch_size=512, noise_multiplier=1.0,
        ...                     epochs=2, delta=1e-5)
        >>> sim = simulated_plan(plan, 4)
        >>> phase = sim.phases[0]
        >>> phase.batch_size, phase.noise_multiplier, sim.total_steps, plan.total_steps
        (128, 0.25, 216, 216)
    """
    if not isinstance(plan, (TrainingPlan, PhasedPlan)):
        raise PlanError("plan", plan, "a dpplan.TrainingPlan or dpplan.PhasedPlan")
    k = _factor(k)
    phased = plan if isinstance(plan, PhasedPlan) else PhasedPlan(phases=(plan,))
    size = (
        phased.dataset_size
        if dataset_size is None
        else _validate.integer(
            minimum=1, maximum=phased.dataset_size * 1000, dataset_size=dataset_size
        )
    )
    phases = tuple(
        _simulated_phase(phase, k, steps, size)
        for phase, steps in zip(phased.phases, phased.steps_per_phase)
    )
    return PhasedPlan(phases=phases, phase_steps=phased.steps_per_phase)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Simulation:
    """A plan, the simulated plan that predicts it, and which data the simulation uses.

    Attributes:
        plan: the plan whose accuracy is predicted (its ε is the release's).
        k: the simulation factor K.
        simulated: the plan a simulated trial trains (:func:`simulated_plan`).
        data: ``"training"`` (the trial touches the training data; its ε counts) or
            ``"validation"`` (the validation split, treated as public: no training-data ε).
    """

    plan: TrainingPlan | PhasedPlan
    k: int
    simulated: PhasedPlan
    data: str = "training"

    @property
    def label(self) -> str:
        """How predictions from this simulation are marked, e.g. ``predicted (sim K=8)``."""
        suffix = ", on public validation data" if self.data == "validation" else ""
        return f"predicted (sim K={self.k}{suffix})"

    @property
    def noise_per_step_ratio(self) -> float:
        """The simulated noise per step σ'/B' over the plan's σ/B (1 when K divides B)."""
        first = self.plan if isinstance(self.plan, TrainingPlan) else self.plan.phases[0]
        sim = self.simulated.phases[0]
        return (sim.noise_multiplier / sim.batch_size) / (first.noise_multiplier / first.batch_size)

    def trial_epsilon(self, method: str | None = None) -> float:
        """The training-data ε one simulated trial costs (large: σ/K is small).

        ``0.0`` when the simulation trains on the validation split (treated as public).
        ``method=None`` gives the headline, the smallest upper bound of dpplan's methods;
        a method name gives that method's bound.

        Raises:
            AccountingError: if ``method`` is named and fails on the simulated plan.
        """
        if self.data == "validation":
            return 0.0
        import dpplan

        if method is not None:
            return float(dpplan.epsilon(self.simulated, method=method))
        return float(dpplan.compare(self.simulated).headline_epsilon)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: K, the data, the label and both plans."""
        return {
            "k": self.k,
            "data": self.data,
            "label": self.label,
            "plan": self.plan.to_dict(),
            "simulated": self.simulated.to_dict(),
        }


def simulate(
    plan: TrainingPlan | PhasedPlan,
    k: int,
    *,
    data: str = "training",
    public_size: int | None = None,
) -> Simulation:
    """Return the :class:`Simulation` of ``plan`` at factor ``k`` on ``data``.

    Args:
        plan: the plan to predict.
        k: the simulation factor K, a positive integer.
        data: ``"training"`` (default) or ``"validation"``: simulate on the validation split,
            treated as public, so the trials cost no training-data ε.
        public_size: for ``data="validation"``, the number of validation examples the
            simulation samples from (required there; B/K must not exceed it).

    Raises:
        PlanError: naming ``simulate`` (see :func:`simulated_plan`), ``data`` for an unknown
            data choice, ``public_size`` when missing or given for ``data="training"``.
    """
    data = _validate.choice(
        options=SIMULATION_DATA,
        hint="'validation' trains the simulation on the validation split (public).",
        data=data,
    )
    if data == "training":
        if public_size is not None:
            raise PlanError(
                "public_size", public_size, "None for data='training'", "It sizes public data."
            )
        simulated = simulated_plan(plan, k)
    else:
        if public_size is None:
            raise PlanError(
                "public_size",
                None,
                "the number of validation examples, for data='validation'",
                "Give the size of the validation split the simulation trains on.",
            )
        simulated = simulated_plan(plan, k, dataset_size=public_size)
    return Simulation(plan=plan, k=_factor(k), simulated=simulated, data=data)


def calibration(k: int, *, path: Path | None = None) -> dict[str, Any] | None:
    """Return the measured error of predictions at factor ``k``, or None if K was not measured.

    Read from :data:`CALIBRATION_FILE` (``bench/predict.py``'s summary, committed with the
    benchmark): ``mean_abs_error_points`` and ``worst_abs_error_points`` (test accuracy, in
    points, of the simulated runs' mean against the full runs' mean), the number of
    configurations and seeds, and where and when it was measured (``machine``, ``date``).
    Nothing is assumed for a K the benchmark did not run.
    """
    k = _factor(k)
    file = CALIBRATION_FILE if path is None else Path(path)
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError:
        return None
    for row in data.get("per_k", ()):
        if row.get("k") == k:
            return {
                "k": k,
                "mean_abs_error_points": row["mean_abs_error_points"],
                "worst_abs_error_points": row["worst_abs_error_points"],
                "mean_signed_error_points": row["mean_signed_error_points"],
                "configs": row["configs"],
                "runs_simulated": row["runs_simulated"],
                "cost_ratio": row["cost_ratio"],
                "collapsed": row.get("collapsed", []),
                "mean_abs_error_points_without_collapsed": row.get(
                    "mean_abs_error_points_without_collapsed"
                ),
                "seeds": data.get("seeds"),
                "machine": data.get("machine"),
                "date": data.get("date"),
                "source": "bench/predict.py (BENCHMARKS.md, Prediction by simulation)",
            }
    return None


def marking(k: int, data: str = "training") -> dict[str, Any]:
    """Return how a frontier point predicted by simulation is marked (JSON-ready).

    Keys: ``predicted_by_simulation`` (K), ``simulation_data`` (``"training"`` or
    ``"validation"``), ``label`` (e.g. ``"predicted (sim K=8)"``) and ``calibration``
    (:func:`calibration` of K, or None when K was not measured).
    """
    k = _factor(k)
    data = _validate.choice(options=SIMULATION_DATA, data=data)
    suffix = ", on public validation data" if data == "validation" else ""
    return {
        "predicted_by_simulation": k,
        "simulation_data": data,
        "label": f"predicted (sim K={k}{suffix})",
        "calibration": calibration(k),
    }


def composed_trials_epsilon(
    runs: Sequence[tuple[PhasedPlan | TrainingPlan, int]],
    *,
    delta: float,
    methods: tuple[str, ...] = METHODS,
) -> dict[str, Any]:
    """ε of every simulated trial composed: what the trials cost the data they trained on.

    Each run is (the plan it trained, the noisy steps it took). Steps with the same
    mechanism (sample rate and σ) add up; the distinct mechanisms are the phases of one
    :class:`PhasedPlan` (composition does not depend on order), whose ε is the headline of
    ``methods`` (:func:`dpplan.compare`: the smallest upper bound that answers).

    Returns:
        ``{"epsilon", "method", "runs", "total_steps", "mechanisms", "failures"}``.

    Raises:
        PlanError: for no runs, a run that is not (plan, steps) or more distinct mechanisms
            than a phased plan holds.
        AccountingError: if every method fails.
    """
    if not runs:
        raise PlanError("runs", runs, "at least one (plan, steps) run")
    steps: dict[tuple[float, float, int, float], int] = {}
    sizes = set()
    for plan, taken in runs:
        if not isinstance(plan, (TrainingPlan, PhasedPlan)):
            raise PlanError("runs", plan, "(TrainingPlan or PhasedPlan, steps) pairs")
        phased = plan if isinstance(plan, PhasedPlan) else PhasedPlan(phases=(plan,))
        taken = _validate.integer(minimum=0, maximum=phased.total_steps, steps=taken)
        sizes.add(phased.dataset_size)
        done = 0
        for phase, count in zip(phased.phases, phased.steps_per_phase):
            used = min(count, taken - done)
            if used <= 0:
                break
            key = (phase.noise_multiplier, phase.max_grad_norm, phase.batch_size, phase.delta)
            steps[key] = steps.get(key, 0) + used
            done += used
    if len(sizes) != 1:
        raise PlanError("runs", sorted(sizes), "runs on one dataset (one dataset_size)")
    (size,) = sizes
    phases, counts = [], []
    for (sigma, clip, batch, _), count in steps.items():
        per_epoch = math.ceil(size / batch)
        phases.append(
            TrainingPlan(
                dataset_size=size,
                batch_size=batch,
                noise_multiplier=sigma,
                epochs=math.ceil(count / per_epoch),
                delta=delta,
                max_grad_norm=clip,
            )
        )
        counts.append(count)
    if not phases:
        return {
            "epsilon": 0.0,
            "method": None,
            "runs": len(runs),
            "total_steps": 0,
            "mechanisms": 0,
            "failures": {},
        }
    import dpplan

    composed = PhasedPlan(phases=phases, phase_steps=counts)
    comparison = dpplan.compare(composed, methods=methods)
    return {
        "epsilon": float(comparison.headline_epsilon),
        "method": comparison.headline_method,
        "runs": len(runs),
        "total_steps": composed.total_steps,
        "mechanisms": len(phases),
        "failures": dict(comparison.failures),
    }


#: How a simulated sweep composes its trials: RDP alone, an upper bound computed in
#: milliseconds for any number of mechanisms (the trials' ε is large: σ/K is small, and
#: PRV's grid cannot hold it; PLD of dozens of distinct mechanisms takes minutes).
TRIAL_METHODS = ("rdp",)
#: What a simulated sweep's tuning numbers cover, in words (added to the tuning's ``covers``).
SIMULATION_COVERAGE = {
    "training": (
        "the points are predictions: simulated trials (B/K, σ/K, the plan's steps) trained "
        "on the training data; all_runs_epsilon is their composed ε (RDP), which is large "
        "(σ/K is small) and counts against the training data; single_run_epsilon is what "
        "training one point's plan itself would cost"
    ),
    "validation": (
        "the points are predictions: simulated trials (B/K, σ/K, the plan's steps) trained "
        "on the validation split, treated as public; they touched no training example, so "
        "they cost no training-data ε (all_runs_epsilon 0); single_run_epsilon is what "
        "training one point's plan itself would cost"
    ),
}


def simulated_tuning(
    *,
    delta: float,
    plan_epsilons: Mapping[tuple[float, int, int], float],
    trial_plans: Mapping[tuple[float, int, int], PhasedPlan],
    runs: Sequence[tuple[PhasedPlan | TrainingPlan, int]],
    k: int,
    data: str,
    coverage: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return a simulated sweep's ``tuning`` object (the keys of the sweep's tuning cost).

    Every stored run is a simulated trial, accounted at its own plan (σ/K): its steps are
    the steps of its recorded epochs (``PhasedPlan.steps_after``). On ``data="training"``
    ``all_runs_epsilon`` composes them all (:func:`composed_trials_epsilon`), per target and
    overall; on ``data="validation"`` the trials touched no training example and the
    training-data ε they cost is 0. ``single_run_epsilon`` stays the solved plans' ε: what
    training one point's plan would cost. ``simulation`` says K, the data and the trials' own
    ε (the largest of one trial, and all composed).

    Args:
        delta: the sweep's δ.
        plan_epsilons: ε of each solved plan (key: target ε, B, E).
        trial_plans: the simulated plan each solved plan's trials train (same keys).
        runs: (simulated plan, epochs spent) of every stored run of the sweep.
        k: the simulation factor.
        data: ``"training"`` or ``"validation"``.
        coverage: the sweep's own ``covers`` wording, extended here.
    """
    k = _factor(k)
    data = _validate.choice(options=SIMULATION_DATA, data=data)
    steps = []
    for plan, epochs in runs:
        phased = plan if isinstance(plan, PhasedPlan) else PhasedPlan(phases=(plan,))
        steps.append((phased, phased.steps_after(min(epochs, len(phased.epoch_ends())))))

    def composed(selected: Sequence[tuple[PhasedPlan, int]]) -> dict[str, Any]:
        if data == "validation" or not selected:
            return {"epsilon": 0.0, "method": None}
        return composed_trials_epsilon(selected, delta=delta, methods=TRIAL_METHODS)

    targets = sorted({key[0] for key in trial_plans})
    per_target = []
    for target in targets:
        mine = {plan for key, plan in trial_plans.items() if key[0] == target}
        at = [(plan, taken) for plan, taken in steps if plan in mine]
        row: dict[str, Any] = {
            "target_epsilon": target,
            "single_run_epsilon": max(e for key, e in plan_epsilons.items() if key[0] == target),
            "runs": len(at),
        }
        if at:
            found = composed(at)
            row["all_runs_epsilon"] = found["epsilon"]
            row["all_runs_method"] = found["method"]
        per_target.append(row)
    overall = composed(steps)
    one_trial = (
        0.0
        if data == "validation"
        else max(
            composed_trials_epsilon([(plan, plan.total_steps)], delta=delta, methods=TRIAL_METHODS)[
                "epsilon"
            ]
            for plan in set(trial_plans.values())
        )
    )
    covers = dict(coverage or {})
    covers["simulation"] = SIMULATION_COVERAGE[data]
    return {
        "delta": delta,
        "single_run_epsilon": max(plan_epsilons.values()),
        "runs": len(runs),
        "protocol": "grid",
        "per_target": per_target,
        "covers": covers,
        "all_runs_epsilon": overall["epsilon"],
        "all_runs_method": overall["method"],
        "simulation": {
            **marking(k, data),
            "one_trial_epsilon": one_trial,
            "all_trials_epsilon": overall["epsilon"],
            "data_epsilon_applies_to": "training" if data == "training" else "none (public)",
        },
    }


def simulation_dataset_size(options: Any, data: str = "training") -> int:
    """Return the examples a simulated trial samples from, for run options ``options``.

    ``"training"``: the training set (``training_set_size(options)``); ``"validation"``: the
    first half of the validation split (:func:`public_split`; the second half selects).
    """
    from dpplan.train.specs import training_set_size

    data = _validate.choice(options=SIMULATION_DATA, data=data)
    if data == "training":
        return training_set_size(options)
    size = options.validation_size // 2
    if size < 1:
        raise PlanError(
            "simulate_data",
            data,
            "'training' when the validation split has fewer than 2 examples",
            "Raise validation_size.",
        )
    return size


def public_split(split: Any) -> Any:
    """Return the MNIST split of a simulation on public data: the validation split's first
    half trains, its second half validates (selects), the test set reports.

    The validation split is already treated as public (selection reads it without noise);
    training on it touches no training example.
    """
    from dpplan.train.core import MnistSplit

    half = len(split.val_x) // 2
    return MnistSplit(
        train_x=split.val_x[:half],
        train_y=split.val_y[:half],
        val_x=split.val_x[half:],
        val_y=split.val_y[half:],
        test_x=split.test_x,
        test_y=split.test_y,
        source=split.source,
    )


def run_sweep_trial(
    payload: Mapping[str, Any], data: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """What a sweep's executors run for each trial: a simulated trial, or the ordinary one.

    A payload without ``simulate_data`` goes to :func:`dpplan.train.trial.run_trial`
    unchanged. A simulated trial (``dpplan.sweep`` adds ``simulate_data``) trains its
    :class:`PhasedPlan` with :func:`dpplan.train.train`; its data are read from the worker's
    ``options.data_dir`` (the MNIST arrays a driver ships are for the ordinary trial), and with
    ``simulate_data="validation"`` it trains on :func:`public_split`.

    Returns:
        ``{"result": TrainingResult, "versions": {...}, "seconds": wall time, "host": ...}``.
    """
    from dpplan.train.trial import run_trial

    if "simulate_data" not in payload:
        return run_trial(payload, data)
    import socket
    import time

    from dpplan.train.core import load_split, resolve_device, train, versions
    from dpplan.train.specs import RunOptions, schedule_from_dict

    started = time.perf_counter()
    plan = PhasedPlan.from_dict(payload["plan"])
    options = RunOptions.from_dict(dict(payload["options"]))
    device = resolve_device(options.device)
    split = None
    if payload["simulate_data"] == "validation":
        split = public_split(load_split(options, device))
        options = dataclasses.replace(options, subset=len(split.train_x))
    result = train(
        plan, schedule_from_dict(payload["schedule"]), options, data=split, device=device
    )
    return {
        "result": result,
        "versions": versions(),
        "seconds": time.perf_counter() - started,
        "host": socket.gethostname(),
    }
