"""A run's settings are checked once, where the engine starts (issue 11).

``engine.run`` checks its spec before the first request: the demo model's ``/stats`` counts
the requests it got. A front end that must refuse before it creates a run (the Studio's job
manager, the command line, the endpoint) calls the same check first and hands the engine its
proof, so the check is not repeated: every check is logged at DEBUG by
``core.continuation.validation``, and these tests count those records.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import httpx
import pytest

from core.cli import main
from core.continuation import engine
from core.continuation.validation import Invalid, validate_spec
from core.services.jobs import JobManager, recording_runner
from core.services.store import Store
from core.types import RunFinished, RunSpec, RunStarted
from tests.serving import chat, serve_demo

WAIT = 30.0  # seconds a test waits for a worker before failing (never reached when it works)
LONG = "word " * 8000  # about 14,000 tokens: no room for an answer in an 8,192-token window


def spec(url: str, prompt: str = "Write 300 tokens about tea", **fields: object) -> RunSpec:
    values: dict[str, object] = {"base_url": url, "max_tokens": 100, "max_rounds": 2, **fields}
    return RunSpec(messages=[{"role": "user", "content": prompt}], **values)  # type: ignore[arg-type]


def requests_seen(url: str) -> int:
    """Chat and completion requests the demo model got under this URL's prefix."""
    return int(httpx.get(url.rsplit("/v1", 1)[0] + "/stats").json()["requests"])


@pytest.fixture
def checks(caplog: pytest.LogCaptureFixture):
    """The number of spec checks logged so far."""
    caplog.set_level(logging.DEBUG, logger="core.continuation.validation")

    def count() -> int:
        return sum(1 for r in caplog.records if r.getMessage().startswith("checked the settings of a run"))

    return count


def test_the_engine_refuses_a_prompt_too_long_for_the_window_and_sends_nothing(demo_url) -> None:
    url = demo_url()
    too_long = spec(url, LONG, context_window=8192)
    with pytest.raises(Invalid) as refused:
        validate_spec(too_long)
    events = list(engine.run(too_long))
    assert [type(e) for e in events] == [RunStarted, RunFinished]
    end = events[-1]
    assert isinstance(end, RunFinished) and end.error is not None
    assert (end.stop_reason, end.error.kind, end.error.message) == (
        "error",
        "ConfigError",
        str(refused.value),
    )
    assert (
        "demo's context window is 8,192 tokens" in end.error.message
        and "Nothing was sent." in end.error.message
    )
    assert (end.result.rounds, requests_seen(url)) == ([], 0)


def test_a_resume_with_settings_refused_ends_with_the_error_and_keeps_the_text(demo_url) -> None:
    url = demo_url()
    first = list(engine.run(spec(url, max_rounds=1)))[-1]
    assert isinstance(first, RunFinished) and first.result.text
    text, sent = first.result.text, requests_seen(url)
    more = dataclasses.replace(first.result.spec, max_rounds=0)
    with pytest.raises(Invalid, match=r"^Max rounds must be at least 1 \(got 0\)") as refused:
        validate_spec(more)
    end = list(engine.run(more, resume=first.result))[-1]
    assert isinstance(end, RunFinished) and end.error is not None
    assert (end.stop_reason, end.result.text, requests_seen(url)) == ("error", text, sent)
    assert end.error.message == str(refused.value)


def test_a_proof_covers_only_the_spec_it_checked(demo_url) -> None:
    url = demo_url()
    edited = spec(url)
    proof = validate_spec(edited)
    edited.max_tokens = 0  # changed after the check: the engine checks it again
    end = list(engine.run(edited, checked=proof))[-1]
    assert isinstance(end, RunFinished) and end.error is not None
    assert (end.stop_reason, requests_seen(url)) == ("error", 0)
    assert end.error.message.startswith("Max tokens per round must be at least 1 (got 0).")


def test_the_engine_alone_checks_once_and_once_more_with_a_proof_is_not_twice(demo_url, checks) -> None:
    url = demo_url()
    alone = list(engine.run(spec(url)))[-1]
    assert checks() == 1
    given = spec(url)
    proven = list(engine.run(given, checked=validate_spec(given)))[-1]
    assert checks() == 2
    assert [e.stop_reason for e in (alone, proven) if isinstance(e, RunFinished)] == ["max_rounds"] * 2


def test_the_app_checks_a_run_once(demo_url, checks, tmp_path: Path) -> None:
    """The Studio's path: the job manager refuses before a job exists, the engine is handed the proof."""
    url = demo_url()
    store = Store(tmp_path / "history.sqlite3")
    try:
        job = JobManager(recording_runner(store)).start(spec(url))
        assert job.join(WAIT), "the worker did not end"
        assert (job.snapshot().stop_reason, checks()) == ("max_rounds", 1) and requests_seen(url) >= 1
    finally:
        store.close()


def test_the_command_line_checks_a_run_once(demo_url, checks, tmp_path: Path, clean_env) -> None:
    url = demo_url()
    out = tmp_path / "answer.md"
    argv = ["run", "--provider", "custom", "--base-url", url, "--model", "demo", "--max-rounds", "1"]
    status = main(
        [*argv, "--prompt", "Write 300 tokens about tea", "--no-save", "--quiet", "--output", str(out)]
    )
    assert (status, checks()) == (0, 1) and requests_seen(url) >= 1 and out.read_text(encoding="utf-8")


def test_the_endpoint_checks_a_request_once(demo_url, checks, tmp_path: Path) -> None:
    url = demo_url()
    with serve_demo(url, tmp_path / "history.sqlite3") as server:
        r = httpx.post(
            server.base_url + "/chat/completions", json=chat("Write 50 tokens about moss"), timeout=60
        )
        assert r.status_code == 200, r.text
        sent = requests_seen(url)
        refused = httpx.post(server.base_url + "/chat/completions", json=chat(LONG * 4), timeout=60)
    assert refused.status_code == 400 and "Nothing was sent." in refused.json()["error"]["message"]
    assert checks() == 2 and requests_seen(url) == sent  # one check each; the refused one sent nothing
