"""Shared UI pieces of the planner: the plan form, cached accounting calls, charts.

Pages only lay things out; every number comes from ``dpplan``. Accounting calls are cached
with ``st.cache_data`` keyed on the plan's dict and the method; widgets are never read inside
cached code (STYLE §3.5).
"""

from __future__ import annotations

import math
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

import dpplan
from dpplan.errors import AccountingError, PlanError

PLAN_FIELDS = ("dataset_size", "batch_size", "noise_multiplier", "epochs", "delta",
               "max_grad_norm")
DEFAULT_PLAN = {"dataset_size": 60000, "batch_size": 256, "noise_multiplier": 1.1,
                "epochs": 10, "delta": 1e-5, "max_grad_norm": 1.0}
LABELS = {
    "dataset_size": ("Dataset size N", "records sampled from"),
    "batch_size": ("Expected batch size B", "records per step under Poisson sampling"),
    "noise_multiplier": ("Noise multiplier σ", "noise std / clipping norm"),
    "epochs": ("Epochs", "passes over the data"),
    "delta": ("δ", "of the (ε, δ) guarantee; keep it well below 1/N"),
    "max_grad_norm": ("Clipping norm C", "per-example gradient bound; does not change ε"),
}
METHOD_NAMES = {"rdp": "RDP (dp-accounting)", "prv": "PRV (prv-accountant)",
                "pld": "PLD (dp-accounting)"}


def format_epsilon(value: float) -> str:
    """Format an ε the same way everywhere in the app (tests compare against it)."""
    if math.isinf(value):
        return "∞"
    return f"{value:.3f}"


def _initial_values() -> dict[str, Any]:
    """Plan values from the URL (a shared link), else the defaults."""
    values = dict(DEFAULT_PLAN)
    params = st.query_params
    for field in PLAN_FIELDS:
        if field in params:
            text = params[field]
            try:
                number = float(text)
            except ValueError:
                continue
            if isinstance(DEFAULT_PLAN[field], int) and number.is_integer():
                number = int(number)
            values[field] = number
    return values


def plan_form() -> dpplan.TrainingPlan | None:
    """Draw the plan form in the sidebar; return the valid plan or None (error shown).

    The plan is kept in ``st.session_state["plan"]`` and mirrored into the URL's query
    parameters, so a link reproduces it.
    """
    if "plan_values" not in st.session_state:
        st.session_state["plan_values"] = _initial_values()
        for field, value in st.session_state["plan_values"].items():
            st.session_state[f"plan_{field}"] = value
    if "adopt" in st.session_state:  # a page asked to adopt a solved plan
        for field, value in st.session_state.pop("adopt").items():
            if field in PLAN_FIELDS:
                st.session_state[f"plan_{field}"] = value
    sidebar = st.sidebar
    sidebar.header("Plan")
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
    values = {field: st.session_state[f"plan_{field}"] for field in PLAN_FIELDS}
    try:
        plan = dpplan.TrainingPlan(**values)
    except PlanError as error:
        target = slots.get(error.field, sidebar)
        target.error(str(error))
        st.session_state["plan"] = None
        return None
    st.session_state["plan"] = plan
    st.query_params.from_dict({k: str(v) for k, v in plan.to_dict().items()
                               if k in PLAN_FIELDS})
    sidebar.caption(
        f"sample rate {plan.sample_rate:.5g} · {plan.steps_per_epoch:,} steps/epoch · "
        f"{plan.total_steps:,} steps"
    )
    return plan


@st.cache_data(max_entries=128, show_spinner=False)
def cached_curve(plan_dict: dict[str, Any], method: str) -> dict[str, Any]:
    """ε curve of one method as a dict, or ``{"error": message}`` if the library failed."""
    plan = dpplan.TrainingPlan.from_dict(plan_dict)
    try:
        return dpplan.epsilon_curve(plan, method=method).to_dict()
    except AccountingError as error:
        return {"method": method, "error": str(error)}


def headline(curves: dict[str, dict[str, Any]]) -> tuple[str, float] | None:
    """The smallest final upper bound and its method (as ``dpplan.compare`` chooses it)."""
    ok = [(c["epsilon"], dpplan.METHODS.index(m), m) for m, c in curves.items()
          if "error" not in c]
    if not ok:
        return None
    value, _, method = min(ok)
    return method, float(value)


