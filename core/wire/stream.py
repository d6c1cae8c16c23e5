"""A streamed completion: an abortable iterator of StreamDelta (used by core.wire.client).

The request goes out on the first ``next()``, its JSON body encoded once by
:mod:`core.wire.body` (a long answer is never copied whole) and released when the
stream ends. The response body is decoded by :mod:`core.wire.sse` and each JSON
chunk becomes at most one delta (:mod:`core.wire.chunks`). Iterating gives
:class:`core.types.StreamDelta`; :meth:`Stream.batches` gives the same deltas as
one list per network read, the cheaper form the engine reads. :meth:`Stream.abort`
may be called from any thread: it shuts the socket down, so a read blocked on a
silent server returns at once and the iterator raises
:class:`core.wire.errors.CancelledError`. Transport failures raise other
:class:`core.wire.errors.TransportError` subclasses, so a caller can always tell
its own cancel from a broken connection.

Limitation: before the response headers arrive on a *reused* (pooled)
connection the socket is not known yet, so an abort then takes effect when the
headers arrive or the idle timeout fires. On a fresh connection (captured with
httpcore's trace hook) it is immediate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

import httpx

from core.types import StreamDelta, Usage
from core.wire.body import JSONBody, encode_body
from core.wire.boundary import (
    call_later,
    host_error,
    read_limited,
    request_id,
    shutdown_socket,
    transport_error,
    unexpected_response,
)
from core.wire.chunks import Batch, ChunkDecoder
from core.wire.error_map import parse_body
from core.wire.errors import CancelledError, ConfigError, ContinuumError, RoundTimeoutError
from core.wire.sse import SSEDecoder

if TYPE_CHECKING:
    from core.wire.client import Client

__all__ = ["Batch", "Stream"]

DRAIN_SECONDS = 2.0  # after [DONE], wait this long for the end of the body (keeps the connection)
_ERROR_BODY_LIMIT = 64 * 1024
_JSON_BODY_LIMIT = 32 * 1024 * 1024
_SSE_STARTS = (b"data:", b":", b"event:", b"id:", b"retry:")
_CAPTURE_EVENTS = ("connection.connect_tcp.complete", "connection.start_tls.complete")


class Stream:
    """An iterator of StreamDelta and a context manager; see the module docstring.

    Attributes: ``request_id`` and ``status_code`` (once the headers arrived), ``activity``
    (monotonic time of the last bytes, comments included), ``usage`` (the last
    non-null usage), ``finish_reason`` (the last non-empty one), ``done``
    (``[DONE]`` arrived), ``chunks`` (JSON chunks decoded), ``comments``.
    ``close()`` belongs to the consuming thread; ``abort()`` to any thread.
    """

    def __init__(self, client: Client, path: str, payload: dict[str, Any]) -> None:
        self._client = client
        self.url = client.base_url + path
        self._payload = payload
        self._body: bytes | JSONBody | None = None  # as sent (core.wire.body)
        self.model: str | None = payload.get("model")
        self.request_id: str | None = None
        self.status_code: int | None = None  # set when the response headers arrive
        self.activity = time.monotonic()
        self._decoder = SSEDecoder()
        self._chunks = ChunkDecoder(self.url, self._server_error)
        self._lock = threading.Lock()
        self._abort_reason: str | None = None
        self._finished = False
        self._response: httpx.Response | None = None
        self._netstream: Any = None
        self._cancel_timer: Callable[[], None] | None = None
        self._json_answer: dict[str, Any] | None = None
        self._first_chunk = b""  # bytes read to sniff an unlabelled body
        self._gen: Generator[Batch, None, None] = self._run()
        self._iter: Generator[StreamDelta, None, None] = self._deltas()

    def __iter__(self) -> Iterator[StreamDelta]:
        return self._iter

    def __next__(self) -> StreamDelta:
        return next(self._iter)

    def batches(self) -> Iterator[Batch]:
        """The deltas, one list per network read: a ``str`` is a delta with only that content.

        Use either this or plain iteration on one stream, not both.
        """
        return self._gen

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def comments(self) -> int:
        """Comment lines (keep-alives) received so far."""
        return self._decoder.comments

    @property
    def chunks(self) -> int:
        return self._chunks.chunks

    @property
    def done(self) -> bool:
        return self._chunks.done

    @property
    def finish_reason(self) -> str | None:
        return self._chunks.finish_reason

    @property
    def usage(self) -> Usage | None:
        return self._chunks.usage

    @property
    def aborted(self) -> bool:
        return self._abort_reason is not None

    def close(self) -> None:
        """Stop iterating and release the connection. Idempotent."""
        try:
            self._iter.close()
            self._gen.close()
        except ValueError:  # called from another thread while iterating: abort instead
            self.abort()
            return
        self._cleanup()

    def abort(self) -> None:
        """Thread-safe stop: the iterator ends by raising CancelledError within milliseconds."""
        self._abort("cancelled")

    # ------------------------------------------------------------- internals

    def _abort(self, reason: str) -> None:
        with self._lock:
            if self._finished:  # the connection may already serve another request
                return
            if self._abort_reason is None:
                self._abort_reason = reason
            response = self._response
            netstream = self._netstream
        if response is not None:
            netstream = response.extensions.get("network_stream", netstream)
        shutdown_socket(netstream)
        if response is not None:
            try:
                response.close()
            except Exception:  # noqa: BLE001 - the reader thread reports the outcome
                pass

    def _round_expired(self) -> None:
        self._abort("round")

    def _drain_expired(self) -> None:
        self._abort("drain")

    def _trace(self, name: str, info: dict[str, Any]) -> None:
        """httpcore trace hook: keep the socket of a fresh connection, so abort works before headers."""
        if name in _CAPTURE_EVENTS and info.get("return_value") is not None:
            with self._lock:
                self._netstream = info["return_value"]
                aborted = self._abort_reason is not None
            if aborted:
                shutdown_socket(self._netstream)

    def _cleanup(self) -> None:
        with self._lock:
            self._finished = True
        if self._cancel_timer is not None:
            self._cancel_timer()
        response = self._response
        if response is not None:
            try:
                response.close()
            except Exception:  # noqa: BLE001 - closing must not mask the real outcome
                pass
        # The request body holds the whole answer so far, and the stream sits in reference
        # cycles (its chunk decoder, httpx's response and its byte stream) that only the cyclic
        # collector frees: drop what is large now, so nothing of a finished round's request
        # outlives it (httpx's request, which the response keeps, holds the body too).
        if isinstance(self._body, JSONBody):
            self._body.release()
        self._body = None
        self._payload = {}
        self._response = None
        if response is not None:
            response.stream = httpx.ByteStream(b"")  # httpx's response <-> bound stream cycle

    def _abort_error(self) -> ContinuumError:
        if self._abort_reason == "round":
            return RoundTimeoutError(
                f"The round at {self.url} ran longer than {self._client.timeouts.round:g} s (round timeout).",
                "The text so far is kept and the run continues with a new round; raise the round timeout "
                "in Settings for very long rounds.",
            )
        return CancelledError("The stream was stopped on request.")

    def _server_error(self, body: Any) -> ContinuumError:
        return self._client.body_error(body, self.url, self.model, self.request_id)

    def _failure(self, exc: Exception, *, started: bool) -> ContinuumError | None:
        if self._abort_reason is not None:
            return self._abort_error()
        if isinstance(exc, httpx.HTTPError):
            return transport_error(exc, self.url, self._client.timeouts, started=started)
        if isinstance(exc, UnicodeError) and not started:
            return host_error(exc, self.url)
        return None

    def _open(self) -> Callable[[], bytes]:
        client = self._client
        if self._abort_reason is not None:
            raise self._abort_error()
        self._cancel_timer = call_later(client.timeouts.round, self._round_expired)
        http = client._http
        try:
            timeout: Any = httpx.USE_CLIENT_DEFAULT
            if self._payload.get("stream") is False:  # the whole answer arrives at once: allow the round
                timeout = httpx.Timeout(client.timeouts.round, connect=client.timeouts.connect)
            headers, self._body = encode_body(self._payload)  # once, and without copies of the answer
            request = http.build_request(
                "POST",
                self.url,
                content=self._body,
                headers=headers,
                timeout=timeout,
                extensions={"trace": self._trace},
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"The request body cannot be sent as JSON: {exc}.") from exc
        try:
            response = http.send(request, stream=True)
        except Exception as exc:
            error = self._failure(exc, started=False)
            if error is None:
                raise
            raise error from exc
        with self._lock:
            self._response = response
            aborted = self._abort_reason is not None
        if aborted:
            raise self._abort_error()
        self.request_id = request_id(response)
        self.status_code = response.status_code
        self.activity = time.monotonic()
        if response.status_code >= 400:
            raw = read_limited(response, _ERROR_BODY_LIMIT)
            raise client.status_error(response, raw, self.model)
        next_chunk = response.iter_bytes().__next__
        content_type = response.headers.get("content-type", "").lower()
        if "text/event-stream" in content_type:
            return next_chunk
        if "json" in content_type:  # an error object, or a server that ignored stream=True
            raw = read_limited(response, _JSON_BODY_LIMIT)
            body = parse_body(raw)
            if isinstance(body, dict) and body.get("error"):
                raise client.body_error(body, self.url, self.model, self.request_id)
            if isinstance(body, dict) and isinstance(body.get("choices"), list) and body["choices"]:
                self._json_answer = body
                return next_chunk
            raise unexpected_response(response, raw[:200])
        try:  # no or another content type: accept it if the body looks like SSE
            first = next_chunk()
        except StopIteration:
            first = b""
        except Exception as exc:
            error = self._failure(exc, started=True)
            if error is None:
                raise
            raise error from exc
        if first.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(_SSE_STARTS):
            self._first_chunk = first
            return next_chunk
        raise unexpected_response(response, first[:200])

    def _run(self) -> Generator[Batch, None, None]:
        try:
            next_chunk = self._open()
            if self._json_answer is not None:
                yield [self._chunks.answer(self._json_answer)]
                return
            yield from self._read(next_chunk)
        except ContinuumError as exc:
            self._client.scrub(exc)
            raise
        finally:
            self._cleanup()

    def _deltas(self) -> Generator[StreamDelta, None, None]:
        """The batches' deltas one by one, all as StreamDelta (plain iteration)."""
        for batch in self._gen:
            for delta in batch:
                yield StreamDelta(delta) if isinstance(delta, str) else delta

    def _read(self, next_chunk: Callable[[], bytes]) -> Iterator[Batch]:
        """One batch of deltas per network read (see :mod:`core.wire.chunks`)."""
        sse = self._decoder
        feed = sse.feed_data
        decode = self._chunks.decode
        monotonic = time.monotonic
        pending = self._first_chunk
        while True:
            if pending:
                chunk: bytes | None = pending
                pending = b""
            else:
                try:
                    chunk = next_chunk()
                except StopIteration:
                    chunk = None
                except Exception as exc:
                    error = self._failure(exc, started=True)
                    if error is None:
                        raise
                    raise error from exc
            if self._abort_reason is not None:
                raise self._abort_error()
            if chunk is None:
                events = sse.close_data()
            else:
                self.activity = monotonic()
                events = feed(chunk)
            if events:
                batch: Batch = []
                try:
                    done = decode(events, batch)
                except ContinuumError:
                    if batch:  # the deltas before the error first
                        yield batch
                    raise
                if batch:
                    yield batch
                if done:
                    if chunk is not None:
                        self._drain(next_chunk)
                    if self._chunks.chunks or self._chunks.finish_reason is not None:
                        return
                    break
            if chunk is None:
                break
        self._chunks.check_end(sse.comments)

    def _drain(self, next_chunk: Callable[[], bytes]) -> None:
        """Read to the end of the body after [DONE] so the connection can be reused."""
        cancel = call_later(DRAIN_SECONDS, self._drain_expired)
        try:
            while True:
                next_chunk()
        except Exception:  # noqa: BLE001 - StopIteration or a broken tail: the answer is complete
            pass
        finally:
            cancel()
