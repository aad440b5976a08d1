"""Report page: the ε-budget report of the current plan, a stored run or a sweep; preview,
download."""

import functools

import streamlit as st
from components import (
    cached_plan_report,
    format_epsilon,
    pdf_unavailable,
    phase_one_notice,
    plain,
    run_label,
    store,
)

from dpplan.errors import DpplanError
from dpplan.report import (
    build_run_report,
    build_sweep_report,
    save_run_report,
    to_html,
    to_json,
    to_markdown,
    to_pdf,
)

st.title("Report")
st.caption(
    "A report states exactly what was accounted and how, and what it bought, so "
    "others can check your guarantee. HTML is one self-contained file that loads "
    "nothing; JSON follows the schema shipped with dpplan."
)

run_store = store()
runs = [r for r in run_store.list_runs() if r.private and r.records]
source = st.radio(
    "Report of",
    ["the current plan", "a stored run", "a sweep"],
    horizontal=True,
    key="report_source",
)
title = st.text_input("Title (optional)", key="report_title")
notes = st.text_area("Notes (optional)", key="report_notes")
tuning = (
    st.number_input(
        "Training runs tried while tuning (0 = not stated)",
        value=0,
        step=1,
        format="%d",
        key="report_tuning",
        help="Reported ε covers one run; composing all runs covers selection.",
    )
    if source == "the current plan"
    else 0
)


report = None
try:
    if source == "the current plan":
        plan = st.session_state.get("plan")
        phase_one_notice("reports on")
        if plan is None:
            st.info("Fix the highlighted field in the sidebar first.")
            st.stop()
        with st.spinner("Accounting…"):
            report = cached_plan_report(
                plan.to_dict(), title or None, notes or None, int(tuning) or None
            )
    elif source == "a sweep":
        sweeps = run_store.list_sweeps()
        if not sweeps:
            st.info("No sweep yet. Launch one on the Frontier page.")
            st.stop()
        sweep_id = st.selectbox(
            "Sweep",
            [s.id for s in sweeps],
            key="report_sweep",
            format_func=lambda i: next(f"sweep {s.id}: {s.status}" for s in sweeps if s.id == i),
        )
        with st.spinner("Accounting…"):
            report = build_sweep_report(
                run_store, sweep_id, title=title or None, notes=notes or None
            )
    elif not runs:
        st.info("No private run with records yet. Train one on the Train page.")
        st.stop()
    else:
        run_id = st.selectbox(
            "Run",
            [r.id for r in runs],
            key="report_run",
            format_func=lambda i: run_label(next(r for r in runs if r.id == i)),
        )
        with st.spinner("Accounting…"):
            report = build_run_report(run_store, run_id, title=title or None, notes=notes or None)
        # Stored with the run once per distinct report (run, its last update, title, notes),
        # not on every rerun of the page.
        distinct = (run_id, report.run.updated_at, title, notes)
        if st.session_state.get("report_saved") != distinct:
            save_run_report(run_store, report)
            st.session_state["report_saved"] = distinct
except DpplanError as error:
    st.error(plain(error))  # may quote the title or notes: shown as text
    st.stop()
except Exception as error:  # noqa: BLE001 - the page is the outer boundary (STYLE §3.7)
    st.error(f"Could not build the report: unexpected {type(error).__name__}: {plain(error)}")
    st.stop()

cols = st.columns(4)
stem = (
    f"dpplan-sweep-{report.sweep.id}-report"
    if report.sweep is not None
    else "dpplan-report"
    if report.run is None
    else f"dpplan-run-{report.run.id}-report"
)
cols[0].download_button(
    "Download HTML", to_html(report), file_name=f"{stem}.html", mime="text/html", type="primary"
)
cols[1].download_button(
    "Download Markdown", to_markdown(report), file_name=f"{stem}.md", mime="text/markdown"
)
cols[2].download_button(
    "Download JSON", to_json(report), file_name=f"{stem}.json", mime="application/json"
)
missing = pdf_unavailable()
cols[3].download_button(
    "Download PDF",
    functools.partial(to_pdf, report),  # printed only when clicked (about a second)
    file_name=f"{stem}.pdf",
    mime="application/pdf",
    disabled=missing is not None,
    help=plain(missing) if missing else "The HTML report printed on A4 by WeasyPrint",
)
if report.sweep is None:
    st.metric(
        "ε (headline upper bound)", format_epsilon(report.epsilon), help=f"at δ = {report.delta:g}"
    )
preview_html, preview_md = st.tabs(["Preview", "Markdown"])
with preview_html:
    # st.iframe replaces st.components.v1.html (deprecated, removal date 2026-06-01). The
    # report is dpplan's own HTML: user text in it is escaped, and its Content-Security-
    # Policy forbids scripts and every request.
    st.iframe(to_html(report), height=1400, alt="Preview of the HTML report")
with preview_md:
    # The Markdown source, not rendered: nothing in a preview loads or links anywhere.
    st.code(to_markdown(report), language="markdown", wrap_lines=True)
