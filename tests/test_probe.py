"""The continuation probe: a self-consistency check at temperature 0, not a reading of the text."""

from __future__ import annotations

import json

import httpx
import pytest

from core.continuation.probe import cut_point, judge, probe, probe_all
from core.wire.client import Client
from core.wire.errors import AuthenticationError


def test_a_continuing_server_honours_the_prefill(demo_url) -> None:
    result = probe(demo_url(), "demo")
    assert (result.verdict, result.recommended_strategy) == ("honoured", "prefill")
    assert result.agreed == result.compared > 0


def test_a_server_that_ignores_the_prefill_is_found_out(demo_url) -> None:
    result = probe(demo_url(prefill="ignored"), "demo")
    assert (result.verdict, result.recommended_strategy) == ("ignored", "instruction")


def test_an_echoing_server_is_recognised_with_the_prefix_strategy(demo_url) -> None:
    result = probe(demo_url(prefill="echo"), "demo", strategy="prefix")
    assert (result.verdict, result.recommended_strategy) == ("echoes", "prefix")


def test_a_restart_is_not_mistaken_for_an_echo_under_the_prefix_strategy(demo_url) -> None:
    # at temperature 0 a restart of the model's own answer looks like an echo of its beginning
    assert probe(demo_url(prefill="ignored"), "demo", strategy="prefix").verdict == "ignored"


def test_the_instruction_strategy_works_where_the_prefill_is_ignored(demo_url) -> None:
    assert probe(demo_url(prefill="ignored"), "demo", strategy="instruction").verdict == "honoured"


def test_vllm_flags_are_probed_with_the_vllm_strategy(demo_url) -> None:
    assert probe(demo_url(vllm="required"), "demo", strategy="prefill").verdict == "ignored"
    assert probe(demo_url(vllm="required"), "demo", strategy="vllm").verdict == "honoured"


def test_completions_are_probed_through_a_template(demo_url) -> None:
    assert probe(demo_url(), "demo", strategy="completions", template="llama3").verdict == "honoured"


def test_probing_every_strategy_recommends_one_that_continues(demo_url) -> None:
    report = probe_all(demo_url(prefill="ignored"), "demo", template="llama3")
    verdicts = {r.strategy: r.verdict for r in report.results}
    assert verdicts == {
        "prefill": "ignored",
        "vllm": "ignored",
        "prefix": "ignored",
        "completions": "honoured",
        "instruction": "honoured",
    }
    assert report.recommended == "completions"


def test_without_a_template_the_completions_strategy_is_skipped_and_says_why(demo_url) -> None:
    report = probe_all(demo_url(), "demo", strategies=("prefill", "completions"))
    assert report.recommended == "prefill" and "template" in report.skipped["completions"]


def always(text: str) -> Client:
    """A server that answers every request with the same text, whatever was sent."""

    def handler(request: httpx.Request) -> httpx.Response:
        chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}]}
        body = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    return Client("http://probe.test/v1", transport=httpx.MockTransport(handler))


def test_a_server_that_answers_the_same_whatever_was_sent_does_not_continue() -> None:
    result = probe("http://probe.test/v1", "m", client=always("Sure! Here you go, a fine answer."))
    assert result.verdict == "ignored" and result.agreed == 0


def test_a_model_that_only_repeats_itself_is_inconclusive() -> None:
    # a new turn of such a model agrees with any continuation: agreement proves nothing
    result = probe("http://probe.test/v1", "m", client=always(" la la la la la la la la la la la la"))
    assert result.verdict == "unclear"


def test_a_new_turn_that_misses_the_space_at_the_seam_is_a_new_turn() -> None:
    result = probe("http://probe.test/v1", "m", client=always("la la la la la la la la la la la la"))
    assert result.verdict == "ignored"


def test_a_rejected_key_is_an_error_not_a_verdict(demo_url) -> None:
    with pytest.raises(AuthenticationError):
        probe(demo_url(auth="key"), "demo", api_key="wrong")


@pytest.mark.parametrize(
    ("first", "reply", "verdict"),
    [
        ("alpha beta gamma delta epsilon zeta", " delta epsilon zeta eta theta", "honoured"),
        ("alpha beta gamma delta epsilon zeta", "Sure, here is more text", "ignored"),
        ("alpha beta gamma delta epsilon zeta", " delta eps and then something else", "unclear"),
    ],
)
def test_judge_compares_the_continuation_with_the_rest_of_the_one_request_answer(
    first: str, reply: str, verdict: str
) -> None:
    assert judge(first, cut_point(first), reply).verdict == verdict


def test_the_cut_falls_at_the_end_of_a_word_near_the_middle() -> None:
    text = "one two three four five six seven"
    cut = cut_point(text)
    assert text[cut] == " " and text[cut - 1] != " " and abs(cut - len(text) // 2) <= 6
