"""From what the server said to the right :mod:`core.wire.errors` exception. Pure.

Status codes, provider error bodies (OpenAI-style ``{"error": {"message",
"type", "code"}}``, ``{"detail": ...}``, plain text, HTML pages), error objects
inside a stream, the context-overflow wordings of vLLM, OpenAI, OpenRouter,
DeepInfra, llama.cpp and Anthropic, and ``Retry-After`` headers.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from core.wire.errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ContextOverflowError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    PrefillUnsupportedError,
    RateLimitError,
    ServerError,
    ValidationError,
    sentence,
)

__all__ = [
    "error_from_body",
    "error_from_response",
    "parse_body",
    "parse_context_overflow",
    "provider_message",
    "retry_after_seconds",
]

_INT = r"(\d[\d,_]*)"


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text.replace(",", "").replace("_", ""))
    except ValueError:
        return None


# (pattern, group names) tried in order; every match contributes the numbers it names.
_OVERFLOW_PATTERNS: list[tuple[re.Pattern[str], tuple[str, ...]]] = [
    # vLLM / OpenAI / OpenRouter: "maximum context length is 8192 tokens. However, you requested
    # (about) 9000 tokens (5000 in the messages|of text input, 4000 in the completion|output)"
    (
        re.compile(
            rf"maximum context length is {_INT} tokens.*?requested (?:about )?{_INT} tokens"
            rf"(?: \({_INT} (?:in the messages|of text input)[^,]*, {_INT} in the (?:completion|output))?",
            re.I | re.S,
        ),
        ("context_length", "requested_tokens", "prompt_tokens", "max_tokens"),
    ),
    # OpenAI: "... However, your messages resulted in 9000 tokens"
    (re.compile(rf"maximum context length is {_INT} tokens.*?resulted in {_INT} tokens", re.I | re.S),
     ("context_length", "prompt_tokens")),
    # newer vLLM: "'max_tokens' ... is too large: 4000. This model's maximum context length is 8192
    # tokens and your request has 5000 input tokens"
    (re.compile(rf"too large: {_INT}", re.I), ("max_tokens",)),
    (re.compile(rf"maximum context length is {_INT}", re.I), ("context_length",)),
    (re.compile(rf"request has {_INT} input tokens", re.I), ("prompt_tokens",)),
    # DeepInfra: "Requested tokens (9000) exceed context window of 8192"
    # DeepInfra (400, seen in the wild also as 500): "Requested input length 9000 exceeds maximum
    # input length 8192" -- the input alone is over the window, so no max_tokens fits
    (re.compile(rf"requested input length {_INT} exceeds? (?:the )?maximum input length {_INT}", re.I),
     ("prompt_tokens", "context_length")),
    (re.compile(rf"requested tokens \({_INT}\) exceed context window of {_INT}", re.I),
     ("requested_tokens", "context_length")),
    # Anthropic-style: "prompt is too long: 210000 tokens > 200000 maximum"
    (re.compile(rf"prompt is too long: {_INT} tokens > {_INT}", re.I), ("prompt_tokens", "context_length")),
]  # fmt: skip

_OVERFLOW_WORDS = re.compile(
    r"context[ _]length|context window|context size|maximum context|exceeds? the (?:model'?s? )?"
    r"(?:context|maximum)|prompt is too long|input is too long|context_length_exceeded"
    r"|exceed_context_size|exceeds? (?:the )?maximum input length",
    re.I,
)
_OVERFLOW_CODES = frozenset({"context_length_exceeded", "exceed_context_size_error", "context_too_long"})

_PREFILL_WORDS = re.compile(
    r"prefill|expected last role|last message (?:must|should) (?:be|have)|final (?:assistant )?message "
    r"(?:must|should)|continue_final_message|must end with a user|cannot end with an? assistant"
    r"|does not support assistant",
    re.I,
)


def _error_object(body: Any) -> dict[str, Any]:
    """The provider's error object, whatever its shape."""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            return err
        return body
    return {}


