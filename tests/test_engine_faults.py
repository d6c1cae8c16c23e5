"""Faults: broken streams, rate limits, server errors, malformed chunks, refused requests."""

from __future__ import annotations

import random

from test_engine_support import FAST_RETRY, finish, run_all, spec_for

from core.client import Timeouts
from core.demo import demo_document
from core.engine import RetryPolicy
from core.types import Retrying, RoundStarted

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
