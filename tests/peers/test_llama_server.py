"""What the real peer server (llama-cpp-python on the tiny model) does, pinned.

These are facts about a third-party server, not about Continuum: the Continuum tests that run
against it rely on them, so a change of server version that alters one fails here first.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from core.continuation import seams
from tests.peers.server import Peer

PROMPTS = ["Once upon a time", "Write a long story about a lighthouse.", "1, 2, 3, 4, 5,"]
CHATML = "<|im_start|>{role}\n{content}<|im_end|>\n"


def chatml(messages: list[dict[str, str]]) -> str:
    """Continuum's ``chatml`` rendering (no <s>: the server adds it on /completions)."""
    return "".join(CHATML.format(**m) for m in messages) + "<|im_start|>assistant\n"


def post(peer: Peer, path: str, **body: Any) -> httpx.Response:
    return httpx.post(peer.base_url + path, json={"model": peer.model, "temperature": 0, **body}, timeout=120)


def complete(peer: Peer, prompt: str, n: int, **extra: Any) -> str:
    r = post(peer, "/completions", prompt=prompt, max_tokens=n, **extra)
    r.raise_for_status()
    return str(r.json()["choices"][0]["text"])


def chat(peer: Peer, messages: list[dict[str, str]], n: int, **extra: Any) -> dict[str, Any]:
    r = post(peer, "/chat/completions", messages=messages, max_tokens=n, **extra)
    r.raise_for_status()
    return dict(r.json())


def test_models_lists_the_alias_without_a_context_length(llama_server: Peer) -> None:
    body = httpx.get(llama_server.base_url + "/models").json()
    assert body == {
        "object": "list",
        "data": [{"id": "continuum-tiny", "object": "model", "owned_by": "me", "permissions": []}],
    }


@pytest.mark.parametrize("prompt", PROMPTS)
def test_completions_are_self_consistent_without_the_repeat_penalty(llama_server: Peer, prompt: str) -> None:
    k, j = 40, 15
    whole = complete(llama_server, prompt, k, repeat_penalty=1.0)
    head = complete(llama_server, prompt, j, repeat_penalty=1.0)
    assert head + complete(llama_server, prompt + head, k - j, repeat_penalty=1.0) == whole


def test_the_default_repeat_penalty_breaks_self_consistency_somewhere(llama_server: Peer) -> None:
    """repeat_penalty defaults to 1.1 and counts only the tokens generated in the request."""
    diverged = 0
    for prompt in PROMPTS:
        whole = complete(llama_server, prompt, 40)
        head = complete(llama_server, prompt, 15)
        diverged += head + complete(llama_server, prompt + head, 25) != whole
    assert diverged >= 1


@pytest.mark.parametrize(
    "extra",
    [{}, {"continue_final_message": True, "add_generation_prompt": False}, {"prefix": True}],
    ids=["prefill", "vllm-flags", "prefix"],
)
def test_a_trailing_assistant_message_is_closed_and_a_new_turn_opened(
    llama_server: Peer, extra: dict[str, Any]
) -> None:
    user = {"role": "user", "content": "Count"}
    assistant = {"role": "assistant", "content": "1, 2, 3, 4, 5,"}
    body: dict[str, Any] = {}
    if "prefix" in extra:
        assistant = {**assistant, "prefix": True}
    else:
        body = extra
    res = chat(llama_server, [user, assistant], 20, repeat_penalty=1.0, **body)
    closed = "".join(CHATML.format(**m) for m in (user, {"role": "assistant", "content": "1, 2, 3, 4, 5,"}))
    new_turn = complete(llama_server, closed + "<|im_start|>assistant\n", 20, repeat_penalty=1.0)
    continued = complete(llama_server, chatml([user]) + "1, 2, 3, 4, 5,", 20, repeat_penalty=1.0)
    assert res["choices"][0]["message"]["content"] == new_turn != continued
    assert res["usage"]["prompt_tokens"] == 52  # <s> + the closed turn + "<|im_start|>assistant\n"


@pytest.mark.parametrize("prompt", PROMPTS)
def test_completions_with_the_chatml_rendering_continue_a_chat_answer(
    llama_server: Peer, prompt: str
) -> None:
    user = [{"role": "user", "content": prompt}]
    whole = chat(llama_server, user, 40, repeat_penalty=1.0)["choices"][0]["message"]["content"]
    head = chat(llama_server, user, 15, repeat_penalty=1.0)["choices"][0]["message"]["content"]
    assert head + complete(llama_server, chatml(user) + head, 25, repeat_penalty=1.0) == whole
    prefill = chat(llama_server, [*user, {"role": "assistant", "content": head}], 25, repeat_penalty=1.0)
    assert head + prefill["choices"][0]["message"]["content"] != whole


def test_streams_carry_no_usage_and_end_with_length(llama_server: Peer) -> None:
    for path, body in [
        ("/completions", {"prompt": "Once upon a time"}),
        ("/chat/completions", {"messages": [{"role": "user", "content": "Hi"}]}),
    ]:
        payload = {"model": llama_server.model, "temperature": 0, "max_tokens": 8, "stream": True,
                   "stream_options": {"include_usage": True}, **body}  # fmt: skip
        with httpx.stream("POST", llama_server.base_url + path, json=payload, timeout=60) as r:
            raw = b"".join(r.iter_raw())
        events = [e for e in raw.split(b"\n\n") if e]
        assert events[-1] == b"data: [DONE]"
        chunks = [json.loads(e.removeprefix(b"data: ")) for e in events[:-1]]
        assert all("usage" not in c for c in chunks)
        assert [c["choices"][0]["finish_reason"] for c in chunks][-2:] == [None, "length"]


def test_an_overlong_prompt_is_a_400_unstreamed_and_an_empty_200_streamed(llama_server: Peer) -> None:
    prompt = " ".join(["the"] * (llama_server.n_ctx + 50))
    r = post(llama_server, "/completions", prompt=prompt, max_tokens=10)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert error["message"].startswith(f"This model's maximum context length is {llama_server.n_ctx} tokens")
    payload = {"model": llama_server.model, "prompt": prompt, "max_tokens": 10, "stream": True}
    with httpx.stream("POST", llama_server.base_url + "/completions", json=payload, timeout=60) as s:
        assert s.status_code == 200
        assert s.headers["content-type"].startswith("text/event-stream")
        assert b"".join(s.iter_raw()) == b""


def test_max_tokens_past_the_window_is_cut_silently(llama_server: Peer) -> None:
    prompt = " ".join(["the"] * (llama_server.n_ctx - 100))
    r = post(llama_server, "/completions", prompt=prompt, max_tokens=500, repeat_penalty=1.0)
    assert r.status_code == 200
    body = r.json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["total_tokens"] == llama_server.n_ctx


def test_the_model_writes_without_looping_and_never_stops(llama_server: Peer) -> None:
    for prompt in ("Once upon a time", chatml([{"role": "user", "content": "Write about lighthouses"}])):
        r = post(llama_server, "/completions", prompt=prompt, max_tokens=1500, repeat_penalty=1.0).json()
        assert r["choices"][0]["finish_reason"] == "length"
        assert r["usage"]["completion_tokens"] == 1500
        text = r["choices"][0]["text"]
        assert text.isascii()
        assert seams.check_repetition(text) is None
