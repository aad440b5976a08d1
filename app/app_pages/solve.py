"""Solve page: the noise multiplier, epochs or batch size that meet a target ε."""

import math

import pandas as pd
import streamlit as st
from components import (
    METHOD_NAMES,
    format_epsilon,
    method_result,
    phase_one_notice,
    plain,
    plan_fields,
)

import dpplan
from dpplan.errors import AccountingError, InfeasibleTargetError, PlanError
from dpplan.solve import BEST, solve_plan

st.title("Solve")
plan = st.session_state.get("plan")
phase_one_notice("solves")
if plan is None:
    st.info("Fix the highlighted field in the sidebar first.")
    st.stop()

SOLVERS = {
    "noise_multiplier": ("Noise multiplier σ (smallest that fits)", dpplan.solve_noise_multiplier),
    "epochs": ("Epochs (most that fit)", dpplan.solve_epochs),
    "batch_size": ("Batch size B (largest that fits)", dpplan.solve_batch_size),
}
with st.form("solve_form"):
    target = st.selectbox(
        "Solve for", list(SOLVERS), format_func=lambda k: SOLVERS[k][0], key="solve_target"
    )
    target_epsilon = st.number_input(
        "Target ε", value=2.0, step=0.1, format="%.3f", key="solve_epsilon"
    )
    method = st.selectbox(
        "Accounting method",
        (BEST, *dpplan.METHODS),
        index=0,
        format_func=lambda m: (
            "Best: the most favourable plan of all methods" if m == BEST else METHOD_NAMES[m]
        ),
        key="solve_method",
    )
    submitted = st.form_submit_button("Solve", type="primary")

if submitted:
    with st.spinner(f"Solving for {target} with {method.upper()}…"):
        try:
            solution = solve_plan(plan, field=target, target_epsilon=target_epsilon, method=method)
            st.session_state["solved"] = (solution.plan, solution.method, target, target_epsilon)
            st.session_state["solved_note"] = (
                f"Certified by {METHOD_NAMES[solution.method]}"
                + (" (the most favourable method)" if method == BEST else "")
                + f"; {solution.bound_note()}."
                + "".join(f" Warning: {message}" for message in solution.warnings)
            )
        except (PlanError, InfeasibleTargetError, AccountingError) as error:
            st.session_state.pop("solved", None)
            st.session_state.pop("solved_note", None)
            st.error(str(error))

if "solved" in st.session_state:
    solved, method, target, target_epsilon = st.session_state["solved"]
    value = getattr(solved, target)
    result = method_result(solved.to_dict(), method)  # cached: reruns do not recompute
    if result.curve is None:
        st.error(f"{METHOD_NAMES[method]} could not account the solved plan: {plain(result.error)}")
        st.stop()
    curve = result.curve
    cols = st.columns(3)
    cols[0].metric(f"Solved {target}", f"{value:.4g}" if isinstance(value, float) else f"{value:,}")
    cols[1].metric(
        "Achieved ε",
        format_epsilon(curve.epsilon),
        help=f"{METHOD_NAMES[method]} upper bound; never above the target",
    )
    cols[2].metric("Target ε", f"{target_epsilon:g}")
    st.caption(plain(st.session_state.get("solved_note", "")))
    st.line_chart(
        pd.DataFrame(
            {
                "epoch": curve.epochs,  # epoch 1 is the first point, not a row index of 0
                "ε (upper bound)": [e if math.isfinite(e) else None for e in curve.epsilons],
            }
        ),
        x="epoch",
        y="ε (upper bound)",
        x_label="epoch",
        y_label="ε (upper bound)",
    )
    st.caption(
        "Solved plan: " + " · ".join(f"{label} = {text}" for label, text in plan_fields(solved))
    )
    if st.button("Adopt this plan", type="primary"):
        st.session_state["adopt"] = solved.to_dict()
        st.session_state.pop("solved")
        st.rerun()
