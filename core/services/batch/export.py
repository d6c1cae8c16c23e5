"""Batch results: JSONL of transcripts, a CSV summary, a ZIP of Markdown files.

Every item of the batch gets one line / row / file, in input order:

- JSONL: one JSON object per line — the item's transcript
  (:meth:`RunResult.to_dict`, schema ``continuum.transcript/1``, no API key)
  with ``batch_id``, ``item_id``, ``position``, ``status`` and ``meta`` (the
  input row's extra columns) added; an item that never ran has only those
  keys, ``run_id`` null and ``text`` "".
- CSV: :data:`SUMMARY_COLUMNS` then the input's extra columns; from the store's
  totals, so no answer text is read.
- ZIP: ``0001-<id>.md`` … (the assembled answer of each item that has text)
  and ``summary.csv``.

Runs are loaded one at a time, so a large batch is never all in memory.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from core.services.batch.inputs import BatchItem
from core.services.batch.progress import item_status
from core.services.export import slugify
from core.services.store import Batches, BatchItemRow, Store
from core.types import RunResult

SUMMARY_COLUMNS: tuple[str, ...] = (
    "position",
    "id",
    "status",
    "stop_reason",
    "rounds",
    "output_tokens",
    "input_tokens_billed",
    "tokens_estimated",
    "cost_usd",
    "characters",
    "duration_s",
    "error",
    "run_id",
    "prompt",
)


@dataclass(frozen=True)
class ItemResult:
    """One item with its run (None when it never started)."""

    row: BatchItemRow
    item: BatchItem
    status: str
    result: RunResult | None


def batch_results(store: Store, batch_id: str) -> Iterator[ItemResult]:
    """Every item of the batch with its run, loaded lazily, in input order."""
    for row in Batches(store).items(batch_id):
        result = store.load(row.run_id) if row.run_id and row.status is not None else None
        yield ItemResult(row, BatchItem.from_dict(row.item), item_status(row.status), result)


def jsonl_line(batch_id: str, entry: ItemResult) -> dict[str, Any]:
    head: dict[str, Any] = {
        "batch_id": batch_id,
        "item_id": entry.item.id,
        "position": entry.row.position,
        "status": entry.status,
        "meta": entry.item.meta,
    }
    if entry.result is None:
        return {**head, "run_id": None, "prompt": entry.item.prompt, "text": ""}
    return {**head, **entry.result.to_dict()}


def write_jsonl(batch_id: str, results: Iterable[ItemResult], out: IO[str]) -> int:
    """One line per item; returns the number of lines."""
    count = 0
    for entry in results:
        out.write(json.dumps(jsonl_line(batch_id, entry), ensure_ascii=False) + "\n")
        count += 1
    return count


def _meta_columns(rows: list[BatchItemRow]) -> list[str]:
    names: dict[str, None] = {}
    for row in rows:
        for key in row.item.get("meta") or {}:
            names.setdefault(str(key), None)
    return [n for n in names if n not in SUMMARY_COLUMNS]


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def summary_rows(rows: list[BatchItemRow]) -> list[dict[str, Any]]:
    """One dict per item with the keys of :data:`SUMMARY_COLUMNS` (and its meta)."""
    out = []
    for row in rows:
        duration = row.finished_at - row.started_at if row.finished_at and row.started_at else None
        values: dict[str, Any] = {
            "position": row.position,
            "id": row.item_id,
            "status": item_status(row.status),
            "stop_reason": row.stop_reason,
            "rounds": row.rounds,
            "output_tokens": row.completion_tokens,
            "input_tokens_billed": row.prompt_tokens_billed,
            "tokens_estimated": row.tokens_estimated,
            "cost_usd": row.cost,
            "characters": row.characters,
            "duration_s": None if duration is None else round(duration, 3),
            "error": row.error.message if row.error else None,
            "run_id": row.run_id if row.status is not None else None,
            "prompt": row.item.get("prompt", ""),
        }
        for key, value in (row.item.get("meta") or {}).items():
            values.setdefault(str(key), value)
        out.append(values)
    return out


def write_summary_csv(rows: list[BatchItemRow], out: IO[str]) -> int:
    """The CSV summary; returns the number of items."""
    columns = [*SUMMARY_COLUMNS, *_meta_columns(rows)]
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for values in summary_rows(rows):
        writer.writerow({k: _cell(v) for k, v in values.items()})
    return len(rows)


def markdown_name(position: int, item_id: str) -> str:
    return f"{position + 1:04d}-{slugify(item_id) or 'item'}.md"


def write_markdown_zip(batch_id: str, store: Store, out: IO[bytes]) -> int:
    """A ZIP of one Markdown file per item with text, plus summary.csv; returns the files written."""
    rows = Batches(store).items(batch_id)
    written = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for entry in batch_results(store, batch_id):
            if entry.result is None or not entry.result.text:
                continue
            archive.writestr(markdown_name(entry.row.position, entry.item.id), entry.result.text)
            written += 1
        summary = io.StringIO()
        write_summary_csv(rows, summary)
        archive.writestr("summary.csv", summary.getvalue())
    return written


def export_batch(store: Store, batch_id: str, fmt: str) -> bytes:
    """The whole download for ``fmt``: "jsonl", "csv" or "zip"."""
    if fmt == "jsonl":
        text = io.StringIO()
        write_jsonl(batch_id, batch_results(store, batch_id), text)
        return text.getvalue().encode("utf-8")
    if fmt == "csv":
        text = io.StringIO()
        write_summary_csv(Batches(store).items(batch_id), text)
        return text.getvalue().encode("utf-8")
    if fmt == "zip":
        data = io.BytesIO()
        write_markdown_zip(batch_id, store, data)
        return data.getvalue()
    raise ValueError(f"unknown batch export format {fmt!r}; choose jsonl, csv or zip")


EXPORT_FORMATS: dict[str, str] = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv",
    "zip": "application/zip",
}
