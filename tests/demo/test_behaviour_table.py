"""Every value of the behaviour table, selected per request by a URL prefix."""

from __future__ import annotations

from typing import Any

import pytest

from core.demo import count_tokens, demo_document, demo_reasoning

from .helpers import DemoAPI, chat

PROMPT = "Write about maps"
DOCUMENT = demo_document(PROMPT)
A = DOCUMENT[:200].rstrip()  # a prefill that is a prefix of the document


def prefilled(answer: str = A, max_tokens: int = 4096, **assistant: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": answer, **assistant}]
    return {"model": "demo", "messages": messages, "max_tokens": max_tokens}


# ---------------------------------------------------------------- prefill


def test_prefill_continue_continues_the_document(api: DemoAPI, demo_url) -> None:
    assert api.stream(demo_url(prefill="continue"), prefilled()).content == DOCUMENT[len(A) :]


def test_prefill_ignored_starts_the_answer_anew(api: DemoAPI, demo_url) -> None:
    assert api.stream(demo_url(prefill="ignored"), prefilled()).content == DOCUMENT


@pytest.mark.parametrize("value", ["prefix", "echo"])
def test_prefill_prefix_and_echo_ignore_a_prefill_without_the_flag(
    api: DemoAPI, demo_url, value: str
) -> None:
    assert api.stream(demo_url(prefill=value), prefilled()).content == DOCUMENT


def test_prefill_prefix_honours_the_prefix_flag(api: DemoAPI, demo_url) -> None:
    assert api.stream(demo_url(prefill="prefix"), prefilled(prefix=True)).content == DOCUMENT[len(A) :]


def test_prefill_echo_streams_the_prefill_back_then_continues(api: DemoAPI, demo_url) -> None:
    result = api.stream(demo_url(prefill="echo"), prefilled(prefix=True))
    assert result.contents[0] == A
    assert result.content == DOCUMENT
    assert result.usage["completion_tokens"] == count_tokens(DOCUMENT[len(A) :])


def test_prefill_echo_also_echoes_in_a_non_streamed_reply(api: DemoAPI, demo_url) -> None:
    body = api.post(demo_url(prefill="echo"), prefilled(prefix=True)).json()
    assert body["choices"][0]["message"]["content"] == DOCUMENT


# ---------------------------------------------------------------- vllm


def test_vllm_off_honours_a_plain_prefill(api: DemoAPI, demo_url) -> None:
    assert api.stream(demo_url(vllm="off"), prefilled()).content == DOCUMENT[len(A) :]


def test_vllm_required_ignores_a_prefill_without_the_flags(api: DemoAPI, demo_url) -> None:
    assert api.stream(demo_url(vllm="required"), prefilled()).content == DOCUMENT


def test_vllm_required_honours_continue_final_message(api: DemoAPI, demo_url) -> None:
    body = prefilled() | {"continue_final_message": True, "add_generation_prompt": False}
    assert api.stream(demo_url(vllm="required"), body).content == DOCUMENT[len(A) :]


def test_vllm_required_refuses_both_flags_true_like_vllm(api: DemoAPI, demo_url) -> None:
    response = api.post(demo_url(vllm="required"), prefilled() | {"continue_final_message": True})
    assert response.status_code == 400
    assert "add_generation_prompt" in response.json()["error"]["message"]


# ---------------------------------------------------------------- usage


def test_usage_final_rides_on_the_finish_chunk(api: DemoAPI, demo_url) -> None:
    result = api.stream(demo_url(usage="final"), chat(PROMPT, max_tokens=9))
    assert result.usage_on_finish and result.usage_chunks == 0
    assert result.usage["completion_tokens"] == 9


def test_usage_separate_sends_a_usage_chunk_when_asked(api: DemoAPI, demo_url) -> None:
    body = chat(PROMPT, max_tokens=9, stream_options={"include_usage": True})
    result = api.stream(demo_url(usage="separate"), body)
    assert (result.usage_on_finish, result.usage_chunks) == (False, 1)
    assert result.usage["total_tokens"] == result.usage["prompt_tokens"] + 9


def test_usage_separate_sends_nothing_unless_asked(api: DemoAPI, demo_url) -> None:
    assert api.stream(demo_url(usage="separate"), chat(PROMPT, max_tokens=9)).usage is None


def test_usage_absent_never_sends_usage(api: DemoAPI, demo_url) -> None:
    body = chat(PROMPT, max_tokens=9, stream_options={"include_usage": True})
    assert api.stream(demo_url(usage="absent"), body).usage is None
    assert "usage" not in api.post(demo_url(usage="absent"), chat(PROMPT, max_tokens=9)).json()


# ---------------------------------------------------------------- overflow

BIG = " ".join(["word"] * 5000)  # 5000 tokens


def overflowing(max_tokens: int = 4000) -> dict[str, Any]:
    """5011 prompt tokens: 5000 + 4 (system) + 3 + 4 (user)."""
    messages = [{"role": "system", "content": BIG}, {"role": "user", "content": "Write 5000 tokens"}]
    return {"model": "demo", "messages": messages, "max_tokens": max_tokens}


@pytest.mark.parametrize(
    ("flavour", "message"),
    [
        (
            "vllm",
            "This model's maximum context length is 8192 tokens. However, you requested 9011 tokens "
            "(5011 in the messages, 4000 in the completion). Please reduce the length of the messages or "
            "completion.",
        ),
        ("deepinfra", "Requested tokens (9011) exceed context window of 8192"),
        (
            "openrouter",
            "This endpoint's maximum context length is 8192 tokens. However, you requested about 9011 tokens "
            "(5011 of text input, 4000 in the output). Please reduce the length of either one, or use the "
            '"middle-out" transform to compress your prompt automatically.',
        ),
        ("llamacpp", "the request exceeds the available context size, try increasing it"),
    ],
)
def test_overflow_answers_400_in_each_servers_wording(
    api: DemoAPI, demo_url, flavour: str, message: str
) -> None:
    response = api.post(demo_url(overflow=flavour), overflowing())
    assert response.status_code == 400
    assert response.json()["error"]["message"] == message


def test_overflow_llamacpp_carries_its_type_and_numbers(api: DemoAPI, demo_url) -> None:
    error = api.post(demo_url(overflow="llamacpp"), overflowing()).json()["error"]
    assert (error["type"], error["n_prompt_tokens"], error["n_ctx"]) == (
        "exceed_context_size_error",
        5011,
        8192,
    )


def test_overflow_clamp_lowers_max_tokens_silently(api: DemoAPI, demo_url) -> None:
    body = api.post(demo_url(overflow="clamp"), overflowing()).json()
    assert body["usage"]["completion_tokens"] == 8192 - 5011
    assert body["usage"]["total_tokens"] == 8192


def test_overflow_clamp_still_refuses_a_prompt_that_fills_the_context(api: DemoAPI, demo_url) -> None:
    body = {"model": "demo", "messages": [{"role": "user", "content": BIG + BIG}], "max_tokens": 10}
    response = api.post(demo_url(overflow="clamp"), body)
    assert response.status_code == 400
    assert "maximum context length is 8192" in response.json()["error"]["message"]


def test_a_request_that_exactly_fills_the_context_is_accepted(api: DemoAPI, demo_url) -> None:
    assert api.post(demo_url(), overflowing(8192 - 5011)).status_code == 200


# ---------------------------------------------------------------- template


def test_template_trim_and_keep_differ_on_a_trailing_space(api: DemoAPI, demo_url) -> None:
    answer = DOCUMENT[: DOCUMENT.index(" ", 200) + 1]  # ends with the space before a word
    trimmed = api.stream(demo_url(template="trim"), prefilled(answer)).content
    kept = api.stream(demo_url(template="keep"), prefilled(answer)).content
    assert (trimmed, kept) == (DOCUMENT[len(answer) - 1 :], DOCUMENT[len(answer) :])


# ---------------------------------------------------------------- reasoning

REASONING = demo_reasoning(PROMPT)


def reasoner(max_tokens: int = 4096, answer: str | None = None) -> dict[str, Any]:
    body = chat(PROMPT, model="demo-reasoner", max_tokens=max_tokens)
    if answer is not None:
        body["messages"].append({"role": "assistant", "content": answer})
    return body


@pytest.mark.parametrize(("value", "field"), [("field", "reasoning_content"), ("reasoning", "reasoning")])
def test_reasoning_goes_to_its_own_field(api: DemoAPI, demo_url, value: str, field: str) -> None:
    result = api.stream(demo_url(reasoning=value), reasoner())
    assert (result.reasoning, result.content, result.reasoning_fields) == (REASONING, DOCUMENT, {field})
    assert result.usage["completion_tokens_details"]["reasoning_tokens"] == count_tokens(REASONING)


def test_reasoning_think_puts_tags_in_the_content(api: DemoAPI, demo_url) -> None:
    result = api.stream(demo_url(reasoning="think"), reasoner())
    assert result.content == f"<think>\n{REASONING}\n</think>\n\n{DOCUMENT}"
    assert result.reasoning == ""


def test_a_non_streamed_reasoner_reply_has_reasoning_content(api: DemoAPI, demo_url) -> None:
    message = api.post(demo_url(), reasoner()).json()["choices"][0]["message"]
    assert (message["reasoning_content"], message["content"]) == (REASONING, DOCUMENT)


def test_a_cut_inside_the_reasoning_gives_length_and_no_content(api: DemoAPI, demo_url) -> None:
    result = api.stream(demo_url(), reasoner(max_tokens=10))
    assert (result.finish_reason, result.content, result.reasoning) == (
        "length",
        "",
        REASONING[: len(result.reasoning)],
    )


def test_a_think_prefill_continues_the_reasoning_then_answers(api: DemoAPI, demo_url) -> None:
    so_far = REASONING[:50].rstrip()
    result = api.stream(demo_url(), reasoner(answer="<think>" + so_far))
    assert (result.reasoning, result.content) == (REASONING[len(so_far) :], DOCUMENT)


def test_a_think_prefill_in_think_mode_continues_inside_the_tags(api: DemoAPI, demo_url) -> None:
    think = f"<think>\n{REASONING}\n</think>\n\n{DOCUMENT}"
    cut = think.index(" ", 60)  # the prefill ends with a word, so trimming changes nothing
    exact = api.stream(demo_url(reasoning="think"), reasoner(answer=think[:cut])).content
    loose = api.stream(demo_url(reasoning="think"), reasoner(answer="<think>" + think[8:cut])).content
    assert exact == loose == think[cut:]


def test_a_closed_think_prefill_in_think_mode_continues_the_answer(api: DemoAPI, demo_url) -> None:
    result = api.stream(demo_url(reasoning="think"), reasoner(answer=f"<think>{REASONING}</think>{A}"))
    assert result.content == DOCUMENT[len(A) :]


def test_a_plain_prefill_continues_the_answer_without_reasoning(api: DemoAPI, demo_url) -> None:
    result = api.stream(demo_url(), reasoner(answer=A))
    assert (result.reasoning, result.content) == ("", DOCUMENT[len(A) :])


def test_reasoner_rounds_reproduce_reasoning_and_answer(api: DemoAPI, demo_url) -> None:
    reasoning, content = "", ""
    for _ in range(200):
        prefill = content if content else ("<think>" + reasoning if reasoning else None)
        result = api.stream(demo_url(), reasoner(max_tokens=37, answer=prefill))
        reasoning += result.reasoning
        content += result.content
        if result.finish_reason != "length":
            break
    assert (reasoning, content) == (REASONING, DOCUMENT)


def test_reasoning_behaviour_does_not_touch_other_models(api: DemoAPI, demo_url) -> None:
    assert api.stream(demo_url(reasoning="think"), chat(PROMPT)).content == DOCUMENT


# ---------------------------------------------------------------- auth


@pytest.mark.parametrize(
    ("key", "status"), [(None, 401), ("sk-wrong", 401), ("demo-empty", 402), ("demo-key", 200)]
)
def test_auth_key_checks_the_bearer_token(api: DemoAPI, demo_url, key: str | None, status: int) -> None:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = api.post(demo_url(auth="key"), chat(PROMPT, max_tokens=3), headers=headers)
    assert response.status_code == status
    if key:
        assert key not in response.text


def test_auth_key_also_guards_the_model_list(api: DemoAPI, demo_url) -> None:
    assert api.client.get(demo_url(auth="key") + "/models").status_code == 401


def test_auth_open_needs_no_key(api: DemoAPI, demo_url) -> None:
    assert api.post(demo_url(auth="open"), chat(PROMPT, max_tokens=3)).status_code == 200


# ---------------------------------------------------------------- cap and bad values


def test_cap_changes_the_output_cap(api: DemoAPI, demo_url) -> None:
    body = api.post(demo_url(cap=100), chat(PROMPT, max_tokens=500)).json()
    assert body["usage"]["completion_tokens"] == 100


def test_a_bad_behaviour_value_in_the_url_is_a_400(api: DemoAPI, demo_server: str) -> None:
    response = api.post(demo_server.replace("/v1", "/x/usage=sometimes/v1"), chat(PROMPT))
    assert response.status_code == 400
    assert "usage" in response.json()["error"]["message"]


def test_unknown_keys_in_the_prefix_are_ignored(api: DemoAPI, demo_url) -> None:
    assert api.post(demo_url(colour="blue"), chat(PROMPT)).status_code == 200
