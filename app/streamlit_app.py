"""dpplan planner: entry point. Run with ``dpplan app`` or ``streamlit run app/streamlit_app.py``.

The sidebar's plan form is shared by every page; pages live in ``app/app_pages/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent))  # so pages can import components

from components import plan_form  # noqa: E402

st.set_page_config(page_title="dpplan: DP-SGD budget planner", page_icon="🔒", layout="wide")

PAGES = Path(__file__).resolve().parent / "app_pages"
navigation = st.navigation(
    [
        st.Page(PAGES / "plan.py", title="Plan", icon="📐", default=True),
        st.Page(PAGES / "solve.py", title="Solve", icon="🎯"),
        st.Page(PAGES / "train.py", title="Train", icon="🏋️"),
        st.Page(PAGES / "compare.py", title="Compare", icon="📊"),
        st.Page(PAGES / "runs.py", title="Runs", icon="🗂️"),
    ]
)
plan_form()
navigation.run()
