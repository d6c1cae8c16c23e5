"""N rounds of continuation reproduce the demo's single-shot answer character for character.

Every server behaviour the demo imitates, at per-round budgets from 1 token
(every seam falls between two tokens, hold-back is off) to 1000 (hold-back on).
"""

from __future__ import annotations

from typing import Any

import pytest
from test_engine_support import finish, first_difference, run_all, spec_for

from core.demo import demo_document, demo_reasoning
from core.types import Delta, RoundFinished

# name -> (behaviours, spec fields)
BEHAVIOURS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "usage-final": ({}, {}),
    "usage-absent": ({"usage": "absent"}, {}),
    "usage-separate": ({"usage": "separate"}, {}),
    "template-trim": ({"template": "trim"}, {}),
    "template-keep": ({"template": "keep"}, {}),
    "echo-prefix": ({"prefill": "echo"}, {"strategy": "prefix"}),
    "vllm-required": ({"vllm": "required"}, {"strategy": "vllm"}),
    "completions-llama3": ({}, {"strategy": "completions", "template": "llama3"}),
    "completions-chatml": ({}, {"strategy": "completions", "template": "chatml"}),
    "completions-deepseek": ({}, {"strategy": "completions", "template": "deepseek"}),
    "completions-mistral": ({}, {"strategy": "completions", "template": "mistral"}),
    "reasoning-content": ({"reasoning": "field"}, {"model": "demo-reasoner"}),
    "reasoning-field": ({"reasoning": "reasoning"}, {"model": "demo-reasoner"}),
    "reasoning-think": ({"reasoning": "think"}, {"model": "demo-reasoner"}),
}
REASONERS = {"reasoning-content", "reasoning-field", "reasoning-think"}

# (max_tokens per round, answer length in demo tokens). The default server gets the
# full sizes; every other behaviour the same budgets on shorter answers (a request
# costs a few milliseconds, and 1-token rounds on 2k tokens are 2000 requests).
SIZES = [(1, 2000), (7, 3000), (64, 20000), (1000, 20000)]
BEHAVIOUR_SIZES = [(1, 200), (7, 1000), (64, 5000), (1000, 20000)]


def check_exact(url: str, name: str, max_tokens: int, length: int) -> None:
    fields = BEHAVIOURS[name][1]
    prompt = f"Write {length} tokens about seams"  # one document per size: the demo caches it
    fields = {"model": "demo-32k" if length > 5000 else "demo", **fields}
    events = run_all(spec_for(url, prompt, max_tokens=max_tokens, **fields))
    done = finish(events)
    result = done.result
    assert done.stop_reason == "finished", (done.stop_reason, done.error)
    want = demo_document(prompt)
    assert result.text == want, first_difference(result.text, want)
    if name in REASONERS:
        assert result.reasoning == demo_reasoning(prompt), first_difference(
            result.reasoning, demo_reasoning(prompt)
        )
    streamed = "".join(e.text for e in events if isinstance(e, Delta) and e.kind == "content")
    held = sum(len(e.round.held_back) for e in events if isinstance(e, RoundFinished))
    assert len(streamed) == len(want) + held  # deltas carry everything, held-back parts twice
    assert not [
        f for r in result.rounds for f in r.seam_flags if f["kind"] in ("restart", "overlap", "repetition")
    ]


@pytest.mark.parametrize(("max_tokens", "length"), SIZES, ids=[f"max{m}-len{n}" for m, n in SIZES])
def test_default_server_reproduces_the_answer(demo_url, max_tokens: int, length: int) -> None:
    check_exact(demo_url(), "usage-final", max_tokens, length)


@pytest.mark.parametrize("name", [n for n in BEHAVIOURS if n != "usage-final"])
@pytest.mark.parametrize(
    ("max_tokens", "length"), BEHAVIOUR_SIZES, ids=[f"max{m}-len{n}" for m, n in BEHAVIOUR_SIZES]
)
def test_every_behaviour_reproduces_the_answer(demo_url, name: str, max_tokens: int, length: int) -> None:
    check_exact(demo_url(**BEHAVIOURS[name][0]), name, max_tokens, length)
