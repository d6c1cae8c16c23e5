"""From what the server said to the right :mod:`core.wire.errors` exception. Pure.

Status codes (a table of class, message and hint per status, plus the few that
depend on the body or the key), error objects inside a stream, and
``Retry-After`` headers. Reading an error body is :mod:`core.wire.error_body`;
the context-overflow wordings are :mod:`core.wire.overflow`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from core.wire.error_body import clip, error_object, parse_body, provider_message
from core.wire.errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    PrefillUnsupportedError,
    RateLimitError,
    ServerError,
    ValidationError,
    sentence,
)
from core.wire.overflow import parse_context_overflow

__all__ = [
    "error_from_body",
    "error_from_response",
    "parse_body",  # from core.wire.error_body, where the client and the stream read it
    "parse_context_overflow",  # from core.wire.overflow
    "provider_message",  # from core.wire.error_body
    "retry_after_seconds",
]

_PREFILL_WORDS = re.compile(
    r"prefill|expected last role|last message (?:must|should) (?:be|have)|final (?:assistant )?message "
    r"(?:must|should)|continue_final_message|must end with a user|cannot end with an? assistant"
    r"|does not support assistant",
    re.I,
)

_CHECK_PARAMETERS = "Check the model's parameters in Settings (max_tokens, sampling, extra body)."

# The statuses whose error depends on the status alone: (class, message with {what}, hint).
_BY_STATUS: dict[int, tuple[type[APIStatusError], str, str]] = {
    400: (BadRequestError, "The server rejected the request ({what}).", _CHECK_PARAMETERS),
    413: (BadRequestError, "The server rejected the request ({what}).", _CHECK_PARAMETERS),
    402: (
        PaymentRequiredError,
        "The provider reports no credit left on this account ({what}).",
        "Top up the balance with the provider, or use another key.",
    ),
    403: (
        PermissionDeniedError,
        "The key is not allowed to do this ({what}).",
        "Check the key's permissions and the model's access rules with the provider.",
    ),
    408: (APIStatusError, "The server asked to try again ({what}).", "Continuum retries."),
    409: (APIStatusError, "The server asked to try again ({what}).", "Continuum retries."),
    422: (ValidationError, "The server could not process the request body ({what}).", _CHECK_PARAMETERS),
}
_UNEXPECTED = (
    APIStatusError,
    "Unexpected error status ({what}).",
    "Check the base URL and the provider's status page.",
)

# The statuses that may say how long to wait (Retry-After): 429, and every 5xx as 500.
_WAITING: dict[int, tuple[type[RateLimitError | ServerError], str, str]] = {
    429: (
        RateLimitError,
        "Rate limited by the server ({what}).",
        "Continuum retries with backoff; lower the request rate or raise the limit with the provider.",
    ),
    500: (
        ServerError,
        "The server failed ({what}).",
        "This is usually temporary; Continuum retries with backoff.",
    ),
}

# Gateways put the upstream's Retry-After under their own names (LiteLLM: "llm_provider-retry-after").
_RETRY_AFTER_HEADERS = ("retry-after", "llm_provider-retry-after", "x-retry-after")


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date).

    A gateway's copies of them (``llm_provider-retry-after``…) count the same.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    for name in ("retry-after-ms", "llm_provider-retry-after-ms"):
        value = lower.get(name)
        if value:
            try:
                ms = float(value)
            except ValueError:
                continue
            if math.isfinite(ms):
                return max(ms / 1000.0, 0.0)
    value = next((lower[name] for name in _RETRY_AFTER_HEADERS if lower.get(name)), None)
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def error_from_response(
    status: int,
    body: Any,
    *,
    headers: Mapping[str, str] | None = None,
    url: str = "",
    model: str | None = None,
    key_sent: bool = True,
    key_hint: str | None = None,
    request_id: str | None = None,
    origin: str | None = None,
) -> APIStatusError:
    """Map an HTTP error status and its (parsed) body to the right APIStatusError.

    ``body`` is a parsed JSON value or text (see :func:`parse_body`); ``origin``
    replaces "HTTP <status> from <url>" in the message.
    """
    pmsg = provider_message(body)
    shown = _shown(body, pmsg)
    if origin:
        what = f"{origin}: {shown}"
    else:
        what = f"HTTP {status} from {url}: {shown}" if url else f"HTTP {status}: {shown}"
    kw: dict[str, Any] = {"status": status, "provider_message": pmsg, "request_id": request_id, "body": body}

    if status in (400, 413, 422) or status == 200 or status >= 500:  # DeepInfra also says it with a 500
        overflow = parse_context_overflow(pmsg, body, status=status, request_id=request_id)
        if overflow is not None:
            return overflow
    if status in (400, 413) and _PREFILL_WORDS.search(pmsg):
        return PrefillUnsupportedError(
            f"The server refused a conversation that ends with the answer so far ({what}).",
            "Choose another continuation strategy for this provider (run the probe in Settings).",
            **kw,
        )
    if status == 401:
        return _unauthorized(what, key_sent, key_hint, kw)
    if status == 404:
        return _not_found(shown, url, model, kw)
    if status == 429 or status >= 500:
        cls, text, hint = _WAITING[min(status, 500)]
        wait = retry_after_seconds(headers or {})
        after = f" It asks to wait {wait:g} s." if wait is not None else ""
        return cls(text.format(what=what) + after, hint, retry_after=wait, **kw)
    cls_, text, hint = _BY_STATUS.get(status, _UNEXPECTED)
    return cls_(text.format(what=what), hint, **kw)


def _shown(body: Any, pmsg: str) -> str:
    """The provider's message as the error quotes it: clipped, or what kind of page it was."""
    shown = clip(pmsg).rstrip(".") if pmsg else "no details"
    if isinstance(body, str) and body.lstrip().startswith("<"):  # a proxy's or gateway's error page
        shown = f"an HTML error page, probably from a proxy or gateway in front of the model server: {shown}"
    return shown


