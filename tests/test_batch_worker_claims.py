"""Claims of batch items (core.services.store.claims), on SQLite and PostgreSQL: which items a worker
may take, and when an item held by a worker that died is taken again."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.cli.batch_progress import progress_line
from core.services.batch import stored_progress
from core.services.store import Batches, Store, StoreError
from core.services.store.claims import CLAIM_STALE_AFTER_S, Claims
from core.types import RunSpec
from tests.pg import raw_rows


def new_batch(store: Store, n: int = 3, *, workers: bool = True) -> str:
    batch_id = Batches(store).create(
        [{"id": f"p{i}", "prompt": f"prompt {i}"} for i in range(n)], settings={"provider": "demo"}
    )
    if workers:
        Claims(store).hand_over(batch_id)
    return batch_id


def dead_pid() -> int:
    """The pid of a process of this host that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def stamp(db: str | Path, position: int, host: str, pid: int, beat: float) -> None:
    raw_rows(
        db,
        "UPDATE batch_items SET claim_host = ?, claim_pid = ?, claim_beat = ? WHERE position = ?",
        (host, pid, beat, position),
    )


def test_only_batches_handed_to_workers_are_taken(store_db: str | Path) -> None:
    with Store() as store:
        new_batch(store, workers=False)
        handed = new_batch(store)
        taken = Claims(store).claim(limit=10)
    assert {(c.batch_id, c.position) for c in taken} == {(handed, 0), (handed, 1), (handed, 2)}


def test_an_item_is_taken_once_until_released(store_db: str | Path) -> None:
    with Store() as store:
        new_batch(store, n=2)
        claims = Claims(store)
        first, second = claims.claim(), claims.claim()
        assert (claims.claim(), claims.pending()) == ([], 2)
        claims.release(first[0].batch_id, first[0].position)
        again = claims.claim()
    assert [c.position for c in first + second + again] == [0, 1, 0]


def test_a_finished_item_is_not_taken_again(store_db: str | Path) -> None:
    with Store() as store:
        batch_id = new_batch(store, n=1)
        run_id = store.create_run(RunSpec(messages=[]), batch_id=batch_id)
        Batches(store).link(batch_id, 0, run_id)
        store.finish_run(
            run_id,
            spec=RunSpec(messages=[]),
            status="finished",
            stop_reason="finished",
            error=None,
            finished_at=time.time(),
        )
        assert (Claims(store).claim(), Claims(store).pending()) == ([], 0)


def test_an_item_of_a_dead_worker_here_is_taken_at_once_and_its_run_interrupted(store_db: str | Path) -> None:
    pid = dead_pid()
    with Store() as store:
        batch_id = new_batch(store, n=1)
        run_id = store.create_run(RunSpec(messages=[]), batch_id=batch_id)
        Batches(store).link(batch_id, 0, run_id)
        raw_rows(store_db, "UPDATE runs SET owner_pid = ?, owner_started = NULL", (pid,))
        stamp(store_db, 0, socket.gethostname(), pid, time.time())  # beating a moment ago
        taken = Claims(store).claim()
        assert [(c.run_id, c.taken_over) for c in taken] == [(run_id, True)]
        assert store.summary(run_id).status == "interrupted"  # type: ignore[union-attr]


@pytest.mark.parametrize(("age", "taken"), [(1.0, False), (CLAIM_STALE_AFTER_S + 1, True)])
def test_another_hosts_item_is_taken_once_its_beat_is_stale(
    store_db: str | Path, age: float, taken: bool
) -> None:
    with Store() as store:
        new_batch(store, n=1)
        stamp(store_db, 0, "another-host.example", 4242, time.time() - age)
        assert bool(Claims(store).claim()) is taken


def test_a_batch_handed_to_workers_is_not_run_here(store_db: str | Path) -> None:
    with Store() as store:
        batch_id = new_batch(store, n=1)
        with pytest.raises(StoreError, match="handed to batch workers"):
            Claims(store).check_not_held(batch_id)
        Claims(store).claim()
        Claims(store).hand_over(batch_id, workers=False)
        with pytest.raises(StoreError, match="still hold 1 of its items"):
            Claims(store).check_not_held(batch_id)


def test_the_progress_names_the_workers_holding_items(store_db: str | Path) -> None:
    with Store() as store:
        batch_id = new_batch(store, n=3)
        waiting = progress_line(stored_progress(store, batch_id))
        Claims(store).claim(limit=2)
        held = progress_line(stored_progress(store, batch_id))
    assert "waiting for a batch worker" in waiting
    assert f"1 worker: {socket.gethostname()}:{os.getpid()} (2)" in held
