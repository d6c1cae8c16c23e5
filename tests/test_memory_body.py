"""A request body is encoded once, long answers a slice at a time, and freed with its round.

The memory of a long run (bench/bench_memory.py) depends on these: the answer so far
travels in every request, so a copy of it per request, or one that outlives its round,
multiplies the run's memory. The answer travels as the rounds' own strings
(:class:`~core.types.pieces.Pieces`), never joined. The bytes sent must still be exactly
what ``json.dumps`` gives of the joined string (compact, non-ASCII as is), with an honest
Content-Length, wherever the pieces are cut.
"""

from __future__ import annotations

import gc
import itertools
import json
import weakref
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from test_engine_support import finish, first_difference, run_all, spec_for

from core.continuation.ledger import Ledger
from core.continuation.planning import plan_round
from core.continuation.rounds import Plan
from core.continuation.strategies import STRATEGY_CLASSES, get_strategy
from core.demo import demo_document
from core.types import Round, RunResult, RunSpec
from core.types.pieces import Pieces, Text
from core.wire.body import LONG, SLICE, JSONBody, encode_body
from core.wire.client import Client, stream_payload
from core.wire.errors import ConfigError, ContinuumError

# every character JSON escapes or UTF-8 widens, around and across slice boundaries
SPECIALS = 'a"b\\c\nd\te\x01f\u00e9g\u2014h\U0001f600i\u2028 '
LONG_TEXT = (SPECIALS * (LONG // len(SPECIALS) + 2))[: LONG + 12_345]


class Watched(str):
    """A str that can be watched with a weak reference."""


def compact(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def body_with(answer: Text, model: str = "m", max_tokens: int = 8) -> dict[str, Any]:
    messages = [{"role": "user", "content": "Write about the sea"}, {"role": "assistant", "content": answer}]
    return {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0.5}


@pytest.fixture
def no_gc() -> Iterator[None]:
    """Only reference counting frees: what a reference cycle keeps stays."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_a_short_body_is_the_bytes_json_dumps_gives() -> None:
    body = body_with('Once upon a time \u2014 "quoted"\n')
    headers, content = encode_body(body)
    assert (headers, content) == ({"Content-Type": "application/json"}, compact(body))


def test_a_long_answer_is_encoded_a_slice_at_a_time_to_the_same_bytes() -> None:
    body = body_with(LONG_TEXT)
    headers, content = encode_body(body)
    assert isinstance(content, JSONBody)
    sent = b"".join(content)
    assert sent == compact(body) and headers["Content-Length"] == str(len(sent))


def test_a_long_body_can_be_sent_twice() -> None:  # httpx sends it again after a 307 or 308
    content = encode_body(body_with(LONG_TEXT))[1]
    assert isinstance(content, JSONBody) and b"".join(content) == b"".join(content)


def test_a_long_string_that_is_not_utf8_fails_before_sending_as_json_dumps_would() -> None:
    with pytest.raises(UnicodeEncodeError):
        encode_body(body_with(LONG_TEXT + "\ud800"))


def test_the_client_sends_a_long_answer_with_its_length_and_not_chunked() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(400, json={"error": {"message": "no"}})

    body = body_with(LONG_TEXT)
    client = Client("http://127.0.0.1:9/v1", transport=httpx.MockTransport(handler))
    with client, pytest.raises(ContinuumError):
        list(client.stream_chat(body))
    request = seen[0]
    assert request.read() == compact(stream_payload(body, True))
    assert request.headers["content-length"] == str(len(request.content))
    assert "transfer-encoding" not in request.headers
    assert request.headers["content-type"] == "application/json"


def test_a_long_body_is_sent_again_whole_after_a_307() -> None:
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.read())
        if len(seen) == 1:
            return httpx.Response(307, headers={"location": "http://127.0.0.1:9/v2/chat/completions"})
        return httpx.Response(400, json={"error": {"message": "no"}})

    body = body_with(LONG_TEXT)
    client = Client("http://127.0.0.1:9/v1", transport=httpx.MockTransport(handler))
    with client, pytest.raises(ContinuumError):
        list(client.stream_chat(body))
    assert seen == [compact(stream_payload(body, True))] * 2


def test_a_body_that_cannot_be_json_is_a_config_error() -> None:
    with Client("http://127.0.0.1:9/v1") as client, pytest.raises(ConfigError, match="JSON"):
        list(client.stream_chat(body_with(LONG_TEXT + "\udfff")))


def test_a_long_answer_reaches_the_demo_model_whole(demo_server: str) -> None:
    # the demo answers a prefill that is not its document with a new answer: any reply
    # at all means it read a body of exactly the length announced
    with Client(demo_server) as client:
        stream = client.stream_chat(body_with(LONG_TEXT, "demo-1m"))
        text = "".join(delta.content for delta in stream)
    assert text and stream.finish_reason in ("length", "stop")


def test_a_finished_streams_body_is_freed_at_once(demo_server: str, no_gc: None) -> None:
    answer = Watched(LONG_TEXT)
    watch = weakref.ref(answer)
    with Client(demo_server) as client:
        stream = client.stream_chat(body_with(answer, "demo-1m"))
        del answer
        assert "".join(delta.content for delta in stream)
        assert watch() is None, "the request body outlived its stream"


def test_a_broken_streams_body_is_freed_while_its_error_is_kept(demo_url: Any, no_gc: None) -> None:
    answer = Watched(LONG_TEXT)
    watch = weakref.ref(answer)
    with Client(demo_url(drop=3)) as client:
        stream = client.stream_chat(body_with(answer, "demo-1m", max_tokens=64))
        del answer
        with pytest.raises(ContinuumError) as caught:
            list(stream)
        assert caught.value.__cause__ is not None  # httpx's error, which holds the request
        assert watch() is None, "the request body outlived its stream through the error"


@pytest.mark.parametrize("strategy", list(STRATEGY_CLASSES))
def test_a_run_past_the_long_body_size_is_exact(demo_server: str, strategy: str) -> None:
    prompt = "Write 60000 tokens about the sea"  # ~370k characters: the last rounds' bodies are long
    spec = spec_for(demo_server, prompt, model="demo-1m", max_tokens=4096, strategy=strategy)
    done = finish(run_all(spec))
    want = demo_document(prompt, "demo-1m")
    assert len(want) > LONG
    assert done.result.text == want, first_difference(done.result.text, want)


# ------------------------------------------------------------------ the answer as pieces


def cut(text: str, at: list[int]) -> Pieces:
    bounds = [0, *sorted(at), len(text)]
    return Pieces(text[a:b] for a, b in itertools.pairwise(bounds))


@pytest.mark.parametrize("offset", range(len(SPECIALS)))  # a cut before and after every escape
def test_pieces_cut_anywhere_are_the_bytes_of_the_joined_answer(offset: int) -> None:
    cuts = [offset, offset + 1, SLICE - 1 + offset, SLICE + offset, LONG // 2 + offset, LONG + offset]
    headers, content = encode_body(body_with(cut(LONG_TEXT, cuts)))
    assert isinstance(content, JSONBody)
    sent = b"".join(content)
    assert sent == compact(body_with(LONG_TEXT)) and headers["Content-Length"] == str(len(sent))


def test_many_short_pieces_are_the_bytes_of_the_joined_answer() -> None:
    answer = cut(LONG_TEXT, list(range(7, len(LONG_TEXT), 7)))  # a piece per few characters, escapes split
    sent = b"".join(encode_body(body_with(answer))[1])
    assert sent == compact(body_with(LONG_TEXT))


@pytest.mark.parametrize("size", [SLICE - 1, SLICE, SLICE + 1, 2 * SLICE])
def test_pieces_at_the_slice_size_are_the_bytes_of_the_joined_answer(size: int) -> None:
    answer = cut(LONG_TEXT, list(range(size, len(LONG_TEXT), size)))
    assert b"".join(encode_body(body_with(answer))[1]) == compact(body_with(LONG_TEXT))


def test_a_short_answer_in_pieces_is_the_bytes_json_dumps_gives() -> None:
    answer = cut(SPECIALS * 3, [1, 2, 5, 17, 30])
    headers, content = encode_body(body_with(answer))
    assert (headers, content) == ({"Content-Type": "application/json"}, compact(body_with(SPECIALS * 3)))


def test_a_completions_prompt_is_the_template_then_the_pieces() -> None:
    spec = RunSpec(messages=[{"role": "user", "content": "Write about the sea"}], strategy="completions")
    answer = cut(LONG_TEXT, [3, SLICE])
    body = get_strategy("completions").build(spec, answer)[1]
    joined = get_strategy("completions").build(spec, LONG_TEXT)[1]
    assert isinstance(body["prompt"], Pieces) and b"".join(encode_body(body)[1]) == compact(joined)


def test_pieces_that_are_not_utf8_fail_before_sending_as_json_dumps_would() -> None:
    with pytest.raises(UnicodeEncodeError):
        encode_body(body_with(Pieces([LONG_TEXT, "\ud800"])))


def test_the_client_sends_pieces_with_their_length() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(400, json={"error": {"message": "no"}})

    client = Client("http://127.0.0.1:9/v1", transport=httpx.MockTransport(handler))
    with client, pytest.raises(ContinuumError):
        list(client.stream_chat(body_with(cut(LONG_TEXT, [10, SLICE + 3]))))
    assert seen[0].read() == compact(stream_payload(body_with(LONG_TEXT), True))
    assert seen[0].headers["content-length"] == str(len(seen[0].content))


def test_a_finished_streams_pieces_are_freed_at_once(demo_server: str, no_gc: None) -> None:
    piece = Watched(LONG_TEXT)
    watch = weakref.ref(piece)
    with Client(demo_server) as client:
        stream = client.stream_chat(body_with(Pieces([piece, "and more"]), "demo-1m"))
        del piece
        assert "".join(delta.content for delta in stream)
        assert watch() is None, "the request's pieces outlived its stream"


def test_the_next_request_carries_the_rounds_own_strings() -> None:
    spec = RunSpec(messages=[{"role": "user", "content": "Write about the sea"}], max_tokens=64)
    first, last = "The sea is wide " * 40, "and deep and cold"
    result = RunResult(
        spec, [Round(1, text=first, finish_reason="length"), Round(2, text=last, finish_reason="length")]
    )
    plan = plan_round(
        spec, result.rounds, get_strategy("prefill"), Ledger(spec, result),
        parts=result.text_parts(), reasoning="", think=None, check_seam=False,
    )  # fmt: skip
    assert isinstance(plan, Plan) and plan.body["messages"][-1]["content"] is plan.answer
    kept = result.rounds[1]
    assert kept.held_back == " cold" and plan.answer == first + "and deep and"
    assert plan.answer.pieces[0] is first and plan.answer.pieces[1] is kept.text  # no copy of the answer
