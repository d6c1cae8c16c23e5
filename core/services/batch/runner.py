"""The batch runner: many runs at once on worker threads, one shared adaptive limit.

    runner = BatchRunner(store, batch_id, api_key=key, concurrency=32)
    runner.start()                 # returns at once; or runner.run() to block until done
    runner.progress()              # a BatchProgress snapshot, any thread, any time
    runner.stop()                  # cancels the items in flight; they stay resumable

Each item is an ordinary run of :func:`core.continuation.engine.run`, recorded by a
:class:`~core.services.store.Recorder` under the batch's id. Every HTTP request of every
item holds a slot of the batch's shared
:class:`~core.services.batch.limiter.AdaptiveLimiter` while it is in flight (the hook is
the worker client's transport, :mod:`core.services.batch.transport`), so a 429 seen by
any item lowers the concurrency of the whole batch. The recorders' database
writes go through one writer thread (:mod:`core.services.batch.writer`), so no item
waits on the database between rounds.

Starting a runner on an existing batch resumes it: finished items are left
alone, interrupted, stopped (and, with ``retry_failed``, failed) items resume
their own run from the store (``engine.run(..., resume=store.load(run_id))``),
and items never started get a new run.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import httpx

from core.continuation import engine
from core.continuation.rounds import RetryPolicy
from core.services.batch.control import ItemThreads
from core.services.batch.inputs import BatchItem
from core.services.batch.item_runs import limited_transport, open_item_run
from core.services.batch.limiter import AdaptiveLimiter
from core.services.batch.pacing import DEFAULT_INTERVAL
from core.services.batch.progress import BatchProgress, ItemProgress, build_progress, item_status
from core.services.batch.specs import effective_concurrency, item_spec, settings_dict, settings_from_dict
from core.services.batch.writer import WriteBehindStore
from core.services.store import Batches, BatchItemRow, Recorder, Store, StoreError
from core.services.store.claims import Claims
from core.types import (
    CancelToken,
    Delta,
    Retrying,
    RoundFinished,
    RunFinished,
    RunResult,
    RunSpec,
)
from core.wire.client import Client, Timeouts

log = logging.getLogger(__name__)

# Seconds between saves of a streaming item's text (the Recorder saves on the next
# delta after this long). Longer than a single run's 1 s: 200 items saving every
# second would queue on the database lock; a crash loses at most this much of each
# item's text, which the resume regenerates.
FLUSH_INTERVAL = 5.0
# Seconds between the starts of two workers: 200 workers start over 2 s instead of
# opening 200 connections in one instant, and their rounds do not end in lockstep.
STAGGER = 0.002


class _Item:
    """Mutable state of one item (written by its worker, read under the runner's lock)."""

    __slots__ = (
        "cost",
        "duration_s",
        "error",
        "id",
        "live",
        "position",
        "retries",
        "rounds",
        "row",
        "run_id",
        "started",
        "status",
        "stop_reason",
        "tokens",
    )

    def __init__(self, row: BatchItemRow) -> None:
        self.row = row
        self.position = row.position
        self.id = row.item_id
        self.status: str = item_status(row.status)
        self.run_id = row.run_id if row.status is not None else None
        self.rounds = row.rounds
        self.tokens = row.completion_tokens
        self.live = 0
        self.cost = row.cost
        self.stop_reason = row.stop_reason
        self.error = row.error.message if row.error else None
        self.retries = 0
        self.started = 0.0
        self.duration_s = row.finished_at - row.started_at if row.finished_at and row.started_at else None

    def snapshot(self) -> ItemProgress:
        return ItemProgress(
            position=self.position,
            id=self.id,
            status=self.status,
            run_id=self.run_id,
            rounds=self.rounds,
            tokens=self.tokens + self.live,
            cost=self.cost,
            stop_reason=self.stop_reason,
            error=self.error,
            retries=self.retries,
            duration_s=self.duration_s,
        )


class BatchRunner(ItemThreads[BatchProgress]):
    """Runs (or resumes) one stored batch. See the module docstring.

    ``settings``: shared settings to use instead of the stored ones (a resume
    with a fresh demo server, a new key variable); they are saved with the
    batch. ``concurrency``: the ceiling (default: the batch's), capped at the
    provider's limit. ``read_interval``: how long a trickling stream waits
    between reads (:mod:`core.services.batch.pacing`; 0 reads every token at once).
    ``stagger``: seconds between worker starts (slow start). ``on_item``:
    called from worker threads when an item ends, with its :class:`ItemProgress`.
    """

    def __init__(
        self,
        store: Store,
        batch_id: str,
        *,
        api_key: str | None = None,
        settings: RunSpec | None = None,
        concurrency: int | None = None,
        retry_failed: bool = True,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        increase_after: int = 8,
        read_interval: float = DEFAULT_INTERVAL,
        stagger: float = STAGGER,
        models: Mapping[str, Any] | None = None,
        on_item: Callable[[ItemProgress], None] | None = None,
    ) -> None:
        self.store = store
        self.batch_id = batch_id
        self.batches = Batches(store)
        record = self.batches.get(batch_id)
        Claims(store).check_not_held(batch_id)  # a batch handed to workers is theirs
        self.settings = settings if settings is not None else settings_from_dict(record.settings)
        requested = concurrency if concurrency is not None else record.concurrency
        self.concurrency = effective_concurrency(requested, self.settings.provider)
        if settings is not None or self.concurrency != record.concurrency:
            self.batches.update(batch_id, settings=settings_dict(self.settings), concurrency=self.concurrency)
        self.limiter = AdaptiveLimiter(self.concurrency, increase_after=increase_after)
        self.read_interval = read_interval
        self.stagger = stagger
        self._ssl: ssl.SSLContext | None = None
        self._writer: WriteBehindStore | None = None
        self._api_key = api_key
        self._retry = retry
        self._timeouts = timeouts
        self._models = models
        self._on_item = on_item
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._halt = threading.Event()  # set by stop()
        self._stopping = False
        self._started_at: float | None = None
        self._ended_at: float | None = None
        self._ended_now = 0  # items ended in this session (for the time left)
        self._workers = 0  # worker threads still running
        self._cancels: dict[Hashable, CancelToken] = {}
        store.mark_interrupted()
        rows = self.batches.items(batch_id)
        busy = [r.item_id for r in rows if r.status == "running" and r.run_id and store.is_active(r.run_id)]
        if busy:
            raise StoreError(
                f"Batch {batch_id} is still running elsewhere ({len(busy)} items in progress, e.g. {busy[0]!r}).",
                "Stop it there (or wait for that process to end) before resuming it here.",
            )
        self._items = [_Item(row) for row in rows]
        todo = ("queued", "stopped", "failed") if retry_failed else ("queued", "stopped")
        self._queue = deque(item.position for item in self._items if item.status in todo)
        for position in self._queue:
            self._items[position].status = "queued"

    # ------------------------------------------------------------ control

    def start(self) -> None:
        """Start the workers (returns at once). Raises ConfigError for an unusable base URL."""
        Client(self.settings.base_url, self._api_key).close()  # a bad URL or key fails here, once
        with self._lock:
            if self._started_at is not None:
                return
            self._started_at = time.monotonic()
        workers = min(self.concurrency, len(self._queue))
        if workers == 0:
            self._finish()
            return
        with self._lock:
            self._workers = workers
        self._writer = WriteBehindStore(self.store)
        for n in range(workers):
            threading.Thread(
                target=self._worker, args=(n * self.stagger,), name=f"continuum-batch-{n}", daemon=True
            ).start()

    def stop(self) -> None:
        """Stop: no new item starts, items in flight are cancelled (their runs stay resumable)."""
        with self._lock:
            self._stopping = True
        self._cancel_in_flight()

    @property
    def store_errors(self) -> int:
        """Writes to the run history that failed (logged; the answers in memory are unaffected)."""
        return self._writer.errors if self._writer is not None else 0

    # ------------------------------------------------------------ progress

    def progress(self) -> BatchProgress:
        with self._lock:
            items = tuple(item.snapshot() for item in self._items)
            started, ended_at, ended_now = self._started_at, self._ended_at, self._ended_now
            stopping = self._stopping
        done = self._done.is_set()
        elapsed = ((ended_at or time.monotonic()) - started) if started is not None else 0.0
        if done:
            state = "stopped" if stopping else "done"
        elif started is None:
            state = "ready"
        else:
            state = "stopping" if stopping else "running"
        return build_progress(
            self.batch_id,
            state,
            items,
            elapsed_s=elapsed,
            ended_now=ended_now,
            limiter=self.limiter.stats(),
        )

    # ------------------------------------------------------------ workers

    def _next(self) -> tuple[_Item, CancelToken] | None:
        with self._lock:
            if self._stopping or not self._queue:
                return None
            item = self._items[self._queue.popleft()]
            cancel = CancelToken()
            self._cancels[item.position] = cancel
            item.status = "running"
            item.started = time.monotonic()
            item.error = None
            return item, cancel

    def _ssl_context(self) -> ssl.SSLContext:
        """One SSL context for every worker (building one costs ~50 ms of CPU)."""
        with self._lock:
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context()
            return self._ssl

    def _worker(self, delay: float) -> None:
        client: Client | None = None
        transport = limited_transport(
            self.settings.base_url, self.limiter, self._ssl_context(), self.read_interval
        )
        try:
            self._halt.wait(delay)  # slow start: see ``stagger``
            while (taken := self._next()) is not None:
                item, cancel = taken
                if client is None:
                    client = Client(
                        self.settings.base_url, self._api_key, timeouts=self._timeouts, transport=transport
                    )
                transport.cancel = cancel
                try:
                    self._run_item(item, cancel, client)
                except Exception as exc:
                    log.exception("batch %s: item %s failed", self.batch_id, item.id)
                    with self._lock:
                        item.status, item.error = "failed", f"Internal error: {exc}"
                finally:
                    with self._lock:
                        self._cancels.pop(item.position, None)
                        self._ended_now += 1
                        item.duration_s = time.monotonic() - item.started
                    if self._on_item is not None:
                        try:
                            self._on_item(item.snapshot())
                        except Exception:
                            log.exception("batch %s: the on_item callback failed", self.batch_id)
        finally:
            if client is not None:
                client.close()
            transport.close()
            self._worker_ended()

    def _worker_ended(self) -> None:
        with self._lock:
            self._workers -= 1
            last = self._workers == 0
        if last:
            self._finish()

    def _finish(self) -> None:
        if self._writer is not None:
            self._writer.close()  # everything is in the store before the batch counts as ended
        with self._lock:
            self._ended_at = time.monotonic()
        self._done.set()

    def _open(self, item: _Item, spec: RunSpec) -> tuple[Recorder, RunResult | None]:
        """The item's recorder, and its stored run to resume (None: a new run, linked first)."""
        assert self._writer is not None
        recorder, resume, run_id = open_item_run(
            self._writer, self.batch_id, item.position, item.run_id, spec, flush_interval=FLUSH_INTERVAL
        )
        if resume is None:
            with self._lock:
                item.run_id, item.rounds, item.tokens, item.cost = run_id, 0, 0, None
        return recorder, resume

    def _run_item(self, item: _Item, cancel: CancelToken, client: Client) -> None:
        spec = item_spec(self.settings, BatchItem.from_dict(item.row.item), self._models)
        recorder, resume = self._open(item, spec)
        events = recorder.record(
            engine.run(
                spec, api_key=self._api_key, cancel=cancel, resume=resume, client=client, retry=self._retry
            )
        )
        rounds, tokens = (len(resume.rounds), resume.completion_tokens) if resume else (0, 0)
        try:
            for event in events:
                kind = type(event)
                if kind is Delta:  # the hot path: one per token
                    item.live += 1
                elif kind is RoundFinished:
                    assert isinstance(event, RoundFinished)
                    rounds += 1
                    tokens += event.round.completion_tokens
                    with self._lock:
                        item.rounds, item.tokens, item.live = rounds, tokens, 0
                        if event.round.cost is not None:
                            item.cost = (item.cost or 0.0) + event.round.cost
                elif kind is Retrying:
                    item.retries += 1
                elif kind is RunFinished:
                    assert isinstance(event, RunFinished)
                    self._ended(item, event)
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()  # closes the engine run and its HTTP stream, and the recorder

    def _ended(self, item: _Item, event: RunFinished) -> None:
        result = event.result
        with self._lock:
            item.stop_reason = event.stop_reason
            item.rounds = len(result.rounds)
            item.tokens = result.completion_tokens
            item.live = 0
            item.cost = result.cost
            if event.stop_reason == "cancelled":
                item.status = "stopped"
            elif event.stop_reason == "error":
                item.status = "failed"
                item.error = event.error.message if event.error else "the run ended with an error"
            else:
                item.status = "finished"
