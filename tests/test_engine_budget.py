"""The context window, token totals, cost and the other limits of a run."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from test_engine_support import finish, run_all, spec_for

from core.demo import count_tokens, demo_document
from core.demo.replies import TOKENS_PER_MESSAGE
from core.types import Delta, Notice, Prices, Retrying
from core.wire.client import Client

LONG = "Write 20000 tokens about the context window"


class Recorder(httpx.BaseTransport):
    """A real HTTP transport that keeps every request body (a fake, not a mock)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.bodies: list[dict[str, Any]] = []
        self.statuses: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.read()))
        response = self.inner.handle_request(request)
        self.statuses.append(response.status_code)
        return response

    def close(self) -> None:
        self.inner.close()


def demo_prompt_tokens(body: dict[str, Any]) -> int:
    """What the demo model bills as the prompt of ``body``."""
    if "prompt" in body:
        return count_tokens(body["prompt"])
    return sum(count_tokens(m["content"]) + TOKENS_PER_MESSAGE for m in body["messages"])


def recorded_run(url: str, prompt: str = LONG, **fields: Any) -> tuple[Recorder, list[Any]]:
    recorder = Recorder()
    client = Client(url, transport=recorder)
    events = run_all(spec_for(url, prompt, **fields), client=client)
    client.close()
    return recorder, events


@pytest.mark.parametrize(
    "behaviours",
    [{}, {"overflow": "clamp"}, {"usage": "absent"}, {"overflow": "clamp", "usage": "absent"}],
    ids=["400", "clamp", "no-usage", "clamp-no-usage"],
)
@pytest.mark.parametrize("window", [8192, 3000])
def test_no_request_asks_for_more_than_the_window(demo_url, behaviours: dict[str, str], window: int) -> None:
    recorder, events = recorded_run(demo_url(**behaviours), max_tokens=1000, context_window=window)
    assert finish(events).stop_reason == "context_exhausted"
    assert set(recorder.statuses) == {200}
    asked = [demo_prompt_tokens(b) + b["max_tokens"] for b in recorder.bodies]
    assert max(asked) <= window
    assert max(asked) > window * 0.9  # the window is used, not wasted


def test_the_round_totals_add_up(demo_url) -> None:
    recorder, events = recorded_run(demo_url(), max_tokens=1000, context_window=8192)
    result = finish(events).result
    totals = result.totals()
    assert totals["prompt_tokens_billed"] == sum(demo_prompt_tokens(b) for b in recorder.bodies)
    assert totals["completion_tokens"] == sum(isinstance(e, Delta) for e in events)  # one token a chunk
    assert totals["completion_tokens"] == sum(r.completion_tokens for r in result.rounds)
    assert not totals["tokens_estimated"]


def test_estimated_totals_are_marked_and_close(demo_url) -> None:
    recorder, events = recorded_run(demo_url(usage="absent"), max_tokens=1000, context_window=8192)
    result = finish(events).result
    assert all(r.prompt_estimated and r.completion_estimated for r in result.rounds)
    billed = sum(demo_prompt_tokens(b) for b in recorder.bodies)
    assert billed <= result.prompt_tokens_billed <= billed * 1.5  # estimates err on the high side
    assert result.completion_tokens == sum(isinstance(e, Delta) for e in events)


@pytest.mark.parametrize("wording", ["vllm", "deepinfra", "openrouter", "llamacpp"])
def test_an_unknown_window_is_learnt_from_the_overflow_error(demo_url, wording: str) -> None:
    recorder, events = recorded_run(demo_url(overflow=wording), max_tokens=2000)
    done = finish(events)
    assert done.stop_reason == "context_exhausted"
    assert recorder.statuses.count(400) >= 1
    assert any(isinstance(e, Notice) and "lowered max_tokens" in e.message for e in events)
    assert demo_document(LONG).startswith(done.result.text)
    assert len(done.result.text) > 20000


def overflowing_server(sent: list[int], message: str) -> Client:
    """A fake server that answers every request with a context-overflow 400."""

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.read())["max_tokens"])
        return httpx.Response(
            400, json={"error": {"message": message, "type": "BadRequestError", "code": 400}}
        )

    return Client("http://fake.test/v1", transport=httpx.MockTransport(handler))


