"""Write-behind for a batch's recorders: one thread does the database writes, in order.

Every item's :class:`~core.services.store.Recorder` writes at each round boundary (the
finished round, the next live round) and while it streams. With a hundred items
or more, writers queue on the store's lock, and under a busy interpreter each
transaction holds it for milliseconds — so rounds waited seconds to start. A
:class:`WriteBehindStore` takes the Recorder's writes onto a queue served by one
thread, so an item never waits for the database; the reads a Recorder makes
(and the writes that return something) still run in order behind the queued
writes. A run created through the writer is new: its creation, its
``begin_run`` and its (empty) stored rounds need no wait either, so an item
starts without touching the database. :meth:`WriteBehindStore.drain` waits
until everything is written.

A write that fails is logged and counted (``errors``), as the Recorder does
with its own; a process killed with writes still queued loses them, like a
Recorder's unflushed text: the resume regenerates it.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

from core.services.store import Store, StoreError
from core.types import ErrorInfo, Round, RunSpec

log = logging.getLogger(__name__)

_Job = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], "Future[Any] | None"]


def _copy(round_: Round) -> Round:
    """A snapshot: the engine edits a finished round later (its held-back tail)."""
    return dataclasses.replace(round_, seam_flags=list(round_.seam_flags))


class WriteBehindStore:
    """The part of :class:`~core.services.store.Store` a Recorder uses, its writes done by one thread."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.errors = 0
        self.last_error: Exception | None = None
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._fresh: set[str] = set()  # runs created through this writer
        self._thread = threading.Thread(target=self._serve, name="continuum-batch-writer", daemon=True)
        self._thread.start()

    @property
    def path(self) -> Any:
        return self.store.path

    # ------------------------------------------------------------ runs

    def create_run(self, spec: RunSpec, *, run_id: str | None = None, batch_id: str | None = None) -> str:
        """With a ``run_id``, queued (the id is known): the run is new, so it has no rounds yet."""
        if run_id is None:
            return str(self._call(self.store.create_run, spec, batch_id=batch_id))
        with self._lock:
            self._fresh.add(run_id)
        self._submit(self.store.create_run, spec, run_id=run_id, batch_id=batch_id)
        return run_id

    def begin_run(self, run_id: str, spec: RunSpec) -> None:
        """Nothing to do for a run created here (``create_run`` opened it, owned by this
        process, with this spec); else waited for (it may refuse: the run is held elsewhere)."""
        if not self._is_fresh(run_id):
            self._call(self.store.begin_run, run_id, spec)

    def stored_rounds(self, run_id: str) -> list[Round]:
        if self._is_fresh(run_id):
            return []
        return list(self._call(self.store.stored_rounds, run_id))

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Queue any other write (e.g. linking a batch item to its run) in order with the rest."""
        self._submit(fn, *args, **kwargs)

    def _is_fresh(self, run_id: str) -> bool:
        with self._lock:
            return run_id in self._fresh

    # ------------------------------------------------------------ waited for

    def drain(self) -> None:
        """Wait until every write queued so far is done."""
        self._call(lambda: None)

    # ------------------------------------------------------------ queued

    def start_round(self, run_id: str, round_: Round) -> None:
        self._submit(self.store.start_round, run_id, _copy(round_))

    def append_live(self, run_id: str, index: int, text: str, reasoning: str) -> None:
        self._submit(self.store.append_live, run_id, index, text, reasoning)

    def write_rounds(self, run_id: str, rounds: Iterable[Round]) -> None:
        self._submit(self.store.write_rounds, run_id, [_copy(r) for r in rounds])

    def heartbeat(self, run_id: str) -> None:
        self._submit(self.store.heartbeat, run_id)

    def finish_run(
        self,
        run_id: str,
        *,
        spec: RunSpec,
        status: str,
        stop_reason: str | None,
        error: ErrorInfo | None,
        finished_at: float | None,
        started_at: float | None = None,
        rounds: Iterable[Round] = (),
        keep: Iterable[int] | None = None,
    ) -> None:
        self._submit(
            self.store.finish_run,
            run_id,
            spec=spec,
            status=status,
            stop_reason=stop_reason,
            error=error,
            finished_at=finished_at,
            started_at=started_at,
            rounds=[_copy(r) for r in rounds],
            keep=None if keep is None else list(keep),
        )

    def close(self) -> None:
        """Write what is queued, then end the thread."""
        self.drain()
        self._queue.put(None)
        self._thread.join()

    # ------------------------------------------------------------ the thread

    def _submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._queue.put((fn, args, kwargs, None))

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        done: Future[Any] = Future()
        self._queue.put((fn, args, kwargs, done))
        return done.result()

    def _serve(self) -> None:
        while (job := self._queue.get()) is not None:
            fn, args, kwargs, done = job
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:  # handed to the caller, or logged for a queued write
                if done is not None:
                    done.set_exception(exc)
                    continue
                self.errors += 1
                self.last_error = exc
                if isinstance(exc, sqlite3.Error | StoreError):
                    log.warning("could not save a batch item to the history: %s", exc)
                else:
                    log.exception("batch history writer failed")
            else:
                if done is not None:
                    done.set_result(result)
