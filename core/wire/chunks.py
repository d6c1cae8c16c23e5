"""A streamed completion's JSON chunks become deltas: the per-chunk path of :mod:`core.wire.stream`.

:meth:`ChunkDecoder.decode` takes the SSE events of one network read and appends
their deltas to a *batch* (:data:`Batch`): a delta with only content, nearly
every chunk of a completion, is that content as a ``str``; any other delta
(reasoning, a finish_reason, usage) is a :class:`~core.types.StreamDelta`. A
list per read, instead of an object and a generator step per chunk, is what
keeps this path cheap. Every check still runs on every chunk:

- an ``error`` object in a chunk, an ``event: error`` (llama.cpp's ``error:``
  field arrives as one, see :mod:`core.wire.sse`) and ``finish_reason: "error"``
  raise the server's error (DESIGN §6);
- a chunk that is not a JSON object, not UTF-8, or whose ``choices``, ``delta``
  or ``content`` has the wrong type raises MalformedStreamError;
- ``[DONE]`` ends the stream; a stream that ends without chunks or a
  finish_reason is an EmptyStreamError, one cut off a StreamInterrupted
  (:meth:`ChunkDecoder.check_end`);
- unpaired surrogates (JSON escapes like ``"\\ud83d"``) become U+FFFD;
- ``reasoning_content`` / ``reasoning`` fields are reasoning; ``usage`` is read
  from any chunk that has one (the last one counts).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from json.decoder import scanstring  # type: ignore[attr-defined]  # the C scanner, untyped
from typing import Any

from core.types import StreamDelta, Usage
from core.wire.boundary import parse_usage, scan_json
from core.wire.error_map import parse_body
from core.wire.errors import ContinuumError, EmptyStreamError, MalformedStreamError, StreamInterrupted
from core.wire.sse import SSEEvent

__all__ = ["Batch", "ChunkDecoder", "Template"]

Batch = list[str | StreamDelta]  # one network read's deltas; a str is a delta with only content

_FIELDS = {name: re.compile(f'"{name}"[ \t\n\r]*:[ \t\n\r]*"') for name in ("content", "text")}
_PROBE = "\\u0000"  # the body of a JSON string holding a NUL, put in a chunk to prove a template
_PROBE_VALUE = "\x00"  # (no template is learned from a chunk whose content is just that)


def _no_lone_surrogates(text: str) -> str:
    """``text`` with unpaired surrogates (JSON escapes like "\\ud83d") as U+FFFD: they cannot be stored."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


class Template:
    """Where the content stands in a plain chunk, so that the next ones are read without a full parse.

    ``prefix``: the chunk's bytes up to the content's opening quote, included; ``suffix``:
    its bytes after the closing quote. A chunk made of ``prefix``, one JSON string and
    ``suffix`` parses like that chunk but for that string (a JSON value's parse does not
    depend on the contents of a string in it), so decoding the string alone
    (:func:`json.decoder.scanstring`) reads it, with the same checks (control characters,
    escapes, UTF-8). Completion servers repeat the bytes around the content in every chunk.

    :meth:`learn` proves a template before keeping it: the chunk is parsed again with
    another string in that place and must come out the same but for its content (the
    place is then the content, not a look-alike in another field or a duplicate key). A
    stream whose chunks differ elsewhere too (a counter, random padding) gives up
    learning after ``MAX_FRUITLESS`` templates in a row that never fitted a chunk.
    """

    MAX_FRUITLESS = 3

    def __init__(self) -> None:
        # prefix, suffix, their lengths, and the length a chunk must exceed (none yet: none does)
        self.shape: tuple[bytes, bytes, int, int, int] = (b"", b"", 0, 0, sys.maxsize)
        self.fruitless = 0  # templates learned since the last that fitted a chunk

    def learn(self, data: bytes, obj: dict[str, Any], field: str, content: str) -> bool:
        """Learn the template of ``data``, parsed as ``obj``, whose ``field`` holds ``content``."""
        if self.fruitless >= self.MAX_FRUITLESS or content == _PROBE_VALUE:
            return False
        self.fruitless += 1
        text = data.decode()
        for match in _FIELDS[field].finditer(text):
            start = match.end()  # after the opening quote
            try:
                value, end = scanstring(text, start)
                probe = scan_json(f"{text[:start]}{_PROBE}{text[end - 1 :]}".encode())
            except (ValueError, RecursionError):
                continue
            if value == content and _same_but_content(probe, obj, field, content):
                prefix, suffix = text[:start].encode(), text[end:].encode()
                # a chunk holds at least the closing quote between them
                self.shape = (prefix, suffix, len(prefix), len(suffix), len(prefix) + len(suffix))
                return True
        return False


