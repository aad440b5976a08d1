"""Plan page: the headline ε, the ε-over-epochs curves of RDP, PRV and PLD, and a table."""

import pandas as pd
import streamlit as st
from components import (
    METHOD_NAMES,
    curves_for,
    curves_frame,
    epsilon_chart,
    format_epsilon,
    headline,
    show_error_list,
)

import dpplan

st.title("Plan")
plan = st.session_state.get("plan")
if plan is None:
    st.info("Fix the highlighted field in the sidebar to see ε.")
    st.stop()

with st.spinner("Accounting…"):
    curves = curves_for(plan)
best = headline(curves)
if best is None:
    st.error("No accounting method could handle this plan; see the messages below.")
    show_error_list(curves)
    st.stop()
method, value = best
cols = st.columns(4)
cols[0].metric("ε after all epochs", format_epsilon(value),
               help=f"Smallest upper bound, from {METHOD_NAMES[method]}, at δ = {plan.delta:g}")
cols[1].metric("Sample rate q", f"{plan.sample_rate:.5g}")
cols[2].metric("Steps per epoch", f"{plan.steps_per_epoch:,}")
cols[3].metric("Total steps", f"{plan.total_steps:,}")
st.caption(
    f"(ε, δ) = ({format_epsilon(value)}, {plan.delta:g}) for example-level add/remove privacy "
    f"under Poisson sampling; headline from **{METHOD_NAMES[method]}**, the smallest of the "
    "upper bounds below. Every number on this page is an upper bound."
)
for message in dpplan.plan_warnings(plan):
    st.warning(message)
show_error_list(curves)

frame = curves_frame(curves)
st.altair_chart(epsilon_chart(frame), width="stretch")

table = pd.DataFrame({"epoch": range(1, plan.epochs + 1)})
table["steps"] = [plan.steps_after(e) for e in table["epoch"]]
for name, curve in curves.items():
    if "error" in curve:
        continue
    table[f"{name.upper()} ε"] = [float(x) for x in curve["curve"]["epsilon"]]
    if "epsilon_lower" in curve["curve"]:
        table["PRV lower bound"] = [float(x) for x in curve["curve"]["epsilon_lower"]]
st.dataframe(table, hide_index=True, width="stretch",
             column_config={c: st.column_config.NumberColumn(format="%.4f")
                            for c in table.columns if "ε" in c or "lower" in c})
with st.expander("Numerical settings and library versions"):
    for name, curve in curves.items():
        if "error" not in curve:
            st.markdown(f"**{METHOD_NAMES[name]}**: " + ", ".join(
                f"{k} = {v}" for k, v in curve["settings"].items()) + " · " + ", ".join(
                f"{k} {v}" for k, v in curve["versions"].items()))