VLLM_OVERFLOW = (
    "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens "
    "(5000 in the messages, 4000 in the completion). Please reduce the length of the messages or completion."
)


def test_an_overflow_that_persists_after_lowering_once_ends_the_run() -> None:
    sent: list[int] = []
    client = overflowing_server(sent, VLLM_OVERFLOW)
    events = run_all(spec_for("http://fake.test/v1", LONG, max_tokens=4000), client=client)
    done = finish(events)  # not even round 1 fits: an error that names the numbers
    assert done.stop_reason == "error" and "window 8192" in done.error.message
    assert sent == [4000, 8192 - 5000]  # lowered once, to what the numbers say fits
    assert not any(isinstance(e, Retrying) for e in events)


def test_an_overflow_without_numbers_halves_max_tokens_once() -> None:
    sent: list[int] = []
    client = overflowing_server(sent, "Input is too long for the context window of this model.")
    events = run_all(spec_for("http://fake.test/v1", LONG, max_tokens=4000), client=client)
    assert finish(events).error.kind == "ContextOverflowError"
    assert sent == [4000, 2000]


def test_a_window_the_server_names_overrides_a_larger_one_in_the_spec(demo_url) -> None:
    recorder, events = recorded_run(demo_url(), max_tokens=4000, context_window=100_000)
    done = finish(events)
    assert done.stop_reason == "context_exhausted"
    assert recorder.statuses.count(400) == 1  # learnt once, then the budget keeps within 8192
    assert demo_document(LONG).startswith(done.result.text)


def test_the_target_limits_the_last_round(demo_url) -> None:
    events = run_all(spec_for(demo_url(), LONG, model="demo-32k", max_tokens=1000, target_tokens=2500))
    result = finish(events).result
    assert finish(events).stop_reason == "target_reached"
    assert [r.max_tokens for r in result.rounds] == [1000, 1000, 500]
    assert result.completion_tokens == 2500


def test_max_rounds_stops_the_run(demo_url) -> None:
    done = finish(run_all(spec_for(demo_url(), LONG, max_tokens=100, max_rounds=3)))
    assert (done.stop_reason, len(done.result.rounds)) == ("max_rounds", 3)


def test_cost_is_priced_per_round_and_stops_at_the_limit(demo_url) -> None:
    prices = Prices(input_per_mtok=1000.0, output_per_mtok=2000.0)
    done = finish(run_all(spec_for(demo_url(), LONG, max_tokens=500, prices=prices, cost_limit=5.0)))
    result = done.result
    assert done.stop_reason == "cost_limit"
    first = result.rounds[0]
    assert first.cost == pytest.approx((first.prompt_tokens * 1000 + first.completion_tokens * 2000) / 1e6)
    assert result.cost == pytest.approx(sum(r.cost or 0 for r in result.rounds))
    assert result.cost >= 5.0 or result.cost + result.rounds[-1].cost > 5.0


def test_without_prices_there_is_no_cost(demo_url) -> None:
    result = finish(run_all(spec_for(demo_url(), "Write 100 tokens", max_tokens=1000))).result
    assert result.cost is None and result.rounds[0].cost is None


def test_resume_continues_the_same_result(demo_url) -> None:
    prompt = "Write 3000 tokens about resuming"
    spec = spec_for(demo_url(), prompt, max_tokens=500, max_rounds=2)
    first = finish(run_all(spec)).result
    assert first.stop_reason == "max_rounds"
    spec.max_rounds = 100
    events = run_all(spec, resume=first)
    done = finish(events)
    assert done.result is first
    assert events[0].resumed_rounds == 2  # type: ignore[union-attr]
    assert [r.index for r in first.rounds] == list(range(1, len(first.rounds) + 1))
    assert (done.stop_reason, first.text) == ("finished", demo_document(prompt))


def test_resume_can_switch_strategy(demo_url) -> None:
    prompt = "Write 2000 tokens about switching"
    first = finish(run_all(spec_for(demo_url(), prompt, max_tokens=300, max_rounds=2))).result
    spec = spec_for(demo_url(), prompt, max_tokens=300, strategy="instruction")
    done = finish(run_all(spec, resume=first))
    assert done.result.text == demo_document(prompt)
    assert {r.strategy for r in done.result.rounds} == {"prefill", "instruction"}
