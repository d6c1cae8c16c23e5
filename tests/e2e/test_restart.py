"""The Streamlit server restarted mid-run: the run shows as interrupted, its text is there, it resumes.

The real app streams a run slowly in a real browser; the test stops the server
process (SIGTERM, as a service manager does, or SIGKILL, as a crash or the OOM
killer does) and starts it again on the same port and the same database. The
open tab reconnects by itself; from there the user finds the run in Runs,
reads what was written, and resumes it to the exact answer.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.demo import count_tokens, demo_document
from core.services.store import Store
from tests.e2e.conftest import (
    ARTIFACTS,
    WAIT,
    after_run,
    click_row,
    free_port,
    idle,
    shot,
    start_app,
    stop_app,
)
from tests.e2e.test_studio import download, generate, open_studio, running, status, tokens_on_screen

SLOW = "60"  # tokens/s before the restart: the run is mid-round when the server goes
FAST = "3000"  # after it: the resumed run ends quickly


@pytest.fixture
def restarts(tmp_path: Path) -> Iterator[list]:
    """App processes started by the test (stopped at the end); their logs go to the artifacts."""
    procs: list = []
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                stop_app(proc)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        log = tmp_path / "streamlit.log"
        if log.exists():
            (ARTIFACTS / f"streamlit-restart-{tmp_path.name}.log").write_bytes(log.read_bytes())


def stored(db: Path, prompt: str) -> tuple[str, str, str]:
    """(run id, status, text) of the one run of ``prompt`` in the history."""
    with Store(db) as store:
        (summary,) = store.list_runs(query=prompt)
        return summary.id, summary.status, store.load(summary.id).text


def wait_saved(db: Path, prompt: str, tokens: int) -> None:
    """Wait until the app has saved ``tokens`` tokens of the live round (it saves once a second)."""
    deadline = time.monotonic() + WAIT / 1000
    while count_tokens(stored(db, prompt)[2]) < tokens:
        assert time.monotonic() < deadline, "the app never saved the streaming text"
        time.sleep(0.2)  # polling another process's database, not making the test pass


def cut_by(proc, sig: signal.Signals, page, db: Path, prompt: str) -> str:
    """Start ``prompt`` in the open Studio, then stop the server with ``sig`` mid-round; returns the run id."""
    generate(page, prompt)
    running(page)
    wait_saved(db, prompt, 40)
    shown = tokens_on_screen(page)
    proc.send_signal(sig)
    proc.wait(30)
    run_id, state, text = stored(db, prompt)
    # SIGTERM: the app exits normally and saves what it had; SIGKILL: the row is left as it was.
    assert state == ("interrupted" if sig == signal.SIGTERM else "running")
    assert text and demo_document(prompt).startswith(text) and text != demo_document(prompt)
    if sig == signal.SIGTERM:
        assert count_tokens(text) >= shown  # nothing the browser had shown was lost
    return run_id


def words(text: str) -> list[str]:
    return [w for w in re.findall(r"\w+", text) if not w.isdigit()]


def resume_from_runs(page, db: Path, prompt: str, run_id: str) -> None:
    """Open the run from the Runs list (interrupted, its text there), resume it to the exact answer."""
    page.get_by_role("link", name="Runs").click()
    search = page.get_by_role("textbox", name="Search")
    search.wait_for()
    idle(page)
    search.fill(prompt)  # the run alone in the list (a wrapped title makes rows taller than one line)
    after_run(page, lambda: search.press("Enter"))
    page.get_by_text("1 run.").wait_for()
    click_row(page, 0, rows=1)
    page.locator(".st-key-open_run h3").filter(has_text=prompt).wait_for()
    page.get_by_text("Interrupted.").wait_for()
    assert f"id={run_id}" in page.url
    text = stored(db, prompt)[2]
    assert download(page, "Download output").decode("utf-8") == text
    last_words = " ".join(words(text)[-3:])  # numbers left out: a list's "1." is a CSS marker on screen
    assert last_words in " ".join(words(page.get_by_role("tabpanel").first.inner_text()))
    page.get_by_role("button", name="Resume").click()
    page.get_by_role("spinbutton", name="More rounds").fill("20")
    page.get_by_role("button", name="Resume in the Studio").click()
    page.locator(".st-key-clear_run").wait_for()
    assert "Finished" in status(page)
    assert download(page, "Download output").decode("utf-8") == demo_document(prompt)
    assert stored(db, prompt) == (run_id, "finished", demo_document(prompt))  # the same run, finished


@pytest.mark.slow
def test_runs_cut_by_server_restarts_are_interrupted_keep_their_text_and_resume(
    browser, tmp_path: Path, restarts: list
) -> None:
    db, port = tmp_path / "e2e.sqlite3", free_port()
    term = "Write about 2500 tokens on harbour lights, cut by SIGTERM."
    kill = "Write about 2500 tokens on tide mills, cut by SIGKILL."
    page = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True).new_page()
    page.context.set_default_timeout(WAIT)
    try:
        proc, url = start_app(tmp_path, SLOW, port)
        restarts.append(proc)
        open_studio(page, url)
        term_id = cut_by(proc, signal.SIGTERM, page, db, term)  # a service manager stops the app

        proc, _ = start_app(tmp_path, SLOW, port)
        restarts.append(proc)
        page.get_by_text("Nothing generated yet").wait_for()  # the open tab reconnected by itself
        kill_id = cut_by(proc, signal.SIGKILL, page, db, kill)  # a crash, the OOM killer

        proc, _ = start_app(tmp_path, FAST, port)
        restarts.append(proc)
        page.get_by_text("Nothing generated yet").wait_for()
        page.get_by_role("link", name="Runs").click()
        page.get_by_text("2 runs.").wait_for()
        with Store(db) as store:
            assert {s.id: s.status for s in store.list_runs()} == {
                term_id: "interrupted",
                kill_id: "interrupted",
            }
        shot(page, "runs-interrupted-light", full_page=False)
        resume_from_runs(page, db, kill, kill_id)
        resume_from_runs(page, db, term, term_id)
    finally:
        page.context.close()
