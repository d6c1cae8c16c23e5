"""Faults: broken streams, rate limits, server errors, malformed chunks, refused requests, timeouts."""

from __future__ import annotations

import json
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from test_engine_support import FAST_RETRY, finish, first_difference, run_all, spec_for

from core.continuation.engine import RetryPolicy
from core.demo import demo_document
from core.types import Event, Retrying, RoundStarted
from core.wire.client import Timeouts

PROMPT = "Write 3000 tokens about faults"


def clean(demo_url) -> str:
    done = finish(run_all(spec_for(demo_url(k="clean"), PROMPT, max_tokens=256)))
    assert done.result.text == demo_document(PROMPT)
    return done.result.text


def test_random_drops_are_recovered_to_the_same_text(demo_url) -> None:
    events = run_all(spec_for(demo_url(drop="random", drop_p=0.5), PROMPT, max_tokens=256))
    done = finish(events)
    assert done.stop_reason == "finished"
    assert done.result.text == clean(demo_url)
    rounds = done.result.rounds
    recovered = [r.index for r in rounds if r.recovery]
    assert recovered, "the demo dropped no stream: the test proves nothing"
    broken = [rounds[i - 2] for i in recovered]  # the round before each recovery round
    assert all(r.finish_reason is None and r.error for r in broken)


def test_a_stream_that_always_breaks_after_some_text_still_completes_the_answer(demo_url) -> None:
    prompt = "Write 600 tokens about proxies"
    done = finish(run_all(spec_for(demo_url(drop=40), prompt, max_tokens=256)))  # 15 broken rounds in a row
    assert (done.stop_reason, done.result.text) == ("finished", demo_document(prompt))
    assert sum(r.recovery for r in done.result.rounds) > FAST_RETRY.max_recoveries


def test_a_recovery_round_is_announced(demo_url) -> None:
    events = run_all(spec_for(demo_url(drop=40), PROMPT, max_tokens=256, max_rounds=3))
    assert [e.recovery for e in events if isinstance(e, RoundStarted)] == [False, True, True]


def test_rate_limits_are_retried_to_the_same_text(demo_url) -> None:
    events = run_all(spec_for(demo_url(fail429=3), PROMPT, max_tokens=1000))
    done = finish(events)
    retries = [e for e in events if isinstance(e, Retrying)]
    assert len(retries) == 3 and done.result.rounds[0].retries == 3
    assert done.result.text == clean(demo_url)


def test_retry_after_is_honoured(demo_url) -> None:
    policy = RetryPolicy(base=5.0, cap=5.0, max_wait=1.0)  # backoff would be 5 s; the server says 0.05
    events = run_all(spec_for(demo_url(fail429=1, retry_after=0.05), PROMPT, max_tokens=1000), retry=policy)
    assert [e.wait for e in events if isinstance(e, Retrying)] == [0.05]


def test_server_errors_are_retried_to_the_same_text(demo_url) -> None:
    events = run_all(spec_for(demo_url(fail5xx=3), PROMPT, max_tokens=1000))
    done = finish(events)
    assert sum(isinstance(e, Retrying) for e in events) == 3
    assert done.result.text == clean(demo_url)


def test_too_many_failures_end_the_run_with_the_last_error(demo_url) -> None:
    events = run_all(spec_for(demo_url(fail5xx=50), PROMPT, max_tokens=1000))
    done = finish(events)
    assert done.stop_reason == "error" and done.error is not None
    assert done.error.kind == "ServerError" and done.error.retryable
    assert sum(isinstance(e, Retrying) for e in events) == FAST_RETRY.max_attempts - 1


def test_a_malformed_chunk_stops_with_a_clear_error_and_keeps_the_text(demo_url) -> None:
    done = finish(run_all(spec_for(demo_url(malformed=300), PROMPT, max_tokens=1000)))
    assert done.stop_reason == "error" and done.error is not None
    assert done.error.kind == "MalformedStreamError"
    assert "not a JSON" in done.error.message
    assert len(done.result.text) > 0 and demo_document(PROMPT).startswith(done.result.text)
    assert done.result.rounds[-1].error


