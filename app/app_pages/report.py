"""Report page: the ε-budget report of the current plan or of a stored run; preview, download."""

import streamlit as st
import streamlit.components.v1 as st_components
from components import run_label, store

from dpplan.errors import DpplanError
from dpplan.report import build_report, build_run_report, save_run_report, to_html, to_json
from dpplan.report import to_markdown

st.title("Report")
st.caption("A report states exactly what was accounted and how, and what it bought, so "
           "others can check your guarantee. HTML is one self-contained file that loads "
           "nothing; JSON follows the schema shipped with dpplan.")

run_store = store()
runs = [r for r in run_store.list_runs() if r.private and r.records]
source = st.radio("Report of", ["the current plan", "a stored run"], horizontal=True,
                  key="report_source")
title = st.text_input("Title (optional)", key="report_title")
notes = st.text_area("Notes (optional)", key="report_notes")
tuning = st.number_input("Training runs tried while tuning (0 = not stated)", value=0, step=1,
                         format="%d", key="report_tuning",
                         help="Reported ε covers one run; composing all runs covers selection.")

report = None
try:
    if source == "the current plan":
        plan = st.session_state.get("plan")
        if plan is None:
            st.info("Fix the highlighted field in the sidebar first.")
            st.stop()
        with st.spinner("Accounting…"):
            report = build_report(plan, title=title or None, notes=notes or None,
                                  tuning_runs=int(tuning) or None)
    elif not runs:
        st.info("No private run with records yet. Train one on the Train page.")
        st.stop()
    else:
        run_id = st.selectbox("Run", [r.id for r in runs], key="report_run",
                              format_func=lambda i: run_label(next(r for r in runs
                                                                   if r.id == i)))
        with st.spinner("Accounting…"):
            report = build_run_report(run_store, run_id, title=title or None,
                                      notes=notes or None)
            save_run_report(run_store, report)
except DpplanError as error:
    st.error(str(error))
    st.stop()

cols = st.columns(3)
stem = "dpplan-report" if report.run is None else f"dpplan-run-{report.run.id}-report"
cols[0].download_button("Download HTML", to_html(report), file_name=f"{stem}.html",
                        mime="text/html", type="primary")
cols[1].download_button("Download Markdown", to_markdown(report), file_name=f"{stem}.md",
                        mime="text/markdown")
cols[2].download_button("Download JSON", to_json(report), file_name=f"{stem}.json",
                        mime="application/json")
st.metric("ε (headline upper bound)", f"{report.epsilon:.3f}",
          help=f"at δ = {report.delta:g}")
preview_html, preview_md = st.tabs(["Preview", "Markdown"])
with preview_html:
    st_components.html(to_html(report), height=1400, scrolling=True)
with preview_md:
    st.markdown(to_markdown(report))
