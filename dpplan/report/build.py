"""Build a :class:`~dpplan.report.model.Report` from a plan, or from a stored run.

Every number comes from dpplan's own API: the ε curves and the headline from
:func:`dpplan.compare`, ε of several runs from the same backends on the composed plan.
Two numbers come straight from dp-accounting, and the report says so:

* ε without amplification by sampling: E epochs, each example used once per epoch, are E
  Gaussian mechanisms with noise multiplier σ, which compose to one Gaussian mechanism with
  noise multiplier σ/√E (Dong, Roth & Su 2019); its exact ε is
  ``dp_accounting.get_epsilon_gaussian`` (Balle & Wang 2018). This is the second number of
  TF Privacy's privacy statement.
* Repeat-and-select (Papernot & Steinke 2022, Thm. 6): ε of running a plan a
  Poisson-distributed number of times (mean k) and releasing only the best run, through
  dp-accounting's ``RepeatAndSelectDpEvent`` and its RDP accountant. dp-accounting supports
  only random numbers of runs (Poisson, or truncated negative binomial); for a *fixed*
  number of runs, as dpplan's comparisons use, the report's tuning bound is the composition
  of every run, which covers releasing all of them and so any selection among them.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import math
import platform
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dp_accounting
from dp_accounting import dp_event

import dpplan
from dpplan import _validate
from dpplan.accounting import METHODS, Comparison, compare, get_accountant
from dpplan.accounting.base import EpsilonCurve, library_versions
from dpplan.accounting.events import dpsgd_event
from dpplan.errors import AccountingError, PlanError
from dpplan.plan import TrainingPlan
from dpplan.report.model import (
    SCHEMA_ID,
    SCHEMA_VERSION,
    Accounting,
    Guarantee,
    Interpretation,
    MechanismSettings,
    MembershipBound,
    MethodCurve,
    Report,
    Reproducibility,
    RunEpoch,
    RunSummary,
    Sampling,
    Tier,
    Tuning,
)
from dpplan.store import RunRecord, RunStore

__all__ = [
    "FALSE_POSITIVE_RATES",
    "FORMATS",
    "build_report",
    "build_run_report",
    "load_run_report",
    "membership_tpr_bound",
    "plan_hash",
    "save_run_report",
]

#: Output formats of ``dpplan report``, and keys of ``Reproducibility.commands``.
FORMATS = ("md", "html", "json")
#: False-positive rates at which the membership-inference bound is tabulated.
FALSE_POSITIVE_RATES = (0.001, 0.01, 0.05, 0.1)
#: Longest title and notes accepted (characters).
MAX_TITLE_LENGTH = 300
MAX_NOTES_LENGTH = 20_000

_METHOD_INFO = {
    "rdp": (
        "Rényi differential privacy",
        "RDP of the Poisson-subsampled Gaussian (Mironov 2017; Mironov, Talwar & Zhang 2019), "
        "composed over steps and converted to (ε, δ) with Canonne, Kamath & Steinke 2020, "
        "Prop. 12. An upper bound.",
    ),
    "prv": (
        "Privacy random variables",
        "Numerical composition of the privacy loss with explicit error bounds (Gopi, Lee & "
        "Wutschitz 2021). The upper bound is reported; the lower bound on the true ε is "
        "shown beside it.",
    ),
    "pld": (
        "Privacy loss distributions",
        "Discretised privacy-loss distribution composed by FFT (Koskela et al. 2020; "
        "Doroshenko et al. 2022), pessimistic discretisation. An upper bound.",
    ),
}

_TIERS = (
    (
        "ε ≤ 1",
        1.0,
        "Strong: whatever the attacker knows about the other examples, seeing the trained "
        "models changes the odds that any one example was in the training set by a factor "
        "of at most e^ε ≤ 2.72 (except with probability δ).",
        "It does not mean nothing about a person can be learnt: population-level facts, and "
        "people who contribute many examples, are not limited by an example-level ε.",
    ),
    (
        "1 < ε ≤ 10",
        10.0,
        "Moderate, the range of most published DP deep-learning results: the formal bound "
        "still limits membership inference, but the odds can change by up to e^10 ≈ 22,000.",
        "It does not mean the model leaks its training data: the bound is worst-case, and "
        "attacks measured against DP-SGD models are usually far weaker; but the guarantee "
        "alone no longer rules out confident inference at low false-positive rates.",
    ),
    (
        "ε > 10",
        math.inf,
        "Weak as a formal guarantee: the bound allows a near-perfect membership-inference "
        "attack at some false-positive rates.",
        "It does not mean such an attack exists; it means the guarantee alone cannot rule "
        "one out, so any privacy claim needs other evidence (e.g. empirical auditing).",
    ),
)

_BOUND_NOTE = (
    "Every ε in this report is an upper bound on the privacy loss at δ: the true ε is at "
    "most this. The headline is the smallest upper bound of the accountants that "
    "succeeded, which is itself a valid upper bound. PRV's lower bound says how much "
    "smaller the true ε of this mechanism can be."
)


class _ExcludedOrdersFilter(logging.Filter):
    """Drop dp-accounting's per-order "Excluding this order" log lines (they cannot
    lower ε, so the bound stays valid)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Excluding this order" not in record.getMessage()