def _unauthorized(what: str, key_sent: bool, key_hint: str | None, kw: dict[str, Any]) -> AuthenticationError:
    """401: no key was sent, or the key that was sent was refused."""
    if not key_sent:
        if key_hint:
            action = sentence(key_hint)
        else:
            action = "Paste a key in Settings or set the provider's key variable."
        return AuthenticationError(f"The server needs an API key and none was sent ({what}).", action, **kw)
    check = f"Check the key that was sent: {key_hint}" if key_hint else "Check the API key in Settings"
    return AuthenticationError(f"The server rejected the API key that was sent ({what}).", check, **kw)


def _not_found(shown: str, url: str, model: str | None, kw: dict[str, Any]) -> NotFoundError:
    """404: the model (when the message names it) or the address."""
    pmsg = kw["provider_message"]
    if model and ("model" in pmsg.lower() or model in pmsg):
        base = url.rsplit("/chat/completions", 1)[0].rsplit("/completions", 1)[0]
        return NotFoundError(
            f"Model `{model}` not found at {base or url} (HTTP 404: {shown})",
            "Pick one from the model list in Settings.",
            **kw,
        )
    return NotFoundError(
        f"Nothing found at {url or 'this address'} (HTTP 404: {shown}).",
        "Check the base URL (it should end in /v1)" + (" and the model name." if model else "."),
        **kw,
    )


_CODE_STATUS = {
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "invalid_api_key": 401,
    "authentication_error": 401,
    "permission_denied": 403,
    "model_not_found": 404,
    "not_found_error": 404,
    "invalid_request_error": 400,
    "context_length_exceeded": 400,
    "exceed_context_size_error": 400,
    "server_error": 500,
    "overloaded_error": 503,
    "api_error": 500,
}


def _status_of(err: dict[str, Any]) -> int:
    """The HTTP status an error object names: its code as a number, or a known code or type (0: none)."""
    code = err.get("code")
    if isinstance(code, int) and 400 <= code <= 599:
        return code
    if (
        isinstance(code, str)
        and len(code) == 3
        and code.isascii()
        and code.isdigit()
        and 400 <= int(code) <= 599
    ):
        return int(code)
    for key in (err.get("code"), err.get("type")):
        if isinstance(key, str) and key in _CODE_STATUS:
            return _CODE_STATUS[key]
    return 0


def error_from_body(
    body: Any,
    *,
    url: str = "",
    model: str | None = None,
    key_sent: bool = True,
    key_hint: str | None = None,
    request_id: str | None = None,
) -> APIStatusError:
    """Map an ``error`` object that arrived inside a 200 stream (or body)."""
    err = error_object(body)
    code = err.get("code")
    status = _status_of(err)
    if not status:
        overflow = parse_context_overflow(provider_message(body), body, request_id=request_id)
        if overflow is not None:
            return overflow
        status = 500  # an unexplained error mid-stream: treat as a server failure (retryable)
    label = f" (code {code})" if code is not None else ""
    where = f" from {url}" if url else ""
    return error_from_response(
        status,
        body,
        url=url,
        model=model,
        key_sent=key_sent,
        key_hint=key_hint,
        request_id=request_id,
        origin=f"error object in the stream{where}{label}",
    )
