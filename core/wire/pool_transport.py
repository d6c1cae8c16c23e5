"""An httpx transport over an httpcore connection pool, with the network backend the caller picks.

``httpx.HTTPTransport`` builds its httpcore pool itself and takes no network
backend (httpx 0.28; encode/httpx pull request 3749 proposes the argument). What
is public: httpx's transport API (subclass ``httpx.BaseTransport``, implement
``handle_request``: "Writing custom transports" in httpx's documentation) and
httpcore's ``ConnectionPool(network_backend=...)`` with the ``NetworkBackend`` and
``NetworkStream`` interfaces (httpcore's "Network backends" documentation,
encode/httpcore 699). :class:`PoolTransport` joins the two and does what
``HTTPTransport.handle_request`` does: the request and the response converted,
the response stream closed through, and httpcore's errors raised as the httpx
errors of the same name (the most specific one, as httpx maps them).

Used where connections need more than the standard backend: :mod:`core.wire.pinning`
(connect only to checked addresses) and :mod:`core.services.batch.pacing` (paced reads).
"""

from __future__ import annotations

import contextlib
import functools
import os
import ssl
from collections.abc import Iterable, Iterator

import httpcore
import httpx

__all__ = ["LIMITS", "PoolTransport", "shared_ssl_context"]

LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)  # httpx's


def shared_ssl_context() -> ssl.SSLContext:
    """httpx's default TLS settings (``httpx.create_ssl_context()``), built once per process.

    Building one loads the CA bundle (about 50 ms); every client and transport shares it
    (an SSLContext is safe to share between threads once configured). A new one is built
    when ``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` change, which httpx reads when building one.
    """
    return _ssl_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.lru_cache(maxsize=4)
def _ssl_context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    return httpx.create_ssl_context()  # reads the same two variables (trust_env)


# httpcore's errors and the httpx errors they become (the table httpx's own transport uses).
_ERRORS: dict[type[Exception], type[httpx.TransportError]] = {
    httpcore.TimeoutException: httpx.TimeoutException,
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.NetworkError: httpx.NetworkError,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.ProxyError: httpx.ProxyError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
    httpcore.ProtocolError: httpx.ProtocolError,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
}


@contextlib.contextmanager
def httpx_errors() -> Iterator[None]:
    """httpcore's errors as httpx's (the nearest class up the error's hierarchy); others pass."""
    try:
        yield
    except Exception as exc:
        mapped = next((_ERRORS[cls] for cls in type(exc).__mro__ if cls in _ERRORS), None)
        if mapped is None:
            raise
        raise mapped(str(exc)) from exc


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with httpx_errors():
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class PoolTransport(httpx.BaseTransport):
    """``httpx.HTTPTransport`` over a pool whose connections ``network_backend`` opens.

    ``network_backend``: default httpcore's standard one. ``ssl_context``: default
    :func:`shared_ssl_context`. ``limits``: default httpx's.
    """

    def __init__(
        self,
        network_backend: httpcore.NetworkBackend | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        limits: httpx.Limits = LIMITS,
    ) -> None:
        self.pool = httpcore.ConnectionPool(
            ssl_context=ssl_context if ssl_context is not None else shared_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=network_backend,
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        url = request.url
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with httpx_errors():
            response = self.pool.handle_request(core_request)
        assert isinstance(response.stream, Iterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self.pool.close()
