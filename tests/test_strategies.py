"""Strategies: the request each one builds and how it reads the reply."""

from __future__ import annotations

import pytest

from core.continuation.strategies import CONTINUE_INSTRUCTION, STRATEGY_CLASSES, get_strategy, prefill_text
from core.types import STRATEGIES, RunSpec
from core.wire.errors import ConfigError

SPEC = RunSpec(messages=[{"role": "user", "content": "Write"}], model="m", max_tokens=100, temperature=0.0)


def build(name: str, answer: str = "The answer", reasoning: str = "", **kw: object):
    return get_strategy(name).build(SPEC, answer, reasoning, **kw)  # type: ignore[arg-type]


def test_every_strategy_name_has_a_class() -> None:
    assert set(STRATEGY_CLASSES) == set(STRATEGIES)


def test_the_first_round_sends_the_messages_alone() -> None:
    for name in ("prefill", "vllm", "prefix", "instruction"):
        endpoint, body = build(name, answer="")
        assert endpoint == "chat"
        assert body["messages"] == SPEC.messages
        assert "continue_final_message" not in body


def test_prefill_appends_the_answer_as_an_assistant_message() -> None:
    endpoint, body = build("prefill")
    assert endpoint == "chat"
    assert body["messages"][-1] == {"role": "assistant", "content": "The answer"}
    assert (body["model"], body["max_tokens"], body["temperature"]) == ("m", 100, 0.0)


def test_the_budget_overrides_max_tokens() -> None:
    assert build("prefill", max_tokens=7)[1]["max_tokens"] == 7


def test_vllm_adds_the_continue_flags() -> None:
    body = build("vllm")[1]
    assert (body["continue_final_message"], body["add_generation_prompt"]) == (True, False)


def test_prefix_marks_the_assistant_message() -> None:
    assert build("prefix")[1]["messages"][-1] == {
        "role": "assistant",
        "content": "The answer",
        "prefix": True,
    }


def test_prefix_strips_an_echoed_answer() -> None:
    assert get_strategy("prefix").interpret("The answer", "The answer goes on") == " goes on"


def test_instruction_asks_to_continue_and_removes_the_overlap() -> None:
    body = build("instruction")[1]
    assert body["messages"][-2:] == [
        {"role": "assistant", "content": "The answer"},
        {"role": "user", "content": CONTINUE_INSTRUCTION},
    ]
    sent = "The river follows the old harbour beneath"
    assert get_strategy("instruction").interpret(sent, " the old harbour beneath the bridge") == " the bridge"


def test_completions_renders_the_template_and_appends_the_answer() -> None:
    spec = RunSpec(messages=SPEC.messages, model="m", template="chatml")
    endpoint, body = get_strategy("completions").build(spec, "The answer", "")
    assert endpoint == "completions"
    assert body["prompt"] == "<|im_start|>user\nWrite<|im_end|>\n<|im_start|>assistant\nThe answer"
    assert "messages" not in body


def test_a_cut_inside_reasoning_prefills_an_open_think_tag() -> None:
    assert (
        build("prefill", answer="", reasoning="Let me plan")[1]["messages"][-1]["content"]
        == "<think>\nLet me plan"
    )


def test_extra_body_is_sent_as_is() -> None:
    spec = RunSpec(messages=SPEC.messages, extra_body={"top_k": 5})
    assert get_strategy("prefill").build(spec, "", "")[1]["top_k"] == 5


def test_an_unknown_strategy_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="instruction"):
        get_strategy("guess")


def test_a_cut_right_after_the_opening_tag_prefills_the_tag_alone() -> None:
    assert prefill_text("", "", "open") == "<think>\n"


def test_a_cut_right_after_the_closing_tag_prefills_the_whole_reasoning() -> None:
    assert prefill_text("", "Plan", "closed") == "<think>\nPlan\n</think>\n\n"


def test_once_the_answer_started_only_the_answer_is_prefilled() -> None:
    assert prefill_text("Answer", "Plan", "closed") == "Answer"
