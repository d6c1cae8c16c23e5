"""The request behind every round (issue 12): rebuilt from the stored run, it is the one the server got.

Real runs on the demo model pass through :class:`RecordingRelay`, a loopback relay that keeps
the bytes of every request body it forwards. The run is stored and read back, and each
round's rebuilt request must be the bytes the relay saw (and the same JSON, at the same
path), once per attempt: retries resend the same body. The curl command is run with the
real ``curl`` (through ``bash`` and ``sh``) and must get the round's text back.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from streamlit.testing.v1 import AppTest
from test_engine_support import FAST_RETRY

from core.continuation import engine, seams
from core.demo import behaviour_url, demo_document
from core.services.round_requests import (
    RequestUnavailable,
    RoundRequest,
    curl_command,
    round_request,
    shortened_json,
)
from core.services.store import Recorder, Store
from core.types import RunFinished, RunResult, RunSpec
from tests.test_pages_runs import APP, open_page, record_run

PROMPT = "Write 700 tokens about `quotes`, \"doubles\", $HOME and 'singles' — naïve café 東京 🚢\nplease"
BUSY = b'{"error": {"message": "busy", "type": "server_error"}}'


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes  # exactly as received


class RecordingRelay:
    """A loopback relay to ``upstream`` that keeps every request's bytes (one request a connection).

    ``fail``: given the 1-based number of a request, True to answer it with a 503 itself.
    The response otherwise goes back byte for byte (a stream cut upstream is cut here too).
    """

    def __init__(self, upstream: str, fail: Callable[[int], bool] | None = None) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._fail = fail or (lambda n: False)
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.root = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, **behaviours: object) -> str:
        return behaviour_url(self.root + "/v1", **behaviours)

    def posts(self) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.method == "POST"]

    def close(self) -> None:
        self._sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            buf = b""
            while b"\r\n\r\n" not in buf:
                data = client.recv(65536)
                if not data:
                    return
                buf += data
            head, _, body = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
            while len(body) < int(headers.get("content-length") or 0):
                body += client.recv(65536)
            method, path = lines[0].split(" ")[:2]
            with self._lock:
                self.seen.append(Seen(method, path, headers, body))
                number = len(self.seen)
            if self._fail(number):
                client.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(BUSY)}\r\nConnection: close\r\n\r\n".encode()
                    + BUSY
                )
                return
            with socket.create_connection(self._upstream) as upstream:
                upstream.sendall(_closing(head) + body)
                answer = b""
                while b"\r\n\r\n" not in answer and (data := upstream.recv(65536)):
                    answer += data
                head, _, rest = answer.partition(b"\r\n\r\n")
                client.sendall(_closing(head) + rest)  # the client must not reuse a connection closed here
                while data := upstream.recv(65536):
                    client.sendall(data)


def _closing(head: bytes) -> bytes:
    """A message head that says ``Connection: close`` (and no other connection header)."""
    lines = head.decode("latin-1").split("\r\n")
    kept = [x for x in lines if not x.lower().startswith(("connection:", "keep-alive:"))]
    return "\r\n".join([*kept, "Connection: close"]).encode("latin-1") + b"\r\n\r\n"


@pytest.fixture
def relay(demo_server: str) -> Iterator[RecordingRelay]:
    r = RecordingRelay(demo_server)
    yield r
    r.close()


def spec_for(base_url: str, **kw: Any) -> RunSpec:
    kw.setdefault("max_tokens", 120)
    kw.setdefault("max_rounds", 60)
    return RunSpec(messages=[{"role": "user", "content": PROMPT}], base_url=base_url, **kw)


def stored_run(spec: RunSpec, *, resume: RunResult | None = None, **kw: Any) -> RunResult:
    """Run ``spec`` to the end, recorded, and read it back from the store."""
    with Store() as store:
        recorder = Recorder(store, resume=resume)
        events = list(recorder.record(engine.run(spec, resume=resume, retry=FAST_RETRY, **kw)))
        assert isinstance(events[-1], RunFinished) and recorder.run_id is not None
        return store.load(recorder.run_id)


def assert_sent_as_rebuilt(result: RunResult, seen: list[Seen]) -> list[RoundRequest]:
    """Every request the server got is its round's rebuilt request, in order, once per attempt."""
    rebuilt = [round_request(result, r.index) for r in result.rounds]
    sent = iter(seen)
    for request in rebuilt:
        for attempt in range(request.attempts):
            got = next(sent, None)
            assert got is not None, f"round {request.index}, attempt {attempt + 1}: never sent"
            assert json.loads(got.body) == request.body, f"round {request.index}"
            assert got.body == request.data, f"round {request.index}: same JSON, other bytes"
            assert got.path == urlsplit(request.url).path
    assert next(sent, None) is None, "a request that is no round's"
    return rebuilt


