"""The demo's chaos behaviour: one random fault per request, the same for the same seed and prefix."""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from core.demo import behaviour_url, demo_document, start_demo_server

from .helpers import DemoAPI, StreamResult, chat, parse_sse

PROMPT = "Write 3000 tokens about storms"  # long enough for a few non-ASCII words per round
DOCUMENT = demo_document(PROMPT)
STATUS_KINDS = "cut+429+429_bare+500+502+503"


@dataclass
class Raw:
    """A response read off the socket: status, headers, chunk frames and how the body ended."""

    status: int
    headers: dict[str, str]
    frames: list[bytes] = field(default_factory=list)
    end: str = "complete"  # complete | size-line (cut inside a chunk-size line) | short-frame
    body: bytes = b""

    @property
    def payload(self) -> bytes:
        return b"".join(self.frames)


def raw_post(url: str, body: dict[str, Any]) -> Raw:
    """POST with a plain socket and parse the chunked framing by hand (httpx would hide a cut)."""
    parts = urlsplit(url)
    data = json.dumps(body).encode()
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=20) as sock:
        sock.sendall(head + data)
        received = []
        while chunk := sock.recv(65536):
            received.append(chunk)
    raw = b"".join(received)
    header_block, _, rest = raw.partition(b"\r\n\r\n")
    lines = header_block.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    reply = Raw(int(lines[0].split()[1]), headers, body=rest)
    if "chunked" not in headers.get("transfer-encoding", ""):
        return reply
    pos = 0
    while True:
        eol = rest.find(b"\r\n", pos)
        if eol < 0:
            reply.end = "size-line"
            return reply
        size = int(rest[pos:eol], 16)
        if size == 0:
            return reply
        frame = rest[eol + 2 : eol + 2 + size]
        reply.frames.append(frame)
        if len(frame) < size or rest[eol + 2 + size : eol + 4 + size] != b"\r\n":
            reply.end = "short-frame"
            return reply
        pos = eol + 4 + size


def content_of(payload: bytes) -> str:
    """The content of the complete events in an SSE payload (a cut-off last event is ignored)."""
    text = ""
    for block in payload.split(b"\n\n")[:-1]:
        if block.startswith(b"data: {"):
            choice = (json.loads(block[6:])["choices"] or [{}])[0]
            text += (choice.get("delta") or {}).get("content") or ""
    return text


def chaos_url(base: str, k: str, **behaviours: object) -> str:
    return behaviour_url(base, k=k, chaos=1, chaos_max=1000, **behaviours)


# ---------------------------------------------------------------- determinism


def _outcomes(seed: int) -> list[tuple[int, str, int]]:
    with start_demo_server(rate=0) as server:
        url = behaviour_url(server.base_url, chaos=0.7, chaos_seed=seed, chaos_kinds=STATUS_KINDS, k="same")
        replies = [
            raw_post(url + "/chat/completions", chat(PROMPT, max_tokens=30, stream=True)) for _ in range(30)
        ]
    return [(r.status, r.end, len(r.payload)) for r in replies]


def test_the_same_seed_and_prefix_meet_the_same_faults_at_the_same_bytes() -> None:
    first = _outcomes(seed=5)
    assert first == _outcomes(seed=5)
    assert first != _outcomes(seed=6)
    assert {status for status, _, _ in first} == {200, 429, 500, 502, 503}


def test_the_prefix_is_part_of_the_draw(http: httpx.Client, demo_server: str) -> None:
    def statuses(k: str) -> list[int]:
        url = behaviour_url(demo_server, chaos=0.5, chaos_kinds="500", chaos_max=1000, k=k)
        return [
            http.post(url + "/chat/completions", json=chat(PROMPT, max_tokens=1)).status_code
            for _ in range(20)
        ]

    assert statuses("prefix-one") != statuses("prefix-two")


# ---------------------------------------------------------------- cuts


def test_cuts_fall_at_random_bytes_inside_frames_size_lines_and_characters(
    http: httpx.Client, demo_server: str
) -> None:
    url = chaos_url(demo_server, "cuts", chaos_kinds="cut", chaos_seed=3)
    replies = [
        raw_post(url + "/chat/completions", chat(PROMPT, max_tokens=120, stream=True)) for _ in range(40)
    ]
    assert all(r.status == 200 and r.end != "complete" for r in replies)  # never a terminating chunk
    assert {r.end for r in replies} == {"size-line", "short-frame"}
    assert all(DOCUMENT.startswith(content_of(r.payload)) for r in replies)  # a cut only shortens
    mid_character = 0
    for r in replies:
        try:
            r.payload.decode()
        except UnicodeDecodeError as exc:
            mid_character += exc.reason == "unexpected end of data"
    assert mid_character > 0
    places = http.get(url.rsplit("/v1", 1)[0] + "/stats").json()["cuts"]
    assert set(places) == {"frame", "utf8", "boundary", "event"} and sum(places.values()) == 40


# ---------------------------------------------------------------- status faults


@pytest.mark.parametrize(
    ("kind", "status", "content_type", "retry_headers"),
    [
        ("429", 429, "application/json", {"retry-after": "1", "retry-after-ms": "250"}),
        ("429_bare", 429, "application/json", {}),
        ("500", 500, "application/json", {}),
        ("502", 502, "text/html", {}),
        ("503", 503, "application/json", {}),
    ],
)
def test_status_faults_answer_like_the_servers_in_the_wild(
    http: httpx.Client,
    demo_server: str,
    kind: str,
    status: int,
    content_type: str,
    retry_headers: dict[str, str],
) -> None:
    url = chaos_url(demo_server, f"status-{kind}", chaos_kinds=kind, retry_after=0.25)
    response = http.post(url + "/chat/completions", json=chat(PROMPT, max_tokens=5, stream=True))
    assert response.status_code == status
    assert response.headers["content-type"].startswith(content_type)
    got = {
        name: response.headers[name] for name in ("retry-after", "retry-after-ms") if name in response.headers
    }
    assert got == retry_headers
    if kind == "502":
        assert "502 Bad Gateway" in response.text


# ---------------------------------------------------------------- stalls, keep-alives, drips


def test_a_stall_is_silence_mid_stream_longer_than_an_idle_timeout(api: DemoAPI, demo_server: str) -> None:
    url = chaos_url(demo_server, "stall", chaos_kinds="stall", chaos_stall=0.6)
    with pytest.raises(httpx.ReadTimeout):
        api.stream(url, chat(PROMPT, max_tokens=50), timeout=httpx.Timeout(5.0, read=0.2))
    patient = api.stream(url, chat(PROMPT, max_tokens=50))  # waits it out: the whole reply follows
    assert (patient.done, patient.content) == (True, DOCUMENT[: len(patient.content)])
    assert patient.finish_reason == "length"


def test_keepalive_comments_fill_a_span_at_an_event_boundary_and_the_stream_goes_on(
    api: DemoAPI, demo_server: str
) -> None:
    url = chaos_url(demo_server, "keepalive", chaos_kinds="keepalive", chaos_stall=0.3)
    result = api.stream(url, chat(PROMPT, max_tokens=50))
    assert result.comments >= 2  # one at once, more every 0.06 s until 0.3 s have passed
    assert (result.done, result.finish_reason, result.malformed) == (True, "length", [])
    assert result.content == DOCUMENT[: len(result.content)] and len(result.contents) == 50


def test_a_drip_sends_the_stream_in_tiny_chunk_frames(demo_server: str) -> None:
    url = chaos_url(demo_server, "drip", chaos_kinds="drip", chaos_drip=0.0005)
    reply = raw_post(url + "/chat/completions", chat(PROMPT, max_tokens=400, stream=True))
    assert reply.end == "complete"
    tiny = [f for f in reply.frames if len(f) <= 8]
    assert len(tiny) >= 100  # the 1,024-byte window in pieces of 1 to 8 bytes
    result = parse_sse(reply.payload, StreamResult(200, httpx.Headers()))
    assert (result.done, result.content) == (True, DOCUMENT[: len(result.content)])
    assert len(result.contents) == 400