def test_a_silent_server_times_out_and_is_retried_before_the_run_gives_up(demo_url) -> None:
    policy = RetryPolicy(max_attempts=2, base=0.001, cap=0.001)
    spec = spec_for(demo_url(silent=5), PROMPT, max_tokens=100)
    events = run_all(spec, retry=policy, timeouts=Timeouts(connect=5, idle=0.2, round=10))
    done = finish(events)
    assert [e.attempt for e in events if isinstance(e, Retrying)] == [2]
    assert done.stop_reason == "error" and done.error is not None and done.error.kind == "IdleTimeoutError"


def test_a_rejected_key_is_never_retried(demo_url) -> None:
    events = run_all(spec_for(demo_url(auth="key"), PROMPT), api_key="wrong-key")
    done = finish(events)
    assert (done.stop_reason, done.error.kind if done.error else None) == ("error", "AuthenticationError")
    assert not any(isinstance(e, Retrying) for e in events)
    assert "wrong-key" not in done.error.message  # type: ignore[union-attr]


def test_an_empty_balance_is_never_retried(demo_url) -> None:
    events = run_all(spec_for(demo_url(auth="key"), PROMPT), api_key="demo-empty")
    assert finish(events).error.kind == "PaymentRequiredError"  # type: ignore[union-attr]
    assert not any(isinstance(e, Retrying) for e in events)


def test_an_unknown_model_is_never_retried(demo_url) -> None:
    events = run_all(spec_for(demo_url(), PROMPT, model="no-such-model"))
    done = finish(events)
    assert done.error is not None and done.error.kind == "NotFoundError"
    assert not any(isinstance(e, Retrying) for e in events)


def test_a_missing_base_url_is_an_error_event_not_an_exception() -> None:
    done = finish(run_all(spec_for("", PROMPT)))
    assert done.stop_reason == "error" and done.error is not None and done.error.kind == "ConfigError"


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(base=1.0, cap=30.0, jitter=0.5)
    rng = random.Random(1)
    waits = [policy.wait(n, None, rng) for n in range(1, 9)]
    assert all(0.5 * min(30, 2 ** (n - 1)) <= w <= min(30, 2 ** (n - 1)) for n, w in enumerate(waits, 1))
    assert max(waits) <= 30.0


def test_a_server_wait_is_capped_by_the_policy() -> None:
    assert RetryPolicy(max_wait=2.0).wait(1, 3600.0, random.Random()) == 2.0


# ---------------------------------------------------------------- timeouts


def test_the_round_ceiling_ends_rounds_in_recovery_rounds_and_the_answer_is_exact(demo_url) -> None:
    prompt = "Write 1500 tokens about ceilings"
    spec = spec_for(demo_url(rate=2000), prompt, max_tokens=1000)  # a full round needs 0.5 s
    policy = RetryPolicy(base=0.001, cap=0.005, max_recoveries=50)  # every round is cut: many in a row
    done = finish(run_all(spec, retry=policy, timeouts=Timeouts(connect=5, idle=5, round=0.25)))
    rounds = done.result.rounds
    assert (done.stop_reason, done.result.text == demo_document(prompt)) == ("finished", True)
    assert any("round timeout" in (r.error or "") for r in rounds)
    assert any(r.recovery for r in rounds)


def test_a_server_silent_past_the_round_ceiling_ends_in_a_clear_error(demo_url) -> None:
    policy = RetryPolicy(max_attempts=2, base=0.001, cap=0.001)
    spec = spec_for(demo_url(silent=5), PROMPT, max_tokens=100)
    events = run_all(spec, retry=policy, timeouts=Timeouts(connect=5, idle=30, round=0.3))
    done = finish(events)
    assert [e.attempt for e in events if isinstance(e, Retrying)] == [2]
    assert done.stop_reason == "error" and done.error is not None
    assert done.error.kind == "RoundTimeoutError" and "round timeout" in done.error.message


def test_an_idle_timeout_mid_stream_is_followed_by_a_recovery_round(demo_url) -> None:
    prompt = "Write 800 tokens about stalls"
    url = demo_url(chaos=1, chaos_kinds="stall", chaos_max=1, chaos_stall=0.6)  # every other request
    done = finish(
        run_all(spec_for(url, prompt, max_tokens=256), timeouts=Timeouts(connect=5, idle=0.3, round=30))
    )
    assert done.result.text == demo_document(prompt)
    recovered = [r.index for r in done.result.rounds if r.recovery]
    assert recovered and all("idle timeout" in (done.result.rounds[i - 2].error or "") for i in recovered)


