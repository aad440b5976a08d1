"""The :class:`Report` value: the numbers and facts of an ε-budget report, nothing else.

The words live in the templates (``templates/``), one per format. This model is the one
source of truth for the report's shape: JSON is the model serialised
(:meth:`Report.to_dict`), and the JSON Schema is generated from it (:func:`report_schema`).
Non-finite floats are written as the strings ``"inf"``, ``"-inf"`` or ``"nan"`` so the JSON
stays standard. This module imports neither torch nor streamlit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
)

from dpplan.errors import PlanError

__all__ = ["SCHEMA_ID", "SCHEMA_VERSION", "Report", "report_from_dict", "report_schema"]

#: The ``schema`` value of every dpplan report.
SCHEMA_ID = "dpplan-report"
#: Bumped when a field is removed or changes meaning. 2: facts only, prose in templates.
SCHEMA_VERSION = 2


def _json_float(value: float) -> float | str:
    return (
        value if math.isfinite(value) else ("inf" if value > 0 else "-inf" if value < 0 else "nan")
    )


#: A float that may be infinite (ε of a composition with a non-private run, say).
Real = Annotated[
    float,
    PlainSerializer(_json_float, when_used="json"),
    WithJsonSchema({"anyOf": [{"type": "number"}, {"enum": ["inf", "-inf", "nan"]}]}),
]
Method = Literal["rdp", "prv", "pld"]


class _Facts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Plan(_Facts):
    """The plan accounted (``TrainingPlan`` fields and derived counts; epochs as planned)."""

    dataset_size: int
    batch_size: int
    noise_multiplier: float
    epochs: int
    delta: float
    max_grad_norm: float
    sample_rate: float
    steps_per_epoch: int
    total_steps: int


class Curve(_Facts):
    """One method's ε upper bound after every accounted epoch (PRV adds its lower bound and
    estimate), its numerical settings, library and warnings."""

    method: Method
    library: str
    library_version: str
    epsilons: tuple[Real, ...]
    lower: tuple[Real, ...] | None
    estimates: tuple[Real, ...] | None
    settings: dict[str, Any]
    warnings: tuple[str, ...]


class Accounting(_Facts):
    """ε after every accounted epoch from each method, and the headline (smallest bound)."""

    epochs: tuple[int, ...]
    steps: tuple[int, ...]
    curves: tuple[Curve, ...]
    failures: dict[str, str]
    method: Method
    epsilon: Real
    no_amplification_epsilon: Real
    libraries: dict[str, str]


class Membership(_Facts):
    """Upper bounds on a membership-inference attack's TPR: from the whole privacy profile
    δ(ε) (``profile``) and from the single headline (ε, δ) (``single``), at each FPR; and the
    profile bound on a grid of FPRs (``roc_*``) for the ROC chart."""

    false_positive_rates: tuple[float, ...]
    profile: tuple[float, ...]
    single: tuple[float, ...]
    profile_method: Method
    roc_false_positive_rates: tuple[float, ...]
    roc_true_positive_rates: tuple[float, ...]


class Tuning(_Facts):
    """Other training runs on the same data, and ε of all of them composed."""

    source: Literal["none", "declared", "group"]
    runs: int
    group_id: str | None
    run_ids: tuple[int, ...]
    unfinished_run_ids: tuple[int, ...]
    non_private_run_ids: tuple[int, ...]
    epsilon_all: Real | None
    method_all: Method | None
    same_mechanism: bool | None
    total_steps: int | None
    repeat_and_select_epsilon: Real | None


class Epoch(_Facts):
    """One stored epoch of a run (no training loss: it is computed on private batches
    without noise). ``epsilon`` is the smallest bound recorded, from ``method``."""

    epoch: int
    steps: int
    epsilon: Real
    method: Method
    epsilons: dict[str, Real]
    epsilon_rdp: Real
    epsilon_opacus: Real
    validation_loss: float
    validation_accuracy: float
    test_accuracy: float
    lr: float
    seconds: float


class Run(_Facts):
    """A stored training run: status, where and how it ran, and every epoch."""

    id: int
    status: str
    stop_reason: str | None
    error: str | None
    device: str
    engine: str
    seed: int
    group_id: str | None
    recorded_method: str
    options: dict[str, Any]
    schedule: dict[str, Any]
    versions: dict[str, str]
    created_at: str
    updated_at: str
    training_seconds: float
    steps_counted: int
    opacus_max_relative_difference: float | None
    epochs: tuple[Epoch, ...]
    warnings: tuple[str, ...]


class Reproducibility(_Facts):
    """Versions, hashes and the command that regenerates the report."""

    dpplan_version: str
    python_version: str
    git_commit: str | None
    git_dirty: bool | None
    plan_hash: str
    created_at: str
    commands: dict[str, str]


class Report(_Facts):
    """An ε-budget report of a plan or of a run. Build it with ``build_report``.

    ``epochs``/``total_steps`` are what was accounted (fewer than planned when a run stopped
    early); ``warnings`` are the accountants' and the run's own, as they gave them.
    """

    schema_id: Literal["dpplan-report"] = Field(alias="schema")
    schema_version: Literal[2]
    kind: Literal["plan", "run"]
    title: str
    notes: str | None
    plan: Plan
    epochs: int
    total_steps: int
    accounting: Accounting
    membership: Membership
    tuning: Tuning
    run: Run | None
    reproducibility: Reproducibility
    warnings: tuple[str, ...]

    @property
    def epsilon(self) -> float:
        """The headline ε: the smallest upper bound of the methods that answered."""
        return self.accounting.epsilon

    @property
    def delta(self) -> float:
        """δ."""
        return self.plan.delta

    @property
    def method(self) -> str:
        """The method of the headline ε."""
        return self.accounting.method

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready form that :func:`report_schema` describes."""
        return self.model_dump(mode="json", by_alias=True)


