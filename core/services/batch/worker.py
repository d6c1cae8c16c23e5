"""A batch worker: items of the batches handed to workers, taken from the shared history and run here.

    worker = BatchWorker(store, resolve, concurrency=16, until_done=True)
    worker.run()          # blocks: until stop(), or (until_done) until no item is left
    worker.progress()     # a WorkerProgress snapshot, any thread

``python -m core batch-worker`` runs one on any machine that reaches the history (a PostgreSQL
database, or a SQLite file on this host). Each of ``concurrency`` threads takes one item at a time
(:class:`~core.services.store.claims.Claims`: ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL),
runs it on the engine with the worker's own settings and key (``resolve``: a batch's stored
settings → the ones this worker uses, and its key), records it like the in-process
:class:`~core.services.batch.runner.BatchRunner` (one run per item, written behind by one thread,
the live text saved every :data:`FLUSH_INTERVAL` s) and lets go of it when its run has ended.
Every request holds a slot of the worker's :class:`~core.services.batch.limiter.AdaptiveLimiter`
(a 429 halves this worker's concurrency). A beat thread renews the worker's claims every
second; an item whose worker died is taken by another and its run resumed from the stored
text, as the Runs page's resume does. A claim found taken over (this worker's beats did not reach
the database in time) is cancelled here: the run has one writer at a time. An item whose run raises
an unexpected exception here ends in error (its text so far kept; the batch counts it failed) and
the worker goes on with the next one: a poison item stops neither the workers nor the batch.
"""

from __future__ import annotations

import dataclasses
import logging
import ssl
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import httpx

from core.continuation import engine
from core.continuation.rounds import RetryPolicy
from core.services.batch.control import ItemThreads
from core.services.batch.inputs import BatchItem
from core.services.batch.item_runs import end_item_run_in_error, limited_transport, open_item_run
from core.services.batch.limiter import AdaptiveLimiter
from core.services.batch.pacing import DEFAULT_INTERVAL
from core.services.batch.specs import DEFAULT_CONCURRENCY, HARD_MAX_CONCURRENCY, item_spec, settings_from_dict
from core.services.batch.transport import LimitedTransport
from core.services.batch.writer import WriteBehindStore
from core.services.store import Batches, Store, StoreError
from core.services.store.claims import Claim, Claims
from core.types import CancelToken, ErrorInfo, RunFinished, RunSpec
from core.wire.client import Client, Timeouts
from core.wire.errors import ConfigError

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 1.0  # seconds of streamed text a killed worker may lose (regenerated on resume)
POLL_INTERVAL = 0.5  # seconds an idle thread waits before asking the history again
BEAT_INTERVAL = 1.0  # seconds between renewals of this worker's claims

# A batch's stored settings → the settings this worker runs its items with, and the key.
Resolve = Callable[[RunSpec], tuple[RunSpec, str | None]]


@dataclass(frozen=True)
class WorkerProgress:
    """What this worker has done since it started."""

    finished: int
    failed: int
    stopped: int  # cancelled here (a stop, a lost claim): taken again by a worker
    running: int
    resumed: int  # items taken over from a worker that died
    limit: int  # this worker's concurrency limit now (429s lower it)
    max_limit: int
    rate_limits: int
    elapsed_s: float
    error: str | None  # why the worker stopped on its own (a batch it cannot run), else None

    @property
    def ended(self) -> int:
        return self.finished + self.failed