def test_keep_alive_comments_longer_than_the_idle_timeout_are_not_a_fault(demo_url) -> None:
    prompt = "Write 400 tokens about patience"
    # every request: comments every 0.1 s for 2 s against an idle timeout of 1.5 s
    url = demo_url(chaos=1, chaos_kinds="keepalive", chaos_max=100, chaos_stall=2.0)
    events = run_all(spec_for(url, prompt, max_tokens=256), timeouts=Timeouts(connect=5, idle=1.5, round=30))
    done = finish(events)
    assert done.result.text == demo_document(prompt)
    assert not [e for e in events if isinstance(e, Retrying)]
    assert [(r.error, r.recovery) for r in done.result.rounds] == [(None, False)] * 2


# ---------------------------------------------------------------- broken rounds, scripted

DOC = "The quick brown fox jumps over the lazy dog. " * 6


class _Script(ThreadingHTTPServer):
    """A chat endpoint that plays one step per request (the last one repeats).

    Steps: ``length`` (the next 80 characters of DOC, finish "length"), ``echo-cut``
    (echo the prefill's first 20 characters, then close), ``echo-only-cut`` (echo
    the whole prefill, then close), ``rest`` (echo the prefill, the rest of DOC,
    finish "stop"). The prefill is echoed in 10-character chunks, like Mistral.
    """

    daemon_threads = True

    def __init__(self, steps: list[str]) -> None:
        self.steps = steps
        self.calls = 0
        super().__init__(("127.0.0.1", 0), _ScriptHandler)


class _ScriptHandler(BaseHTTPRequestHandler):
    server: _Script

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        last = body["messages"][-1]
        sent = last["content"] if last["role"] == "assistant" else ""
        step = self.server.steps[min(self.server.calls, len(self.server.steps) - 1)]
        self.server.calls += 1
        echo = [sent[i : i + 10] for i in range(0, len(sent), 10)]
        pieces, finish = {
            "length": ([DOC[len(sent) : len(sent) + 80]], "length"),
            "echo-cut": (echo[:2], None),
            "echo-only-cut": (echo, None),
            "rest": ([*echo, DOC[len(sent) :]], "stop"),
        }[step]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()  # HTTP/1.0: the body ends when the connection closes
        for piece in pieces:
            self._event({"delta": {"content": piece}, "finish_reason": None})
        if finish:
            self._event({"delta": {}, "finish_reason": finish})
            self.wfile.write(b"data: [DONE]\n\n")

    def _event(self, choice: dict[str, object]) -> None:
        self.wfile.write(b"data: " + json.dumps({"choices": [{"index": 0, **choice}]}).encode() + b"\n\n")


def _scripted_run(steps: list[str]) -> tuple[list[Event], _Script]:
    server = _Script(steps)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        return run_all(spec_for(url, "Write about foxes", strategy="prefix", max_tokens=100)), server
    finally:
        server.shutdown()
        server.server_close()


def test_a_broken_round_never_appends_what_the_echo_filter_still_held() -> None:
    events, server = _scripted_run(["length", "echo-cut", "rest"])
    done = finish(events)
    assert server.calls == 3 and done.result.rounds[1].error  # the cut happened mid-echo
    assert done.result.text == DOC, first_difference(done.result.text, DOC)


def test_broken_rounds_that_only_regenerate_held_back_text_do_not_end_the_run() -> None:
    events, server = _scripted_run(["length", "echo-only-cut", "echo-only-cut", "rest"])
    done = finish(events)
    assert server.calls == 4 and done.stop_reason == "finished"
    assert done.result.text == DOC, first_difference(done.result.text, DOC)


def test_broken_rounds_in_a_row_that_add_nothing_end_in_the_transport_error() -> None:
    events, server = _scripted_run(["length", "echo-only-cut"])  # every round after the first breaks
    done = finish(events)
    assert done.stop_reason == "error" and done.error is not None and done.error.kind == "StreamInterrupted"
    assert server.calls == len(done.result.rounds) == 2 + FAST_RETRY.max_recoveries
    assert DOC.startswith(done.result.text) and done.result.text
