"""A loopback HTTP relay in front of the demo model that notes which key came with which request.

The isolation test and ``bench/bench_load.py`` point each browser session at
its own path prefix (``…/x/k=<session>/v1``) through the relay, and then check
that every request under a session's prefix carried that session's key and no
other. The keys are kept in memory for that comparison only; nothing is
printed or written.

Each connection carries one request: the relay asks the upstream server to
close after it (``Connection: close``) and then copies bytes both ways until
either side closes.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    key: str | None  # the bearer token, None without an Authorization header


class KeyRelay:
    """``KeyRelay(upstream_base_url)``; use as a context manager; ``base_url`` ends in ``/v1``."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.port = int(self._sock.getsockname()[1])
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._lock = threading.Lock()
        self._seen: list[Seen] = []
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="key-relay", daemon=True)

    def __enter__(self) -> KeyRelay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed = True
        self._sock.close()

    @property
    def seen(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    def keys_by_prefix(self, marker: str) -> set[str | None]:
        """The keys of every request whose path contains ``marker`` (e.g. ``k=session-3,``)."""
        return {s.key for s in self.seen if marker in s.path}

    # ------------------------------------------------------------ plumbing

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            head, rest = self._read_head(client)
            if head is None:
                return
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = [*lines[0].split(" "), "", ""][:3]
            key = None
            kept = [lines[0]]
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "authorization":
                    scheme, _, token = value.strip().partition(" ")
                    key = token if scheme.lower() == "bearer" else value.strip()
                if name.strip().lower() in ("connection", "keep-alive"):
                    continue
                kept.append(line)
            kept.append("Connection: close")
            with self._lock:
                self._seen.append(Seen(method, path, key))
            upstream = socket.create_connection(self._upstream, timeout=None)
            upstream.sendall("\r\n".join(kept).encode("latin-1") + b"\r\n\r\n" + rest)
            pump = threading.Thread(target=self._copy, args=(client, upstream), daemon=True)
            pump.start()
            self._copy(upstream, client)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    try:
                        sock.close()
                    except OSError:
                        pass

    @staticmethod
    def _read_head(client: socket.socket) -> tuple[bytes | None, bytes]:
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = client.recv(65536)
            if not data:
                return None, b""
            buf += data
        head, _, rest = buf.partition(b"\r\n\r\n")
        return head, rest

    @staticmethod
    def _copy(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
