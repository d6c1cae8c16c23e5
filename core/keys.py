"""Where API keys come from: the session, then secrets, then the environment.

Keys are looked up at call time and handed straight to the client. Nothing in
Continuum stores, logs or exports them; :func:`redact` scrubs one out of any
text that might be shown, and :func:`remember_secret` out of library logs.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any, Literal

from core.providers import get_provider
from core.redaction import KEY_PLACEHOLDER, StreamRedactor, redact

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


# ------------------------------------------------------------------ keys out of library logs

# Libraries log what servers send: httpcore, at DEBUG, logs every response's headers, so a
# server or proxy that echoes the Authorization header back would put the key in the log.
# Every key a Client is given is remembered here (this process only, never written
# anywhere) and scrubbed from the records of those loggers.
LIBRARY_LOGGERS = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)
_MAX_REMEMBERED = 1000
_remembered: dict[str, None] = {}  # insertion-ordered: the oldest is forgotten first
_remembered_lock = threading.Lock()


def remember_secret(secret: str | None) -> None:
    """Scrub ``secret`` (4+ characters) from library log records from now on."""
    if not secret or len(secret) < 4:
        return
    with _remembered_lock:
        _remembered.pop(secret, None)
        _remembered[secret] = None
        while len(_remembered) > _MAX_REMEMBERED:
            del _remembered[next(iter(_remembered))]


class SecretLogFilter(logging.Filter):
    """Replaces remembered secrets in a record's message (arguments formatted first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        with _remembered_lock:
            secrets = list(_remembered)
        if secrets:
            message = record.getMessage()
            clean = redact(message, *secrets)
            if clean != message:
                record.msg, record.args = clean, None
        return True


_LOG_FILTER = SecretLogFilter()
for _name in LIBRARY_LOGGERS:
    logging.getLogger(_name).addFilter(_LOG_FILTER)

__all__ = [
    "KEY_PLACEHOLDER",
    "KeySource",
    "SecretLogFilter",
    "StreamRedactor",
    "find_api_key",
    "key_source",
    "redact",
    "remember_secret",
    "resolve_api_key",
]
