"""Batches in the run history: a batch's shared settings and its items, each linked to its run.

    batches = Batches(store)
    batch_id = batches.create([item.to_dict() for item in items], settings=spec_dict, title="prompts.jsonl")
    batches.link(batch_id, position, run_id)     # before the item's run is written
    for row in batches.items(batch_id): ...      # each item with its run's status and totals

Every item's run is an ordinary run (``runs.batch_id`` = the batch id), so the
Runs page, export and resume work on it as on any other run. Settings are
cleaned of secrets like run specs (:mod:`core.services.store.sanitize`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.types import ErrorInfo

from .db import StoreError
from .query import changeable, seen_batches
from .rows import dumps, error_from_json, json_object
from .runs import Store
from .sanitize import clean_spec_dict


@dataclass(frozen=True)
class BatchRecord:
    id: str
    created_at: float
    updated_at: float
    title: str
    source: str  # the input file's name or path
    source_sha256: str  # of the input file's bytes ("" when unknown)
    concurrency: int
    settings: dict[str, Any]  # the shared RunSpec as a dict, without messages
    workers: bool = False  # handed to batch workers (core.services.store.claims)


@dataclass(frozen=True)
class BatchItemRow:
    """One item with its run's state (``status`` None: no run yet)."""

    position: int
    item_id: str
    item: dict[str, Any]
    run_id: str | None
    status: str | None
    stop_reason: str | None = None
    rounds: int = 0
    completion_tokens: int = 0
    prompt_tokens_billed: int = 0
    tokens_estimated: bool = False
    cost: float | None = None
    characters: int = 0
    error: ErrorInfo | None = None
    started_at: float | None = None
    finished_at: float | None = None


@dataclass(frozen=True)
class BatchSummary:
    record: BatchRecord
    total: int
    counts: dict[str, int]  # run status → items ("queued": no run yet)
    completion_tokens: int
    cost: float | None


_ITEM_SQL = """
SELECT i.position, i.item_id, i.item_json, i.run_id, r.id AS found, r.status, r.stop_reason, r.rounds,
       r.completion_tokens, r.prompt_tokens_billed, r.tokens_estimated, r.cost, r.characters,
       r.error_json, r.started_at, r.finished_at
FROM batch_items i LEFT JOIN runs r ON r.id = i.run_id
WHERE i.batch_id = ? ORDER BY i.position
"""