def report_schema() -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of :meth:`Report.to_dict`, generated from the
    model.

    Example:
        >>> report_schema()["properties"]["schema_version"]["const"]
        2
    """
    schema = Report.model_json_schema(by_alias=True, mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://dpplan.invalid/{SCHEMA_ID}-{SCHEMA_VERSION}.schema.json"
    return schema


def report_from_dict(data: Mapping[str, Any]) -> Report:
    """Rebuild a :class:`Report` from :meth:`Report.to_dict` output (or its parsed JSON).

    Raises:
        PlanError: (field ``report``) if ``data`` is not a dpplan report, was stored by an
            older dpplan (rebuild it), or does not match the schema.

    Example:
        >>> try:
        ...     report_from_dict({"schema": "dpplan-report", "schema_version": 1})
        ... except PlanError as error:
        ...     print(error.hint)
        It was made by an older dpplan (report schema 1); rebuild it with this version.
    """
    if not isinstance(data, Mapping):
        raise PlanError("report", _short(data), "a mapping (a parsed dpplan report)")
    version = data.get("schema_version")
    if data.get("schema") != SCHEMA_ID:
        raise PlanError(
            "report",
            _short(data),
            f"a dpplan report (schema {SCHEMA_ID!r})",
            f"Found schema={data.get('schema')!r}.",
        )
    if version != SCHEMA_VERSION:
        older = isinstance(version, int) and version < SCHEMA_VERSION
        raise PlanError(
            "report",
            f"<report schema {version!r}>",
            f"a dpplan report of schema version {SCHEMA_VERSION}",
            f"It was made by an {'older' if older else 'unknown'} dpplan (report schema "
            f"{version}); rebuild it with this version.",
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
            raise PlanError(
                "report",
                _short(data),
                "a report matching the report schema",
                f"At {where}: {exc.message}",
            ) from None
    try:
        return Report.model_validate(dict(data))
    except ValidationError as exc:
        raise PlanError(
            "report", _short(data), "a report matching the report schema", str(exc).splitlines()[0]
        ) from None


def _short(data: Any) -> Any:
    text = repr(data)
    return data if len(text) <= 80 else text[:77] + "..."