# ---------------------------------------------------------------- the body, byte for byte


@pytest.mark.parametrize(
    ("behaviours", "fields"),
    [
        pytest.param({}, {}, id="prefill"),
        pytest.param({}, {"strategy": "instruction"}, id="instruction"),
        pytest.param({}, {"strategy": "completions", "template": "chatml"}, id="completions"),
        pytest.param({"vllm": "required"}, {"strategy": "vllm"}, id="vllm"),
        pytest.param({"prefill": "echo"}, {"strategy": "prefix"}, id="prefix-echo"),
        pytest.param(
            {},
            {"top_p": 0.9, "seed": 7, "extra_body": {"repetition_penalty": 1.05, "max_tokens": 999}},
            id="sampling-and-extra-body",
        ),
        pytest.param({}, {"model": "demo-reasoner", "max_tokens": 40}, id="reasoning-field"),
        pytest.param(
            {"reasoning": "think"}, {"model": "demo-reasoner", "max_tokens": 40}, id="reasoning-think"
        ),
    ],
)
def test_every_round_is_rebuilt_byte_for_byte(
    tmp_db: Path, relay: RecordingRelay, request: pytest.FixtureRequest, behaviours: dict, fields: dict
) -> None:
    result = stored_run(spec_for(relay.url(k=request.node.name, **behaviours), **fields))
    assert result.stop_reason == "finished" and len(result.rounds) >= 5
    assert_sent_as_rebuilt(result, relay.posts())


def test_a_reasoning_cut_mid_way_is_sent_back_as_a_think_prefill(tmp_db: Path, relay: RecordingRelay) -> None:
    result = stored_run(spec_for(relay.url(k="think-prefill"), model="demo-reasoner", max_tokens=40))
    second = assert_sent_as_rebuilt(result, relay.posts())[1]
    assert result.rounds[0].text == "" and second.body["messages"][-1] == {
        "role": "assistant",
        "content": "<think>\n" + result.rounds[0].reasoning,
    }


def test_reasoning_the_run_did_not_keep_is_named_where_a_request_carried_it(
    tmp_db: Path, relay: RecordingRelay
) -> None:
    spec = spec_for(relay.url(k="drop"), model="demo-reasoner", max_tokens=40, reasoning="drop")
    result = stored_run(spec)
    rebuilt = [round_request(result, r.index) for r in result.rounds]
    sent = [s.body for s in relay.posts()]
    assert len(sent) == len(rebuilt) and rebuilt[1].notes  # round 2 went on with round 1's reasoning
    for request, body in zip(rebuilt, sent, strict=True):
        assert (body == request.data) is not bool(request.notes), request.index


def test_the_first_seam_at_temperature_0_sends_less_than_the_text_before(
    tmp_db: Path, relay: RecordingRelay
) -> None:
    result = stored_run(spec_for(relay.url(k="verify"), temperature=0))
    rebuilt = assert_sent_as_rebuilt(result, relay.posts())
    first = result.rounds[0]
    assert len(first.held_back) >= seams.VERIFY_CHARS  # the longer hold-back that checks the seam
    assert rebuilt[1].answer_chars == len(first.text) and rebuilt[1].held_back == first.held_back
    assert result.text == demo_document(PROMPT)


def test_a_resumed_run_with_another_strategy_is_rebuilt_round_by_round(
    tmp_db: Path, demo_server: str
) -> None:
    first, second = RecordingRelay(demo_server), RecordingRelay(demo_server)
    try:
        part = stored_run(spec_for(first.url(k="resume-a"), max_rounds=3, temperature=0))
        assert part.stop_reason == "max_rounds"
        spec = part.spec
        spec.base_url, spec.max_rounds, spec.strategy = second.url(k="resume-a"), 60, "instruction"
        whole = stored_run(spec, resume=part)
    finally:
        first.close()
        second.close()
    assert [r.strategy for r in whole.rounds[:4]] == ["prefill"] * 3 + ["instruction"]
    assert whole.stop_reason == "finished"
    assert_sent_as_rebuilt(whole, first.posts() + second.posts())


