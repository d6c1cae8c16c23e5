"""Batch mode: many long answers at once, on the same engine and store.

- :mod:`core.services.batch.inputs` — CSV / JSONL rows → :class:`BatchItem`; bad rows →
  :class:`RowError` naming line and column, without stopping the good rows.
- :mod:`core.services.batch.limiter` — :class:`AdaptiveLimiter`, the batch-wide AIMD
  concurrency limit (a 429 anywhere halves it; successes grow it back).
- :mod:`core.services.batch.transport` — :class:`LimitedTransport`, the hook: every
  HTTP request of the batch holds a limiter slot; a 429 lowers the limit.
- :mod:`core.services.batch.pacing` — batch connections read a trickling stream in
  gulps (every 0.1 s), not token by token: the CPU cost of 200 streams.
- :mod:`core.services.batch.writer` — the recorders' database writes on one thread, so
  no item waits on the database between rounds.
- :mod:`core.services.batch.runner` — :class:`BatchRunner`: worker threads, one run per
  item linked to the batch in the store, stop and resume without redoing
  finished items; :class:`BatchProgress` snapshots (:mod:`core.services.batch.progress`).
- :mod:`core.services.batch.worker` — :class:`BatchWorker` (``python -m core batch-worker``):
  items of the batches handed to workers, taken from the shared history
  (:mod:`core.services.store.claims`) and run here with this machine's key and limits; an item
  whose worker died is taken again and its run resumed. :func:`stored_progress` shows every
  worker's items and which workers hold them.
- :mod:`core.services.batch.item_runs`, :mod:`core.services.batch.control` — what the runner
  and the worker share: an item's run opened (resumed or new), a thread's transport; run, wait, stop.
- :mod:`core.services.batch.export` — JSONL of transcripts, CSV summary, ZIP of Markdown.
- :mod:`core.services.batch.manager` — :func:`create_batch`, :class:`BatchManager`.

Typical use::

    parsed = read_items("prompts.jsonl")          # parsed.errors: the bad rows
    batch_id = create_batch(store, parsed.items, settings, source="prompts.jsonl")
    progress = BatchRunner(store, batch_id, api_key=key, concurrency=32).run()
"""

from __future__ import annotations

from core.services.batch.export import (
    EXPORT_FORMATS,
    SUMMARY_COLUMNS,
    ItemResult,
    batch_results,
    export_batch,
)
from core.services.batch.inputs import BatchItem, InputError, ParsedInput, RowError, parse_items, read_items
from core.services.batch.limiter import AdaptiveLimiter, LimiterStats, Slot
from core.services.batch.manager import BatchManager, create_batch, source_digest
from core.services.batch.progress import ITEM_STATUSES, BatchProgress, ItemProgress, stored_progress
from core.services.batch.runner import BatchRunner
from core.services.batch.specs import (
    DEFAULT_CONCURRENCY,
    check_items,
    concurrency_cap,
    effective_concurrency,
    item_spec,
)
from core.services.batch.transport import LimitedTransport
from core.services.batch.worker import BatchWorker, WorkerProgress

__all__ = [
    "DEFAULT_CONCURRENCY",
    "EXPORT_FORMATS",
    "ITEM_STATUSES",
    "SUMMARY_COLUMNS",
    "AdaptiveLimiter",
    "BatchItem",
    "BatchManager",
    "BatchProgress",
    "BatchRunner",
    "BatchWorker",
    "InputError",
    "ItemProgress",
    "ItemResult",
    "LimitedTransport",
    "LimiterStats",
    "ParsedInput",
    "RowError",
    "Slot",
    "WorkerProgress",
    "batch_results",
    "check_items",
    "concurrency_cap",
    "create_batch",
    "effective_concurrency",
    "export_batch",
    "item_spec",
    "parse_items",
    "read_items",
    "source_digest",
    "stored_progress",
]
