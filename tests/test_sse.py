"""core.wire.sse: bytes in, events out — on any chunking of the same bytes."""

from __future__ import annotations

import itertools
import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from core.wire.sse import SSEDecoder, SSEEvent, iter_events


def decode(*chunks: bytes) -> list[SSEEvent]:
    return list(iter_events(chunks))


def datas(events: list[SSEEvent]) -> list[bytes]:
    return [e.data for e in events]


def reference(stream: bytes) -> list[SSEEvent]:
    """The WHATWG algorithm, written the slow and obvious way on the whole input."""
    if stream.startswith(b"\xef\xbb\xbf"):
        stream = stream[3:]
    lines = re.split(rb"\r\n|\r|\n", stream)
    complete = lines[:-1]  # the last piece has no line ending
    events, data, event_type, last_id, retry = [], None, None, None, None
    for line in complete:
        if not line:
            if data is not None:
                events.append(SSEEvent(b"\n".join(data), event_type, last_id, retry))
            data, event_type, retry = None, None, None
            continue
        if line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        value = value[1:] if value.startswith(b" ") else value
        if name == b"data":
            data = [*(data or []), value]
        elif name == b"event":
            event_type = value.decode()
        elif name == b"id" and b"\0" not in value:
            last_id = value.decode()
        elif name == b"retry" and value.isdigit():
            retry = int(value)
    if data is not None:  # close(): a pending event whose lines were complete
        events.append(SSEEvent(b"\n".join(data), event_type, last_id, retry))
    return events


STREAM = (
    b": keep-alive\n"
    b'data: {"choices": [{"delta": {"content": "caf\xc3\xa9 \xf0\x9f\x99\x82"}}]}\n\n'
    b"event: ping\ndata: 1\ndata: 2\n\n"
    b"id: 7\nretry: 1500\ndata:no-space\n\n"
    b"data: [DONE]\n\n"
)


def every_split(stream: bytes) -> list[tuple[bytes, bytes]]:
    return [(stream[:i], stream[i:]) for i in range(len(stream) + 1)]


def test_one_event_per_blank_line() -> None:
    assert datas(decode(b"data: a\n\ndata: b\n\n")) == [b"a", b"b"]


def test_lf_crlf_and_cr_line_endings_decode_alike() -> None:
    lf = decode(STREAM)
    assert decode(STREAM.replace(b"\n", b"\r\n")) == lf
    assert decode(STREAM.replace(b"\n", b"\r")) == lf


def test_every_two_chunk_split_gives_the_same_events_for_each_line_ending() -> None:
    for ending in (b"\n", b"\r\n", b"\r"):
        stream = STREAM.replace(b"\n", ending)
        expected = decode(stream)
        for head, tail in every_split(stream):
            assert decode(head, tail) == expected, (ending, head)


def test_one_byte_chunks_give_the_same_events() -> None:
    stream = STREAM.replace(b"\n", b"\r\n")
    assert decode(*(stream[i : i + 1] for i in range(len(stream)))) == decode(stream)


def test_cr_ending_one_chunk_and_lf_starting_the_next_are_one_line_ending() -> None:
    events = decode(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n")
    assert datas(events) == [b"a\nb"]


def test_utf8_character_split_across_chunks_stays_intact() -> None:
    payload = json.dumps({"content": "é漢🙂"}, ensure_ascii=False).encode()
    stream = b"data: " + payload + b"\n\n"
    for head, tail in every_split(stream):
        (event,) = decode(head, tail)
        assert json.loads(event.data) == {"content": "é漢🙂"}


def test_non_utf8_byte_in_data_is_passed_through_as_bytes() -> None:
    (event,) = decode(b'data: {"a": "\xff"}\n\n')
    assert event.data == b'{"a": "\xff"}'


def test_comments_are_counted_not_dispatched() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b": keep-alive\n\n:\n: ping\r\n")
    assert (events, decoder.comments) == ([], 3)


def test_multiple_data_lines_are_joined_with_newline() -> None:
    assert datas(decode(b"data: line 1\ndata: line 2\ndata:\n\n")) == [b"line 1\nline 2\n"]


def test_done_marker_is_ordinary_data() -> None:
    assert datas(decode(b"data: [DONE]\n\n")) == [b"[DONE]"]


def test_event_id_and_retry_fields_are_kept() -> None:
    (event,) = decode(b"event: error\nid: 42\nretry: 3000\ndata: x\n\n")
    assert event == SSEEvent(b"x", "error", "42", 3000)


def test_event_type_from_an_earlier_chunk_applies_to_the_next_data() -> None:
    assert decode(b"event: error\nretry: 5\n", b"data: x\n\n") == [SSEEvent(b"x", "error", retry=5)]


def test_last_event_id_carries_over_to_later_events() -> None:
    assert [e.id for e in decode(b"id: 1\ndata: a\n\ndata: b\n\n")] == ["1", "1"]


def test_blank_line_without_data_dispatches_nothing_and_resets_event_type() -> None:
    assert decode(b"event: ping\n\ndata: x\n\n") == [SSEEvent(b"x")]


def test_data_field_without_colon_is_an_empty_data_line() -> None:
    assert datas(decode(b"data\n\n")) == [b""]


def test_unknown_fields_are_ignored() -> None:
    assert datas(decode(b"foo: bar\ndata: x\nbaz\n\n")) == [b"x"]


def test_close_dispatches_a_complete_pending_event() -> None:
    assert datas(decode(b"data: [DONE]\n")) == [b"[DONE]"]


def test_close_drops_an_unterminated_last_line() -> None:
    decoder = SSEDecoder()
    decoder.feed(b'data: {"a": 1}\n\ndata: {"cut')
    assert (decoder.close(), decoder.discarded) == ([], len(b'data: {"cut'))


def test_byte_order_mark_at_stream_start_is_ignored_even_when_split() -> None:
    assert datas(decode(b"\xef", b"\xbb", b"\xbfdata: x\n\n")) == [b"x"]


def test_feed_returns_only_the_events_the_chunk_completes() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: b") == [SSEEvent(b"a")]
    assert decoder.feed(b"\n\n") == [SSEEvent(b"b")]


def test_empty_chunks_are_harmless() -> None:
    assert datas(decode(b"", b"data: a\r", b"", b"\n\n", b"")) == [b"a"]


# ---------------------------------------------------------------- properties

line_text = st.binary(max_size=12).map(lambda b: re.sub(rb"[\r\n]", b"", b))
field_line = st.one_of(
    line_text.map(lambda v: b"data: " + v),
    line_text.map(lambda v: b"data:" + v),
    st.just(b"data"),
    line_text.map(lambda v: b": " + v),
    st.sampled_from([b"event: ping", b"event: message", b"id: 3", b"retry: 10", b"retry: x", b"foo: bar"]),
    st.just(b""),
)
endings = st.sampled_from([b"\n", b"\r\n", b"\r"])


@st.composite
def streams_and_cuts(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    lines = draw(st.lists(st.tuples(field_line, endings), max_size=25))
    stream = b"".join(line + ending for line, ending in lines)
    if draw(st.booleans()):
        stream = b"\xef\xbb\xbf" + stream
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    return stream, cuts


@settings(max_examples=400, deadline=None)
@given(streams_and_cuts())
def test_any_chunking_matches_the_reference_algorithm(case: tuple[bytes, list[int]]) -> None:
    stream, cuts = case
    bounds = [0, *cuts, len(stream)]
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    assert decode(*chunks) == reference(stream)
