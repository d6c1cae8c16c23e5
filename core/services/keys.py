"""Where API keys come from: the session, then secrets, then the environment.

Keys are looked up at call time and handed straight to the client. Nothing in
Continuum stores, logs or exports them; :func:`redact` scrubs one out of any
text that might be shown; :func:`core.wire.redaction.remember_secret` keeps them out of library logs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from core.services.providers import get_provider
from core.wire.redaction import KEY_PLACEHOLDER, StreamRedactor, redact

KeySource = Literal["session", "secrets", "environment"]


def _key_names(provider_id: str, api_key_env: str | None) -> tuple[str, ...]:
    if api_key_env:
        return (api_key_env,)
    return get_provider(provider_id).key_envs


def find_api_key(
    provider_id: str,
    *,
    session_key: str | None = None,
    secrets: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    api_key_env: str | None = None,
) -> tuple[str | None, KeySource | None]:
    """The key for a provider and where it came from, or ``(None, None)``.

    ``secrets`` is a mapping such as ``st.secrets``; a key is found either at the
    top level under the variable name (``DEEPINFRA_API_KEY = "…"``) or in a
    ``[keys]`` table under the provider id (``deepinfra = "…"``).
    """
    if session_key and session_key.strip():
        return session_key.strip(), "session"
    names = _key_names(provider_id, api_key_env)
    if secrets:
        for name in names:
            value = secrets.get(name)
            if isinstance(value, str) and value.strip():
                return value.strip(), "secrets"
        table = secrets.get("keys")
        if isinstance(table, Mapping):
            value = table.get(provider_id)
            if isinstance(value, str) and value.strip():
                return value.strip(), "secrets"
    env = os.environ if environ is None else environ
    for name in names:
        value = env.get(name)
        if value and value.strip():
            return value.strip(), "environment"
    return None, None


def resolve_api_key(
    provider_id: str,
    session_key: str | None = None,
    secrets: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    api_key_env: str | None = None,
) -> str | None:
    """Just the key (see :func:`find_api_key`)."""
    key, _ = find_api_key(
        provider_id, session_key=session_key, secrets=secrets, environ=environ, api_key_env=api_key_env
    )
    return key


def key_source(
    provider_id: str,
    session_key: str | None = None,
    secrets: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    api_key_env: str | None = None,
) -> KeySource | None:
    """Where the key would come from, for status displays that must not show the key."""
    _, source = find_api_key(
        provider_id, session_key=session_key, secrets=secrets, environ=environ, api_key_env=api_key_env
    )
    return source


__all__ = [
    "KEY_PLACEHOLDER",
    "KeySource",
    "StreamRedactor",
    "find_api_key",
    "key_source",
    "redact",
    "resolve_api_key",
]
