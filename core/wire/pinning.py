"""On a shared server, connect only to the addresses that were checked.

A host name checked when a request is made may resolve elsewhere a moment later,
when the connection is opened (DNS rebinding: a public answer for the check, an
internal one for the connection). So on a shared server the connection itself
resolves the name, once, checks every address (:func:`core.wire.guard.connect_addresses`)
and dials exactly those; the request keeps its URL, so the Host header, TLS SNI
and certificate verification stay on the name.

httpx takes no resolver, but httpcore's connection pool takes a network backend
(its public ``httpcore.NetworkBackend`` interface, whose ``connect_tcp`` gets the
host and port): :class:`CheckedBackend` resolves and checks there, and
:class:`CheckedTransport` sends through a :class:`~core.wire.pool_transport.PoolTransport`
over such a pool (``httpx.HTTPTransport``'s work with this backend). A transport built
elsewhere (the batch's paced one) pins its connections with :func:`checked_network` as its
backend, wrapped in :class:`RefusalsAsErrors`. Requests
that need no check (:func:`core.wire.guard.needs_pinning`: not shared, allow-listed,
this process's demo model, or sent through a proxy from the environment, which
resolves the name itself) go through plain ``httpx.HTTPTransport`` instances.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from core.wire.guard import (
    RefusedAddress,
    Resolver,
    connect_addresses,
    is_shared,
    needs_pinning,
    proxy_for,
    refused_as_internal,
)
from core.wire.pool_transport import LIMITS, PoolTransport, shared_ssl_context

__all__ = ["CheckedBackend", "CheckedTransport", "RefusalsAsErrors", "checked_network", "transport"]


class CheckedBackend(httpcore.NetworkBackend):
    """Connects to a host's addresses as :func:`~core.wire.guard.connect_addresses` returns them.

    ``resolve`` replaces the system resolver (``(host, port) -> addresses``);
    ``network`` is the backend that really connects (default ``httpcore.SyncBackend``).
    """

    def __init__(
        self, resolve: Resolver | None = None, network: httpcore.NetworkBackend | None = None
    ) -> None:
        self.resolve = resolve
        self.network = network or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = connect_addresses(host, port, self.resolve)
        except OSError as exc:  # as httpcore reports a name that does not resolve
            raise httpcore.ConnectError(str(exc)) from exc
        failure: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return self.network.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:  # the next address, as socket.create_connection does
                failure = exc
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("a shared server connects to host names, not socket files")

    def sleep(self, seconds: float) -> None:
        self.network.sleep(seconds)


class CheckedTransport(httpx.BaseTransport):
    """An ``httpx`` transport whose connections go only to checked addresses (see the module docstring).

    ``resolve`` and ``network``: see :class:`CheckedBackend` (tests pass their own).
    """

    def __init__(
        self, resolve: Resolver | None = None, network: httpcore.NetworkBackend | None = None
    ) -> None:
        self._checked = PoolTransport(CheckedBackend(resolve, network), limits=LIMITS)
        self._plain: dict[str | None, httpx.HTTPTransport] = {}  # by proxy URL (None: direct)
        self._lock = threading.Lock()

    def _unchecked(self, proxy: str | None) -> httpx.HTTPTransport:
        with self._lock:
            if proxy not in self._plain:
                self._plain[proxy] = httpx.HTTPTransport(
                    proxy=proxy, limits=LIMITS, verify=shared_ssl_context()
                )
            return self._plain[proxy]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not needs_pinning(request.url):
            return self._unchecked(proxy_for(request.url)).handle_request(request)
        try:
            return self._checked.handle_request(request)
        except RefusedAddress as exc:
            raise refused_as_internal(request.url, exc.reason) from None

    def close(self) -> None:
        self._checked.close()
        with self._lock:
            plain, self._plain = list(self._plain.values()), {}
        for transport in plain:
            transport.close()


def transport() -> httpx.BaseTransport | None:
    """The transport for a new client: a :class:`CheckedTransport` on a shared server, else None
    (httpx's own, with the environment's proxies)."""
    return CheckedTransport() if is_shared() else None


def checked_network(url: str | httpx.URL) -> CheckedBackend | None:
    """The backend for a transport of its own whose requests all go to ``url``'s host: a
    :class:`CheckedBackend` when connections there must be pinned, else None (the standard one)."""
    return CheckedBackend() if needs_pinning(httpx.URL(str(url))) else None


class RefusalsAsErrors(httpx.BaseTransport):
    """Wraps a transport over a :class:`CheckedBackend`: a refused address becomes the same
    :class:`~core.wire.errors.ConfigError` as :class:`CheckedTransport` raises."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return self.inner.handle_request(request)
        except RefusedAddress as exc:
            raise refused_as_internal(request.url, exc.reason) from None

    def close(self) -> None:
        self.inner.close()
