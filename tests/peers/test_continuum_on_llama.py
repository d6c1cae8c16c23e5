"""Continuum against a server it was not written with: llama-cpp-python on a random-weight model.

The model writes no sense, so nothing here can pass by reading the text: the probe and the run
must judge continuation by structure alone (DESIGN §6). What the server does is pinned in
test_llama_server.py: a chat prefill opens a new assistant turn (the vLLM flags and the prefix
flag are ignored), /completions continues exactly, no usage is streamed, and max_tokens past
the context is clamped silently.
"""

from __future__ import annotations

import re

from core.continuation.engine import RetryPolicy, run
from core.continuation.probe import probe, probe_all
from core.types import RunFinished, RunSpec
from tests.peers.server import Peer

FAST = RetryPolicy(base=0.01, cap=0.05, max_wait=0.05)


def spec(peer: Peer, **kw: object) -> RunSpec:
    fields: dict = {
        "messages": [{"role": "user", "content": "Write a long story about a lighthouse keeper."}],
        "provider": "custom",
        "base_url": peer.base_url,
        "model": peer.model,
        "max_tokens": 64,
        "max_rounds": 6,
        "temperature": 0.0,
    }
    fields.update(kw)
    return RunSpec(**fields)


def finish(events: list) -> RunFinished:
    last = events[-1]
    assert isinstance(last, RunFinished)
    return last


def test_the_probe_says_a_chat_prefill_does_not_continue_there(llama_server: Peer) -> None:
    for strategy in ("prefill", "vllm", "prefix"):
        result = probe(llama_server.base_url, llama_server.model, strategy=strategy)
        assert result.verdict == "ignored", (strategy, result.advice)


def test_the_probe_says_completions_with_the_template_continue_there(llama_server: Peer) -> None:
    result = probe(llama_server.base_url, llama_server.model, strategy="completions", template="chatml")
    assert result.verdict == "honoured", result.advice
    assert result.agreed >= 6  # the rest of the one-request answer, reproduced


def test_probing_every_strategy_recommends_completions(llama_server: Peer) -> None:
    report = probe_all(llama_server.base_url, llama_server.model, template="chatml")
    verdicts = {r.strategy: r.verdict for r in report.results}
    assert verdicts["completions"] == "honoured" and report.recommended == "completions"
    assert {verdicts[s] for s in ("prefill", "vllm", "prefix")} == {"ignored"}


def test_a_prefill_run_stops_at_the_first_new_turn_and_keeps_round_one(llama_server: Peer) -> None:
    events = list(run(spec(llama_server), retry=FAST))
    done = finish(events)
    assert done.stop_reason == "error" and done.error.kind == "PrefillIgnoredError", done.error
    first, second = done.result.rounds[:2]
    assert len(done.result.rounds) == 2 and second.text == ""
    assert done.result.text == first.text + first.held_back  # round 1 whole, nothing from the new turn
    assert any(f["kind"] == "restart" for f in second.seam_flags)


def test_a_completions_run_fills_the_window_without_a_request_over_it(llama_server: Peer) -> None:
    window = llama_server.n_ctx
    events = list(
        run(
            spec(
                llama_server,
                strategy="completions",
                template="chatml",
                max_tokens=256,
                max_rounds=40,
                context_window=window,
            ),
            retry=FAST,
        )
    )
    done = finish(events)
    assert done.stop_reason == "context_exhausted", (done.stop_reason, done.error)
    rounds = done.result.rounds
    assert len(rounds) >= 4 and all(r.error is None for r in rounds)
    assert all(r.finish_reason == "length" for r in rounds)
    flags = [f for r in rounds for f in r.seam_flags]
    assert not any(f["kind"] == "restart" for f in flags)
    # the server's default repeat_penalty (1.1, over the tokens of one request) may make the first
    # round after a seam write the held-back words differently: reported, checked, never a new turn
    assert all(f.get("verified") != "ignored" for f in flags if f["kind"] == "dropped")
    # The server clamps silently or sends an empty stream past its window; it logs every refusal.
    assert not re.search(r"exceed context window|Requested tokens", llama_server.log())
    # and every request fitted: each round's prompt (billed as estimated: no usage streamed) plus
    # what it was allowed to write stays inside the window
    assert all(r.prompt_tokens + r.max_tokens <= window for r in rounds)


def test_a_completions_run_without_the_repeat_penalty_equals_one_long_request(llama_server: Peer) -> None:
    """The exactness the demo model shows, on a real server: N rounds == one request."""
    plain = {"repeat_penalty": 1.0}
    rounds_spec = spec(
        llama_server, strategy="completions", template="chatml", max_tokens=64, max_rounds=4, extra_body=plain
    )
    done = finish(list(run(rounds_spec, retry=FAST)))
    assert done.stop_reason == "max_rounds" and len(done.result.rounds) == 4
    assert not [f for r in done.result.rounds for f in r.seam_flags if f["kind"] in ("dropped", "restart")]
    one = spec(
        llama_server,
        strategy="completions",
        template="chatml",
        max_tokens=4 * 64,
        max_rounds=1,
        extra_body=plain,
    )
    single = finish(list(run(one, retry=FAST))).result.text
    # the rounds hold back a partial word at each seam and write it again: what remains must be
    # the start of the one-request answer, short of at most the last round's held-back tail
    assert single.startswith(done.result.text) and len(done.result.text) >= len(single) - 40
