"""The openai Python package, an independent client, talks to the demo model."""

from __future__ import annotations

import openai
import pytest

from core.demo import demo_document, demo_reasoning

PROMPT = "Write about maps"


def client(base_url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=20)


def test_openai_streams_a_chat_completion(demo_server: str) -> None:
    stream = client(demo_server).chat.completions.create(
        model="demo",
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=4096,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == demo_document(PROMPT)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == len(chunks) - 2


def test_openai_gets_a_non_streamed_chat_completion(demo_server: str) -> None:
    completion = client(demo_server).chat.completions.create(
        model="demo", messages=[{"role": "user", "content": PROMPT}], max_tokens=20
    )
    assert (
        completion.choices[0].message.content
        == demo_document(PROMPT)[: len(completion.choices[0].message.content)]
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 20


def test_openai_continues_a_prefill(demo_server: str) -> None:
    document = demo_document(PROMPT)
    completion = client(demo_server).chat.completions.create(
        model="demo",
        messages=[{"role": "user", "content": PROMPT}, {"role": "assistant", "content": document[:150]}],
    )
    assert document[:150] + completion.choices[0].message.content == document


def test_openai_sees_reasoning_content_as_an_extra_field(demo_server: str) -> None:
    completion = client(demo_server).chat.completions.create(
        model="demo-reasoner", messages=[{"role": "user", "content": PROMPT}]
    )
    message = completion.choices[0].message
    assert (message.model_extra or {})["reasoning_content"] == demo_reasoning(PROMPT)
    assert message.content == demo_document(PROMPT)


def test_openai_streams_a_text_completion(demo_server: str) -> None:
    stream = client(demo_server).completions.create(
        model="demo",
        prompt="<|im_start|>user\nWrite about maps<|im_end|>\n<|im_start|>assistant\n",
        stream=True,
    )
    assert "".join(c.choices[0].text for c in stream if c.choices) == demo_document(PROMPT)


def test_openai_lists_the_models(demo_server: str) -> None:
    assert [m.id for m in client(demo_server).models.list()] == [
        "demo",
        "demo-32k",
        "demo-reasoner",
        "demo-1m",
    ]


def test_openai_maps_the_demo_errors_to_its_exceptions(demo_url) -> None:
    with pytest.raises(openai.AuthenticationError):
        client(demo_url(auth="key"), key="wrong").models.list()
    with pytest.raises(openai.RateLimitError):
        client(demo_url(fail429=1)).chat.completions.create(
            model="demo", messages=[{"role": "user", "content": PROMPT}]
        )
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client(demo_url()).chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="maximum context length"):
        client(demo_url()).chat.completions.create(
            model="demo", messages=[{"role": "user", "content": "w " * 9000}], max_tokens=10
        )
