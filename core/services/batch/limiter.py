"""Shared adaptive concurrency for a batch: AIMD on rate limits.

Every item of a batch acquires a :class:`Slot` from one :class:`AdaptiveLimiter`
before each request round and releases it when the round ends, so the limit
bounds the requests in flight across the whole batch. A rate limit (HTTP 429)
seen by any item halves the limit for everyone (multiplicative decrease); after
``increase_after`` successful rounds in a row the limit grows by one again
(additive increase), up to the ceiling the batch was started with.

Several requests in flight at the moment of a rate limit usually all get a 429:
only the first of them halves the limit. Each slot remembers the *epoch* (the
number of decreases so far) it was granted in, and a 429 on a slot from an
older epoch is already accounted for.

Pure threading; no I/O. Waiting is cancellable through a
:class:`~core.types.CancelToken` (no polling: the token wakes the waiters).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from core.types import CancelToken


@dataclass(frozen=True)
class Slot:
    """Permission for one request round; give it back with :meth:`AdaptiveLimiter.release`."""

    epoch: int


@dataclass(frozen=True)
class LimiterStats:
    limit: int  # current concurrency limit
    maximum: int  # the ceiling
    in_flight: int
    peak_in_flight: int
    lowest_limit: int  # the lowest the limit has been
    rate_limits: int  # rate limits reported
    decreases: int  # times the limit was halved


class AdaptiveLimiter:
    """A semaphore whose size follows AIMD: halve on a rate limit, +1 after a run of successes."""

    def __init__(self, maximum: int, *, minimum: int = 1, increase_after: int = 8) -> None:
        if maximum < 1:
            raise ValueError(f"the concurrency limit must be at least 1, got {maximum}")
        self.maximum = maximum
        self.minimum = max(1, min(minimum, maximum))
        self.increase_after = max(1, increase_after)
        self._cond = threading.Condition()
        self._limit = maximum
        self._in_flight = 0
        self._peak = 0
        self._epoch = 0
        self._successes = 0
        self._lowest = maximum
        self._rate_limits = 0

    # ------------------------------------------------------------ slots

    def acquire(self, cancel: CancelToken | None = None, timeout: float | None = None) -> Slot | None:
        """Wait for a free slot; None when ``cancel`` fires or ``timeout`` passes first."""
        unregister = cancel.register(self.wake_all) if cancel is not None else None
        try:
            with self._cond:
                free = self._cond.wait_for(
                    lambda: (cancel is not None and cancel.cancelled) or self._in_flight < self._limit,
                    timeout,
                )
                if not free or (cancel is not None and cancel.cancelled):
                    return None
                self._in_flight += 1
                self._peak = max(self._peak, self._in_flight)
                return Slot(self._epoch)
        finally:
            if unregister is not None:
                unregister()

    def release(self, slot: Slot, *, ok: bool = True) -> None:
        """Give a slot back; ``ok`` when its round got a reply that was not a rate limit."""
        with self._cond:
            self._in_flight = max(0, self._in_flight - 1)
            if ok and slot.epoch == self._epoch:
                self._successes += 1
                if self._successes >= self.increase_after and self._limit < self.maximum:
                    self._limit += 1
                    self._successes = 0
            self._cond.notify()

    def rate_limited(self, slot: Slot) -> bool:
        """A request on ``slot`` got a 429: halve the limit, once per epoch. True if it was lowered."""
        with self._cond:
            self._rate_limits += 1
            self._successes = 0
            new = max(self.minimum, self._limit // 2)
            if slot.epoch != self._epoch or new == self._limit:
                return False  # already halved for this burst, or at the floor
            self._epoch += 1
            self._limit = new
            self._lowest = min(self._lowest, new)
            return True

    def wake_all(self) -> None:
        """Wake every waiter so it re-checks its cancel token."""
        with self._cond:
            self._cond.notify_all()

    # ------------------------------------------------------------ reading

    @property
    def limit(self) -> int:
        with self._cond:
            return self._limit

    def stats(self) -> LimiterStats:
        with self._cond:
            return LimiterStats(
                limit=self._limit,
                maximum=self.maximum,
                in_flight=self._in_flight,
                peak_in_flight=self._peak,
                lowest_limit=self._lowest,
                rate_limits=self._rate_limits,
                decreases=self._epoch,
            )
