"""Reading rendered chat templates back (the prompt of POST /completions)."""

from __future__ import annotations

import pytest

from core.demo.templates import parse_prompt

RENDERED = {
    "llama3": (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n{answer}"
    ),
    "chatml": (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
        "<|im_start|>assistant\n{answer}"
    ),
    "deepseek": "<｜begin▁of▁sentence｜>Be brief.<｜User｜>{user}<｜Assistant｜>{answer}",
    "mistral": "<s>[INST] {user} [/INST]{answer}",
    "generic": "### System:\nBe brief.\n\n### User:\n{user}\n\n### Assistant:\n{answer}",
}


@pytest.mark.parametrize("family", sorted(RENDERED))
def test_each_template_family_gives_the_user_message_and_the_answer_so_far(family: str) -> None:
    parsed = parse_prompt(RENDERED[family].format(user="Write about maps", answer="# Maps and"))
    assert (parsed.family, parsed.user, parsed.answer) == (family, "Write about maps", "# Maps and")


def test_the_last_assistant_marker_and_the_user_turn_before_it_count() -> None:
    prompt = (
        "<|im_start|>user\nfirst<|im_end|>\n<|im_start|>assistant\nold<|im_end|>\n"
        "<|im_start|>user\nsecond<|im_end|>\n<|im_start|>assistant\nnew"
    )
    parsed = parse_prompt(prompt)
    assert (parsed.user, parsed.answer) == ("second", "new")


def test_an_unknown_format_keys_on_the_whole_prompt_and_starts_fresh() -> None:
    parsed = parse_prompt("  Write about maps\n")
    assert (parsed.family, parsed.user, parsed.answer) == (None, "Write about maps", "")
