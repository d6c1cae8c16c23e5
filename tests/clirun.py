"""The command line as a real process: run it, start it in the background, read the demo's counters.

- :func:`cli` runs ``python -m core ARGS`` to the end (``prefix`` wraps the command,
  e.g. to run it in another mount namespace).
- :func:`start` starts it in the background (its own process, signals sent by the test).
- :func:`requests_seen` is how many chat and completion requests a demo behaviour URL
  received (the demo's ``/x/<prefix>/stats``): 0 means nothing was sent, nothing billed.
- :func:`wait_for` polls a condition on real state (the history, a file), never the clock.
- :func:`hold_lock` is another real process holding a SQLite write lock on a database.
- :func:`read_only` makes a folder read-only for the commands run with the prefix it returns.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "core", *args]


def cli(
    *args: str, env: dict[str, str], prefix: Sequence[str] = (), stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, *command(*args)],
        cwd=REPO,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def start(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command(*args), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def requests_seen(base_url: str) -> int:
    """Chat and completion requests the demo received under this behaviour URL's prefix."""
    root = base_url.removesuffix("/").removesuffix("/v1")
    return int(httpx.get(f"{root}/stats", timeout=10).json()["requests"])


def wait_for(
    condition: Callable[[], object], what: str, proc: subprocess.Popen[str], timeout: float = 60
) -> None:
    """Poll ``condition`` (real state) until it holds; fail if ``proc`` ends first or it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(
                f"the process ended (exit {proc.returncode}) before {what}: {proc.stderr and proc.stderr.read()}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {what}")
        time.sleep(0.05)  # polling state, not waiting for a result


HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
if sys.argv[2] != "wal":
    conn.execute("PRAGMA journal_mode = " + sys.argv[2])
conn.execute("BEGIN EXCLUSIVE")
conn.execute("UPDATE runs SET title = title")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


@contextlib.contextmanager
def hold_lock(db: Path, journal_mode: str = "wal") -> Iterator[None]:
    """Another process holds ``BEGIN EXCLUSIVE`` (with a pending write) on ``db`` until the block ends.

    ``journal_mode`` other than "wal" switches the file to that rollback journal first, where
    an exclusive lock keeps readers out too.
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db), journal_mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield
    finally:
        proc.communicate(timeout=30)


def read_only(folder: Path) -> list[str]:
    """Make ``folder`` read-only; returns the command prefix under which it is so.

    As another user, ``chmod 555`` does it (EACCES; undo it with ``chmod 755``). Root
    is not stopped by permissions, so as root the command runs in its own mount
    namespace where the folder is bind-mounted read-only (``unshare -m``): the kernel
    refuses every write there, root's too (EROFS), and nothing changes outside. Skips
    the test where neither is possible.
    """
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return []
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    prefix = ["unshare", "-m", "sh", "-c", script, str(folder)]
    if shutil.which("unshare") is None or subprocess.run([*prefix, "true"], capture_output=True).returncode:
        pytest.skip("root cannot make a read-only folder here (no unshare or mount in this container)")
    return prefix
