"""Frontier page: the best test accuracy at each ε, per schedule, from stored sweeps."""

from __future__ import annotations

import math

import altair as alt
import pandas as pd
import streamlit as st
from components import format_epsilon, store

from dpplan.errors import DpplanError, PlanError
from dpplan.sweep import background
from dpplan.sweep.execute import frontier_result

st.title("Frontier")
st.caption(
    "For each target ε every plan is solved (σ for each batch size and number of epochs, "
    "never above the target), each schedule's learning rate is chosen on validation "
    "accuracy with the first seed and repeated with the others. The frontier is the best "
    "configuration at each ε; the band is the spread of test accuracy over seeds."
)


@st.cache_data(max_entries=16, ttl=600, show_spinner=False)
def cached_frontier(sweep_id: int, updated_at: float, status: str) -> dict:
    """The sweep's frontier (recomputed when the sweep changes)."""
    return frontier_result(store(), sweep_id)


def frontier_frame(result: dict) -> pd.DataFrame:
    """One row per (line, target ε): mean, band and the configuration behind it."""
    rows = []
    lines = [("frontier", result["points"])] + list(result["curves"].items())
    for line, points in lines:
        for point in points:
            mean, std = point["test_accuracy_mean"], point["test_accuracy_std"]
            schedule = point["schedule"]
            rows.append(
                {
                    "line": line,
                    "target ε": point["target_epsilon"],
                    "epsilon": point["epsilon"],
                    "mean": mean,
                    "low": mean - std,
                    "high": mean + std,
                    "schedule": schedule["kind"],
                    "lr": schedule.get("max_lr", schedule.get("lr")),
                    "batch size": point["plan"]["batch_size"],
                    "epochs": point["plan"]["epochs"],
                    "noise multiplier": point["plan"]["noise_multiplier"],
                    "seeds": len(point["seeds"]),
                }
            )
    return pd.DataFrame(rows)


def frontier_chart(frame: pd.DataFrame) -> alt.Chart:
    base = alt.Chart(frame).encode(
        x=alt.X("epsilon:Q", title="ε (upper bound)", scale=alt.Scale(type="log")),
        color=alt.Color("line:N", title="line"),
    )
    band = base.mark_area(opacity=0.2).encode(
        y=alt.Y("low:Q", title="test accuracy", scale=alt.Scale(zero=False)), y2="high:Q"
    )
    lines = base.mark_line(point=True).encode(
        y=alt.Y("mean:Q", title="test accuracy", axis=alt.Axis(format="%")),
        tooltip=[
            "line",
            "schedule",
            "lr",
            "batch size",
            "epochs",
            alt.Tooltip("noise multiplier:Q", format=".3f"),
            alt.Tooltip("epsilon:Q", format=".3f"),
            alt.Tooltip("mean:Q", format=".2%"),
            "seeds",
        ],
    )
    return (band + lines).properties(height=380)


def best_table(result: dict) -> pd.DataFrame:
    """Best accuracy at ε ≤ x (x = each target) and the plan that got it."""
    rows = []
    for target in sorted({p["target_epsilon"] for p in result["points"]}):
        fit = [p for p in result["points"] if p["epsilon"] <= target]
        best = max(fit, key=lambda p: p["validation_accuracy"])
        plan, schedule = best["plan"], best["schedule"]
        rows.append(
            {
                "ε ≤": target,
                "test accuracy": f"{best['test_accuracy_mean']:.2%} ± "
                f"{best['test_accuracy_std']:.2%}",
                "ε": format_epsilon(best["epsilon"]),
                "batch size": plan["batch_size"],
                "epochs": plan["epochs"],
                "noise multiplier": round(plan["noise_multiplier"], 4),
                "schedule": schedule["kind"],
                "lr": schedule.get("max_lr", schedule.get("lr")),
                "seeds": len(best["seeds"]),
            }
        )
    return pd.DataFrame(rows)


