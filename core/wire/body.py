"""A request's JSON body, encoded by us for httpx's public ``content=`` (stream and client).

httpx's ``json=`` encodes a body to one ``str`` (``json.dumps``) and then to its UTF-8
``bytes``. A continuation request carries the whole answer so far, so that is two more
copies of the answer while it is sent, and the bytes live as long as the request does.
:func:`encode_body` gives the same bytes as httpx (compact separators, non-ASCII as is, no
NaN) for ``content=`` with a ``Content-Type`` header.

A string of the body may be given as :class:`~core.types.pieces.Pieces` (the answer so far
as the rounds hold it): it is sent as the JSON string of the pieces joined, without joining
them. A body without a long text is one ``bytes``. A body with one (:data:`LONG` characters
or more: an answer of ~40k tokens and up) is a :class:`JSONBody`: the rest of the body is
encoded once, and each long text is encoded a slice at a time while httpx writes the body to
the socket, so no copy of it is ever whole. JSON escapes each character on its own, so the
slices' encodings joined are the encoding of the whole. Its ``Content-Length`` is counted
before sending (one pass over the slices, which also raises the error an unencodable string
gives, as httpx would, before anything is sent); httpx honours an explicit
``Content-Length`` for an iterable body. The iterable can be sent again (a redirect);
:meth:`JSONBody.release` drops its texts once the request is over, whoever still holds the
request.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from core.types.pieces import Pieces

__all__ = ["LONG", "JSONBody", "encode_body"]

LONG = 1 << 18  # characters: a text this long is encoded a slice at a time
SLICE = 1 << 16  # characters per slice
_DEPTH = 4  # body → messages → message → content is 3; deeper values are encoded whole


def _joined(value: Any) -> str:
    """json's ``default``: a short :class:`Pieces` is encoded as the string it stands for."""
    if isinstance(value, Pieces):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_joined)


def _slices(text: str | Pieces) -> Iterator[bytes]:
    """The JSON string of ``text`` without its quotes, as UTF-8, about :data:`SLICE` characters
    at a time (short pieces are grouped, long ones cut)."""
    group: list[str] = []
    size = 0
    for piece in text.pieces if isinstance(text, Pieces) else (text,):
        if size + len(piece) < SLICE:
            group.append(piece)
            size += len(piece)
            continue
        if group:
            yield _dumps("".join(group))[1:-1].encode("utf-8")
            group, size = [], 0
        for start in range(0, len(piece), SLICE):
            cut = piece[start : start + SLICE]
            if len(cut) < SLICE:  # the end of a piece starts the next group
                group, size = [cut], len(cut)
            else:
                yield _dumps(cut)[1:-1].encode("utf-8")
    if group:
        yield _dumps("".join(group))[1:-1].encode("utf-8")


class JSONBody:
    """The bytes of a JSON body with long texts in it, re-iterable; ``length`` in bytes."""

    def __init__(self, parts: list[bytes | str | Pieces]) -> None:
        self._parts = parts  # bytes: encoded JSON; else a long text, encoded when sent
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
        """Drop the texts: the request is over (a later iteration sends nothing)."""
        self._parts = []


def encode_body(payload: Any) -> tuple[dict[str, str], bytes | JSONBody]:
    """Headers and ``content=`` for ``payload`` as JSON. Raises TypeError or ValueError
    (UnicodeEncodeError included) where ``json.dumps`` and UTF-8 would."""
    if not _has_long(payload, _DEPTH):  # the common case: encoded once, as httpx would
        return {"Content-Type": "application/json"}, _dumps(payload).encode("utf-8")
    parts: list[bytes | str | Pieces] = []
    pending: list[str] = []
    _parts(payload, pending, parts, _DEPTH)
    if pending:
        parts.append("".join(pending).encode("utf-8"))
    body = JSONBody(parts)
    return {"Content-Type": "application/json", "Content-Length": str(body.length)}, body


def _has_long(value: Any, depth: int) -> bool:
    """Whether ``value`` holds a text of :data:`LONG` characters or more where :func:`_parts`
    looks (a walk of lengths only: nothing is encoded)."""
    if isinstance(value, str | Pieces):
        return len(value) >= LONG
    if depth and isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return any(_has_long(item, depth - 1) for item in value.values())
    if depth and isinstance(value, list | tuple):
        return any(_has_long(item, depth - 1) for item in value)
    return False


def _parts(value: Any, pending: list[str], parts: list[bytes | str | Pieces], depth: int) -> bool:
    """Append ``value``'s JSON: text to ``pending``, each long text apart in ``parts`` between
    the encoded text before it and its closing quote. True when a long text was found."""
    if isinstance(value, str | Pieces):
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