def test_retried_and_recovered_rounds_are_rebuilt_once_per_request(
    tmp_db: Path, relay: RecordingRelay
) -> None:
    url = relay.url(k="chaos-requests", chaos=0.5, chaos_kinds="429+500+cut", chaos_seed=3, chaos_max=2)
    result = stored_run(spec_for(url))
    assert result.stop_reason == "finished" and result.text == demo_document(PROMPT)
    assert any(r.retries for r in result.rounds) and any(r.recovery for r in result.rounds)
    assert_sent_as_rebuilt(result, relay.posts())


@pytest.mark.parametrize("temperature", [None, 0.0])
def test_a_last_round_that_kept_nothing_is_rebuilt_without_the_tail_given_back(
    tmp_db: Path, demo_server: str, temperature: float | None
) -> None:
    failing = RecordingRelay(demo_server, fail=lambda n: n > 1)  # round 2 never gets through
    healthy = RecordingRelay(demo_server)
    try:
        part = stored_run(spec_for(failing.url(k=f"given-back-{temperature}"), temperature=temperature))
        assert part.stop_reason == "error" and part.rounds[1].text == "" and not part.rounds[0].held_back
        part.spec.base_url = healthy.url(k=f"given-back-{temperature}")
        whole = stored_run(part.spec, resume=part)  # round 2 is now in the middle of the run
    finally:
        failing.close()
        healthy.close()
    rebuilt = assert_sent_as_rebuilt(whole, failing.posts() + healthy.posts())
    assert rebuilt[1].attempts == FAST_RETRY.max_attempts and rebuilt[1].notes
    assert rebuilt[1].answer_chars < len(whole.rounds[0].text)