class Batches:
    """Batch rows of one :class:`Store` (thread-safe like the store)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(
        self,
        items: Sequence[dict[str, Any]],
        *,
        settings: dict[str, Any],
        title: str = "",
        source: str = "",
        source_sha256: str = "",
        concurrency: int = 8,
        batch_id: str | None = None,
    ) -> str:
        """Insert a batch and its items (each a dict with an ``id``); returns the batch id."""
        batch_id = batch_id or str(uuid.uuid4())
        now = time.time()
        with self.store._write() as conn:
            conn.execute(
                "INSERT INTO batches (id, created_at, updated_at, title, source, source_sha256, concurrency,"
                " settings_json, person, person_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    batch_id,
                    now,
                    now,
                    title,
                    source,
                    source_sha256,
                    int(concurrency),
                    dumps(clean_spec_dict(settings)),
                    self.store.viewer,  # the batch, and so its items' runs, belong to the viewer
                    self.store.viewer_name,
                ),
            )
            conn.executemany(
                "INSERT INTO batch_items (batch_id, position, item_id, item_json) VALUES (?, ?, ?, ?)",
                [(batch_id, pos, str(item["id"]), dumps(item)) for pos, item in enumerate(items)],
            )
        return batch_id

    def get(self, batch_id: str) -> BatchRecord:
        seen, params = seen_batches(self.store.viewer)
        rows = self.store._read(f"SELECT * FROM batches WHERE id = ? AND {seen}", (batch_id, *params))
        if not rows:
            raise StoreError(f"no batch {batch_id!r} in the history ({self.store.path})")
        return _record(rows[0])

    def items(self, batch_id: str) -> list[BatchItemRow]:
        seen, params = seen_batches(self.store.viewer)
        if not self.store._read(f"SELECT 1 FROM batches WHERE id = ? AND {seen}", (batch_id, *params)):
            return []
        return [_item(row) for row in self.store._read(_ITEM_SQL, (batch_id,))]

    def link(self, batch_id: str, position: int, run_id: str) -> None:
        """Point an item at its run (done before the run row is written)."""
        with self.store._write() as conn:
            cur = conn.execute(
                "UPDATE batch_items SET run_id = ? WHERE batch_id = ? AND position = ?",
                (run_id, batch_id, position),
            )
            if cur.rowcount == 0:
                raise StoreError(f"batch {batch_id!r} has no item at position {position}")
            conn.execute("UPDATE batches SET updated_at = ? WHERE id = ?", (time.time(), batch_id))

    def update(
        self, batch_id: str, *, settings: dict[str, Any] | None = None, concurrency: int | None = None
    ) -> None:
        """Change the shared settings or the concurrency (e.g. when resuming with new ones)."""
        with self.store._write() as conn:
            if settings is not None:
                conn.execute(
                    "UPDATE batches SET settings_json = ? WHERE id = ?",
                    (dumps(clean_spec_dict(settings)), batch_id),
                )
            if concurrency is not None:
                conn.execute("UPDATE batches SET concurrency = ? WHERE id = ?", (int(concurrency), batch_id))
            conn.execute("UPDATE batches SET updated_at = ? WHERE id = ?", (time.time(), batch_id))

    def latest_for_source(self, source: str) -> BatchRecord | None:
        seen, params = seen_batches(self.store.viewer)
        rows = self.store._read(
            f"SELECT * FROM batches WHERE source = ? AND {seen} ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (source, *params),
        )
        return _record(rows[0]) if rows else None

    def list(self, limit: int = 50) -> list[BatchSummary]:
        """Newest first, with item counts by run status."""
        seen, params = seen_batches(self.store.viewer)
        records = [
            _record(r)
            for r in self.store._read(
                f"SELECT * FROM batches WHERE {seen} ORDER BY created_at DESC, rowid DESC LIMIT ?",
                (*params, int(limit)),
            )
        ]
        summaries = []
        for record in records:
            rows = self.store._read(
                "SELECT coalesce(r.status, 'queued') AS status, count(*) AS n,"
                " coalesce(sum(r.completion_tokens), 0) AS tokens, sum(r.cost) AS cost"
                " FROM batch_items i LEFT JOIN runs r ON r.id = i.run_id WHERE i.batch_id = ?"
                " GROUP BY coalesce(r.status, 'queued')",
                (record.id,),
            )
            counts = {row["status"]: row["n"] for row in rows}
            costs = [row["cost"] for row in rows if row["cost"] is not None]
            summaries.append(
                BatchSummary(
                    record=record,
                    total=sum(counts.values()),
                    counts=counts,
                    completion_tokens=sum(row["tokens"] for row in rows),
                    cost=sum(costs) if costs else None,
                )
            )
        return summaries

    def delete(self, batch_id: str, *, runs: bool = True) -> bool:
        """Delete a batch (and, with ``runs``, its items' runs); False if there was no such batch."""
        mine, params = changeable(self.store.viewer)
        with self.store._write() as conn:
            if not conn.execute(
                f"SELECT 1 FROM batches WHERE id = ? AND {mine}", (batch_id, *params)
            ).fetchall():
                return False
            if runs:
                conn.execute("DELETE FROM runs WHERE batch_id = ?", (batch_id,))
            return conn.execute("DELETE FROM batches WHERE id = ?", (batch_id,)).rowcount > 0


def _record(row: Any) -> BatchRecord:
    return BatchRecord(
        id=row["id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        title=row["title"],
        source=row["source"],
        source_sha256=row["source_sha256"],
        concurrency=row["concurrency"],
        settings=json_object(row["settings_json"]),
        workers=bool(row["workers"]),
    )


def _item(row: Any) -> BatchItemRow:
    found = row["found"] is not None
    return BatchItemRow(
        position=row["position"],
        item_id=row["item_id"],
        item=json_object(row["item_json"]),
        run_id=row["run_id"],
        status=row["status"] if found else None,
        stop_reason=row["stop_reason"] if found else None,
        rounds=row["rounds"] or 0,
        completion_tokens=row["completion_tokens"] or 0,
        prompt_tokens_billed=row["prompt_tokens_billed"] or 0,
        tokens_estimated=bool(row["tokens_estimated"]),
        cost=row["cost"],
        characters=row["characters"] or 0,
        error=error_from_json(row["error_json"]),
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )
