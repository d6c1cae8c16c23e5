"""The endpoint's one stream across rounds, read raw: no seam shows, chunks are OpenAI's own types,
a client that leaves stops the upstream at once, faults upstream never reach the answer, and 50
clients at once all get exact answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from openai.types.chat import ChatCompletionChunk

from core import RetryPolicy
from core.demo import DemoServer, behaviour_url, demo_document, demo_reasoning, start_demo_server
from core.serve import RunningServe
from core.services.store import Store
from core.wire.client import Timeouts
from tests.serving import chat, serve_demo, sse_events, stored, streamed_text, wait_for


@pytest.fixture(scope="module")
def paced() -> Iterator[DemoServer]:
    """A demo model at 3,000 tokens a second per stream: many chunks, short runs."""
    with start_demo_server(rate=3000) as server:
        yield server


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve-stream") / "history.sqlite3"


@pytest.fixture(scope="module")
def serve(paced: DemoServer, history: Path) -> Iterator[RunningServe]:
    with serve_demo(paced.base_url, history) as server:
        yield server


def data_lines(lines: list[str]) -> list[str]:
    return [line[6:] for line in lines if line.startswith("data: ")]


def test_no_event_between_rounds_betrays_the_seam(serve: RunningServe, history: Path) -> None:
    prompt = "Write 1200 tokens about seams"
    lines = sse_events(serve.base_url, chat(prompt, continuum={"round_tokens": 200}))
    data = data_lines(lines)
    chunks = [ChatCompletionChunk.model_validate(json.loads(d)) for d in data[:-1]]
    run = stored(history, chunks[-1].model_extra["continuum"]["run_id"])
    assert len(run.rounds) >= 6 and len(chunks) > 20
    assert data[-1] == "[DONE]" and "[DONE]" not in data[:-1]
    assert all(c.usage is None and c.choices[0].finish_reason is None for c in chunks[:-1])
    assert chunks[-1].choices[0].finish_reason == "stop" and chunks[-1].usage is not None
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == demo_document(prompt)


def test_include_usage_puts_usage_in_a_last_chunk_without_choices(serve: RunningServe) -> None:
    lines = sse_events(
        serve.base_url, chat("Write 300 tokens about usage", stream_options={"include_usage": True})
    )
    chunks = [ChatCompletionChunk.model_validate(json.loads(d)) for d in data_lines(lines)[:-1]]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].usage.completion_tokens == 300


def test_reasoning_streams_as_reasoning_content_also_across_a_cut_inside_it(serve: RunningServe) -> None:
    prompt = "Write 400 tokens about thinking"
    small = {"round_tokens": 40}  # the reasoning (60-100 tokens) is cut at least once
    lines = sse_events(serve.base_url, chat(prompt, model="demo-reasoner", continuum=small))
    chunks = [json.loads(d) for d in data_lines(lines)[:-1]]
    reasoning = "".join(
        c["choices"][0]["delta"].get("reasoning_content") or "" for c in chunks if c["choices"]
    )
    text, last = streamed_text(lines)
    assert (reasoning, text) == (demo_reasoning(prompt), demo_document(prompt))
    assert last["continuum"]["rounds"] > 10


def test_a_client_that_leaves_stops_the_upstream_and_the_run_is_cancelled(tmp_path: Path) -> None:
    history = tmp_path / "h.sqlite3"
    prompt = "Write 3000 tokens about leaving"
    with start_demo_server(rate=100) as demo, serve_demo(demo.base_url, history) as server:
        with httpx.stream("POST", server.base_url + "/chat/completions", json=chat(prompt, stream=True)) as r:
            run_id = r.headers["x-continuum-run-id"]
            seen = 0
            for line in r.iter_lines():
                seen += line.startswith("data: {")
                if seen >= 5:
                    break
            assert demo.active_requests == 1
        # the response is closed: the client has left
        assert wait_for(lambda: demo.active_requests == 0, 1.0), (
            "the upstream request was still open after 1 s"
        )
        assert wait_for(lambda: run_status(history, run_id) == "cancelled", 5.0)
        assert wait_for(lambda: server.service.limiter.active == 0, 5.0)
    run = stored(history, run_id)
    assert run.stop_reason == "cancelled" and run.text and demo_document(prompt).startswith(run.text)


def test_a_client_that_leaves_an_unstreamed_request_stops_the_upstream(tmp_path: Path) -> None:
    history = tmp_path / "h.sqlite3"
    with start_demo_server(rate=100) as demo, serve_demo(demo.base_url, history) as server:
        with pytest.raises(httpx.ReadTimeout):  # the client gives up waiting: its connection closes
            httpx.post(
                server.base_url + "/chat/completions",
                json=chat("Write 3000 tokens about waiting"),
                timeout=0.5,
            )
        assert wait_for(lambda: demo.active_requests == 0, 1.0), (
            "the upstream request was still open after 1 s"
        )
        assert wait_for(lambda: server.service.limiter.active == 0, 5.0)
    with Store(history) as store:
        (summary,) = store.list_runs()
    assert (summary.status, summary.source) == ("cancelled", "api") and summary.characters > 0


def run_status(history: Path, run_id: str) -> str | None:
    with Store(history) as store:
        summary = store.summary(run_id)
    return summary.status if summary else None


def test_upstream_faults_never_reach_the_answer(demo_server: str, tmp_path: Path) -> None:
    upstream = behaviour_url(
        demo_server, k="serve-faults", chaos=0.5, chaos_seed=11, chaos_stall=0.8, retry_after=0.15
    )
    timeouts = Timeouts(connect=5, idle=0.5, round=30)
    # the 12 runs share the upstream's fault counters (one URL prefix): more attempts than a run
    # with a prefix of its own needs (tests/test_fault_campaign.py), so no run is unlucky enough
    # to meet a chain of faults longer than its retry budget
    patient = RetryPolicy(max_attempts=12, base=0.02, cap=0.2, max_wait=1.0, max_recoveries=16)
    with serve_demo(upstream, tmp_path / "h.sqlite3", timeouts=timeouts, retry=patient) as server:

        def one(i: int) -> tuple[str, str]:
            prompt = f"Write {(300, 500)[i % 2]} tokens about fault {i}"
            text, _ = streamed_text(
                sse_events(server.base_url, chat(prompt, continuum={"round_tokens": 128}))
            )
            return text, demo_document(prompt)

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(one, range(12)))
        faults = httpx.get(upstream.removesuffix("/v1") + "/stats").json()
    assert [got == want for got, want in answers] == [True] * 12
    assert sum(faults["faults"].values()) >= 6, faults


def test_keep_alive_comments_while_the_upstream_retries(tmp_path: Path) -> None:
    prompt = "Write 200 tokens about patience"
    with (
        start_demo_server(fail429=2, retry_after=0.4) as demo,
        serve_demo(demo.base_url, tmp_path / "h.sqlite3", keepalive_s=0.1) as server,
    ):
        lines = sse_events(server.base_url, chat(prompt))
    first_data = next(
        i
        for i, line in enumerate(lines)
        if line.startswith("data: {") and '"content": "' in line and '"content": ""' not in line
    )
    comments = [line for line in lines[:first_data] if line.startswith(":")]
    assert any("upstream retry" in c for c in comments) and any("keep-alive" in c for c in comments)
    assert streamed_text(lines)[0] == demo_document(prompt)


def test_an_error_after_text_ends_the_stream_with_an_error_event(tmp_path: Path) -> None:
    history = tmp_path / "h.sqlite3"
    prompt = "Write 2000 tokens about breaking"
    with (
        start_demo_server(malformed=300) as demo,
        serve_demo(demo.base_url, history, defaults={"round_tokens": 1000}) as server,
        httpx.stream("POST", server.base_url + "/chat/completions", json=chat(prompt, stream=True)) as r,
    ):
        run_id = r.headers["x-continuum-run-id"]
        lines = [line for line in r.iter_lines() if line]
    text, last = streamed_text(lines)
    run = stored(history, run_id)
    assert "error" in last and "[DONE]" not in lines[-1]
    assert len(text) > 100 and demo_document(prompt).startswith(text)
    assert (run.stop_reason, run.text) == ("error", text)


def test_an_error_before_any_text_is_an_ordinary_error_response(tmp_path: Path) -> None:
    with start_demo_server(auth="key") as demo, serve_demo(demo.base_url, tmp_path / "h.sqlite3") as server:
        r = httpx.post(
            server.base_url + "/chat/completions", json=chat("Write 50 tokens about keys", stream=True)
        )
    assert r.status_code == 502 and r.headers["content-type"] == "application/json"
    assert r.json()["error"]["code"] == "AuthenticationError"


def test_a_server_that_starts_over_sends_no_restarted_text(tmp_path: Path) -> None:
    prompt = "Write 600 tokens about beginnings"
    with (
        start_demo_server(prefill="ignored") as demo,
        serve_demo(demo.base_url, tmp_path / "h.sqlite3", defaults={"round_tokens": 200}) as server,
    ):
        lines = sse_events(server.base_url, chat(prompt))
    text, last = streamed_text(lines)
    assert "error" in last
    assert demo_document(prompt).startswith(text) and 0 < len(text) < len(demo_document(prompt))


def test_fifty_streaming_clients_at_once_all_get_exact_answers(demo_server: str, tmp_path: Path) -> None:
    with serve_demo(demo_server, tmp_path / "h.sqlite3") as server:

        def one(i: int) -> bool:
            prompt = f"Write {200 + i} tokens about client {i}"
            text, _ = streamed_text(sse_events(server.base_url, chat(prompt, continuum={"round_tokens": 90})))
            return text == demo_document(prompt)

        with ThreadPoolExecutor(50) as pool:
            exact = list(pool.map(one, range(50)))
    assert exact == [True] * 50
