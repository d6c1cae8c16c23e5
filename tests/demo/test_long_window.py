"""demo-1m: a 1,048,576-token window, and long prefills counted off the document.

Every continuation round re-sends the whole answer so far, so the demo model must read a
prefill of millions of characters per request without tokenizing it again: a prefill that
is the start of the document is counted with ``Document.prefix_tokens`` (one compare and a
bisection). These tests pin that the count is exactly ``count_tokens`` wherever the prefill
ends, and that a 1M-token answer is served through the window.
"""

from __future__ import annotations

import httpx
from hypothesis import given
from hypothesis import strategies as st

from core.demo import count_tokens, demo_document
from core.demo.models import MODELS, OUTPUT_CAP
from core.demo.tokens import Document

from .helpers import DemoAPI, chat

WINDOW = 1_048_576
PROMPT = "Write 30000 tokens about lanterns"  # about 180,000 characters


def prompt_tokens(*texts: str) -> int:
    """What the demo bills for chat messages with these texts: their tokens + 4 each."""
    return sum(count_tokens(t) + 4 for t in texts)


def prefilled(prompt: str, answer: str, **extra: object) -> dict[str, object]:
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    return {"model": "demo-1m", "messages": messages, **extra}


def test_demo_1m_is_in_the_model_table_with_the_common_output_cap() -> None:
    assert MODELS["demo-1m"].context_length == WINDOW
    assert OUTPUT_CAP == 4096


def test_models_list_demo_1m_with_its_window(http: httpx.Client, demo_server: str) -> None:
    assert "demo-1m" in [m["id"] for m in http.get(demo_server + "/models").json()["data"]]
    meta = http.get(demo_server + "/models/demo-1m").json()["metadata"]
    assert (meta["context_length"], meta["max_tokens"]) == (WINDOW, 4096)
    assert meta["pricing"] == {"input_tokens": 0.30, "output_tokens": 1.20}


def test_a_long_run_on_demo_1m_reproduces_the_document(api: DemoAPI, demo_server: str) -> None:
    prompt = "Write 60000 tokens about lanterns"  # beyond demo-32k's window
    answer, rounds = api.rounds(demo_server, prompt, 4096, model="demo-1m")
    assert answer == demo_document(prompt, "demo-1m")
    assert len(rounds) == 15  # 60000 / 4096, rounded up
    assert [r.finish_reason for r in rounds] == ["length"] * 14 + ["stop"]
    sent = answer[: len(answer) - len(rounds[-1].content)]  # the last round's prefill
    assert rounds[-1].usage is not None
    assert rounds[-1].usage["prompt_tokens"] == prompt_tokens(prompt, sent)


def test_the_same_prefill_overflows_demo_32k_but_fits_demo_1m(api: DemoAPI, demo_server: str) -> None:
    prompt = "Write 60000 tokens about lanterns"
    answer = demo_document(prompt)[:300_000].rstrip()  # about 50,000 tokens (trim: no trailing space)
    small = api.post(demo_server, {**prefilled(prompt, answer), "model": "demo-32k", "max_tokens": 10})
    assert small.status_code == 400
    large = api.post(demo_server, prefilled(prompt, answer, max_tokens=10)).json()
    assert large["usage"]["prompt_tokens"] == prompt_tokens(prompt, answer)
    content = large["choices"][0]["message"]["content"]
    assert content and answer + content == demo_document(prompt)[: len(answer) + len(content)]


def test_a_1m_token_answer_is_served_to_its_last_token(api: DemoAPI, demo_server: str) -> None:
    prompt = "Write 1000000 tokens about the sea"
    document = Document(demo_document(prompt, "demo-1m"))
    assert len(document) == 1_000_000
    cut = document.starts[-100]  # all but the last 100 tokens, as a prefill
    body = api.post(demo_server, prefilled(prompt, document.text[:cut], max_tokens=4096)).json()
    usage = body["usage"]
    assert usage["prompt_tokens"] == (count_tokens(prompt) + 4) + (999_900 + 4)
    assert usage["prompt_tokens"] + 4096 <= WINDOW
    assert usage["completion_tokens"] == 100
    assert body["choices"][0]["finish_reason"] == "stop"
    assert document.text[:cut] + body["choices"][0]["message"]["content"] == document.text


def test_a_long_prefill_is_billed_exactly_wherever_it_ends(api: DemoAPI, demo_server: str) -> None:
    document = demo_document(PROMPT)
    cuts = [5000, document.index(" ", 9000), document.index(" ", 9000) + 1, document.index(" ", 9000) + 3]
    cuts += [len(document) - 1, len(document)]
    for cut in cuts:
        answer = document[:cut]
        usage = api.post(demo_server, prefilled(PROMPT, answer, max_tokens=1)).json()["usage"]
        assert usage["prompt_tokens"] == prompt_tokens(PROMPT, answer), cut


def test_a_long_prefill_that_is_not_the_document_is_counted_by_tokenizing(
    api: DemoAPI, demo_server: str
) -> None:
    edited = demo_document(PROMPT)[:20000] + " an edited ending"
    body = api.post(demo_server, prefilled(PROMPT, edited, max_tokens=1)).json()
    assert body["usage"]["prompt_tokens"] == prompt_tokens(PROMPT, edited)


def test_a_long_answer_before_a_continue_instruction_is_billed_exactly(
    api: DemoAPI, demo_server: str
) -> None:
    answer = demo_document(PROMPT)[:20001]
    messages = [
        {"role": "user", "content": PROMPT},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "Continue"},
    ]
    body = api.post(demo_server, {"model": "demo-1m", "messages": messages, "max_tokens": 1}).json()
    assert body["usage"]["prompt_tokens"] == prompt_tokens(PROMPT, answer, "Continue")


def test_a_long_completions_prompt_is_billed_exactly(api: DemoAPI, demo_server: str) -> None:
    answer = demo_document(PROMPT)[:20001]
    head = f"<|im_start|>user\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n"
    for prompt in (head + answer, head.rstrip("\n") + answer):  # A after whitespace, and glued on
        body = api.post(demo_server, {"model": "demo-1m", "prompt": prompt, "max_tokens": 1}, "/completions")
        assert body.json()["usage"]["prompt_tokens"] == count_tokens(prompt)


def test_the_single_shot_and_the_chat_agree_on_demo_1m(api: DemoAPI, demo_server: str) -> None:
    content = api.post(demo_server, chat("Write 3000 tokens about maps", model="demo-1m")).json()
    assert content["choices"][0]["message"]["content"] == demo_document("Write 3000 tokens about maps")


@given(st.text(alphabet=" \n\tab—é" + "x" * 5, max_size=80), st.data())
def test_prefix_tokens_is_count_tokens_of_the_prefix(text: str, data: st.DataObject) -> None:
    document = Document(text)
    cut = data.draw(st.integers(0, len(text)))
    assert document.prefix_tokens(text[:cut]) == count_tokens(text[:cut])
    assert document.prefix_tokens(text[:cut] + "#") is None  # "#" is not in the alphabet
