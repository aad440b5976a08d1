"""The :class:`Report` value: the numbers and facts of an ε-budget report, nothing else.

The words live in the templates (``templates/``), one per format. This model is the one
source of truth for the report's shape: JSON is the model serialised
(:meth:`Report.to_dict`), and the JSON Schema is generated from it (:func:`report_schema`).
Non-finite floats are written as the strings ``"inf"``, ``"-inf"`` or ``"nan"`` so the JSON
stays standard. This module imports neither torch nor streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from dpplan.accounting.base import METHODS
from dpplan.errors import PlanError
from dpplan.format import json_float

SCHEMA_ID = "dpplan-report"
#: Bumped when a field is removed or changes meaning. 2: facts only, prose in templates. The
#: sweep, phased and ledger kinds, their sections and ``assumptions`` (filled in from ``kind``
#: where a stored report lacks it) came within version 2: every report stored before validates.
SCHEMA_VERSION = 2


#: A float that may be infinite (ε of a composition with a non-private run, say).
Real = Annotated[
    float,
    PlainSerializer(json_float, when_used="json"),
    WithJsonSchema({"anyOf": [{"type": "number"}, {"enum": ["inf", "-inf", "nan"]}]}),
]
Method = Literal[METHODS]  # type: ignore[valid-type] - the one list, as a Literal
#: How a sweep tuned: every configuration of the grid, or Papernot & Steinke's random
#: repeat-and-select protocol.
Protocol = Literal["grid", "random_repeats"]


class _Facts(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, from_attributes=True
    )


#: What the guarantee covers (``Assumptions.covers``): every noisy update, hence every
#: intermediate model including the checkpoint saved after each epoch; the final model;
#: anything computed from the models alone.
Covered = Literal["every_checkpoint", "final_model", "post_processing"]
#: What the accounting treats as public, unprotected (``Assumptions.public``).
Public = Literal["dataset_size", "validation_data", "test_data"]


class Assumptions(_Facts):
    """What every ε of the report assumes and covers. ``sampling`` ``"poisson"``: at each step
    every training example is included independently with probability ``sample_rate`` (the
    accounting's amplification needs it). ``trust_model``: a trusted trainer sees the data;
    what it releases is protected. ``public``: not protected: the dataset size always; in a run
    or sweep the validation and test examples (not trained on, they select hyper-parameters and
    are measured exactly)."""

    unit: Literal["example"]
    neighbouring_relation: Literal["add_or_remove_one_example", "replace_one_example"]
    sampling: Literal["poisson", "shuffle", "fixed_size", "truncated_poisson", "mixed"]
    trust_model: Literal["central"]
    covers: tuple[Covered, ...]
    public: tuple[Public, ...]

    @classmethod
    def of(
        cls, kind: str, *, relation: str = "add_or_remove_one", sampling: str = "poisson"
    ) -> Assumptions:
        """The assumptions of a report of ``kind`` (a ledger's ``relation`` and ``sampling``:
        ``"mixed"`` when its records use several schemes)."""
        public: tuple[Public, ...] = ("dataset_size",)
        if kind in ("run", "sweep"):
            public += ("validation_data", "test_data")
        return cls(
            unit="example",
            neighbouring_relation=f"{relation}_example",
            sampling=sampling,
            trust_model="central",
            covers=("every_checkpoint", "final_model", "post_processing"),
            public=public,
        )


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
    estimate)."""

    method: Method
    library: str
    library_version: str
    epsilons: tuple[Real, ...]
    lower: tuple[Real, ...] | None
    estimates: tuple[Real, ...] | None
    settings: dict[str, Any]
    warnings: tuple[str, ...]


class Phase(_Facts):
    """One phase of a phased plan, and the headline ε (from ``method``) after it."""

    phase: int
    batch_size: int
    noise_multiplier: float
    epochs: int
    steps: int
    sample_rate: float
    epsilon: Real
    method: Method


class Phased(_Facts):
    """A phased plan (``dpplan.PhasedPlan``): shared N and δ, and every phase."""

    dataset_size: int
    delta: float
    phases: tuple[Phase, ...]


class LedgerEntry(_Facts):
    """Consecutive steps of one kind (``LedgerRecord.to_dict``)."""

    sampling: Literal["poisson", "shuffle", "fixed_size", "truncated_poisson"]
    noise_multiplier: float
    sample_rate: float
    batch_size: int | None
    max_batch_size: int | None
    steps: int


class LedgerFacts(_Facts):
    """A ``dpplan.Ledger`` (``refused``: the methods that cannot account a scheme recorded,
    and why). ``as_if_poisson_epsilon`` (shuffled records only) is **not** a guarantee: the
    shuffled steps accounted as if Poisson-sampled, shown for comparison."""

    dataset_size: int
    delta: float
    budget: float | None
    total_steps: int
    schemes: tuple[str, ...]
    neighbouring_relation: Literal["add_or_remove_one", "replace_one"]
    records: tuple[LedgerEntry, ...]
    accounted_as: dict[str, str]
    epsilons: dict[str, Real]
    refused: dict[str, str]
    failures: dict[str, str]
    method: Method
    epsilon: Real
    as_if_poisson_epsilon: Real | None
    libraries: dict[str, str]


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
    without noise); a loss or accuracy that was not finite (a diverged epoch) is None."""

    epoch: int
    steps: int
    epsilon: Real
    method: Method
    epsilons: dict[str, Real]
    epsilon_rdp: Real
    epsilon_opacus: Real
    validation_loss: float | None
    validation_accuracy: float | None
    test_accuracy: float | None
    lr: float
    seconds: float


class Run(_Facts):
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
    task: str | None = None  # a dpplan.train.Task name; task_spec: its module:function
    task_spec: str | None = None


class SolvedPlan(_Facts):
    """A plan of a sweep's grid, σ solved by ``method`` so that ε of one run (``epsilon``) is
    at most ``target_epsilon``."""

    target_epsilon: float
    epsilon: Real
    method: Method
    plan: Plan


class FrontierPoint(_Facts):
    """The configuration selected at a target ε (best first-seed validation accuracy; in a
    per-schedule curve, within that schedule). Test accuracy is over ``seeds`` (the selection
    seed, then the repeats); in the random protocol the selected model's alone (std and
    ``run_ids`` None): its repeats are not published."""

    target_epsilon: float
    epsilon: Real
    epsilon_method: Method
    plan: Plan
    schedule_kind: str
    learning_rate: float
    schedule: dict[str, Any]
    validation_accuracy: float
    test_accuracy_mean: float
    test_accuracy_std: float | None
    seeds: tuple[int, ...]
    run_ids: tuple[int, ...] | None


class ScheduleCurve(_Facts):
    """One schedule's best configuration at each target ε (grid protocol only)."""

    schedule_kind: str
    points: tuple[FrontierPoint, ...]


