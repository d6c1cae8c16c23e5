"""The continuation loop: events, stop reasons, seams and reasoning."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from test_engine_support import finish, run_all, spec_for

from core.continuation.engine import REASONING_BUDGET_NOTICE, UNKNOWN_FINISH_NOTICE
from core.demo import demo_document, demo_reasoning
from core.types import (
    Delta,
    Notice,
    RoundFinished,
    RoundStarted,
    RunFinished,
    RunStarted,
)
from core.wire.client import Client

PROMPT = "Write 1500 tokens about the engine"


def fake_server(reply: Callable[[dict], list[dict]]) -> Client:
    """A byte-level fake: each request is answered by the chunks ``reply(body)`` returns."""

    def handler(request: httpx.Request) -> httpx.Response:
        chunks = reply(json.loads(request.read()))
        body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body.encode())

    return Client("http://fake.test/v1", transport=httpx.MockTransport(handler))


def chunk(content: str = "", finish_reason: str | None = None) -> dict:
    return {"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish_reason}]}


def test_events_come_in_order_with_exactly_one_run_finished(demo_url) -> None:
    events = run_all(spec_for(demo_url(), PROMPT, max_tokens=400))
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished" and kinds.count("RunFinished") == 1
    rounds = finish(events).result.rounds
    assert kinds.count("RoundStarted") == kinds.count("RoundFinished") == len(rounds) == 4
    current = None
    for event in events:
        if isinstance(event, RoundStarted):
            current = event.index
        elif isinstance(event, Delta):
            assert event.round_index == current
        elif isinstance(event, RoundFinished):
            assert event.round.index == current
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished)


def test_only_truncated_rounds_are_continued(demo_url) -> None:
    rounds = finish(run_all(spec_for(demo_url(), PROMPT, max_tokens=400))).result.rounds
    assert [r.finish_reason for r in rounds] == ["length", "length", "length", "stop"]


def test_rounds_record_tokens_timings_and_the_request(demo_url) -> None:
    first = finish(run_all(spec_for(demo_url(), PROMPT, max_tokens=400))).result.rounds[0]
    assert (first.strategy, first.max_tokens, first.completion_tokens) == ("prefill", 400, 400)
    assert first.prompt_tokens > 0 and not first.tokens_estimated
    assert first.ttft_s is not None and first.duration_s >= first.ttft_s


def test_the_held_back_tail_is_regenerated_by_the_next_round(demo_url) -> None:
    events = run_all(spec_for(demo_url(), PROMPT, max_tokens=100))
    started = [e for e in events if isinstance(e, RoundStarted)]
    rounds = finish(events).result.rounds
    assert started[0].held_back == 0
    for previous, event in zip(rounds, started[1:], strict=False):
        assert event.held_back == len(previous.held_back) > 0
    assert "".join(r.text for r in rounds) == demo_document(PROMPT)


def test_a_finish_without_reason_is_finished_with_a_notice() -> None:
    client = fake_server(lambda body: [chunk("All done.")])
    events = run_all(spec_for("http://fake.test/v1", PROMPT), client=client)
    assert finish(events).stop_reason == "finished"
    assert [e.message for e in events if isinstance(e, Notice)] == [UNKNOWN_FINISH_NOTICE]


def test_a_round_that_adds_nothing_twice_is_no_progress() -> None:
    client = fake_server(lambda body: [chunk("", "length")])
    done = finish(run_all(spec_for("http://fake.test/v1", PROMPT), client=client))
    assert (done.stop_reason, len(done.result.rounds)) == ("no_progress", 2)


def test_a_looping_model_is_stopped_for_repetition() -> None:
    looping = "An honest start. " + "we loop forever here, " * 1000  # what the stuck model writes

    def reply(body: dict) -> list[dict]:
        last = body["messages"][-1]
        done = len(last["content"]) if last["role"] == "assistant" else 0
        return [chunk(looping[done : done + 90], "length")]

    done = finish(run_all(spec_for("http://fake.test/v1", PROMPT), client=fake_server(reply)))
    assert done.stop_reason == "repetition"
    assert "repetition" in [f["kind"] for f in done.result.rounds[-1].seam_flags]
    assert len(done.result.rounds) < 6


def test_a_model_repeating_whole_rounds_is_stopped_for_repetition() -> None:
    again = " ".join(f"point {i}," for i in range(30)) + " "  # 250 characters, no loop inside
    looping = "A fresh start on the topic. " + again * 20

    def reply(body: dict) -> list[dict]:  # continues the prefill, a model writing one round again and again
        last = body["messages"][-1]
        done = len(last["content"]) if last["role"] == "assistant" else 0
        return [chunk(looping[done : done + (28 if not done else 250)], "length")]

    done = finish(run_all(spec_for("http://fake.test/v1", PROMPT), client=fake_server(reply)))
    assert done.stop_reason == "repetition"
    assert len(done.result.rounds) == 4  # the first round that writes a whole earlier round again


def test_a_server_ignoring_the_prefill_is_flagged_as_restarting(demo_url) -> None:
    events = run_all(spec_for(demo_url(prefill="ignored"), PROMPT, max_tokens=100))
    done = finish(events)
    assert done.stop_reason == "error" and done.error.kind == "PrefillIgnoredError"
    second = done.result.rounds[1]
    assert [f["kind"] for f in second.seam_flags] == ["restart"] and second.text == ""
    assert any(isinstance(e, Notice) and "instruction" in e.message for e in events)
    assert demo_document(PROMPT).startswith(done.result.text) and len(done.result.text) > 300


def test_the_instruction_strategy_assembles_without_duplicates_where_the_prefill_is_ignored(demo_url) -> None:
    done = finish(
        run_all(spec_for(demo_url(prefill="ignored"), PROMPT, max_tokens=100, strategy="instruction"))
    )
    assert done.result.text == demo_document(PROMPT)
    removed = [f for r in done.result.rounds for f in r.seam_flags if f.get("removed")]
    assert len(removed) == len(done.result.rounds) - 1


def test_an_echo_without_the_prefix_strategy_is_a_restart(demo_url) -> None:
    done = finish(run_all(spec_for(demo_url(prefill="echo"), PROMPT, max_tokens=100)))
    assert done.stop_reason == "error" and "ignores the prefill" in done.error.message


def test_seams_inside_code_blocks_and_tables_are_flagged(demo_url) -> None:
    """Every seam is flagged exactly when it falls inside a code block or a table; the prompts
    are tried in turn until seams have fallen inside both (the demo's prose decides where)."""
    flagged: dict[str, list[str]] = {"open_fence": [], "open_table": []}
    for n in range(20):
        prompt = f"Write 3000 tokens about fenced code {n}"
        rounds = finish(run_all(spec_for(demo_url(), prompt, max_tokens=48))).result.rounds
        assert "".join(r.text for r in rounds) == demo_document(prompt)
        for i, r in enumerate(rounds):
            before = "".join(p.text for p in rounds[:i])
            fences = sum(line.startswith("```") for line in before.split("\n"))
            last_line = before.rstrip("\n").rsplit("\n", 1)[-1]
            kinds = {f["kind"] for f in r.seam_flags}
            assert ("open_fence" in kinds) == (fences % 2 == 1), (prompt, i)
            assert ("open_table" in kinds) == last_line.startswith("|"), (prompt, i)
            for kind in kinds & set(flagged):
                flagged[kind].append(f"{prompt}, round {i + 1}")
        if all(flagged.values()):
            break
    assert all(flagged.values()), flagged


@pytest.mark.parametrize("shape", ["field", "reasoning", "think"])
def test_reasoning_that_eats_the_round_budget_gets_a_notice(demo_url, shape: str) -> None:
    events = run_all(spec_for(demo_url(reasoning=shape), PROMPT, model="demo-reasoner", max_tokens=30))
    done = finish(events)
    assert [e.message for e in events if isinstance(e, Notice)] == [REASONING_BUDGET_NOTICE]
    assert (done.result.text, done.result.reasoning) == (demo_document(PROMPT), demo_reasoning(PROMPT))
    assert done.result.rounds[0].text == "" and done.result.rounds[0].finish_reason == "length"


@pytest.mark.parametrize("shape", ["field", "think"])
def test_reasoning_streams_as_reasoning_deltas(demo_url, shape: str) -> None:
    events = run_all(spec_for(demo_url(reasoning=shape), PROMPT, model="demo-reasoner", max_tokens=4000))
    reasoning = "".join(e.text for e in events if isinstance(e, Delta) and e.kind == "reasoning")
    content = "".join(e.text for e in events if isinstance(e, Delta) and e.kind == "content")
    assert (reasoning, content) == (demo_reasoning(PROMPT), demo_document(PROMPT))


def test_dropped_reasoning_is_neither_streamed_nor_kept(demo_url) -> None:
    spec = spec_for(demo_url(), PROMPT, model="demo-reasoner", max_tokens=50, reasoning="drop")
    events = run_all(spec)
    done = finish(events)
    assert not any(isinstance(e, Delta) and e.kind == "reasoning" for e in events)
    assert (done.result.reasoning, done.result.text) == ("", demo_document(PROMPT))
