"""People on a team server: whether sign-in is configured, and who a signed-in person is.

Sign-in is Streamlit's OpenID Connect login (``st.login``), configured by an ``[auth]`` table
in ``secrets.toml``: ``redirect_uri`` and ``cookie_secret``, then either ``client_id``,
``client_secret`` and ``server_metadata_url`` in the table itself (one identity provider), or
one sub-table per provider (``[auth.google]``, ``[auth.okta]``…) holding those three.
Without it nothing changes: there are no people, and every session sees the whole history
as the administrator (the viewer None of :mod:`core.services.store`).

A person is their identity provider's issuer and subject (``iss`` and ``sub`` of the ID
token), never their e-mail address: some providers let a user change it, and the subject is
the identifier OpenID Connect promises to keep stable and unique per issuer. Nothing here
imports Streamlit; the secrets and the claims come in as mappings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["PROVIDER_KEYS", "SHARED_KEYS", "display_name", "person_id", "providers", "sign_in_configured"]

SHARED_KEYS = ("redirect_uri", "cookie_secret")  # in [auth] itself
PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url")  # in [auth] or [auth.NAME]


def _auth(secrets: Mapping[str, Any] | None) -> Mapping[str, Any]:
    auth = (secrets or {}).get("auth")
    return auth if isinstance(auth, Mapping) else {}


def providers(secrets: Mapping[str, Any] | None) -> list[str | None]:
    """The identity providers configured: None for the one in ``[auth]`` itself, then the name
    of each ``[auth.NAME]`` that holds every provider key. Empty: no sign-in."""
    auth = _auth(secrets)
    if not all(auth.get(key) for key in SHARED_KEYS):
        return []
    found: list[str | None] = [None] if all(auth.get(key) for key in PROVIDER_KEYS) else []
    for name, table in auth.items():
        if isinstance(table, Mapping) and all(table.get(key) for key in PROVIDER_KEYS):
            found.append(str(name))
    return found


def sign_in_configured(secrets: Mapping[str, Any] | None) -> bool:
    """Whether people sign in on this server (an ``[auth]`` table with at least one provider)."""
    return bool(providers(secrets))


def person_id(claims: Mapping[str, Any]) -> str | None:
    """The person of an ID token's claims: ``"<iss>|<sub>"`` (None without a subject)."""
    sub = str(claims.get("sub") or "").strip()
    if not sub:
        return None
    issuer = str(claims.get("iss") or "").strip()
    return f"{issuer}|{sub}" if issuer else sub


def display_name(claims: Mapping[str, Any]) -> str:
    """What to call the person on screen: their name, else e-mail, else subject."""
    for claim in ("name", "email", "preferred_username", "sub"):
        value = str(claims.get(claim) or "").strip()
        if value:
            return value
    return "someone"
