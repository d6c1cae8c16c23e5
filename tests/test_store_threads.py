"""The history keeps a run's edits and its thread (migration 0005): saved, loaded, listed, upgraded.

Real SQLite files; the runs that need a model run the real engine against the demo
model on loopback and are recorded by the Recorder, as the app records them.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from core.continuation import engine
from core.demo import demo_document
from core.services import steering
from core.services.store import Recorder, Store
from core.types import Delta, Edit, Round, RunFinished, RunResult, RunSpec
from tests.pg import raw_rows

FIXTURES = Path(__file__).with_name("fixtures")
PROMPT = "Write about 1200 tokens on the tides of the Atlantic coast."


def spec(base_url: str = "http://127.0.0.1:9/v1", **kw: object) -> RunSpec:
    values: dict[str, object] = {"max_tokens": 250, "max_rounds": 40, "context_window": 8192, **kw}
    return RunSpec(messages=[{"role": "user", "content": PROMPT}], base_url=base_url, **values)  # type: ignore[arg-type]


def edited_result() -> RunResult:
    result = RunResult(
        spec=spec(),
        rounds=[
            Round(1, text="The tide comes ", finish_reason="length"),
            Round(2, text="in.", finish_reason="stop"),
        ],
        stop_reason="finished",
        finished_at=1_700_000_010.0,
    )
    result.edit("The tide comes in twice a day.")
    result.rounds.append(Round(3, text=" And goes out.", finish_reason="stop"))
    result.thread_id, result.parent_id = "t-1", "p-1"
    return result


def test_an_old_history_upgrades_with_no_threads_and_no_edits(tmp_db: Path) -> None:
    shutil.copyfile(FIXTURES / "continuum-v1.sqlite3", tmp_db)
    with Store() as store:
        runs = store.list_runs()
        assert runs and all(r.thread_id is None and r.parent_id is None for r in runs)
        for summary in runs:
            loaded = store.load(summary.id)
            assert (loaded.edits, loaded.thread_id, loaded.parent_id) == ([], None, None)
            assert summary.characters == len(loaded.text)


def test_a_saved_run_loads_back_with_its_edits_and_thread(store_db: str | Path) -> None:
    result = edited_result()
    with Store() as store:
        run_id = store.save(result)
        store.save(RunResult(spec=spec(), run_id="p-1"))  # the parent, so the thread has its first run
        loaded = store.load(run_id)
        summary = store.summary(run_id)
        assert loaded == result
        assert loaded.text == "The tide comes in twice a day. And goes out."
        assert summary is not None and summary.characters == len(loaded.text)
        assert (summary.thread_id, summary.parent_id) == ("t-1", "p-1")
        store.save(result)  # saved again: the edits are not doubled
        assert store.load(run_id).edits == result.edits


def test_deleting_a_run_deletes_its_edits(store_db: str | Path) -> None:
    with Store() as store:
        run_id = store.save(edited_result())
        assert store.delete(run_id)
    assert raw_rows(store_db, "SELECT count(*) FROM edits") == [(0,)]


def test_a_thread_lists_its_runs_in_order(store_db: str | Path) -> None:
    with Store() as store:
        first = store.create_run(spec())
        second = store.create_run(spec())
        third = store.create_run(spec())
        alone = store.create_run(spec())
        store.join_thread(second, first, first)
        store.join_thread(third, first, second)
        assert [s.id for s in store.thread(first)] == [first, second, third]
        assert [s.parent_id for s in store.thread(first)] == [None, first, second]
        assert store.thread_of(first) == first and store.thread_of(alone) is None
        assert store.threads([first, first]) == {first: [first, second, third]}
        listed = {s.id: s.thread_id for s in store.list_runs()}
        assert listed == {first: first, second: first, third: first, alone: None}


def test_edits_are_written_once_and_appended_in_order(store_db: str | Path) -> None:
    one = Edit.between("", "Opening.", 0)
    two = Edit.between("Opening. Text.", "Opening. Better text.", 1)
    with Store() as store:
        run_id = store.create_run(spec())
        store.write_edits(run_id, [one])
        store.write_edits(run_id, [one, two])
        assert store.edits_of(run_id) == [one, two]
        store.write_edits("no-such-run", [one])  # nothing to attach it to: nothing written
        assert store.edits_of("no-such-run") == []


def test_a_run_killed_after_an_edit_still_loads_the_edited_text(
    store_db: str | Path, demo_server: str
) -> None:
    """The Recorder saves the edit and the rounds it emptied when the resumed run starts."""
    with Store() as store:
        recorder = Recorder(store)
        first = list(recorder.record(engine.run(spec(demo_server, max_rounds=2))))[-1]
        assert isinstance(first, RunFinished) and recorder.run_id is not None
        run_id = recorder.run_id
        mine = first.result.text + "\n\nMy paragraph."
        result = steering.edited(store.load(run_id), mine)
        resume_spec = dataclasses.replace(result.spec, max_rounds=4)
        recorder = Recorder(store, resume=result)
        events = recorder.record(engine.run(resume_spec, resume=result))
        for event in events:
            if isinstance(event, Delta):
                events.close()  # the process dies mid-round (its recorder closes, as at exit)
                break
        loaded = store.load(run_id)
        summary = store.summary(run_id)
    assert summary is not None and summary.status == "interrupted"
    assert [r.text for r in loaded.rounds[:2]] == ["", ""]
    assert loaded.text.startswith(mine) and loaded.edits[0].text_before == first.result.text
    assert demo_document(PROMPT).startswith(first.result.text)
