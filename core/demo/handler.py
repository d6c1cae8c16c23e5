"""The demo model's HTTP handler: routing, auth, faults, JSON replies and SSE streams.

stdlib ``ThreadingHTTPServer`` (daemon threads), HTTP/1.1 with keep-alive,
``Content-Length`` for JSON, ``Transfer-Encoding: chunked`` for SSE. A client
going away mid-reply is not an error: it is swallowed without a traceback.
"""

from __future__ import annotations

import itertools
import json
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from core.demo.behaviours import BehaviourError, Behaviours, parse_segment, split_path
from core.demo.chaos import STATUS_KINDS, ChaosCut, Fault, Ledger, StreamFault, rate_limited, server_failed
from core.demo.chunks import completion_body
from core.demo.errors import DemoError
from core.demo.models import CREATED, MODELS
from core.demo.pacer import Pacer, PacerStopped
from core.demo.replay import Replay
from core.demo.replies import Plan, Rendered, plan_chat, plan_completion, render
from core.demo.streaming import build_events, drop_point, keep_alive, send_events

MAX_BODY = 64 * 1024 * 1024
SERVER_FAULTS = (503, 500, 502)  # what fail5xx answers, in turn


class _Stopped(Exception):
    """The server is stopping: abandon the response."""


class DemoHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver listens with a backlog of 5: a batch of 200 clients connecting at once
    # would see resets and multi-second SYN retries.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], defaults: Behaviours, verbose: bool) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.defaults = defaults
        self.verbose = verbose
        self.stopping = threading.Event()
        self.counters: dict[str, int] = {}
        self.ids = itertools.count(1)
        self.lock = threading.Lock()
        self.connections: set[socket.socket] = set()
        self.active = 0
        self.pacer = Pacer()
        self.chaos = Ledger()  # chaos draws and every fault injected, by prefix and kind
        self.replay: Replay | None = None  # a recorded run served as a model (core.demo.replay)
        super().__init__(address, DemoHandler)

    def next_fault_count(self, key: str) -> int:
        with self.lock:
            self.counters[key] = count = self.counters.get(key, 0) + 1
            return count

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # a client went away: nothing to report
        super().handle_error(request, client_address)


class DemoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ContinuumDemo/1.0"
    server: DemoHTTPServer
    _segment = ""
    _fault: Fault | None = None  # this request's chaos fault (see core.demo.chaos)
    _received = 0.0  # monotonic time the request's body was read

    # ------------------------------------------------------------ plumbing

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.lock:
            self.server.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def handle(self) -> None:
        try:
            super().handle()
        except (OSError, _Stopped):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            sys.stderr.write(f"demo {self.address_string()} {format % args}\n")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            raise DemoError(400, "Content-Length is not a number") from None
        if length > MAX_BODY:
            self.close_connection = True
            raise DemoError(413, f"request body too large ({length} bytes)")
        return self.rfile.read(length) if length > 0 else b""

    def _send(
        self, status: int, content_type: str, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, data: Any, headers: dict[str, str] | None = None) -> None:
        self._send(200, "application/json", json.dumps(data, ensure_ascii=False).encode(), headers)

    def _send_error(self, error: DemoError, headers: dict[str, str]) -> None:
        content_type, body = error.content()
        self._send(error.status, content_type, body, {**headers, **error.headers})

    def _wait(self, seconds: float) -> None:
        if seconds > 0 and self.server.stopping.wait(seconds):
            raise _Stopped

    # ------------------------------------------------------------ routing

    def _dispatch(self, method: str) -> None:
        with self.server.lock:
            self.server.active += 1
        request_id = f"req-demo-{next(self.server.ids):06d}"
        headers = {"x-request-id": request_id}
        headers_sent = False
        try:
            body = self._read_body()
            self._received = time.monotonic()
            url = urlsplit(self.path)
            segment, path = split_path(url.path)
            self._segment = segment
            self._fault = None
            try:
                behaviours = self.server.defaults.with_values(parse_segment(segment))
            except BehaviourError as exc:
                raise DemoError(400, str(exc)) from None
            route = None
            for prefix in ("/v1/openai", "/v1"):
                if path == prefix or path.startswith(prefix + "/"):
                    route = path[len(prefix) :].rstrip("/")
                    break
            if route is None:
                if path in ("/", "/health") and method == "GET":
                    self._send_json({"status": "ok", "demo": True}, headers)
                    return
                if path == "/stats" and method == "GET":  # faults injected: /stats or /x/<prefix>/stats
                    self._send_json(self.server.chaos.stats(segment if segment else None), headers)
                    return
                raise DemoError(404, f"Unknown path {path}: the demo model serves /v1/...", code="not_found")
            self._check_auth(behaviours)
            if route == "/models" and method == "GET":
                with_meta = "with_meta" in parse_qs(url.query).get("filter", [])
                self._send_json(models_list(behaviours, with_meta, self.server.replay), headers)
            elif route.startswith("/models/") and method == "GET":
                name = route[len("/models/") :]
                entries = {e["id"]: e for e in models_list(behaviours, True, self.server.replay)["data"]}
                if name not in entries:
                    raise DemoError(404, f"The model `{name}` does not exist", code="model_not_found")
                self._send_json(entries[name], headers)
            elif route in ("/chat/completions", "/completions"):
                if method != "POST":
                    raise DemoError(405, f"{route} needs POST", code="method_not_allowed")
                number = self.server.chaos.count(segment)
                self._check_faults(segment, behaviours)
                request = parse_json(body)
                kind = "chat" if route == "/chat/completions" else "text"
                replay = self.server.replay
                if replay is not None and replay.serves(request):
                    plan, out, behaviours = replay.answer(kind, request, behaviours, headers)
                else:
                    plan = (plan_chat if kind == "chat" else plan_completion)(request, behaviours)
                    out = render(plan)
                self._draw_chaos(segment, number, behaviours, request.get("stream") is True)
                response_id = ("chatcmpl-" if kind == "chat" else "cmpl-") + request_id[4:]
                if request.get("stream") is True:
                    headers_sent = True
                    self._stream(kind, response_id, plan, out, request, behaviours, headers)
                else:
                    self._respond(kind, response_id, plan, out, behaviours, headers)
            else:
                raise DemoError(404, f"Unknown endpoint {method} {path}", code="not_found")
        except DemoError as error:
            self._send_error(error, headers)
        except (OSError, _Stopped):
            self.close_connection = True
        except Exception:  # noqa: BLE001 - a bug must not kill the connection silently
            traceback.print_exc()
            self.close_connection = True
            if not headers_sent:
                self._send_error(
                    DemoError(500, "demo model bug (see server log)", kind="server_error"), headers
                )
        finally:
            with self.server.lock:
                self.server.active -= 1

    def _check_auth(self, b: Behaviours) -> None:
        if b.auth != "key":
            return
        header = self.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if token == "demo-key":
            return
        if token == "demo-empty":
            raise DemoError(
                402,
                "Insufficient balance: this demo key has no credit left. Use the key demo-key.",
                kind="insufficient_quota",
                code="insufficient_quota",
            )
        if not token:
            message = "Missing API key: send the header 'Authorization: Bearer demo-key'."
        else:
            message = "Invalid API key. The demo model accepts the key demo-key."
        raise DemoError(401, message, code="invalid_api_key")

    def _check_faults(self, key: str, b: Behaviours) -> None:
        if not (b.fail429 or b.fail5xx):
            return
        count = self.server.next_fault_count(key)
        if count <= b.fail429:
            self.server.chaos.record(key, "429")
            raise rate_limited(b.retry_after, f"demo fault {count} of {b.fail429}")
        if count <= b.fail429 + b.fail5xx:
            status = SERVER_FAULTS[(count - b.fail429 - 1) % len(SERVER_FAULTS)]
            self.server.chaos.record(key, str(status))
            raise server_failed(status)

    def _draw_chaos(self, key: str, number: int, b: Behaviours, streamed: bool) -> None:
        """Draw this request's chaos fault; a status fault is answered at once."""
        if b.chaos <= 0:
            return
        fault = self.server.chaos.draw(
            key,
            number,
            p=b.chaos,
            seed=b.chaos_seed,
            kinds=b.chaos_kinds,
            limit=b.chaos_max,
            streamed=streamed,
        )
        if fault is not None and fault.kind in STATUS_KINDS:
            raise fault.error(b.retry_after)
        self._fault = fault

    # ------------------------------------------------------------ responses

    def _respond(
        self, kind: str, response_id: str, plan: Plan, out: Rendered, b: Behaviours, headers: dict[str, str]
    ) -> None:
        self._wait(b.stall + b.silent)
        if b.rate > 0:
            self._wait(out.completion_tokens / b.rate)
        self._send_json(completion_body(kind, response_id, plan, out, b.usage != "absent"), headers)

    def _stream(
        self,
        kind: str,
        response_id: str,
        plan: Plan,
        out: Rendered,
        request: dict[str, Any],
        b: Behaviours,
        headers: dict[str, str],
    ) -> None:
        key = self._segment

        def request_number() -> int:
            return self.server.next_fault_count("drop:" + key)

        drop = drop_point(b, out.completion_tokens, request_number, key)
        stream = build_events(kind, response_id, plan, out, request, b, drop)
        if drop:
            self.server.chaos.record(key, "drop")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in headers.items():
            self.send_header(name, value)
        if stream.dropped:
            self.send_header("Connection", "close")
        self.end_headers()
        wfile = self.wfile

        def write(data: bytes) -> None:
            if data:
                wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")

        if b.stall > 0:
            keep_alive(b.stall, write, self._wait)
        self._wait(b.silent)
        fault = self._fault
        if fault is not None:  # a chaos stream fault: this thread writes (and paces) it
            faulty = StreamFault(
                fault,
                stream.events,
                self.server.chaos,
                wfile.write,
                self._wait,
                stall=b.chaos_stall,
                drip=b.chaos_drip,
                since=self._received,
            )
            try:
                send_events(stream, b.rate, faulty, self._wait)
            except ChaosCut:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
        elif b.rate > 0:  # throttled: the server's pacer thread writes it (see core.demo.pacer)
            try:
                self.server.pacer.send(self.connection, stream, b.rate)
            except PacerStopped:
                raise _Stopped from None
        else:
            send_events(stream, b.rate, write, self._wait)
        if stream.dropped:
            self.close_connection = True  # no terminating chunk: the client sees a broken stream
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            wfile.write(b"0\r\n\r\n")


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DemoError(400, f"The request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DemoError(422, "The request body must be a JSON object")
    return data


def model_entry(name: str, b: Behaviours, with_meta: bool) -> dict[str, Any]:
    model = MODELS[name]
    entry: dict[str, Any] = {"id": name, "object": "model", "created": CREATED, "owned_by": "continuum-demo"}
    if with_meta:
        entry["metadata"] = {
            "description": "Offline demo model: deterministic placeholder text, not a real LLM.",
            "context_length": model.context_length,
            "max_tokens": b.cap,
            "pricing": {"input_tokens": model.input_price, "output_tokens": model.output_price},
            "tags": ["demo", "reasoning"] if model.reasoner else ["demo"],
        }
    return entry


def models_list(b: Behaviours, with_meta: bool, replay: Replay | None = None) -> dict[str, Any]:
    data = [model_entry(name, b, with_meta) for name in MODELS]
    return {"object": "list", "data": (replay.entries(with_meta) if replay else []) + data}
