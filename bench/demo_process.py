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
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "core.demo", "--port", str(port), "--rate", f"{rate:g}", *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{base}/models", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"the demo server did not start: {' '.join(cmd)}")
        time.sleep(0.05)
