"""Real runs on the demo model, recorded by the Recorder and read back from the store."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from core.continuation import engine
from core.demo import demo_document
from core.services.store import Recorder, Store
from core.types import Delta, Round, RoundFinished, RunFinished, RunResult, RunSpec
from tests.pg import stored_bytes

SENTINEL = "sk-SENTINEL0b8e5d2f6c9a4e17a3"
PROMPT = "Write 2500 tokens about lighthouses"


def spec(base_url: str, **kw: object) -> RunSpec:
    values: dict[str, object] = {"max_tokens": 600, "max_rounds": 30, **kw}
    return RunSpec(messages=[{"role": "user", "content": PROMPT}], base_url=base_url, **values)  # type: ignore[arg-type]


def recorded(store: Store, run_spec: RunSpec, **kw: object) -> tuple[str, RunResult]:
    recorder = Recorder(store)
    events = list(recorder.record(engine.run(run_spec, **kw)))  # type: ignore[arg-type]
    last = events[-1]
    assert isinstance(last, RunFinished) and recorder.run_id is not None
    return recorder.run_id, last.result


def test_demo_run_loads_back_equal_to_its_result(store_db: str | Path, demo_server: str) -> None:
    with Store() as store:
        run_id, result = recorded(store, spec(demo_server))
        assert store.load(run_id) == result
    assert (result.stop_reason, len(result.rounds) > 2) == ("finished", True)


def test_demo_run_stores_the_whole_document(store_db: str | Path, demo_server: str) -> None:
    with Store() as store:
        run_id, _ = recorded(store, spec(demo_server))
        assert store.load(run_id).text == demo_document(PROMPT)


def test_api_key_of_a_real_run_never_reaches_the_database(store_db: str | Path, demo_server: str) -> None:
    with Store() as store:
        recorded(store, spec(demo_server), api_key=SENTINEL)
        while_open = stored_bytes(store_db)
    assert SENTINEL.encode() not in while_open and SENTINEL.encode() not in stored_bytes(store_db)


def test_api_key_refused_by_the_server_never_reaches_the_database(
    store_db: str | Path, demo_url: Callable[..., str]
) -> None:
    with Store() as store:
        run_id, result = recorded(store, spec(demo_url(auth="key")), api_key=SENTINEL)
        assert store.load(run_id).error == result.error is not None
    assert SENTINEL.encode() not in stored_bytes(store_db)


def interrupt_in_round(store: Store, run_spec: RunSpec, index: int, deltas: int) -> str:
    """Record a run and walk away after ``deltas`` deltas of round ``index`` (like a kill)."""
    recorder = Recorder(store)
    stream = recorder.record(engine.run(run_spec))
    seen = 0
    for event in stream:
        if isinstance(event, Delta) and event.round_index == index:
            seen += 1
            if seen == deltas:
                break
    stream.close()
    assert recorder.run_id is not None
    return recorder.run_id


def resumed(store: Store, run_id: str, run_spec: RunSpec) -> RunResult:
    result = store.load(run_id)
    recorder = Recorder(store, resume=result)
    events = list(recorder.record(engine.run(run_spec, resume=result)))
    assert isinstance(events[-1], RunFinished) and events[-1].result is result
    return result


def test_interrupted_demo_run_resumes_to_the_uninterrupted_answer(
    store_db: str | Path, demo_server: str
) -> None:
    with Store() as store:
        run_id = interrupt_in_round(store, spec(demo_server), index=2, deltas=100)
        assert store.summary(run_id).status == "interrupted"  # type: ignore[union-attr]
        result = resumed(store, run_id, spec(demo_server))
        assert store.load(run_id) == result
    assert result.text == demo_document(PROMPT)


def test_resumed_demo_run_is_one_run_with_right_totals(store_db: str | Path, demo_server: str) -> None:
    with Store() as store:
        run_id = interrupt_in_round(store, spec(demo_server), index=2, deltas=100)
        result = resumed(store, run_id, spec(demo_server))
        runs = store.list_runs()
    assert [r.id for r in runs] == [run_id]
    assert (runs[0].status, runs[0].rounds, runs[0].prompt_tokens_billed, runs[0].completion_tokens) == (
        "finished",
        len(result.rounds),
        result.prompt_tokens_billed,
        result.completion_tokens,
    )


def test_run_stopped_by_a_limit_resumes_with_a_new_limit(store_db: str | Path, demo_server: str) -> None:
    first = spec(demo_server, max_rounds=2)
    with Store() as store:
        run_id, result = recorded(store, first)
        assert result.stop_reason == "max_rounds"
        more = dataclasses.replace(first, max_rounds=30)
        result = resumed(store, run_id, more)
        loaded = store.load(run_id)
    assert (loaded.spec.max_rounds, loaded.text, loaded.stop_reason) == (
        30,
        demo_document(PROMPT),
        "finished",
    )


def test_finished_rounds_are_in_the_store_while_the_run_goes_on(
    store_db: str | Path, demo_server: str
) -> None:
    finished: list[Round] = []
    with Store() as store:
        recorder = Recorder(store)
        stream = recorder.record(engine.run(spec(demo_server)))
        for event in stream:
            if isinstance(event, RoundFinished):
                finished.append(event.round)
                if event.round.index == 2:
                    break
        stored = store.load(recorder.run_id or "").rounds
        stream.close()
    assert stored == finished
