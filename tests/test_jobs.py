"""Background runs (core/services/jobs.py): worker threads, snapshots, stop, isolation.

Most tests drive a Job with a small fake engine: a generator with the engine's
signature that yields the events a real run would, paced by threading.Events the
test controls (no sleeps). The last tests run the real engine against the demo.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from core.continuation.validation import Invalid
from core.demo import demo_document
from core.services.jobs import Gauge, JobManager, recording_runner
from core.services.snapshot import AMBER_AT, RED_AT
from core.types import (
    CancelToken,
    Delta,
    ErrorInfo,
    Event,
    Notice,
    Retrying,
    Round,
    RoundFinished,
    RoundStarted,
    RunFinished,
    RunResult,
    RunSpec,
    RunStarted,
)

WAIT = 10.0  # seconds a test waits for a worker before failing (never reached when it works)


def spec(prompt: str = "Write 300 tokens about tea", **fields: object) -> RunSpec:
    return RunSpec(messages=[{"role": "user", "content": prompt}], **fields)


def scripted(rounds: list[list[str]], *, finish: str = "finished"):
    """A fake engine playing ``rounds`` (lists of deltas) to the end."""

    def run(spec: RunSpec, *, api_key=None, cancel=None, resume=None, **_) -> Iterator[Event]:
        result = RunResult(spec=spec)
        yield RunStarted(spec)
        for i, deltas in enumerate(rounds, start=1):
            yield RoundStarted(i, 100, "prefill")
            for d in deltas:
                yield Delta(d, round_index=i)
            r = Round(i, text="".join(deltas), finish_reason="length", completion_tokens=len(deltas))
            result.rounds.append(r)
            yield RoundFinished(r)
        result.stop_reason = finish
        yield RunFinished(finish, result)

    return run


class Gate:
    """A fake engine that streams one round and then waits for the test (or a cancel)."""

    def __init__(self) -> None:
        self.streaming = threading.Event()
        self.release = threading.Event()
        self.api_key: str | None = None

    def __call__(self, spec: RunSpec, *, api_key=None, cancel=None, resume=None, **_) -> Iterator[Event]:
        assert isinstance(cancel, CancelToken)
        self.api_key = api_key
        unregister = cancel.register(self.release.set)  # like the engine aborting its HTTP stream
        result = RunResult(spec=spec)
        yield RunStarted(spec)
        yield RoundStarted(1, 100, "prefill")
        yield Delta("Hello ", round_index=1)
        yield Delta("world", round_index=1)
        self.streaming.set()
        self.release.wait(WAIT)
        unregister()
        r = Round(1, text="Hello world", finish_reason=None if cancel.cancelled else "stop")
        result.rounds.append(r)
        yield RoundFinished(r)
        stop = "cancelled" if cancel.cancelled else "finished"
        result.stop_reason = stop
        yield RunFinished(stop, result)


def finished(job) -> None:
    assert job.join(WAIT), "the worker did not end"


def test_a_job_folds_the_run_into_finished_rounds_and_a_result():
    job = JobManager(scripted([["a", "b"], ["c"]])).start(spec())
    finished(job)
    snap = job.snapshot()
    assert (snap.status, snap.stop_reason, snap.text, len(snap.rounds)) == ("done", "finished", "abc", 2)
    assert snap.result is not None and snap.result.text == "abc"


def test_the_live_round_is_visible_while_it_streams():
    gate = Gate()
    job = JobManager(gate).start(spec())
    assert gate.streaming.wait(WAIT)
    snap = job.wait(0, WAIT)
    while snap.live is None or snap.live.chunks < 2:
        snap = job.wait(snap.version, WAIT)
    assert (snap.status, snap.live.text, snap.live.index, snap.rounds) == ("running", "Hello world", 1, ())
    gate.release.set()
    finished(job)


def test_stop_cancels_the_run_and_keeps_the_text():
    gate = Gate()
    job = JobManager(gate).start(spec())
    assert gate.streaming.wait(WAIT)
    job.stop()
    finished(job)
    snap = job.snapshot()
    assert (snap.stop_reason, snap.text) == ("cancelled", "Hello world")


def test_a_stopped_job_says_stopping_until_the_engine_has_wound_down():
    started, release = threading.Event(), threading.Event()

    def slow_to_stop(spec, *, api_key=None, cancel=None, resume=None, **_):
        yield RunStarted(spec)
        started.set()
        release.wait(WAIT)  # an engine still closing its stream
        yield RunFinished("cancelled", RunResult(spec=spec, stop_reason="cancelled"))

    job = JobManager(slow_to_stop).start(spec())
    assert started.wait(WAIT)
    job.stop()
    status = job.snapshot().status
    release.set()
    finished(job)
    assert (status, job.snapshot().status) == ("stopping", "done")


def test_wait_returns_as_soon_as_something_changes():
    gate = Gate()
    job = JobManager(gate).start(spec())
    assert gate.streaming.wait(WAIT)
    before = job.snapshot().version
    gate.release.set()
    assert job.wait(before, WAIT).version > before


def test_the_api_key_reaches_the_engine_but_not_the_snapshot():
    gate = Gate()
    job = JobManager(gate).start(spec(), api_key="sk-secret-123")
    assert gate.streaming.wait(WAIT)
    gate.release.set()
    finished(job)
    assert gate.api_key == "sk-secret-123"
    assert "sk-secret-123" not in repr(job.snapshot()) and "sk-secret-123" not in repr(vars(job))


def test_an_engine_crash_becomes_an_error_with_the_text_kept():
    def crashing(spec, *, api_key=None, cancel=None, resume=None, **_):
        yield RunStarted(spec)
        yield RoundStarted(1, 100, "prefill")
        yield Delta("partial", round_index=1)
        raise RuntimeError(f"boom with {api_key}")

    job = JobManager(crashing).start(spec(), api_key="sk-secret-123")
    finished(job)
    snap = job.snapshot()
    assert (snap.stop_reason, snap.text, snap.error.kind) == ("error", "partial", "InternalError")
    assert "boom" in snap.error.message and "sk-secret-123" not in snap.error.message


def test_an_engine_error_is_reported_as_its_error_info():
    def failing(spec, *, api_key=None, cancel=None, resume=None, **_):
        info = ErrorInfo(kind="AuthenticationError", message="401: check the key", status=401)
        result = RunResult(spec=spec, stop_reason="error", error=info)
        yield RunStarted(spec)
        yield RunFinished("error", result, info)

    job = JobManager(failing).start(spec())
    finished(job)
    assert job.snapshot().error.kind == "AuthenticationError"


def test_a_trimmed_round_keeps_what_was_held_back():
    gate = threading.Event()

    def holding(spec, *, api_key=None, cancel=None, resume=None, **_):
        yield RunStarted(spec)
        yield RoundStarted(1, 10, "prefill")
        yield RoundFinished(Round(1, text="one two thr", finish_reason="length"))
        yield RoundStarted(2, 10, "prefill", held_back=3)
        gate.wait(WAIT)
        yield RunFinished("cancelled", RunResult(spec=spec))

    job = JobManager(holding).start(spec())
    snap = job.wait(0, WAIT)
    while snap.live is None or snap.live.index != 2:
        snap = job.wait(snap.version, WAIT)
    gate.set()
    finished(job)
    assert (snap.rounds[0].text, snap.rounds[0].held_back) == ("one two ", "thr")


def test_a_retry_starts_the_live_round_over():
    gate = threading.Event()

    def retrying(spec, *, api_key=None, cancel=None, resume=None, **_):
        yield RunStarted(spec)
        yield RoundStarted(1, 10, "prefill")
        yield Delta("garbled", round_index=1)
        yield Retrying("HTTP 503", 0.5, 1, round_index=1)
        gate.wait(WAIT)
        yield RunFinished("cancelled", RunResult(spec=spec))

    job = JobManager(retrying).start(spec())
    snap = job.wait(0, WAIT)
    while snap.retrying is None:
        snap = job.wait(snap.version, WAIT)
    gate.set()
    finished(job)
    assert snap.live is not None and snap.live.text == "" and "503" in snap.retrying


def test_notices_are_collected():
    def noticing(spec, *, api_key=None, cancel=None, resume=None, **_):
        yield RunStarted(spec)
        yield Notice("reasoning used the whole round budget", round_index=1)
        yield RunFinished("finished", RunResult(spec=spec, stop_reason="finished"))

    job = JobManager(noticing).start(spec())
    finished(job)
    assert job.snapshot().notices == ("reasoning used the whole round budget",)


def test_jobs_are_found_only_by_their_unguessable_id():
    manager = JobManager(scripted([["x"]]))
    a, b = manager.start(spec()), manager.start(spec())
    finished(a)
    finished(b)
    assert a.id != b.id and len(a.id) >= 20
    assert manager.get(a.id) is a and manager.get(a.id[:-1]) is None and manager.get(None) is None


def test_finished_jobs_beyond_the_limit_are_dropped_oldest_first():
    manager = JobManager(scripted([["x"]]), keep=2)
    jobs = []
    for _ in range(4):
        job = manager.start(spec())
        finished(job)
        jobs.append(job)
    assert manager.get(jobs[0].id) is None and manager.get(jobs[-1].id) is jobs[-1]


def test_finish_hooks_get_the_result():
    seen: list[RunResult] = []
    done = threading.Event()
    manager = JobManager(scripted([["a"], ["b"]]))
    manager.on_finish.append(lambda result: (seen.append(result), done.set()))
    manager.start(spec())
    assert done.wait(WAIT)
    assert seen[0].text == "ab"


def test_a_resumed_run_starts_from_the_earlier_rounds():
    earlier = RunResult(spec=spec(), rounds=[Round(1, text="old ", finish_reason="length")])

    def resuming(spec, *, api_key=None, cancel=None, resume=None, **_):
        assert resume is earlier
        yield RunStarted(spec, resumed_rounds=1)
        yield RunFinished("finished", resume)

    job = JobManager(resuming).start(spec(), resume=earlier)
    assert job.snapshot().rounds[0].text == "old "
    finished(job)


@pytest.mark.parametrize(
    ("used", "level"),
    [(0.5, "ok"), (AMBER_AT, "amber"), (RED_AT, "red"), (1.2, "red")],
)
def test_the_gauge_turns_amber_then_red(used: float, level: str):
    gauge = Gauge(1000, 100, int(used * 1000) - 100, 0, None, False)
    assert gauge.level == level


def test_the_gauge_counts_remaining_room_and_never_goes_negative():
    assert Gauge(1000, 300, 500, 0, None, False).remaining == 200
    assert Gauge(1000, 300, 900, 0, None, False).remaining == 0
    assert Gauge(None, 300, 900, 0, None, False).remaining is None


def test_the_gauge_bills_the_prompt_again_for_every_round():
    rounds = [
        Round(1, text="a" * 400, prompt_tokens=50, completion_tokens=100, finish_reason="length"),
        Round(2, text="b" * 400, prompt_tokens=150, completion_tokens=100, finish_reason="stop"),
    ]

    def two(spec, *, api_key=None, cancel=None, resume=None, **_):
        yield RunStarted(spec)
        for r in rounds:
            yield RoundFinished(r)
        yield RunFinished("finished", RunResult(spec=spec, rounds=rounds, stop_reason="finished"))

    job = JobManager(two).start(spec(context_window=1000))
    finished(job)
    gauge = job.snapshot().gauge
    assert (gauge.prompt_tokens, gauge.generated_tokens, gauge.billed_input_tokens) == (50, 200, 200)


# ---------------------------------------------------------------- the real engine


def test_a_real_multi_round_run_reproduces_the_demo_document(demo_server: str):
    prompt = "Write 1200 tokens about tea gardens"
    job = JobManager().start(spec(prompt, base_url=demo_server, max_tokens=300, context_window=8192))
    finished(job)
    snap = job.snapshot()
    assert snap.stop_reason == "finished" and len(snap.rounds) >= 4
    assert snap.text == demo_document(prompt)


def test_stop_ends_a_real_run_quickly_and_keeps_its_text(demo_server: str):
    from core.demo import start_demo_server

    with start_demo_server(rate=200.0) as slow:
        job = JobManager().start(
            spec("Write 5000 tokens about rivers", base_url=slow.base_url, max_tokens=400)
        )
        snap = job.wait(0, WAIT)
        while snap.live is None or snap.live.chunks < 5:
            snap = job.wait(snap.version, WAIT)
        job.stop()
        assert job.join(WAIT)
    final = job.snapshot()
    assert final.stop_reason == "cancelled" and final.text
    assert demo_document("Write 5000 tokens about rivers").startswith(final.text)


def test_a_recording_manager_saves_each_run_to_the_history(demo_server: str, tmp_db):
    from core.services.store import Store

    store = Store(tmp_db)
    prompt = "Write 600 tokens about ferns"
    job = JobManager(recording_runner(store)).start(spec(prompt, base_url=demo_server, max_tokens=200))
    finished(job)
    result = job.snapshot().result
    assert result is not None and result.run_id
    assert store.load(result.run_id).text == demo_document(prompt)


def test_a_refused_spec_names_every_problem_and_starts_nothing() -> None:

    manager = JobManager()
    spec = RunSpec(messages=[{"role": "user", "content": "x" * 40_000}], max_tokens=0, context_window=8192)
    with pytest.raises(Invalid) as refused:
        manager.start(spec)
    assert {p.field for p in refused.value.problems} >= {"max_tokens"} and len(refused.value.problems) >= 2
    assert "settings are not valid" in str(refused.value)
