"""Faults: dropped streams, 429, 5xx, malformed chunks, stalls, silence, pacing."""

from __future__ import annotations

import json

import httpx
import pytest

from core.demo import behaviour_url, demo_document, start_demo_server

from .helpers import DemoAPI, chat

PROMPT = "Write about maps"
DOCUMENT = demo_document(PROMPT)


def test_drop_closes_the_stream_after_n_tokens_without_finish_or_done(api: DemoAPI, demo_url) -> None:
    result = api.stream(demo_url(drop=25), chat(PROMPT))
    assert result.broken
    assert (len(result.contents), result.finish_reason, result.done) == (25, None, False)
    assert result.content == DOCUMENT[: len(result.content)]


def test_drop_beyond_the_response_length_never_fires(api: DemoAPI, demo_url) -> None:
    result = api.stream(demo_url(drop=50), chat(PROMPT, max_tokens=10))
    assert (result.broken, result.finish_reason, result.done) == (False, "length", True)


def test_the_server_keeps_serving_after_a_drop(api: DemoAPI, demo_url) -> None:
    api.stream(demo_url(drop=5), chat(PROMPT))
    assert api.stream(demo_url(), chat(PROMPT)).content == DOCUMENT


def test_drop_random_with_probability_one_always_drops(api: DemoAPI, demo_url) -> None:
    results = [api.stream(demo_url(drop="random", drop_p=1), chat(PROMPT, max_tokens=50)) for _ in range(5)]
    assert all(r.broken and 1 <= len(r.contents) <= 50 for r in results)


def test_drop_random_with_probability_zero_never_drops(api: DemoAPI, demo_url) -> None:
    results = [api.stream(demo_url(drop="random", drop_p=0), chat(PROMPT, max_tokens=50)) for _ in range(5)]
    assert not any(r.broken for r in results)


def _random_drops(seed: int) -> list[int]:
    with start_demo_server(drop="random", seed=seed) as server, httpx.Client() as client:
        api = DemoAPI(client)
        results = [api.stream(server.base_url, chat(PROMPT, max_tokens=200)) for _ in range(8)]
    return [len(r.contents) if r.broken else -1 for r in results]


def test_drop_random_is_reproducible_for_a_seed() -> None:
    first = _random_drops(seed=7)
    assert first == _random_drops(seed=7)
    assert first != _random_drops(seed=8)


def test_fail429_refuses_the_first_n_requests_with_retry_headers(api: DemoAPI, demo_url) -> None:
    url = demo_url(fail429=2)
    responses = [api.post(url, chat(PROMPT, max_tokens=3)) for _ in range(3)]
    assert [r.status_code for r in responses] == [429, 429, 200]
    assert (responses[0].headers["retry-after"], responses[0].headers["retry-after-ms"]) == ("1", "100")
    assert responses[0].json()["error"]["code"] == "rate_limit_exceeded"


def test_retry_after_sets_the_announced_wait(api: DemoAPI, demo_url) -> None:
    response = api.post(demo_url(fail429=1, retry_after=2.5), chat(PROMPT, max_tokens=3))
    assert (response.headers["retry-after"], response.headers["retry-after-ms"]) == ("3", "2500")


def test_fail5xx_answers_503_500_502_then_serves(api: DemoAPI, demo_url) -> None:
    url = demo_url(fail5xx=3)
    responses = [api.post(url, chat(PROMPT, max_tokens=3)) for _ in range(4)]
    assert [r.status_code for r in responses] == [503, 500, 502, 200]
    assert responses[0].json()["error"]["type"] == "server_error"
    assert responses[2].headers["content-type"].startswith("text/html")


def test_fault_counters_are_per_prefix(api: DemoAPI, demo_url) -> None:
    assert api.post(demo_url(fail429=1, k="first"), chat(PROMPT, max_tokens=3)).status_code == 429
    assert api.post(demo_url(fail429=1, k="second"), chat(PROMPT, max_tokens=3)).status_code == 429
    assert api.post(demo_url(fail429=1, k="first"), chat(PROMPT, max_tokens=3)).status_code == 200


