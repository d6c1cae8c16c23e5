"""The access gate of a shared deployment: the access password, asked before any page, and
slowed down after wrong tries. UI glue only (the rules are ``core.services.access``)."""

from __future__ import annotations

import math
import uuid

import streamlit as st

from core.services import access
from core.wire import guard
from pages._secrets import secrets

ACCESS_GRANTED = "access_granted"  # session state: this session gave the access password
GATE_SESSION = "access_gate_session"  # session state: this session's key for the wrong-password throttle


def listen_address() -> str:
    """Where this server listens (``server.address``; empty: every interface, Streamlit's default)."""
    if st.get_option("global.appTest"):
        return "127.0.0.1"  # AppTest runs the script in this process: nothing listens
    return str(st.get_option("server.address") or "")


def access_gate() -> bool:
    """Before anything else, ask for ``access_password`` from the secrets when one is set.

    Set, it is asked for whether or not the server holds a key. Not set, a shared
    server (listening beyond loopback, or ``CONTINUUM_SHARED=1``) with a
    server-side key (secrets or environment) refuses to serve at all rather than
    hand the key to anyone who can reach it. Shared servers also refuse internal
    addresses (:mod:`core.wire.guard`). Repeated wrong passwords are slowed down
    (:class:`core.services.access.GateThrottle`, per session and per client address).
    Returns whether the session may go on; if not, the gate is the only page
    (``app.py`` stops).
    """
    address = listen_address()
    guard.set_shared(not access.is_loopback_listener(address))  # CONTINUUM_SHARED=1 is read apart
    if st.session_state.get(ACCESS_GRANTED):
        return True
    config = secrets()
    if not access.needs_password(address, config):
        return True
    expected = config.get("access_password")
    gate = st.Page(
        lambda: _gate_page(expected), title="Continuum", icon=":material/lock:", url_path="sign-in"
    )
    st.navigation([gate], position="hidden").run()
    return False


@st.cache_resource(show_spinner=False)
def gate_throttle() -> access.GateThrottle:
    """The process's wrong-password throttle (sessions and client addresses)."""
    return access.GateThrottle()


def _throttle_keys() -> list[str]:
    """This session, and its client's address unless that is loopback (a proxy on this machine:
    every client would share it)."""
    if GATE_SESSION not in st.session_state:
        st.session_state[GATE_SESSION] = uuid.uuid4().hex
    keys = [f"session:{st.session_state[GATE_SESSION]}"]
    ip = st.context.ip_address
    if ip and not access.is_loopback_listener(ip):
        keys.append(f"address:{ip}")
    return keys


def _seconds(wait: float) -> str:
    return f"{math.ceil(wait)} s"


def _gate_page(expected: object) -> None:
    _, middle, _ = st.columns([1, 2, 1])
    with middle:
        _gate_form(expected)


def _gate_form(expected: object) -> None:
    st.title("Continuum")
    if not isinstance(expected, str) or not expected:
        st.error(
            "**This server is reachable from other machines and holds an API key, but no access "
            "password is set, so it will not serve that key.** Whoever runs it: set "
            "`access_password` in `.streamlit/secrets.toml`, or listen on 127.0.0.1 only, "
            "or remove the server-side key.",
            icon=":material/lock:",
        )
        return
    with st.form("access_form", clear_on_submit=True):
        st.markdown("This Continuum is shared. Enter the access password to continue.")
        given = st.text_input("Access password", type="password", key="access_password_input")
        entered = st.form_submit_button("Enter", icon=":material/lock_open:")
    if entered:
        throttle, keys = gate_throttle(), _throttle_keys()
        wait = throttle.wait(keys)
        if wait > 0:  # not checked: one try per wait
            st.error(f"Too many wrong passwords. Try again in {_seconds(wait)}.")
        elif access.password_matches(given, expected):
            throttle.passed(keys)
            st.session_state[ACCESS_GRANTED] = True
            st.rerun()
        else:
            wait = throttle.failed(keys)
            later = f" Too many wrong tries: wait {_seconds(wait)} before the next one." if wait else ""
            st.error(f"That is not the access password.{later}")
