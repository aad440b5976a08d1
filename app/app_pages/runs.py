"""Runs page: the stored runs, their status and records; delete and export."""

import json
import math

import pandas as pd
import streamlit as st
from components import (
    accuracy_frame,
    fields_table,
    format_accuracy,
    format_epsilon,
    plain,
    plan_fields,
    run_label,
    schedule_fields,
    store,
    task_of,
)

from dpplan.errors import DpplanError
from dpplan.run_policy import abandoned_note, delete_run, run_epsilon

st.title("Runs")
run_store = store()
st.caption(f"Stored in {run_store.path}")
runs = run_store.list_runs()
if not runs:
    st.info("No runs yet. Queue one on the Train page.")
    st.stop()

overview = pd.DataFrame(
    [
        {
            "id": r.id,
            "status": r.status,
            "task": r.task or "mnist",
            "schedule": r.schedule.kind,
            "lr": r.schedule.learning_rate,
            "seed": r.seed,
            "epochs": f"{len(r.records)}/{r.plan.epochs}",
            # One ε per run: the smallest upper bound recorded, labelled with its method.
            # A diverged run counts the epoch it diverged in (its steps touched the data).
            "ε": (
                f"{format_epsilon(run_epsilon(r)[0])} ({run_epsilon(r)[1].upper()})"
                if r.private and run_epsilon(r) is not None
                else "—"
            ),
            "test accuracy": format_accuracy(r.records[-1].test_accuracy) if r.records else "—",
            # The measure of a task that is not a classification (accuracy is NaN there).
            "test loss": (
                f"{r.records[-1].test_loss:.4g}"
                if r.records and math.isfinite(r.records[-1].test_loss)
                else "—"
            ),
            "device": r.device,
            "batch size": r.plan.batch_size,
            "σ": r.plan.noise_multiplier,
        }
        for r in runs
    ]
)
st.dataframe(overview, hide_index=True, width="stretch")

chosen = st.selectbox(
    "Run",
    [r.id for r in runs],
    format_func=lambda i: run_label(next(r for r in runs if r.id == i)),
    key="runs_selected",
)
run = next(r for r in runs if r.id == chosen)
st.markdown(
    f"**task** {plain(task_of(run))} · **device** {plain(run.device)} · **seed** {run.seed} · **status** "
    f"{plain(run.status)}" + (f" ({plain(run.stop_reason)})" if run.stop_reason else "")
)
plan_col, schedule_col = st.columns(2)
plan_col.markdown("**Plan**")
plan_col.dataframe(fields_table(plan_fields(run.plan)), hide_index=True, width="stretch")
schedule_col.markdown("**Schedule**")
schedule_col.dataframe(
    fields_table(schedule_fields(run.schedule)), hide_index=True, width="stretch"
)
if run.private and abandoned_note(run) and run_epsilon(run) is not None:
    value, method = run_epsilon(run)
    st.info(
        f"ε spent: {format_epsilon(value)} ({method.upper()}); {abandoned_note(run)}: they "
        "touched the data though no epoch records them."
    )
if run.error:
    st.error(plain(run.error))
for warning in run.warnings:
    st.warning(plain(warning))
frame = accuracy_frame([run])
if not frame.empty:
    shown = frame.drop(columns=["run", "schedule", "lr", "seed"])
    for column in ("test accuracy", "validation accuracy"):  # percent, as in the overview
        shown[column] = shown[column].map(format_accuracy)
    st.dataframe(shown, hide_index=True, width="stretch")
cols = st.columns(3)
cols[0].download_button(
    "Export JSON",
    json.dumps(run.to_dict(), indent=2),
    file_name=f"dpplan-run-{run.id}.json",
    mime="application/json",
)
cols[1].download_button(
    "Export CSV", frame.to_csv(index=False), file_name=f"dpplan-run-{run.id}.csv", mime="text/csv"
)
if cols[2].button("Delete run", key=f"delete_{run.id}"):
    try:
        delete_run(run_store, run.id)
        st.rerun()
    except DpplanError as error:
        st.error(str(error))