def test_an_opening_and_an_edit_are_the_text_the_next_rounds_carry(
    tmp_db: Path, relay: RecordingRelay
) -> None:
    spec = spec_for(relay.url(k="edits"), max_rounds=3)
    opening = demo_document(PROMPT)[:60]  # the demo continues a text it wrote, from where it ends
    opened = RunResult(spec=spec)
    opened.edit(opening)
    part = stored_run(spec, resume=opened)
    edited = part.text[: part.text.rfind(" ", 0, len(part.text) // 2)]  # cut between two words
    part.edit(edited)
    part.spec.max_rounds = 6
    whole = stored_run(part.spec, resume=part)
    assert len(whole.edits) == 2 and whole.text.startswith(edited)
    seen = relay.posts()
    first = round_request(whole, 1)
    assert first.body["messages"][-1]["content"] == opening and seen[0].body == first.data
    with pytest.raises(RequestUnavailable, match="edit made after round 3"):
        round_request(whole, 2)  # its text before was round 1's, now inside the edit
    after = [round_request(whole, i) for i in range(4, len(whole.rounds) + 1)]
    assert after[0].body["messages"][-1]["content"] == edited
    assert [s.body for s in seen[3:]] == [r.data for r in after]


# ---------------------------------------------------------------- curl


SHELLS = [s for s in ("bash", "sh") if shutil.which(s)]


def streamed_text(sse: str) -> str:
    text = []
    for line in sse.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            choices = json.loads(line[6:]).get("choices") or [{}]
            text.append(choices[0].get("delta", {}).get("content") or "")
    return "".join(text)


def curl(command: str, shell: str, api_key: str = "") -> str:
    env = {"PATH": "/usr/bin:/bin", "API_KEY": api_key}
    done = subprocess.run([shell, "-c", command], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl command")
@pytest.mark.parametrize("shell", SHELLS)
def test_each_rounds_curl_gets_the_rounds_text_back_with_the_same_bytes(
    tmp_db: Path, relay: RecordingRelay, shell: str
) -> None:
    result = stored_run(spec_for(relay.url(k=f"curl-{shell}"), provider="demo"))
    rebuilt = assert_sent_as_rebuilt(result, relay.posts())
    before = len(relay.posts())
    for request, rnd in zip(rebuilt, result.rounds, strict=True):
        command = curl_command(request)
        assert "Authorization" not in command  # the demo model is sent no key
        assert streamed_text(curl(command, shell)) == rnd.text + rnd.held_back
    assert [s.body for s in relay.posts()[before:]] == [r.data for r in rebuilt]


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl command")
def test_a_keyed_curl_takes_the_key_from_the_environment_only(tmp_db: Path, relay: RecordingRelay) -> None:
    result = stored_run(spec_for(relay.url(k="curl-key", auth="key"), provider="custom"), api_key="demo-key")
    request = round_request(result, 2)
    command = curl_command(request)
    assert '-H "Authorization: Bearer $API_KEY"' in command and "demo-key" not in command
    assert streamed_text(curl(command, "bash", api_key="demo-key")) == result.rounds[1].text + (
        result.rounds[1].held_back
    )
    assert relay.posts()[-1].headers["authorization"] == "Bearer demo-key"
    assert "401" in curl(command.replace("-sS -N", "-sS -N -w '%{http_code}'"), "bash", api_key="wrong")


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl command")
def test_a_body_read_from_a_file_is_sent_as_is(tmp_db: Path, tmp_path: Path, relay: RecordingRelay) -> None:
    result = stored_run(spec_for(relay.url(k="curl-file"), provider="demo"))
    request = round_request(result, len(result.rounds))
    body = tmp_path / "it's $body.json"
    body.write_bytes(request.data)
    assert streamed_text(curl(curl_command(request, body_file=str(body)), "bash")) == result.rounds[-1].text
    assert relay.posts()[-1].body == request.data


CURL_END_TEXT = "\nCONTINUUM_BODY\n"  # the delimiter inside the text cannot end the heredoc


def test_the_key_is_written_as_a_variable_and_the_body_as_a_literal() -> None:
    body = {
        "messages": [{"role": "assistant", "content": "it's `date` $(id) $HOME \\ \n'\"" + CURL_END_TEXT}]
    }
    request = RoundRequest(2, "http://x.test/v1/chat/completions", body, True, "prefill", 10, "", 1)
    command = curl_command(request)
    head, body_line, end = command.rsplit("\n", 2)
    assert head.endswith("--data @- <<'CONTINUUM_BODY'") and end == "CONTINUUM_BODY"
    assert body_line.encode() == request.data and json.loads(body_line) == body


def test_long_strings_are_shortened_in_the_middle_for_display_only() -> None:
    answer = "start " + "x" * 10_000 + " the end of the answer"
    text, cut = shortened_json({"messages": [{"role": "assistant", "content": answer}]}, head=100, tail=100)
    assert cut == len(answer) - 200 and "the end of the answer" in text and "start" in text
    assert f"{cut:,} characters not shown" in text


# ---------------------------------------------------------------- the Inspect page


def test_inspect_shows_a_chosen_rounds_request_and_its_curl(
    clean_env, tmp_db: Path, demo_server: str
) -> None:
    run_id = record_run(tmp_db, demo_server, PROMPT, max_tokens=150)
    result = Store(tmp_db).load(run_id)
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["inspect_view"] = "Requests"
    at = open_page(at, "pages/inspect.py", id=run_id)
    at.selectbox(key=f"inspect_request_{run_id}").set_value(2).run()
    codes = [str(c.value) for c in at.code]
    request = round_request(result, 2)
    assert not at.exception and f"POST {request.url}" in codes
    assert curl_command(request) in codes and "Authorization" not in curl_command(request)
    assert json.loads(next(c for c in codes if c.startswith("{"))) == request.body  # short: shown whole


def test_inspect_says_why_a_round_before_an_edit_has_no_request(
    clean_env, tmp_db: Path, relay: RecordingRelay
) -> None:
    part = stored_run(spec_for(relay.url(k="edited-page"), max_rounds=3))
    part.edit(part.text[: len(part.text) // 2])
    part.spec.max_rounds = 4
    run_id = stored_run(part.spec, resume=part).run_id
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["inspect_view"] = "Requests"
    at = open_page(at, "pages/inspect.py", id=str(run_id))
    at.selectbox(key=f"inspect_request_{run_id}").set_value(2).run()
    assert not at.exception and "cannot be rebuilt" in at.info[0].value and not at.code
