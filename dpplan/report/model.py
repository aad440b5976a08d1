"""The :class:`Report` value: every field of an ε-budget report, typed and explicit.

A report is a tree of frozen dataclasses. :meth:`Report.to_dict` gives the JSON form that
``report.schema.json`` (shipped in this package) describes, and :func:`report_from_dict`
reads it back. Non-finite floats are written as the strings ``"inf"``, ``"-inf"`` or
``"nan"`` so the JSON stays standard.

This module imports neither torch nor streamlit.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Mapping
from importlib import resources
from typing import Any

from dpplan.errors import PlanError

__all__ = [
    "SCHEMA_ID",
    "SCHEMA_VERSION",
    "Accounting",
    "Guarantee",
    "Interpretation",
    "MechanismSettings",
    "MembershipBound",
    "MethodCurve",
    "Report",
    "Reproducibility",
    "RunEpoch",
    "RunSummary",
    "Sampling",
    "Tier",
    "Tuning",
    "report_from_dict",
    "report_schema",
]

#: The ``schema`` value of every dpplan report.
SCHEMA_ID = "dpplan-report"
#: Bumped when a field is removed or changes meaning; new optional fields keep it.
SCHEMA_VERSION = 1

_FROZEN = dict(frozen=True, kw_only=True, slots=True)


@dataclasses.dataclass(**_FROZEN)
class Tuning:
    """Whether hyper-parameter tuning (other runs on the same data) is accounted.

    Attributes:
        runs_tried: training runs on this data that the report knows of (1 if none other).
        source: where that number comes from: ``"none recorded"``, ``"declared"`` (the
            ``tuning_runs`` argument) or ``"run store group"``.
        group_id: the run store's group of the comparison, if any.
        run_ids: ids of the runs in that group.
        accounted: whether the report gives an ε that covers all ``runs_tried`` runs.
        epsilon_one_run: ε of the reported run (or plan) alone: the headline.
        epsilon_all_runs: ε of all runs composed (covers releasing every run, hence any
            selection among them); ``None`` when there are no other runs.
        epsilon_all_runs_method: the accountant that gave ``epsilon_all_runs``.
        all_runs_description: how ``epsilon_all_runs`` was computed.
        repeat_and_select_epsilon: ε of Papernot & Steinke's repeat-and-select with a
            Poisson-distributed number of runs of mean ``runs_tried`` (dp-accounting RDP).
        repeat_and_select_applies: whether that number is a guarantee for these runs. It
            is only when the number of runs was drawn at random and only the best run was
            released; dpplan's comparisons run a fixed number, so it is ``False`` there.
        repeat_and_select_description: what the repeat-and-select number assumes.
        statement: one paragraph saying what is and is not covered.
    """

    runs_tried: int
    source: str
    group_id: str | None
    run_ids: tuple[int, ...]
    accounted: bool
    epsilon_one_run: float
    epsilon_all_runs: float | None
    epsilon_all_runs_method: str | None
    all_runs_description: str | None
    repeat_and_select_epsilon: float | None
    repeat_and_select_applies: bool
    repeat_and_select_description: str | None
    statement: str


@dataclasses.dataclass(**_FROZEN)
class Guarantee:
    """The privacy guarantee being stated.

    Attributes:
        definition: the privacy definition, "(ε, δ)-differential privacy".
        epsilon: the headline ε: the smallest upper bound of the accountants that succeeded.
        delta: δ.
        method: the accountant that gave ``epsilon``.
        trust_model: ``"central"``: a trusted trainer sees the raw data; only its outputs
            are protected.
        trust_model_description: what that means.
        unit: ``"example"``.
        unit_description: what one example is.
        adjacency: the neighbouring relation, ``"add-or-remove one example"``.
        sampling: the sampling the accounting assumes, ``"Poisson"``.
        protects: what the guarantee covers.
        does_not_protect: what it does not cover.
        statement: the guarantee in one paragraph.
        tuning: hyper-parameter tuning coverage.
    """

    definition: str
    epsilon: float
    delta: float
    method: str
    trust_model: str
    trust_model_description: str
    unit: str
    unit_description: str
    adjacency: str
    sampling: str
    protects: tuple[str, ...]
    does_not_protect: tuple[str, ...]
    statement: str
    tuning: Tuning


@dataclasses.dataclass(**_FROZEN)
class MechanismSettings:
    """The DP-SGD mechanism that was accounted.

    Attributes:
        algorithm: "DP-SGD" and what each step does.
        dataset_size: N, training examples (treated as public).
        batch_size: expected batch size B under Poisson sampling.
        sample_rate: q = B / N.
        steps_per_epoch: ceil(N / B).
        epochs_planned: epochs in the plan.
        total_steps_planned: epochs_planned * steps_per_epoch.
        epochs: epochs accounted (fewer than planned when a run stopped early).
        total_steps: noisy steps accounted, epochs * steps_per_epoch.
        noise_multiplier: σ, noise standard deviation over the clipping norm.
        max_grad_norm: C, the per-example clipping norm.
        noise_standard_deviation: σ·C, the standard deviation of the noise added to the sum
            of clipped gradients.
        optimizer: the optimizer, for a run (``None`` for a plan: it does not change ε).
        schedule: the learning-rate schedule spec, for a run.
        schedule_description: the schedule in words, for a run.
        model: the network, for a run.
    """

    algorithm: str
    dataset_size: int
    batch_size: int
    sample_rate: float
    steps_per_epoch: int
    epochs_planned: int
    total_steps_planned: int
    epochs: int
    total_steps: int
    noise_multiplier: float
    max_grad_norm: float
    noise_standard_deviation: float
    optimizer: str | None
    schedule: dict[str, Any] | None = dataclasses.field(hash=False)
    schedule_description: str | None
    model: str | None


@dataclasses.dataclass(**_FROZEN)
class Sampling:
    """Assumed versus used sampling, and ε with and without amplification by sampling.

    Attributes:
        assumed: the sampling the accounting assumes (``"Poisson"``).
        assumed_description: what that means.
        used: the sampling the trainer used (``None`` for a plan: no trainer ran).
        used_description: what the trainer did, or what it must do.
        matches: whether the used sampling and step count match the assumption
            (``None`` for a plan).
        epsilon_poisson: ε under Poisson sampling (the headline).
        epsilon_poisson_method: its accountant.
        epsilon_no_amplification: ε if each example is used once per epoch in an
            arbitrary order, with no amplification by sampling or shuffling.
        no_amplification_description: the assumption and how it was computed.
        no_amplification_method: the computation, for the table.
    """

    assumed: str
    assumed_description: str
    used: str | None
    used_description: str
    matches: bool | None
    epsilon_poisson: float
    epsilon_poisson_method: str
    epsilon_no_amplification: float
    no_amplification_description: str
    no_amplification_method: str


@dataclasses.dataclass(**_FROZEN)
class MethodCurve:
    """One accountant's ε after every epoch.

    Attributes:
        method: ``"rdp"``, ``"prv"`` or ``"pld"``.
        name: the method's full name.
        library: the library that computed it.
        library_version: its version.
        description: what is reported (always an upper bound).
        epsilons: ε upper bound after each accounted epoch.
        lower: PRV's lower bound on the true ε after each epoch (``None`` otherwise).
        estimates: PRV's point estimate (not a guarantee; ``None`` otherwise).
        epsilon: the final upper bound.
        settings: numerical settings (orders, grid, error bounds).
        warnings: the method's warnings.
    """

    method: str
    name: str
    library: str
    library_version: str
    description: str
    epsilons: tuple[float, ...]
    lower: tuple[float, ...] | None
    estimates: tuple[float, ...] | None
    epsilon: float
    settings: dict[str, Any] = dataclasses.field(hash=False)
    warnings: tuple[str, ...]


@dataclasses.dataclass(**_FROZEN)
class Accounting:
    """ε after every epoch from every accountant, and the headline.

    Attributes:
        epochs: ``(1, ..., epochs accounted)``.
        steps: noisy steps after each of those epochs.
        curves: one :class:`MethodCurve` per accountant that succeeded (RDP, PRV, PLD order).
        failures: method -> error message, for accountants that failed.
        headline_method: the accountant with the smallest final upper bound.
        headline_epsilon: that bound (the minimum of valid upper bounds is valid).
        prv_lower_bound: PRV's lower bound on the true final ε (``None`` if PRV failed).
        delta: δ.
        one_over_dataset_size: 1 / N.
        delta_below_one_over_dataset_size: whether δ < 1 / N.
        libraries: library -> version, for every library used.
        bound_note: how to read the numbers.
    """

    epochs: tuple[int, ...]
    steps: tuple[int, ...]
    curves: tuple[MethodCurve, ...]
    failures: dict[str, str] = dataclasses.field(hash=False)
    headline_method: str
    headline_epsilon: float
    prv_lower_bound: float | None
    delta: float
    one_over_dataset_size: float
    delta_below_one_over_dataset_size: bool
    libraries: dict[str, str] = dataclasses.field(hash=False)
    bound_note: str

    def curve(self, method: str) -> MethodCurve | None:
        """Return the curve of ``method``, or ``None`` if it failed or was not run."""
        for item in self.curves:
            if item.method == method:
                return item
        return None


@dataclasses.dataclass(**_FROZEN)
class RunEpoch:
    """One epoch of a run, as the trainer stored it (see :class:`dpplan.store.EpochRecord`),
    without the training loss: it is computed on private batches without noise, so a report
    meant to be shared leaves it out.

    Attributes:
        epoch: 1-based epoch number.
        steps: noisy optimizer steps so far, counted by the optimizer hook.
        epsilon: dpplan's ε after these steps, with the run's accounting method.
        epsilon_rdp: dpplan's RDP ε after these steps.
        epsilon_opacus: ε of Opacus' own RDP accountant, fed by the same hook.
        validation_loss: loss on the validation split.
        validation_accuracy: accuracy on the validation split, in [0, 1].
        test_accuracy: accuracy on the test set, in [0, 1].
        lr: learning rate at the end of the epoch.
        seconds: wall time of the epoch's training steps.
    """

    epoch: int
    steps: int
    epsilon: float
    epsilon_rdp: float
    epsilon_opacus: float
    validation_loss: float
    validation_accuracy: float
    test_accuracy: float
    lr: float
    seconds: float


@dataclasses.dataclass(**_FROZEN)
class RunSummary:
    """A stored training run: status, where and how it ran, and every epoch.

    Attributes:
        id: the run id in the store.
        status: queued, running, finished, failed, stopped or interrupted.
        stop_reason: why it stopped, if it did.
        error: the error, if it failed.
        device: the torch device.
        seed: the run's seed.
        group_id: the comparison it belongs to, if any.
        epsilon_method: the dpplan accountant whose ε the trainer recorded per epoch.
        options: the run options (settings that do not change ε).
        versions: library versions at training time.
        created_at: when the run started (ISO 8601, UTC).
        updated_at: when it last wrote (ISO 8601, UTC).
        training_seconds: wall time of the training steps, summed over epochs.
        epochs: the per-epoch records.
        opacus_max_relative_difference: largest |dpplan RDP ε - Opacus ε| / Opacus ε.
        warnings: the run's warnings.
    """

    id: int
    status: str
    stop_reason: str | None
    error: str | None
    device: str
    seed: int
    group_id: str | None
    epsilon_method: str
    options: dict[str, Any] = dataclasses.field(hash=False)
    versions: dict[str, str] = dataclasses.field(hash=False)
    created_at: str
    updated_at: str
    training_seconds: float
    epochs: tuple[RunEpoch, ...]
    opacus_max_relative_difference: float | None
    warnings: tuple[str, ...]


@dataclasses.dataclass(**_FROZEN)
class MembershipBound:
    """An upper bound on a membership-inference attack's true-positive rate.

    Attributes:
        false_positive_rate: the attacker's false-positive rate.
        true_positive_rate_bound: the largest true-positive rate any attack can have there.
    """

    false_positive_rate: float
    true_positive_rate_bound: float


@dataclasses.dataclass(**_FROZEN)
class Tier:
    """One ε tier and what it means.

    Attributes:
        name: the tier, e.g. "ε ≤ 1".
        upper: the tier's largest ε (``inf`` for the last).
        applies: whether the report's ε is in this tier.
        means: one sentence on what an ε in this tier means.
        does_not_mean: one sentence on what it does not mean.
    """

    name: str
    upper: float
    applies: bool
    means: str
    does_not_mean: str


@dataclasses.dataclass(**_FROZEN)
class Interpretation:
    """What (ε, δ) implies for an attacker, and the ε tier.

    Attributes:
        epsilon: the ε interpreted (the headline).
        delta: δ.
        attack: the attack the bound is about.
        formula: the bound, in words and symbols.
        source: where the bound comes from.
        membership_inference: the bound at a few false-positive rates.
        tier: the tier ε falls in.
        tiers: every tier, with what it means and what it does not.
    """

    epsilon: float
    delta: float
    attack: str
    formula: str
    source: str
    membership_inference: tuple[MembershipBound, ...]
    tier: str
    tiers: tuple[Tier, ...]


@dataclasses.dataclass(**_FROZEN)
class Reproducibility:
    """How to regenerate the report.

    Attributes:
        dpplan_version: dpplan's version.
        python_version: the Python version.
        git_commit: the commit of the dpplan source tree, if it is a git checkout.
        git_dirty: whether that tree had uncommitted changes (``None`` if unknown).
        plan_hash: SHA-256 of the plan's canonical JSON (the run store's plan id is its
            first 16 hex digits).
        created_at: when the report was made (ISO 8601, UTC). The only field that differs
            between two runs of the same command.
        commands: format -> the exact ``dpplan report`` command that regenerates it.
    """

    dpplan_version: str
    python_version: str
    git_commit: str | None
    git_dirty: bool | None
    plan_hash: str
    created_at: str
    commands: dict[str, str] = dataclasses.field(hash=False)


@dataclasses.dataclass(**_FROZEN)
class Report:
    """An ε-budget report for a plan or a run. Build it with :func:`build_report`.

    Attributes:
        schema: always ``"dpplan-report"``.
        schema_version: see :data:`SCHEMA_VERSION`.
        kind: ``"plan"`` or ``"run"``.
        title: the title (user-supplied or a default).
        notes: the author's notes, or ``None``.
        plan: the plan, as :meth:`TrainingPlan.to_dict` gives it.
        guarantee: the stated guarantee.
        mechanism: the accounted mechanism.
        sampling: assumed and used sampling; ε with and without amplification.
        accounting: ε after every epoch from each accountant.
        run: the training run, or ``None``.
        interpretation: membership-inference bounds and the ε tier.
        reproducibility: versions, hashes and the regenerating command.
        warnings: everything a reviewer should look at first.
    """

    schema: str
    schema_version: int
    kind: str
    title: str
    notes: str | None
    plan: dict[str, Any] = dataclasses.field(hash=False)
    guarantee: Guarantee
    mechanism: MechanismSettings
    sampling: Sampling
    accounting: Accounting
    run: RunSummary | None
    interpretation: Interpretation
    reproducibility: Reproducibility
    warnings: tuple[str, ...]

    @property
    def epsilon(self) -> float:
        """The headline ε."""
        return self.guarantee.epsilon

    @property
    def delta(self) -> float:
        """δ."""
        return self.guarantee.delta

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready form that ``report.schema.json`` describes."""
        return _to_json_value(self)


