"""Continuum: the router. Page config, navigation, and the sidebar every page shares.

Run with ``streamlit run app.py``. Pages live in ``pages/``; the history pages
(Runs, Inspect) join the navigation as soon as their files exist.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from pages import _common as common

ROOT = Path(__file__).parent

st.set_page_config(page_title="Continuum", page_icon=":material/all_inclusive:", layout="wide")
if not common.access_gate():  # a shared server asks for its access password before anything else
    st.stop()

pages = [st.Page("pages/studio.py", title="Studio", icon=":material/edit_note:", default=True)]
# Hook for the history issue: these pages appear once their files exist.
for path, title, icon in (
    ("pages/runs.py", "Runs", ":material/history:"),
    ("pages/inspect.py", "Inspect", ":material/query_stats:"),
    ("pages/batch.py", "Batch", ":material/stacks:"),
):
    if (ROOT / path).exists():
        pages.append(st.Page(path, title=title, icon=icon))
pages.append(st.Page("pages/settings.py", title="Settings", icon=":material/settings:"))

page = st.navigation(pages)

with st.sidebar:
    provider = common.provider()
    st.markdown(f"**{provider.label}**")
    model = common.model_for(provider)
    st.caption(f"Model: `{model}`" if model else "Model: none chosen yet")
    st.caption(common.key_status(provider))

page.run()
