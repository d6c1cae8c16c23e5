"""The continuation probe: does a server honour, echo or ignore a prefill?"""

from __future__ import annotations

import json

import httpx
import pytest

from core.client import Client
from core.errors import AuthenticationError
from core.probe import PROBE_PREFILL, classify, probe


def test_a_continuing_server_honours_the_prefill(demo_url) -> None:
    result = probe(demo_url(), "demo")
    assert (result.verdict, result.recommended_strategy) == ("honoured", "prefill")
    assert result.sample.startswith(" 6,")


def test_a_server_that_ignores_the_prefill_is_found_out(demo_url) -> None:
    result = probe(demo_url(prefill="ignored"), "demo")
    assert (result.verdict, result.recommended_strategy) == ("ignored", "instruction")


def test_an_echoing_server_is_recognised_with_the_prefix_strategy(demo_url) -> None:
    result = probe(demo_url(prefill="echo"), "demo", strategy="prefix")
    assert (result.verdict, result.recommended_strategy) == ("echoes", "prefix")


def test_the_instruction_strategy_works_where_the_prefill_is_ignored(demo_url) -> None:
    assert probe(demo_url(prefill="ignored"), "demo", strategy="instruction").verdict == "honoured"


def test_vllm_flags_are_probed_with_the_vllm_strategy(demo_url) -> None:
    assert probe(demo_url(vllm="required"), "demo", strategy="prefill").verdict == "ignored"
    assert probe(demo_url(vllm="required"), "demo", strategy="vllm").verdict == "honoured"


def test_completions_are_probed_through_a_template(demo_url) -> None:
    assert probe(demo_url(), "demo", strategy="completions", template="llama3").verdict == "honoured"


def test_a_reply_that_is_neither_is_unclear() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        chunk = {
            "choices": [{"index": 0, "delta": {"content": "Sure! Here you go."}, "finish_reason": "stop"}]
        }
        body = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    client = Client("http://probe.test/v1", transport=httpx.MockTransport(handler))
    result = probe("http://probe.test/v1", "m", client=client)
    assert (result.verdict, result.sample) == ("unclear", "Sure! Here you go.")


def test_a_rejected_key_is_an_error_not_a_verdict(demo_url) -> None:
    with pytest.raises(AuthenticationError):
        probe(demo_url(auth="key"), "demo", api_key="wrong")


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [("6, 7, 8", "honoured"), (" 6, 7", "honoured"), ("1, 2, 3", "ignored"), ("Here: 1, 2", "unclear")],
)
def test_classify_reads_the_start_of_the_reply(reply: str, verdict: str) -> None:
    assert classify(reply).verdict == verdict


def test_an_echo_under_a_plain_prefill_counts_as_ignored() -> None:
    assert classify(PROBE_PREFILL + " 6, 7").verdict == "ignored"
    assert classify(PROBE_PREFILL + " 6, 7", "prefix").verdict == "echoes"
