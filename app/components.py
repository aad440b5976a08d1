"""Shared UI pieces of the planner: the plan form, cached accounting calls, charts.

Pages only lay things out; every number comes from ``dpplan``. Accounting calls are cached
with ``st.cache_data`` keyed on the plan's dict and the method; widgets are never read inside
cached code (STYLE §3.5).

Numbers stay numbers: cached results are :class:`dpplan.EpsilonCurve` objects, never their
JSON form (``to_dict`` writes an infinite ε as the string ``"inf"``), so ε = ∞ compares
and plots as the float ``math.inf``.

Bounded work: every cache has ``max_entries`` and a ``ttl``, so results nobody asks for
again are dropped; the app starts no threads. A session whose browser is gone stops at its
next Streamlit call (between two accounting methods); the accounting call already running
finishes (the accountants bound their own work) and its result is cached.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import re
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st
from phases import phase_editor, phased_from_form, phases_from_url, phases_query

import dpplan
from dpplan.errors import DpplanError, PlanError

PLAN_FIELDS = ("dataset_size", "batch_size", "noise_multiplier", "epochs", "delta", "max_grad_norm")
DEFAULT_PLAN = {
    "dataset_size": 60000,
    "batch_size": 256,
    "noise_multiplier": 1.1,
    "epochs": 10,
    "delta": 1e-5,
    "max_grad_norm": 1.0,
}
LABELS = {
    "dataset_size": ("Dataset size N", "records sampled from"),
    "batch_size": ("Expected batch size B", "records per step under Poisson sampling"),
    "noise_multiplier": ("Noise multiplier σ", "noise std / clipping norm"),
    "epochs": ("Epochs", "passes over the data"),
    "delta": ("δ", "of the (ε, δ) guarantee; keep it well below 1/N"),
    "max_grad_norm": ("Clipping norm C", "per-example gradient bound; does not change ε"),
}
METHOD_NAMES = {
    "rdp": "RDP (dp-accounting)",
    "prv": "PRV (prv-accountant)",
    "pld": "PLD (dp-accounting)",
}
#: Cached results expire after this long, and each cache holds at most a few entries.
CACHE_TTL = datetime.timedelta(hours=1)
#: Longest piece of a query value quoted back in a warning.
SHOWN_QUERY_CHARS = 40
_ASCII_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def format_epsilon(value: float) -> str:
    """Format an ε the same way everywhere in the app (tests compare against it)."""
    if math.isinf(value):
        return "∞"
    return f"{value:.3f}"


def format_accuracy(value: float | None) -> str:
    """Format an accuracy (a fraction) as a percentage, the same way in every table."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.2%}"


def plain(text: object) -> str:
    """Return ``text`` as Markdown that shows it literally (no links, images or markup).

    Streamlit renders alerts and captions as Markdown; user-supplied text is escaped with a
    backslash before every ASCII punctuation character (CommonMark shows those literally)
    and put on one line.
    """
    return _ASCII_PUNCTUATION.sub(r"\\\1", " ".join(str(text).split()))


def _shown_query_value(text: str) -> str:
    """A query value as quoted in a warning: cut to a readable length."""
    if len(text) <= SHOWN_QUERY_CHARS:
        return repr(text)
    return f"{text[:SHOWN_QUERY_CHARS]!r}… ({len(text):,} characters)"


def _parse_query_value(field: str, text: str) -> int | float:
    """Parse one plan field from the URL; raise PlanError naming what is wrong."""
    try:
        number = float(text)
    except ValueError:
        raise PlanError(field, text, "a number") from None
    if not math.isfinite(number):
        raise PlanError(field, text, "a finite number")
    if isinstance(DEFAULT_PLAN[field], int):
        if not number.is_integer():
            raise PlanError(field, text, "a whole number")
        if abs(number) > 2**53:  # beyond exact integers (and any plan's bounds)
            raise PlanError(field, text, "a whole number of sensible size")
        return int(number)
    return number


def _initial_values() -> tuple[dict[str, Any], list[str]]:
    """Plan values from the URL (a shared link), else the defaults, and what was refused.

    A value that does not parse, or that the plan refuses (out of range), is replaced by
    the default, and a note names the parameter, the given value and the reason.
    """
    values = dict(DEFAULT_PLAN)
    notes: list[str] = []
    from_url: set[str] = set()
    given: dict[str, str] = {}
    params = st.query_params
    for field in PLAN_FIELDS:
        if field not in params:
            continue
        given[field] = text = params[field]
        try:
            values[field] = _parse_query_value(field, text)
            from_url.add(field)
        except PlanError as error:
            notes.append(_refused(field, text, error))
    for _ in PLAN_FIELDS:  # each pass drops at most one refused value from the URL
        try:
            dpplan.TrainingPlan(**values)
            break
        except PlanError as error:
            if error.field not in from_url:
                break  # not caused by the link; the form shows the error
            notes.append(_refused(error.field, given[error.field], error))
            values[error.field] = DEFAULT_PLAN[error.field]
            from_url.discard(error.field)
    return values, notes


