"""The hook that makes a batch's concurrency shared: an httpx transport holding limiter slots.

Each worker's :class:`~core.wire.client.Client` sends through a
:class:`LimitedTransport`. Every HTTP request — first tries, retries and
recovery rounds alike — waits for a slot of the batch's
:class:`~core.services.batch.limiter.AdaptiveLimiter` before it is sent and holds it
until its response is closed (the stream read to its end, dropped, or
aborted). A 429 response halves the limit for the whole batch at once, read
from the status code itself; the engine's retry wait then happens without a
slot, so other items use the capacity meanwhile.

The worker sets :attr:`LimitedTransport.cancel` to the running item's cancel
token, so stopping the batch also ends a wait for a slot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx

from core.services.batch.limiter import AdaptiveLimiter
from core.types import CancelToken


class _SlotStream(httpx.SyncByteStream):
    """A response body that gives the slot back when it is closed (exactly once)."""

    def __init__(self, inner: httpx.SyncByteStream, release: Callable[[], None]) -> None:
        self._inner = inner
        self._release: Callable[[], None] | None = release

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._inner)

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


class LimitedTransport(httpx.BaseTransport):
    """Sends through ``inner`` (a plain HTTP transport by default) one limiter slot per request."""

    def __init__(self, limiter: AdaptiveLimiter, inner: httpx.BaseTransport | None = None) -> None:
        self.limiter = limiter
        self.inner = inner if inner is not None else httpx.HTTPTransport()
        self.cancel: CancelToken | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        limiter = self.limiter
        slot = limiter.acquire(self.cancel)
        if slot is None:
            raise httpx.ConnectError("the batch was stopped before this request was sent", request=request)
        try:
            response = self.inner.handle_request(request)
        except BaseException:
            limiter.release(slot, ok=False)
            raise
        status = response.status_code
        if status == 429:
            limiter.rate_limited(slot)
        ok = status < 400

        def release() -> None:
            limiter.release(slot, ok=ok)

        stream = response.stream
        if response.is_closed or not isinstance(stream, httpx.SyncByteStream):
            release()  # a body read in full already (a mock, a fake): nothing is in flight
            return response
        response.stream = _SlotStream(stream, release)
        return response

    def close(self) -> None:
        self.inner.close()
