"""The demo model over real loopback HTTP: endpoints, the document, continuation."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from core.demo import count_tokens, demo_document, demo_reasoning, start_demo_server
from core.demo.templates import FAMILIES

from .helpers import DemoAPI, chat
from .test_completion_prompts import RENDERED

# ---------------------------------------------------------------- models and errors


def test_models_lists_the_four_demo_models(http: httpx.Client, demo_server: str) -> None:
    data = http.get(demo_server + "/models").json()["data"]
    assert [m["id"] for m in data] == ["demo", "demo-32k", "demo-reasoner", "demo-1m"]
    assert all("metadata" not in m for m in data)


def test_models_with_meta_adds_context_output_cap_and_prices(http: httpx.Client, demo_server: str) -> None:
    data = http.get(demo_server + "/models", params={"filter": "with_meta"}).json()["data"]
    meta = {m["id"]: m["metadata"] for m in data}
    assert meta["demo"]["context_length"] == 8192
    assert meta["demo-32k"]["context_length"] == 32768
    assert meta["demo-1m"]["context_length"] == 1_048_576
    assert meta["demo-reasoner"]["max_tokens"] == 4096
    assert meta["demo"]["pricing"] == {"input_tokens": 0.10, "output_tokens": 0.40}


def test_one_model_by_id(http: httpx.Client, demo_server: str) -> None:
    assert http.get(demo_server + "/models/demo-32k").json()["metadata"]["context_length"] == 32768


def test_deepinfra_path_shape_serves_the_same_api(api: DemoAPI, demo_server: str) -> None:
    base = demo_server + "/openai"
    assert api.client.get(base + "/models").status_code == 200
    assert api.post(base, chat("Write about maps")).json()["choices"][0]["message"][
        "content"
    ] == demo_document("Write about maps")


def test_unknown_model_is_a_404_in_openai_wording(api: DemoAPI, demo_server: str) -> None:
    response = api.post(demo_server, chat("hi", model="gpt-9"))
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "The model `gpt-9` does not exist"


def test_a_body_that_is_not_json_is_a_400(http: httpx.Client, demo_server: str) -> None:
    response = http.post(demo_server + "/chat/completions", content=b"{not json")
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "body",
    [{"model": "demo"}, {"model": "demo", "messages": []}, {"model": "demo", "messages": [{"role": "x"}]}],
)
def test_a_body_without_valid_messages_is_a_422(api: DemoAPI, demo_server: str, body: dict) -> None:
    assert api.post(demo_server, body).status_code == 422


@pytest.mark.parametrize("value", [0, -5, "many"])
def test_a_bad_max_tokens_is_a_400(api: DemoAPI, demo_server: str, value: object) -> None:
    response = api.post(demo_server, chat("hi", max_tokens=None) | {"max_tokens": value})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "max_tokens"


def test_an_unknown_path_is_a_json_404(http: httpx.Client, demo_server: str) -> None:
    response = http.get(demo_server + "/embeddings")
    assert response.status_code == 404
    assert "error" in response.json()


def test_errors_and_responses_carry_a_request_id(api: DemoAPI, demo_server: str) -> None:
    assert api.post(demo_server, chat("hi", model="nope")).headers["x-request-id"].startswith("req-demo-")


# ---------------------------------------------------------------- single shot


def test_non_streamed_single_shot_is_the_document(api: DemoAPI, demo_server: str) -> None:
    body = api.post(demo_server, chat("Write about lanterns")).json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == demo_document("Write about lanterns")
    assert body["choices"][0]["finish_reason"] == "stop"


def test_streamed_single_shot_is_the_document_one_token_per_chunk(api: DemoAPI, demo_server: str) -> None:
    result = api.stream(demo_server, chat("Write about lanterns"))
    document = demo_document("Write about lanterns")
    assert result.content == document
    assert len(result.contents) == count_tokens(document) == result.usage["completion_tokens"]
    assert (result.finish_reason, result.done, result.headers["content-type"]) == (
        "stop",
        True,
        "text/event-stream; charset=utf-8",
    )


def test_a_stream_starts_with_a_role_chunk_and_ends_with_done(api: DemoAPI, demo_server: str) -> None:
    result = api.stream(demo_server, chat("Write about lanterns", max_tokens=3))
    first = json.loads(result.events[0])
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert result.events[-1] == "[DONE]"


def test_a_short_max_tokens_ends_with_length(api: DemoAPI, demo_server: str) -> None:
    result = api.stream(demo_server, chat("Write about lanterns", max_tokens=10))
    assert result.finish_reason == "length"
    assert result.content == demo_document("Write about lanterns")[: len(result.content)]
    assert len(result.contents) == 10


def test_prompt_tokens_count_each_message_plus_4(api: DemoAPI, demo_server: str) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Write about maps"}]
    usage = api.post(demo_server, {"model": "demo", "messages": messages, "max_tokens": 5}).json()["usage"]
    assert usage["prompt_tokens"] == (2 + 4) + (3 + 4)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] == 18


def test_the_system_prompt_does_not_change_the_document(api: DemoAPI, demo_server: str) -> None:
    messages = [
        {"role": "system", "content": "You are a pirate."},
        {"role": "user", "content": "Write about maps"},
    ]
    content = api.post(demo_server, {"model": "demo", "messages": messages}).json()["choices"][0]["message"]
    assert content["content"] == demo_document("Write about maps")


def test_list_content_parts_are_read_as_text(api: DemoAPI, demo_server: str) -> None:
    messages = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Write about "}, {"type": "text", "text": "maps"}],
        }
    ]
    content = api.post(demo_server, {"model": "demo", "messages": messages}).json()["choices"][0]["message"]
    assert content["content"] == demo_document("Write about maps")


def test_max_tokens_above_the_output_cap_is_lowered_to_4096(api: DemoAPI, demo_server: str) -> None:
    body = api.post(
        demo_server, chat("Write 6000 tokens about maps", model="demo-32k", max_tokens=9000)
    ).json()
    assert body["usage"]["completion_tokens"] == 4096
    assert body["choices"][0]["finish_reason"] == "length"


def test_a_missing_max_tokens_fills_what_the_context_leaves(api: DemoAPI, demo_server: str) -> None:
    filler = " ".join(["word"] * 5000)
    messages = [{"role": "system", "content": filler}, {"role": "user", "content": "Write 5000 tokens"}]
    body = api.post(demo_server, {"model": "demo", "messages": messages}).json()
    assert body["usage"]["prompt_tokens"] == 5000 + 4 + 3 + 4
    assert body["usage"]["completion_tokens"] == 8192 - body["usage"]["prompt_tokens"]


def test_a_missing_max_tokens_is_capped_at_4096(api: DemoAPI, demo_server: str) -> None:
    body = api.post(demo_server, chat("Write 6000 tokens", model="demo-32k", max_tokens=None)).json()
    assert body["usage"]["completion_tokens"] == 4096


# ---------------------------------------------------------------- continuation


@pytest.mark.parametrize(
    ("max_tokens", "prompt"),
    [
        (1, "Write 200 tokens about harbours"),
        (7, "Write about harbours"),
        (64, "Write about harbours"),
        (1000, "Write about harbours"),
    ],
)
def test_n_prefill_rounds_reproduce_the_single_shot_answer(
    api: DemoAPI, demo_server: str, max_tokens: int, prompt: str
) -> None:
    single = api.stream(demo_server, chat(prompt)).content
    answer, rounds = api.rounds(demo_server, prompt, max_tokens)
    assert answer == single == demo_document(prompt)
    assert len(rounds) == -(-count_tokens(single) // max_tokens)


def test_a_prefill_ending_inside_a_token_gets_the_rest_of_that_token_first(api: DemoAPI, demo_url) -> None:
    document = demo_document("Write about maps")
    cut = document.index(" ", 40) + 3  # three characters into a word
    messages = [
        {"role": "user", "content": "Write about maps"},
        {"role": "assistant", "content": document[:cut]},
    ]
    result = api.stream(demo_url(template="keep"), {"model": "demo", "messages": messages, "max_tokens": 2})
    assert document[:cut] + result.content == document[: cut + len(result.content)]
    assert not result.contents[0].startswith(" ")


def test_a_prefill_that_is_not_a_prefix_continues_from_the_common_prefix(
    api: DemoAPI, demo_server: str
) -> None:
    document = demo_document("Write about maps")
    wrong = document[:100] + "XYZ unrelated words"
    messages = [{"role": "user", "content": "Write about maps"}, {"role": "assistant", "content": wrong}]
    result = api.stream(demo_server, {"model": "demo", "messages": messages, "max_tokens": 4096})
    assert result.content == document[100:]


def test_template_trim_regenerates_a_trailing_space(api: DemoAPI, demo_url) -> None:
    document = demo_document("Write about maps")
    cut = document.index(" ", 50) + 1  # the prefill ends with a space
    messages = [
        {"role": "user", "content": "Write about maps"},
        {"role": "assistant", "content": document[:cut]},
    ]
    trimmed = api.stream(demo_url(template="trim"), {"model": "demo", "messages": messages, "max_tokens": 1})
    kept = api.stream(demo_url(template="keep"), {"model": "demo", "messages": messages, "max_tokens": 1})
    assert trimmed.content.startswith(" ")
    assert document[: cut - 1] + trimmed.content == document[: cut - 1 + len(trimmed.content)]
    assert document[:cut] + kept.content == document[: cut + len(kept.content)]


def test_a_continue_instruction_restarts_five_tokens_early(api: DemoAPI, demo_url) -> None:
    document = demo_document("Write about maps")
    answer = document[:300]
    messages = [
        {"role": "user", "content": "Write about maps"},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "Please CONTINUE exactly where you stopped."},
    ]
    result = api.stream(
        demo_url(prefill="ignored"), {"model": "demo", "messages": messages, "max_tokens": 4096}
    )
    assert result.content == document[len(document) - len(result.content) :]
    overlap = answer[len(document) - len(result.content) :]
    assert count_tokens(overlap) == 5
    assert result.content.startswith(overlap)


# ---------------------------------------------------------------- /completions


@pytest.mark.parametrize("family", [f.name for f in FAMILIES])
def test_completions_continue_the_same_document_in_every_template(
    api: DemoAPI, demo_server: str, family: str
) -> None:
    document = demo_document("Write about maps")
    prompt = RENDERED[family].format(user="Write about maps", answer=document[:120])
    result = api.stream(demo_server, {"model": "demo", "prompt": prompt, "max_tokens": 4096}, "/completions")
    assert document[:120] + result.content == document
    assert json.loads(result.events[0])["object"] == "text_completion"


def test_completions_on_the_reasoner_write_think_tags_and_continue_inside_them(
    api: DemoAPI, demo_server: str
) -> None:
    think = f"<think>\n{demo_reasoning('Write about maps')}\n</think>\n\n{demo_document('Write about maps')}"
    fresh = RENDERED["chatml"].format(user="Write about maps", answer="")
    cut = RENDERED["chatml"].format(user="Write about maps", answer=think[:40])
    path = "/completions"
    assert (
        api.post(demo_server, {"model": "demo-reasoner", "prompt": fresh}, path).json()["choices"][0]["text"]
        == think
    )
    rest = api.post(demo_server, {"model": "demo-reasoner", "prompt": cut}, path).json()["choices"][0]["text"]
    assert think[:40] + rest == think


def test_completions_with_an_unknown_format_key_on_the_whole_prompt(api: DemoAPI, demo_server: str) -> None:
    body = api.post(demo_server, {"model": "demo", "prompt": "Write about maps"}, "/completions").json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == demo_document("Write about maps")
    assert body["usage"]["prompt_tokens"] == 3


def test_completions_and_chat_agree_for_the_same_user_message(api: DemoAPI, demo_server: str) -> None:
    prompt = RENDERED["llama3"].format(user="Write about maps", answer="")
    text = api.post(demo_server, {"model": "demo", "prompt": prompt}, "/completions").json()["choices"][0][
        "text"
    ]
    assert text == api.post(demo_server, chat("Write about maps")).json()["choices"][0]["message"]["content"]


# ---------------------------------------------------------------- connections


def _raw_request(body: bytes) -> bytes:
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: demo\r\nContent-Type: application/json\r\n"
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def _receive_until(sock: socket.socket, done: bytes) -> bytes:
    received = b""
    while done not in received:
        data = sock.recv(65536)
        assert data, f"connection closed after {received!r}"
        received += data
    return received


def test_two_requests_share_one_keep_alive_connection(demo_server: str) -> None:
    port = int(demo_server.rsplit(":", 1)[1].split("/")[0])
    stream = json.dumps(chat("Write about maps", max_tokens=5, stream=True)).encode()
    plain = json.dumps(chat("Write about maps", max_tokens=5)).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(_raw_request(stream))
        first = _receive_until(sock, b"[DONE]\n\n\r\n0\r\n\r\n")
        sock.sendall(_raw_request(plain))
        second = _receive_until(sock, b'"total_tokens"')
    assert b"Transfer-Encoding: chunked" in first
    assert second.startswith(b"HTTP/1.1 200")


def test_a_client_leaving_mid_stream_is_handled_quietly(capfd: pytest.CaptureFixture[str]) -> None:
    with start_demo_server(rate=500) as server, httpx.Client() as client:
        body = chat("Write about maps", max_tokens=1000, stream=True)
        with client.stream("POST", server.base_url + "/chat/completions", json=body) as response:
            next(response.iter_raw())
        deadline = time.monotonic() + 60
        while server.active_requests and time.monotonic() < deadline:
            time.sleep(0.01)  # waiting for the server to notice, not for the assertion to pass
        assert server.active_requests == 0
        assert (
            client.post(server.base_url + "/chat/completions", json=chat("hi", max_tokens=2)).status_code
            == 200
        )
    assert capfd.readouterr().err == ""


def test_stop_closes_the_port() -> None:
    server = start_demo_server()
    assert httpx.get(server.base_url + "/models").status_code == 200
    server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.base_url + "/models")