def _refused(field: str, text: str, error: PlanError) -> str:
    return (
        f"Ignored {field}={_shown_query_value(text)} from the link: it must be "
        f"{error.expected}. Using the default {field}={DEFAULT_PLAN[field]:g} instead."
    )


def plan_form() -> dpplan.TrainingPlan | None:
    """Draw the plan form in the sidebar; return the valid plan or None (error shown).

    The plan is kept in ``st.session_state["plan"]`` and mirrored into the URL's query
    parameters, so a link reproduces it.
    """
    if "plan_values" not in st.session_state:
        values, notes = _initial_values()
        first_steps, phases, phase_notes = phases_from_url()
        st.session_state["plan_values"] = values
        st.session_state["plan_url_notes"] = notes + phase_notes
        for field, value in values.items():
            st.session_state[f"plan_{field}"] = value
        st.session_state["plan_steps"] = first_steps
        st.session_state["plan_phase_count"] = len(phases)
        for index, phase in enumerate(phases, start=1):
            for field, value in phase.items():
                st.session_state[f"phase{index}_{field}"] = value
    if "adopt" in st.session_state:  # a page asked to adopt a solved plan
        for field, value in st.session_state.pop("adopt").items():
            if field in PLAN_FIELDS:
                st.session_state[f"plan_{field}"] = value
    sidebar = st.sidebar
    sidebar.header("Plan")
    current = {field: st.session_state[f"plan_{field}"] for field in PLAN_FIELDS}
    if current == st.session_state["plan_values"]:  # shown until the plan is edited
        for note in st.session_state.get("plan_url_notes", []):
            sidebar.warning(plain(note), icon=":material/link_off:")
    slots = {}
    for field in PLAN_FIELDS:
        label, help_text = LABELS[field]
        integer = isinstance(DEFAULT_PLAN[field], int)
        kwargs: dict[str, Any] = {"key": f"plan_{field}", "help": help_text}
        if integer:
            kwargs.update(step=1, format="%d")
        elif field == "delta":
            kwargs.update(format="%.2e", step=1e-6)
        else:
            kwargs.update(format="%.3f", step=0.05)
        sidebar.number_input(label, **kwargs)
        slots[field] = sidebar.empty()
    phases, phase_slot = phase_editor(sidebar)
    values = {field: st.session_state[f"plan_{field}"] for field in PLAN_FIELDS}
    st.session_state["phased_plan"] = None
    try:
        plan = dpplan.TrainingPlan(**values)
    except PlanError as error:
        target = slots.get(error.field, sidebar)
        target.error(str(error))  # numbers from the widgets only: nothing to escape
        st.session_state["plan"] = None
        return None
    try:
        phased = phased_from_form(plan, phases)
    except PlanError as error:
        phase_slot.error(str(error))
        st.session_state["plan"] = None
        return None
    st.session_state["plan"] = plan
    st.session_state["phased_plan"] = phased
    query = {k: str(v) for k, v in plan.to_dict().items() if k in PLAN_FIELDS}
    st.query_params.from_dict(query | phases_query(phased))
    sidebar.caption(
        f"sample rate {plan.sample_rate:.5g} · {plan.steps_per_epoch:,} steps/epoch · "
        f"{plan.total_steps:,} steps"
        + (f" · {len(phased.phases)} phase(s), {phased.total_steps:,} steps" if phased else "")
    )
    return plan


@dataclasses.dataclass(frozen=True, slots=True)
class MethodResult:
    """One accounting method's answer for a plan: its ε curve, or why it has none."""

    method: str
    curve: dpplan.EpsilonCurve | None = None
    error: str | None = None


@st.cache_data(max_entries=64, ttl=CACHE_TTL, show_spinner=False)
def phase_one_message(phased: dpplan.PhasedPlan | None, what: str) -> str | None:
    """What a page that acts on one plan must say when the sidebar holds a phased plan."""
    if phased is None or (len(phased.phases) == 1 and not phased.phase_steps):
        return None
    return (
        f"The sidebar holds a phased plan; this page {what} **phase 1 only** "
        "(its batch size, σ and epochs, all its steps). The Plan page accounts the whole "
        "phased plan; `dpplan train --plan FILE`, `dpplan solve --plan FILE` and "
        "`dpplan report --plan FILE` take all of it."
    )