def curves_frame(curves: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Long-form frame: epoch, method, ε (upper), lower (PRV only)."""
    rows = []
    for method, curve in curves.items():
        if "error" in curve:
            continue
        lower = curve["curve"].get("epsilon_lower")
        for index, epoch in enumerate(curve["curve"]["epochs"]):
            rows.append({
                "epoch": epoch,
                "method": METHOD_NAMES[method],
                "ε (upper bound)": float(curve["curve"]["epsilon"][index]),
                "lower": float(lower[index]) if lower else None,
            })
    return pd.DataFrame(rows)


def epsilon_chart(frame: pd.DataFrame) -> alt.Chart:
    """Interactive ε-over-epochs chart, one line per method, PRV's lower-upper band."""
    colors = alt.Scale(domain=list(METHOD_NAMES.values()),
                       range=["#d62728", "#1f77b4", "#2ca02c"])
    base = alt.Chart(frame).encode(
        x=alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1, format="d")))
    lines = base.mark_line(point=True).encode(
        y=alt.Y("ε (upper bound):Q", title="ε (upper bound)"),
        color=alt.Color("method:N", title="method", scale=colors),
        tooltip=["method", "epoch", alt.Tooltip("ε (upper bound):Q", format=".4f"),
                 alt.Tooltip("lower:Q", format=".4f", title="PRV lower bound")],
    )
    band = alt.Chart(frame.dropna(subset=["lower"])).mark_area(opacity=0.25).encode(
        x="epoch:Q", y="lower:Q", y2="ε (upper bound):Q",
        color=alt.Color("method:N", title="method", scale=colors),
        tooltip=[alt.Tooltip("lower:Q", format=".4f", title="PRV lower bound")],
    )
    return (band + lines).interactive().properties(height=360)


def show_error_list(curves: dict[str, dict[str, Any]]) -> None:
    """Explain methods that failed for this plan (the others are still shown)."""
    for method, curve in curves.items():
        if "error" in curve:
            st.warning(f"{METHOD_NAMES[method]} could not account this plan: {curve['error']}")


def store():
    """The run store (``$DPPLAN_HOME``); a fresh handle per call is cheap."""
    from dpplan.store import RunStore

    return RunStore()


def start_worker(run_store) -> None:
    """Make sure a background worker is running queued runs (patched in app tests)."""
    from dpplan.train.worker import ensure_worker

    ensure_worker(run_store)


def run_label(run) -> str:
    """Short human label of a stored run."""
    lr = run.schedule.get("max_lr", run.schedule.get("lr"))
    kind = run.schedule["kind"].replace("_", "-")
    private = "" if run.private else " · non-private"
    return (f"#{run.id} {kind} lr={lr:g} seed={run.seed} · {run.status} · "
            f"{len(run.records)}/{run.plan.epochs} epochs{private}")


def accuracy_frame(runs) -> pd.DataFrame:
    """Long-form per-epoch records of several runs (for charts and tables)."""
    rows = []
    for run in runs:
        for record in run.records:
            rows.append({
                "run": f"#{run.id}",
                "schedule": run.schedule["kind"],
                "lr": run.schedule.get("max_lr", run.schedule.get("lr")),
                "seed": run.seed,
                "epoch": record.epoch,
                "ε": record.epsilon if math.isfinite(record.epsilon) else None,
                "Opacus ε": (record.epsilon_opacus if math.isfinite(record.epsilon_opacus)
                             else None),
                "test accuracy": record.test_accuracy,
                "validation accuracy": record.validation_accuracy,
                "train loss": record.train_loss,
                "lr at end": record.lr,
                "seconds": record.seconds,
            })
    return pd.DataFrame(rows)


def grouped_accuracy(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread of test accuracy over seeds, per schedule, lr and epoch."""
    if frame.empty:
        return frame
    grouped = frame.groupby(["schedule", "lr", "epoch"], as_index=False).agg(
        epsilon=("ε", "max"),
        mean=("test accuracy", "mean"),
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
    band = base.mark_area(opacity=0.2).encode(y=alt.Y("low:Q", title="test accuracy",
                                                      scale=alt.Scale(zero=False)), y2="high:Q")
    lines = base.mark_line(point=True).encode(
        y=alt.Y("mean:Q", title="test accuracy", axis=alt.Axis(format="%")),
        tooltip=["line", "epoch", alt.Tooltip("epsilon:Q", format=".3f"),
                 alt.Tooltip("mean:Q", format=".2%"), "seeds"],
    )
    return (band + lines).interactive().properties(height=380)


def best_at(grouped: pd.DataFrame, thresholds=(1.0, 2.0, 4.0, 8.0)) -> pd.DataFrame:
    """Best mean test accuracy with ε ≤ x, per schedule line."""
    rows = []
    for line, part in grouped.groupby("line"):
        row = {"schedule": line}
        for x in thresholds:
            fit = part[part["epsilon"] <= x]
            row[f"best at ε ≤ {x:g}"] = (f"{fit['mean'].max():.2%}" if len(fit) else "—")
        rows.append(row)
    return pd.DataFrame(rows)