class BestAtMost(_Facts):
    """``point`` indexes the ``Sweep.points`` with the best validation accuracy at ε ≤ x."""

    epsilon_at_most: float
    point: int


class TargetCost(_Facts):
    """The tuning cost of one target ε: one run, its runs composed (grid), repeat-and-select
    (random)."""

    target_epsilon: float
    single_run_epsilon: Real
    runs: int | None
    all_runs_epsilon: Real | None
    all_runs_method: Method | None
    repeat_and_select_epsilon: Real | None


class SweepTuning(_Facts):
    """The privacy cost of the tuning: one run, every run composed (grid; None in the random
    protocol, whose count is secret), Papernot & Steinke's repeat-and-select (random)."""

    delta: float
    single_run_epsilon: Real
    runs: int | None
    all_runs_epsilon: Real | None
    all_runs_method: Method | None
    random_repeats: float | None
    repeat_and_select_epsilon: Real | None
    per_target: tuple[TargetCost, ...]


class SweepTrials(_Facts):
    """``planned``: if every selection finds a winner; ``diverged``: finished with a non-finite
    loss or weights (no accuracy, never selected)."""

    planned: int
    finished: int
    failed: int
    diverged: int = 0


class SweepSimulation(_Facts):
    """A sweep predicted by simulation (:mod:`dpplan.simulate`): trials trained B/K with σ/K
    for the plans' steps, on ``data`` (the validation split is treated as public); their own
    ε (0 on public data); the measured error of predictions at K (``bench/predict.py``), None
    when K was not calibrated."""

    k: int
    data: Literal["training", "validation"]
    label: str
    one_trial_epsilon: Real | None
    all_trials_epsilon: Real | None
    mean_abs_error_points: float | None
    worst_abs_error_points: float | None
    calibration_source: str | None


class Sweep(_Facts):
    """A stored sweep, from :func:`dpplan.sweep.frontier_result`. ``withheld`` names what
    the report leaves out: in the random protocol every count of trials or runs, the runs'
    ids, the seed repeats, ε of all runs composed, the per-schedule curves and the error text,
    since the repeat-and-select guarantee needs the number of trials to stay secret."""

    id: int
    status: str
    error: str | None
    protocol: Protocol
    method: Method
    delta: float
    dataset_size: int
    validation_size: int
    target_epsilons: tuple[float, ...]
    batch_sizes: tuple[int, ...]
    epochs: tuple[int, ...]
    schedules: tuple[str, ...]
    learning_rates: dict[str, tuple[float, ...]]
    seeds: tuple[int, ...]
    max_grad_norm: float
    random_repeats: float | None
    options: dict[str, Any]
    spec_hash: str
    created_at: str
    updated_at: str
    withheld: tuple[str, ...]
    runs_tried: int | None
    trials: SweepTrials | None
    #: Of ``runs_tried``: trial attempts that may have trained and stored no run (cut off,
    #: failed, in flight), each counted whole in ε of all runs (None: withheld, or a report
    #: stored before they were counted).
    unstored_attempts: int | None = None
    plans: tuple[SolvedPlan, ...]
    points: tuple[FrontierPoint, ...]
    best: tuple[BestAtMost, ...]
    curves: tuple[ScheduleCurve, ...]
    tuning: SweepTuning
    simulation: SweepSimulation | None = None
    plateau_every: int | None = None  # steps between a plateau trial's evaluations (None: epoch)


