"""What an error body says: its parsed form, its human text and its error object. Pure.

Provider error bodies come as OpenAI-style ``{"error": {"message", "type",
"code"}}``, ``{"detail": ...}`` (FastAPI), ``{"message": ...}``, plain text or a
proxy's HTML page. :mod:`core.wire.error_map` and :mod:`core.wire.overflow`
read them through these functions.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["clip", "error_codes", "error_object", "parse_body", "provider_message"]

_TAG = re.compile(r"<(script|style)\b.*?</\1>|<[^>]+>", re.I | re.S)
_TITLE = re.compile(r"<title\b.*?</title>", re.I | re.S)


def parse_body(raw: bytes) -> Any:
    """JSON if it parses, else the text (replacement-decoded)."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def error_object(body: Any) -> dict[str, Any]:
    """The provider's error object, whatever its shape."""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            return err
        return body
    return {}


def error_codes(body: Any) -> set[str]:
    """The ``code`` and ``type`` of the error object, as text."""
    err = error_object(body)
    return {str(err[k]) for k in ("code", "type") if err.get(k) is not None}


def provider_message(body: Any) -> str:
    """The human text in an error body: error.message, error (string), detail, message, or the text."""
    if isinstance(body, str):
        return _page_text(body)
    if isinstance(body, dict):
        return _dict_message(body)
    if body is None:
        return ""
    return str(body)


def _page_text(body: str) -> str:
    text = body.strip()
    if text.startswith("<"):  # an HTML error page from a proxy: keep its words (the title once)
        found = _TITLE.search(text)
        title = " ".join(_TAG.sub(" ", found.group(0)).split()) if found else ""
        words = " ".join(_TAG.sub(" ", _TITLE.sub(" ", text)).split())
        text = words if words.startswith(title) else f"{title} {words}".strip()
    return text


def _dict_message(body: dict[str, Any]) -> str:
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


def clip(text: str, limit: int = 300) -> str:
    """``text`` on one line, cut to ``limit`` characters (with an ellipsis)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
