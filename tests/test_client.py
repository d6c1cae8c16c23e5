"""core.wire.client: requests, streams of deltas, error mapping, abort, model lists.

Byte-level cases use httpx.MockTransport with handler functions; behaviour
against a real server uses the demo model on loopback (demo_server / demo_url).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from core.demo import count_tokens, demo_document
from core.types import Prices, StreamDelta, Usage
from core.wire.client import Client, ModelInfo, Stream, Timeouts
from core.wire.errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    CancelledError,
    ConfigError,
    ConnectError,
    ConnectTimeoutError,
    ContextOverflowError,
    ContinuumError,
    IdleTimeoutError,
    MalformedStreamError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    RoundTimeoutError,
    ServerError,
    StreamInterrupted,
    UnexpectedResponseError,
    ValidationError,
)

Handler = Callable[[httpx.Request], httpx.Response]
BASE = "http://model.test/v1"
BODY: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


# ---------------------------------------------------------------- helpers


def chunk(content: str | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    delta.update(extra.pop("delta", {}))
    return {
        "object": "chat.completion.chunk",
        "choices": [{"delta": delta, "finish_reason": finish}],
        **extra,
    }


def sse(*events: dict[str, Any] | str | bytes) -> bytes:
    """dicts become `data: <json>` events; str/bytes are sent verbatim."""
    out = b""
    for event in events:
        if isinstance(event, dict):
            out += b"data: " + json.dumps(event).encode() + b"\n\n"
        else:
            out += event.encode() if isinstance(event, str) else event
    return out


DONE = "data: [DONE]\n\n"


class Pieces(httpx.SyncByteStream):
    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    def __iter__(self) -> Iterator[bytes]:
        yield from self.pieces


def reply(
    body: bytes | dict[str, Any] | str,
    status: int = 200,
    content_type: str | None = "text/event-stream",
    headers: dict[str, str] | None = None,
    pieces: int | None = None,
) -> Handler:
    """A handler answering every request with the same response."""
    if isinstance(body, dict):
        raw = json.dumps(body).encode()
    elif isinstance(body, str):
        raw = body.encode()
    else:
        raw = body
    all_headers = dict(headers or {})
    if content_type:
        all_headers["content-type"] = content_type

    def handler(request: httpx.Request) -> httpx.Response:
        if pieces:
            parts = [raw[i : i + pieces] for i in range(0, len(raw), pieces)]
            return httpx.Response(status, headers=all_headers, stream=Pieces(parts))
        return httpx.Response(status, headers=all_headers, content=raw)

    return handler


def client(handler: Handler, api_key: str | None = None, **kw: Any) -> Client:
    return Client(BASE, api_key, transport=httpx.MockTransport(handler), **kw)


def collect(stream: Stream) -> tuple[list[StreamDelta], ContinuumError | None]:
    deltas: list[StreamDelta] = []
    try:
        for delta in stream:
            deltas.append(delta)
    except ContinuumError as exc:
        return deltas, exc
    return deltas, None


def text(deltas: list[StreamDelta]) -> str:
    return "".join(d.content for d in deltas)


def recorder() -> tuple[list[httpx.Request], Handler]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=sse(chunk("x", "stop"))
        )

    return seen, handler


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


# ---------------------------------------------------------------- requests


def test_stream_chat_posts_to_chat_completions_forcing_stream_and_usage() -> None:
    seen, handler = recorder()
    list(client(handler).stream_chat({**BODY, "stream_options": {"x": 1}}))
    sent = json.loads(seen[0].content)
    assert (seen[0].method, str(seen[0].url), sent["stream"], sent["stream_options"]) == (
        "POST",
        f"{BASE}/chat/completions",
        True,
        {"x": 1, "include_usage": True},
    )


def test_stream_completion_posts_to_completions() -> None:
    seen, handler = recorder()
    list(client(handler).stream_completion({"model": "m", "prompt": "p"}))
    assert str(seen[0].url) == f"{BASE}/completions"


def test_bearer_authorization_only_when_a_key_is_given() -> None:
    seen, handler = recorder()
    list(client(handler, "sk-1").stream_chat(BODY))
    list(client(handler).stream_chat(BODY))
    assert [r.headers.get("authorization") for r in seen] == ["Bearer sk-1", None]


def test_user_agent_and_extra_headers_are_sent() -> None:
    seen, handler = recorder()
    list(client(handler, headers={"X-Title": "Continuum"}).stream_chat(BODY))
    assert (seen[0].headers["user-agent"], seen[0].headers["x-title"]) == ("continuum/0.1", "Continuum")


def test_base_url_trailing_slash_and_endpoint_suffix_are_normalised() -> None:
    assert (
        Client("http://h:1/v1/").base_url
        == Client("http://h:1/v1/chat/completions").base_url
        == "http://h:1/v1"
    )


@pytest.mark.parametrize(
    "url", ["", "localhost:8000/v1", "ftp://h/v1", "http://exa mple.com/v1", "http:///v1"]
)
def test_base_url_without_http_scheme_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        Client(url)


def test_api_key_with_a_line_break_is_a_config_error_without_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        Client(BASE, "sk-abc\ndef")
    assert "sk-abc" not in str(info.value)


# ---------------------------------------------------------------- decoding


def test_content_deltas_arrive_in_order_with_the_finish_reason() -> None:
    body = sse(chunk("", delta={"role": "assistant"}), chunk("Hel"), chunk("lo"), chunk(None, "length"), DONE)
    stream = client(reply(body)).stream_chat(BODY)
    deltas, error = collect(stream)
    assert (text(deltas), deltas[-1].finish_reason, stream.finish_reason, stream.done, error) == (
        "Hello",
        "length",
        "length",
        True,
        None,
    )


def test_reasoning_content_and_reasoning_fields_become_reasoning() -> None:
    body = sse(
        chunk(delta={"reasoning_content": "think "}), chunk(delta={"reasoning": "more"}), chunk("A", "stop")
    )
    deltas, _ = collect(client(reply(body)).stream_chat(BODY))
    assert ("".join(d.reasoning for d in deltas), text(deltas)) == ("think more", "A")


def test_completions_text_field_becomes_content() -> None:
    body = sse({"choices": [{"text": "one "}]}, {"choices": [{"text": "two", "finish_reason": "stop"}]}, DONE)
    deltas, _ = collect(client(reply(body)).stream_completion({"model": "m", "prompt": "p"}))
    assert text(deltas) == "one two"


def test_usage_only_chunk_with_empty_choices_is_kept() -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 2,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 1},
    }
    body = sse(chunk("ok", "stop"), {"choices": [], "usage": usage}, DONE)
    stream = client(reply(body)).stream_chat(BODY)
    deltas, _ = collect(stream)
    assert deltas[-1].usage == stream.usage == Usage(10, 2, 4, 1)


def test_the_last_non_null_usage_wins() -> None:
    body = sse(
        chunk("a", usage={"prompt_tokens": 5, "completion_tokens": 1}),
        chunk("b", "stop", usage=None),
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}},
        DONE,
    )
    stream = client(reply(body)).stream_chat(BODY)
    collect(stream)
    assert stream.usage == Usage(5, 2)


def test_deltas_are_the_same_whatever_the_network_chunking() -> None:
    body = sse(chunk("caf\u00e9 "), chunk("\U0001f642"), ": keep-alive\r\n\r\n", chunk(None, "stop"), DONE)
    body = body.replace(b"\n\n", b"\r\n\r\n")
    whole, _ = collect(client(reply(body)).stream_chat(BODY))
    for size in (1, 2, 3, 7):
        deltas, error = collect(client(reply(body, pieces=size)).stream_chat(BODY))
        assert (deltas, error) == (whole, None)
    assert text(whole) == "caf\u00e9 \U0001f642"


def test_keep_alive_comments_are_counted() -> None:
    stream = client(reply(sse(": keep-alive\n\n", ": ping\n\n", chunk("x", "stop")))).stream_chat(BODY)
    collect(stream)
    assert stream.comments == 2


def test_sse_without_a_content_type_is_accepted_when_it_looks_like_sse() -> None:
    deltas, error = collect(client(reply(sse(chunk("x", "stop")), content_type=None)).stream_chat(BODY))
    assert (text(deltas), error) == ("x", None)


def test_stream_ending_with_a_finish_reason_but_no_done_ends_normally() -> None:
    stream = client(reply(sse(chunk("x", "stop")))).stream_chat(BODY)
    deltas, error = collect(stream)
    assert (text(deltas), error, stream.done) == ("x", None, False)


def test_done_without_a_trailing_blank_line_still_ends_the_stream() -> None:
    deltas, error = collect(client(reply(sse(chunk("x")) + b"data: [DONE]\n")).stream_chat(BODY))
    assert (text(deltas), error) == ("x", None)


# ---------------------------------------------------------------- stream failures


def test_stream_ending_without_done_or_finish_reason_is_interrupted_after_its_deltas() -> None:
    deltas, error = collect(client(reply(sse(chunk("par"), chunk("tial")))).stream_chat(BODY))
    assert (text(deltas), type(error), error and error.retryable) == ("partial", StreamInterrupted, True)


def test_a_cut_json_line_at_the_end_is_an_interruption_not_a_malformed_chunk() -> None:
    deltas, error = collect(client(reply(sse(chunk("a")) + b'data: {"choi')).stream_chat(BODY))
    assert (text(deltas), type(error)) == ("a", StreamInterrupted)


def test_error_object_mid_stream_raises_a_status_error_after_earlier_deltas() -> None:
    body = sse(chunk("kept"), {"error": {"message": "upstream overloaded", "code": 503}}, DONE)
    deltas, error = collect(client(reply(body)).stream_chat(BODY))
    assert (text(deltas), type(error), error and error.status) == ("kept", ServerError, 503)


def test_overflow_message_mid_stream_is_a_context_overflow() -> None:
    msg = "Requested tokens (9000) exceed context window of 8192"
    _, error = collect(client(reply(sse(chunk("a"), {"error": {"message": msg}}))).stream_chat(BODY))
    assert isinstance(error, ContextOverflowError) and error.context_length == 8192


def test_named_error_event_is_raised() -> None:
    body = sse(chunk("a"), 'event: error\ndata: {"error": {"message": "quota", "code": 429}}\n\n')
    _, error = collect(client(reply(body)).stream_chat(BODY))
    assert isinstance(error, RateLimitError)


def test_other_named_events_are_ignored() -> None:
    body = sse("event: ping\ndata: {}\n\n", chunk("x", "stop"), DONE)
    deltas, error = collect(client(reply(body)).stream_chat(BODY))
    assert (text(deltas), error) == ("x", None)


def test_chunk_that_is_not_json_is_malformed() -> None:
    deltas, error = collect(client(reply(sse(chunk("a"), "data: {not json\n\n", DONE))).stream_chat(BODY))
    assert (text(deltas), type(error)) == ("a", MalformedStreamError)
    assert "{not json" in str(error)


def test_json_that_is_not_an_object_is_malformed() -> None:
    _, error = collect(client(reply(sse("data: [1, 2]\n\n"))).stream_chat(BODY))
    assert isinstance(error, MalformedStreamError)


def test_non_utf8_bytes_in_a_chunk_are_malformed_not_a_crash() -> None:
    body = sse(chunk("a")) + b'data: {"choices": [{"delta": {"content": "\xff\xfe"}}]}\n\n'
    _, error = collect(client(reply(body)).stream_chat(BODY))
    assert isinstance(error, MalformedStreamError) and "utf-8" in str(error).lower()


# ---------------------------------------------------------------- non-SSE answers


def test_html_page_is_an_unexpected_response_naming_type_url_and_first_bytes() -> None:
    page = "<html><body><h1>Welcome to nginx!</h1></body></html>"
    _, error = collect(client(reply(page, content_type="text/html; charset=utf-8")).stream_chat(BODY))
    assert isinstance(error, UnexpectedResponseError)
    assert "'text/html'" in str(error) and f"{BASE}/chat/completions" in str(error)
    assert "<html><body>" in str(error) and "/v1" in error.hint  # type: ignore[operator]


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (402, PaymentRequiredError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (422, ValidationError),
        (429, RateLimitError),
        (500, ServerError),
        (503, ServerError),
    ],
)
def test_json_error_body_maps_each_status(status: int, cls: type) -> None:
    body = {"error": {"message": "provider says no", "type": "x", "code": None}}
    handler = reply(body, status, "application/json", {"x-request-id": "req-7"})
    _, error = collect(client(handler).stream_chat(BODY))
    assert isinstance(error, APIStatusError)
    assert (type(error), error.status, error.provider_message, error.request_id) == (
        cls,
        status,
        "provider says no",
        "req-7",
    )


def test_detail_and_plain_text_error_bodies_give_the_provider_message() -> None:
    _, detail = collect(client(reply({"detail": "bad field"}, 422, "application/json")).stream_chat(BODY))
    _, plain = collect(client(reply("Service Unavailable", 503, "text/plain")).stream_chat(BODY))
    assert (detail.provider_message, plain.provider_message) == ("bad field", "Service Unavailable")  # type: ignore[union-attr]


def test_rate_limit_reads_retry_after_ms() -> None:
    handler = reply({"error": {"message": "slow"}}, 429, "application/json", {"retry-after-ms": "1500"})
    _, error = collect(client(handler).stream_chat(BODY))
    assert isinstance(error, RateLimitError) and error.retry_after == 1.5


def test_json_error_object_with_status_200_is_a_status_error() -> None:
    handler = reply({"error": {"message": "model overloaded", "code": 503}}, 200, "application/json")
    _, error = collect(client(handler).stream_chat(BODY))
    assert isinstance(error, ServerError)


def test_complete_json_answer_from_a_server_that_ignored_stream_is_one_delta() -> None:
    answer = {
        "choices": [{"message": {"role": "assistant", "content": "whole"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }
    deltas, error = collect(client(reply(answer, content_type="application/json")).stream_chat(BODY))
    assert (deltas, error) == ([StreamDelta("whole", "", "stop", Usage(3, 1))], None)


# ---------------------------------------------------------------- transport failures


def test_redirects_are_followed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/v1/"):
            return httpx.Response(307, headers={"location": "http://model.test/v2/chat/completions"})
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=sse(chunk("x", "stop"))
        )

    deltas, error = collect(client(handler).stream_chat(BODY))
    assert (text(deltas), error) == ("x", None)


def test_redirect_loop_is_a_connect_error_about_redirects() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": str(request.url)})

    _, error = collect(client(handler).stream_chat(BODY))
    assert isinstance(error, ConnectError) and "Too many redirects" in str(error)


def test_connect_timeout_is_a_connect_timeout_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    _, error = collect(client(handler, timeouts=Timeouts(connect=3)).stream_chat(BODY))
    assert isinstance(error, ConnectTimeoutError) and "within 3 s" in str(error) and error.retryable


def test_unknown_host_names_the_host() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except socket.gaierror as exc:
            raise httpx.ConnectError("[Errno -2] Name or service not known", request=request) from exc

    _, error = collect(client(handler).stream_chat(BODY))
    assert isinstance(error, ConnectError) and "'model.test' could not be resolved" in str(error)


def test_connection_refused_says_to_check_the_server_and_base_url() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _, error = collect(Client(f"http://127.0.0.1:{port}/v1").stream_chat(BODY))
    assert str(error) == (
        f"Could not connect to http://127.0.0.1:{port}/v1/chat/completions: connection refused. "
        "Is the server running? Check the base URL."
    )


def test_https_to_a_plain_http_server_is_a_tls_connect_error(demo_server: str) -> None:
    _, error = collect(Client(demo_server.replace("http://", "https://")).stream_chat(BODY))
    assert isinstance(error, ConnectError) and "TLS" in str(error) and "http://" in str(error)


# ---------------------------------------------------------------- abort and close


def test_abort_before_iterating_raises_cancelled() -> None:
    stream = client(reply(sse(chunk("x", "stop")))).stream_chat(BODY)
    stream.abort()
    _, error = collect(stream)
    assert isinstance(error, CancelledError)


def test_close_ends_iteration_and_can_be_repeated() -> None:
    stream = client(reply(sse(chunk("a"), chunk("b", "stop")))).stream_chat(BODY)
    next(stream)
    stream.close()
    stream.close()
    assert list(stream) == []


def iterate_in_thread(stream: Stream) -> tuple[threading.Thread, list[BaseException]]:
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            for _ in stream:
                pass
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_abort_unblocks_a_read_on_a_silent_server(demo_url: Callable[..., str]) -> None:
    stream = Client(demo_url(silent=60)).stream_chat(
        {"model": "demo", "messages": [{"role": "user", "content": "x"}]}
    )
    thread, outcome = iterate_in_thread(stream)
    wait_for(lambda: stream.status_code is not None)
    stream.abort()
    thread.join(timeout=5)
    assert not thread.is_alive() and [type(e) for e in outcome] == [CancelledError]


def test_abort_unblocks_a_stream_of_keep_alives(demo_url: Callable[..., str]) -> None:
    stream = Client(demo_url(stall=60)).stream_chat(
        {"model": "demo", "messages": [{"role": "user", "content": "x"}]}
    )
    thread, outcome = iterate_in_thread(stream)
    wait_for(lambda: stream.comments > 0)
    stream.abort()
    thread.join(timeout=5)
    assert not thread.is_alive() and [type(e) for e in outcome] == [CancelledError]


def test_abort_unblocks_a_server_that_never_sends_headers() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        stream = Client(f"http://127.0.0.1:{port}/v1").stream_chat(BODY)
        thread, outcome = iterate_in_thread(stream)
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)  # the request arrived; answer nothing
            stream.abort()
            thread.join(timeout=5)
    assert not thread.is_alive() and [type(e) for e in outcome] == [CancelledError]


def test_silence_past_the_idle_timeout_is_an_idle_timeout(demo_url: Callable[..., str]) -> None:
    c = Client(demo_url(silent=30), timeouts=Timeouts(idle=0.3))
    _, error = collect(c.stream_chat({"model": "demo", "messages": [{"role": "user", "content": "x"}]}))
    assert isinstance(error, IdleTimeoutError) and error.retryable


def test_keep_alive_comments_count_as_activity_for_the_idle_timeout(demo_url: Callable[..., str]) -> None:
    c = Client(demo_url(stall=2.5), timeouts=Timeouts(idle=1.5))
    stream = c.stream_chat({"model": "demo", "messages": [{"role": "user", "content": "Write 5 tokens"}]})
    deltas, error = collect(stream)
    assert (error, stream.comments > 1, len(deltas) > 0) == (None, True, True)


def test_a_round_past_the_round_ceiling_is_a_round_timeout(demo_url: Callable[..., str]) -> None:
    c = Client(demo_url(stall=30), timeouts=Timeouts(idle=5, round=0.5))
    _, error = collect(c.stream_chat({"model": "demo", "messages": [{"role": "user", "content": "x"}]}))
    assert isinstance(error, RoundTimeoutError) and error.retryable


# ---------------------------------------------------------------- chat and models


def test_chat_returns_the_response_object_without_streaming() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"choices": [{"message": {"content": "hi"}}]})

    result = client(handler).chat({**BODY, "stream": True, "stream_options": {"include_usage": True}})
    assert (result["choices"][0]["message"]["content"], seen[0]["stream"], "stream_options" in seen[0]) == (
        "hi",
        False,
        False,
    )


def test_chat_maps_error_statuses() -> None:
    with pytest.raises(AuthenticationError):
        client(reply({"error": {"message": "no"}}, 401, "application/json")).chat(BODY)


def test_chat_with_a_non_json_answer_is_an_unexpected_response() -> None:
    with pytest.raises(UnexpectedResponseError):
        client(reply("<html>login</html>", 200, "text/html")).chat(BODY)


def test_list_models_reads_deepinfra_metadata() -> None:
    models = {
        "data": [
            {
                "id": "meta/llama",
                "owned_by": "meta",
                "metadata": {
                    "context_length": 131072,
                    "max_tokens": 16384,
                    "pricing": {"input_tokens": 0.2, "output_tokens": 0.6, "cache_read_tokens": 0.1},
                },
            },
            {"id": "bare", "metadata": None},
        ]
    }
    seen, handler = [], reply(models, content_type="application/json")

    def spy(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return handler(request)

    assert client(spy).list_models() == [
        ModelInfo("meta/llama", 131072, 16384, Prices(0.2, 0.6, 0.1), "meta"),
        ModelInfo("bare"),
    ]
    assert seen == [f"{BASE}/models?filter=with_meta"]


def test_list_models_falls_back_to_the_plain_list_when_the_filter_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("filter"):
            return httpx.Response(404, json={"error": {"message": "unknown filter"}})
        return httpx.Response(200, json={"data": [{"id": "a", "max_model_len": 4096}]})

    assert client(handler).list_models() == [ModelInfo("a", context_length=4096)]


def test_list_models_converts_openrouter_prices_per_token_to_per_million() -> None:
    entry = {
        "id": "x/y",
        "context_length": 200000,
        "top_provider": {"max_completion_tokens": 8192},
        "pricing": {"prompt": "0.000003", "completion": "0.000015", "input_cache_read": "0.0000003"},
    }
    (model,) = client(reply({"data": [entry]}, content_type="application/json")).list_models(with_meta=False)
    assert model == ModelInfo("x/y", 200000, 8192, Prices(3.0, 15.0, 0.3))


# ---------------------------------------------------------------- secrets

SENTINEL = "sk-SENTINEL-0123456789abcdef"


def echo_key(request: httpx.Request) -> str:
    return f"key was {request.headers.get('authorization')} / {SENTINEL}"


def _status(status: int) -> Handler:
    return lambda r: httpx.Response(status, json={"error": {"message": echo_key(r), "code": SENTINEL}})


def _raise_connect(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError(f"refused by proxy for {echo_key(request)}", request=request)


def _raise_read(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadError(echo_key(request), request=request)


KEY_SCENARIOS: dict[str, Handler] = {
    **{f"status {s}": _status(s) for s in (400, 401, 402, 403, 404, 408, 409, 418, 422, 429, 500, 502, 503)},
    "overflow 400": lambda r: httpx.Response(
        400,
        json={"error": {"message": f"Requested tokens (9000) exceed context window of 8192 {echo_key(r)}"}},
    ),
    "plain text 500": lambda r: httpx.Response(500, text=echo_key(r)),
    "html page": lambda r: httpx.Response(200, headers={"content-type": "text/html"}, text=echo_key(r)),
    "json 200 error": lambda r: httpx.Response(200, json={"error": {"message": echo_key(r)}}),
    "mid-stream error": lambda r: httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=sse({"error": {"message": echo_key(r)}})
    ),
    "malformed chunk": lambda r: httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=sse(f"data: {{{echo_key(r)}\n\n")
    ),
    "connect error": _raise_connect,
    "read error": _raise_read,
}


@pytest.mark.parametrize("scenario", list(KEY_SCENARIOS))
def test_the_api_key_never_appears_in_any_error(scenario: str) -> None:
    c = client(KEY_SCENARIOS[scenario], SENTINEL, key_hint="set DEEPINFRA_API_KEY or paste a key in Settings")
    _, stream_error = collect(c.stream_chat(BODY))
    with pytest.raises(ContinuumError) as chat_error:
        c.chat(BODY)
    for error in (stream_error, chat_error.value):
        assert error is not None
        shown = repr((str(error), error.args, error.to_info(), vars(error)))
        assert SENTINEL not in shown, scenario


def test_the_api_key_never_appears_in_model_list_errors() -> None:
    with pytest.raises(ContinuumError) as info:
        client(_status(401), SENTINEL).list_models()
    assert SENTINEL not in repr((str(info.value), info.value.to_info(), vars(info.value)))


# ---------------------------------------------------------------- against the demo model


def ask(prompt: str, model: str = "demo", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": prompt}], **extra}


def test_demo_stream_gives_the_whole_document_with_usage(demo_server: str) -> None:
    prompt = "Write 3000 tokens about lighthouses"
    stream = Client(demo_server).stream_chat(ask(prompt, "demo-32k", max_tokens=4096))
    deltas, error = collect(stream)
    assert (text(deltas), error, stream.finish_reason, stream.done) == (
        demo_document(prompt, "demo-32k"),
        None,
        "stop",
        True,
    )
    assert stream.usage is not None and stream.usage.completion_tokens == 3000


def test_demo_max_tokens_cut_ends_with_length(demo_server: str) -> None:
    stream = Client(demo_server).stream_chat(ask("Write 500 tokens", max_tokens=20))
    collect(stream)
    assert (stream.finish_reason, stream.usage and stream.usage.completion_tokens) == ("length", 20)


@pytest.mark.parametrize("usage", ["final", "separate"])
def test_demo_usage_shapes_are_both_read(demo_url: Callable[..., str], usage: str) -> None:
    stream = Client(demo_url(usage=usage)).stream_chat(ask("Write 50 tokens"))
    collect(stream)
    assert stream.usage is not None and stream.usage.completion_tokens == 50


def test_demo_without_usage_leaves_usage_none(demo_url: Callable[..., str]) -> None:
    stream = Client(demo_url(usage="absent")).stream_chat(ask("Write 50 tokens"))
    deltas, error = collect(stream)
    assert (stream.usage, error, len(deltas) > 0) == (None, None, True)


@pytest.mark.parametrize("shape", ["field", "reasoning"])
def test_demo_reasoner_reasoning_arrives_apart_from_content(demo_url: Callable[..., str], shape: str) -> None:
    from core.demo import demo_reasoning

    prompt = "Write 40 tokens about owls"
    deltas, _ = collect(Client(demo_url(reasoning=shape)).stream_chat(ask(prompt, "demo-reasoner")))
    assert ("".join(d.reasoning for d in deltas), text(deltas)) == (
        demo_reasoning(prompt),
        demo_document(prompt, "demo-reasoner"),
    )


def test_demo_completions_endpoint_streams_text(demo_server: str) -> None:
    prompt = "Write 60 tokens about rivers"
    rendered = f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"
    deltas, error = collect(Client(demo_server).stream_completion({"model": "demo", "prompt": rendered}))
    assert (text(deltas), error) == (demo_document(prompt), None)


def test_demo_two_prefill_rounds_on_one_client_reproduce_the_document(demo_server: str) -> None:
    prompt = "Write 300 tokens about bridges"
    c = Client(demo_server)
    first = text(collect(c.stream_chat(ask(prompt, max_tokens=120)))[0])
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": first}]
    second = text(collect(c.stream_chat({"model": "demo", "messages": messages}))[0])
    assert first + second == demo_document(prompt)


def test_demo_stream_closed_early_leaves_the_client_usable(demo_server: str) -> None:
    c = Client(demo_server)
    with c.stream_chat(ask("Write 2000 tokens")) as stream:
        next(stream)
    deltas, error = collect(c.stream_chat(ask("Write 10 tokens")))
    assert (error, len(text(deltas)) > 0) == (None, True)


def test_demo_deepinfra_path_shape_works(demo_server: str) -> None:
    deltas, error = collect(Client(demo_server + "/openai").stream_chat(ask("Write 10 tokens")))
    assert (error, text(deltas)) == (None, demo_document("Write 10 tokens"))


LONG_PROMPT = "Write 100 tokens. " + "filler " * 6000


@pytest.mark.parametrize("wording", ["vllm", "deepinfra", "openrouter", "llamacpp"])
def test_demo_overflow_wordings_become_context_overflow_with_a_fitting_max_tokens(
    demo_url: Callable[..., str], wording: str
) -> None:
    prompt_tokens = count_tokens(LONG_PROMPT) + 4
    _, error = collect(Client(demo_url(overflow=wording)).stream_chat(ask(LONG_PROMPT, max_tokens=4000)))
    assert isinstance(error, ContextOverflowError)
    assert (error.context_length, error.fitting_max_tokens(4000)) == (8192, 8192 - prompt_tokens)


def test_demo_wrong_key_is_rejected_with_the_key_hint(demo_url: Callable[..., str]) -> None:
    c = Client(demo_url(auth="key"), SENTINEL, key_hint="set DEMO_KEY or paste a key in Settings")
    _, error = collect(c.stream_chat(ask("x")))
    assert isinstance(error, AuthenticationError) and str(error).endswith(
        "Check the key that was sent: set DEMO_KEY or paste a key in Settings."
    )
    assert SENTINEL not in repr((str(error), error.to_info(), vars(error)))


def test_demo_empty_balance_key_is_payment_required(demo_url: Callable[..., str]) -> None:
    _, error = collect(Client(demo_url(auth="key"), "demo-empty").stream_chat(ask("x")))
    assert isinstance(error, PaymentRequiredError) and not error.retryable


def test_demo_right_key_streams(demo_url: Callable[..., str]) -> None:
    _, error = collect(Client(demo_url(auth="key"), "demo-key").stream_chat(ask("Write 5 tokens")))
    assert error is None


def test_demo_429_carries_its_retry_after(demo_url: Callable[..., str]) -> None:
    _, error = collect(Client(demo_url(fail429=1)).stream_chat(ask("x")))
    assert isinstance(error, RateLimitError) and error.retry_after == pytest.approx(0.1)


def test_demo_5xx_faults_are_server_errors_including_an_html_502(demo_url: Callable[..., str]) -> None:
    c = Client(demo_url(fail5xx=3))
    errors = [collect(c.stream_chat(ask("x")))[1] for _ in range(3)]
    assert [(type(e), e.status) for e in errors] == [
        (ServerError, 503),
        (ServerError, 500),
        (ServerError, 502),
    ]  # type: ignore[union-attr]
    assert "502 Bad Gateway" in str(errors[2])


def test_demo_dropped_connection_is_interrupted_after_n_tokens(demo_url: Callable[..., str]) -> None:
    prompt = "Write 200 tokens"
    deltas, error = collect(Client(demo_url(drop=25)).stream_chat(ask(prompt)))
    assert isinstance(error, StreamInterrupted)
    assert (len(deltas), demo_document(prompt).startswith(text(deltas))) == (25, True)


def test_demo_malformed_chunk_is_malformed(demo_url: Callable[..., str]) -> None:
    deltas, error = collect(Client(demo_url(malformed=10)).stream_chat(ask("Write 50 tokens")))
    assert (type(error), len(deltas)) == (MalformedStreamError, 10)


def test_demo_unknown_model_is_not_found_pointing_at_the_model_list(demo_server: str) -> None:
    _, error = collect(Client(demo_server).stream_chat(ask("x", "no-such-model")))
    assert isinstance(error, NotFoundError)
    assert str(error).startswith(f"Model `no-such-model` not found at {demo_server}") and "model list" in str(
        error
    )


def test_demo_model_list_has_windows_caps_and_prices(demo_server: str) -> None:
    models = {m.id: m for m in Client(demo_server).list_models()}
    assert models["demo"] == ModelInfo("demo", 8192, 4096, Prices(0.1, 0.4), models["demo"].owned_by)
    assert set(models) >= {"demo", "demo-32k", "demo-reasoner"}


def test_demo_chat_without_streaming_returns_the_document(demo_server: str) -> None:
    result = Client(demo_server).chat(ask("Write 30 tokens"))
    assert result["choices"][0]["message"]["content"] == demo_document("Write 30 tokens")