class BatchWorker(ItemThreads[WorkerProgress]):
    """Takes and runs items of batches handed to workers (see the module docstring).

    ``batch_id``: only that batch. ``until_done``: end once no item of those batches is left
    (held by another worker counts as left), else wait for new ones. ``on_item``: called from
    worker threads with the item's id and its status ("finished", "failed", "stopped").
    """

    def __init__(
        self,
        store: Store,
        resolve: Resolve,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        batch_id: str | None = None,
        until_done: bool = False,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        read_interval: float = DEFAULT_INTERVAL,
        poll: float = POLL_INTERVAL,
        increase_after: int = 8,
        on_item: Callable[[str, str], None] | None = None,
    ) -> None:
        self.store = store
        self.claims = Claims(store)
        self.concurrency = max(1, min(int(concurrency), HARD_MAX_CONCURRENCY))
        self.limiter = AdaptiveLimiter(self.concurrency, increase_after=increase_after)
        self.batch_id = batch_id
        self.until_done = until_done
        self.read_interval = read_interval
        self.poll = poll
        self._resolve = resolve
        self._retry = retry
        self._timeouts = timeouts
        self._on_item = on_item
        self._ssl: ssl.SSLContext | None = None
        self._writer: WriteBehindStore | None = None
        self._lock = threading.Lock()
        self._resolving = threading.Lock()
        self._halt = threading.Event()
        self._done = threading.Event()
        self._settings: dict[str, tuple[RunSpec, str | None]] = {}
        self._cancels: dict[Hashable, CancelToken] = {}
        self._counts = {"finished": 0, "failed": 0, "stopped": 0, "resumed": 0}
        self._threads = 0
        self._error: str | None = None
        self._started: float | None = None
        self._ended: float | None = None

    # ------------------------------------------------------------ control

    def start(self) -> None:
        with self._lock:
            if self._started is not None:
                return
            self._started = time.monotonic()
            self._threads = self.concurrency
        self._writer = WriteBehindStore(self.store)
        threading.Thread(target=self._beat, name="continuum-worker-beat", daemon=True).start()
        for n in range(self.concurrency):
            threading.Thread(target=self._thread, name=f"continuum-worker-{n}", daemon=True).start()

    def stop(self, error: str | None = None) -> None:
        """No new item is taken; items in flight are cancelled (saved, and free for another worker)."""
        with self._lock:
            self._error = self._error or error
        self._cancel_in_flight()

    def progress(self) -> WorkerProgress:
        stats = self.limiter.stats()
        with self._lock:
            counts, running, error = dict(self._counts), len(self._cancels), self._error
            started, ended = self._started, self._ended
        elapsed = ((ended or time.monotonic()) - started) if started is not None else 0.0
        return WorkerProgress(
            finished=counts["finished"],
            failed=counts["failed"],
            stopped=counts["stopped"],
            running=running,
            resumed=counts["resumed"],
            limit=stats.limit,
            max_limit=stats.maximum,
            rate_limits=stats.rate_limits,
            elapsed_s=elapsed,
            error=error,
        )

    # ------------------------------------------------------------ threads

    def _beat(self) -> None:
        """Renew the claims every second; cancel an item whose claim another worker took over."""
        while not self._done.wait(BEAT_INTERVAL):
            with self._lock:  # before the beat: an item claimed after its read is not "lost"
                running = dict(self._cancels)
            try:
                held = self.claims.beat()
            except StoreError as exc:
                log.warning("batch worker: could not renew its claims: %s", exc)
                continue
            lost = [cancel for key, cancel in running.items() if key not in held]
            for cancel in lost:
                log.warning("batch worker: an item was taken over by another worker; cancelled here")
                cancel.cancel()

    def _take(self) -> Claim | None:
        try:
            taken = self.claims.claim(1, self.batch_id)
        except StoreError as exc:
            log.warning("batch worker: could not take an item: %s", exc)
            return None
        return taken[0] if taken else None

    def _idle(self) -> bool:
        """Wait for work; True when this thread should end (stopped, or nothing left)."""
        if self.until_done:
            try:
                if self.claims.pending(self.batch_id) == 0:
                    return True
            except StoreError as exc:
                log.warning("batch worker: could not read the history: %s", exc)
        return self._halt.wait(self.poll)

    def _thread(self) -> None:
        lanes: dict[str, tuple[Client, LimitedTransport]] = {}
        try:
            while not self._halt.is_set():
                claim = self._take()
                if claim is None:
                    if self._idle():
                        break
                    continue
                try:
                    self._run(claim, lanes)
                except ConfigError as exc:  # a batch this worker cannot run (no key…): say so and stop
                    self._release(claim)
                    self.stop(f"batch {claim.batch_id}: {exc}")
                except StoreError as exc:  # the history failed: the item is free again, try later
                    log.warning("batch worker: item %s: %s", claim.item_id, exc)
                    self._release(claim)
                    self._halt.wait(self.poll)
                except Exception as exc:
                    log.exception("batch worker: item %s failed", claim.item_id)
                    self._release(claim)
                    self.stop(f"internal error on item {claim.item_id!r}: {exc}")
        finally:
            for client, transport in lanes.values():
                client.close()
                transport.close()
            self._thread_ended()

    def _thread_ended(self) -> None:
        with self._lock:
            self._threads -= 1
            last = self._threads == 0
        if not last:
            return
        if self._writer is not None:
            self._writer.close()  # every result is in the history before the worker counts as done
        with self._lock:
            self._ended = time.monotonic()
        self._done.set()

    # ------------------------------------------------------------ one item

    def _settings_for(self, batch_id: str) -> tuple[RunSpec, str | None]:
        with self._resolving:  # once per batch (resolving may start a demo model)
            known = self._settings.get(batch_id)
            if known is None:
                known = self._resolve(settings_from_dict(Batches(self.store).get(batch_id).settings))
                self._settings[batch_id] = known
            return known

    def _lane(
        self, lanes: dict[str, tuple[Client, LimitedTransport]], base_url: str, key: str | None
    ) -> Client:
        """This thread's client for ``base_url`` (one per server it talks to)."""
        if base_url not in lanes:
            with self._lock:
                if self._ssl is None:
                    self._ssl = httpx.create_ssl_context()  # one for every thread (~50 ms of CPU each)
                context = self._ssl
            transport = limited_transport(base_url, self.limiter, context, self.read_interval)
            lanes[base_url] = (Client(base_url, key, timeouts=self._timeouts, transport=transport), transport)
        return lanes[base_url][0]

    def _run(self, claim: Claim, lanes: dict[str, tuple[Client, LimitedTransport]]) -> None:
        settings, key = self._settings_for(claim.batch_id)
        if claim.run_id and self.store.is_active(claim.run_id):
            self._release(claim)  # still recorded by a live process: leave it to that one
            self._halt.wait(self.poll)
            return
        cancel = CancelToken()
        slot = (claim.batch_id, claim.position)
        with self._lock:
            self._cancels[slot] = cancel
            self._counts["resumed"] += claim.taken_over
        run_ids = [claim.run_id]  # the item's run, once opened here
        status = "stopped"
        try:
            status = self._answer(claim, settings, key, lanes, cancel, run_ids)
        except (ConfigError, StoreError):
            raise  # the worker's (a batch it cannot run) or the history's: handled by the thread
        except Exception as exc:  # this item's alone: it ends in error, the worker goes on
            log.exception("batch worker: item %s failed with an internal error", claim.item_id)
            self._end_in_error(claim, settings, run_ids[-1], exc)
            status = "failed"
        finally:
            self._release(claim, ended=status != "stopped")
            with self._lock:
                self._cancels.pop(slot, None)
                self._counts[status] += 1
        if self._on_item is not None:
            try:
                self._on_item(claim.item_id, status)
            except Exception:
                log.exception("batch worker: the on_item callback failed")

    def _answer(
        self,
        claim: Claim,
        settings: RunSpec,
        key: str | None,
        lanes: dict[str, tuple[Client, LimitedTransport]],
        cancel: CancelToken,
        run_ids: list[str | None],
    ) -> str:
        """Run the item on the engine, recorded; its status ("finished", "failed", "stopped")."""
        spec = item_spec(settings, BatchItem.from_dict(claim.item))
        client = self._lane(lanes, settings.base_url, key)
        lanes[settings.base_url][1].cancel = cancel
        assert self._writer is not None
        recorder, resume, run_id = open_item_run(
            self._writer, claim.batch_id, claim.position, claim.run_id, spec, flush_interval=FLUSH_INTERVAL
        )
        run_ids.append(run_id)
        events = recorder.record(
            engine.run(spec, api_key=key, cancel=cancel, resume=resume, client=client, retry=self._retry)
        )
        status = "stopped"
        try:
            for event in events:
                if type(event) is RunFinished:
                    status = _status(event.stop_reason)
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()  # closes the engine run, its HTTP stream and the recorder
        return status

    def _end_in_error(self, claim: Claim, settings: RunSpec, run_id: str | None, exc: Exception) -> None:
        """Record the item's run as ended in error (its text so far kept), before the item is let go;
        if that write fails too, the release leaves the item free (the history says it has not ended)."""
        assert self._writer is not None
        error = ErrorInfo(kind=type(exc).__name__, message=f"Internal error in the batch worker: {exc}")
        prompt = {"role": "user", "content": str(claim.item.get("prompt") or "")}
        spec = dataclasses.replace(settings, messages=[prompt], title=claim.item_id)  # its own may not build
        end_item_run_in_error(self._writer, claim.batch_id, claim.position, run_id, spec, error)

    def _release(self, claim: Claim, *, ended: bool = False) -> None:
        """Let go of the item once its run's writes are in (queued behind them, in order)."""
        if self._writer is not None:
            self._writer.submit(self.claims.release, claim.batch_id, claim.position, ended=ended)


def _status(stop_reason: str | None) -> str:
    if stop_reason == "cancelled":
        return "stopped"
    return "failed" if stop_reason == "error" else "finished"