# ---------------------------------------------------------------- limits and bookkeeping


def test_chaos_max_lets_a_clean_request_through_after_that_many_faults(
    http: httpx.Client, demo_server: str
) -> None:
    url = behaviour_url(demo_server, chaos=1, chaos_kinds="500", chaos_max=2, k="streak")
    statuses = [
        http.post(url + "/chat/completions", json=chat(PROMPT, max_tokens=1)).status_code for _ in range(9)
    ]
    assert statuses == [500, 500, 200] * 3


def test_a_non_streamed_request_gets_only_status_faults(http: httpx.Client, demo_server: str) -> None:
    url = chaos_url(demo_server, "plain", chaos_kinds="cut+stall+keepalive+drip")
    response = http.post(url + "/chat/completions", json=chat(PROMPT, max_tokens=20))
    assert response.status_code == 200
    assert DOCUMENT.startswith(response.json()["choices"][0]["message"]["content"])


@pytest.mark.parametrize("value", ["chaos_kinds=cut+bogus", "chaos=1.5", "chaos_max=-1", "chaos_stall=x"])
def test_bad_chaos_values_are_a_400(http: httpx.Client, demo_server: str, value: str) -> None:
    root = demo_server.rsplit("/v1", 1)[0]
    response = http.post(f"{root}/x/{value}/v1/chat/completions", json=chat(PROMPT, max_tokens=1))
    assert response.status_code == 400
    assert value.split("=")[0] in response.json()["error"]["message"]


def test_faults_are_counted_per_prefix_and_in_all(http: httpx.Client) -> None:
    with start_demo_server(rate=0) as server:
        one = behaviour_url(server.base_url, chaos=1, chaos_kinds="503", chaos_max=100, k="one")
        two = behaviour_url(server.base_url, fail429=2, k="two")
        for url in (one, one, two, two, two):
            http.post(url + "/chat/completions", json=chat(PROMPT, max_tokens=1))
        mine = http.get(one.rsplit("/v1", 1)[0] + "/stats").json()
        everything = http.get(server.root_url + "/stats").json()
        counted = server.fault_counts()
    nothing: dict[str, dict[str, int]] = {"cuts": {}, "abandoned": {}, "abandoned_silence_s": {}}
    assert mine == {"requests": 2, "faults": {"503": 2}} | nothing
    assert everything == counted == {"requests": 5, "faults": {"429": 2, "503": 2}} | nothing


def test_every_kind_is_drawn_when_all_are_allowed(http: httpx.Client, demo_server: str) -> None:
    url = behaviour_url(
        demo_server, chaos=1, chaos_max=1000, chaos_stall=0.05, chaos_drip=0, chaos_seed=1, k="all-kinds"
    )
    for _ in range(60):
        try:
            http.post(url + "/chat/completions", json=chat(PROMPT, max_tokens=5, stream=True), timeout=5)
        except httpx.HTTPError:
            pass  # a cut
    faults = Counter(http.get(url.rsplit("/v1", 1)[0] + "/stats").json()["faults"])
    assert set(faults) == {"cut", "429", "429_bare", "500", "502", "503", "stall", "keepalive", "drip"}
    assert sum(faults.values()) == 60


def test_a_client_hanging_up_during_a_keepalive_span_is_counted() -> None:
    with start_demo_server(rate=0) as server:
        url = behaviour_url(server.base_url, chaos=1, chaos_kinds="keepalive", chaos_stall=2.0, k="leaver")
        parts = urlsplit(url)
        data = json.dumps(chat(PROMPT, max_tokens=50, stream=True)).encode()
        with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
            sock.sendall(
                f"POST {parts.path}/chat/completions HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                + data
            )
            received = b""
            while b": keep-alive" not in received:
                received += sock.recv(65536)
        deadline = time.monotonic() + 10  # the span goes on until a write fails
        while not server.fault_counts()["abandoned"] and time.monotonic() < deadline:
            time.sleep(0.01)
        counts = server.fault_counts()
    assert counts["abandoned"] == {"keepalive": 1}
    assert set(counts["abandoned_silence_s"]) == {"keepalive"}
