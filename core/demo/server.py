"""Running the demo model: ``start_demo_server`` (a daemon thread) and the command line ``main``.

``python -m core demo`` (wired by the lead) and ``python -m core.demo`` call :func:`main`.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.demo.behaviours import KEYS, Behaviours
from core.demo.handler import DemoHTTPServer
from core.demo.recording import Recording
from core.demo.replay import Replay
from core.wire.guard import trust_origin, untrust_origin


class DemoServer:
    """A running demo model. ``base_url`` ends in ``/v1``; ``stop()`` or use as a context manager."""

    def __init__(
        self, host: str, port: int, defaults: Behaviours, verbose: bool = False, replay: Replay | None = None
    ) -> None:
        self.httpd = DemoHTTPServer((host, port), defaults, verbose)
        self.httpd.replay = self.replay = replay  # also serves a recorded run (core.demo.replay)
        self.host = "127.0.0.1" if host in ("", "0.0.0.0") else host
        self.port: int = self.httpd.server_address[1]
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.root_url = f"http://{shown}:{self.port}"
        self.base_url = self.root_url + "/v1"
        self.defaults = defaults
        trust_origin(self.root_url)  # core.services.access: this process's own demo is always reachable
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="demo-model", daemon=True
        )
        self._thread.start()

    @property
    def active_requests(self) -> int:
        """Requests being answered right now (streams included)."""
        return self.httpd.active

    def fault_counts(self, prefix: str | None = None) -> dict[str, Any]:
        """Faults injected (chaos and fixed faults), as ``GET /stats`` (or ``/x/<prefix>/stats``) says."""
        return self.httpd.chaos.stats(prefix)

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C interrupts)."""
        while self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self) -> None:
        """Stop serving, end open streams and close every connection."""
        if self.httpd.stopping.is_set():
            return
        self.httpd.stopping.set()
        self.httpd.pacer.stop()
        self.httpd.shutdown()
        with self.httpd.lock:
            connections = list(self.httpd.connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.httpd.server_close()
        untrust_origin(self.root_url)

    def __enter__(self) -> DemoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_demo_server(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    rate: float = 0.0,
    verbose: bool = False,
    replay: Replay | Recording | dict[str, Any] | str | Path | None = None,
    speed: float = 1.0,
    **defaults: Any,
) -> DemoServer:
    """Start the demo model in a daemon thread (port 0 picks a free port).

    ``defaults`` are behaviour values for every request (see ``core.demo``);
    unknown keys or bad values raise ``ValueError``. ``replay``: a transcript (the
    JSON download of a run, as a dict or a file) also served as the model ``replay``
    at ``speed`` times its recorded pace (``core.demo.replay``; a malformed one
    raises :class:`~core.demo.recording.ReplayError`, a ``ValueError``).
    """
    unknown = sorted(set(defaults) - set(KEYS))
    if unknown:
        raise ValueError(f"unknown demo behaviour(s) {', '.join(unknown)}; known: {', '.join(KEYS)}")
    behaviours = Behaviours().with_values({**defaults, "rate": rate})
    served = Replay.of(replay, speed) if replay is not None else None
    return DemoServer(host, port, behaviours, verbose, served)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core demo",
        description="Serve the offline demo model (OpenAI-compatible) until Ctrl-C.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--rate", type=float, default=40.0, help="tokens per second per stream (0 = unthrottled)"
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    replay = parser.add_argument_group("replay (also serve a recorded run as the model `replay`)")
    replay.add_argument("--replay", metavar="FILE", help="a run's JSON transcript (the JSON download)")
    replay.add_argument(
        "--replay-run", metavar="RUN_ID", help="a run from the history (python -m core demo only)"
    )
    replay.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="replay pace: 1 = as recorded, 2 = twice as fast, 0 = no waiting",
    )
    group = parser.add_argument_group("behaviours (defaults for every request; see core.demo)")
    for key in KEYS:
        if key == "rate":
            continue
        flags = [f"--{key}"] + ([f"--{key.replace('_', '-')}"] if "_" in key else [])
        group.add_argument(*flags, dest=key, default=None, metavar="VALUE")
    return parser


def main(argv: list[str] | None = None, *, load_run: Callable[[str], dict[str, Any]] | None = None) -> int:
    """Command line: ``--host --port --rate --verbose``, ``--<behaviour> VALUE`` and the replay flags.

    ``load_run``: run id → transcript dict, for ``--replay-run`` (the command line's
    ``demo`` passes one that reads the history; raises ``ValueError`` with the reason).
    """
    args = build_parser().parse_args(argv)
    defaults = {key: getattr(args, key) for key in KEYS if key != "rate" and getattr(args, key) is not None}
    try:
        replay: dict[str, Any] | str | None = args.replay
        if args.replay and args.replay_run:
            raise ValueError("give --replay FILE or --replay-run RUN_ID, not both")
        if args.replay_run:
            if load_run is None:
                raise ValueError("--replay-run reads the run history: use python -m core demo --replay-run")
            replay = load_run(args.replay_run)
        server = start_demo_server(
            args.host,
            args.port,
            rate=args.rate,
            verbose=args.verbose,
            replay=replay,
            speed=args.speed,
            **defaults,
        )
    except (ValueError, OSError) as exc:
        print(f"demo model: cannot start: {exc}", file=sys.stderr)
        return 2
    print(f"Demo model listening on {server.base_url}", flush=True)
    if server.replay is not None:
        print(f"Demo model {server.replay.describe()}", flush=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
