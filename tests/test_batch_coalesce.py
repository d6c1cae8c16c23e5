"""Coalescing chunks (core.services.batch.coalesce): the body h11 parses is unchanged, in fewer chunks."""

from __future__ import annotations

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.services.batch.coalesce import ChunkCoalescer

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunked(parts: list[bytes], trailers: bytes = b"") -> bytes:
    body = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in parts if p)
    return HEAD + body + b"0\r\n" + trailers + b"\r\n"


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True) if data[a:b]]


def parse(reads: list[bytes]) -> tuple[bytes, int, bool]:
    """Body, number of Data events and whether the message ended, as h11 (the parser under httpx) sees it."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="POST", target="/", headers=[("Host", "x"), ("Content-Length", "0")]))
    conn.send(h11.EndOfMessage())
    body, events, ended = b"", 0, False
    for data in [*reads, b""]:
        conn.receive_data(data)
        while True:
            event = conn.next_event()
            if event in (h11.NEED_DATA, h11.PAUSED) or isinstance(event, h11.ConnectionClosed):
                break
            if isinstance(event, h11.Data):
                body += event.data
                events += 1
            elif isinstance(event, h11.EndOfMessage):
                ended = True
        if ended:
            break
    return body, events, ended


def coalesced(reads: list[bytes]) -> list[bytes]:
    coalescer = ChunkCoalescer()
    coalescer.request_sent()
    out = [coalescer.feed(r) for r in reads]
    return [o for o in out if o] + [coalescer.flush()]


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.binary(min_size=0, max_size=40), max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
    trailers=st.sampled_from([b"", b"X-Trailer: 1\r\n"]),
)
def test_any_split_of_a_chunked_response_parses_to_the_same_body(
    parts: list[bytes], cuts: list[int], trailers: bytes
) -> None:
    raw = chunked(parts, trailers)
    reads = split(raw, cuts)
    body, events, ended = parse(coalesced(reads))
    assert (body, ended) == (b"".join(parts), True)
    assert events <= len(reads)  # at most one chunk per read


def test_a_read_holding_many_chunks_becomes_one_chunk() -> None:
    parts = [b'data: {"token": %d}\n\n' % i for i in range(12)]
    reads = coalesced([chunked(parts)])
    body, events, ended = parse(reads)
    assert (body, events, ended) == (b"".join(parts), 1, True)
    assert parse([chunked(parts)])[1] == 12  # what h11 would have handled without it


def test_a_response_with_content_length_passes_through_untouched() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    assert b"".join(coalesced([raw[:20], raw[20:]])) == raw


def test_an_informational_response_is_passed_and_the_real_head_followed() -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\n" + chunked([b"ab", b"cd"])
    assert parse(coalesced([raw]))[0] == b"abcd"


def test_each_response_on_a_kept_alive_connection_is_coalesced() -> None:
    coalescer = ChunkCoalescer()
    for text in (b"first", b"second"):
        coalescer.request_sent()
        out = coalescer.feed(chunked([text[:2], text[2:]]))
        assert parse([out])[:2] == (text, 1)


def test_a_malformed_chunk_reaches_the_parser_which_reports_it() -> None:
    raw = HEAD + b"3\r\nabc\r\nzz\r\nmore"
    with pytest.raises(h11.RemoteProtocolError):
        parse(coalesced([raw]))


def test_bytes_before_any_request_pass_through() -> None:
    assert ChunkCoalescer().feed(b"3\r\nabc\r\n") == b"3\r\nabc\r\n"


def test_an_incomplete_size_line_is_held_until_the_rest_arrives() -> None:
    coalescer = ChunkCoalescer()
    coalescer.request_sent()
    assert coalescer.feed(HEAD + b"1") == HEAD
    assert coalescer.feed(b"0\r\n" + b"x" * 16 + b"\r\n") == b"10\r\n" + b"x" * 16 + b"\r\n"
