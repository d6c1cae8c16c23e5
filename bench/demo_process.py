"""The demo model in a process of its own, for the benchmarks (so its CPU is not the contender's)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_demo_process(rate: float = 0.0, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m core.demo`` on a free loopback port at ``rate`` tokens/s (``extra``: more of its
    arguments); (process, base URL) once it answers."""
    port = free_port()
    cmd = [sys.executable, "-m", "core.demo", "--port", str(port), "--rate", f"{rate:g}", *extra]
    base = f"http://127.0.0.1:{port}/v1"
    return start_process(cmd, f"{base}/models", "the demo server", timeout=20), base


def start_process(
    cmd: list[str],
    ready_url: str,
    what: str,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 30,
    quiet: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` (with ``PYTHONPATH`` set to the repository, plus ``env``) and return it once
    ``ready_url`` answers 200; exit naming ``what`` if it dies or takes longer than ``timeout`` s.
    Its output is dropped; its error output too when ``quiet``."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL if quiet else None,
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(ready_url, timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"{what} did not start: {' '.join(cmd)}")
        time.sleep(0.05)
