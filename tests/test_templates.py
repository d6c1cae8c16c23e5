"""Chat templates for the completions strategy: built-ins and sandboxed user Jinja."""

from __future__ import annotations

import pytest

from core.continuation.templates import TEMPLATE_NAMES, guess_template, render
from core.demo.templates import parse_prompt
from core.wire.errors import ConfigError

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Write about rivers"},
]


def test_llama3_ends_with_the_assistant_header() -> None:
    text = render("llama3", MESSAGES)
    assert text.startswith(
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
    )
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_chatml_and_qwen_are_the_same_template() -> None:
    assert render("chatml", MESSAGES) == render("qwen", MESSAGES)
    assert render("chatml", MESSAGES).endswith(
        "<|im_start|>user\nWrite about rivers<|im_end|>\n<|im_start|>assistant\n"
    )


def test_deepseek_puts_the_system_prompt_first() -> None:
    assert (
        render("deepseek", MESSAGES)
        == "<｜begin▁of▁sentence｜>Be brief.<｜User｜>Write about rivers<｜Assistant｜>"
    )


def test_mistral_folds_the_system_prompt_into_the_last_user_turn() -> None:
    assert render("mistral", MESSAGES) == "<s>[INST] Be brief.\n\nWrite about rivers[/INST]"


@pytest.mark.parametrize("name", ["llama3", "chatml", "deepseek"])
def test_the_demo_reads_back_the_user_message_and_answer(name: str) -> None:
    parsed = parse_prompt(render(name, MESSAGES) + "The answer so")
    assert (parsed.family, parsed.user, parsed.answer) == (name, "Write about rivers", "The answer so")


def test_a_user_jinja_template_is_rendered() -> None:
    source = (
        "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    assert render(source, MESSAGES) == "<system>Be brief.\n<user>Write about rivers\n<assistant>"


def test_a_user_template_cannot_reach_python_internals() -> None:
    with pytest.raises(ConfigError):
        render("{{ messages.__class__.__mro__[1].__subclasses__() }}", MESSAGES)


def test_raise_exception_in_a_template_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="only user"):
        render("{{ raise_exception('only user') }}", MESSAGES)


def test_an_unknown_template_name_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="llama3"):
        render("alpaca", MESSAGES)


@pytest.mark.parametrize(
    ("model", "name"),
    [
        ("meta-llama/Llama-3.3-70B-Instruct", "llama3"),
        ("deepseek-ai/DeepSeek-R1", "deepseek"),
        ("mistralai/Mistral-7B-Instruct-v0.3", "mistral"),
        ("Qwen/Qwen2.5-72B", "chatml"),
    ],
)
def test_the_template_is_guessed_from_the_model_name(model: str, name: str) -> None:
    assert guess_template(model) == name
    assert name in TEMPLATE_NAMES