def phase_one_notice(what: str) -> None:
    """Show :func:`phase_one_message` for the sidebar's plan, if any."""
    message = phase_one_message(st.session_state.get("phased_plan"), what)
    if message is not None:
        st.warning(message)


def cached_curve(plan_dict: dict[str, Any], method: str) -> MethodResult:
    """ε curve of one method (floats, ∞ included), or the error dpplan raised for it."""
    kind = dpplan.PhasedPlan if "phases" in plan_dict else dpplan.TrainingPlan
    plan = kind.from_dict(plan_dict)
    try:
        return MethodResult(method, curve=dpplan.epsilon_curve(plan, method=method))
    except DpplanError as error:
        return MethodResult(method, error=str(error))


def method_result(plan_dict: dict[str, Any], method: str) -> MethodResult:
    """:func:`cached_curve`, with any unexpected failure turned into that method's error.

    This is the app's outer boundary for accounting calls (STYLE §3.7): one method that
    breaks is reported beside the others instead of crashing the page. Such failures are
    not cached, so a rerun tries again.
    """
    try:
        return cached_curve(plan_dict, method)
    except Exception as error:  # noqa: BLE001 - outer boundary, shown to the user
        return MethodResult(method, error=f"unexpected {type(error).__name__}: {error}")


@st.cache_data(max_entries=16, ttl=CACHE_TTL, show_spinner=False)
def cached_plan_report(
    plan_dict: dict[str, Any], title: str | None, notes: str | None, tuning_runs: int | None
):
    """The report of a plan (``dpplan.report.build_report``); cached, so editing the title
    does not recompute every ε. Errors are raised, not cached."""
    from dpplan.report import build_report

    return build_report(
        dpplan.TrainingPlan.from_dict(plan_dict), title=title, notes=notes, tuning_runs=tuning_runs
    )


def pdf_unavailable() -> str | None:
    """Why the app cannot print PDF reports (WeasyPrint or its Pango libraries missing), or
    None when it can."""
    try:
        import weasyprint  # noqa: F401 - imported only to see that it loads
    except ImportError:
        return "PDF needs WeasyPrint: pip install 'dpplan[pdf]' (included in dpplan[all])."
    except OSError as error:
        return f"WeasyPrint could not load a system library (Pango): {error}"
    return None


def headline(results: dict[str, MethodResult]) -> tuple[str, float] | None:
    """The smallest final upper bound and its method (as ``dpplan.compare`` chooses it)."""
    ok = [
        (r.curve.epsilon, dpplan.METHODS.index(m), m)
        for m, r in results.items()
        if r.curve is not None
    ]
    if not ok:
        return None
    value, _, method = min(ok)
    return method, value


def curves_frame(results: dict[str, MethodResult]) -> pd.DataFrame:
    """Long-form frame: epoch, method, ε (upper), lower (PRV only); ∞ is left out (None)."""

    def drawable(value: float | None) -> float | None:
        return value if value is not None and math.isfinite(value) else None

    rows = []
    for method, result in results.items():
        if result.curve is None:
            continue
        curve = result.curve
        lower = curve.lower or (None,) * len(curve.epochs)
        for epoch, value, low in zip(curve.epochs, curve.epsilons, lower, strict=True):
            rows.append(
                {
                    "epoch": epoch,
                    "method": METHOD_NAMES[method],
                    "ε (upper bound)": drawable(value),
                    "lower": drawable(low),
                }
            )
    return pd.DataFrame(rows, columns=["epoch", "method", "ε (upper bound)", "lower"])


def epsilon_chart(frame: pd.DataFrame) -> alt.Chart:
    """Interactive ε-over-epochs chart, one line per method, PRV's lower-upper band."""
    colors = alt.Scale(domain=list(METHOD_NAMES.values()), range=["#d62728", "#1f77b4", "#2ca02c"])
    base = alt.Chart(frame).encode(
        x=alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1, format="d"))
    )
    lines = base.mark_line(point=True).encode(
        y=alt.Y("ε (upper bound):Q", title="ε (upper bound)"),
        color=alt.Color("method:N", title="method", scale=colors),
        tooltip=[
            "method",
            "epoch",
            alt.Tooltip("ε (upper bound):Q", format=".4f"),
            alt.Tooltip("lower:Q", format=".4f", title="PRV lower bound"),
        ],
    )
    band = (
        alt.Chart(frame.dropna(subset=["lower"]))
        .mark_area(opacity=0.25)
        .encode(
            x="epoch:Q",
            y="lower:Q",
            y2="ε (upper bound):Q",
            color=alt.Color("method:N", title="method", scale=colors),
            tooltip=[alt.Tooltip("lower:Q", format=".4f", title="PRV lower bound")],
        )
    )
    return (band + lines).interactive().properties(height=360)


