"""The raw server sends exactly the bytes it is told to, and its document model behaves like a model."""

from __future__ import annotations

import json
import socket

import httpx
import pytest
from rawdocument import CHATML_ASSISTANT, Document, DocumentHandler, Fault
from rawserver import (
    CLOSE,
    DONE,
    RESET,
    Pause,
    RawServer,
    Reply,
    Request,
    chat_chunk,
    error_event,
    head,
    llamacpp_error_field,
    openrouter_error,
    sse_reply,
)

DOC = Document(seed=5, words=1500)
CHAT = {
    "model": "raw-model",
    "stream": True,
    "max_tokens": 5,
    "messages": [{"role": "user", "content": "Go."}],
}


def raw_exchange(server: RawServer, body: dict[str, object], path: str = "/v1/chat/completions") -> bytes:
    """POST ``body`` on a plain socket and read until the server closes."""
    payload = json.dumps(body).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
            + payload
        )
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def events_of(server: RawServer, body: dict[str, object], path: str = "/chat/completions") -> list[str]:
    with httpx.stream("POST", server.base_url + path, json=body, timeout=5) as response:
        return [line for line in response.iter_lines() if line]


def test_a_reply_goes_out_byte_for_byte() -> None:
    reply = sse_reply([chat_chunk("Hi"), DONE], framing="close")
    with RawServer(lambda request: reply) as server:
        received = raw_exchange(server, CHAT)
    assert received == reply[0] and reply[1] is CLOSE


def test_chunked_framing_is_one_http_chunk_per_event() -> None:
    frame = chat_chunk("Hi")
    with RawServer(lambda request: sse_reply([frame, DONE])) as server:
        received = raw_exchange(server, CHAT)
    body = received.split(b"\r\n\r\n", 1)[1]
    assert body == f"{len(frame):x}\r\n".encode() + frame + b"\r\n" + b"e\r\n" + DONE + b"\r\n0\r\n\r\n"


def test_every_request_is_recorded_with_its_json_body_and_headers() -> None:
    with RawServer(lambda request: sse_reply([DONE])) as server:
        httpx.post(server.base_url + "/chat/completions", json=CHAT, headers={"X-Test": "1"}, timeout=5)
    (request,) = server.requests
    assert (request.number, request.method, request.path, request.body) == (
        1,
        "POST",
        "/v1/chat/completions",
        CHAT,
    )
    assert request.headers["x-test"] == "1" and request.at > 0


def test_a_reply_without_an_end_keeps_the_connection_for_the_next_request() -> None:
    def handler(request: Request) -> Reply:
        return [head(200, [("content-length", "2")]) + b"ok"]

    with RawServer(handler) as server, httpx.Client(timeout=5) as client:
        texts = [client.get(server.base_url + "/models").text for _ in range(3)]
    assert texts == ["ok"] * 3 and len({r.client_port for r in server.requests}) == 1


def test_a_reset_step_resets_the_connection_mid_body() -> None:
    reply = [
        head(200, [("content-type", "text/event-stream"), ("transfer-encoding", "chunked")]) + b"1f\r\ndata:",
        RESET,
    ]
    with RawServer(lambda request: reply) as server, pytest.raises(httpx.ReadError):
        events_of(server, CHAT)


def test_a_close_mid_chunk_is_an_incomplete_body() -> None:
    reply = sse_reply([chat_chunk("Hi"), DONE], cut_at=20, cut_with=CLOSE)
    with RawServer(lambda request: reply) as server, pytest.raises(httpx.RemoteProtocolError):
        events_of(server, CHAT)


def test_a_pause_delays_the_rest_of_the_reply() -> None:
    reply = [head(200, [("content-length", "2")]) + b"o", Pause(0.3), b"k"]
    with RawServer(lambda request: reply) as server:
        response = httpx.get(server.base_url + "/models", timeout=5)
    assert response.text == "ok" and response.elapsed.total_seconds() >= 0.3


# ---------------------------------------------------------------- frames


def test_error_frames_have_the_shapes_servers_send() -> None:
    assert error_event().startswith(b"event: error\ndata: {") and error_event().endswith(b"\n\n")
    routed = json.loads(openrouter_error()[len(b"data: ") :])
    assert routed["error"] == {"code": 502, "message": "Provider returned error"}
    assert routed["choices"] == [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]
    assert llamacpp_error_field().startswith(b'error: {"code":400,')


# ---------------------------------------------------------------- the document model


def test_the_document_is_ascii_prose_with_a_code_block_made_of_word_tokens() -> None:
    assert DOC.text.isascii() and DOC.text.count("```") == 2 and len(DOC.tokens) >= 1500
    assert "".join(DOC.tokens) == DOC.text and not DOC.text[-1].isspace()
    assert Document(seed=5, words=1500).text == DOC.text != Document(seed=6, words=1500).text


