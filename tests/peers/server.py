"""Start a real third-party OpenAI-compatible server (llama-cpp-python) on the tiny model.

``tests/peers/setup.sh`` installs the server into ``.venv-peers`` and writes the model;
this module only starts it, from the main venv, with the standard library and httpx::

    with peer_server() as peer:
        httpx.post(peer.base_url + "/completions", json={"model": peer.model, ...})

or from a shell: ``.venv/bin/python tests/peers/server.py`` (prints the URL, Ctrl+C stops).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("CONTINUUM_PEERS_VENV", REPO / ".venv-peers"))
PYTHON = VENV / "bin" / "python"
MODEL = Path(os.environ.get("CONTINUUM_PEERS_MODEL", VENV / "model" / "tiny.gguf"))
MODEL_NAME = "continuum-tiny"
N_CTX = 2048


class PeerUnavailable(RuntimeError):
    """The peer venv or model is missing (run tests/peers/setup.sh)."""


@dataclass
class Peer:
    base_url: str  # http://127.0.0.1:PORT/v1
    model: str
    n_ctx: int
    log_path: Path
    process: subprocess.Popen[bytes]

    def log(self) -> str:
        """Everything the server printed so far (stdout and stderr)."""
        return self.log_path.read_text(errors="replace")


def available() -> str | None:
    """None when the server can be started, else why not."""
    if not PYTHON.exists():
        return f"{PYTHON} is missing: run tests/peers/setup.sh"
    if not MODEL.exists():
        return f"{MODEL} is missing: run tests/peers/setup.sh"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def command(port: int, n_ctx: int = N_CTX, extra: list[str] | None = None) -> list[str]:
    return [
        str(PYTHON), "-m", "llama_cpp.server",
        "--model", str(MODEL),
        "--model_alias", MODEL_NAME,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(n_ctx),
        "--n_threads", "1",
        "--n_threads_batch", "1",
        "--seed", "0",
        "--chat_format", "chat_template.default",  # the ChatML template inside the GGUF
        *(extra or []),
    ]  # fmt: skip


@contextlib.contextmanager
def peer_server(
    n_ctx: int = N_CTX, extra: list[str] | None = None, timeout: float = 60.0, log_dir: str | None = None
) -> Iterator[Peer]:
    """Start the server on a free loopback port, wait for GET /v1/models, stop it at the end."""
    why = available()
    if why:
        raise PeerUnavailable(why)
    port = free_port()
    log_path = Path(tempfile.mkstemp(prefix="peer-llama-", suffix=".log", dir=log_dir)[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "HF_"))}
    env.update(HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command(port, n_ctx, extra),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(VENV),
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}/v1"
    peer = Peer(base, MODEL_NAME, n_ctx, log_path, proc)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the peer server exited with {proc.returncode}:\n{peer.log()[-4000:]}")
            try:
                r = httpx.get(base + "/models", timeout=2.0)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the peer server did not answer in {timeout:.0f} s:\n{peer.log()[-4000:]}"
                )
            time.sleep(0.2)
        yield peer
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)  # so `kill` stops the server too
    with peer_server() as p:
        print(f"{p.base_url}  model={p.model}  n_ctx={p.n_ctx}  log={p.log_path}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while p.process.poll() is None:
                time.sleep(0.5)
    sys.exit(0)
