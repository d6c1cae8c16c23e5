"""Issue 10, items 1-4, against the raw-socket server: an answer is never silently wrong.

Each test drives the engine (or ``python -m core run``) against
:class:`rawdocument.DocumentHandler`, a server that writes one known document D,
and scripts one fault of the servers in the wild. The fault-free answer is D.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from rawdocument import Document, DocumentHandler, Fault, count_tokens
from rawserver import RawServer

from core import Notice, Retrying, RetryPolicy, RunFinished, RunSpec, run
from core.types import Event

REPO = Path(__file__).resolve().parents[1]
DOC = Document(seed=7, words=2000)
FAST = RetryPolicy(base=0.01, cap=0.05, max_wait=0.05)
ERROR_FORMS = ("event_error", "openrouter_error", "finish_error", "openai_error", "llamacpp_error_field")
EVERY = None  # Fault(on=EVERY): every request
FROM_ROUND_2 = range(2, 10**9)
STOPPED_SILENTLY = ("finished", "max_rounds", "target_reached")  # endings that claim the answer is whole


@contextmanager
def served(*faults: Fault, doc: Document = DOC, **handler: Any) -> Iterator[RawServer]:
    with RawServer(DocumentHandler(doc, faults=faults, **handler)) as server:
        yield server


def engine_run(
    server: RawServer, *, retry: RetryPolicy = FAST, prompt: str = "Write the document.", **spec: Any
) -> tuple[list[Event], RunFinished]:
    spec.setdefault("max_tokens", 150)
    spec.setdefault("max_rounds", 200)
    run_spec = RunSpec(
        messages=[{"role": "user", "content": prompt}],
        provider="custom",
        base_url=server.base_url,
        model="raw-model",
        **spec,
    )
    events = list(run(run_spec, retry=retry))
    done = events[-1]
    assert isinstance(done, RunFinished)
    return events, done


def first_difference(text: str, want: str) -> str:
    i = next(
        (i for i, (a, b) in enumerate(zip(text, want, strict=False)) if a != b), min(len(text), len(want))
    )
    return f"at {i}: got {text[max(0, i - 30) : i + 50]!r}, want {want[max(0, i - 30) : i + 50]!r} ({len(text)} chars)"


def backed_off(events: list[Event]) -> bool:
    return any(isinstance(e, Retrying) and e.wait > 0 for e in events) or any(
        isinstance(e, Notice) for e in events
    )


def messages(events: list[Event], done: RunFinished) -> list[str]:
    """Every message the run showed: notices, retries, round errors, the final error."""
    said = [e.message for e in events if isinstance(e, Notice)] + [
        e.reason for e in events if isinstance(e, Retrying)
    ]
    said += [r.error for r in done.result.rounds if r.error]
    if done.error is not None:
        said.append(done.error.message)
    return said


def handler_of(server: RawServer) -> DocumentHandler:
    assert isinstance(server.handler, DocumentHandler)
    return server.handler


# ---------------------------------------------------------------- 1. error events inside a stream


@pytest.mark.parametrize("form", ERROR_FORMS)
def test_an_error_event_once_is_backed_off_and_the_answer_is_exact(form: str) -> None:
    with served(Fault(form, on=2, after=5)) as server:
        events, done = engine_run(server)
    assert (done.stop_reason, done.result.text == DOC.text) == ("finished", True), first_difference(
        done.result.text, DOC.text
    )
    assert backed_off(events), "the error event was followed by no wait and no notice"


@pytest.mark.parametrize("form", ERROR_FORMS)
def test_a_persistent_error_event_ends_in_error_within_the_retry_budget_with_the_good_text_kept(
    form: str,
) -> None:
    with served(Fault(form, on=EVERY, after=5)) as server:
        _, done = engine_run(server)
    text = done.result.text
    assert done.stop_reason == "error", (done.stop_reason, len(server.requests))
    assert len(server.requests) <= 8
    assert DOC.text.startswith(text), first_difference(text, DOC.text)


def test_error_events_from_a_server_that_also_restarts_never_assemble_restarts() -> None:
    # the "w0 w1 w2 w3w0 w1 w2 w3…": every reply is a new turn, cut by an error after 4 tokens
    with served(Fault("openrouter_error", on=EVERY, after=4), Fault("new_turn", on=EVERY)) as server:
        _, done = engine_run(server)
    text = done.result.text
    assert DOC.text.startswith(text), first_difference(text, DOC.text)
    assert done.stop_reason == "error" and len(server.requests) <= 8


def test_the_command_line_exits_1_when_error_events_persist(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    with served(Fault("openrouter_error", on=EVERY, after=5)) as server:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "core",
                "run",
                "--provider",
                "custom",
                "--base-url",
                server.base_url,
                "--model",
                "raw-model",
                "--prompt",
                "Write the document.",
                "--max-tokens",
                "100",
                "--max-rounds",
                "6",
                "--no-save",
                "--quiet",
                "--output",
                str(tmp_path / "out.md"),
            ],
            cwd=REPO,
            env={**clean_env, "HOME": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=120,
        )
    out = (tmp_path / "out.md").read_text() if (tmp_path / "out.md").exists() else ""
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-300:], len(out))
    assert DOC.text.startswith(out)


# ---------------------------------------------------------------- 2. a server that ignores the prefill


@pytest.mark.parametrize("strategy", ["prefill", "vllm", "prefix"])
def test_a_server_that_starts_the_same_answer_again_is_flagged_and_nothing_restarted_is_kept(
    strategy: str,
) -> None:
    with served(Fault("new_turn", on=FROM_ROUND_2)) as server:
        _, done = engine_run(server, strategy=strategy)
    assert_restart_caught(done)


@pytest.mark.parametrize("strategy", ["prefill", "vllm", "prefix"])
def test_a_server_that_writes_a_different_new_answer_is_flagged_and_nothing_restarted_is_kept(
    strategy: str,
) -> None:
    # a tiny random model: its new turn repeats nothing of the first answer
    with served(Fault("new_turn_other", on=FROM_ROUND_2), other=Document(seed=99, words=2000)) as server:
        _, done = engine_run(server, strategy=strategy)
    assert_restart_caught(done)


def assert_restart_caught(done: RunFinished) -> None:
    text, rounds = done.result.text, done.result.rounds
    assert DOC.text.startswith(text), first_difference(text, DOC.text)
    flagged = any(f["kind"] == "restart" for r in rounds for f in r.seam_flags)
    assert done.stop_reason not in STOPPED_SILENTLY or flagged, done.stop_reason


# ---------------------------------------------------------------- 3. overflow wordings, empty streams

BIG = Document(seed=3, words=12_000)  # longer than the 8192-token window


@pytest.mark.parametrize("overflow", ["deepinfra", "deepinfra500"])
def test_deepinfra_overflow_after_some_rounds_ends_context_exhausted_with_the_text_kept(
    overflow: str,
) -> None:
    with served(doc=BIG, window=8192, overflow=overflow) as server:
        events, done = engine_run(server, max_tokens=1000)
    overflows = [r for r in server.requests if "overflow" in r.notes]
    assert done.stop_reason == "context_exhausted", (done.stop_reason, done.error)
    assert done.result.text == BIG.text[: handler_of(server).reached], "the text written before the overflow"
    assert any("8192" in m for m in messages(events, done)), messages(events, done)
    assert len(overflows) == 1, "a request over the window was sent after the server named the window"
    assert overflows[0].number > 2


@pytest.mark.parametrize("overflow", ["deepinfra", "deepinfra500"])
def test_deepinfra_overflow_on_the_first_round_names_the_numbers(overflow: str) -> None:
    prompt = " ".join(["word"] * 8796)  # + 4 tokens of template = 8800; + max_tokens 200 = 9000
    with served(window=8192, overflow=overflow) as server:
        _, done = engine_run(server, prompt=prompt, max_tokens=200)
    assert count_tokens(prompt) + 4 + 200 == 9000
    assert done.stop_reason in ("error", "context_exhausted") and done.error is not None, done.stop_reason
    assert "9000" in done.error.message and "8192" in done.error.message, done.error.message
    assert len(server.requests) <= 2, "an overflow is not a server failure to retry"


@pytest.mark.parametrize("empty", ["empty", "empty_done"])
def test_an_empty_stream_to_a_too_long_request_is_explained_not_retried_blindly(empty: str) -> None:
    with served(window=1500, overflow=empty) as server:
        events, done = engine_run(server)
    first = next(r.number for r in server.requests if "overflow" in r.notes)
    assert done.stop_reason in ("error", "context_exhausted"), done.stop_reason
    assert done.result.text == DOC.text[: handler_of(server).reached]
    assert len(server.requests) - first <= 2, (
        f"{len(server.requests) - first} requests after the first empty stream"
    )
    said = " ".join(messages(events, done)[-2:])
    assert "new round" not in said and "is retried" not in said, said
    if done.stop_reason == "error":
        assert done.error is not None and "context" in str(done.error).lower(), done.error


# ---------------------------------------------------------------- 4. usage that cannot be true, retry headers


@pytest.mark.parametrize("usage", ["usage_negative", "usage_huge", "usage_gateway"])
def test_usage_outside_what_the_request_allows_is_estimated_and_the_run_goes_on(usage: str) -> None:
    with served(Fault(usage, on=EVERY)) as server:
        _, done = engine_run(server, context_window=32_768)
    rounds = done.result.rounds
    assert (done.stop_reason, done.result.text == DOC.text) == ("finished", True)
    assert all(r.completion_estimated for r in rounds if r.finish_reason == "length"), [
        (r.completion_tokens, r.completion_estimated) for r in rounds
    ]
    assert all(0 <= r.completion_tokens <= r.max_tokens for r in rounds)


@pytest.mark.parametrize(
    ("header", "value", "wait"),
    [("llm_provider-retry-after", "1", 1.0), ("retry-after-ms", "250", 0.25), ("Retry-After", "1", 1.0)],
)
def test_gateway_retry_headers_are_honoured(header: str, value: str, wait: float) -> None:
    policy = RetryPolicy(base=5.0, cap=5.0, max_wait=3.0)  # a backoff would wait 2.5-3 s
    with served(Fault("rate_limit", on=1, headers=((header, value),))) as server:
        events, done = engine_run(server, retry=policy)
    waits = [e.wait for e in events if isinstance(e, Retrying)]
    assert waits == [wait]
    assert server.requests[1].at - server.requests[0].at >= wait
    assert done.result.text == DOC.text
