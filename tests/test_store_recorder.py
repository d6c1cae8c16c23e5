"""Recorder: engine events become rows as they stream, a dead run is resumable, keys never land.

Events are built here the way the engine emits them (the public contract of
core.types); tests/test_store_engine.py records real engine runs.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.services.store import Recorder, Store, StoreError
from core.types import (
    Delta,
    ErrorInfo,
    Event,
    Notice,
    Round,
    RoundFinished,
    RoundStarted,
    RunFinished,
    RunResult,
    RunSpec,
    RunStarted,
)
from tests.pg import stored_bytes

SENTINEL = "sk-SENTINEL7e3b9f0c4a2d41c8b6"
ROOT = Path(__file__).resolve().parents[1]


class Clock:
    """A clock the test moves by hand (the Recorder's flush timing)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def spec(prompt: str = "Write about rivers", **kw: object) -> RunSpec:
    return RunSpec(messages=[{"role": "user", "content": prompt}], **kw)  # type: ignore[arg-type]


def stream_round(
    result: RunResult, text: str, *, finish: str | None = "length", chunk: int = 4
) -> Iterator[Event]:
    """One round as the engine emits it, appended to ``result`` when it finishes."""
    index = len(result.rounds) + 1
    yield RoundStarted(index=index, max_tokens=100, strategy=result.spec.strategy)
    for start in range(0, len(text), chunk):
        yield Delta(text[start : start + chunk], round_index=index)
    round_ = Round(
        index=index,
        max_tokens=100,
        text=text,
        finish_reason=finish,
        prompt_tokens=10 * index,
        completion_tokens=len(text) // 4,
        cost=0.001 * index,
        started_at=1_700_000_000.0 + index,
        duration_s=0.5,
    )
    result.rounds.append(round_)
    yield RoundFinished(round_)


def whole_run(texts: list[str], stop: str = "finished", run_spec: RunSpec | None = None) -> list[Event]:
    result = RunResult(spec=run_spec or spec(), started_at=1_700_000_000.0)
    events: list[Event] = [RunStarted(result.spec)]
    for n, text in enumerate(texts, 1):
        events += stream_round(result, text, finish="stop" if n == len(texts) else "length")
    result.stop_reason, result.finished_at = stop, 1_700_000_100.0
    events.append(RunFinished(stop, result))
    return events


def record(store: Store, events: list[Event], **kw: object) -> Recorder:
    recorder = Recorder(store, **kw)  # type: ignore[arg-type]
    for event in events:
        recorder.handle(event)
    return recorder


def result_of(events: list[Event]) -> RunResult:
    last = events[-1]
    assert isinstance(last, RunFinished)
    return last.result


# ---------------------------------------------------------------- whole runs


def test_recorded_run_loads_back_equal_to_its_result(store_db: str | Path) -> None:
    events = whole_run(["# Rivers\n\nThe Rhine ", "flows north 🌊 and ", "the Danube east."])
    with Store() as store:
        recorder = record(store, events)
        assert store.load(recorder.run_id or "") == result_of(events)


def test_recorder_gives_the_result_its_run_id(store_db: str | Path) -> None:
    events = whole_run(["one round"])
    with Store() as store:
        recorder = record(store, events)
    assert result_of(events).run_id == recorder.run_id is not None


def test_finished_run_has_status_finished_and_totals(store_db: str | Path) -> None:
    events = whole_run(["abcdefgh", "ijkl"])
    with Store() as store:
        summary = store.summary(record(store, events).run_id or "")
    assert summary is not None
    assert (summary.status, summary.rounds, summary.prompt_tokens_billed, summary.completion_tokens) == (
        "finished",
        2,
        30,
        3,
    )
    assert summary.characters == 12 and summary.cost == pytest.approx(0.003)


@pytest.mark.parametrize(
    ("stop", "status"), [("error", "error"), ("cancelled", "cancelled"), ("max_rounds", "finished")]
)
def test_stop_reason_decides_the_status(store_db: str | Path, stop: str, status: str) -> None:
    with Store() as store:
        summary = store.summary(record(store, whole_run(["text"], stop=stop)).run_id or "")
    assert summary is not None and (summary.status, summary.stop_reason) == (status, stop)


def test_error_of_the_run_is_kept(store_db: str | Path) -> None:
    events = whole_run(["partial"], stop="error")
    error = ErrorInfo("AuthenticationError", "The key was refused (401).", status=401)
    events[-1] = RunFinished("error", result_of(events), error)
    with Store() as store:
        assert store.load(record(store, events).run_id or "").error == error


def test_round_text_is_the_assembled_round_not_the_raw_stream(store_db: str | Path) -> None:
    result = RunResult(spec=spec())
    events: list[Event] = [RunStarted(result.spec), *stream_round(result, "echoed prefix + new text")]
    result.rounds[0].text = "new text"  # the strategy stripped an echo before finishing the round
    with Store() as store:
        recorder = record(store, events)
        assert store.load(recorder.run_id or "").text == "new text"


# ---------------------------------------------------------------- while streaming


def started(store: Store, clock: Clock, **kw: object) -> Recorder:
    recorder = Recorder(store, clock=clock, **kw)  # type: ignore[arg-type]
    recorder.handle(RunStarted(spec()))
    recorder.handle(RoundStarted(index=1, max_tokens=100, strategy="prefill"))
    return recorder


def live_text(store: Store, recorder: Recorder) -> str:
    return store.load(recorder.run_id or "").text


def test_streamed_text_waits_for_the_flush_interval(store_db: str | Path) -> None:
    clock = Clock()
    with Store() as store:
        recorder = started(store, clock)
        recorder.handle(Delta("The Rhine ", round_index=1))
        clock.advance(0.5)
        recorder.handle(Delta("flows ", round_index=1))
        assert live_text(store, recorder) == ""


def test_streamed_text_is_written_once_a_second_has_passed(store_db: str | Path) -> None:
    clock = Clock()
    with Store() as store:
        recorder = started(store, clock)
        recorder.handle(Delta("The Rhine ", round_index=1))
        clock.advance(1.0)
        recorder.handle(Delta("flows ", round_index=1))
        recorder.handle(Delta("north", round_index=1))
        assert live_text(store, recorder) == "The Rhine flows "


def test_flush_writes_buffered_text_at_once(store_db: str | Path) -> None:
    clock = Clock()
    with Store() as store:
        recorder = started(store, clock)
        recorder.handle(Delta("The Rhine ", round_index=1))
        recorder.handle(Delta("thinks", kind="reasoning", round_index=1))
        recorder.flush()
        loaded = store.load(recorder.run_id or "")
    assert (loaded.text, loaded.reasoning) == ("The Rhine ", "thinks")


def test_flush_interval_is_configurable(store_db: str | Path) -> None:
    clock = Clock()
    with Store() as store:
        recorder = started(store, clock, flush_interval=0.1)
        recorder.handle(Delta("a", round_index=1))
        clock.advance(0.1)
        recorder.handle(Delta("b", round_index=1))
        assert live_text(store, recorder) == "ab"


def test_live_round_counts_in_the_totals(store_db: str | Path) -> None:
    clock = Clock()
    with Store() as store:
        recorder = started(store, clock)
        recorder.handle(Delta("12345", round_index=1))
        recorder.flush()
        summary = store.summary(recorder.run_id or "")
    assert summary is not None and (summary.rounds, summary.characters, summary.status) == (1, 5, "running")


def test_only_the_live_round_row_is_rewritten_while_streaming(tmp_db: Path) -> None:
    clock = Clock()
    with Store() as store:
        result = RunResult(spec=spec())
        recorder = Recorder(store, clock=clock)
        recorder.handle(RunStarted(result.spec))
        for text in ("first round " * 50, "second round " * 50):
            for event in stream_round(result, text):
                recorder.handle(event)
        with sqlite3.connect(tmp_db) as raw:
            raw.executescript(
                "CREATE TABLE touched (idx INTEGER);"
                "CREATE TRIGGER log_update AFTER UPDATE ON rounds"
                " BEGIN INSERT INTO touched VALUES (new.idx); END;"
                "CREATE TRIGGER log_insert AFTER INSERT ON rounds"
                " BEGIN INSERT INTO touched VALUES (new.idx); END;"
            )
        recorder.handle(RoundStarted(index=3, max_tokens=100, strategy="prefill"))
        for _ in range(5):
            clock.advance(1.0)
            recorder.handle(Delta("third round ", round_index=3))
        with sqlite3.connect(tmp_db) as raw:
            touched = [row[0] for row in raw.execute("SELECT idx FROM touched")]
    assert set(touched) == {3} and len(touched) == 6  # the live row inserted, then 5 appends


def test_notice_and_retry_events_keep_the_text_flowing(store_db: str | Path) -> None:
    clock = Clock()
    with Store() as store:
        recorder = started(store, clock)
        recorder.handle(Delta("waiting ", round_index=1))
        clock.advance(1.5)
        recorder.handle(Notice("reasoning used most of the budget", round_index=1))
        assert live_text(store, recorder) == "waiting "


def test_autoflush_saves_text_of_a_stalled_stream(store_db: str | Path) -> None:
    with Store() as store:
        recorder = Recorder(store, flush_interval=0.05, autoflush=True)
        recorder.handle(RunStarted(spec()))
        recorder.handle(RoundStarted(index=1, max_tokens=100, strategy="prefill"))
        recorder.handle(Delta("then the server went quiet", round_index=1))
        saved = threading.Event()
        for _ in range(500):  # the background flush is awaited, never assumed
            if live_text(store, recorder) == "then the server went quiet":
                saved.set()
                break
            saved.wait(0.01)
        recorder.close()
        assert saved.is_set()


# ---------------------------------------------------------------- interrupted and resumed


def interrupted_run(store: Store) -> tuple[str, RunResult]:
    """Two finished rounds and half of a third, then the consumer stops (closing the recorder)."""
    clock = Clock()
    result = RunResult(spec=spec("Write about lighthouses"))
    recorder = Recorder(store, clock=clock)
    recorder.handle(RunStarted(result.spec))
    for text in ("Lighthouses stand ", "on rocky coasts "):
        for event in stream_round(result, text):
            recorder.handle(event)
    recorder.handle(RoundStarted(index=3, max_tokens=100, strategy="prefill"))
    recorder.handle(Delta("and guide ", round_index=3))
    recorder.close()
    assert recorder.run_id is not None
    return recorder.run_id, result


def test_run_closed_before_it_finished_is_interrupted(store_db: str | Path) -> None:
    with Store() as store:
        run_id, _ = interrupted_run(store)
        summary = store.summary(run_id)
    assert summary is not None and (summary.status, summary.stop_reason) == ("interrupted", None)


def test_interrupted_run_loads_with_its_partial_round(store_db: str | Path) -> None:
    with Store() as store:
        run_id, _ = interrupted_run(store)
        partial = store.load(run_id).rounds[-1]
    assert (partial.index, partial.text, partial.finish_reason, partial.error) == (
        3,
        "and guide ",
        None,
        "interrupted",
    )


def test_run_of_a_killed_process_keeps_the_text_up_to_the_last_flush(store_db: str | Path) -> None:
    code = (
        "from core.services.store import Recorder, Store\n"
        "from core.types import Delta, RoundStarted, RunSpec, RunStarted\n"
        "recorder = Recorder(Store(), flush_interval=3600)\n"
        "recorder.handle(RunStarted(RunSpec(messages=[{'role': 'user', 'content': 'Write'}])))\n"
        "recorder.handle(RoundStarted(index=1, max_tokens=100, strategy='prefill'))\n"
        "recorder.handle(Delta('saved ', round_index=1))\n"
        "recorder.flush()\n"
        "recorder.handle(Delta('lost', round_index=1))\n"
        "print(recorder.run_id, flush=True)\n"
        "os._exit(9)\n"
    )
    env = {**os.environ, "CONTINUUM_DB": str(store_db), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", "import os\n" + code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    run_id = done.stdout.strip()
    with Store() as store:
        assert store.mark_interrupted() == [run_id]
        assert store.load(run_id).text == "saved "


def test_record_wrapper_leaves_an_abandoned_run_interrupted(store_db: str | Path) -> None:
    events = whole_run(["abc", "def"])
    with Store() as store:
        recorder = Recorder(store)
        stream = recorder.record(iter(events))
        for _ in range(4):
            next(stream)
        stream.close()
        summary = store.summary(recorder.run_id or "")
    assert summary is not None and summary.status == "interrupted"


def resume(store: Store, run_id: str, texts: list[str]) -> RunResult:
    """Resume as the engine would: the loaded RunResult is extended in place."""
    result = store.load(run_id)
    recorder = Recorder(store, resume=result)
    recorder.handle(RunStarted(result.spec, resumed_rounds=len(result.rounds)))
    for n, text in enumerate(texts, 1):
        for event in stream_round(result, text, finish="stop" if n == len(texts) else "length"):
            recorder.handle(event)
    result.stop_reason, result.finished_at = "finished", 1_700_000_200.0
    recorder.handle(RunFinished("finished", result))
    return result


def test_resumed_run_stays_one_run(store_db: str | Path) -> None:
    with Store() as store:
        run_id, _ = interrupted_run(store)
        resume(store, run_id, ["ships home."])
        assert [r.id for r in store.list_runs()] == [run_id]


def test_resumed_run_loads_back_equal_to_the_extended_result(store_db: str | Path) -> None:
    with Store() as store:
        run_id, _ = interrupted_run(store)
        result = resume(store, run_id, ["ships ", "home."])
        loaded = store.load(run_id)
    assert loaded == result
    assert loaded.text == "Lighthouses stand on rocky coasts and guide ships home."
    assert [r.error for r in loaded.rounds] == [None, None, "interrupted", None, None]


def test_resumed_run_totals_cover_every_round(store_db: str | Path) -> None:
    with Store() as store:
        run_id, _ = interrupted_run(store)
        result = resume(store, run_id, ["ships ", "home."])
        summary = store.summary(run_id)
    assert summary is not None
    assert (summary.status, summary.rounds, summary.prompt_tokens_billed, summary.characters) == (
        "finished",
        5,
        result.prompt_tokens_billed,
        len(result.text),
    )


def test_held_back_tail_is_saved_before_the_next_round_streams(store_db: str | Path) -> None:
    clock = Clock()
    with Store() as store:
        result = RunResult(spec=spec())
        recorder = Recorder(store, clock=clock)
        recorder.handle(RunStarted(result.spec))
        for event in stream_round(result, "The Rhine flo"):
            recorder.handle(event)
        result.rounds[0].text, result.rounds[0].held_back = "The Rhine", " flo"  # the engine's hold-back
        recorder.handle(RoundStarted(index=2, max_tokens=100, strategy="prefill", held_back=4))
        recorder.handle(Delta(" flows north", round_index=2))
        recorder.flush()  # … and the process dies here
        assert store.load(recorder.run_id or "").text == "The Rhine flows north"


def test_held_back_tail_of_a_resumed_round_is_saved_too(store_db: str | Path) -> None:
    clock = Clock()
    with Store() as store:
        run_id, _ = interrupted_run(store)
        result = store.load(run_id)
        recorder = Recorder(store, resume=result, clock=clock)
        recorder.handle(RunStarted(result.spec, resumed_rounds=3))
        result.rounds[2].text, result.rounds[2].held_back = "and ", "guide "
        recorder.handle(RoundStarted(index=4, max_tokens=100, strategy="prefill", held_back=6))
        recorder.handle(Delta("guide ships", round_index=4))
        recorder.flush()
        assert store.load(run_id).text == "Lighthouses stand on rocky coasts and guide ships"


def test_mark_interrupted_leaves_a_run_being_recorded_alone(store_db: str | Path) -> None:
    with Store() as store:
        recorder = started(store, Clock())
        assert store.mark_interrupted() == []
        recorder.close()


def test_a_run_being_recorded_is_not_resumed_twice(store_db: str | Path) -> None:
    with Store() as store:
        first = started(store, Clock())
        second = Recorder(store, first.run_id)
        second.handle(RunStarted(spec()))
        second.handle(RoundFinished(Round(index=1, text="written twice")))
        second.close()
        assert isinstance(second.last_error, StoreError)
        assert (store.load(first.run_id or "").text, store.is_active(first.run_id or "")) == ("", True)


def test_a_run_is_active_only_while_it_is_recorded(store_db: str | Path) -> None:
    with Store() as store:
        recorder = started(store, Clock())
        active = store.is_active(recorder.run_id or "")
        recorder.close()
        assert (active, store.is_active(recorder.run_id or "")) == (True, False)


# ---------------------------------------------------------------- failures and secrets


def test_a_database_failure_never_breaks_the_run(store_db: str | Path) -> None:
    store = Store()
    recorder = started(store, Clock())
    store.close()
    for event in whole_run(["still ", "going"])[1:]:
        recorder.handle(event)
    recorder.flush()
    assert recorder.last_error is not None


def test_api_key_never_reaches_the_database_files(store_db: str | Path) -> None:
    leaky = spec(
        base_url=f"http://127.0.0.1:9/v1?key={SENTINEL}",
        extra_body={
            "api_key": SENTINEL,
            "headers": {"X-API-Key": SENTINEL, "Authorization": f"Bearer {SENTINEL}"},
        },
    )
    events = whole_run(["some ", "text"], run_spec=leaky)
    with Store() as store:
        record(store, events)
        while_open = stored_bytes(store_db)
    after_close = stored_bytes(store_db)
    assert b"SENTINEL" not in while_open and b"SENTINEL" not in after_close


def test_a_live_run_grows_in_another_store_as_the_recorder_flushes(store_db: str | Path) -> None:
    # Two app servers on one history: what one records, the other reads as it streams.
    clock = Clock()
    with Store() as writer, Store() as reader:
        recorder = Recorder(writer, clock=clock)
        recorder.handle(RunStarted(spec()))
        recorder.handle(RoundStarted(index=1, max_tokens=100, strategy="prefill"))
        assert recorder.run_id is not None
        seen = []
        for word in ("The ", "tide ", "turns."):
            clock.advance(1.0)
            recorder.handle(Delta(word, round_index=1))
            seen.append(reader.load(recorder.run_id).text)
        summary = reader.summary(recorder.run_id)
        assert seen == ["The ", "The tide ", "The tide turns."]
        assert (summary and summary.status, summary and summary.characters) == ("running", len(seen[-1]))
        assert reader.is_active(recorder.run_id)
        recorder.close()
        assert reader.summary(recorder.run_id).status == "interrupted"  # type: ignore[union-attr]
