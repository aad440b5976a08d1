"""The privacy cost of a sweep's tuning, from dpplan.accounting.composition.

Three numbers, every one an upper bound at the sweep's δ:

* ``single_run_epsilon``: ε of one run (its plan), which is what each point's plan was
  solved for. It covers releasing **one** run trained without looking at any other.
* ``all_runs_epsilon``: ε of every stored run of the sweep composed
  (:func:`dpplan.accounting.compose_runs`, dp-accounting's composition of their DP-SGD
  events). It covers releasing all of them, hence any selection among them: the honest
  bound for a fixed grid with selection. Every stored run is counted, even one cut short,
  and the caller adds every attempt that may have trained and stored no run (cut off by a
  stopped or killed driver, failed, in flight) as its whole plan
  (:func:`dpplan.sweep.frontier_result`); an attempt whose Ray worker died and that Ray ran
  again returned nothing and released nothing.
* ``repeat_and_select_epsilon`` (random protocol only): Papernot & Steinke 2022 (Thm. 6),
  through dp-accounting's ``RepeatAndSelectDpEvent`` with a Poisson number of trials. It
  covers releasing the one selected model (and its configuration and score) of a target ε,
  chosen among a Poisson(μ) number of trials whose count stays secret; not the other trials,
  their count, nor the seed repeats (which are measurements: publishing them as well costs
  their composition).

What selection on the held-out validation split does and does not cover: the ε above
protect the **training** examples (``dataset_size`` of them). The validation examples are
never trained on, but the configuration chosen depends on them without any noise: they get
no differential-privacy guarantee and should be treated as public (or, with the test set,
as data you are willing to expose through the chosen configuration and the reported
accuracies). The test set never selects; it only reports.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dpplan.errors import AccountingError
from dpplan.plan import TrainingPlan
from dpplan.sweep.results import TargetTuning, TuningCost

__all__ = ["COVERAGE", "composed_epsilon", "repeat_and_select_for", "tuning_cost"]

#: What the tuning numbers cover, in words (the CLI's JSON and the reports carry it).
COVERAGE = {
    "single_run_epsilon": "one run released on its own, chosen without looking at any other",
    "all_runs_epsilon": (
        "every stored run of the sweep released, hence any selection among them (fixed grid)"
    ),
    "repeat_and_select_epsilon": (
        "the one model selected among a secret Poisson number of random trials at a target ε "
        "(Papernot & Steinke 2022); not the other trials, their number, or the seed repeats"
    ),
    "validation": (
        "selection reads the held-out validation split without noise: validation examples "
        "get no DP guarantee (treat them as public); every ε protects the training examples"
    ),
}


def composed_epsilon(runs: Iterable[tuple[TrainingPlan, int]], *, delta: float) -> dict[str, Any]:
    """Return ε of ``runs`` (plan, completed epochs) composed, as ``{"epsilon", "method", ...}``.

    Runs with the same plan are one longer run of that plan (the same DP-SGD steps), so the
    composition stays as cheap as the number of distinct plans.

    Raises:
        PlanError: for an empty ``runs``.
        AccountingError: if every method failed.
    """
    from dpplan.accounting.composition import compose_runs

    merged: dict[TrainingPlan, int] = {}
    count = 0
    for plan, epochs in runs:
        merged[plan] = merged.get(plan, 0) + int(epochs)
        count += 1
    pairs = []
    for plan, epochs in merged.items():
        try:
            pairs.append((plan.replace(epochs=max(epochs, 1)), epochs))
        except ValueError:  # beyond the plan's limits: compose the runs one by one
            whole, rest = divmod(epochs, plan.epochs)
            pairs += [(plan, plan.epochs)] * whole + ([(plan, rest)] if rest else [])
    result = compose_runs(pairs, delta=delta)
    return {
        "epsilon": result.epsilon,
        "method": result.method,
        "runs": count,
        "total_steps": result.total_steps,
    }


def repeat_and_select_for(plans: Sequence[TrainingPlan], *, mean_runs: float) -> float:
    """Return Papernot & Steinke's ε for a Poisson(``mean_runs``) number of random trials.

    Each trial trains a configuration drawn at random from a grid whose plans are ``plans``.
    With one plan this is :func:`dpplan.accounting.repeat_and_select_epsilon`. With several,
    the base mechanism (draw a configuration, train it) is a mixture of the plans' DP-SGD
    mechanisms, whose Rényi divergence is at most the largest of theirs (joint
    quasi-convexity), itself at most that of all of them composed: dp-accounting's
    ``RepeatAndSelectDpEvent`` is applied to their ``ComposedDpEvent`` (RDP), an upper
    bound that is loose by at most the number of distinct plans.

    Raises:
        PlanError: for no plans, or plans with different δ.
        AccountingError: if dp-accounting fails.
    """
    import dp_accounting

    from dpplan import _validate
    from dpplan.accounting import get_accountant
    from dpplan.accounting.composition import repeat_and_select_epsilon
    from dpplan.accounting.events import dpsgd_event
    from dpplan.errors import PlanError

    distinct = list(dict.fromkeys(plans))
    if not distinct:
        raise PlanError("plans", plans, "at least one plan")
    if len({plan.delta for plan in distinct}) != 1:
        raise PlanError("plans", plans, "plans with one δ")
    mean_runs = _validate.finite_positive(mean_runs=mean_runs)
    if len(distinct) == 1:
        return repeat_and_select_epsilon(distinct[0], mean_runs=mean_runs)
    event = dp_accounting.dp_event.RepeatAndSelectDpEvent(
        event=dp_accounting.ComposedDpEvent(events=[dpsgd_event(p) for p in distinct]),
        mean=float(mean_runs),
        shape=math.inf,
    )
    accountant = dp_accounting.rdp.RdpAccountant(orders=list(get_accountant("rdp").orders))
    from dpplan.accounting.composition import quiet_absl  # drops excluded-order log lines

    try:
        with quiet_absl():
            return float(accountant.compose(event).get_epsilon(distinct[0].delta))
    except (ValueError, ArithmeticError) as exc:
        raise AccountingError(f"repeat-and-select failed for {len(distinct)} plans: {exc}") from exc


def repeat_and_select_all_targets(
    groups: Sequence[Sequence[TrainingPlan]], *, mean_runs: float
) -> float:
    """Return ε of releasing the selected model of every target ε together.

    Each target runs its own repeat-and-select protocol on the same data, so the release of
    all the selected models costs their composition (dp-accounting's ``ComposedDpEvent`` of
    one ``RepeatAndSelectDpEvent`` per target, RDP), not the largest of them.

    Raises:
        PlanError: for no groups or an empty group.
        AccountingError: if dp-accounting fails.
    """
    import dp_accounting

    from dpplan.accounting import get_accountant
    from dpplan.accounting.composition import quiet_absl
    from dpplan.accounting.events import dpsgd_event
    from dpplan.errors import PlanError

    if not groups or not all(groups):
        raise PlanError("plans", groups, "at least one plan per target")
    if len(groups) == 1:
        return repeat_and_select_for(groups[0], mean_runs=mean_runs)
    events = []
    for plans in groups:
        distinct = list(dict.fromkeys(plans))
        base = (
            dpsgd_event(distinct[0])
            if len(distinct) == 1
            else dp_accounting.ComposedDpEvent(events=[dpsgd_event(p) for p in distinct])
        )
        events.append(
            dp_accounting.dp_event.RepeatAndSelectDpEvent(
                event=base, mean=float(mean_runs), shape=math.inf
            )
        )
    delta = groups[0][0].delta
    accountant = dp_accounting.rdp.RdpAccountant(orders=list(get_accountant("rdp").orders))
    try:
        with quiet_absl():
            composed = accountant.compose(dp_accounting.ComposedDpEvent(events=events))
            return float(composed.get_epsilon(delta))
    except (ValueError, ArithmeticError) as exc:
        raise AccountingError(
            f"repeat-and-select over {len(groups)} targets failed: {exc}"
        ) from exc


def tuning_cost(
    *,
    delta: float,
    plan_epsilons: Mapping[tuple[float, int, int], float],
    plans: Mapping[tuple[float, int, int], TrainingPlan],
    runs: Sequence[tuple[TrainingPlan, int]],
    random_repeats: float | None,
) -> TuningCost:
    """Return the sweep's tuning cost: one run, all runs, per target, and what each covers.

    Args:
        delta: the sweep's δ.
        plan_epsilons: ε of each solved plan (key: target ε, B, E).
        plans: the solved plans.
        runs: (plan, completed epochs) of every stored run of the sweep.
        random_repeats: the random protocol's mean number of trials, or None.

    Raises:
        AccountingError: if composing fails for every method.
    """
    targets = sorted({key[0] for key in plans})
    per_target = []
    for target in targets:
        at = [
            (plan, epochs)
            for plan, epochs in runs
            if any(plans[k] == plan for k in plans if k[0] == target)
        ]
        composed = composed_epsilon(at, delta=delta) if at else None
        per_target.append(
            TargetTuning(
                target_epsilon=target,
                single_run_epsilon=max(e for k, e in plan_epsilons.items() if k[0] == target),
                runs=len(at),
                all_runs_epsilon=None if composed is None else composed["epsilon"],
                all_runs_method=None if composed is None else composed["method"],
                repeat_and_select_epsilon=None
                if random_repeats is None
                else repeat_and_select_for(
                    [plan for key, plan in plans.items() if key[0] == target],
                    mean_runs=random_repeats,
                ),
            )
        )
    composed = composed_epsilon(runs, delta=delta) if runs else None
    return TuningCost(
        delta=delta,
        single_run_epsilon=max(plan_epsilons.values()),
        runs=len(runs),
        protocol="grid" if random_repeats is None else "random_repeats",
        per_target=tuple(per_target),
        covers=dict(COVERAGE),
        all_runs_epsilon=0.0 if composed is None else composed["epsilon"],
        all_runs_method=None if composed is None else composed["method"],
        random_repeats=random_repeats,
        # The report publishes one selected model per target: their composition.
        repeat_and_select_epsilon=None
        if random_repeats is None
        else repeat_and_select_all_targets(
            [[plan for key, plan in plans.items() if key[0] == target] for target in targets],
            mean_runs=random_repeats,
        ),
    )