def test_a_first_request_gets_the_first_tokens_and_usage() -> None:
    with RawServer(DocumentHandler(DOC)) as server:
        lines = events_of(server, CHAT)
    chunks = [json.loads(line[len("data: ") :]) for line in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "".join(DOC.tokens[:5]) and lines[-1] == "data: [DONE]"
    assert chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("cut", [10, 11, 12, 37])  # mid-word, end of a word, after a space, ...
def test_a_prefill_continues_the_document_where_it_ends(cut: int) -> None:
    prefill = DOC.text[:cut]
    body = {**CHAT, "messages": [*CHAT["messages"], {"role": "assistant", "content": prefill}]}  # type: ignore[misc]
    with RawServer(DocumentHandler(DOC, template="keep")) as server:
        text = text_of(events_of(server, body))
    assert DOC.text.startswith(prefill + text) and len(text) > 0


def test_a_trimming_template_continues_from_the_stripped_prefill() -> None:
    prefill = DOC.text[: DOC.starts[3] + 1]  # ends in the space before a word: the template drops it
    body = {**CHAT, "messages": [*CHAT["messages"], {"role": "assistant", "content": prefill}]}  # type: ignore[misc]
    with RawServer(DocumentHandler(DOC)) as server:
        text = text_of(events_of(server, body))
    assert text == "".join(DOC.tokens[3:8])


def test_a_completions_prompt_in_chatml_continues_the_document() -> None:
    prompt = "<|im_start|>user\nGo.<|im_end|>\n" + CHATML_ASSISTANT + DOC.text[:40]
    body = {"model": "raw-model", "stream": True, "max_tokens": 3, "prompt": prompt}
    with RawServer(DocumentHandler(DOC, template="keep")) as server:
        lines = events_of(server, body, "/completions")
    text = "".join(json.loads(line[6:])["choices"][0]["text"] for line in lines[:-1] if '"text"' in line)
    assert DOC.text.startswith(DOC.text[:40] + text) and text


def test_a_new_turn_ignores_the_prefill_and_starts_again() -> None:
    body = {**CHAT, "messages": [*CHAT["messages"], {"role": "assistant", "content": DOC.text[:200]}]}  # type: ignore[misc]
    with RawServer(DocumentHandler(DOC, faults=[Fault("new_turn")])) as server:
        text = text_of(events_of(server, body))
    assert text == "".join(DOC.tokens[:5])


def test_an_error_fault_comes_after_the_given_number_of_tokens() -> None:
    with RawServer(DocumentHandler(DOC, faults=[Fault("openrouter_error", on=1, after=2)])) as server:
        lines = events_of(server, CHAT)
    assert text_of(lines) == "".join(DOC.tokens[:2]) and '"finish_reason":"error"' in lines[-2]


def test_a_request_over_the_window_gets_deepinfras_overflow_wording() -> None:
    body = {**CHAT, "max_tokens": 9000 - 5}
    with RawServer(DocumentHandler(DOC, window=8192, overflow="deepinfra500")) as server:
        response = httpx.post(server.base_url + "/chat/completions", json=body, timeout=5)
    assert response.status_code == 500
    assert response.json() == {
        "error": {"message": "Requested input length 9000 exceeds maximum input length 8192"}
    }


def test_an_empty_stream_is_headers_and_nothing_else_and_unstreamed_says_why() -> None:
    body = {**CHAT, "max_tokens": 9000}
    with RawServer(DocumentHandler(DOC, window=8192, overflow="empty")) as server:
        received = raw_exchange(server, body)
        plain = httpx.post(server.base_url + "/chat/completions", json={**body, "stream": False}, timeout=5)
    assert received.endswith(b"\r\n\r\n0\r\n\r\n") and b"data" not in received
    assert plain.status_code == 400 and plain.json()["error"]["n_ctx"] == 8192


def test_a_rate_limit_carries_the_retry_headers_given() -> None:
    fault = Fault("rate_limit", on=1, headers=(("llm_provider-retry-after", "1"),))
    with RawServer(DocumentHandler(DOC, faults=[fault])) as server:
        first = httpx.post(server.base_url + "/chat/completions", json=CHAT, timeout=5)
        second = httpx.post(server.base_url + "/chat/completions", json=CHAT, timeout=5)
    assert (first.status_code, first.headers["llm_provider-retry-after"], second.status_code) == (
        429,
        "1",
        200,
    )


def text_of(lines: list[str]) -> str:
    chunks = [json.loads(line[len("data: ") :]) for line in lines if line.startswith("data: {")]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
