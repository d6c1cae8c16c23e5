"""Write-behind for batch recorders: the same rows as direct writes, in order, errors kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import cast

import pytest
from test_batch_support import settings

from core.continuation import engine
from core.services.batch.writer import WriteBehindStore
from core.services.store import Recorder, Store, StoreError
from core.types import Round, RunSpec, RunStarted

PROMPT = "Write 900 tokens about harbours"


def spec(base_url: str) -> RunSpec:
    run_spec = settings(base_url)
    run_spec.messages = [{"role": "user", "content": PROMPT}]
    return run_spec


def test_a_run_recorded_behind_loads_back_equal_to_its_result(tmp_db: Path, demo_server: str) -> None:
    with Store() as store:
        writer = WriteBehindStore(store)
        run_id = store.create_run(spec(demo_server))
        recorder = Recorder(cast(Store, writer), run_id=run_id)
        *_, finished = recorder.record(engine.run(spec(demo_server)))
        writer.close()
        assert store.load(run_id) == finished.result  # type: ignore[union-attr]


def test_a_round_edited_after_it_was_queued_is_written_as_it_was(tmp_db: Path) -> None:
    with Store() as store:
        writer = WriteBehindStore(store)
        run_id = store.create_run(RunSpec(messages=[{"role": "user", "content": "x"}]))
        other_process = sqlite3.connect(tmp_db)
        other_process.execute("BEGIN IMMEDIATE")  # the database is busy: the write waits
        round_ = Round(index=1, text="as queued")
        writer.write_rounds(run_id, [round_])
        round_.text = "edited later"
        other_process.rollback()
        writer.drain()
        assert store.stored_rounds(run_id)[0].text == "as queued"


def test_a_failed_queued_write_is_counted_and_the_next_ones_go_on(tmp_db: Path) -> None:
    with Store() as store:
        writer = WriteBehindStore(store)
        run_id = store.create_run(RunSpec(messages=[{"role": "user", "content": "x"}]))
        writer.finish_run(
            run_id, spec=RunSpec(messages=[]), status="bogus", stop_reason=None, error=None, finished_at=None
        )
        writer.write_rounds(run_id, [Round(index=1, text="still written")])
        writer.close()
        assert (writer.errors, store.stored_rounds(run_id)[0].text) == (1, "still written")


def test_a_refused_call_raises_in_the_caller(tmp_db: Path) -> None:
    run_spec = RunSpec(messages=[{"role": "user", "content": "x"}])
    with Store() as store:
        writer = WriteBehindStore(store)
        run_id = store.create_run(run_spec)
        holder = Recorder(store, run_id=run_id)
        holder.handle(RunStarted(run_spec))  # another recorder holds the run now
        try:
            with pytest.raises(StoreError, match="still being recorded"):
                writer.begin_run(run_id, run_spec)
        finally:
            holder.close()
            writer.close()
