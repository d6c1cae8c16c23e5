"""Batch results: JSONL of transcripts, CSV summary, ZIP of Markdown — one entry per item."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import pytest
from test_batch_support import make_items, new_batch, prompt, runner

from core.demo import demo_document
from core.services.batch import SUMMARY_COLUMNS, BatchItem, export_batch
from core.services.store import Store

ITEMS = [
    BatchItem(id="owls", prompt=prompt(1), meta={"topic": "birds"}),
    BatchItem(id="bees", prompt=prompt(2), meta={"topic": "insects"}),
]


@pytest.fixture
def finished(tmp_db: Path, demo_server: str):
    with Store() as store:
        batch_id = new_batch(store, demo_server, ITEMS)
        runner(store, batch_id).run()
        yield store, batch_id


def lines(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode().splitlines()]


def test_jsonl_has_one_transcript_per_item_with_its_id_and_meta(finished) -> None:
    store, batch_id = finished
    rows = lines(export_batch(store, batch_id, "jsonl"))
    assert [
        (r["item_id"], r["meta"], r["schema"], r["text"] == demo_document(prompt(i + 1)))
        for i, r in enumerate(rows)
    ] == [
        ("owls", {"topic": "birds"}, "continuum.transcript/1", True),
        ("bees", {"topic": "insects"}, "continuum.transcript/1", True),
    ]


def test_jsonl_lists_items_that_never_ran(tmp_db: Path, demo_server: str) -> None:
    with Store() as store:
        batch_id = new_batch(store, demo_server, make_items(3))
        rows = lines(export_batch(store, batch_id, "jsonl"))
    assert [(r["item_id"], r["status"], r["run_id"], r["text"]) for r in rows] == [
        (f"item-{i}", "queued", None, "") for i in range(3)
    ]


def test_csv_summary_has_a_row_per_item_and_the_meta_columns(finished) -> None:
    store, batch_id = finished
    rows = list(csv.DictReader(io.StringIO(export_batch(store, batch_id, "csv").decode())))
    header = list(rows[0].keys())
    assert header == [*SUMMARY_COLUMNS, "topic"]
    assert [(r["id"], r["status"], r["topic"]) for r in rows] == [
        ("owls", "finished", "birds"),
        ("bees", "finished", "insects"),
    ]


def test_csv_summary_tokens_match_the_runs(finished) -> None:
    store, batch_id = finished
    rows = list(csv.DictReader(io.StringIO(export_batch(store, batch_id, "csv").decode())))
    runs = {r.id: r for r in store.list_runs(batch_id=batch_id)}
    assert [int(r["output_tokens"]) for r in rows] == [runs[r["run_id"]].completion_tokens for r in rows]


def test_zip_holds_each_answer_as_markdown_and_the_summary(finished) -> None:
    store, batch_id = finished
    archive = zipfile.ZipFile(io.BytesIO(export_batch(store, batch_id, "zip")))
    assert sorted(archive.namelist()) == ["0001-owls.md", "0002-bees.md", "summary.csv"]
    assert archive.read("0002-bees.md").decode() == demo_document(prompt(2))


def test_an_unknown_format_is_refused(finished) -> None:
    store, batch_id = finished
    with pytest.raises(ValueError, match="jsonl, csv or zip"):
        export_batch(store, batch_id, "pdf")
