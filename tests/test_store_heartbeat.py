"""Runs across hosts: an owner on another host is alive while its heartbeat is fresh.

On both databases a run stamped by another host is judged by its heartbeat; on PostgreSQL a
store beats for the runs its process records, so a silent run stays alive, and a real process
in its own UTS namespace (another host name, ``unshare --uts``) killed mid-run is interrupted
once its heartbeat is stale, then resumable.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.services.store import Recorder, Store
from core.services.store.liveness import PG_STALE_AFTER_S
from core.types import RunSpec, RunStarted
from tests.pg import is_pg, raw_rows

ROOT = Path(__file__).resolve().parents[1]


def spec(prompt: str = "Write about rivers") -> RunSpec:
    return RunSpec(messages=[{"role": "user", "content": prompt}])


def heartbeat_of(store_db: str | Path, run_id: str) -> float:
    return float(raw_rows(store_db, "SELECT heartbeat_at FROM runs WHERE id = ?", (run_id,))[0][0])


def wait_for(condition: Callable[[], bool], limit: float = 60.0) -> bool:
    """Poll ``condition`` until it holds (a generous limit: never a measure of speed)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_a_run_of_another_host_is_interrupted_once_its_heartbeat_is_stale(store_db: str | Path) -> None:
    with Store() as store:
        fresh, stale = store.create_run(spec("fresh")), store.create_run(spec("stale"))
        now = time.time()
        for run_id, beat in ((fresh, now), (stale, now - store.stale_after - 5)):
            raw_rows(
                store_db,
                "UPDATE runs SET owner_host = 'another-host', owner_pid = 4242, heartbeat_at = ? WHERE id = ?",
                (beat, run_id),
            )
        assert (store.is_active(fresh), store.is_active(stale)) == (True, False)
        assert store.mark_interrupted() == [stale]
        assert store.summary(stale).status == "interrupted"  # type: ignore[union-attr]


def test_a_stale_heartbeat_is_a_few_seconds_on_postgresql_and_unchanged_on_sqlite(
    store_db: str | Path,
) -> None:
    with Store() as store:
        assert store.stale_after == (PG_STALE_AFTER_S if is_pg(store_db) else 600.0)
        assert PG_STALE_AFTER_S <= 10


def test_a_beat_stamps_only_the_runs_this_process_records(store_db: str | Path) -> None:
    with Store() as store:
        orphan = store.create_run(spec("no recorder"))
        recorder = Recorder(store)
        recorder.handle(RunStarted(spec("recorded")))
        assert recorder.run_id is not None
        raw_rows(store_db, "UPDATE runs SET heartbeat_at = 0")
        try:
            assert store.beat() >= 1
            assert heartbeat_of(store_db, recorder.run_id) > 0 and heartbeat_of(store_db, orphan) == 0
        finally:
            recorder.close()


def test_a_postgresql_store_beats_for_a_silent_run_and_stops_when_closed(pg_db: str) -> None:
    store = Store()
    recorder = Recorder(store)  # no autoflush: only the store's heartbeat can stamp the run
    recorder.handle(RunStarted(spec()))
    assert recorder.run_id is not None
    run_id = recorder.run_id
    raw_rows(pg_db, "UPDATE runs SET heartbeat_at = 0")
    try:
        assert wait_for(lambda: heartbeat_of(pg_db, run_id) > 0)
    finally:
        recorder.close()
        store.close()
    assert store._heartbeat is not None
    store._heartbeat.join(timeout=30)
    assert not store._heartbeat.is_alive()


CHILD = """
import sys
from core.services.store import Recorder, Store
from core.types import RunSpec, RunStarted
store = Store()
recorder = Recorder(store)
recorder.handle(RunStarted(RunSpec(messages=[{"role": "user", "content": "from another host"}])))
print(recorder.run_id, flush=True)
sys.stdin.read()
"""


def can_unshare() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    done = subprocess.run(["unshare", "--uts", "true"], capture_output=True, check=False)
    return done.returncode == 0


def elsewhere(
    db: str | Path, code: str, host: str = "continuum-elsewhere"
) -> tuple[list[str], dict[str, str]]:
    """The command and environment of a Python child on the history ``db`` under another host name."""
    env = {**os.environ, "CONTINUUM_DB": str(db), "PYTHONPATH": str(ROOT)}
    return ["unshare", "--uts", "sh", "-c", f"hostname {host} && exec {sys.executable} -c '{code}'"], env


def test_a_run_of_a_killed_process_on_another_host_is_interrupted_and_resumable(pg_db: str) -> None:
    if not can_unshare():
        pytest.skip("needs root and unshare --uts to give a child process another host name")
    command, env = elsewhere(pg_db, CHILD)
    child = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        run_id = child.stdout.readline().strip()
        started = heartbeat_of(pg_db, run_id)
        with Store() as store:
            assert raw_rows(pg_db, "SELECT owner_host FROM runs WHERE id = ?", (run_id,)) == [
                ("continuum-elsewhere",)
            ]
            # Silent for longer than a stale heartbeat, yet alive: the child's store beats.
            assert wait_for(lambda: heartbeat_of(pg_db, run_id) > started + PG_STALE_AFTER_S + 1)
            assert (store.mark_interrupted(), store.is_active(run_id)) == ([], True)
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=60)
            assert wait_for(lambda: store.mark_interrupted() == [run_id])
            assert store.is_active(run_id) is False
            with Recorder(store, run_id=run_id) as resumed:  # resumed on this host
                resumed.handle(RunStarted(spec("resumed here")))
                assert (resumed.last_error, store.is_active(run_id)) == (None, True)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
