"""Keep secrets out of the database.

``RunSpec`` never holds an API key by design; this is the belt to that braces.
Before a spec is stored, any mapping key that names a secret (``api_key``,
``Authorization``, ``password``…) is dropped wherever it appears (``extra_body``,
nested headers), string values shaped like a bearer token or a provider key are
dropped outside the chat messages, and credentials in the base URL (user info,
``?key=`` query parameters) are removed. Names of *variables* holding a key
(``api_key_env``) are kept: they are not secrets.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

log = logging.getLogger(__name__)

_SECRET_NAMES = frozenset(
    {
        "api_key",
        "apikey",
        "key",
        "x_api_key",
        "api_token",
        "token",
        "access_token",
        "auth",
        "authorization",
        "proxy_authorization",
        "bearer",
        "secret",
        "client_secret",
        "password",
        "passwd",
    }
)
_SECRET_SUFFIXES = ("_api_key", "_apikey", "_secret", "_password", "_access_token", "_auth_token")
_SECRET_VALUE = re.compile(
    r"^\s*(?:bearer\s+\S+|basic\s+\S+|(?:sk|rk|pk)-[A-Za-z0-9_\-]{16,}|sk_(?:live|test)_\S{8,}|"
    r"gsk_[A-Za-z0-9]{20,}|hf_[A-Za-z0-9]{20,}|xai-[A-Za-z0-9]{20,})\s*$",
    re.IGNORECASE,
)


def is_secret_name(name: str) -> bool:
    """True for a field name that names a secret (``api_key``, ``X-API-Key``, ``openai_api_key``)."""
    norm = name.strip().lower().replace("-", "_")
    return norm in _SECRET_NAMES or norm.endswith(_SECRET_SUFFIXES)


def looks_like_secret(value: str) -> bool:
    """True for a string shaped like a credential (``Bearer …``, ``sk-…``)."""
    return bool(_SECRET_VALUE.match(value))


def strip_secrets(data: Any, *, path: str = "", dropped: list[str] | None = None) -> Any:
    """A copy of ``data`` without secret-named keys or secret-shaped strings.

    Chat message contents are user text and are kept as written; only their
    field names are checked. ``dropped`` collects the paths removed (never values).
    """
    dropped = dropped if dropped is not None else []
    if isinstance(data, dict):
        clean: dict[str, Any] = {}
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and is_secret_name(key) and value not in (None, ""):
                dropped.append(where)
                continue
            if where == "base_url" and isinstance(value, str):
                value = strip_url_credentials(value, dropped)
            elif path.startswith("messages") and key in ("content", "reasoning_content", "reasoning"):
                clean[key] = value
                continue
            clean[key] = strip_secrets(value, path=where, dropped=dropped)
        return clean
    if isinstance(data, list | tuple):
        return [strip_secrets(item, path=f"{path}[{i}]", dropped=dropped) for i, item in enumerate(data)]
    if isinstance(data, str) and looks_like_secret(data):
        dropped.append(path)
        return ""
    return data


def strip_url_credentials(url: str, dropped: list[str] | None = None) -> str:
    """``url`` without a password in its user info and without secret-named query parameters."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = netloc.rsplit("@", 1)[1]
        if dropped is not None:
            dropped.append("base_url (user info)")
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = [(k, v) for k, v in pairs if not is_secret_name(k)]
        if len(kept) != len(pairs):
            query = urlencode(kept)
            if dropped is not None:
                dropped.append("base_url (query)")
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def clean_spec_dict(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec dict to store: secrets removed, and a warning naming (never showing) what went."""
    dropped: list[str] = []
    clean = strip_secrets(spec, dropped=dropped)
    if dropped:
        log.warning("not storing secret-looking fields of the run spec: %s", ", ".join(dropped))
    assert isinstance(clean, dict)
    return clean
