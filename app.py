"""Continuum: the router. Page config, navigation, and the sidebar every page shares.

Run with ``streamlit run app.py``. Pages live in ``pages/``; the history pages
(Runs, Inspect) join the navigation as soon as their files exist.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from pages import _common as common
from pages import _gate as gate
from pages import _people as people
from pages import _replay as replay
from pages._blocks import inert, inert_code
from pages._routing import mark_routed

ROOT = Path(__file__).parent

# The tab's icon, drawn here: Streamlit serves an SVG string as a data: URL, whereas a
# ":material/…:" page icon makes every page load fetch it from fonts.gstatic.com.
ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><path fill="none" stroke="#3b5bdb" '
    'stroke-width="2.6" stroke-linecap="round" d="M12 12C9.8 9.2 8.3 8 6.5 8a4 4 0 0 0 0 8c1.8 0 3.3-1.2 '
    '5.5-4s3.7-4 5.5-4a4 4 0 0 1 0 8c-1.8 0-3.3-1.2-5.5-4"/></svg>'
)

st.set_page_config(page_title="Continuum", page_icon=ICON, layout="wide")
if not gate.access_gate():  # a shared server asks for its access password before anything else
    st.stop()
if not people.sign_in_gate():  # a team server ([auth] in the secrets): each person signs in
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
mark_routed()  # from here on, pages run inside this router (pages/_routing.py)

with st.sidebar:
    provider = common.provider()
    st.markdown(f"**{provider.label}**")
    model = common.model_for(provider)
    if model and replay.is_choice(model):
        st.caption(inert(replay.label(model)))
    else:
        st.caption(f"Model: {inert_code(model)}" if model else "Model: none chosen yet")
    st.caption(common.key_status(provider))
    people.sidebar()

page.run()