def show(sweep_id: int) -> None:
    record = store().get_sweep(sweep_id)
    result = cached_frontier(sweep_id, record.updated_at, record.status)
    trials = result["trials"]
    cols = st.columns(4)
    cols[0].metric("Status", result["status"])
    cols[1].metric("Trials done", f"{trials['finished']} / {trials['planned']}")
    cols[2].metric("Failed", trials["failed"])
    cols[3].metric("Runs on the data", result["runs_tried"])
    if trials.get("diverged"):
        st.caption(
            f"{trials['diverged']} finished trial(s) diverged (non-finite loss): they have no "
            "accuracy, are never selected and are left out of every point's mean."
        )
    if "repeat_and_select_epsilon" in result["tuning"]:
        st.warning(
            "Random-repeats sweep: keep the number of runs and trials (and the composed ε) "
            "private: they give away how many trials ran, which the repeat-and-select "
            "guarantee needs to stay secret. Publish the sweep's report, which leaves them out."
        )
    if not result["points"]:
        st.info("No point yet: a target ε gets its point once its selection runs finish.")
        return
    st.altair_chart(frontier_chart(frontier_frame(result)), width="stretch")
    st.markdown("**Best accuracy at ε ≤ x**, and the plan that got it")
    table = best_table(result)
    st.dataframe(table, hide_index=True, width="stretch")
    choice = st.selectbox(
        "Plan to adopt",
        list(range(len(table))),
        key="frontier_adopt_row",
        format_func=lambda i: (
            f"ε ≤ {table['ε ≤'][i]:g}: batch size "
            f"{table['batch size'][i]}, {table['epochs'][i]} epochs, σ = "
            f"{table['noise multiplier'][i]:g}"
        ),
    )
    if st.button("Adopt this plan", type="primary", key="frontier_adopt"):
        target = table["ε ≤"][choice]
        fit = [p for p in result["points"] if p["epsilon"] <= target]
        best = max(fit, key=lambda p: p["validation_accuracy"])
        st.session_state["adopt"] = best["plan"]
        st.rerun()
    tuning = result["tuning"]
    st.subheader("Privacy cost of the tuning")
    cols = st.columns(3)
    cols[0].metric(
        "One run",
        format_epsilon(tuning["single_run_epsilon"]),
        help=tuning["covers"]["single_run_epsilon"],
    )
    cols[1].metric(
        f"All {tuning['runs']} runs composed",
        format_epsilon(tuning["all_runs_epsilon"]),
        help=tuning["covers"]["all_runs_epsilon"],
    )
    if "repeat_and_select_epsilon" in tuning:
        cols[2].metric(
            "Repeat and select",
            format_epsilon(tuning["repeat_and_select_epsilon"]),
            help=tuning["covers"]["repeat_and_select_epsilon"],
        )
    st.caption(
        f"Every ε at δ = {tuning['delta']:g} is an upper bound. "
        f"{tuning['covers']['validation'][0].upper()}{tuning['covers']['validation'][1:]}."
    )


sweeps = store().list_sweeps()
if not sweeps:
    st.info("No sweep yet. Launch one below, or run `dpplan sweep` in a terminal.")
else:
    chosen = st.selectbox(
        "Sweep",
        [s.id for s in sweeps],
        key="frontier_sweep",
        format_func=lambda i: next(
            f"sweep {s.id}: {s.status}, ε targets "
            f"{', '.join(f'{e:g}' for e in s.spec['target_epsilons'])}, "
            f"{len(s.trials)} trials done"
            for s in sweeps
            if s.id == i
        ),
    )
    running = next(s for s in sweeps if s.id == chosen).status == "running"
    if running:
        st.fragment(run_every=5)(show)(chosen)
    else:
        show(chosen)

st.subheader("Launch a sweep")
with st.form("frontier_form"):
    cols = st.columns(3)
    epsilons = cols[0].text_input("Target ε values", "1, 3, 8", key="sweep_epsilons")
    batch_sizes = cols[1].text_input("Batch sizes", "256, 1024", key="sweep_batch_sizes")
    epochs = cols[2].text_input("Epochs", "5, 10", key="sweep_epochs")
    schedules = st.multiselect(
        "Schedules",
        ["one_cycle", "plateau", "constant"],
        default=["one_cycle", "plateau"],
        key="sweep_schedules",
    )
    cols = st.columns(3)
    one_cycle = cols[0].text_input("One-cycle peak LRs", "1, 4, 15.62", key="sweep_oc")
    plateau = cols[1].text_input("Plateau starting LRs", "0.05, 0.2, 0.8", key="sweep_pl")
    constant = cols[2].text_input("Constant LRs", "0.1, 0.5", key="sweep_const")
    cols = st.columns(4)
    seeds = cols[0].text_input("Seeds (the first selects)", "0, 1, 2", key="sweep_seeds")
    delta = cols[1].text_input("δ", "1e-5", key="sweep_delta")
    subset = cols[2].number_input(
        "First N training examples (0 = all)", value=0, step=1000, format="%d", key="sweep_subset"
    )
    repeats = cols[3].number_input(
        "Random repeats, mean (0 = full grid)", value=0.0, step=1.0, key="sweep_repeats"
    )
    launch = st.form_submit_button("Launch in the background")
if launch:
    argv = [
        "--epsilons",
        epsilons,
        "--batch-sizes",
        batch_sizes,
        "--epochs",
        epochs,
        "--schedules",
        ",".join(schedules),
        "--one-cycle-lrs",
        one_cycle,
        "--plateau-lrs",
        plateau,
        "--constant-lrs",
        constant,
        "--seeds",
        seeds,
        "--delta",
        delta,
    ]
    if subset:
        argv += ["--subset", str(int(subset))]
    if repeats and math.isfinite(repeats):
        argv += ["--random-repeats", f"{repeats:g}"]
    try:
        if not schedules:
            raise PlanError("schedules", [], "at least one schedule")
        pid, log = background.launch_sweep([a.replace(" ", "") for a in argv])
        st.success(
            f"Sweep started in the background (process {pid}; log {log}). It appears "
            "above once its plans are solved."
        )
    except DpplanError as error:
        st.error(str(error))
