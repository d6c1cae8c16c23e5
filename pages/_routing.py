"""Every page runs inside ``app.py``, behind its access gate, even on a server's first request.

UI glue only. Streamlit reads a folder named ``pages/`` next to the entrypoint
as a legacy multipage app until some session calls ``st.navigation`` ("as soon
as any session of your app executes the st.navigation command, your app will
ignore the pages/ directory", st.navigation's documentation). The name is ours
to keep, so the first request a server gets for ``/settings`` runs
``pages/settings.py`` alone, without ``app.py``. Each page starts with
:func:`ensure_routed`; ``app.py`` calls :func:`mark_routed`. Public Streamlit
only: session state and ``st.switch_page``.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit.errors import StreamlitAPIException

ROUTED = "routed"  # session state: app.py (the router, behind the access gate) has run in this session
RETURN_TO = "routed_return_to"  # session state: the page a first request asked for, before app.py
ENTRYPOINT = Path(__file__).resolve().parents[1] / "app.py"


def ensure_routed(page_file: str) -> None:
    """The first call of every page (``ensure_routed(__file__)``): a page runs only inside ``app.py``.

    ``app.py`` marks every session it routes (:func:`mark_routed`, after
    ``st.navigation``, so from then on the whole process routes through it). A
    page run in a session it has not marked sends the session to ``app.py``
    (``st.switch_page``), leaving its own file and the query string behind, so
    ``app.py`` shows it once the access gate is passed.
    """
    if st.session_state.get(ROUTED):
        return
    st.session_state[RETURN_TO] = page_file
    try:
        st.switch_page(ENTRYPOINT, query_params=st.query_params.to_dict())
    except StreamlitAPIException:  # app.py is not in this app: the page was started as the app itself
        st.error("Continuum's pages run inside its router: start it with `streamlit run app.py`.")
        st.stop()


def mark_routed() -> None:
    """Called by ``app.py`` right after ``st.navigation``: this session's pages come through the router.

    A page a first request asked for (see :func:`ensure_routed`) is shown now, with its query string.
    """
    st.session_state[ROUTED] = True
    wanted = st.session_state.pop(RETURN_TO, None)
    if wanted:
        st.switch_page(wanted, query_params=st.query_params.to_dict())