def _iso(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat(
        timespec="seconds")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def plan_hash(plan: TrainingPlan) -> str:
    """Return SHA-256 of the plan's canonical JSON (the store's plan id is its first 16 digits).

    Example:
        >>> plan = TrainingPlan(dataset_size=100, batch_size=10, noise_multiplier=1.0,
        ...                     epochs=1, delta=1e-3)
        >>> len(plan_hash(plan))
        64
    """
    text = json.dumps(plan.to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _git_state() -> tuple[str | None, bool | None]:
    """Return (commit, dirty) of the git checkout holding this dpplan, or (None, None)."""
    root = Path(dpplan.__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None, None

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                                  text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = git("status", "--porcelain", "--", "dpplan", "pyproject.toml")
    return commit.strip(), (None if status is None else bool(status.strip()))


def membership_tpr_bound(epsilon: float, delta: float, false_positive_rate: float) -> float:
    """Return the largest true-positive rate any membership test can reach at a given FPR.

    For an (ε, δ)-DP mechanism, every test of "example in" against "example out" satisfies
    ``TPR ≤ min(e^ε·FPR + δ, 1 − e^{−ε}(1 − δ − FPR))`` (Kairouz, Oh & Viswanath 2015,
    the hypothesis-testing view of differential privacy).

    Args:
        epsilon: ε ≥ 0 (``inf`` allowed: the bound is then 1).
        delta: δ in [0, 1).
        false_positive_rate: the attacker's false-positive rate, in [0, 1].

    Returns:
        The bound, in [false_positive_rate, 1].

    Example:
        >>> round(membership_tpr_bound(1.0, 1e-5, 0.01), 5)
        0.02719
    """
    if epsilon > 700:
        return 1.0
    first = math.exp(epsilon) * false_positive_rate + delta
    second = 1.0 - math.exp(-epsilon) * (1.0 - delta - false_positive_rate)
    return min(1.0, first, second)


def _method_curve(curve: EpsilonCurve) -> MethodCurve:
    name, description = _METHOD_INFO[curve.method]
    library = next(key for key in curve.versions if key != "dpplan")
    return MethodCurve(
        method=curve.method,
        name=name,
        library=library,
        library_version=curve.versions[library],
        description=description,
        epsilons=curve.epsilons,
        lower=curve.lower,
        estimates=curve.estimates,
        epsilon=curve.epsilon,
        settings=_jsonable(curve.settings),
        warnings=curve.warnings,
    )


def _jsonable(settings: dict[str, Any]) -> dict[str, Any]:
    """Return ``settings`` with tuples as lists and numpy scalars as Python numbers."""
    return json.loads(json.dumps(settings, default=float))


def _accounting(comparison: Comparison, plan: TrainingPlan) -> Accounting:
    curves = tuple(_method_curve(curve) for curve in comparison.curves)
    prv = next((c for c in comparison.curves if c.method == "prv"), None)
    libraries: dict[str, str] = {}
    for method in METHODS:
        libraries.update(library_versions(method))
    libraries["dpplan"] = dpplan.__version__
    return Accounting(
        epochs=comparison.curves[0].epochs,
        steps=tuple(plan.steps_after(epoch) for epoch in comparison.curves[0].epochs),
        curves=curves,
        failures=dict(comparison.failures),
        headline_method=comparison.headline_method,
        headline_epsilon=comparison.headline_epsilon,
        prv_lower_bound=None if prv is None or prv.lower is None else prv.lower[-1],
        delta=plan.delta,
        one_over_dataset_size=1 / plan.dataset_size,
        delta_below_one_over_dataset_size=plan.delta < 1 / plan.dataset_size,
        libraries=dict(sorted(libraries.items())),
        bound_note=_BOUND_NOTE,
    )


def _best_epsilon(plan: TrainingPlan) -> tuple[float, str]:
    """Return the smallest upper bound (and its method) of the backends for ``plan``."""
    found = []
    for method in METHODS:
        try:
            found.append((get_accountant(method).epsilon(plan), method))
        except AccountingError:
            continue
    if not found:
        raise AccountingError(f"every accounting method failed for plan {plan.to_dict()}")
    return min(found, key=lambda item: (item[0], METHODS.index(item[1])))


def _composed_epsilon(parts: Sequence[tuple[TrainingPlan, int]], delta: float,
                      ) -> tuple[float, str, str]:
    """Return (ε, method, description) of composing ``epochs`` of each plan in ``parts``."""
    first = parts[0][0]
    same = all((p.dataset_size, p.batch_size, p.noise_multiplier, p.max_grad_norm)
               == (first.dataset_size, first.batch_size, first.noise_multiplier,
                   first.max_grad_norm) for p, _ in parts)
    total_epochs = sum(epochs for _, epochs in parts)
    if same:
        try:
            composed = first.replace(epochs=total_epochs, delta=delta)
        except PlanError:
            composed = None
        if composed is not None:
            epsilon, method = _best_epsilon(composed)
            return epsilon, method, (
                f"All {len(parts)} runs share one mechanism (sample rate "
                f"{first.sample_rate:.6g}, noise multiplier {first.noise_multiplier:g}), so "
                f"together they are {total_epochs} epochs ({composed.total_steps} noisy steps) "
                f"of it: ε of that composition, the smallest upper bound of RDP, PRV and PLD "
                f"(here {method.upper()})."
            )
        steps = total_epochs * first.steps_per_epoch
        epsilon = get_accountant("rdp").compute(
            sample_rate=first.sample_rate, noise_multiplier=first.noise_multiplier,
            delta=delta, steps=(steps,)).upper[-1]
        return epsilon, "rdp", (
            f"All {len(parts)} runs share one mechanism; their {steps} noisy steps exceed "
            "what PRV and PLD answer in bounded time, so ε is RDP's upper bound."
        )
    event = dp_event.ComposedDpEvent(events=[
        dpsgd_event(plan, steps=epochs * plan.steps_per_epoch) for plan, epochs in parts
    ])
    found = []
    for method, make in (
        ("rdp", lambda: dp_accounting.rdp.RdpAccountant(
            orders=list(get_accountant("rdp").orders))),
        ("pld", lambda: dp_accounting.pld.PLDAccountant()),
    ):
        try:
            with _QuietAbsl():
                found.append((float(make().compose(event).get_epsilon(delta)), method))
        except (ValueError, ArithmeticError, MemoryError):
            continue
    if not found:
        raise AccountingError("composing the runs of the group failed with RDP and PLD")
    epsilon, method = min(found)
    return epsilon, method, (
        f"The {len(parts)} runs use different mechanisms; their DP-SGD events are composed "
        f"with dp-accounting (RDP and PLD; the smaller upper bound, {method.upper()}, is "
        "shown)."
    )


class _QuietAbsl:
    """Context manager: silence dp-accounting's excluded-order log lines."""

    def __enter__(self) -> None:
        self.filter = _ExcludedOrdersFilter()
        logging.getLogger("absl").addFilter(self.filter)

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("absl").removeFilter(self.filter)


def _repeat_and_select(plan: TrainingPlan, mean: int) -> float:
    """ε of releasing the best of a Poisson(mean) number of runs of ``plan`` (RDP)."""
    accountant = dp_accounting.rdp.RdpAccountant(orders=list(get_accountant("rdp").orders))
    event = dp_event.RepeatAndSelectDpEvent(event=dpsgd_event(plan), mean=float(mean),
                                            shape=math.inf)
    with _QuietAbsl():
        return float(accountant.compose(event).get_epsilon(plan.delta))


def _tuning(plan: TrainingPlan, accounted: TrainingPlan, headline: float,
            run: RunRecord | None, group: Sequence[RunRecord],
            tuning_runs: int | None) -> tuple[Tuning, list[str]]:
    notes: list[str] = []
    if len(group) > 1:
        source, runs_tried = "run store group", len(group)
        parts = []
        for member in group:
            if member.records and not member.private:
                notes.append(f"run {member.id} of the group is non-private: ε of the group "
                             "is infinite.")
            parts.append((member.plan, len(member.records)))
        parts = [(p, e) for p, e in parts if e > 0]
        unfinished = [m.id for m in group if m.status in ("running", "queued")]
        if any(not m.private and m.records for m in group):
            all_epsilon, all_method = math.inf, None
            all_description = "A non-private run of the group touched the data: no finite ε."
        else:
            all_epsilon, all_method, all_description = _composed_epsilon(parts, plan.delta)
            all_description += (
                " Each run counts the epochs it completed (an unfinished epoch's model is "
                "discarded, so it releases nothing)."
            )
        if unfinished:
            notes.append(f"runs {unfinished} of the group are still running: the group's ε "
                         "will grow.")
        statement = (
            f"This run belongs to comparison {group[0].group_id}, in which {runs_tried} runs "
            f"were trained on the same data (runs {', '.join(str(m.id) for m in group)}). "
            f"The headline ε = {_fmt(headline)} covers this run alone, not the selection of "
            f"hyper-parameters among the runs: validation accuracy of other runs was used to "
            f"choose. ε = {_fmt(all_epsilon)} covers all {runs_tried} runs composed, so it "
            "covers publishing any or all of them, whatever the selection."
        )
        homogeneous = all(m.plan == plan for m in group)
        rs_plan = plan if homogeneous else None
    elif tuning_runs is not None and tuning_runs > 1:
        source, runs_tried = "declared", tuning_runs
        all_epsilon, all_method, all_description = _composed_epsilon(
            [(accounted, accounted.epochs)] * tuning_runs, plan.delta)
        statement = (
            f"{tuning_runs} training runs on this data were declared (hyper-parameter "
            f"tuning). The headline ε = {_fmt(headline)} covers one run; ε = "
            f"{_fmt(all_epsilon)} covers all {tuning_runs} runs composed, so it covers "
            "publishing any or all of them, whatever the selection."
        )
        rs_plan = accounted
    else:
        source = "declared" if tuning_runs is not None else "none recorded"
        runs_tried = 1
        statement = (
            "Hyper-parameter tuning is not covered. This report accounts one training run; "
            "every other run on the same data (e.g. to tune the learning rate or the plan) "
            "adds privacy loss that is not included here. Declare the number of runs with "
            "--tuning-runs K to account for them."
        )
        if run is not None:
            statement = statement.replace(
                "Declare the number of runs with --tuning-runs K to account for them.",
                "The run store records no comparison group for this run.")
        tuning = Tuning(
            runs_tried=1, source=source, group_id=run.group_id if run else None,
            run_ids=(run.id,) if run else (), accounted=False, epsilon_one_run=headline,
            epsilon_all_runs=None, epsilon_all_runs_method=None, all_runs_description=None,
            repeat_and_select_epsilon=None, repeat_and_select_applies=False,
            repeat_and_select_description=None, statement=statement,
        )
        return tuning, notes
    rs_epsilon = rs_description = None
    if rs_plan is not None:
        rs_epsilon = _repeat_and_select(rs_plan, runs_tried)
        rs_description = (
            f"For comparison only, it does not apply here: if the number of runs had been "
            f"drawn from a Poisson distribution with mean {runs_tried} before tuning, and "
            f"only the best run released, the whole procedure would be (ε = "
            f"{_fmt(rs_epsilon)}, δ = {plan.delta:g})-DP (Papernot & Steinke 2022, Thm. 6; "
            "dp-accounting RepeatAndSelectDpEvent with shape = ∞, RDP). dp-accounting has "
            f"no such bound for a fixed number of runs; the fixed {runs_tried} runs here are "
            "covered by the composition bound above."
        )
    tuning = Tuning(
        runs_tried=runs_tried, source=source,
        group_id=group[0].group_id if len(group) > 1 else None,
        run_ids=tuple(m.id for m in group) if len(group) > 1 else ((run.id,) if run else ()),
        accounted=True, epsilon_one_run=headline, epsilon_all_runs=all_epsilon,
        epsilon_all_runs_method=all_method, all_runs_description=all_description,
        repeat_and_select_epsilon=rs_epsilon, repeat_and_select_applies=False,
        repeat_and_select_description=rs_description, statement=statement,
    )
    return tuning, notes


def _fmt(value: float) -> str:
    if math.isinf(value):
        return "∞"
    return f"{value:.4f}" if value < 1000 else f"{value:.4g}"


def _model_text(options: dict[str, Any]) -> str:
    model = options.get("model", "seed")
    if model == "seed":
        return ("the super-convergence study's CNN (two convolutions, dropout, two linear "
                "layers), ReLU")
    if model == "tempered":
        return (f"Papernot et al.'s tempered-sigmoid CNN, "
                f"{options.get('activation', 'tanh')} activations")
    return str(model)


def _optimizer_text(schedule: dict[str, Any], batch_size: int) -> str:
    if schedule.get("kind") == "one_cycle" and schedule.get("cycle_momentum", False):
        momentum = (f"momentum cycled {schedule.get('max_momentum', 0.95):g} → "
                    f"{schedule.get('base_momentum', 0.85):g} → "
                    f"{schedule.get('max_momentum', 0.95):g}")
    else:
        momentum = f"momentum {schedule.get('momentum', 0.0):g}"
    return (f"SGD (torch.optim.SGD), {momentum}, wrapped in Opacus' DPOptimizer "
            f"(per-example clipping, Gaussian noise, loss_reduction='mean', "
            f"expected_batch_size={batch_size})")


def _schedule_text(schedule: dict[str, Any]) -> str:
    kind = schedule.get("kind")
    if kind == "one_cycle":
        peak = schedule.get("max_lr", 0.0)
        div = schedule.get("div_factor", 25.0)
        final = schedule.get("final_div_factor", 1e4)
        return (f"one-cycle (torch OneCycleLR, stepped after every optimizer step): learning "
                f"rate from {peak / div:g} up to {peak:g} over the first "
                f"{schedule.get('pct_start', 0.25):.0%} of the steps, then annealed to "
                f"{peak / (div * final):g}")
    if kind == "plateau":
        return (f"reduce on plateau (torch ReduceLROnPlateau on the validation loss, stepped "
                f"after every epoch): learning rate {schedule.get('lr', 0.0):g}, multiplied "
                f"by {schedule.get('factor', 0.1):g} after {schedule.get('patience', 1)} "
                f"epoch(s) without improvement, floor {schedule.get('min_lr', 0.0):g}")
    if kind == "constant":
        return f"constant learning rate {schedule.get('lr', 0.0):g}"
    return json.dumps(schedule)


def _run_summary(run: RunRecord) -> RunSummary:
    differences = [
        abs(r.epsilon_rdp - r.epsilon_opacus) / r.epsilon_opacus
        for r in run.records
        if math.isfinite(r.epsilon_rdp) and math.isfinite(r.epsilon_opacus) and r.epsilon_opacus > 0
    ]
    return RunSummary(
        id=run.id, status=run.status, stop_reason=run.stop_reason, error=run.error,
        device=run.device, seed=run.seed, group_id=run.group_id,
        epsilon_method=str(run.options.get("method", "prv")),
        options=_jsonable(dict(run.options)), versions=dict(run.versions),
        created_at=_iso(run.created_at), updated_at=_iso(run.updated_at),
        training_seconds=math.fsum(r.seconds for r in run.records),
        # The logged training loss is computed on private batches without noise: left out.
        epochs=tuple(RunEpoch(**{k: v for k, v in dataclasses.asdict(r).items()
                                 if k != "train_loss"}) for r in run.records),
        opacus_max_relative_difference=max(differences) if differences else None,
        warnings=run.warnings,
    )


def _commands(plan: TrainingPlan, run: RunRecord | None, store_home: str | None,
              tuning_runs: int | None, title: str | None, notes: str | None) -> dict[str, str]:
    words = ["dpplan", "report"]
    if run is not None:
        words += ["--run", str(run.id)]
        if store_home is not None:
            words += ["--home", store_home]
    else:
        words += [
            "--dataset-size", str(plan.dataset_size), "--batch-size", str(plan.batch_size),
            "--noise-multiplier", repr(plan.noise_multiplier), "--epochs", str(plan.epochs),
            "--delta", repr(plan.delta), "--max-grad-norm", repr(plan.max_grad_norm),
        ]
    if tuning_runs is not None:
        words += ["--tuning-runs", str(tuning_runs)]
    if title is not None:
        words += ["--title", title]
    if notes is not None:
        words += ["--notes", notes]
    return {fmt: shlex.join(words + ["--format", fmt]) for fmt in FORMATS}


def _check_text(name: str, value: object, maximum: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > maximum:
        raise PlanError(name, value, f"a non-blank string of at most {maximum} characters")
    return value


def _guarantee_lists(run: RunRecord | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    protects = (
        "every noisy gradient update, and therefore every intermediate model, including "
        "the model parameters of the checkpoint saved after each epoch",
        "the final model",
        "anything computed from the models alone (post-processing), e.g. predictions",
    )
    does_not = [
        "the dataset size N: the accounting treats it as public",
        "people with several examples: the guarantee is per example, and k examples of one "
        "person are protected only at group-privacy strength (about kε)",
        "other training runs on the same data (hyper-parameter tuning): see the tuning "
        "statement",
    ]
    if run is not None:
        does_not += [
            "the per-epoch mean training loss the trainer logs: it is computed from the "
            "training batches without noise, so this report leaves it out; keep the run "
            "store internal",
            "the random-number state in checkpoint files and the run store (it would let "
            "its holder recompute the noise): keep those files private",
            "the validation and test examples: they are not in the training set, and "
            "accuracies and losses on them are computed exactly (validation accuracy is "
            "also used to select learning rates)",
            "attacks on the implementation: sampling and noise use torch's "
            "non-cryptographic random-number generator (Opacus secure_mode off), and the "
            "analysis assumes exact real arithmetic",
        ]
    else:
        does_not.append(
            "a trainer that does not sample, clip and add noise exactly as planned: the "
            "guarantee is for the mechanism described below")
    return protects, tuple(does_not)


def build_report(
    plan: TrainingPlan,
    *,
    run: RunRecord | None = None,
    group_runs: Sequence[RunRecord] = (),
    tuning_runs: int | None = None,
    title: str | None = None,
    notes: str | None = None,
    store_home: str | None = None,
    created_at: str | None = None,
) -> Report:
    """Build the ε-budget report of a plan, or of a run of it.

    Apart from the creation time and the git commit, the result depends only on the
    arguments: the same arguments give an equal report.

    Args:
        plan: the plan. For a run, pass ``run.plan``.
        run: a stored, private run with at least one completed epoch; the report then
            accounts the epochs it completed and shows its per-epoch measurements.
        group_runs: every run of the run's comparison group (``run`` included or not), to
            account for hyper-parameter tuning. :func:`build_run_report` fills it in.
        tuning_runs: the number of training runs made on this data (≥ 1), when there is no
            group: the report then also gives ε of all of them composed.
        title: the report's title (default "DP-SGD privacy report"), at most 300 characters.
        notes: the author's notes, shown as written (escaped), at most 20,000 characters.
        store_home: the run store folder, written into the regenerating command of a run.
        created_at: the creation time (ISO 8601); default now.

    Returns:
        A :class:`Report`. Its headline equals ``dpplan.compare(accounted_plan)``'s, where
        ``accounted_plan`` is ``plan`` cut to the run's completed epochs.

    Raises:
        PlanError: if ``plan`` is not a TrainingPlan, ``run`` does not match it, is
            non-private or has no completed epoch, a group run belongs to another group,
            ``tuning_runs`` is not an integer in [1, 10000] or given with a group, or the
            title or notes are invalid.
        AccountingError: if every accountant failed.

    Example:
        >>> plan = TrainingPlan(dataset_size=60000, batch_size=256, noise_multiplier=1.1,
        ...                     epochs=2, delta=1e-5)
        >>> report = build_report(plan, title="MNIST plan")
        >>> report.epsilon == dpplan.compare(plan).headline_epsilon
        True
    """
    if not isinstance(plan, TrainingPlan):
        raise PlanError("plan", plan, "a dpplan.TrainingPlan", "Build one with TrainingPlan(...).")
    title = _check_text("title", title, MAX_TITLE_LENGTH)
    notes = _check_text("notes", notes, MAX_NOTES_LENGTH)
    if tuning_runs is not None:
        tuning_runs = _validate.integer(minimum=1, maximum=10_000, tuning_runs=tuning_runs,
                                        hint="Give the number of training runs on this data.")
    group: list[RunRecord] = []
    if run is not None:
        if not isinstance(run, RunRecord):
            raise PlanError("run", run, "a dpplan.store.RunRecord",
                            "Load one with RunStore().get_run(run_id).")
        if run.plan != plan:
            raise PlanError("run", run.id, "a run of the given plan", "Pass plan=run.plan.")
        if not run.private:
            raise PlanError("run", run.id, "a private run",
                            "A non-private baseline has no differential-privacy guarantee "
                            "to report.")
        if not run.records:
            raise PlanError("run", run.id, "a run with at least one completed epoch",
                            f"Run {run.id} is {run.status} with no epoch recorded.")
        for member in group_runs:
            if not isinstance(member, RunRecord) or run.group_id is None or (
                    member.group_id != run.group_id):
                raise PlanError("group_runs", getattr(member, "id", member),
                                f"runs of the run's group {run.group_id!r}")
        by_id = {member.id: member for member in group_runs}
        by_id[run.id] = run
        group = [by_id[key] for key in sorted(by_id)] if run.group_id is not None else [run]
    elif group_runs:
        raise PlanError("group_runs", len(group_runs), "empty without a run",
                        "Pass run= as well.")
    if tuning_runs is not None and len(group) > 1:
        raise PlanError("tuning_runs", tuning_runs, "omitted for a run of a comparison group",
                        f"The store records {len(group)} runs in group {run.group_id}.")

    epochs_done = len(run.records) if run is not None else plan.epochs
    accounted = plan if epochs_done == plan.epochs else plan.replace(epochs=epochs_done)
    comparison = compare(accounted)
    accounting = _accounting(comparison, accounted)
    headline, method = comparison.headline_epsilon, comparison.headline_method
    # Plan-level warnings and failures come first; each accountant's own notes (e.g. RDP
    # orders dp-accounting excluded) stay with its curve in the accounting section.
    warnings_found: list[str] = list(comparison.warnings)
    warnings_found += [f"{m}: failed: {text}" for m, text in comparison.failures.items()]

    tuning, tuning_notes = _tuning(plan, accounted, headline, run, group, tuning_runs)
    warnings_found += tuning_notes
    if tuning.runs_tried > 1:
        warnings_found.append(
            f"{tuning.runs_tried} training runs on this data "
            + ("were declared" if tuning.source == "declared" else "are in the run store")
            + f": the headline ε covers one run; all {tuning.runs_tried} runs together: "
            f"ε = {_fmt(tuning.epsilon_all_runs)}.")
    elif run is None and tuning_runs is None:
        warnings_found.append("Hyper-parameter tuning is not accounted (no --tuning-runs).")

    protects, does_not = _guarantee_lists(run)
    unit_description = (
        f"one MNIST training example (an image and its label), one of the {plan.dataset_size:,} "
        "examples left for training after the validation split"
        if run is not None else
        f"one training example: one of the dataset_size = {plan.dataset_size:,} records "
        "that batches are sampled from"
    )
    what = f"run {run.id}" if run is not None else "training with this plan"
    statement = (
        f"{what[0].upper()}{what[1:]} is (ε = {_fmt(headline)}, δ = {plan.delta:g})-"
        f"differentially private at the example level, in the central model, under "
        f"add-or-remove adjacency with Poisson sampling at rate q = {plan.sample_rate:.6g}: "
        f"for any two training sets that differ by one example added or removed, the "
        f"probability of any set of released outputs (every intermediate checkpoint and the "
        f"final model) changes by at most a factor e^ε, plus δ. ε is the smallest upper bound "
        f"of RDP, PRV and PLD accounting ({method.upper()}), after {accounted.epochs} "
        f"epoch(s) = {accounted.total_steps} noisy steps."
    )
    guarantee = Guarantee(
        definition="(ε, δ)-differential privacy",
        epsilon=headline, delta=plan.delta, method=method,
        trust_model="central",
        trust_model_description=(
            "A trusted trainer holds the raw training data; the guarantee is about what it "
            "releases (the models), not about who can read the data during training."),
        unit="example", unit_description=unit_description,
        adjacency="add-or-remove one example",
        sampling="Poisson",
        protects=protects, does_not_protect=does_not, statement=statement, tuning=tuning,
    )

    schedule = dict(run.schedule) if run is not None else None
    mechanism = MechanismSettings(
        algorithm=(
            "DP-SGD (Abadi et al. 2016): at each step, a Poisson-sampled batch; each "
            "example's gradient clipped to L2 norm ≤ C; Gaussian noise N(0, σ²C²) added to "
            "the sum; divided by the expected batch size B; an optimizer step."),
        dataset_size=plan.dataset_size, batch_size=plan.batch_size,
        sample_rate=plan.sample_rate, steps_per_epoch=plan.steps_per_epoch,
        epochs_planned=plan.epochs, total_steps_planned=plan.total_steps,
        epochs=accounted.epochs, total_steps=accounted.total_steps,
        noise_multiplier=plan.noise_multiplier, max_grad_norm=plan.max_grad_norm,
        noise_standard_deviation=plan.noise_multiplier * plan.max_grad_norm,
        optimizer=_optimizer_text(schedule, plan.batch_size) if schedule is not None else None,
        schedule=_jsonable(schedule) if schedule is not None else None,
        schedule_description=_schedule_text(schedule) if schedule is not None else None,
        model=_model_text(run.options) if run is not None else None,
    )

    no_amplification = float(dp_accounting.get_epsilon_gaussian(
        plan.noise_multiplier / math.sqrt(accounted.epochs), plan.delta))
    if run is not None:
        steps_seen = run.records[-1].steps
        matches = steps_seen == accounted.total_steps
        used_description = (
            f"Poisson, as assumed: at each step every training example was included "
            f"independently with probability q = {plan.sample_rate:.6g} (a Bernoulli mask "
            f"drawn with torch.rand on {run.device}, seeded), for exactly "
            f"{plan.steps_per_epoch} steps per epoch; batch sizes vary around "
            f"{plan.batch_size} and an empty batch still takes a noisy step. The optimizer's "
            f"step hook counted {steps_seen} noisy steps after {len(run.records)} epoch(s); "
            f"the accounting composes {accounted.total_steps}."
        )
        if not matches:
            warnings_found.append(
                f"The optimizer hook counted {steps_seen} steps but the accounting composes "
                f"{accounted.total_steps}: the guarantee does not describe this run.")
        used: str | None = "Poisson"
    else:
        matches = None
        used = None
        used_description = (
            "No trainer ran: this is a plan. The guarantee holds only for a trainer that "
            f"samples this way, for exactly {plan.steps_per_epoch} steps per epoch, at "
            f"q = {plan.sample_rate:.6g} (dpplan's trainer does; Opacus' own DataLoader "
            "infers q = 1/len(loader), which can differ).")
    sampling = Sampling(
        assumed="Poisson",
        assumed_description=(
            f"At each of the {accounted.total_steps} steps every example is included "
            f"independently with probability q = B/N = {plan.sample_rate:.6g}; the accounting "
            "uses the amplification this randomness gives."),
        used=used, used_description=used_description, matches=matches,
        epsilon_poisson=headline, epsilon_poisson_method=method,
        epsilon_no_amplification=no_amplification,
        no_amplification_description=(
            f"If instead each example is used exactly once per epoch, in an arbitrary order "
            f"(shuffled or fixed batches), no amplification by sampling or shuffling can be "
            f"claimed: each epoch is one Gaussian mechanism with noise multiplier σ = "
            f"{plan.noise_multiplier:g} for that example (sensitivity C under add-or-remove), "
            f"and {accounted.epochs} epoch(s) compose to one Gaussian mechanism with noise "
            f"multiplier σ/√E = {plan.noise_multiplier / math.sqrt(accounted.epochs):.6g} "
            f"(Dong, Roth & Su 2019), whose exact ε at δ = {plan.delta:g} is given (Balle & "
            f"Wang 2018). This is the second number of TF Privacy's privacy statement."),
        no_amplification_method="exact Gaussian (dp_accounting.get_epsilon_gaussian)",
    )

    run_summary = _run_summary(run) if run is not None else None
    if run is not None:
        warnings_found += list(run.warnings)
        if run.status != "finished":
            warnings_found.append(
                f"Run {run.id} is {run.status}"
                + (f" ({run.stop_reason})" if run.stop_reason else "")
                + f": ε covers the {len(run.records)} completed epoch(s) of {plan.epochs}.")
        elif len(run.records) < plan.epochs:
            warnings_found.append(
                f"Run {run.id} stopped after {len(run.records)} of {plan.epochs} epochs"
                + (f" ({run.stop_reason})" if run.stop_reason else "")
                + ": ε covers the completed epochs.")

    interpretation = Interpretation(
        epsilon=headline, delta=plan.delta,
        attack=("deciding from the released models whether one chosen example was in the "
                "training set, when every other example is known"),
        formula="TPR ≤ min(e^ε·FPR + δ, 1 − e^(−ε)·(1 − δ − FPR))",
        source=("Kairouz, Oh & Viswanath 2015, the hypothesis-testing view of differential "
                "privacy"),
        membership_inference=tuple(
            MembershipBound(false_positive_rate=fpr,
                            true_positive_rate_bound=membership_tpr_bound(headline, plan.delta,
                                                                          fpr))
            for fpr in FALSE_POSITIVE_RATES),
        tier=next(name for name, upper, _, _ in _TIERS if headline <= upper),
        tiers=tuple(
            Tier(name=name, upper=upper, applies=name == next(
                n for n, u, _, _ in _TIERS if headline <= u), means=means,
                 does_not_mean=does_not_mean)
            for name, upper, means, does_not_mean in _TIERS),
    )

    commit, dirty = _git_state()
    reproducibility = Reproducibility(
        dpplan_version=dpplan.__version__,
        python_version=platform.python_version(),
        git_commit=commit, git_dirty=dirty,
        plan_hash=plan_hash(plan),
        created_at=created_at or _now(),
        commands=_commands(plan, run, store_home, tuning_runs, title, notes),
    )
    default_title = "DP-SGD privacy report" + (f": run {run.id}" if run is not None else "")
    return Report(
        schema=SCHEMA_ID, schema_version=SCHEMA_VERSION,
        kind="run" if run is not None else "plan",
        title=title if title is not None else default_title,
        notes=notes,
        plan=plan.to_dict(),
        guarantee=guarantee, mechanism=mechanism, sampling=sampling, accounting=accounting,
        run=run_summary, interpretation=interpretation, reproducibility=reproducibility,
        warnings=tuple(dict.fromkeys(warnings_found)),
    )


def build_run_report(store: RunStore, run_id: int, *, title: str | None = None,
                     notes: str | None = None, created_at: str | None = None) -> Report:
    """Build the report of a stored run, with its comparison group from the same store.

    Args:
        store: the run store.
        run_id: the run's id.
        title: see :func:`build_report`.
        notes: see :func:`build_report`.
        created_at: see :func:`build_report`.

    Returns:
        ``build_report(run.plan, run=run, group_runs=<runs of its group>, ...)``.

    Raises:
        PlanError: if there is no such run, or :func:`build_report` refuses it.
    """
    if not isinstance(store, RunStore):
        raise PlanError("store", store, "a dpplan.store.RunStore")
    run_id = _validate.integer(minimum=1, run_id=run_id, hint="List the runs with 'dpplan runs'.")
    run = store.get_run(run_id)
    group = ([other for other in store.list_runs() if other.group_id == run.group_id]
             if run.group_id is not None else [])
    return build_report(run.plan, run=run, group_runs=group, title=title, notes=notes,
                        store_home=str(store.home.resolve()), created_at=created_at)


def save_run_report(store: RunStore, report: Report) -> None:
    """Store a run's report with the run (``RunStore.save_report``), as JSON.

    Raises:
        PlanError: if ``report`` is not the report of a run, or the run is not in ``store``.
    """
    if not isinstance(report, Report) or report.run is None:
        raise PlanError("report", getattr(report, "kind", report), "the report of a run",
                        "Plan reports are not stored; write them to a file.")
    store.get_run(report.run.id)
    store.save_report(report.run.id, report.to_dict())


def load_run_report(store: RunStore, run_id: int) -> Report | None:
    """Return the report stored with a run, or ``None`` if it has none.

    Raises:
        PlanError: if there is no such run, or the stored report is not a valid report of
            this schema version.
    """
    from dpplan.report.model import report_from_dict

    run_id = _validate.integer(minimum=1, run_id=run_id, hint="List the runs with 'dpplan runs'.")
    store.get_run(run_id)
    data = store.load_report(run_id)
    return None if data is None else report_from_dict(data)
