"""Properties of the chunk -> JSON -> StreamDelta layer (core.wire.stream over core.wire.sse).

Byte-level: the body comes from an httpx.MockTransport handler, cut at
arbitrary offsets. Well-formed completions give the same deltas however they
are cut; fuzzed bodies and fuzzed JSON give typed deltas or a ContinuumError,
never another exception.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import httpx
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core.types import StreamDelta, Usage
from core.wire.client import Client
from core.wire.errors import ContinuumError

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Pieces(httpx.SyncByteStream):
    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    def __iter__(self) -> Iterator[bytes]:
        yield from self.pieces


class Server:
    """One handler for a whole property: it answers with the pieces set last."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.client = Client("http://model.test/v1", transport=httpx.MockTransport(self.handle))

    def handle(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Pieces(self.pieces))

    def stream(self, pieces: list[bytes]) -> tuple[list[StreamDelta], ContinuumError | None]:
        self.pieces = pieces
        deltas: list[StreamDelta] = []
        try:
            for delta in self.client.stream_chat({"model": "m", "messages": []}):
                deltas.append(delta)
        except ContinuumError as exc:
            assert str(exc)  # a readable message
            return deltas, exc
        return deltas, None


SERVER = Server()


def split(body: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(min(cut, len(body)) for cut in cuts), len(body)]
    return [body[a:b] for a, b in itertools.pairwise(bounds)]


def well_typed(delta: StreamDelta) -> bool:
    usage = delta.usage
    return (
        type(delta.content) is str
        and type(delta.reasoning) is str
        and (delta.finish_reason is None or type(delta.finish_reason) is str)
        # counts as sent, negative ones too: the engine refuses impossible usage (budget.implausible_usage)
        and (usage is None or all(type(n) is int for n in vars(usage).values()))
    )


def encodable(delta: StreamDelta) -> bool:
    try:
        (delta.content + delta.reasoning).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# ---------------------------------------------------------------- well-formed streams


@st.composite
def completions(draw: st.DrawFn) -> tuple[bytes, list[StreamDelta]]:
    """A well-formed streamed completion and the deltas it must give."""
    ending = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    ascii_only = draw(st.booleans())
    parts = draw(st.lists(st.tuples(st.text(max_size=12), st.text(max_size=4)), max_size=12))
    finish = draw(st.sampled_from(["stop", "length"]))
    usage = draw(st.one_of(st.none(), st.tuples(*[st.integers(0, 10**6)] * 3)))
    lines, expected = [], []
    for content, reasoning in parts:
        if draw(st.booleans()):
            lines.append(": keep-alive")
        delta: dict[str, Any] = {"content": content}
        if reasoning:
            delta["reasoning_content"] = reasoning
        lines.append(
            "data: "
            + json.dumps({"choices": [{"delta": delta, "finish_reason": None}]}, ensure_ascii=ascii_only)
        )
        if content or reasoning:
            expected.append(StreamDelta(content, reasoning))
    lines.append("data: " + json.dumps({"choices": [{"delta": {}, "finish_reason": finish}]}))
    expected.append(StreamDelta("", "", finish))
    if usage is not None:
        prompt, completion, cached = usage
        body = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        }
        lines.append("data: " + json.dumps({"choices": [], "usage": body}))
        expected.append(StreamDelta("", "", None, Usage(prompt, completion, cached, 0)))
    if draw(st.booleans()):
        lines.append("data: [DONE]")
    raw = "".join(line + ending + ending for line in lines).encode()
    return raw, expected


@PROPS
@given(completions(), st.lists(st.integers(0, 10**4), max_size=12))
def test_a_well_formed_completion_gives_the_same_deltas_however_it_is_cut(
    case: tuple[bytes, list[StreamDelta]], cuts: list[int]
) -> None:
    body, expected = case
    assert SERVER.stream([body]) == (expected, None)
    assert SERVER.stream(split(body, cuts)) == (expected, None)


# ---------------------------------------------------------------- fuzzed bodies

SSE_TOKENS = (
    b"data: ",
    b"data:",
    b": ping",
    b"event: ",
    b"\n",
    b"\r",
    b"\r\n",
    b"\n\n",
    b"\xef\xbb\xbf",
    b"\xff",
    b"\x00",
)
JSON_TOKENS = (
    b"{",
    b"}",
    b"[",
    b"]",
    b'"',
    b":",
    b",",
    b"null",
    b"1e999",
    b"-0",
    b'"\\ud800"',
    b"[DONE]",
    b" ",
)
body_bytes = st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(st.sampled_from(SSE_TOKENS + JSON_TOKENS), st.binary(max_size=6)), max_size=80).map(
        b"".join
    ),
)


@PROPS
@given(body_bytes, st.lists(st.integers(0, 400), max_size=8))
@example(b"data: \xff\xfe\n\n", [7])  # not UTF-8
@example(b"data: {}\x00\n\n", [])  # NUL after the JSON
def test_any_body_gives_typed_deltas_or_a_clear_error(body: bytes, cuts: list[int]) -> None:
    deltas, _ = SERVER.stream(split(body, cuts))
    assert all(map(well_typed, deltas))


# ---------------------------------------------------------------- fuzzed JSON shapes

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**20), 10**20),
        st.floats(allow_nan=False),
        st.text(max_size=6),
        st.sampled_from(["\ud83d", "²", "1" * 5000, "stop"]),
    ),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def odd_chunks(draw: st.DrawFn) -> dict[str, Any]:
    """A chunk in the OpenAI shape with one part replaced by an arbitrary JSON value."""
    x = draw(json_values)
    return draw(
        st.sampled_from(
            [
                {"choices": x},
                {"choices": [x]},
                {"choices": [{"delta": x}]},
                {"choices": [{"delta": {"content": x}}]},
                {"choices": [{"delta": {"content": "a", "reasoning_content": x}}]},
                {"choices": [{"text": x}]},
                {"choices": [{"delta": {}, "finish_reason": x}]},
                {"choices": [], "usage": x},
                {"choices": [], "usage": {"prompt_tokens": x, "completion_tokens": 3}},
                {"choices": [], "usage": {"prompt_tokens_details": x}},
                {"choices": [], "usage": {"completion_tokens_details": {"reasoning_tokens": x}}},
                {"error": x},
                {"error": {"message": x, "code": x}},
                {"error": {"message": "overloaded", "code": x}},
            ]
        )
    )


@settings(PROPS)
@given(st.lists(odd_chunks().map(lambda chunk: json.dumps(chunk).encode()), min_size=1, max_size=3))
@example([b'{"choices": {"0": "a"}}'])
@example([b'{"choices": [{"delta": {"content": 5}}]}'])
@example(
    [b'{"choices": [{"delta": {"content": "\\ud83d"}}]}', b'{"choices": [{"delta": {"content": "\\ude00"}}]}']
)
@example([b'{"choices": [], "usage": {"prompt_tokens": "many"}}'])
@example([b'{"error": {"message": "m", "code": "\\u00b2"}}'])
@example([b"[" * 100_000])  # nested too deep for the JSON parser
def test_any_json_chunk_gives_typed_deltas_or_a_clear_error(chunks: list[bytes]) -> None:
    body = b"".join(b"data: " + chunk + b"\n\n" for chunk in chunks) + b"data: [DONE]\n\n"
    deltas, _ = SERVER.stream([body])
    assert all(map(well_typed, deltas))
    assert encodable(StreamDelta("".join(d.content for d in deltas), "".join(d.reasoning for d in deltas)))
