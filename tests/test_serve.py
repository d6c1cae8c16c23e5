"""``python -m core serve`` with the ``openai`` package as the client, and the endpoint's surface:
models, errors in OpenAI's shape, the bearer token, the concurrency limit, runs in the history."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from core.cli import main
from core.cli import main as cli_main
from core.demo import demo_document, start_demo_server
from core.serve import RunningServe
from core.services.store import Store
from tests.serving import chat, serve_demo, stored

PROMPT = "Write 20000 tokens about lighthouses"


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve") / "history.sqlite3"


@pytest.fixture(scope="module")
def serve(demo_server: str, history: Path) -> Iterator[RunningServe]:
    with serve_demo(demo_server, history) as server:
        yield server


@pytest.fixture(scope="module")
def client(serve: RunningServe) -> openai.OpenAI:
    return openai.OpenAI(base_url=serve.base_url, api_key="unused", max_retries=0)


def test_openai_unstreamed_20000_tokens_past_a_4096_cap_are_the_document(client, history) -> None:
    answer = client.chat.completions.create(model="demo-32k", messages=[{"role": "user", "content": PROMPT}])
    info = answer.model_extra["continuum"]
    run = stored(history, info["run_id"])
    assert answer.choices[0].message.content == demo_document(PROMPT)
    assert answer.choices[0].finish_reason == "stop"
    assert info["rounds"] == len(run.rounds) >= 5  # 20,000 tokens, 4,096 a request
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (
        run.prompt_tokens_billed,
        run.completion_tokens,
    )


def test_openai_streamed_20000_tokens_arrive_as_one_answer(client, history) -> None:
    stream = client.chat.completions.create(
        model="demo-32k", messages=[{"role": "user", "content": PROMPT}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    last = chunks[-1]
    run = stored(history, last.model_extra["continuum"]["run_id"])
    assert text == demo_document(PROMPT) == run.text
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "stop"
    ]
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (
        run.prompt_tokens_billed,
        run.completion_tokens,
    )
    assert len(run.rounds) >= 5


def test_max_tokens_is_the_budget_of_the_whole_answer(client) -> None:
    answer = client.chat.completions.create(
        model="demo-32k", messages=[{"role": "user", "content": PROMPT}], max_tokens=5000
    )
    assert answer.usage.completion_tokens == 5000
    assert answer.choices[0].finish_reason == "length"
    assert answer.model_extra["continuum"]["rounds"] == 2  # 4,096 + 904
    assert demo_document(PROMPT).startswith(answer.choices[0].message.content)


def test_continuum_fields_set_the_round_size_and_the_rounds(client) -> None:
    answer = client.chat.completions.create(
        model="demo-32k",
        messages=[{"role": "user", "content": PROMPT}],
        extra_body={"continuum": {"round_tokens": 300, "max_rounds": 3}},
    )
    assert answer.model_extra["continuum"]["rounds"] == 3
    assert answer.model_extra["continuum"]["stop_reason"] == "max_rounds"
    assert answer.choices[0].finish_reason == "length"
    assert 890 <= answer.usage.completion_tokens <= 900  # 3 × 300, less the tails written again


def test_models_are_the_upstreams_with_their_context_length(client) -> None:
    models = {m.id: m for m in client.models.list()}
    assert models["demo-32k"].model_extra["context_length"] == 32768
    assert client.models.retrieve("demo").id == "demo"


def test_every_request_is_a_run_with_source_api(client, history) -> None:
    answer = client.chat.completions.create(
        model="demo-32k", messages=[{"role": "user", "content": "Write 50 tokens about moss"}]
    )
    with Store(history) as store:
        summary = store.summary(answer.model_extra["continuum"]["run_id"])
    assert summary is not None and (summary.source, summary.status) == ("api", "finished")


def test_runs_list_says_which_runs_came_from_the_endpoint(client, history, monkeypatch, capsys) -> None:
    answer = client.chat.completions.create(
        model="demo-32k", messages=[{"role": "user", "content": "Write 40 tokens about lichen"}]
    )
    monkeypatch.setenv("CONTINUUM_DB", str(history))
    assert cli_main(["runs", "list", "--search", "lichen"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    run_id = answer.model_extra["continuum"]["run_id"]
    assert "source" in header.split()
    assert [row.split()[8] for row in rows if row.startswith(run_id[:8])] == ["api"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": []}, "messages"),
        ({"n": 2}, "n"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"continuum": {"rounds": 3}}, "continuum.rounds"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": 9}, "temperature"),
    ],
)
def test_a_bad_request_is_a_400_in_openais_shape(client, body, param) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**chat("Write 50 tokens about moss"), extra_body=body)
    assert caught.value.status_code == 400
    assert caught.value.body["param"] == param


def test_an_unknown_model_is_the_upstreams_404(client) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(**chat("Write 50 tokens about moss", model="no-such-model"))
    assert "no-such-model" in caught.value.body["message"]


def test_an_upstream_that_refuses_the_key_is_a_502_not_the_clients_401(tmp_path: Path) -> None:
    with (
        start_demo_server(auth="key") as demo,
        serve_demo(demo.base_url, tmp_path / "h.sqlite3") as server,
    ):
        r = httpx.post(server.base_url + "/chat/completions", json=chat("Write 50 tokens about moss"))
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "AuthenticationError"


def test_a_token_is_required_when_set(demo_server: str, tmp_path: Path) -> None:
    with serve_demo(demo_server, tmp_path / "h.sqlite3", token="s3cret") as server:
        anonymous = httpx.post(server.base_url + "/chat/completions", json=chat("Write 50 tokens about moss"))
        wrong = httpx.get(server.base_url + "/models", headers={"Authorization": "Bearer nope"})
        right = openai.OpenAI(base_url=server.base_url, api_key="s3cret").models.list()
    assert (anonymous.status_code, wrong.status_code) == (401, 401)
    assert anonymous.json()["error"]["code"] == "invalid_api_key"
    assert any(m.id == "demo" for m in right)


def test_beyond_the_concurrency_limit_a_429_with_retry_after(tmp_path: Path) -> None:
    with (
        start_demo_server(rate=50) as demo,
        serve_demo(demo.base_url, tmp_path / "h.sqlite3", concurrency=1) as server,
        httpx.stream(
            "POST",
            server.base_url + "/chat/completions",
            json=chat("Write 500 tokens about moss", stream=True),
        ) as first,
    ):
        assert first.status_code == 200
        second = httpx.post(server.base_url + "/chat/completions", json=chat("Write 50 tokens about moss"))
    assert second.status_code == 429
    assert second.headers["Retry-After"] == "1"
    assert second.json()["error"]["type"] == "rate_limit_error"


def test_unknown_paths_are_errors_in_openais_shape(serve: RunningServe) -> None:
    r = httpx.get(serve.base_url + "/embeddings")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_serve_refuses_to_listen_beyond_loopback_without_a_token(
    tmp_db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CONTINUUM_SERVE_TOKEN", raising=False)
    assert main(["serve", "--provider", "demo", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "CONTINUUM_SERVE_TOKEN" in capsys.readouterr().err


def test_raw_completions_continue_a_rendered_prompt_streamed_and_not(client) -> None:
    prompt = "<|im_start|>user\nWrite 700 tokens about raw text<|im_end|>\n<|im_start|>assistant\n"
    small = {"continuum": {"round_tokens": 200}}
    whole = client.completions.create(model="demo-32k", prompt=prompt, extra_body=small)
    parts = list(client.completions.create(model="demo-32k", prompt=prompt, stream=True, extra_body=small))
    want = demo_document("Write 700 tokens about raw text")
    assert whole.choices[0].text == "".join(p.choices[0].text for p in parts if p.choices) == want
    assert whole.model_extra["continuum"]["rounds"] == parts[-1].model_extra["continuum"]["rounds"] >= 4


def test_the_upstream_key_never_reaches_a_client(tmp_path: Path) -> None:
    with (
        start_demo_server(auth="key") as demo,
        serve_demo(demo.base_url, tmp_path / "h.sqlite3", api_key="demo-key") as server,
    ):
        client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
        answer = client.chat.completions.create(**chat("Echo: the upstream key is demo-key, twice: demo-key"))
    text = answer.choices[0].message.content
    assert "demo-key" not in text and text.startswith("the upstream key is [")


@pytest.mark.parametrize("stream", [False, True])
def test_a_trailing_assistant_message_is_continued_from(client, history, stream: bool) -> None:
    prompt = "Write 1500 tokens about drafts"
    document = demo_document(prompt)
    cut = document.index(" ", 2000)  # a chat front end's "continue response": the answer so far
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": document[:cut]}]
    small = {"continuum": {"round_tokens": 400}}
    if stream:
        chunks = list(
            client.chat.completions.create(model="demo-32k", messages=messages, stream=True, extra_body=small)
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        run_id = chunks[-1].model_extra["continuum"]["run_id"]
    else:
        answer = client.chat.completions.create(model="demo-32k", messages=messages, extra_body=small)
        text, run_id = answer.choices[0].message.content, answer.model_extra["continuum"]["run_id"]
    assert text == document[cut:]
    assert stored(history, run_id).text == document
