"""Batches in the run store_db: items linked to runs, settings without secrets."""

from __future__ import annotations

from pathlib import Path

from core.services.store import Batches, Store
from core.types import RunSpec
from tests.pg import stored_bytes

ITEMS = [{"id": "a", "prompt": "first"}, {"id": "b", "prompt": "second"}]


def spec(prompt: str = "first") -> RunSpec:
    return RunSpec(messages=[{"role": "user", "content": prompt}], base_url="http://127.0.0.1:9/v1")


def test_a_new_batch_lists_its_items_in_order_without_runs(store_db: str | Path) -> None:
    with Store() as store:
        batch_id = Batches(store).create(ITEMS, settings={"model": "demo"})
        rows = Batches(store).items(batch_id)
    assert [(r.position, r.item_id, r.run_id, r.status) for r in rows] == [
        (0, "a", None, None),
        (1, "b", None, None),
    ]


def test_a_linked_item_shows_its_runs_status_and_totals(store_db: str | Path) -> None:
    with Store() as store:
        batches = Batches(store)
        batch_id = batches.create(ITEMS, settings={})
        run_id = store.create_run(spec(), batch_id=batch_id)
        batches.link(batch_id, 0, run_id)
        row = batches.items(batch_id)[0]
    assert (row.run_id, row.status) == (run_id, "running")


def test_an_item_whose_run_was_deleted_counts_as_not_started(store_db: str | Path) -> None:
    with Store() as store:
        batches = Batches(store)
        batch_id = batches.create(ITEMS, settings={})
        run_id = store.create_run(spec(), batch_id=batch_id)
        batches.link(batch_id, 0, run_id)
        store.delete(run_id)
        assert batches.items(batch_id)[0].status is None


def test_settings_are_stored_without_secrets(store_db: str | Path) -> None:
    secret = "sk-SENTINEL0b8e5d2f6c9a4e17a3"
    with Store() as store:
        batch_id = Batches(store).create(ITEMS, settings={"model": "m", "extra_body": {"api_key": secret}})
        settings = Batches(store).get(batch_id).settings
        on_disk = stored_bytes(store_db)
    assert (settings["model"], secret in str(settings), secret.encode() in on_disk) == ("m", False, False)


def test_deleting_a_batch_deletes_its_runs(store_db: str | Path) -> None:
    with Store() as store:
        batches = Batches(store)
        batch_id = batches.create(ITEMS, settings={})
        batches.link(batch_id, 0, store.create_run(spec(), batch_id=batch_id))
        other = store.create_run(spec("unrelated"))
        batches.delete(batch_id)
        assert ([r.id for r in store.list_runs()], batches.list()) == ([other], [])


def test_the_batch_list_counts_items_by_status(store_db: str | Path) -> None:
    with Store() as store:
        batches = Batches(store)
        batch_id = batches.create(ITEMS, settings={}, title="two")
        batches.link(batch_id, 1, store.create_run(spec(), batch_id=batch_id))
        (summary,) = batches.list()
    assert (summary.record.title, summary.total, summary.counts) == ("two", 2, {"queued": 1, "running": 1})


def test_the_latest_batch_from_a_file_is_found(store_db: str | Path) -> None:
    with Store() as store:
        batches = Batches(store)
        batches.create(ITEMS, settings={}, source="/data/p.jsonl")
        newer = batches.create(ITEMS, settings={}, source="/data/p.jsonl")
        batches.create(ITEMS, settings={}, source="/data/other.jsonl")
        found = batches.latest_for_source("/data/p.jsonl")
    assert found is not None and found.id == newer
