"""Server-sent events: bytes in, events out. Pure, no I/O.

The decoder follows the WHATWG EventSource parsing rules, on bytes:

- lines end in CRLF, CR or LF (``bytes.splitlines`` splits on exactly these);
  a CR at the end of one chunk may meet its LF at the start of the next, which
  is one line ending, not two;
- ``data`` stays bytes (``json.loads`` accepts bytes), so a UTF-8 character
  split across network chunks is never decoded half-way, and a stray
  non-UTF-8 byte in the data is left for the JSON step to report; only field
  names, ``event``, ``id`` and ``retry`` values are decoded (with
  replacement);
- lines starting with ``:`` are comments (``: keep-alive``): ignored but
  counted in :attr:`SSEDecoder.comments`;
- several ``data:`` lines of one event are joined with ``\\n``; a blank line
  dispatches the event (an event without data is not dispatched);
- ``data: [DONE]`` is ordinary data; the client decides to stop on it;
- one departure from the specification, which ignores unknown fields: an
  ``error:`` field (llama.cpp's server wrote mid-stream errors that way until
  ggml-org/llama.cpp#16109) is read as ``event: error`` with that data, so an
  error is never mistaken for an empty, finished stream;
- a ``retry`` value longer than 18 digits is ignored like any non-number.

Memory is bounded: a line longer than ``max_event_bytes`` (16 MiB by default),
terminated or not, or an event whose data grows past it, raises
:class:`~core.wire.errors.MalformedStreamError` instead of buffering without end (a
server that never sends a line ending). The check is exact and does not
depend on how the bytes are chunked.

At :meth:`SSEDecoder.close` a pending event whose last line was complete is
dispatched (some servers end with ``data: [DONE]\\n`` and no blank line); an
unterminated last line is a cut-off and is dropped (counted in
:attr:`SSEDecoder.discarded`), so a truncated JSON chunk looks like a broken
stream, not like a malformed one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import cast

from core.wire.errors import MalformedStreamError

__all__ = ["MAX_EVENT_BYTES", "SSEDecoder", "SSEEvent", "iter_events"]

MAX_EVENT_BYTES = 16 * 1024 * 1024  # longest line, and most data in one event
_MAX_RETRY_DIGITS = 18  # int() refuses more than 4300 digits; no real retry needs 19
_CR = 13
_LF = 10
_LINE_ENDING = re.compile(rb"\r\n|\r|\n")


class SSEEvent:
    """One dispatched event. ``data`` is the raw bytes of the joined data lines."""

    __slots__ = ("data", "event", "id", "retry")

    def __init__(
        self, data: bytes, event: str | None = None, id: str | None = None, retry: int | None = None
    ) -> None:
        self.data = data
        self.event = event
        self.id = id
        self.retry = retry

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SSEEvent):
            return NotImplemented
        return (self.data, self.event, self.id, self.retry) == (
            other.data,
            other.event,
            other.id,
            other.retry,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __repr__(self) -> str:
        extra = "".join(
            f", {name}={value!r}"
            for name, value in (("event", self.event), ("id", self.id), ("retry", self.retry))
            if value is not None
        )
        return f"SSEEvent(data={self.data!r}{extra})"


class SSEDecoder:
    """Incremental decoder: ``feed`` network chunks, get the events they complete."""

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self.max_event_bytes = max_event_bytes
        self._tail: list[bytes] = []  # the unterminated line so far
        self._tail_size = 0  # its length once the stream has started
        self._cr = False  # the last chunk ended in CR: drop a leading LF
        self._started = False  # a UTF-8 byte order mark may open the stream
        self._data: list[bytes] = []
        self._data_size = 0  # len(b"\n".join(self._data)) + 1
        self._event: str | None = None
        self._retry: int | None = None
        self.last_event_id: str | None = None
        self.comments = 0  # comment lines seen (keep-alives)
        self.discarded = 0  # bytes of an unterminated last line dropped at close()

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode ``chunk``; return the events it completes (often several, often none)."""
        return [e if type(e) is SSEEvent else SSEEvent(e) for e in self.feed_data(chunk)]  # type: ignore[arg-type]

    def close(self) -> list[SSEEvent]:
        """End of stream: dispatch a pending event whose lines were complete."""
        return [e if type(e) is SSEEvent else SSEEvent(e) for e in self.close_data()]  # type: ignore[arg-type]

    def feed_data(self, chunk: bytes) -> list[bytes | SSEEvent]:
        """Like :meth:`feed`, but an event that has only data (no event type, id or
        retry: nearly every event of a completion stream) comes as its data bytes.
        The client's fast path: no object per event."""
        if not chunk:
            return []
        if self._cr:
            self._cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if not self._started:
            if self._tail:
                chunk = b"".join(self._tail) + chunk
                self._tail = []
            if len(chunk) < 3 and b"\xef\xbb\xbf".startswith(chunk):
                self._tail.append(chunk)  # too short to tell whether a BOM starts here
                return []
            self._started = True
            if chunk[:3] == b"\xef\xbb\xbf":
                chunk = chunk[3:]
        if not chunk:
            return []
        if self._tail_size + len(chunk) > self.max_event_bytes:
            self._check_line_lengths(chunk)  # rarely: only a long line can be too long
        last = chunk[-1]
        if b"\r" in chunk:  # CR or CRLF line endings: the general path
            if self._tail:
                self._tail.append(chunk)
                chunk = b"".join(self._tail)
                self._tail = []
                self._tail_size = 0
            lines = chunk.splitlines()
            if last == _CR:
                self._cr = True
            elif last != _LF:
                partial = lines.pop()
                self._tail.append(partial)
                self._tail_size = len(partial)
            return self._lines(lines)
        if last != _LF and b"\n" not in chunk:
            self._tail.append(chunk)  # still inside one line
            self._tail_size += len(chunk)
            return []
        if self._tail:
            self._tail.append(chunk)
            chunk = b"".join(self._tail)
            self._tail = []
            self._tail_size = 0
        data = self._data
        simple = self.last_event_id is None and self._event is None and self._retry is None
        end = chunk.rfind(b"\n\n")
        if simple and not data and end > 0 and chunk[:6] == b"data: ":
            # The shape of nearly every read: events that are each one "data: ..." line. Their
            # data are what lies between the blank lines, if no other line ending is there.
            body = chunk[6:end]
            found = body.split(b"\n\ndata: ")
            if body.count(b"\n") == 2 * len(found) - 2:
                events = cast("list[bytes | SSEEvent]", found)
                self._rest(chunk[end + 2 :], events)
                return events
        # LF only: split into blocks ending in a blank line; a block that is a single
        # "data: ..." line is an event as it stands.
        blocks = chunk.split(b"\n\n")
        rest = blocks.pop()
        events = []
        for block in blocks:
            if simple and not data and block[:6] == b"data: " and b"\n" not in block:
                events.append(block[6:])
            else:
                lines = block.split(b"\n")
                lines.append(b"")
                events += self._lines(lines)
                simple = self.last_event_id is None  # the blank line reset event and retry
        self._rest(rest, events)
        return events

    def _rest(self, rest: bytes, events: list[bytes | SSEEvent]) -> None:
        """The lines after the last blank line of an LF-only chunk; an unterminated one waits."""
        if rest:
            lines = rest.split(b"\n")
            partial = lines.pop()
            if partial:
                self._tail.append(partial)
                self._tail_size = len(partial)
            if lines:
                events += self._lines(lines)

    def close_data(self) -> list[bytes | SSEEvent]:
        """Like :meth:`close`, with :meth:`feed_data`'s result shape."""
        if self._tail:
            self.discarded += sum(len(part) for part in self._tail)
            self._tail = []
            self._tail_size = 0
        self._cr = False
        if not self._data:
            return []
        return self._lines([b""])

    def _lines(self, lines: list[bytes]) -> list[bytes | SSEEvent]:
        events: list[bytes | SSEEvent] = []
        data = self._data
        for line in lines:
            if line:
                if line[:6] == b"data: ":
                    self._add_data(line[6:])
                else:
                    self._field(line)
            elif data:
                payload = data[0] if len(data) == 1 else b"\n".join(data)
                data.clear()
                self._data_size = 0
                if self._event is None and self._retry is None and self.last_event_id is None:
                    events.append(payload)
                else:
                    events.append(SSEEvent(payload, self._event, self.last_event_id, self._retry))
                    self._event = None
                    self._retry = None
            else:  # a blank line without data dispatches nothing and resets the event
                self._event = None
                self._retry = None
        return events

    def _field(self, line: bytes) -> None:
        if line[0] == 58:  # b":"
            self.comments += 1
            return
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._add_data(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" not in value:
                self.last_event_id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit() and len(value) <= _MAX_RETRY_DIGITS:
            self._retry = int(value)
        elif name == b"error":  # llama.cpp (through 2025): "error: {...}" at HTTP 200, then [DONE]
            self._event = "error"
            self._add_data(value)
        # any other field is ignored, as the specification says

    def _add_data(self, value: bytes) -> None:
        self._data_size += len(value) + 1
        if self._data_size > self.max_event_bytes + 1:
            raise MalformedStreamError(
                f"The stream sent an event with more than {_size(self.max_event_bytes)} of data.",
                "No completion chunk is that large; check that the base URL points at an "
                "OpenAI-compatible API. The text so far is kept.",
                data=self._data[0][:200] if self._data else value[:200],
            )
        self._data.append(value)

    def _check_line_lengths(self, chunk: bytes) -> None:
        """Raise if a line that ``chunk`` continues, contains or starts is too long."""
        limit = self.max_event_bytes
        size = self._tail_size  # the line the chunk continues
        start = 0
        for ending in _LINE_ENDING.finditer(chunk):
            if size + ending.start() - start > limit:
                break
            size, start = 0, ending.end()
        else:
            if size + len(chunk) - start <= limit:
                return
        head = self._tail[0] if self._tail and not start else chunk[start : start + 200]
        raise MalformedStreamError(
            f"The stream sent a line longer than {_size(limit)} (a line ending may never come).",
            "No completion chunk is that large; check that the base URL points at an "
            "OpenAI-compatible API. The text so far is kept.",
            data=head[:200],
        )


def _size(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n:,} bytes"


def iter_events(byte_chunks: Iterable[bytes]) -> Iterator[SSEEvent]:
    """Decode an iterable of network chunks into events, flushing at the end."""
    decoder = SSEDecoder()
    for chunk in byte_chunks:
        yield from decoder.feed(chunk)
    yield from decoder.close()
