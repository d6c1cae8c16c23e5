"""A batch worker whose claim was taken over (its beats were late, on another host) writes nothing
more to the item's run, on SQLite and PostgreSQL: its final status, its rounds and its text are
refused (RunTakenOver), the new owner's run is left as it is, and the old worker learns its claim
is gone. And no item is lost or hidden: one whose final write never landed is taken again, and a
live worker's late claims here do not keep the free items from being taken."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from core.services.store import Batches, Recorder, RunTakenOver, Store
from core.services.store.claims import Claims
from core.types import Round, RoundStarted, RunFinished, RunResult, RunSpec, RunStarted
from tests.pg import raw_rows
from tests.test_batch_worker_claims import new_batch
from tests.test_store_heartbeat import ROOT, can_unshare, elsewhere

ELSEWHERE = "continuum-elsewhere"

# The second worker, on another host: takes the stale item and reopens its run for recording.
NEW_WORKER = """
from core.services.store import Store
from core.services.store.claims import Claims
from core.types import RunSpec
with Store() as store:
    [taken] = Claims(store).claim()
    store.begin_run(taken.run_id, RunSpec(messages=[{"role": "user", "content": "resumed elsewhere"}]))
    print(taken.run_id, taken.taken_over, flush=True)
"""


def spec(text: str) -> RunSpec:
    return RunSpec(messages=[{"role": "user", "content": text}])


def test_a_run_owned_by_another_process_is_not_written_by_its_old_owner(store_db: str | Path) -> None:
    with Store() as store:
        run_id = store.create_run(spec("mine"))
        store.start_round(run_id, Round(index=1, text="kept"))
        raw_rows(store_db, "UPDATE runs SET owner_host = ?, owner_pid = 4242", (ELSEWHERE,))
        for write in (
            lambda: store.finish_run(
                run_id,
                spec=spec("mine"),
                status="cancelled",
                stop_reason="cancelled",
                error=None,
                finished_at=None,
                keep=[],
            ),
            lambda: store.append_live(run_id, 1, " more", ""),
            lambda: store.start_round(run_id, Round(index=2)),
            lambda: store.write_rounds(run_id, [Round(index=1, text="replaced")]),
            lambda: store.heartbeat(run_id),
        ):
            with pytest.raises(RunTakenOver):
                write()
        assert store.summary(run_id).status == "running"  # type: ignore[union-attr]
        assert [r.text for r in store.stored_rounds(run_id)] == ["kept"]


def test_a_worker_whose_claim_was_taken_over_does_not_end_the_new_owners_run(store_db: str | Path) -> None:
    if not can_unshare():
        pytest.skip("needs root and unshare --uts to give the second worker another host name")
    with Store() as store:
        batch_id = new_batch(store, n=1)
        claims = Claims(store)
        [claim] = claims.claim()
        run_id = store.create_run(spec("first"), batch_id=batch_id)
        Batches(store).link(batch_id, 0, run_id)
        recorder = Recorder(store, run_id=run_id)
        recorder.handle(RunStarted(spec("first")))
        recorder.handle(RoundStarted(index=1, strategy="plain", max_tokens=10))
        raw_rows(store_db, "UPDATE batch_items SET claim_beat = 0")  # this worker's beats were late
        command, env = elsewhere(store_db, NEW_WORKER, ELSEWHERE)
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
        assert done.stdout.split() == [run_id, "True"]
        result = RunResult(spec=spec("first"), rounds=[], run_id=run_id)
        recorder.handle(RunFinished(stop_reason="cancelled", result=result))  # the old worker's last write
        recorder.close()
        assert isinstance(recorder.last_error, RunTakenOver)
        assert store.summary(run_id).status == "running"  # type: ignore[union-attr]
        assert raw_rows(store_db, "SELECT owner_host FROM runs") == [(ELSEWHERE,)]
        assert [r.index for r in store.stored_rounds(run_id)] == [1]  # not dropped by its keep=[]
        assert claims.beat() == set()  # the old worker is told: it holds nothing now
        claims.release(claim.batch_id, claim.position)
        assert raw_rows(store_db, "SELECT claim_host FROM batch_items") == [(ELSEWHERE,)]


def test_an_item_whose_final_write_never_landed_is_taken_again(store_db: str | Path) -> None:
    with Store() as store:
        batch_id = new_batch(store, n=1)
        claims = Claims(store)
        claims.claim()
        run_id = store.create_run(spec("first"), batch_id=batch_id)
        Batches(store).link(batch_id, 0, run_id)
        claims.release(batch_id, 0, ended=True)  # the worker saw it end; its finish_run failed
        raw_rows(store_db, "UPDATE runs SET status = 'interrupted'")  # as mark_interrupted leaves it
        assert [c.run_id for c in claims.claim()] == [run_id]


def test_an_item_held_by_a_live_worker_here_with_a_late_beat_does_not_hide_the_free_ones(
    store_db: str | Path,
) -> None:
    with Store() as store:
        batch_id = new_batch(store, n=2)
        claims = Claims(store)
        claims.claim()  # item 0, held by this (live) process...
        raw_rows(
            store_db, "UPDATE batch_items SET claim_beat = 0 WHERE position = 0"
        )  # ...whose beats are late
        assert [(c.batch_id, c.position) for c in claims.claim()] == [(batch_id, 1)]
