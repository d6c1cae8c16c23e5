"""A run whose process ended mid-run is "interrupted", with its text, and never stuck "running".

Real child processes record into a real SQLite file; the parent reads it as the
restarted app would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from core.services.store import Store
from core.services.store.owner import boot_id, process_started
from core.types import RunSpec
from tests.pg import raw_rows

ROOT = Path(__file__).resolve().parents[1]

# A child that starts recording a run, streams three deltas (never flushed by
# time: the interval is an hour), prints the run id and then does what ENDING says.
RECORD = """
import os, signal, sys, time
from core.services.store import Recorder, Store
from core.types import Delta, RoundStarted, RunSpec, RunStarted
store = Store()
recorder = Recorder(store, flush_interval=3600)
recorder.handle(RunStarted(spec=RunSpec(messages=[{"role": "user", "content": "hi"}])))
recorder.handle(RoundStarted(index=1, max_tokens=100, strategy="prefill"))
for part in ("The first ", "words of ", "the answer"):
    recorder.handle(Delta(text=part, round_index=1))
print(recorder.run_id, flush=True)
"""


def record(db: Path, ending: str) -> tuple[str, int]:
    """Run the recording child with ``ending``; returns (run id, exit status)."""
    env = {**os.environ, "CONTINUUM_DB": str(db), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", RECORD + ending],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    run_id = proc.stdout.readline().strip()
    proc.stdin.close()
    return run_id, proc.wait(timeout=60)


def restamp(db: str | Path, run_id: str, pid: int, started: str) -> None:
    """Give a run another owner, as a row written by that process would hold."""
    raw_rows(db, "UPDATE runs SET owner_pid = ?, owner_started = ? WHERE id = ?", (pid, started, run_id))


def test_a_process_exiting_mid_run_saves_the_unsaved_text_and_marks_the_run_interrupted(store_db: str | Path):
    run_id, status = record(store_db, "sys.exit(0)\n")
    with Store(store_db) as store:
        summary = store.summary(run_id)
        assert (status, summary and summary.status) == (0, "interrupted")
        assert store.load(run_id).text == "The first words of the answer"


def test_a_server_stopped_by_sigterm_saves_the_unsaved_text(store_db: str | Path):
    # Like Streamlit: SIGTERM ends the server loop and the interpreter exits normally,
    # while the run's worker thread is still streaming.
    ending = (
        "import threading\n"
        "stop = threading.Event()\n"
        "signal.signal(signal.SIGTERM, lambda *a: stop.set())\n"
        "def work():\n"
        "    while True:\n"
        "        recorder.handle(Delta(text='.', round_index=1))\n"
        "        time.sleep(0.01)\n"
        "threading.Thread(target=work, daemon=True).start()\n"
        "print('streaming', flush=True)\n"
        "stop.wait()\n"
    )
    env = {**os.environ, "CONTINUUM_DB": str(store_db), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", RECORD + ending], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    assert proc.stdout.readline().strip() == "streaming"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    with Store(store_db) as store:
        assert store.summary(run_id).status == "interrupted"  # type: ignore[union-attr]
        assert store.load(run_id).text.startswith("The first words of the answer.")


def test_a_killed_process_leaves_its_run_running_until_the_next_start_marks_it_interrupted(
    store_db: str | Path,
):
    run_id, status = record(store_db, "recorder.flush()\nos.kill(os.getpid(), signal.SIGKILL)\n")
    with Store(store_db) as store:
        before = store.summary(run_id)
        assert (status, before and before.status) == (-signal.SIGKILL, "running")
        assert (store.is_active(run_id), store.mark_interrupted()) == (False, [run_id])
        after = store.load(run_id)
        assert (store.summary(run_id).status, after.text) == ("interrupted", "The first words of the answer")  # type: ignore[union-attr]
        assert after.rounds[0].finish_reason is None and after.rounds[0].error == "interrupted"


def test_a_run_stamped_by_a_live_process_in_an_earlier_boot_is_interrupted(store_db: str | Path):
    # After a reboot a boot-time service can get the dead owner's pid and start ticks again.
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        ticks = (process_started(sleeper.pid) or "").partition("@")[0]
        with Store(store_db) as store:
            this_boot = store.create_run(RunSpec(messages=[{"role": "user", "content": "a"}]))
            last_boot = store.create_run(RunSpec(messages=[{"role": "user", "content": "b"}]))
            for run_id, boot in ((this_boot, boot_id()), (last_boot, "00000000-dead-boot")):
                restamp(store_db, run_id, sleeper.pid, f"{ticks}@{boot}")
            assert store.mark_interrupted() == [last_boot]
            assert (store.is_active(this_boot), store.is_active(last_boot)) == (True, False)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_an_owner_stamped_without_a_boot_id_is_still_checked_by_pid_and_start_time(store_db: str | Path):
    # Rows written before boot ids were stamped hold the bare start ticks.
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        ticks = (process_started(sleeper.pid) or "").partition("@")[0]
        with Store(store_db) as store:
            live = store.create_run(RunSpec(messages=[{"role": "user", "content": "a"}]))
            reused = store.create_run(RunSpec(messages=[{"role": "user", "content": "b"}]))
            for run_id, started in ((live, ticks), (reused, str(int(ticks) - 1))):
                restamp(store_db, run_id, sleeper.pid, started)
            assert store.mark_interrupted() == [reused]
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_run_being_recorded_here_is_left_alone_and_closed_at_exit_only(store_db: str | Path):
    from core.services.store.recorder import Recorder, close_open_recorders
    from core.types import Delta, RoundStarted, RunStarted

    with Store(store_db) as store:
        recorder = Recorder(store, flush_interval=3600)
        recorder.handle(RunStarted(spec=RunSpec(messages=[{"role": "user", "content": "hi"}])))
        recorder.handle(RoundStarted(index=1, max_tokens=100, strategy="prefill"))
        recorder.handle(Delta(text="kept", round_index=1))
        run_id = recorder.run_id or ""
        assert (store.mark_interrupted(), store.is_active(run_id)) == ([], True)
        assert run_id in close_open_recorders()
        recorder.handle(Delta(text=" ignored", round_index=1))  # the worker goes on after exit began
        assert (store.summary(run_id).status, store.load(run_id).text) == ("interrupted", "kept")  # type: ignore[union-attr]
        assert close_open_recorders() == []
