"""What the in-process batch runner and a batch worker share: run, wait, done, cancelling what is in flight.

Both run items on threads that end by themselves (``_done`` is set by the last one), each item
with a :class:`~core.types.CancelToken` in ``_cancels``, every request holding a slot of one
:class:`~core.services.batch.limiter.AdaptiveLimiter`.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Generic, TypeVar

from core.services.batch.limiter import AdaptiveLimiter
from core.types import CancelToken

P = TypeVar("P")


class ItemThreads(Generic[P]):
    """The control half of a runner of items on threads (see the module docstring)."""

    limiter: AdaptiveLimiter
    _lock: threading.Lock
    _done: threading.Event
    _halt: threading.Event  # set by a stop: no new item starts
    _cancels: dict[Hashable, CancelToken]  # the items in flight

    def start(self) -> None:
        raise NotImplementedError

    def progress(self) -> P:
        raise NotImplementedError

    def run(self) -> P:
        """Start and block until every item has ended (or it was stopped and settled)."""
        self.start()
        self.wait()
        return self.progress()

    def wait(self, timeout: float | None = None) -> bool:
        """True once every thread has ended (all items done, or stopped and settled)."""
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def _cancel_in_flight(self) -> None:
        """No new item starts; the items in flight are cancelled (their runs stay resumable)."""
        with self._lock:
            cancels = list(self._cancels.values())
        self._halt.set()
        for cancel in cancels:
            cancel.cancel()
        self.limiter.wake_all()
