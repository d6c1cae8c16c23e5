"""Which process owns a running run, and whether that process still exists.

A run being written is stamped with its owner: host name, pid and (on Linux)
the process start time from ``/proc/<pid>/stat`` with the kernel's boot id
(``ticks@boot-id``), so a pid reused by an unrelated process after a crash, or
after a reboot (when boot-time services get the same pids and start ticks), is
not mistaken for the owner. A zombie (killed, not yet reaped) counts as dead.
Inside this process, a run counts as owned only while a Recorder has claimed
it (``claim_run`` / ``release_run``), so a run left behind by a crashed worker
thread is detected too.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    started: str | None  # /proc start time in clock ticks, None where unavailable


def _proc_stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            raw = fh.read()
    except OSError:
        return None
    # The command name (field 2) is parenthesised and may hold spaces: split after it.
    _, _, rest = raw.rpartition(")")
    return rest.split()  # rest[0] is field 3 (state), rest[19] is field 22 (starttime)


@lru_cache(maxsize=1)
def boot_id() -> str | None:
    """This boot of the kernel (Linux), None where unknown."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


def process_started(pid: int) -> str | None:
    """The process's start time as ``ticks@boot-id`` (plain ``ticks`` without a boot id)."""
    fields = _proc_stat(pid)
    if not fields or len(fields) <= 19:
        return None
    boot = boot_id()
    return f"{fields[19]}@{boot}" if boot else fields[19]


@lru_cache(maxsize=1)
def _host() -> str:
    return socket.gethostname()


def current_owner() -> Owner:
    pid = os.getpid()
    return Owner(host=_host(), pid=pid, started=process_started(pid))


def is_alive(owner: Owner) -> bool | None:
    """True/False for an owner on this host; None when it cannot be known (another host)."""
    if owner.host != _host():
        return None
    ticks, _, boot = (owner.started or "").partition("@")
    if boot and boot != boot_id():
        return False  # stamped before the last reboot
    fields = _proc_stat(owner.pid)
    if fields is not None:
        if fields[0] in ("Z", "X"):
            return False
        return not ticks or len(fields) <= 19 or fields[19] == ticks
    if os.path.isdir("/proc/self"):
        return False  # /proc exists but not this pid: gone
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return None
    return True


# Run ids being recorded by a live Recorder in this process: never "interrupted".
_active_lock = threading.Lock()
_active_runs: set[str] = set()


def claim_run(run_id: str) -> None:
    with _active_lock:
        _active_runs.add(run_id)


def release_run(run_id: str) -> None:
    with _active_lock:
        _active_runs.discard(run_id)


def active_runs() -> set[str]:
    with _active_lock:
        return set(_active_runs)


OWNER_COLUMNS = "id, owner_host, owner_pid, owner_started, heartbeat_at, updated_at"


def owner_gone(row: sqlite3.Row, now: float, stale_after: float) -> bool:
    """Whether the process recording a "running" row is gone (see Store.mark_interrupted)."""
    owner = Owner(row["owner_host"] or "", row["owner_pid"] or 0, row["owner_started"])
    if owner == current_owner():
        return row["id"] not in active_runs()
    alive = is_alive(owner) if row["owner_pid"] is not None else None
    if alive is None:
        return bool(now - (row["heartbeat_at"] or row["updated_at"]) > stale_after)
    return not alive