def show_error_list(results: dict[str, MethodResult]) -> None:
    """Explain methods that failed for this plan (the others are still shown)."""
    for method, result in results.items():
        if result.error is not None:
            st.warning(f"{METHOD_NAMES[method]} could not account this plan: {plain(result.error)}")


def store():
    """The run store (``$DPPLAN_HOME``); a fresh handle per call is cheap."""
    from dpplan.store import RunStore

    return RunStore()


def start_worker(run_store) -> None:
    """Make sure a background worker is running queued runs (patched in app tests)."""
    from dpplan.train.worker import ensure_worker

    ensure_worker(run_store)


TASK_HELP = (
    "Train your own task: MODULE:FUNCTION, a function returning a dpplan.train.Task (model, "
    "data, loss) in a module on the app's Python path (start the app with its folder on "
    "PYTHONPATH; the background worker inherits it). Empty: MNIST with the model chosen "
    "here. With a task, dataset_size is its "
    "training set size and the MNIST-only fields (model, activation, validation and training "
    "examples) are not used."
)


def task_field(key: str):
    """The "Task" text field (inside a form): ``MODULE:FUNCTION``, empty for MNIST."""
    return st.text_input(
        "Task (MODULE:FUNCTION, empty = MNIST)",
        "",
        key=key,
        placeholder="my_tasks:blobs",
        help=TASK_HELP,
    )


def load_user_task(text: str):
    """The task the field names, loaded here in the app's process (None when empty).

    Raises:
        PlanError: field ``task``, for a malformed spec, an unknown module or function, a
            function that fails or returns something other than a ``dpplan.train.Task``.
    """
    text = text.strip()
    if not text:
        return None
    from dpplan.train import load_task  # imports torch: only when a task is asked for

    return load_task(text)


def task_of(run) -> str:
    """A run's task as shown: its name and ``module:function`` (MNIST for older runs)."""
    name = getattr(run, "task", None)
    if name is None:
        return "mnist"
    spec = getattr(run, "task_spec", None)
    return f"{name} ({spec})" if spec else name


def run_label(run) -> str:
    """Short human label of a stored run."""
    lr = run.schedule.learning_rate
    kind = run.schedule.kind.replace("_", "-")
    private = "" if run.private else " · non-private"
    engine = f" · {run.options.engine} engine" if run.private else ""
    name = getattr(run, "task", None)
    task = f" · {name}" if name else ""
    return (
        f"#{run.id} {kind} lr={lr:g} seed={run.seed}{task} · {run.status} · "
        f"{len(run.records)}/{run.plan.epochs} epochs{private}{engine}"
    )


def quality(record, metric: bool = True) -> str:
    """A record's test result in words: accuracy for a classification, else the test loss
    (and the task's test metric)."""
    if math.isfinite(record.test_accuracy):
        return f"test accuracy {record.test_accuracy:.2%}"
    text = f"test loss {record.test_loss:.4g}"
    if metric:
        for name, value in record.metrics.items():
            if name.startswith("test_"):
                text += f" · test {name.removeprefix('test_')} {value:.4g}"
    return text


SCHEDULE_NAMES = {"one_cycle": "one-cycle", "plateau": "reduce on plateau", "constant": "constant"}
SCHEDULE_LABELS = {
    "max_lr": "peak learning rate",
    "lr": "learning rate",
    "momentum": "momentum",
    "pct_start": "warm-up fraction",
    "div_factor": "initial divisor",
    "final_div_factor": "final divisor",
    "three_phase": "three phases",
    "base_momentum": "lowest momentum",
    "max_momentum": "highest momentum",
    "factor": "factor on plateau",
    "patience": "patience (epochs)",
    "min_lr": "lowest learning rate",
}


