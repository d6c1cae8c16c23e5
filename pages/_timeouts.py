"""The session's timeouts (Settings → Advanced), used by every run and check this session starts.

Kept in a plain session key (Streamlit drops widget keys on pages that do not
draw them), checked by :func:`core.continuation.validation.check`; a refused value shows the
reason and the last good value stays.
"""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from core.bounds import BOUNDS, check
from core.wire.client import Timeouts

KEY = "cfg_timeouts"
ERROR_KEY = "timeouts_error"
FIELDS = (
    ("connect", "Connect timeout (s)", "Longest wait to open a connection to the server."),
    (
        "idle",
        "Idle timeout (s)",
        "Longest silence between bytes of an answer; keep-alive comments count as activity. "
        "Past it the round ends, the text so far is kept and a recovery round continues.",
    ),
    (
        "round",
        "Round timeout (s)",
        "Ceiling for one whole round. Past it the round ends, the text so far is kept and a "
        "recovery round continues.",
    ),
)


def session_timeouts() -> Timeouts:
    """This session's timeouts (the defaults until changed in Settings)."""
    value = st.session_state.get(KEY)
    return value if isinstance(value, Timeouts) else Timeouts()


def _widget(name: str) -> str:
    return f"timeout_{name}"


def _on_change(name: str) -> None:
    value = st.session_state.get(_widget(name))
    problem = check(f"{name}_timeout", value)
    if problem is not None or value is None:  # check refuses None too; testing it narrows the type
        st.session_state[ERROR_KEY] = problem
        st.session_state[_widget(name)] = float(getattr(session_timeouts(), name))
        return
    st.session_state[KEY] = replace(session_timeouts(), **{name: float(value)})


def _reset() -> None:
    st.session_state[KEY] = Timeouts()
    for name, _, _ in FIELDS:
        st.session_state[_widget(name)] = float(getattr(Timeouts(), name))


def advanced_settings() -> None:
    """The "Advanced" expander of the Settings page: the three timeouts."""
    current, default = session_timeouts(), Timeouts()
    changed = current != default
    with st.expander("Advanced", expanded=changed or ERROR_KEY in st.session_state):
        st.markdown("**Timeouts** for runs and checks started from this session")
        columns = st.columns(3)
        for column, (name, label, help_text) in zip(columns, FIELDS, strict=True):
            key = _widget(name)
            # The widget reads its value from session state (seeded unless already there), not value=.
            st.session_state.setdefault(key, float(getattr(current, name)))
            column.number_input(
                label,
                min_value=0.0,  # the browser stops negatives; 0 reaches the check and its message
                max_value=float(BOUNDS[f"{name}_timeout"].maximum),
                step=1.0,
                format="%g",
                key=key,
                on_change=_on_change,
                args=(name,),
                help=f"{help_text} Default {getattr(default, name):g} s.",
            )
        error = st.session_state.pop(ERROR_KEY, None)
        if error:
            st.error(f"{error} The previous value is kept.")
        st.caption(
            "A timeout never loses text: the run continues with a recovery round, or stops with a "
            "message saying which limit was hit. The command line takes the same settings as "
            "`--connect-timeout`, `--idle-timeout` and `--round-timeout`."
        )
        if changed:
            st.button("Reset the timeouts", on_click=_reset, type="tertiary")
