"""Small real servers on 127.0.0.1 for network-failure tests (not the demo model).

- :class:`ScriptedServer`: an HTTP (or HTTPS) server answering the n-th request
  with the n-th step of a script (the last step repeats). A step writes raw
  bytes, so it can send what no well-behaved server would: an HTML page with
  status 200, bytes that are not UTF-8, a redirect to itself, half a stream
  followed by silence.
- :func:`full_backlog_port`: a port whose listen queue is full, so a new
  connection's SYN is dropped and ``connect()`` waits for its timeout.
- :func:`refused_port`: a port nobody listens on.
- :func:`self_signed_cert`: a certificate for 127.0.0.1 made with ``openssl``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Step = Callable[[BaseHTTPRequestHandler, threading.Event], None]


def chunk(content: str = "", finish: str | None = None) -> bytes:
    delta = {"content": content} if content else {}
    body = {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def raw(status: int, body: bytes = b"", content_type: str | None = "text/plain", **headers: str) -> Step:
    """A whole response: status line, headers (``Connection: close``), body."""
    reason = {200: "OK", 302: "Found", 502: "Bad Gateway"}.get(status, "Status")
    head = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", "Connection: close"]
    if content_type:
        head.append(f"Content-Type: {content_type}")
    head += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    data = ("\r\n".join(head) + "\r\n\r\n").encode() + body

    def step(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        handler.wfile.write(data)

    return step


def bytes_only(data: bytes) -> Step:
    """``data`` as the whole answer, not even a status line (another protocol on that port)."""

    def step(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        handler.wfile.write(data)

    return step


def sse(*parts: bytes, then_silent: bool = False) -> Step:
    """An event stream of ``parts`` (closed after them, or left open and silent until the server stops)."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"

    def step(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        handler.wfile.write(head + b"".join(parts))
        handler.wfile.flush()
        if then_silent:
            stop.wait(60)

    return step


def answer(*texts: str, finish: str = "stop") -> Step:
    """A well-formed stream: one chunk per text, a finish chunk, [DONE]."""
    return sse(*(chunk(t) for t in texts), chunk(finish=finish), b"data: [DONE]\n\n")


def redirect_to_itself() -> Step:
    def step(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        raw(302, Location=handler.path)(handler, stop)

    return step


def silent() -> Step:
    """Read the request, answer nothing until the server stops."""

    def step(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        stop.wait(60)

    return step


class ScriptedServer:
    """``with ScriptedServer(step1, step2, ...) as server: server.base_url`` (``tls``: an SSLContext)."""

    def __init__(self, *script: Step, tls: ssl.SSLContext | None = None) -> None:
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []
        self.stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.serve(self, json.loads(body) if body else None)

            def do_GET(self) -> None:
                outer.serve(self, None)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def serve(self, handler: BaseHTTPRequestHandler, body: Any) -> None:
        self.requests.append({"path": handler.path, "body": body})
        step = self.script[min(len(self.requests), len(self.script)) - 1]
        step(handler, self.stop)
        handler.close_connection = True

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving and close the listening socket: a later connection is refused."""
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def refused_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def full_backlog_port() -> Iterator[int]:
    """A port that listens but never completes a new connection.

    The socket listens with a backlog of 0 and never calls ``accept()``; filler
    connections fill its accept queue, after which the kernel drops every new
    SYN, so a client's ``connect()`` blocks until its own connect timeout. The
    fillers are added until one of them cannot connect within 0.2 s.
    """
    fillers: list[socket.socket] = []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = int(server.getsockname()[1])
        try:
            for _ in range(64):
                filler = socket.socket()
                filler.settimeout(0.2)
                fillers.append(filler)
                try:
                    filler.connect(("127.0.0.1", port))
                except TimeoutError:
                    break
            else:
                raise RuntimeError("the listen queue never filled up")
            yield port
        finally:
            for filler in fillers:
                filler.close()


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) for IP 127.0.0.1, self-signed, made by the ``openssl`` command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl is not installed")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
