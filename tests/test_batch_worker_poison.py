"""A poison item cannot stop the batch workers, on SQLite and PostgreSQL: an item whose run raises an
unexpected exception in the worker (here a row with a setting this version does not know, as a newer
version may have written it) ends in error, the batch counts it failed, and every other item is
answered; the workers run to the end (``--until-done``) and exit 0.

Real processes, real HTTP to a demo model on loopback."""

from __future__ import annotations

import os
from pathlib import Path

from core.services.batch import stored_progress
from core.services.store import Batches, Store
from core.services.store.claims import Claims
from tests.clirun import start
from tests.pg import raw_rows

GOOD = 6
POISON = 2  # its position


def test_an_item_that_always_crashes_ends_failed_and_the_workers_go_on(
    store_db: str | Path, demo_server: str
) -> None:
    items: list[dict[str, object]] = [
        {"id": f"p{i}", "prompt": f"Write 40 tokens about thing {i}"} for i in range(GOOD)
    ]
    items.insert(POISON, {"id": "poison", "prompt": "never answered", "overrides": {"no_such_setting": 1}})
    with Store() as store:
        batch_id = Batches(store).create(items, settings={"provider": "demo", "max_tokens": 40})
        Claims(store).hand_over(batch_id)
    env = {**os.environ, "CONTINUUM_DB": str(store_db)}
    target = ("--provider", "demo", "--base-url", demo_server)
    workers = [
        start("batch-worker", *target, "--until-done", "--concurrency", "2", "--quiet", env=env)
        for _ in range(2)
    ]
    try:
        ended = [w.communicate(timeout=60) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.communicate(timeout=30)
    assert [w.returncode for w in workers] == [0, 0], [err for _, err in ended]

    with Store() as store:
        progress = stored_progress(store, batch_id)
    assert (progress.finished, progress.failed, progress.total) == (GOOD, 1, GOOD + 1)
    [poison] = [i for i in progress.items if i.id == "poison"]
    assert poison.status == "failed" and poison.error and "no_such_setting" in poison.error
    assert all(i.status == "finished" for i in progress.items if i.id != "poison")
    [(status, error)] = raw_rows(
        store_db,
        "SELECT r.status, r.error_json FROM runs r JOIN batch_items i ON i.run_id = r.id WHERE i.item_id = ?",
        ("poison",),
    )
    assert status == "error" and "TypeError" in error
    assert raw_rows(
        store_db, "SELECT count(*) FROM batch_items WHERE claim_host IS NOT NULL OR ended = 0"
    ) == [(0,)]
    assert raw_rows(store_db, "SELECT count(*) FROM runs") == [(GOOD + 1,)]
