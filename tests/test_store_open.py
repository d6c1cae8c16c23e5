"""Opening a history that cannot be used as asked: one StoreError, with the path and what to do.

Real files (garbage bytes, a directory) and a lock held by another real process.
A reader never needs the write lock: with the history in WAL mode, another process
holding ``BEGIN EXCLUSIVE`` does not stop anyone from reading it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.services.store import Store, StoreError
from core.types import RunSpec
from tests.clirun import REPO, hold_lock, read_only


def spec() -> RunSpec:
    return RunSpec(messages=[{"role": "user", "content": "Write about locks"}])


@pytest.fixture
def history(tmp_db: Path) -> Path:
    """A history holding one finished run."""
    with Store(tmp_db) as store:
        run_id = store.create_run(spec())
        store.finish_run(
            run_id, spec=spec(), status="finished", stop_reason="finished", error=None, finished_at=1.0
        )
    return tmp_db


def test_a_file_that_is_not_sqlite_is_a_store_error_naming_it(tmp_path: Path) -> None:
    garbage = tmp_path / "notes.sqlite3"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(StoreError, match="not a SQLite database") as caught:
        Store(garbage)
    assert str(garbage) in str(caught.value)


def test_a_directory_as_the_history_is_a_store_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a directory") as caught:
        Store(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_a_history_locked_by_another_process_can_still_be_read(history: Path) -> None:
    with hold_lock(history), Store(history) as store:
        assert [r.status for r in store.list_runs()] == ["finished"]


def test_writing_a_history_locked_by_another_process_is_a_store_error(history: Path) -> None:
    with hold_lock(history), Store(history, timeout=0.2) as store, pytest.raises(StoreError, match="locked"):
        store.create_run(spec())


def test_marking_interrupted_runs_does_not_wait_for_a_locked_history(history: Path) -> None:
    with Store(history) as store:
        store.create_run(spec())  # no recorder holds it: "interrupted" once the history can be written
        with hold_lock(history):
            assert store.mark_interrupted() == []


def test_a_locked_history_in_rollback_journal_mode_is_a_store_error_naming_it(history: Path) -> None:
    with hold_lock(history, journal_mode="delete"), pytest.raises(StoreError, match="locked") as caught:
        Store(history, timeout=0.2)
    assert str(history) in str(caught.value)


RECORD_A_RUN = """
import logging
from core.demo import start_demo_server
from core.continuation.engine import run
from core.services.store import Recorder, Store
from core.types import RunSpec
logging.basicConfig(format="%(levelname)s %(message)s")
with start_demo_server() as server:
    spec = RunSpec(messages=[{"role": "user", "content": "Write 300 tokens about tides"}],
                   provider="custom", base_url=server.base_url, model="demo", max_tokens=100)
    events = list(Recorder(Store(), autoflush=True).record(run(spec)))
print(events[-1].stop_reason)
"""


def test_a_recorder_on_a_read_only_history_warns_once_and_the_run_goes_on(history: Path, clean_env) -> None:
    prefix = read_only(history.parent)
    try:
        env = {**clean_env, "CONTINUUM_DB": str(history), "PYTHONPATH": str(REPO)}
        done = subprocess.run(
            [*prefix, sys.executable, "-c", RECORD_A_RUN],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        history.parent.chmod(0o755)
    assert (done.stdout.strip(), done.stderr.count("WARNING")) == ("finished", 1), done.stderr
