"""Plan page: the headline ε, the ε-over-epochs curves of RDP, PRV and PLD, and a table.

The methods are computed fastest first (RDP, then PLD, then PRV) and the page redraws after
each: the curves and table show each method as it arrives, but the headline (the smallest
final upper bound of all methods) reads "pending" until every method is in, so no number is
ever shown as the headline and then replaced.

With phases (the sidebar's phase editor), everything is for the phased plan: the curve runs
on across phases (a phase that stops mid-way ends a partial epoch) and a phase table shows
each phase's settings and the headline ε after it.
"""

import pandas as pd
import streamlit as st
from components import (
    METHOD_NAMES,
    curves_frame,
    epsilon_chart,
    format_epsilon,
    headline,
    method_result,
    show_error_list,
)

import dpplan

#: What the headline metric reads until every method is in.
PENDING = "pending…"

st.title("Plan")
plan = st.session_state.get("plan")
if plan is None:
    st.info("Fix the highlighted field in the sidebar to see ε.")
    st.stop()
for message in dpplan.plan_warnings(plan):
    st.warning(message)
phased = st.session_state.get("phased_plan")
if phased is not None:
    plan = phased  # the first phase's warnings hold for all: they share N and δ
    ends = phased.epoch_ends()
summary_slot, phase_slot, chart_slot, table_slot, settings_slot = (st.empty() for _ in range(5))


def draw(curves: dict, pending: list[str]) -> None:
    """Draw everything known so far; ``pending`` methods are still being computed.

    ``curves`` maps a method to its :class:`components.MethodResult`; ε values are floats
    (``math.inf`` when a method cannot bound ε at this δ).
    """
    best = headline(curves)
    with summary_slot.container():
        if best is None:
            if pending:
                st.info("Accounting…")
            else:
                st.error("No accounting method could handle this plan; see below.")
                show_error_list(curves)
            return
        method, value = best
        waiting = ", ".join(m.upper() for m in pending)
        cols = st.columns(4)
        cols[0].metric(
            "ε after all epochs",
            PENDING if pending else format_epsilon(value),
            help=(
                f"Computing {waiting}: the headline is the smallest upper bound of all methods"
                if pending
                else f"Smallest upper bound, from {METHOD_NAMES[method]}, at δ = {plan.delta:g}"
            ),
        )
        if phased is None:
            cols[1].metric("Sample rate q", f"{plan.sample_rate:.5g}")
            cols[2].metric("Steps per epoch", f"{plan.steps_per_epoch:,}")
        else:
            cols[1].metric("Phases", f"{len(phased.phases)}")
            cols[2].metric("Epochs (all phases)", f"{len(ends):,}")
        cols[3].metric("Total steps", f"{plan.total_steps:,}")
        if pending:
            st.caption(
                f"Headline pending: computing {waiting}… The headline is the smallest upper "
                "bound of all methods; the curves and table below show those already in. "
                "Every number here is an upper bound."
            )
        else:
            st.caption(
                f"(ε, δ) = ({format_epsilon(value)}, {plan.delta:g}) for example-level "
                "add/remove privacy under Poisson sampling"
                + (" in every phase" if phased is not None else "")
                + "; headline from "
                f"**{METHOD_NAMES[method]}**, the smallest of the upper bounds below. Every "
                "number here is an upper bound."
            )
        show_error_list(curves)
    chart_slot.altair_chart(epsilon_chart(curves_frame(curves)), width="stretch")
    if phased is not None and not pending:
        phase_table(curves)
    epochs = len(ends) if phased is not None else plan.epochs
    table = pd.DataFrame({"epoch": range(1, epochs + 1)})
    table["steps"] = [plan.steps_after(e) for e in table["epoch"]]
    for name in dpplan.METHODS:
        result = curves.get(name)
        if result is None or result.curve is None:
            continue
        table[f"{name.upper()} ε"] = list(result.curve.epsilons)
        if result.curve.lower is not None:
            table["PRV lower bound"] = list(result.curve.lower)
    table_slot.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            c: st.column_config.NumberColumn(format="%.4f")
            for c in table.columns
            if "ε" in c or "lower" in c
        },
    )
    with settings_slot.expander("Numerical settings and library versions"):
        for name, result in curves.items():
            if result.curve is not None:
                st.markdown(
                    f"**{METHOD_NAMES[name]}**: "
                    + ", ".join(f"{k} = {v}" for k, v in result.curve.settings.items())
                    + " · "
                    + ", ".join(f"{k} {v}" for k, v in result.curve.versions.items())
                )


def phase_table(curves: dict) -> None:
    """Each phase's settings and the smallest upper bound after it (all methods in)."""
    rows, done = [], 0
    for index, (phase, steps) in enumerate(zip(phased.phases, phased.steps_per_phase), 1):
        done += steps
        point = ends.index(done)
        found = {m: r.curve.epsilons[point] for m, r in curves.items() if r.curve is not None}
        best = min(found, key=lambda m: (found[m], dpplan.METHODS.index(m)))
        rows.append(
            {
                "phase": index,
                "batch size": phase.batch_size,
                "σ": phase.noise_multiplier,
                "epochs": phase.epochs,
                "steps": steps,
                "sample rate": phase.sample_rate,
                "ε after the phase": found[best],
                "method": best.upper(),
            }
        )
    phase_slot.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        column_config={"ε after the phase": st.column_config.NumberColumn(format="%.4f")},
    )


if phased is None:
    key = plan.replace(max_grad_norm=1.0).to_dict()  # the clipping norm does not change ε
else:
    key = phased.to_dict()
order = ["rdp", "pld", "prv"]  # fastest first
curves: dict = {}
for index, method in enumerate(order):
    curves[method] = method_result(key, method)
    draw(curves, pending=order[index + 1 :])
