"""Secrets out of text: the one place that replaces a key in anything shown, stored or logged.

:func:`redact` for whole texts (error messages, log records, job messages),
:func:`redact_any` for parsed JSON values, :class:`StreamRedactor` for text
that arrives in pieces (a model's stream, where a key may be split across
chunks), :func:`remember_secret` for library logs (every key a client is given).
Secrets shorter than :data:`MIN_SECRET` characters are left alone:
replacing one letter everywhere would destroy the text and hide nothing.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

__all__ = [
    "KEY_PLACEHOLDER",
    "LIBRARY_LOGGERS",
    "MIN_SECRET",
    "REDACTED",
    "SecretLogFilter",
    "StreamRedactor",
    "redact",
    "redact_any",
    "remember_secret",
]

REDACTED = "[redacted]"  # in messages and logs
KEY_PLACEHOLDER = "[redacted key]"  # in the model's text, where "[redacted]" could be the model's own
MIN_SECRET = 4


def redact(text: str, *secrets: str | None, placeholder: str = REDACTED) -> str:
    """``text`` with every given secret (of MIN_SECRET+ characters) replaced."""
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET and secret in text:
            text = text.replace(secret, placeholder)
    return text


def redact_any(value: Any, secret: str) -> Any:
    """A parsed JSON value (strings, dict keys and values, lists) with ``secret`` replaced."""
    if isinstance(value, str):
        return redact(value, secret)
    if isinstance(value, dict):
        return {redact(str(k), secret): redact_any(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_any(v, secret) for v in value]
    return value


class StreamRedactor:
    """Replaces secrets in streamed text, also when one arrives split across chunks.

    A server may echo the key inside the model's text (a misconfigured proxy, a model shown
    its own request). :meth:`feed` returns the text with every secret replaced by
    ``[redacted key]``, holding back only a tail that could be the start of a secret (a few
    characters, released by the next chunk or by :meth:`flush`); ``count`` says how many
    were replaced. Nothing that reaches the screen, the store or an export has the key.
    """

    __slots__ = ("_held", "_secrets", "count")

    def __init__(self, secrets: list[str] | tuple[str, ...]) -> None:
        self._secrets = tuple(s for s in secrets if s and len(s) >= MIN_SECRET)
        self._held = ""
        self.count = 0

    def feed(self, text: str) -> str:
        text = self._held + text
        for secret in self._secrets:
            if secret in text:
                self.count += text.count(secret)
                text = redact(text, secret, placeholder=KEY_PLACEHOLDER)
        keep = 0
        for secret in self._secrets:  # the longest end of text that begins a secret
            first = secret[0]
            start = max(0, len(text) - len(secret) + 1)
            i = text.find(first, start)
            while i >= 0:
                if secret.startswith(text[i:]):
                    keep = max(keep, len(text) - i)
                    break
                i = text.find(first, i + 1)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep] if keep else text

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held


# ------------------------------------------------------------------ secrets out of library logs

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
