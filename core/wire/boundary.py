"""httpx at the boundary: its exceptions and odd responses become core.wire.errors.

Also the small per-chunk helpers of :mod:`core.wire.stream` (JSON scanning, usage)
and socket shutdown for aborts. Callers above this layer never see httpx types.
"""

from __future__ import annotations

import heapq
import itertools
import json
import json.scanner
import math
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx

from core.types import Usage
from core.wire.errors import (
    ConfigError,
    ConnectError,
    ConnectTimeoutError,
    ContinuumError,
    IdleTimeoutError,
    StreamInterrupted,
    UnexpectedResponseError,
)

if TYPE_CHECKING:
    from core.wire.client import Timeouts

__all__ = [
    "MAX_REDIRECTS",
    "call_later",
    "host_error",
    "parse_usage",
    "read_limited",
    "request_id",
    "scan_json",
    "shutdown_socket",
    "transport_error",
    "unexpected_response",
]

MAX_REDIRECTS = 5
_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-amzn-requestid", "cf-ray")


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def transport_error(exc: Exception, url: str, timeouts: Timeouts, *, started: bool) -> ContinuumError:
    """Translate an httpx exception into the error tree (``started``: body reading had begun)."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        return ConnectTimeoutError(
            f"Could not connect to {url} within {timeouts.connect:g} s.",
            "Check the base URL and that the server is reachable; the connect timeout is in Settings.",
        )
    if isinstance(exc, httpx.TimeoutException):
        return IdleTimeoutError(
            f"The server at {url} sent nothing for {timeouts.idle:g} s (idle timeout).",
            "It may be overloaded; the text so far is kept and the round is retried. "
            "Raise the idle timeout in Settings for slow models.",
        )
    if isinstance(exc, httpx.TooManyRedirects):
        return ConnectError(
            f"Too many redirects (more than {MAX_REDIRECTS}) from {url}.",
            "Check the base URL; it may point at a login page or a redirect loop.",
            retryable=False,
        )
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        return ConfigError(f"Cannot send a request to {url}: {detail}.", "Check the base URL in Settings.")
    if isinstance(exc, httpx.ConnectError):
        return _connect_error(exc, url, detail)
    if isinstance(exc, httpx.RemoteProtocolError) and not started and _NOT_HTTP.search(detail):
        return UnexpectedResponseError(
            f"The server at {url} does not speak HTTP ({detail}).",
            "Check the host and port of the base URL: they point at another kind of service.",
        )
    if isinstance(exc, httpx.HTTPError) and not started:
        return StreamInterrupted(
            f"The connection to {url} broke before a response arrived ({detail}).",
            "This is usually temporary; the round is retried. If it repeats, check the host and port "
            "of the base URL (another kind of service may be listening there).",
        )
    return StreamInterrupted(
        f"The stream from {url} broke off ({detail}).",
        "The text so far is kept; Continuum continues with a new round.",
    )


_NOT_HTTP = re.compile(r"illegal status line|invalid http|malformed|unexpected data", re.I)


def _connect_error(exc: httpx.ConnectError, url: str, detail: str) -> ConnectError:
    """Why a connection could not be opened: refused, DNS, TLS (certificate or handshake)."""
    chain = list(_exception_chain(exc))
    texts = " ".join(str(cause).lower() for cause in chain)
    gai = next((c for c in chain if isinstance(c, socket.gaierror)), None)
    cert = next((c for c in chain if isinstance(c, ssl.SSLCertVerificationError)), None)
    if any(isinstance(c, ConnectionRefusedError) for c in chain) or "refused" in texts:
        return ConnectError(
            f"Could not connect to {url}: connection refused.",
            "Is the server running? Check the base URL.",
        )
    if gai is not None or "name or service not known" in texts:
        host = httpx.URL(url).host
        if gai is not None and gai.errno == socket.EAI_AGAIN:
            return ConnectError(
                f"Could not connect to {url}: the host name '{host}' could not be looked up "
                "(temporary DNS failure).",
                "Check the network connection; the request is retried.",
            )
        return ConnectError(
            f"Could not connect to {url}: the host name '{host}' could not be resolved.",
            "Check the base URL for typos and the network connection.",
            retryable=False,
        )
    if cert is not None or "certificate verify failed" in texts:
        why = (cert.verify_message if cert is not None else "") or detail
        return ConnectError(
            f"Could not connect to {url}: the server's TLS certificate could not be verified ({why}).",
            "Check the base URL. If you trust this server (your own, with a self-signed certificate), "
            "put its CA certificate in a file and set SSL_CERT_FILE to it before starting Continuum.",
            retryable=False,
        )
    if any(isinstance(c, ssl.SSLError) for c in chain) or "ssl" in texts:
        return ConnectError(
            f"Could not connect to {url}: the TLS handshake failed ({detail}).",
            "If the server speaks plain HTTP use http:// in the base URL; otherwise check its certificate.",
            retryable=False,
        )
    return ConnectError(f"Could not connect to {url}: {detail}.", "Check the base URL and the network.")


def host_error(exc: UnicodeError, url: str) -> ConfigError:
    """A host name that cannot even be encoded for a lookup (a label over 63 characters…)."""
    return ConfigError(
        f"The host name in {url} is not valid ({exc}).",
        "Check the base URL: each dot-separated part of a host name has 1 to 63 characters.",
    )


def request_id(response: httpx.Response) -> str | None:
    for name in _REQUEST_ID_HEADERS:
        value = response.headers.get(name)
        if value:
            return value
    return None


def unexpected_response(response: httpx.Response, head: bytes) -> UnexpectedResponseError:
    content_type = response.headers.get("content-type", "").split(";")[0].strip() or "no content type"
    snippet = " ".join(head[:120].decode("utf-8", "replace").split())
    more = "…" if len(head) > 120 else ""
    url = str(response.request.url)
    if "html" in content_type or snippet.startswith("<"):
        return UnexpectedResponseError(
            f"Got an HTML page ('{content_type}', HTTP {response.status_code}) from {url} where an API "
            f"answer was expected (first bytes: '{snippet}{more}')",
            "The base URL probably points at a web page, a login or captive portal, or a proxy: "
            "check it — it should end in /v1.",
            content_type=content_type,
            snippet=snippet,
        )
    return UnexpectedResponseError(
        f"Got '{content_type}' from {url} (first bytes: '{snippet}{more}')",
        "Check the base URL — it should end in /v1.",
        content_type=content_type,
        snippet=snippet,
    )


def _make_json_scanner() -> Callable[[bytes], Any]:
    """``json.loads`` for one UTF-8 JSON value, about twice as fast on small chunks.

    The C scanner skips ``loads``' encoding detection and whitespace regexes; a
    value followed by anything but whitespace falls back to ``loads`` for its error.
    """
    c_make_scanner = getattr(json.scanner, "c_make_scanner", None)
    if c_make_scanner is None:  # pragma: no cover - CPython always has it
        return json.loads
    scan_once = c_make_scanner(json.JSONDecoder())
    loads = json.loads

    def scan(data: bytes) -> Any:
        text = data.decode()
        try:
            obj, end = scan_once(text, 0)
        except StopIteration:
            return loads(text)  # raises the precise JSONDecodeError
        if end != len(text) and text[end:].strip():
            return loads(text)
        return obj

    return scan


scan_json = _make_json_scanner()


def read_limited(response: httpx.Response, limit: int) -> bytes:
    """Up to ``limit`` bytes of the body; whatever arrived if the connection breaks."""
    parts: list[bytes] = []
    size = 0
    try:
        for part in response.iter_bytes():
            parts.append(part)
            size += len(part)
            if size >= limit:
                break
    except httpx.HTTPError:
        pass
    return b"".join(parts)[:limit]


def _count(value: Any) -> int:
    """A token count from a usage field as sent (0 when absent or not a number).

    Negative or absurd counts are kept: the engine refuses them as a whole and says so
    (:func:`core.continuation.budget.implausible_usage`), instead of quietly trusting half a usage.
    """
    if type(value) is int:
        return value
    if type(value) is float and math.isfinite(value):
        return int(value)
    return 0


def parse_usage(usage: dict[str, Any]) -> Usage:
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    prompt_details = prompt_details if isinstance(prompt_details, dict) else {}
    completion_details = completion_details if isinstance(completion_details, dict) else {}
    cached = prompt_details.get("cached_tokens") or usage.get("prompt_cache_hit_tokens")
    return Usage(
        prompt_tokens=_count(usage.get("prompt_tokens")),
        completion_tokens=_count(usage.get("completion_tokens")),
        cached_tokens=_count(cached),
        reasoning_tokens=_count(completion_details.get("reasoning_tokens")),
    )


def shutdown_socket(netstream: Any) -> None:
    """Shut the socket under ``netstream`` down, waking any thread blocked reading it."""
    if netstream is None:
        return
    try:
        sock = netstream.get_extra_info("socket")
    except Exception:  # noqa: BLE001 - a stream without a socket: nothing to shut down
        return
    if sock is None:
        return
    try:
        # The plain-socket method also for TLS sockets: SSLSocket.shutdown would drop its
        # SSL object under the feet of the reading thread.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except (OSError, TypeError):
        pass


class _Watchdog:
    """One daemon thread running delayed callbacks (round ceilings, drain limits).

    Cheaper than a ``threading.Timer`` (a thread each) per stream.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[list[Any]] = []  # [deadline, sequence, callback or None]
        self._sequence = itertools.count()
        self._thread: threading.Thread | None = None

    def call_later(self, delay: float, callback: Callable[[], None]) -> Callable[[], None]:
        entry: list[Any] = [time.monotonic() + delay, next(self._sequence), callback]
        with self._cond:
            if len(self._heap) > 1024:  # drop cancelled entries now and then
                self._heap = [e for e in self._heap if e[2] is not None]
                heapq.heapify(self._heap)
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="continuum-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()

        def cancel() -> None:
            entry[2] = None

        return cancel

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    heap = self._heap
                    while heap and heap[0][2] is None:
                        heapq.heappop(heap)
                    now = time.monotonic()
                    if heap and heap[0][0] <= now:
                        callback = heapq.heappop(heap)[2]
                        break
                    self._cond.wait(heap[0][0] - now if heap else None)
            try:
                callback()
            except Exception:  # noqa: BLE001 - a failing callback must not stop the others
                pass


call_later = _Watchdog().call_later
