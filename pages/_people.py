"""People on a team server: Streamlit's OpenID Connect sign-in, asked before any page; who is
signed in and "Sign out" in the sidebar; whose history a session sees; a run's sharing toggle.

UI glue only (the rules are :mod:`core.services.people`; who sees which run is decided by the
store, :mod:`core.services.store.viewers`). Without an ``[auth]`` table in the secrets there are
no people: every session is the administrator of the one history, as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from core.services import people
from core.services.store import RunSummary, Store, StoreError
from pages._blocks import inert
from pages._secrets import secrets


def sign_in_on() -> bool:
    """Whether people sign in on this server (``[auth]`` in the secrets)."""
    return people.sign_in_configured(secrets())


def _claims() -> Mapping[str, Any]:
    """The signed-in person's ID token claims (empty: nobody signed in)."""
    user = st.user.to_dict()
    return user if user.get("is_logged_in") else {}


def signed_in() -> str | None:
    """The person signed in to this session (None: nobody)."""
    return people.person_id(_claims())


def viewer_name() -> str | None:
    """What the signed-in person is called (:func:`core.services.people.display_name`), kept with
    the runs and batches they start; None on a server without sign-in or before sign-in."""
    claims = _claims() if sign_in_on() else {}
    return people.display_name(claims) if people.person_id(claims) else None


def viewer() -> str | None:
    """Whose history this session sees: None (all of it) on a server without sign-in; with
    sign-in, the signed-in person, and a session nobody signed in to sees nothing (the page stops)."""
    if not sign_in_on():
        return None
    person = signed_in()
    if person is None:
        st.stop()
    return person


def sign_in_gate() -> bool:
    """Before any page, on a server with sign-in: the sign-in page until someone signs in.
    Returns whether the session may go on (if not, ``app.py`` stops)."""
    if not sign_in_on() or signed_in() is not None:
        return True
    page = st.Page(_sign_in_page, title="Continuum", icon=":material/login:", url_path="sign-in")
    st.navigation([page], position="hidden").run()
    return False


def _sign_in_page() -> None:
    _, middle, _ = st.columns([1, 2, 1])
    with middle:
        st.title("Continuum")
        st.markdown("Sign in to see your runs and those your team shares.")
        for provider in people.providers(secrets()):
            label = "Sign in" if provider is None else f"Sign in with {provider}"
            st.button(
                label,
                icon=":material/login:",
                type="primary",
                key=f"sign_in_{provider or 'default'}",
                on_click=st.login,
                args=(provider,),
            )


def sidebar() -> None:
    """Who is signed in, and "Sign out" (nothing on a server without sign-in)."""
    claims = _claims() if sign_in_on() else {}
    if not claims:
        return
    name, email = people.display_name(claims), str(claims.get("email") or "")
    st.caption(f"Signed in as **{inert(name)}**" + (f" ({inert(email)})" if email and email != name else ""))
    st.button("Sign out", icon=":material/logout:", key="sign_out", on_click=st.logout)


def sharing(store: Store, summary: RunSummary) -> None:
    """The opened run's "Shared with the team" toggle, for its person; who shared it, for the team."""
    if not sign_in_on():
        return
    if summary.person is not None and summary.person == store.viewer:
        st.toggle(
            "Shared with the team",
            value=summary.shared,
            key=f"share_{summary.id}",
            on_change=_share,
            args=(store, summary.id),
            help="Everyone signed in to this server sees a shared run (its text, never your keys).",
        )
    elif summary.person is None:
        st.caption("A run of the team (started from the command line or the endpoint).")
    else:
        who = inert(summary.person_name) if summary.person_name else "the person who started it"
        st.caption(f"Shared with the team by {who}.")


def _share(store: Store, run_id: str) -> None:
    try:
        store.share(run_id, bool(st.session_state.get(f"share_{run_id}")))
    except StoreError as exc:
        st.toast(inert(str(exc)))