class Reproducibility(_Facts):
    """``commands``: ``dpplan report`` per format; ``plan_hash``: None in a sweep report."""

    dpplan_version: str
    python_version: str
    git_commit: str | None
    git_dirty: bool | None
    plan_hash: str | None
    created_at: str
    commands: dict[str, str]


_PLAN = ("plan", "epochs", "total_steps", "accounting", "membership", "tuning")
#: The sections each kind of report has; every other section is None.
_SECTIONS = {
    "plan": _PLAN,
    "run": (*_PLAN, "run"),
    "sweep": ("sweep",),
    "phased": ("phased", "epochs", "total_steps", "accounting"),
    "ledger": ("ledger",),
    "all": (*_PLAN, "run", "sweep", "phased", "ledger"),
}


class Report(_Facts):
    """An ε-budget report; the sections each kind has are in ``_SECTIONS``, the others None.
    ``epochs``/``total_steps`` are what was accounted (fewer than planned when a run stopped
    early); ``warnings`` are the accountants' and the run's own, as they gave them."""

    schema_id: Literal["dpplan-report"] = Field(alias="schema")
    schema_version: Literal[2]
    kind: Literal["plan", "run", "sweep", "phased", "ledger"]
    # Reports stored before this field was added hold the same facts (they never changed).
    assumptions: Assumptions = Field(default_factory=lambda data: Assumptions.of(data["kind"]))
    title: str
    notes: str | None
    plan: Plan | None
    epochs: int | None
    total_steps: int | None
    accounting: Accounting | None
    membership: Membership | None
    tuning: Tuning | None
    run: Run | None
    reproducibility: Reproducibility
    warnings: tuple[str, ...]
    sweep: Sweep | None = None
    phased: Phased | None = None
    ledger: LedgerFacts | None = None

    @model_validator(mode="after")
    def _sections_match_kind(self) -> Report:
        own = _SECTIONS[self.kind]
        wrong = [
            name for name in _SECTIONS["all"] if (getattr(self, name) is None) == (name in own)
        ]
        if wrong or (self.reproducibility.plan_hash is None) != (self.kind == "sweep"):
            raise ValueError(
                f"a {self.kind} report has a {', '.join(own)} section and no other, and "
                f"{'no' if self.kind == 'sweep' else 'a'} plan_hash (wrong: {', '.join(wrong)})"
            )
        return self

    @property
    def epsilon(self) -> float | None:
        """The headline ε: the smallest upper bound of the methods that answered (None for
        a sweep: see ``sweep.tuning``)."""
        headline = self.ledger or self.accounting
        return None if headline is None else headline.epsilon

    @property
    def delta(self) -> float:
        found = self.plan or self.phased or self.ledger or self.sweep
        return found.delta

    @property
    def method(self) -> str | None:
        """The method of the headline ε (None for a sweep)."""
        headline = self.ledger or self.accounting
        return None if headline is None else headline.method

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
        raise PlanError("report", data, "a mapping (a parsed dpplan report)")
    version = data.get("schema_version")
    if data.get("schema") != SCHEMA_ID:
        found = f"Found schema={data.get('schema')!r}."
        raise PlanError("report", data, f"a dpplan report (schema {SCHEMA_ID!r})", found)
    if version != SCHEMA_VERSION:
        older = isinstance(version, int) and version < SCHEMA_VERSION
        raise PlanError(
            "report",
            f"<report schema {version!r}>",
            f"a dpplan report of schema version {SCHEMA_VERSION}",
            f"It was made by an {'older' if older else 'unknown'} dpplan (report schema "
            f"{version}); rebuild it with this version.",
        )

    def mismatch(where: Any, message: str) -> PlanError:
        where = "/".join(map(str, where)) or "(top level)"
        expected = "a report matching the report schema"
        return PlanError("report", data, expected, f"At {where}: {message}")

    try:  # the schema is stricter than the model (no "1" for 1); jsonschema is a test extra
        import jsonschema

        jsonschema.validate(dict(data), report_schema())
    except ImportError:  # pragma: no cover
        pass
    except jsonschema.ValidationError as exc:
        raise mismatch(exc.absolute_path, exc.message) from None
    try:
        return Report.model_validate(dict(data))
    except ValidationError as exc:
        raise mismatch(exc.errors()[0]["loc"], exc.errors()[0]["msg"]) from None
