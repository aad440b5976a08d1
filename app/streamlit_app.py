"""dpplan planner: entry point. Run with ``dpplan app`` or ``streamlit run app/streamlit_app.py``.

The sidebar's plan form is shared by every page; pages live in ``app/app_pages/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent))  # so pages can import components

from components import plan_form

st.set_page_config(
    page_title="dpplan: DP-SGD budget planner", page_icon=":material/lock:", layout="wide"
)

PAGES = Path(__file__).resolve().parent / "app_pages"
navigation = st.navigation(
    [
        st.Page(PAGES / "plan.py", title="Plan", icon=":material/straighten:", default=True),
        st.Page(PAGES / "solve.py", title="Solve", icon=":material/target:"),
        st.Page(PAGES / "train.py", title="Train", icon=":material/model_training:"),
        st.Page(PAGES / "compare.py", title="Compare", icon=":material/compare_arrows:"),
        st.Page(PAGES / "frontier.py", title="Frontier", icon=":material/show_chart:"),
        st.Page(PAGES / "runs.py", title="Runs", icon=":material/folder_open:"),
        st.Page(PAGES / "report.py", title="Report", icon=":material/description:"),
    ]
)
plan_form()
navigation.run()