def _same_but_content(probe: Any, obj: dict[str, Any], field: str, content: str) -> bool:
    """``probe`` has the probe value as its content and is ``obj`` otherwise."""
    try:
        first = probe["choices"][0]
        holder = first["delta"] if field == "content" else first
        if holder[field] != _PROBE_VALUE:
            return False
        holder[field] = content
    except (KeyError, IndexError, TypeError):
        return False
    return bool(probe == obj)


def _plain(obj: dict[str, Any]) -> tuple[str, str] | None:
    """(field, content) of a chunk that carries only content (chat's ``delta.content``, or the
    completions endpoint's ``text``); None for any other chunk."""
    choices = obj.get("choices")
    if type(choices) is list and choices and not obj.get("usage"):
        first = choices[0]
        if type(first) is dict and not first.get("finish_reason"):
            delta = first.get("delta")
            if type(delta) is dict:
                if delta.get("reasoning_content") or delta.get("reasoning"):
                    return None
                content = delta.get("content")
                return ("content", content) if type(content) is str else None
            if delta is None:
                content = first.get("text")
                return ("text", content) if type(content) is str else None
    return None


class ChunkDecoder:
    """The chunk-level state of one stream: ``chunks`` (JSON chunks decoded), ``finish_reason``
    (the last non-empty one), ``usage`` (the last non-null one), ``done`` (``[DONE]`` came).

    ``error`` builds the exception for an error body the server sent. ``template``: False turns
    the template off (every chunk fully parsed); the tests compare both ways.
    """

    def __init__(self, url: str, error: Callable[[Any], ContinuumError], *, template: bool = True) -> None:
        self.url = url
        self._error = error
        self.chunks = 0
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.done = False
        self._template = Template()
        if not template:
            self._template.fruitless = Template.MAX_FRUITLESS

    def decode(self, events: list[bytes | SSEEvent], batch: Batch) -> bool:
        """Append the deltas of ``events`` to ``batch``; True at ``[DONE]`` (events after it are ignored).

        A chunk that differs from the last plain one only in its content takes the template
        (:class:`Template`); another plain chunk (content only: no finish_reason, usage,
        reasoning or error) is parsed and read inline; anything else takes :meth:`_delta`,
        which checks it field by field.
        """
        add = batch.append
        tpl = self._template
        prefix, suffix, cut, tail, least = tpl.shape
        hits = 0
        for event in events:
            data = event if type(event) is bytes else self._named(event)
            if data is None:
                continue
            if len(data) > least and data.startswith(prefix) and data.endswith(suffix):
                try:
                    middle = data[cut:-tail].decode()
                    content, end = scanstring(middle, 0)
                    fits = end == len(middle)
                except ValueError:  # not one JSON string there: the full parse says what it is
                    fits = False
                if fits:
                    self.chunks += 1
                    hits += 1
                    if content:
                        add(content if content.isascii() else _no_lone_surrogates(content))
                    continue
            if data[:1] != b"{":
                stripped = data.strip()
                if stripped == b"[DONE]":
                    self.done = True
                    return True
                if not stripped:
                    continue
            obj = self._parse(data)
            plain = _plain(obj)
            if plain is None:
                delta = self._delta(obj, data)
                if delta is not None:
                    add(delta)
            elif plain[1]:
                content = plain[1]
                add(content if content.isascii() else _no_lone_surrogates(content))
                if tpl.learn(data, obj, *plain):
                    prefix, suffix, cut, tail, least = tpl.shape
        if hits:
            tpl.fruitless = 0
        return False

    def _parse(self, data: bytes) -> dict[str, Any]:
        """A chunk as a JSON object; a chunk that is not one, or is a server's error, raises."""
        try:
            obj = scan_json(data)
        except (ValueError, RecursionError) as exc:  # also invalid UTF-8, absurd nesting
            raise self.malformed(data, exc) from exc
        if type(obj) is not dict:
            raise self.malformed(data, None)
        self.chunks += 1
        if obj.get("error"):
            raise self._error(obj)
        return obj

    def _named(self, event: bytes | SSEEvent) -> bytes | None:
        """The data of an event with a type: an error raises, other named events carry no completion."""
        assert isinstance(event, SSEEvent)
        if event.event is not None and event.event != "message":
            if event.event == "error":
                raise self._error(parse_body(event.data))
            return None  # pings and other named events
        return event.data

    def _delta(self, obj: dict[str, Any], data: bytes) -> StreamDelta | None:
        """Any chunk, checked field by field: its delta, or None when it carries nothing."""
        content = reasoning = ""
        finish = None
        choices = obj.get("choices")
        if choices:
            first = choices[0] if type(choices) is list else None
            if type(first) is not dict:
                raise self.malformed(data, None)
            delta = first.get("delta")
            if type(delta) is dict:
                content = delta.get("content") or ""
                reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
                if type(reasoning) is not str:
                    reasoning = ""
            elif delta is None:
                content = first.get("text") or ""
            else:
                raise self.malformed(data, None)
            if type(content) is not str:
                raise self.malformed(data, None)
            if not (content + reasoning).isascii():
                content, reasoning = _no_lone_surrogates(content), _no_lone_surrogates(reasoning)
            finish = first.get("finish_reason") or None
            if finish is not None:
                finish = str(finish) if type(finish) is not str else finish
                if finish == "error":  # a server error, not an end: DESIGN §6
                    raise self._error({"error": {"message": "the stream ended with finish_reason 'error'"}})
                self.finish_reason = finish
        usage = obj.get("usage")
        if usage and type(usage) is dict:
            self.usage = parse_usage(usage)
            return StreamDelta(content, reasoning, finish, self.usage)
        if content or reasoning or finish is not None:
            return StreamDelta(content, reasoning, finish)
        return None

    def answer(self, body: dict[str, Any]) -> StreamDelta:
        """A complete (non-streamed) answer, as one delta."""
        choice = body["choices"][0] if isinstance(body["choices"][0], dict) else {}
        message = choice.get("message")
        if not isinstance(message, dict):
            message = {}
        content = _text(message.get("content")) or _text(choice.get("text"))
        reasoning = _text(message.get("reasoning_content")) or _text(message.get("reasoning"))
        finish = choice.get("finish_reason") or None
        self.finish_reason = finish
        usage = body.get("usage")
        if isinstance(usage, dict):
            self.usage = parse_usage(usage)
        self.chunks = 1
        return StreamDelta(content, reasoning, finish, self.usage)

    def check_end(self, comments: int) -> None:
        """The body ended (or [DONE] came): raise if the stream did not finish."""
        if self.finish_reason is None and not self.chunks and not comments:
            raise EmptyStreamError(
                f"The server at {self.url} answered 200 with an empty stream"
                + (" (only [DONE])" if self.done else "")
                + ": no chunk, no finish_reason, no error.",
                "Continuum asks once more without streaming to learn why.",
            )
        if self.finish_reason is None:
            raise StreamInterrupted(
                f"The stream from {self.url} ended after {self.chunks} chunks without [DONE] "
                "or a finish_reason.",
                "The text so far is kept; Continuum continues with a new round.",
            )

    def malformed(self, data: bytes, exc: Exception | None) -> MalformedStreamError:
        snippet = data[:120].decode("utf-8", "replace")
        if isinstance(exc, UnicodeDecodeError):
            # Not decoded with replacement: U+FFFD in the answer would be sent back as the next
            # round's prefill, and the model would continue from text it never wrote.
            bad = data[exc.start : exc.end].hex(" ")
            return MalformedStreamError(
                f"The stream from {self.url} sent bytes that are not UTF-8 (0x{bad} at byte {exc.start} "
                f"of a chunk) after {self.chunks} good chunks: '{snippet}'",
                "The text so far is kept. JSON must be UTF-8: if this repeats, something between you and "
                "the server (a proxy) is re-encoding the stream; check the base URL.",
                data=data[:200],
            )
        return MalformedStreamError(
            f"The stream from {self.url} sent a chunk that is not a JSON object after "
            f"{self.chunks} good chunks: '{snippet}'",
            "Usually a transient server fault. The text so far is kept: resume the run to continue from it.",
            data=data[:200],
        )
