"""A request's JSON body, encoded by us for httpx's public ``content=`` (stream and client).

httpx's ``json=`` encodes a body to one ``str`` (``json.dumps``) and then to its UTF-8
``bytes``. A continuation request carries the whole answer so far, so that is two more
copies of the answer while it is sent, and the bytes live as long as the request does.
:func:`encode_body` gives the same bytes as httpx (compact separators, non-ASCII as is, no
NaN) for ``content=`` with a ``Content-Type`` header. A body without a long string is one
``bytes``. A body with one (:data:`LONG` characters or more: an answer of ~40k tokens and
up) is a :class:`JSONBody`: the rest of the body is encoded once, and each long string is
encoded a slice at a time while httpx writes the body to the socket, so no copy of it is
ever whole. Its ``Content-Length`` is counted before sending (one pass over the slices,
which also raises the error an unencodable string gives, as httpx would, before anything
is sent); httpx honours an explicit ``Content-Length`` for an iterable body. The iterable
can be sent again (a redirect); :meth:`JSONBody.release` drops its strings once the
request is over, whoever still holds the request.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

__all__ = ["LONG", "JSONBody", "encode_body"]

LONG = 1 << 18  # characters: a string this long is encoded a slice at a time
SLICE = 1 << 16  # characters per slice
_DEPTH = 4  # body → messages → message → content is 3; deeper values are encoded whole


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _slices(text: str) -> Iterator[bytes]:
    """The JSON string of ``text`` without its quotes, as UTF-8, a slice at a time."""
    for start in range(0, len(text), SLICE):
        yield _dumps(text[start : start + SLICE])[1:-1].encode("utf-8")


class JSONBody:
    """The bytes of a JSON body with long strings in it, re-iterable; ``length`` in bytes."""

    def __init__(self, parts: list[bytes | str]) -> None:
        self._parts = parts  # bytes: encoded JSON; str: a long string's text, encoded when sent
        self.length = sum(
            len(part) if isinstance(part, bytes) else sum(map(len, _slices(part))) for part in parts
        )

    def __iter__(self) -> Iterator[bytes]:
        for part in self._parts:
            if isinstance(part, bytes):
                yield part
            else:
                yield from _slices(part)

    def release(self) -> None:
        """Drop the strings: the request is over (a later iteration sends nothing)."""
        self._parts = []


def encode_body(payload: Any) -> tuple[dict[str, str], bytes | JSONBody]:
    """Headers and ``content=`` for ``payload`` as JSON. Raises TypeError or ValueError
    (UnicodeEncodeError included) where ``json.dumps`` and UTF-8 would."""
    if not _has_long(payload, _DEPTH):  # the common case: encoded once, as httpx would
        return {"Content-Type": "application/json"}, _dumps(payload).encode("utf-8")
    parts: list[bytes | str] = []
    pending: list[str] = []
    _parts(payload, pending, parts, _DEPTH)
    if pending:
        parts.append("".join(pending).encode("utf-8"))
    body = JSONBody(parts)
    return {"Content-Type": "application/json", "Content-Length": str(body.length)}, body


def _has_long(value: Any, depth: int) -> bool:
    """Whether ``value`` holds a string of :data:`LONG` characters or more where :func:`_parts`
    looks (a walk of lengths only: nothing is encoded)."""
    if isinstance(value, str):
        return len(value) >= LONG
    if depth and isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return any(_has_long(item, depth - 1) for item in value.values())
    if depth and isinstance(value, list | tuple):
        return any(_has_long(item, depth - 1) for item in value)
    return False


def _parts(value: Any, pending: list[str], parts: list[bytes | str], depth: int) -> bool:
    """Append ``value``'s JSON: text to ``pending``, each long string apart in ``parts`` between
    the encoded text before it and its closing quote. True when a long string was found."""
    if isinstance(value, str):
        if len(value) < LONG:
            pending.append(_dumps(value))
            return False
        pending.append('"')
        parts.append("".join(pending).encode("utf-8"))
        parts.append(value)
        pending[:] = ['"']
        return True
    if depth and isinstance(value, dict) and all(isinstance(key, str) for key in value):
        found = False
        pending.append("{")
        for at, (key, item) in enumerate(value.items()):
            pending.append(("," if at else "") + _dumps(key) + ":")
            found = _parts(item, pending, parts, depth - 1) or found
        pending.append("}")
        return found
    if depth and isinstance(value, list | tuple):
        found = False
        pending.append("[")
        for at, item in enumerate(value):
            if at:
                pending.append(",")
            found = _parts(item, pending, parts, depth - 1) or found
        pending.append("]")
        return found
    pending.append(_dumps(value))
    return False
