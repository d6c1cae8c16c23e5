"""Steering a run on the demo model: edit the answer and continue, start with an opening, follow up.

Real HTTP on loopback: a small recording relay sits between the engine and the demo model
and keeps every request body, so a test reads the exact partial assistant turn that was
sent. Runs are recorded into a real SQLite file, as the app and the CLI record them.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from test_engine_support import FAST_RETRY

from core.continuation import engine
from core.continuation.strategies import CONTINUE_INSTRUCTION
from core.demo import behaviour_url, demo_document
from core.services import steering
from core.services.jobs import JobManager, recording_runner
from core.services.store import Recorder, Store
from core.types import Edit, Round, RunFinished, RunResult, RunSpec

PROMPT = "Write about 1500 tokens on the lighthouses of Brittany, with headings."
OPENING = "# Lighthouses of Brittany: a field guide\n\nOutline: the coast, the towers, the keepers.\n\n"


class RecordingRelay:
    """``base_url`` (ends in /v1) forwards to ``upstream`` (a demo base URL) and keeps each JSON body."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.bodies: list[dict[str, Any]] = []
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("content-length") or 0))
                relay.bodies.append(json.loads(data))
                relay.forward(self, data)

            def do_GET(self) -> None:
                relay.forward(self, None)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def forward(self, handler: BaseHTTPRequestHandler, data: bytes | None) -> None:
        url = self.upstream + handler.path.removeprefix("/v1")
        request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, kind, body = response.status, response.headers.get("content-type"), response.read()
        except urllib.error.HTTPError as exc:
            status, kind, body = exc.code, exc.headers.get("content-type"), exc.read()
        handler.send_response(status)
        handler.send_header("Content-Type", kind or "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(body)

    def __enter__(self) -> RecordingRelay:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def relay(demo_server: str) -> Iterator[RecordingRelay]:
    with RecordingRelay(demo_server) as r:
        yield r


def make_spec(base_url: str, prompt: str = PROMPT, **kw: Any) -> RunSpec:
    values: dict[str, Any] = {"max_tokens": 300, "max_rounds": 50, "context_window": 8192, **kw}
    return RunSpec(messages=[{"role": "user", "content": prompt}], base_url=base_url, **values)


def recorded(store: Store, spec: RunSpec, resume: RunResult | None = None) -> RunResult:
    """Run ``spec`` to its end through a Recorder; the final RunResult (its run_id set)."""
    recorder = Recorder(store, resume=resume)
    events = list(recorder.record(engine.run(spec, resume=resume, retry=FAST_RETRY)))
    last = events[-1]
    assert isinstance(last, RunFinished), last
    return last.result


def more_rounds(result: RunResult, rounds: int, **kw: Any) -> RunSpec:
    return dataclasses.replace(result.spec, max_rounds=len(result.rounds) + rounds, **kw)


def prefill_of(body: dict[str, Any]) -> str:
    last = body["messages"][-1]
    assert last["role"] == "assistant", body["messages"]
    return str(last["content"])


# ---------------------------------------------------------------- the Edit record


def test_an_edit_is_the_one_span_between_the_common_ends() -> None:
    change = Edit.between("Hello world. Bye now.", "Hello brave world. Bye.", after_round=2)
    assert (change.at, change.removed, change.inserted) == (6, 14, "brave world. Bye")
    assert change.text == "Hello brave world. Bye." and change.added == len("brave world. Bye")
    assert Edit.between("aaa", "aa", 0).text == "aa"  # the ends never overlap
    assert Edit.between("", OPENING, 0).inserted == OPENING


def test_an_edit_takes_over_the_text_of_the_rounds_before_it() -> None:
    result = RunResult(spec=make_spec("http://unused/v1"))
    result.rounds = [dataclasses.replace(r) for r in _rounds("One two thr", "ee four. Five")]
    result.rounds[0].held_back = "ee"
    change = result.edit("One two three four.\n\n## Next\n")
    assert change is not None and change.after_round == 2 and change.text_before == "One two three four. Five"
    assert [(r.text, r.held_back) for r in result.rounds] == [("", ""), ("", "")]
    assert result.text == "One two three four.\n\n## Next\n"
    assert result.edit(result.text) is None  # no change, no edit
    result.rounds.append(_rounds("", "", "And on.")[2])
    assert result.text == "One two three four.\n\n## Next\nAnd on."
    assert result.totals()["characters"] == len(result.text)


def _rounds(*texts: str) -> list[Round]:
    return [Round(index=i, text=t) for i, t in enumerate(texts, 1)]


def test_edits_and_the_thread_survive_the_json_transcript() -> None:
    result = steering.opening(make_spec("http://unused/v1"), OPENING)
    result.thread_id, result.parent_id = "thread-1", "parent-1"
    data = json.loads(json.dumps(result.to_dict()))
    assert data["edits"][0] | {"made_at": 0} == {
        "after_round": 0,
        "at": 0,
        "removed": 0,
        "added": len(OPENING),
        "inserted": OPENING,
        "text_before": "",
        "made_at": 0,
    }
    assert (data["text"], data["thread_id"], data["parent_id"]) == (OPENING, "thread-1", "parent-1")
    assert RunResult.from_dict(data) == result


# ---------------------------------------------------------------- edit, then continue


def test_continuing_after_an_edit_sends_exactly_the_edited_text(
    store_db: str | Path, relay: RecordingRelay
) -> None:
    with Store() as store:
        first = recorded(store, make_spec(relay.base_url, max_rounds=2))
        assert first.stop_reason == "max_rounds"
        before = first.text
        cut = before[: before.rstrip().rfind("\n\n")]  # the last paragraph cut...
        mine = cut + "\n\nA sentence the model never wrote, ending mid-thought and"  # ...and my own text
        result = steering.edited(store.load(first.run_id or ""), mine)
        sent = len(relay.bodies)
        final = recorded(store, more_rounds(result, 1), resume=result)
        assert prefill_of(relay.bodies[sent]) == mine  # byte-exact: nothing held back, nothing trimmed
        assert final.text.startswith(mine) and len(final.text) > len(mine)
        assert final.text == mine + final.rounds[-1].text
        loaded = store.load(final.run_id or "")
        summary = store.summary(final.run_id or "")
    assert loaded.text == final.text and len(loaded.rounds) == 3
    assert summary is not None and summary.characters == len(final.text)
    (change,) = loaded.edits
    assert (change.after_round, change.text_before, change.text) == (2, before, mine)
    assert change.removed == len(before) - change.at and change.added == len(mine) - change.at


def test_cutting_the_end_and_continuing_writes_the_rest_of_the_document(
    store_db: str | Path, relay: RecordingRelay
) -> None:
    with Store() as store:
        first = recorded(store, make_spec(relay.base_url, max_rounds=3))
        cut = first.text[: first.text.rstrip().rfind("\n\n")]
        result = steering.edited(store.load(first.run_id or ""), cut)
        final = recorded(store, more_rounds(result, 40), resume=result)
        loaded = store.load(final.run_id or "")
    assert final.stop_reason == "finished"
    assert final.text == loaded.text == demo_document(PROMPT)  # the demo continues any prefix of its document
    assert not [
        f for r in final.rounds for f in r.seam_flags if f["kind"] in ("restart", "overlap", "dropped")
    ]


def test_two_edits_in_a_row_keep_each_text_before(store_db: str | Path, relay: RecordingRelay) -> None:
    with Store() as store:
        first = recorded(store, make_spec(relay.base_url, max_rounds=2))
        result = store.load(first.run_id or "")
        steering.edited(result, result.text + " One.")
        steering.edited(result, result.text.replace(" One.", " Two."))
        final = recorded(store, more_rounds(result, 1), resume=result)
        loaded = store.load(final.run_id or "")
    assert [e.text_before for e in loaded.edits] == [first.text, first.text + " One."]
    assert loaded.text.startswith(first.text + " Two.") and loaded.text == final.text


# ---------------------------------------------------------------- start the answer with


STRATEGY_SERVERS: dict[str, dict[str, Any]] = {
    "prefill": {},
    "vllm": {"vllm": "required"},
    "prefix": {"prefill": "prefix"},
    "completions": {},
    "instruction": {},
}


@pytest.mark.parametrize("strategy", list(STRATEGY_SERVERS))
def test_the_opening_is_the_first_request_s_partial_answer_with_every_strategy(
    demo_server: str, strategy: str
) -> None:
    upstream = behaviour_url(demo_server, k=f"opening-{strategy}", **STRATEGY_SERVERS[strategy])
    with RecordingRelay(upstream) as relay:
        extra = {"template": "chatml"} if strategy == "completions" else {}
        # one round: the demo continues only prefixes of its own document, and this opening is not one
        spec = make_spec(relay.base_url, strategy=strategy, max_tokens=4000, **extra)
        events = list(engine.run(spec, resume=steering.opening(spec, OPENING), retry=FAST_RETRY))
    done = events[-1]
    assert isinstance(done, RunFinished) and done.stop_reason == "finished", (done.stop_reason, done.error)
    assert done.result.text.startswith(OPENING) and len(done.result.text) > len(OPENING) + 1000
    first = relay.bodies[0]
    if strategy == "completions":
        assert first["prompt"].endswith(OPENING)
    elif strategy == "instruction":  # the opening is the turn the model is asked to continue
        assert first["messages"][-2] == {"role": "assistant", "content": OPENING}
        assert first["messages"][-1] == {"role": "user", "content": CONTINUE_INSTRUCTION}
    else:
        assert prefill_of(first) == OPENING
        assert first["messages"][-1].get("prefix") is (True if strategy == "prefix" else None)
        assert first.get("continue_final_message") is (True if strategy == "vllm" else None)


def test_an_opening_from_the_document_continues_it_exactly(demo_server: str) -> None:
    spec = make_spec(demo_server)
    start = demo_document(PROMPT)[:200]
    events = list(engine.run(spec, resume=steering.opening(spec, start), retry=FAST_RETRY))
    done = events[-1]
    assert isinstance(done, RunFinished) and done.result.text == demo_document(PROMPT)
    assert steering.opening_of(done.result) == start


# ---------------------------------------------------------------- follow-ups and threads


def test_a_follow_up_carries_the_conversation_and_joins_the_thread(
    store_db: str | Path, relay: RecordingRelay
) -> None:
    ask = "Now write about 800 tokens on the keepers who lived in them."
    with Store() as store:
        parent = recorded(store, make_spec(relay.base_url))
        seed = steering.follow_up(parent, ask)
        child = recorded(store, seed.spec, resume=seed)
        again = steering.follow_up(child, "Shorter, please.")
        third = recorded(store, again.spec, resume=again)
        thread = store.thread(parent.run_id or "")
        loaded = store.load(child.run_id or "")
    assert relay.bodies[-1]["messages"][:2] == [
        {"role": "user", "content": PROMPT},
        {"role": "assistant", "content": parent.text},
    ]
    assert loaded.spec.messages[-1] == {"role": "user", "content": ask} and loaded.spec.prompt == ask
    assert loaded.text == demo_document(ask)
    assert (loaded.thread_id, loaded.parent_id) == (parent.run_id, parent.run_id)
    assert [s.id for s in thread] == [parent.run_id, child.run_id, third.run_id]
    assert [s.parent_id for s in thread] == [None, parent.run_id, child.run_id]
    assert steering.conversation_turns(third.spec) == 2


def test_a_job_shows_the_edited_text_and_saves_the_edit(store_db: str | Path, demo_server: str) -> None:
    with Store() as store:
        first = recorded(store, make_spec(demo_server, max_rounds=2))
        mine = first.text + "\n\nMy own paragraph."
        result = steering.edited(store.load(first.run_id or ""), mine)
        job = JobManager(recording_runner(store)).start(more_rounds(result, 1), resume=result)
        assert job.edited_text == mine and job.run_id == first.run_id
        assert job.join(60)
        snap = job.snapshot()
        assert snap.result is not None and snap.result.text.startswith(mine)
        assert job.result().edits == store.load(first.run_id or "").edits
