"""The pacer: one thread writes every throttled stream (core.demo.pacer)."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from core.demo import demo_document, start_demo_server

from .helpers import DemoAPI, chat


def test_many_throttled_streams_at_once_each_get_their_own_exact_document(api: DemoAPI, demo_url) -> None:
    prompts = [f"Write 300 tokens about paced subject {i}" for i in range(24)]
    base = demo_url(rate=3000)
    with ThreadPoolExecutor(len(prompts)) as pool:
        results = list(pool.map(lambda p: api.stream(base, chat(p)), prompts))
    assert [r.content for r in results] == [demo_document(p) for p in prompts]
    assert all(r.done and r.finish_reason == "stop" and not r.broken for r in results)


def test_throttled_events_are_framed_as_valid_http_chunks(api: DemoAPI, demo_url) -> None:
    result = api.stream(demo_url(rate=5000), chat("Write 120 tokens about framing", max_tokens=50))
    assert (result.status, result.finish_reason, result.done) == (200, "length", True)
    assert len(result.contents) == 50


def _stuck_client(host: str, port: int, k: str) -> socket.socket:
    """A raw client that asks for a ~5 MB fast stream and never reads it: the server's send buffer fills."""
    body = b'{"model":"demo-32k","stream":true,"messages":[{"role":"user","content":"Write 30000 tokens"}]}'
    head = (
        f"POST /x/rate=1000000,cap=32000,k={k}/v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
    sock.connect((host, port))
    sock.sendall(head + body)
    assert sock.recv(64).startswith(b"HTTP/1.1 200")  # it is being served, and not read from now on
    return sock


@pytest.mark.timeout(60)
def test_a_client_that_stops_reading_does_not_hold_up_other_streams(api: DemoAPI, demo_server: str) -> None:
    host, port = demo_server.removeprefix("http://").split("/")[0].split(":")
    stuck = [_stuck_client(host, int(port), f"stuck{i}") for i in range(2)]
    try:
        prompt = "Write 200 tokens about patience"
        result = api.stream(demo_server.replace("/v1", "/x/rate=2000,k=other/v1"), chat(prompt))
        assert result.content == demo_document(prompt)
    finally:
        for sock in stuck:
            sock.close()


@pytest.mark.timeout(60)
def test_stopping_the_server_ends_throttled_streams_in_progress() -> None:
    server = start_demo_server(rate=2.0)
    with httpx.Client(timeout=20) as client:
        body = {**chat("Write 500 tokens about endings"), "stream": True}
        with client.stream("POST", server.base_url + "/chat/completions", json=body) as response:
            chunks = response.iter_raw()
            first = next(chunks)
            server.stop()
            with pytest.raises(httpx.RemoteProtocolError):
                for _ in chunks:
                    pass
    assert b"data:" in first