def _to_json_value(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_json_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json_value(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
    return value


def report_schema() -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of :meth:`Report.to_dict`.

    Example:
        >>> report_schema()["properties"]["schema_version"]["const"]
        1
    """
    text = resources.files("dpplan.report").joinpath("report.schema.json").read_text("utf-8")
    return json.loads(text)


def report_from_dict(data: Mapping[str, Any]) -> Report:
    """Rebuild a :class:`Report` from :meth:`Report.to_dict` output (or its parsed JSON).

    The data is checked against ``report.schema.json`` when ``jsonschema`` is installed,
    and always field by field while it is converted.

    Args:
        data: the report's JSON form.

    Returns:
        The :class:`Report`; ``report_from_dict(r.to_dict()) == r``.

    Raises:
        PlanError: (field ``report``) if ``data`` is not a dpplan report of this schema
            version or does not match the schema.

    Example:
        >>> try:
        ...     report_from_dict({"schema": "other"})
        ... except PlanError as error:
        ...     print(error.field, "|", error.expected)
        report | a dpplan report (schema 'dpplan-report', version 1)
    """
    if not isinstance(data, Mapping):
        raise PlanError("report", data, "a mapping (a parsed dpplan report)")
    if data.get("schema") != SCHEMA_ID or data.get("schema_version") != SCHEMA_VERSION:
        raise PlanError(
            "report", _short(data),
            f"a dpplan report (schema {SCHEMA_ID!r}, version {SCHEMA_VERSION})",
            f"Found schema={data.get('schema')!r}, schema_version="
            f"{data.get('schema_version')!r}; regenerate it with this dpplan version.",
        )
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - jsonschema is a test dependency
        jsonschema = None
    if jsonschema is not None:
        try:
            jsonschema.validate(dict(data), report_schema())
        except jsonschema.ValidationError as exc:
            where = "/".join(str(part) for part in exc.absolute_path) or "(top level)"
            raise PlanError("report", _short(data), "a report matching report.schema.json",
                            f"At {where}: {exc.message}") from None
    return _from_json_value(Report, data, "report")


def _short(data: Any) -> Any:
    text = repr(data)
    return data if len(text) <= 80 else text[:77] + "..."


def _from_json_value(kind: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None:
            if type(None) in options:
                return None
            raise PlanError("report", None, f"a value at {where}")
        inner = [option for option in options if option is not type(None)]
        return _from_json_value(inner[0], value, where)
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, Mapping):
            raise PlanError("report", _short(value), f"an object at {where}")
        hints = typing.get_type_hints(kind)
        names = [f.name for f in dataclasses.fields(kind)]
        unknown = sorted(set(value) - set(names))
        missing = [name for name in names if name not in value]
        if unknown or missing:
            raise PlanError("report", _short(value), f"the fields of {kind.__name__} at {where}",
                            f"Unknown: {unknown}; missing: {missing}.")
        return kind(**{name: _from_json_value(hints[name], value[name], f"{where}.{name}")
                       for name in names})
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise PlanError("report", _short(value), f"a list at {where}")
        (item, _ellipsis) = typing.get_args(kind)
        return tuple(_from_json_value(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict or kind is dict:
        if not isinstance(value, Mapping):
            raise PlanError("report", _short(value), f"an object at {where}")
        return dict(value)
    if kind is float:
        if isinstance(value, str) and value in ("inf", "-inf", "nan"):
            return float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PlanError("report", _short(value), f"a number at {where}")
        return float(value)
    if kind is int or kind is bool or kind is str:
        if type(value) is not kind:
            raise PlanError("report", _short(value), f"a {kind.__name__} at {where}")
        return value
    if kind is Any:
        return value
    raise TypeError(f"unsupported field type {kind!r} at {where}")  # pragma: no cover
