"""Frontier page: the best test accuracy at each ε, per schedule, from stored sweeps."""

from __future__ import annotations

import math

import altair as alt
import pandas as pd
import streamlit as st
from components import (
    SWEEP_COST_SOURCE,
    SWEEP_DEFAULTS_CPU,
    SWEEP_DEFAULTS_GPU,
    format_duration,
    format_epsilon,
    gpu_available,
    parse_numbers,
    plain,
    store,
    sweep_estimate,
    task_field,
)

from dpplan.errors import DpplanError, PlanError
from dpplan.sweep import FrontierResult, SweepSpec, background, frontier_result
from dpplan.sweep.results import unstored_note
from dpplan.train import RunOptions

st.title("Frontier")
st.caption(
    "For each target ε every plan is solved (σ for each batch size and number of epochs, "
    "never above the target), each schedule's learning rate is chosen on validation "
    "accuracy with the first seed and repeated with the others. The frontier is the best "
    "configuration at each ε; the band is ± one sample standard deviation (n - 1) of test "
    "accuracy over seeds."
)


@st.cache_data(max_entries=16, ttl=600, show_spinner=False)
def cached_frontier(sweep_id: int, updated_at: float, status: str) -> FrontierResult:
    """The sweep's frontier (recomputed when the sweep changes)."""
    return frontier_result(store(), sweep_id)


def frontier_frame(result: FrontierResult) -> pd.DataFrame:
    """One row per (line, target ε): mean, band and the configuration behind it."""
    rows = []
    lines = [("frontier", result.points), *result.curves.items()]
    for line, points in lines:
        for point in points:
            mean, std = point.test_accuracy_mean, point.test_accuracy_std
            rows.append(
                {
                    "line": line,
                    "target ε": point.target_epsilon,
                    "epsilon": point.epsilon,
                    "mean": mean,
                    "low": mean - std,
                    "high": mean + std,
                    "schedule": point.schedule.kind,
                    "lr": point.learning_rate,
                    "batch size": point.plan.batch_size,
                    "epochs": point.plan.epochs,
                    "noise multiplier": point.plan.noise_multiplier,
                    "seeds": len(point.seeds),
                }
            )
    return pd.DataFrame(rows)


#: One distinct colour per line, visible on light and dark themes (Streamlit's theme palette
#: drew one-cycle near-white); the frontier is a dashed line with open rings, drawn under the
#: schedules' lines so it never hides them.
LINE_COLORS = {
    "one_cycle": "#1f77b4",
    "plateau": "#e67e00",
    "constant": "#2ca02c",
    "frontier": "#9467bd",
}


def frontier_chart(frame: pd.DataFrame, predicted: bool = False) -> alt.Chart:
    """The frontier (dashed, open rings) over the schedules' lines; a sweep predicted by
    simulation draws every line dashed with open markers, so it never passes for trained."""
    lines = [line for line in LINE_COLORS if line in set(frame["line"])]
    colors = alt.Scale(domain=lines, range=[LINE_COLORS[line] for line in lines])
    x = alt.X("epsilon:Q", title="ε (upper bound)", scale=alt.Scale(type="log"))
    color = alt.Color("line:N", title="line", scale=colors)
    tooltip = [
        "line",
        "schedule",
        "lr",
        "batch size",
        "epochs",
        alt.Tooltip("noise multiplier:Q", format=".3f"),
        alt.Tooltip("epsilon:Q", format=".3f"),
        alt.Tooltip("mean:Q", format=".2%"),
        "seeds",
    ]
    y = alt.Y("mean:Q", title="test accuracy", axis=alt.Axis(format="%"))
    schedules = alt.Chart(frame[frame["line"] != "frontier"]).encode(x=x, color=color)
    band = schedules.mark_area(opacity=0.15).encode(
        y=alt.Y("low:Q", title="test accuracy", scale=alt.Scale(zero=False)), y2="high:Q"
    )
    schedule_lines = schedules.mark_line(
        point=alt.OverlayMarkDef(size=60 if predicted else 40, filled=not predicted),
        strokeDash=[2, 3] if predicted else [],
    ).encode(y=y, tooltip=tooltip)
    frontier = (
        alt.Chart(frame[frame["line"] == "frontier"])
        .mark_line(
            strokeDash=[6, 4],
            strokeWidth=1.5,
            point=alt.OverlayMarkDef(filled=False, size=160, strokeWidth=2),
        )
        .encode(x=x, y=y, color=color, tooltip=tooltip)
    )
    return (frontier + band + schedule_lines).properties(height=380)  # frontier underneath