_TAG = re.compile(r"<(script|style)\b.*?</\1>|<[^>]+>", re.I | re.S)
_TITLE = re.compile(r"<title\b.*?</title>", re.I | re.S)


def provider_message(body: Any) -> str:
    """The human text in an error body: error.message, error (string), detail, message, or the text."""
    if isinstance(body, str):
        text = body.strip()
        if text.startswith("<"):  # an HTML error page from a proxy: keep its words (the title once)
            found = _TITLE.search(text)
            title = " ".join(_TAG.sub(" ", found.group(0)).split()) if found else ""
            words = " ".join(_TAG.sub(" ", _TITLE.sub(" ", text)).split())
            text = words if words.startswith(title) else f"{title} {words}".strip()
        return text
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            msg = err.get("message") or err.get("msg") or err.get("detail")
            if msg:
                return str(msg) if not isinstance(msg, list | dict) else json.dumps(msg)
        elif isinstance(err, str) and err:
            return err
        detail = body.get("detail")
        if detail:
            if isinstance(detail, list):  # FastAPI/pydantic: [{"loc": ..., "msg": ...}]
                parts = [str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail]
                return "; ".join(parts)
            return str(detail) if not isinstance(detail, dict) else json.dumps(detail)
        msg = body.get("message")
        if msg:
            return str(msg)
        return json.dumps(body)[:500]
    if body is None:
        return ""
    return str(body)


def _codes(body: Any) -> set[str]:
    err = _error_object(body)
    return {str(err[k]) for k in ("code", "type") if err.get(k) is not None}


def parse_context_overflow(
    message: str, body: Any = None, *, status: int = 400, request_id: str | None = None
) -> ContextOverflowError | None:
    """A ContextOverflowError if ``message``/``body`` say the request does not fit, else None.

    Knows the vLLM, OpenAI, OpenRouter, DeepInfra, llama.cpp and Anthropic wordings
    and takes the numbers they give.
    """
    codes = _codes(body)
    if not (codes & _OVERFLOW_CODES or _OVERFLOW_WORDS.search(message)):
        return None
    numbers: dict[str, int | None] = {}
    for pattern, names in _OVERFLOW_PATTERNS:
        match = pattern.search(message)
        if match:
            for name, value in zip(names, match.groups(), strict=True):
                if value is not None and numbers.get(name) is None:
                    numbers[name] = _int(value)
    err = _error_object(body)  # llama.cpp: {"n_prompt_tokens": 9000, "n_ctx": 8192}
    if numbers.get("prompt_tokens") is None and isinstance(err.get("n_prompt_tokens"), int):
        numbers["prompt_tokens"] = err["n_prompt_tokens"]
    if numbers.get("context_length") is None and isinstance(err.get("n_ctx"), int):
        numbers["context_length"] = err["n_ctx"]
    exc = ContextOverflowError(
        "",
        status=status,
        request_id=request_id,
        provider_message=message,
        body=body,
        prompt_tokens=numbers.get("prompt_tokens"),
        max_tokens=numbers.get("max_tokens"),
        context_length=numbers.get("context_length"),
        requested_tokens=numbers.get("requested_tokens"),
    )
    exc.message, exc.hint = _overflow_text(exc)
    exc.args = (str(exc),)
    return exc


def _overflow_text(exc: ContextOverflowError) -> tuple[str, str]:
    parts = []
    if exc.prompt_tokens is not None:
        parts.append(f"prompt {exc.prompt_tokens}")
    if exc.max_tokens is not None:
        parts.append(f"max_tokens {exc.max_tokens}")
    if not parts and exc.requested_tokens is not None:
        parts.append(f"{exc.requested_tokens} tokens requested")
    numbers = " + ".join(parts)
    if exc.context_length is not None:
        numbers = f"{numbers} > window {exc.context_length}" if numbers else f"window {exc.context_length}"
    detail = f" ({numbers})" if numbers else ""
    message = f"The request does not fit the model's context window{detail}: {_clip(exc.provider_message)}"
    hint = "Lower max_tokens, shorten the prompt, or start a new run with a model that has a larger window."
    return message, hint