def test_429s_come_before_5xx(api: DemoAPI, demo_url) -> None:
    url = demo_url(fail429=1, fail5xx=1)
    assert [api.post(url, chat(PROMPT, max_tokens=3)).status_code for _ in range(3)] == [429, 503, 200]


def test_faults_also_hit_streaming_requests(api: DemoAPI, demo_url) -> None:
    assert api.stream(demo_url(fail429=1), chat(PROMPT)).status == 429


def test_malformed_sends_one_event_that_is_not_json_then_goes_on(api: DemoAPI, demo_url) -> None:
    result = api.stream(demo_url(malformed=10), chat(PROMPT, max_tokens=30))
    assert len(result.malformed) == 1
    assert result.events.index(result.malformed[0]) == 1 + 10  # role chunk, then 10 tokens
    assert (result.content, result.done) == (DOCUMENT[: len(result.content)], True)
    assert len(result.contents) == 30


def test_stall_sends_keep_alive_comments_before_the_first_event(api: DemoAPI, demo_url) -> None:
    result = api.stream(demo_url(stall=0.4), chat(PROMPT, max_tokens=5))
    assert result.comments_before_data >= 2
    assert result.body.startswith(b": keep-alive\n\n")
    assert (len(result.contents), result.done) == (5, True)


def test_silent_sends_no_comment_and_then_the_answer(api: DemoAPI, demo_url) -> None:
    result = api.stream(demo_url(silent=0.2), chat(PROMPT, max_tokens=5))
    assert (result.comments, len(result.contents), result.done) == (0, 5, True)


def test_stall_delays_a_non_streamed_reply_without_changing_it(api: DemoAPI, demo_url) -> None:
    body = api.post(demo_url(stall=0.1), chat(PROMPT, max_tokens=5)).json()
    assert (
        body["choices"][0]["message"]["content"] == DOCUMENT[: len(body["choices"][0]["message"]["content"])]
    )


def test_a_paced_stream_sends_the_same_tokens(api: DemoAPI, demo_url) -> None:
    paced = api.stream(demo_url(rate=1000, drop=30, malformed=12), chat(PROMPT, max_tokens=60))
    fast = api.stream(demo_url(rate=0, drop=30, malformed=12), chat(PROMPT, max_tokens=60))
    assert paced.contents == fast.contents
    assert [len(r.malformed) for r in (paced, fast)] == [1, 1]
    assert paced.events.index(paced.malformed[0]) == fast.events.index(fast.malformed[0])
    assert paced.broken and fast.broken


def test_a_paced_stream_ends_properly(api: DemoAPI, demo_url) -> None:
    result = api.stream(
        demo_url(rate=2000), chat(PROMPT, max_tokens=40, stream_options={"include_usage": True})
    )
    assert (len(result.contents), result.finish_reason, result.done) == (40, "length", True)


@pytest.mark.parametrize("fault", [{"drop": 3}, {"malformed": 3}, {"stall": 0.05}])
def test_stream_faults_leave_non_streamed_replies_alone(api: DemoAPI, demo_url, fault: dict) -> None:
    body = api.post(demo_url(**fault), chat(PROMPT, max_tokens=10)).json()
    assert body["usage"]["completion_tokens"] == 10


def test_server_defaults_apply_to_every_request_and_a_prefix_overrides_them() -> None:
    with start_demo_server(prefill="ignored", usage="absent") as server, httpx.Client() as client:
        api = DemoAPI(client)
        messages = [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": DOCUMENT[:100]}]
        body = {"model": "demo", "messages": messages, "max_tokens": 4096}
        plain = api.stream(server.base_url, body)
        overridden = api.stream(behaviour_url(server.base_url, prefill="continue"), body)
    assert (plain.content, plain.usage) == (DOCUMENT, None)
    assert (overridden.content, overridden.usage) == (DOCUMENT[100:], None)


def test_a_dropped_stream_announces_connection_close(api: DemoAPI, demo_url) -> None:
    result = api.stream(demo_url(drop=2), chat(PROMPT))
    assert result.headers["connection"] == "close"
    assert json.loads(result.events[-1])["choices"][0]["finish_reason"] is None
