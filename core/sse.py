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
- ``data: [DONE]`` is ordinary data; the client decides to stop on it.

At :meth:`SSEDecoder.close` a pending event whose last line was complete is
dispatched (some servers end with ``data: [DONE]\\n`` and no blank line); an
unterminated last line is a cut-off and is dropped (counted in
:attr:`SSEDecoder.discarded`), so a truncated JSON chunk looks like a broken
stream, not like a malformed one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = ["SSEDecoder", "SSEEvent", "iter_events"]

_CR = 13
_LF = 10


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

    def __init__(self) -> None:
        self._tail: list[bytes] = []  # the unterminated line so far
        self._cr = False  # the last chunk ended in CR: drop a leading LF
        self._started = False  # a UTF-8 byte order mark may open the stream
        self._data: list[bytes] = []
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
        last = chunk[-1]
        if b"\r" in chunk:  # CR or CRLF line endings: the general path
            if self._tail:
                self._tail.append(chunk)
                chunk = b"".join(self._tail)
                self._tail = []
            lines = chunk.splitlines()
            if last == _CR:
                self._cr = True
            elif last != _LF:
                self._tail.append(lines.pop())
            return self._lines(lines)
        if last != _LF and b"\n" not in chunk:
            self._tail.append(chunk)  # still inside one line
            return []
        if self._tail:
            self._tail.append(chunk)
            chunk = b"".join(self._tail)
            self._tail = []
        # LF only: split into blocks ending in a blank line; a block that is a single
        # "data: ..." line is an event as it stands (the shape of nearly every chunk).
        blocks = chunk.split(b"\n\n")
        rest = blocks.pop()
        events: list[bytes | SSEEvent] = []
        data = self._data
        simple = self.last_event_id is None and self._event is None and self._retry is None
        for block in blocks:
            if simple and not data and block[:6] == b"data: " and b"\n" not in block:
                events.append(block[6:])
            else:
                lines = block.split(b"\n")
                lines.append(b"")
                events += self._lines(lines)
                simple = self.last_event_id is None  # the blank line reset event and retry
        if rest:
            lines = rest.split(b"\n")
            partial = lines.pop()
            if partial:
                self._tail.append(partial)
            if lines:
                events += self._lines(lines)
        return events

    def close_data(self) -> list[bytes | SSEEvent]:
        """Like :meth:`close`, with :meth:`feed_data`'s result shape."""
        if self._tail:
            self.discarded += sum(len(part) for part in self._tail)
            self._tail = []
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
                    data.append(line[6:])
                else:
                    self._field(line)
            elif data:
                payload = data[0] if len(data) == 1 else b"\n".join(data)
                data.clear()
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
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" not in value:
                self.last_event_id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            self._retry = int(value)
        # any other field is ignored, as the specification says


def iter_events(byte_chunks: Iterable[bytes]) -> Iterator[SSEEvent]:
    """Decode an iterable of network chunks into events, flushing at the end."""
    decoder = SSEDecoder()
    for chunk in byte_chunks:
        yield from decoder.feed(chunk)
    yield from decoder.close()