def _clip(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


def parse_body(raw: bytes) -> Any:
    """JSON if it parses, else the text (replacement-decoded)."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


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
    headers = headers or {}
    pmsg = provider_message(body)
    shown = _clip(pmsg).rstrip(".") if pmsg else "no details"
    if isinstance(body, str) and body.lstrip().startswith("<"):  # a proxy's or gateway's error page
        shown = f"an HTML error page, probably from a proxy or gateway in front of the model server: {shown}"
    kw: dict[str, Any] = {
        "status": status,
        "provider_message": pmsg,
        "request_id": request_id,
        "body": body,
    }
    if origin:
        what = f"{origin}: {shown}"
    else:
        what = f"HTTP {status} from {url}: {shown}" if url else f"HTTP {status}: {shown}"
    key_action = sentence(key_hint) if key_hint else "Check the API key in Settings."
    if not key_sent and not key_hint:
        key_action = "Paste a key in Settings or set the provider's key variable."

    if status in (400, 413, 422) or status == 200 or status >= 500:  # DeepInfra also says it with a 500
        overflow = parse_context_overflow(pmsg, body, status=status, request_id=request_id)
        if overflow is not None:
            return overflow
    if status == 400 or status == 413:
        if _PREFILL_WORDS.search(pmsg):
            return PrefillUnsupportedError(
                f"The server refused a conversation that ends with the answer so far ({what}).",
                "Choose another continuation strategy for this provider (run the probe in Settings).",
                **kw,
            )
        return BadRequestError(
            f"The server rejected the request ({what}).",
            "Check the model's parameters in Settings (max_tokens, sampling, extra body).",
            **kw,
        )
    if status == 401:
        if not key_sent:
            return AuthenticationError(
                f"The server needs an API key and none was sent ({what}).", key_action, **kw
            )
        check = f"Check the key that was sent: {key_hint}" if key_hint else "Check the API key in Settings"
        return AuthenticationError(f"The server rejected the API key that was sent ({what}).", check, **kw)
    if status == 402:
        return PaymentRequiredError(
            f"The provider reports no credit left on this account ({what}).",
            "Top up the balance with the provider, or use another key.",
            **kw,
        )
    if status == 403:
        return PermissionDeniedError(
            f"The key is not allowed to do this ({what}).",
            "Check the key's permissions and the model's access rules with the provider.",
            **kw,
        )
    if status == 404:
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
    if status == 422:
        return ValidationError(
            f"The server could not process the request body ({what}).",
            "Check the model's parameters in Settings (max_tokens, sampling, extra body).",
            **kw,
        )
    if status == 429:
        wait = retry_after_seconds(headers)
        after = f" It asks to wait {wait:g} s." if wait is not None else ""
        return RateLimitError(
            f"Rate limited by the server ({what}).{after}",
            "Continuum retries with backoff; lower the request rate or raise the limit with the provider.",
            retry_after=wait,
            **kw,
        )
    if status >= 500:
        wait = retry_after_seconds(headers)
        after = f" It asks to wait {wait:g} s." if wait is not None else ""
        return ServerError(
            f"The server failed ({what}).{after}",
            "This is usually temporary; Continuum retries with backoff.",
            retry_after=wait,
            **kw,
        )
    if status in (408, 409):
        return APIStatusError(f"The server asked to try again ({what}).", "Continuum retries.", **kw)
    return APIStatusError(
        f"Unexpected error status ({what}).", "Check the base URL and the provider's status page.", **kw
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
    err = _error_object(body)
    status = 0
    code = err.get("code")
    if isinstance(code, int) and 400 <= code <= 599:
        status = code
    elif (
        isinstance(code, str)
        and len(code) == 3
        and code.isascii()
        and code.isdigit()
        and 400 <= int(code) <= 599
    ):
        status = int(code)
    if not status:
        for key in (err.get("code"), err.get("type")):
            if isinstance(key, str) and key in _CODE_STATUS:
                status = _CODE_STATUS[key]
                break
    if not status:
        pmsg = provider_message(body)
        overflow = parse_context_overflow(pmsg, body, request_id=request_id)
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
