"""Serving the app with uvicorn: in the foreground (:func:`serve_forever`, the command line) or from
a daemon thread (:func:`start_serve`, for tests and benchmarks, like ``start_demo_server``).

A server reachable beyond loopback needs a token (:func:`check_exposure`): the upstream key
stays on the server, so an open endpoint would spend it for anyone. It then also runs in the
guard's shared mode (:func:`core.wire.guard.set_shared`): the upstream the operator chose is
trusted (:func:`~core.wire.guard.trust_origin`), and the allow-list
(``CONTINUUM_ALLOWED_BASE_URLS``) applies as in the shared app.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Mapping

import uvicorn
from starlette.applications import Starlette

from core.serve.app import ServeConfig, Service, create_app
from core.services.access import is_exposed
from core.wire.errors import ConfigError, ContinuumError
from core.wire.guard import check_base_url, set_shared, trust_origin

__all__ = ["TOKEN_ENV", "RunningServe", "check_exposure", "serve_forever", "start_serve"]

TOKEN_ENV = "CONTINUUM_SERVE_TOKEN"
GRACE_S = 5  # seconds open streams get to finish when the server stops


def check_exposure(host: str, config: ServeConfig, environ: Mapping[str, str] | None = None) -> None:
    """Refuse to listen beyond loopback without a token; set up the URL guard for where it listens."""
    exposed = is_exposed(host, environ)
    if exposed and not config.token:
        raise ConfigError(
            f"Listening on {host} lets other machines spend the upstream key; set {TOKEN_ENV}.",
            hint=f"export {TOKEN_ENV}=<a long random string> (clients send it as their API key), "
            "or listen on 127.0.0.1",
        )
    if exposed:  # on loopback: no shared mode (the allow-list, when set, holds through the client anyway)
        base_url = config.defaults.base_url
        set_shared(True)
        check_base_url(base_url)  # the allow-list, when set, holds for the operator's upstream too
        trust_origin(base_url)


def _config(app: Starlette, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=GRACE_S,
        lifespan="on",
    )


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (0: any free port), or a ContinuumError saying why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY on accepted connections only when the listening
    # socket says TCP (with proto 0 every small write waits for the client's delayed ACK: +40 ms)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ContinuumError(
            f"Cannot listen on {host}:{port}: {exc.strerror or exc}.",
            "choose another --port (or stop what listens there)",
        ) from exc
    return sock


def serve_forever(
    config: ServeConfig,
    host: str = "127.0.0.1",
    port: int = 8400,
    *,
    announce: Callable[[], None] | None = None,
) -> None:
    """Serve until Ctrl+C or SIGTERM (uvicorn handles both); ``announce`` is called once the app
    is made (the history is open) and the port is taken."""
    check_exposure(host, config)
    app = create_app(config)
    sock = listen(host, port)
    try:
        if announce is not None:
            announce()
        uvicorn.Server(_config(app, host, port)).run(sockets=[sock])
    finally:
        sock.close()


class RunningServe:
    """A server started by :func:`start_serve`: ``base_url`` ends in ``/v1``; ``stop()`` or ``with``."""

    def __init__(self, config: ServeConfig, host: str, port: int) -> None:
        self.app = create_app(config)
        self.service: Service = self.app.state.service
        self.sock = listen(host, port)
        self.host = host
        self.port: int = self.sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        self.root_url = f"http://{shown}:{self.port}"
        self.base_url = self.root_url + "/v1"
        self.server = uvicorn.Server(_config(self.app, host, self.port))
        self._thread = threading.Thread(target=self._run, name="continuum-serve", daemon=True)
        self._thread.start()
        while not self.server.started and self._thread.is_alive():
            self._thread.join(0.01)
        if not self.server.started:
            raise RuntimeError("the endpoint did not start (see the log)")

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(GRACE_S + 5)
        self.sock.close()

    def __enter__(self) -> RunningServe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_serve(config: ServeConfig, host: str = "127.0.0.1", port: int = 0) -> RunningServe:
    """Serve ``config`` from a daemon thread (port 0: any free port); returns once it listens."""
    check_exposure(host, config)
    return RunningServe(config, host, port)