def best_table(result: FrontierResult) -> pd.DataFrame:
    """Best accuracy at ε ≤ x (x = each target) and the plan that got it: selected on
    validation accuracy, reported on test (:func:`dpplan.selection.best_at`)."""
    rows = []
    for target in sorted({p.target_epsilon for p in result.points}):
        best = result.best_at(target)
        if best is None:
            continue
        rows.append(
            {
                "ε ≤": target,
                "test accuracy (mean ± sample std)": f"{best.test_accuracy_mean:.2%} "
                + (
                    f"± {best.test_accuracy_std:.2%}"
                    if len(best.seeds) > 1
                    else "(1 seed: no spread measured)"
                ),
                "ε": format_epsilon(best.epsilon),
                "batch size": best.plan.batch_size,
                "epochs": best.plan.epochs,
                "noise multiplier": round(best.plan.noise_multiplier, 4),
                "schedule": best.schedule.kind,
                "lr": best.learning_rate,
                "seeds": len(best.seeds),
            }
        )
    return pd.DataFrame(rows)


def show(sweep_id: int) -> None:
    record = store().get_sweep(sweep_id)
    result = cached_frontier(sweep_id, record.updated_at, record.status)
    trials = result.trials
    cols = st.columns(4)
    cols[0].metric("Status", result.status)
    cols[1].metric("Trials done", f"{trials.finished} / {trials.planned}")
    cols[2].metric("Failed", trials.failed)
    cols[3].metric("Runs on the data", result.runs_tried)
    if note := unstored_note(result.unstored_attempts):
        st.caption(note)
    if trials.diverged:
        st.caption(
            f"{trials.diverged} finished trial(s) diverged (non-finite loss): they have no "
            "accuracy, are never selected and are left out of every point's mean."
        )
    if result.tuning.random:
        st.warning(
            "Random-repeats sweep: keep the number of runs and trials (and the composed ε) "
            "private: they give away how many trials ran, which the repeat-and-select "
            "guarantee needs to stay secret. Publish the sweep's report, which leaves them out."
        )
    if not result.points:
        st.info("No point yet: a target ε gets its point once its selection runs finish.")
        return
    simulation = result.simulation
    if simulation:
        calibration = simulation.get("calibration")
        error = (
            f"At K = {simulation['predicted_by_simulation']} the predictions' measured error "
            f"is {calibration['mean_abs_error_points']:.1f} points on average, "
            f"{calibration['worst_abs_error_points']:.1f} at worst "
            f"({calibration['configs']} configurations, {calibration['seeds']} seeds; "
            f"{calibration['source']})."
            if calibration
            else "This K was not calibrated (bench/predict.py): its error is not measured."
        )
        data = (
            "the validation split, treated as public (no training-data ε)"
            if simulation["simulation_data"] == "validation"
            else "the training data (each trial's own, large ε counts: see the tuning cost)"
        )
        st.warning(
            f"**{simulation['label'][0].upper()}{simulation['label'][1:]}**: every point is "
            "a prediction, not a trained result. Each trial trained B/K with σ/K for the "
            f"plan's steps, on {data}. {error}"
        )
    st.altair_chart(frontier_chart(frontier_frame(result), bool(simulation)), width="stretch")
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
        st.session_state["adopt"] = result.best_at(table["ε ≤"][choice]).plan.to_dict()
        st.rerun()
    tuning = result.tuning
    st.subheader("Privacy cost of the tuning")
    cols = st.columns(3)
    cols[0].metric(
        "One run",
        format_epsilon(tuning.single_run_epsilon),
        help=tuning.covers["single_run_epsilon"],
    )
    cols[1].metric(
        f"All {tuning.runs} runs composed",
        format_epsilon(tuning.all_runs_epsilon),
        help=tuning.covers["all_runs_epsilon"],
    )
    if tuning.repeat_and_select_epsilon is not None:
        cols[2].metric(
            "Repeat and select",
            format_epsilon(tuning.repeat_and_select_epsilon),
            help=tuning.covers["repeat_and_select_epsilon"],
        )
    if tuning.simulation is not None:
        words = tuning.covers["simulation"]
        st.caption(words[0].upper() + words[1:])
    validation = tuning.covers["validation"]
    st.caption(
        f"Every ε at δ = {tuning.delta:g} is an upper bound. "
        f"{validation[0].upper()}{validation[1:]}."
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
            f"{sum(t.has_outcome for t in s.trials)} trials done"
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
gpu = gpu_available()
defaults = SWEEP_DEFAULTS_GPU if gpu else SWEEP_DEFAULTS_CPU
cols = st.columns(3)
epsilons = cols[0].text_input("Target ε values", defaults["epsilons"], key="sweep_epsilons")
batch_sizes = cols[1].text_input("Batch sizes", defaults["batch_sizes"], key="sweep_batch_sizes")
epochs = cols[2].text_input("Epochs", defaults["epochs"], key="sweep_epochs")
schedules = st.multiselect(
    "Schedules",
    ["one_cycle", "plateau", "constant"],
    default=["one_cycle", "plateau"],
    key="sweep_schedules",
)
cols = st.columns(3)
one_cycle = cols[0].text_input("One-cycle peak LRs", defaults["one_cycle_lrs"], key="sweep_oc")
plateau = cols[1].text_input("Plateau starting LRs", defaults["plateau_lrs"], key="sweep_pl")
constant = cols[2].text_input("Constant LRs", defaults["constant_lrs"], key="sweep_const")
cols = st.columns(4)
seeds = cols[0].text_input("Seeds (the first selects)", defaults["seeds"], key="sweep_seeds")
delta = cols[1].text_input("δ", "1e-5", key="sweep_delta")
subset = cols[2].number_input(
    "First N MNIST training examples (0 = all; not used with a task)",
    value=defaults["subset"],
    step=1000,
    format="%d",
    key="sweep_subset",
)
repeats = cols[3].number_input(
    "Random repeats, mean (0 = full grid)", value=0.0, step=1.0, key="sweep_repeats"
)
task_text = task_field("sweep_task")
plateau_every = st.number_input(
    "Plateau: evaluate every N steps (0 = once per epoch)",
    value=0,
    step=1,
    format="%d",
    key="sweep_plateau_every",
    help="Every plateau trial steps its schedule on the validation loss every N optimizer "
    "steps (patience counts these evaluations), so it can act within a short run; "
    "`dpplan sweep --plateau-every N`.",
)
cols = st.columns(2)
simulate = cols[0].number_input(
    "Predict by simulation at K (0 = train every plan)",
    value=0,
    min_value=0,
    step=1,
    format="%d",
    key="sweep_simulate",
    help="Each trial trains B/K with σ/K for the plan's steps (dpplan.simulate): a cheap "
    "prediction of the frontier, marked as such. See the README, Predict before you train.",
)
simulate_public = cols[1].checkbox(
    "Simulate on the validation split (public)",
    value=False,
    key="sweep_simulate_public",
    help="The simulated trials then touch no training example (no training-data ε).",
)


def launch_spec() -> SweepSpec:
    """The sweep the form describes (validated as ``dpplan sweep`` validates it)."""
    if not schedules:
        raise PlanError("schedules", [], "at least one schedule")
    lrs = {
        "one_cycle_lrs": parse_numbers("one_cycle_lrs", one_cycle),
        "plateau_lrs": parse_numbers("plateau_lrs", plateau),
        "constant_lrs": parse_numbers("constant_lrs", constant),
    }
    try:
        delta_value = float(delta)
    except ValueError:
        raise PlanError("delta", delta, "a number, e.g. 1e-5") from None
    return SweepSpec(
        target_epsilons=parse_numbers("epsilons", epsilons),
        delta=delta_value,
        batch_sizes=parse_numbers("batch_sizes", batch_sizes),
        epochs=parse_numbers("epochs", epochs),
        schedules=tuple(schedules),
        **{k: v for k, v in lrs.items() if v or k.removesuffix("_lrs") in schedules},
        seeds=parse_numbers("seeds", seeds),
        options=RunOptions(subset=int(subset) if subset and not task_text.strip() else None),
        task=task_text.strip() or None,
        random_repeats=repeats if repeats and math.isfinite(repeats) else None,
        simulate=int(simulate) if simulate else None,
        simulate_data="validation" if simulate and simulate_public else "training",
        plateau_every=plateau_every or None,
    )


try:
    spec = launch_spec()
except DpplanError as error:
    spec = None
    st.error(plain(error))
else:
    trials, seconds = sweep_estimate(spec)
    if spec.simulate:
        from dpplan.simulate import calibration

        measured = calibration(spec.simulate)
        if measured and measured["cost_ratio"]:
            seconds /= measured["cost_ratio"]
    protocol = "expected trials (random protocol)" if spec.random_repeats else "trials"
    if spec.task is not None:
        estimate = (
            f"No time is measured for task {plain(spec.task)}'s model; the MNIST network's "
            f"rate would give about {format_duration(seconds)}, which need not hold for it."
        )
    elif gpu:
        estimate = (
            f"A GPU is present: no GPU cost is measured yet (BENCHMARKS.md owes it); at the "
            f"CPU's measured rate this would take about {format_duration(seconds)}, an upper "
            "estimate."
        )
    else:
        estimate = (
            f"Estimated time on this CPU: about {format_duration(seconds)}, one trial at a "
            "time (Ray runs one per CPU, so it may finish sooner), plus Ray's start."
        )
    st.info(
        f"**{trials:,} {protocol}** of about "
        f"{sum(spec.epochs) / len(spec.epochs):g} epochs on "
        f"{spec.dataset_size:,} training examples"
        f"{'' if spec.task is None else f' of task {plain(spec.task)}'}. {estimate}"
    )
    note = ""
    if spec.simulate:
        note = (
            f" Simulated trials: divided by the CPU cost ratio measured at K = {spec.simulate} "
            f"({measured['cost_ratio']:.1f}×, bench/predict.py)."
            if measured and measured["cost_ratio"]
            else f" Simulated trials: no cost ratio is measured at K = {spec.simulate}, so "
            "the estimate is a full sweep's."
        )
    st.caption(f"Estimate from {SWEEP_COST_SOURCE}.{note}")
launch = st.button(
    "Launch in the background", type="primary", key="sweep_launch", disabled=spec is None
)
if launch and spec is not None:
    try:
        pid, log = background.launch_sweep(spec)
        st.success(
            f"Sweep started in the background (process {pid}; log {log}). It appears "
            "above once its plans are solved."
        )
    except DpplanError as error:
        st.error(plain(error))