def plan_fields(plan: dpplan.TrainingPlan) -> list[tuple[str, str]]:
    """The plan as (label, formatted value) pairs, labelled as in the sidebar form."""
    return [
        (LABELS["dataset_size"][0], f"{plan.dataset_size:,}"),
        (LABELS["batch_size"][0], f"{plan.batch_size:,}"),
        (LABELS["noise_multiplier"][0], f"{plan.noise_multiplier:g}"),
        (LABELS["epochs"][0], f"{plan.epochs:,}"),
        (LABELS["delta"][0], f"{plan.delta:g}"),
        (LABELS["max_grad_norm"][0], f"{plan.max_grad_norm:g}"),
        ("Sample rate q", f"{plan.sample_rate:.5g}"),
        ("Steps per epoch", f"{plan.steps_per_epoch:,}"),
        ("Total steps", f"{plan.total_steps:,}"),
    ]


def schedule_fields(schedule: dict[str, Any]) -> list[tuple[str, str]]:
    """A stored schedule as (label, formatted value) pairs, its kind first."""
    kind = schedule.get("kind", "?")
    fields = [("Schedule", SCHEDULE_NAMES.get(kind, str(kind)))]
    for key, value in schedule.items():
        if key == "kind":
            continue
        text = f"{value:g}" if isinstance(value, float) else str(value)
        fields.append((SCHEDULE_LABELS.get(key, key.replace("_", " ")), text))
    return fields


def fields_table(fields: list[tuple[str, str]]) -> pd.DataFrame:
    """A two-column (setting, value) frame for ``st.dataframe``/``st.table``."""
    return pd.DataFrame(fields, columns=["setting", "value"])


def _headline(record, run) -> float | None:
    """A record's ε as every surface shows it (smallest bound); None if infinite."""
    from dpplan.run_policy import epoch_epsilon

    value = epoch_epsilon(record, run.method)[0]
    return value if math.isfinite(value) else None


def accuracy_frame(runs) -> pd.DataFrame:
    """Long-form per-epoch records of several runs (for charts and tables)."""
    rows = []
    for run in runs:
        for record in run.records:
            rows.append(
                {
                    "run": f"#{run.id}",
                    "schedule": run.schedule.kind,
                    "lr": run.schedule.learning_rate,
                    "seed": run.seed,
                    "epoch": record.epoch,
                    # The smallest upper bound recorded, as every page shows it.
                    "ε": _headline(record, run),
                    "Opacus ε": (
                        record.epsilon_opacus if math.isfinite(record.epsilon_opacus) else None
                    ),
                    "test accuracy": record.test_accuracy,
                    "validation accuracy": record.validation_accuracy,
                    "train loss": record.train_loss,
                    "test loss": record.test_loss,
                    **{name.replace("_", " "): value for name, value in record.metrics.items()},
                    "lr at end": record.lr,
                    "seconds": record.seconds,
                }
            )
    return pd.DataFrame(rows)


