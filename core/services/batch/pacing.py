"""Paced reads: a batch reads each stream in gulps, not token by token.

A provider streaming 50 tokens a second sends 50 tiny writes a second; read as
they come, each one wakes a thread, takes the GIL and walks the whole HTTP
stack, and 200 streams at once cost more than a core. Nobody watches a batch
item's tokens live, so a batch connection, after a read that brought little
(a trickle), waits ``interval`` seconds before reading again — unless bytes
are already waiting — and then takes everything that is there in one read
(draining TLS records too). Fast streams (large reads) are never delayed, a
new request's response head is read at once, and a stopped item's socket is
shut down by the client as usual (the wait ends within ``interval``).

The chunks of a chunked body that one read brings are merged into one
(:mod:`core.services.batch.coalesce`), so the HTTP parser handles one chunk per read,
not one per token.

:func:`paced_transport` builds an httpx transport whose connections read this
way: a :class:`~core.wire.pool_transport.PoolTransport` (httpx's public transport API
over httpcore's public pool) with :class:`PacedBackend`, an httpcore network
backend wrapping the standard one.
"""

from __future__ import annotations

import select
import ssl
import time
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from core.services.batch.coalesce import ChunkCoalescer
from core.wire.pool_transport import PoolTransport

DEFAULT_INTERVAL = 0.25  # seconds between reads of a trickling stream
TRICKLE_BYTES = 4096  # a read smaller than this is a trickle


class PacedStream(httpcore.NetworkStream):
    """A network stream that waits between small reads and gathers what is ready."""

    def __init__(self, inner: httpcore.NetworkStream, interval: float, trickle: int = TRICKLE_BYTES) -> None:
        self._inner = inner
        self._interval = interval
        self._trickle_bytes = trickle
        self._trickling = False
        sock = inner.get_extra_info("socket")
        self._sock = sock if hasattr(sock, "fileno") else None
        self._tls = isinstance(sock, ssl.SSLSocket)
        self._chunks = ChunkCoalescer()

    def _ready(self) -> bool:
        sock = self._sock
        if sock is None:
            return True  # cannot tell: never wait
        if self._tls and sock.pending():
            return True
        try:
            return bool(select.select([sock], [], [], 0)[0])
        except (OSError, ValueError):
            return True  # closed or shut down: let the read report it

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        while True:
            data = self._read(max_bytes, timeout)
            if not data:
                return self._chunks.flush()
            data = self._chunks.feed(data)
            if data:  # else only part of a line came: read on (an empty read would mean EOF)
                return data

    def _read(self, max_bytes: int, timeout: float | None) -> bytes:
        if self._trickling and not self._ready():
            time.sleep(self._interval)
        data = self._inner.read(max_bytes, timeout)
        if data and self._tls:  # one TLS record per read: take every record already here
            parts, size = [data], len(data)
            while size < max_bytes and self._ready():
                more = self._inner.read(max_bytes - size, timeout)
                if not more:
                    break
                parts.append(more)
                size += len(more)
            data = b"".join(parts) if len(parts) > 1 else data
        self._trickling = 0 < len(data) < self._trickle_bytes
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._trickling = False  # a new request: read its response head at once
        self._chunks.request_sent()
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, timeout)
        return PacedStream(inner, self._interval, self._trickle_bytes)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class PacedBackend(httpcore.NetworkBackend):
    """The standard synchronous backend, its streams wrapped in :class:`PacedStream`."""

    def __init__(
        self, interval: float = DEFAULT_INTERVAL, inner: httpcore.NetworkBackend | None = None
    ) -> None:
        self.interval = interval
        self.inner = inner if inner is not None else httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self.inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return PacedStream(stream, self.interval)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        return PacedStream(self.inner.connect_unix_socket(path, timeout, socket_options), self.interval)

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


def paced_transport(
    ssl_context: ssl.SSLContext,
    interval: float = DEFAULT_INTERVAL,
    network: httpcore.NetworkBackend | None = None,
) -> httpx.BaseTransport:
    """An HTTP transport for one batch worker: few connections, paced reads, a shared SSL context.

    Sharing ``ssl_context`` matters: building one loads the CA bundle (~50 ms of
    CPU), too much to do per worker. ``interval`` 0 reads as usual. ``network``:
    the backend that really connects (default httpcore's standard one).
    """
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=2)
    backend = PacedBackend(interval, inner=network) if interval > 0 else network
    return PoolTransport(backend, ssl_context=ssl_context, limits=limits)
