"""Properties of the SSE decoder (core.wire.sse) and of the chunk -> StreamDelta layer (core.wire.stream).

Any chunking of the same bytes decodes like the whole stream and like a slow
reference written straight from the WHATWG rules; arbitrary bytes (invalid
UTF-8, NUL, stray CRs, BOMs, huge lines) give those events or a
MalformedStreamError, never another exception; memory stays bounded.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.wire.errors import MalformedStreamError
from core.wire.sse import MAX_EVENT_BYTES, SSEDecoder, SSEEvent

PROPS = settings(max_examples=300, deadline=None)
BOUNDARY = settings(max_examples=150, deadline=None)
BOM = b"\xef\xbb\xbf"
TOO_LONG = "too long"


# ---------------------------------------------------------------- the reference


@dataclass
class Decoded:
    events: list[SSEEvent] | str  # TOO_LONG when a line or an event's data passes the limit
    comments: int = 0
    discarded: int = 0


def reference(stream: bytes, limit: int = MAX_EVENT_BYTES) -> Decoded:
    """The WHATWG algorithm, the slow and obvious way, on the whole input."""
    if stream.startswith(BOM):
        stream = stream[3:]
    lines = re.split(rb"\r\n|\r|\n", stream)
    if any(len(line) > limit for line in lines):
        return Decoded(TOO_LONG)
    complete, partial = lines[:-1], lines[-1]
    events: list[SSEEvent] = []
    comments = 0
    data: list[bytes] | None = None
    event_type = last_id = None
    retry: int | None = None
    for line in complete:
        if not line:
            if data is not None:
                events.append(SSEEvent(b"\n".join(data), event_type, last_id, retry))
            data, event_type, retry = None, None, None
            continue
        if line.startswith(b":"):
            comments += 1
            continue
        name, _, value = line.partition(b":")
        value = value[1:] if value.startswith(b" ") else value
        if name == b"data":
            data = [*(data or []), value]
            if len(b"\n".join(data)) > limit:
                return Decoded(TOO_LONG)
        elif name == b"event":
            event_type = value.decode("utf-8", "replace")
        elif name == b"id" and b"\0" not in value:
            last_id = value.decode("utf-8", "replace")
        elif name == b"retry" and re.fullmatch(rb"[0-9]{1,18}", value):
            retry = int(value)
    if data is not None:  # close(): a pending event whose lines were complete
        events.append(SSEEvent(b"\n".join(data), event_type, last_id, retry))
    return Decoded(events, comments, len(partial))


def decode(chunks: list[bytes], limit: int = MAX_EVENT_BYTES, *, fast: bool = False) -> Decoded:
    """What SSEDecoder makes of ``chunks`` (``fast``: through feed_data, as core.wire.stream uses it)."""
    decoder = SSEDecoder(limit)
    events: list[SSEEvent] = []
    try:
        for chunk in chunks:
            events += _events(decoder.feed_data(chunk)) if fast else decoder.feed(chunk)
        events += _events(decoder.close_data()) if fast else decoder.close()
    except MalformedStreamError as exc:
        assert str(exc) and exc.hint and exc.retryable
        return Decoded(TOO_LONG)
    return Decoded(events, decoder.comments, decoder.discarded)


def _events(items: list[bytes | SSEEvent]) -> list[SSEEvent]:
    return [SSEEvent(item) if isinstance(item, bytes) else item for item in items]


def split(stream: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


# ---------------------------------------------------------------- strategies

value = st.binary(max_size=10).map(lambda b: re.sub(rb"[\r\n]", b"", b))
field_line = st.one_of(
    value.map(lambda v: b"data: " + v),
    value.map(lambda v: b"data:" + v),
    value.map(lambda v: b"data:  " + v),
    st.just(b"data"),
    value.map(lambda v: b":" + v),  # comments, keep-alives
    value.map(lambda v: b"event: " + v),
    value.map(lambda v: b"id: " + v),  # may hold NUL or invalid UTF-8
    st.just(b"id"),
    st.integers(0, 10**25).map(lambda n: b"retry: " + str(n).encode()),
    st.sampled_from([b"retry: x", b"retry:", b"retry: -1", b"foo: bar", b"event", b"Data: x", b" data: x"]),
    st.just(b""),
)
endings = st.sampled_from([b"\n", b"\r\n", b"\r"])


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """Well-formed streams: every field kind, every line ending, maybe a BOM, maybe a cut-off end."""
    lines = draw(st.lists(st.tuples(field_line, endings), max_size=20))
    stream = b"".join(line + ending for line, ending in lines)
    if draw(st.booleans()):
        stream = BOM + stream
    if draw(st.booleans()):
        stream += draw(field_line)  # an unterminated last line
    return stream


TOKENS = (b"data", b"data: ", b":", b" ", b"\r", b"\n", b"\r\n", b"\n\n", BOM, b"\xef", b"\x00", b"\xff")
token = st.sampled_from((*TOKENS, b"\xc3", b"event", b"id", b"retry", b"7", b"{", b"[DONE]", b"x"))
fuzz = st.one_of(
    st.binary(max_size=200),
    st.lists(token, max_size=60).map(b"".join),
    st.lists(st.one_of(token, st.binary(max_size=8)), max_size=40).map(b"".join),
)


@st.composite
def chunked(draw: st.DrawFn, source: st.SearchStrategy[bytes]) -> tuple[bytes, list[bytes]]:
    """A stream and the same bytes cut at arbitrary offsets."""
    stream = draw(source)
    return stream, split(stream, draw(st.lists(st.integers(0, len(stream)), max_size=10)))


def whole(stream: bytes) -> tuple[bytes, list[bytes]]:
    """An explicit example: the stream in one piece."""
    return stream, [stream]


# ---------------------------------------------------------------- decoder properties


@PROPS
@given(chunked(streams()))
@example(whole(b"retry: " + b"1" * 5000 + b"\ndata: x\n\n"))  # int() refused > 4300 digits
@example((BOM + b"data: a\r\n\r\n", [BOM[:1], BOM[1:], b"data: a\r", b"\n", b"\r\n"]))
def test_any_chunking_decodes_like_the_whole_stream_and_the_reference(
    case: tuple[bytes, list[bytes]],
) -> None:
    stream, chunks = case
    expected = reference(stream)
    assert decode([stream]) == expected
    assert decode(chunks) == expected
    assert decode(chunks, fast=True) == expected


@PROPS
@given(chunked(fuzz), st.one_of(st.integers(1, 40), st.just(MAX_EVENT_BYTES)))
@example(whole(BOM + b"data: " + b"x" * 14), 20)  # the BOM is not part of the first line
@example(whole(b"data:abcd\r\ndata:abcd\n\n"), 10)  # data "abcd\nabcd" is 9 bytes: fits
@example(whole(b"data:abcde\r\ndata:abcd\n\n"), 10)  # 10 bytes: fits exactly
@example(whole(b"data:abcde\r\ndata:abcde\n\n"), 10)  # 11 bytes: too much
def test_fuzzed_bytes_give_the_reference_events_or_a_clear_error(
    case: tuple[bytes, list[bytes]], limit: int
) -> None:
    stream, chunks = case
    expected = reference(stream, limit)
    assert decode(chunks, limit) == expected
    assert decode(chunks, limit, fast=True) == expected


before = st.sampled_from([b"", b"\n", b"\r", b"\r\n", b"data: a\r", b"a\n", b"data:\r\n\r\n"])


@BOUNDARY
@given(
    st.integers(8, 64),  # at least the lines before it
    before,
    st.sampled_from([b"", b"data: ", b": ", b"event: ", b"id: "]),
    st.sampled_from([b"", b"\n", b"\r", b"\r\n"]),  # never terminated, or terminated
    st.lists(st.integers(0, 80), max_size=6),
)
def test_a_line_of_exactly_the_limit_passes_and_one_byte_more_is_an_error(
    limit: int, lead: bytes, prefix: bytes, ending: bytes, cuts: list[int]
) -> None:
    for size, ok in ((limit, True), (limit + 1, False)):
        stream = lead + (prefix + b"y" * size)[:size] + ending
        chunks = split(stream, [min(cut, len(stream)) for cut in cuts])
        assert (decode(chunks, limit).events != TOO_LONG) is ok


@BOUNDARY
@given(
    st.lists(st.integers(0, 12), min_size=1, max_size=8),
    st.sampled_from([b"", b"\n", b"\r", b"\r\n", b"a\n", b":\r", b"x:y\r\n", b"data:\r\r"]),
    st.sampled_from([b"\n", b"\r", b"\r\n"]),
    st.lists(st.integers(0, 200), max_size=6),
)
def test_an_event_with_exactly_the_limit_of_data_passes_and_one_byte_more_is_an_error(
    sizes: list[int], lead: bytes, ending: bytes, cuts: list[int]
) -> None:
    lines = [b"data:" + b"d" * n for n in sizes]
    payload = sum(sizes) + len(sizes) - 1  # the data lines joined with newlines
    stream = lead + ending.join(lines) + ending + ending
    chunks = split(stream, [min(cut, len(stream)) for cut in cuts])
    limit = max(payload, *map(len, lines))  # no line is too long by itself
    assert decode(chunks, limit).events != TOO_LONG
    if payload >= max(map(len, lines)):
        assert decode(chunks, payload - 1).events == TOO_LONG


def test_a_never_terminated_line_raises_once_it_passes_the_default_limit() -> None:
    decoder = SSEDecoder()
    piece = b"x" * 65536
    fed = 0
    with pytest.raises(MalformedStreamError, match="line longer than 16 MiB"):
        decoder.feed(b"data: ")
        fed = 6
        while fed <= 2 * MAX_EVENT_BYTES:
            decoder.feed(piece)
            fed += len(piece)
    assert MAX_EVENT_BYTES < fed + len(piece) <= MAX_EVENT_BYTES + len(piece)


def test_data_lines_without_a_blank_line_raise_once_the_event_passes_the_default_limit() -> None:
    decoder = SSEDecoder()
    line = b"data: " + b"z" * (1 << 20) + b"\n"
    with pytest.raises(MalformedStreamError, match="event with more than 16 MiB of data"):
        for _ in range(32):
            decoder.feed(line)
    assert decoder.comments == 0


def test_a_stream_of_keep_alive_comments_without_blank_lines_is_never_too_long() -> None:
    decoder = SSEDecoder(max_event_bytes=64)
    for _ in range(1000):
        assert decoder.feed(b": keep-alive\n") == []
    assert decoder.comments == 1000
