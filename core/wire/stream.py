"""A streamed completion: an abortable iterator of StreamDelta (used by core.wire.client).

The request goes out on the first ``next()``; the body is decoded by
:mod:`core.wire.sse` and each JSON chunk becomes at most one
:class:`core.types.StreamDelta`. :meth:`Stream.abort` may be called from any
thread: it shuts the socket down, so a read blocked on a silent server returns
at once and the iterator raises :class:`core.wire.errors.CancelledError`. Transport
failures raise other :class:`core.wire.errors.TransportError` subclasses, so a
caller can always tell its own cancel from a broken connection.

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
from core.wire.boundary import (
    call_later,
    host_error,
    parse_usage,
    read_limited,
    request_id,
    scan_json,
    shutdown_socket,
    transport_error,
    unexpected_response,
)
from core.wire.error_map import parse_body
from core.wire.errors import (
    CancelledError,
    ConfigError,
    ContinuumError,
    EmptyStreamError,
    MalformedStreamError,
    RoundTimeoutError,
    StreamInterrupted,
)
from core.wire.sse import SSEDecoder, SSEEvent

if TYPE_CHECKING:
    from core.wire.client import Client

__all__ = ["Stream"]

DRAIN_SECONDS = 2.0  # after [DONE], wait this long for the end of the body (keeps the connection)
_ERROR_BODY_LIMIT = 64 * 1024
_JSON_BODY_LIMIT = 32 * 1024 * 1024
_SSE_STARTS = (b"data:", b":", b"event:", b"id:", b"retry:")
_CAPTURE_EVENTS = ("connection.connect_tcp.complete", "connection.start_tls.complete")


def _no_lone_surrogates(text: str) -> str:
    """``text`` with unpaired surrogates (JSON escapes like "\\ud83d") as U+FFFD: they cannot be stored."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


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
        self.model: str | None = payload.get("model")
        self.request_id: str | None = None
        self.status_code: int | None = None  # set when the response headers arrive
        self.activity = time.monotonic()
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.done = False
        self.chunks = 0
        self._decoder = SSEDecoder()
        self._lock = threading.Lock()
        self._abort_reason: str | None = None
        self._finished = False
        self._response: httpx.Response | None = None
        self._netstream: Any = None
        self._cancel_timer: Callable[[], None] | None = None
        self._json_answer: dict[str, Any] | None = None
        self._first_chunk = b""  # bytes read to sniff an unlabelled body
        self._gen: Generator[StreamDelta, None, None] = self._run()

    def __iter__(self) -> Iterator[StreamDelta]:
        return self._gen

    def __next__(self) -> StreamDelta:
        return next(self._gen)

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def comments(self) -> int:
        """Comment lines (keep-alives) received so far."""
        return self._decoder.comments

    @property
    def aborted(self) -> bool:
        return self._abort_reason is not None

    def close(self) -> None:
        """Stop iterating and release the connection. Idempotent."""
        try:
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

    def _abort_error(self) -> ContinuumError:
        if self._abort_reason == "round":
            return RoundTimeoutError(
                f"The round at {self.url} ran longer than {self._client.timeouts.round:g} s (round timeout).",
                "The text so far is kept and the run continues with a new round; raise the round timeout "
                "in Settings for very long rounds.",
            )
        return CancelledError("The stream was stopped on request.")

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
            request = http.build_request(
                "POST", self.url, json=self._payload, timeout=timeout, extensions={"trace": self._trace}
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

    def _run(self) -> Generator[StreamDelta, None, None]:
        try:
            next_chunk = self._open()
            if self._json_answer is not None:
                yield from self._from_json(self._json_answer)
                return
            yield from self._read(next_chunk)
        except ContinuumError as exc:
            self._client.scrub(exc)
            raise
        finally:
            self._cleanup()

    def _read(self, next_chunk: Callable[[], bytes]) -> Iterator[StreamDelta]:
        feed = self._decoder.feed_data
        scan = scan_json
        monotonic = time.monotonic
        pending = self._first_chunk
        ended = False
        while not ended:
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
                ended = True
                events = self._decoder.close_data()
            else:
                self.activity = monotonic()
                events = feed(chunk)
            for event in events:
                if type(event) is bytes:
                    data = event
                else:
                    assert isinstance(event, SSEEvent)
                    data = event.data
                    if event.event is not None and event.event != "message":
                        if event.event == "error":
                            raise self._client.body_error(
                                parse_body(data), self.url, self.model, self.request_id
                            )
                        continue  # pings and other named events carry no completion
                if data[:1] != b"{":
                    stripped = data.strip()
                    if stripped == b"[DONE]":
                        self.done = True
                        if not ended:
                            self._drain(next_chunk)
                        if self.chunks or self.finish_reason is not None:
                            return
                        ended = True
                        break
                    if not stripped:
                        continue
                try:
                    obj = scan(data)
                except (ValueError, RecursionError) as exc:  # also invalid UTF-8, absurd nesting
                    raise self._malformed(data, exc) from exc
                if type(obj) is not dict:
                    raise self._malformed(data, None)
                self.chunks += 1
                if obj.get("error"):
                    raise self._client.body_error(obj, self.url, self.model, self.request_id)
                content = reasoning = ""
                finish = None
                choices = obj.get("choices")
                if choices:
                    first = choices[0] if type(choices) is list else None
                    if type(first) is not dict:
                        raise self._malformed(data, None)
                    delta = first.get("delta")
                    if type(delta) is dict:
                        content = delta.get("content") or ""
                        reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
                        if type(reasoning) is not str:
                            reasoning = ""
                    elif delta is None:
                        content = first.get("text") or ""
                    else:
                        raise self._malformed(data, None)
                    if type(content) is not str:
                        raise self._malformed(data, None)
                    if not (content + reasoning).isascii():
                        content, reasoning = _no_lone_surrogates(content), _no_lone_surrogates(reasoning)
                    finish = first.get("finish_reason") or None
                    if finish is not None:
                        finish = str(finish) if type(finish) is not str else finish
                        if finish == "error":  # a server error, not an end: DESIGN §6
                            raise self._client.body_error(
                                {"error": {"message": "the stream ended with finish_reason 'error'"}},
                                self.url,
                                self.model,
                                self.request_id,
                            )
                        self.finish_reason = finish
                usage = obj.get("usage")
                if usage and type(usage) is dict:
                    self.usage = parse_usage(usage)
                    yield StreamDelta(content, reasoning, finish, self.usage)
                elif content or reasoning or finish is not None:
                    yield StreamDelta(content, reasoning, finish)
        if self.finish_reason is None and not self.chunks and not self._decoder.comments:
            raise EmptyStreamError(
                f"The server at {self.url} answered 200 with an empty stream"
                + (" (only [DONE])" if self.done else "")
                + ": no chunk, no finish_reason, no error.",
                "Continuum asks once more without streaming to learn why.",
            )
        if self.finish_reason is None:
            raise StreamInterrupted(
                f"The stream from {self.url} ended after {self.chunks} chunks without [DONE] "
                "or a finish_reason.",
                "The text so far is kept; Continuum continues with a new round.",
            )

    def _from_json(self, body: dict[str, Any]) -> Iterator[StreamDelta]:
        """A complete (non-streamed) answer, as one delta."""
        choice = body["choices"][0] if isinstance(body["choices"][0], dict) else {}
        message = choice.get("message")
        if not isinstance(message, dict):
            message = {}
        content = _text(message.get("content")) or _text(choice.get("text"))
        reasoning = _text(message.get("reasoning_content")) or _text(message.get("reasoning"))
        finish = choice.get("finish_reason") or None
        self.finish_reason = finish
        usage = body.get("usage")
        if isinstance(usage, dict):
            self.usage = parse_usage(usage)
        self.chunks = 1
        yield StreamDelta(content, reasoning, finish, self.usage)

    def _malformed(self, data: bytes, exc: Exception | None) -> MalformedStreamError:
        snippet = data[:120].decode("utf-8", "replace")
        if isinstance(exc, UnicodeDecodeError):
            # Not decoded with replacement: U+FFFD in the answer would be sent back as the next
            # round's prefill, and the model would continue from text it never wrote.
            bad = data[exc.start : exc.end].hex(" ")
            return MalformedStreamError(
                f"The stream from {self.url} sent bytes that are not UTF-8 (0x{bad} at byte {exc.start} "
                f"of a chunk) after {self.chunks} good chunks: '{snippet}'",
                "The text so far is kept. JSON must be UTF-8: if this repeats, something between you and "
                "the server (a proxy) is re-encoding the stream; check the base URL.",
                data=data[:200],
            )
        return MalformedStreamError(
            f"The stream from {self.url} sent a chunk that is not a JSON object after "
            f"{self.chunks} good chunks: '{snippet}'",
            "Usually a transient server fault. The text so far is kept: resume the run to continue from it.",
            data=data[:200],
        )

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