def grouped_accuracy(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread of test accuracy over seeds, per schedule, lr and epoch."""
    if frame.empty:
        return frame
    grouped = frame.groupby(["schedule", "lr", "epoch"], as_index=False).agg(
        epsilon=("ε", "max"),
        mean=("test accuracy", "mean"),
        validation=("validation accuracy", "mean"),
        low=("test accuracy", "min"),
        high=("test accuracy", "max"),
        seeds=("seed", "nunique"),
    )
    grouped["line"] = grouped["schedule"] + " lr=" + grouped["lr"].map(lambda v: f"{v:g}")
    return grouped


def accuracy_vs_epsilon_chart(grouped: pd.DataFrame) -> alt.Chart:
    """Test accuracy against ε, one line per schedule (+lr), band = spread over seeds."""
    base = alt.Chart(grouped).encode(
        x=alt.X("epsilon:Q", title="ε (upper bound)"),
        color=alt.Color("line:N", title="schedule", scale=alt.Scale(scheme="category10")),
    )
    band = base.mark_area(opacity=0.2).encode(
        y=alt.Y("low:Q", title="test accuracy", scale=alt.Scale(zero=False)), y2="high:Q"
    )
    lines = base.mark_line(point=True).encode(
        y=alt.Y("mean:Q", title="test accuracy", axis=alt.Axis(format="%")),
        tooltip=[
            "line",
            "epoch",
            alt.Tooltip("epsilon:Q", format=".3f"),
            alt.Tooltip("mean:Q", format=".2%"),
            "seeds",
        ],
    )
    return (band + lines).interactive().properties(height=380)


def best_at(grouped: pd.DataFrame, thresholds=(1.0, 2.0, 4.0, 8.0)) -> pd.DataFrame:
    """Per schedule line and bound x: the mean test accuracy of the epoch with the best mean
    validation accuracy among the epochs with ε ≤ x (:func:`dpplan.selection.best_at`: the
    test set never selects)."""
    from dpplan.selection import Candidate
    from dpplan.selection import best_at as select

    rows = []
    for line, part in grouped.groupby("line"):
        candidates = [
            Candidate(epsilon=e, validation_accuracy=v, test_accuracy=t)
            for e, v, t in zip(part["epsilon"], part["validation"], part["mean"], strict=True)
        ]
        row = {"schedule": line}
        for x in thresholds:
            chosen = select(candidates, epsilon_at_most=x)
            row[f"best at ε ≤ {x:g}"] = "—" if chosen is None else f"{chosen.test_accuracy:.2%}"
        rows.append(row)
    return pd.DataFrame(rows)


# ---- sweeps: the Launch form's defaults and its time estimate ----------------------------

#: Measured cost of one epoch of a sweep trial over 55,000 MNIST training examples on the CPU,
#: evaluation included: 7.1 s (BENCHMARKS.md, "Sweeps on Ray": ``bench/sweep.py``, seed
#: network, B = 256, fused engine, one torch thread, 2 shared cores, 2026-11-30).
SWEEP_EPOCH_SECONDS = 7.1
SWEEP_EPOCH_EXAMPLES = 55_000
SWEEP_COST_SOURCE = (
    f"{SWEEP_EPOCH_SECONDS:g} s per epoch of {SWEEP_EPOCH_EXAMPLES:,} examples, measured on "
    "the CPU (BENCHMARKS.md, Sweeps on Ray: seed network, B = 256, fused engine, one torch "
    "thread, evaluation included)"
)
#: The Launch form's grid on a CPU: 18 trials of 2 epochs on 10,000 examples, about 1 minute
#: one trial at a time at the measured cost. Learning rates from notebook 02's fair grid
#: (its published one-cycle peak 15.62 diverges in this set-up).
SWEEP_DEFAULTS_CPU = {
    "epsilons": "1, 3, 8",
    "batch_sizes": "256",
    "epochs": "2",
    "one_cycle_lrs": "1, 2",
    "plateau_lrs": "0.5, 1",
    "constant_lrs": "0.1, 0.5",
    "seeds": "0, 1",
    "subset": 10_000,
}
#: With a GPU: every training example, more epochs, batch sizes, rates and seeds (144 trials).
SWEEP_DEFAULTS_GPU = {
    "epsilons": "1, 3, 8",
    "batch_sizes": "256, 1024",
    "epochs": "5, 10",
    "one_cycle_lrs": "0.5, 1, 2, 4",
    "plateau_lrs": "0.2, 0.5, 1, 2",
    "constant_lrs": "0.1, 0.5",
    "seeds": "0, 1, 2",
    "subset": 0,
}


@st.cache_resource(show_spinner="Looking for a GPU…")
def gpu_available() -> bool:
    """Whether torch sees a CUDA GPU (False without torch); asked once per server, as the
    trainer's answer imports torch (seconds)."""
    from dpplan.train import cuda_available

    return cuda_available()


def parse_numbers(field: str, text: str) -> list[float]:
    """Parse a comma-separated list of numbers (``"1, 3"``); raise PlanError naming ``field``."""
    values = []
    for item in text.split(","):
        if not item.strip():
            continue
        try:
            values.append(float(item))
        except ValueError:
            raise PlanError(field, text, "comma-separated numbers, e.g. 1, 3") from None
    return [int(v) if v.is_integer() else v for v in values]


def sweep_estimate(spec) -> tuple[int, float]:
    """Return (trials, estimated seconds) of a :class:`dpplan.sweep.SweepSpec`.

    Trials are the grid's count (the random protocol's expected count); the time runs them one
    at a time at the measured :data:`SWEEP_EPOCH_SECONDS` per epoch of
    :data:`SWEEP_EPOCH_EXAMPLES` training examples, each trial taking the grid's mean number of
    epochs over the sweep's training examples.
    """
    examples = spec.dataset_size  # the task's, or MNIST's subset
    mean_epochs = sum(spec.epochs) / len(spec.epochs)
    per_trial = mean_epochs * examples / SWEEP_EPOCH_EXAMPLES * SWEEP_EPOCH_SECONDS
    return spec.trial_count, spec.trial_count * per_trial


def format_duration(seconds: float) -> str:
    """A rough duration: ``40 s``, ``3 min``, ``2.5 h``."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
