"""One request's run: the engine in a worker thread, its events handed to the event loop in batches.

The engine is a synchronous generator over a blocking HTTP client, so each request's run goes
in its own thread (as a Studio job does), recorded in the history by a
:class:`~core.services.store.Recorder` as it streams, with the source ``api``. Its events reach
the request's coroutine through a :class:`Pipe`: the worker appends, and wakes the loop only
when the coroutine is waiting, so one wake-up carries every event of a network read.
Cancelling (:meth:`ServeRun.stop`) aborts the upstream request in flight at once
(:class:`~core.types.CancelToken`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from typing import TYPE_CHECKING

from core.continuation import engine
from core.services import steering
from core.services.store import Recorder, set_source
from core.types import CancelToken, ErrorInfo, Event, RunFinished, RunResult, RunSpec, RunStarted

if TYPE_CHECKING:
    from core.continuation.rounds import RetryPolicy
    from core.continuation.validation import Checked
    from core.services.store import Store
    from core.wire.client import Client

log = logging.getLogger(__name__)

__all__ = ["SOURCE", "Pipe", "ServeRun"]

SOURCE = "api"  # the runs' source in the history


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Pipe:
    """Events from a worker thread to one coroutine, in batches. :meth:`get` returns None once
    the worker has closed the pipe and every event was taken."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._items: list[Event] = []
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def put(self, item: Event) -> None:
        with self._lock:
            self._items.append(item)
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._loop.call_soon_threadsafe(_wake, waiter)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._loop.call_soon_threadsafe(_wake, waiter)

    def wake(self) -> None:
        """Stop the coroutine's wait now (the client left)."""
        with self._lock:
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._loop.call_soon_threadsafe(_wake, waiter)

    async def get(self, timeout: float) -> list[Event] | None:
        """The events so far ([] after ``timeout`` seconds without any), None at the end."""
        with self._lock:
            if self._items or self._closed:
                return self._take_locked()
            waiter = self._waiter = self._loop.create_future()
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            pass
        with self._lock:
            self._waiter = None
            return self._take_locked()

    def _take_locked(self) -> list[Event] | None:
        items, self._items = self._items, []
        if not items and self._closed:
            return None
        return items


class ServeRun:
    """The run answering one request. ``run_id`` is chosen up front (it names the response)."""

    def __init__(
        self,
        spec: RunSpec,
        *,
        client: Client,
        api_key: str | None,
        store: Store | None,
        loop: asyncio.AbstractEventLoop,
        retry: RetryPolicy | None = None,
        opening: str = "",
        checked: Checked | None = None,
    ) -> None:
        self.spec = spec
        self._retry = retry
        self._checked = checked  # the request's validation (a 400 otherwise): the engine does not repeat it
        self._resume = steering.opening(spec, opening) if opening else None  # the answer goes on from it
        self.run_id = str(uuid.uuid4())
        self.saved = store is not None
        self.cancel = CancelToken()
        self.pipe = Pipe(loop)
        self.client_left = False
        self._client = client
        self._api_key = api_key
        self._store = store
        self._thread = threading.Thread(
            target=self._work, name=f"continuum-serve-{self.run_id[:6]}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, *, client_left: bool = False) -> None:
        """Cancel the run (the upstream request is aborted); ``client_left``: nobody reads any more."""
        if client_left:
            self.client_left = True
            self.pipe.wake()
        self.cancel.cancel()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _work(self) -> None:
        store = self._store
        resume = self._resume
        events = engine.run(
            self.spec,
            api_key=self._api_key,
            cancel=self.cancel,
            resume=resume,
            client=self._client,
            retry=self._retry,
            checked=self._checked,
        )
        if store is not None:
            recorder = Recorder(store, run_id=self.run_id, resume=resume, autoflush=True)
            events = recorder.record(events)
        try:
            for event in events:
                if store is not None and isinstance(event, RunStarted):
                    self._mark_source(store)
                self.pipe.put(event)
        except Exception as exc:  # the request must still end, with a readable error
            log.exception("run %s failed outside the engine", self.run_id)
            info = ErrorInfo(kind="InternalError", message=f"The run stopped on an unexpected error ({exc}).")
            self.pipe.put(
                RunFinished("error", RunResult(spec=self.spec, stop_reason="error", error=info), info)
            )
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()
            self.pipe.close()

    def _mark_source(self, store: Store) -> None:
        try:
            set_source(store, self.run_id, SOURCE)
        except Exception:  # a history problem never stops an answer
            log.warning("could not mark run %s as coming from the API", self.run_id, exc_info=True)
