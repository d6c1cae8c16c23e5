"""The run history in a real browser: open a past run, resume it, compare two runs, see a restart seam.

The runs are made before the app starts, with the real engine against the
test's demo server, and recorded into the database the app is given
(``CONTINUUM_DB``), exactly as the app records its own runs. One Streamlit
process serves the module; its demo model resumes the demo runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import expect

from core.demo import behaviour_url, demo_document
from core.services.store import Store
from tests.e2e.conftest import ARTIFACTS, WAIT, click_row, drawn, open_tab, shot, start_app, stop_app
from tests.test_pages_runs import record_run

PRESS = "Write about 1500 tokens on the history of the printing press, with headings."
TIDES = "Write about 1200 tokens on the tides of the Atlantic coast."
CARTOGRAPHY = "Write about 4000 tokens on cartography, with tables and code."


@dataclass
class History:
    url: str
    db: Path
    press: str  # finished, prefill, demo
    press_instruction: str  # the same prompt with the instruction strategy on demo-32k
    cut_short: str  # stopped by max_rounds after 2 rounds
    restart: str  # made against a server that ignores prefills
    interrupted: str
    cartography: (
        str  # a seam inside a table (seam 2 at 280 tokens a round); a server without usage (estimated tokens)
    )


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, demo_server: str, browser) -> Iterator[History]:
    tmp = tmp_path_factory.mktemp("history")
    db = tmp / "e2e.sqlite3"  # the file start_app gives the app as CONTINUUM_DB
    runs = History(
        url="",
        db=db,
        press=record_run(db, demo_server, PRESS, max_tokens=300),
        press_instruction=record_run(
            db,
            demo_server,
            PRESS,
            max_tokens=450,
            model="demo-32k",
            strategy="instruction",
            context_window=32768,
        ),
        cut_short=record_run(db, demo_server, TIDES, max_tokens=256, max_rounds=2),
        restart=record_run(db, behaviour_url(demo_server, prefill="ignored"), TIDES, max_tokens=300),
        interrupted=record_run(db, demo_server, "Write about 4000 tokens on lighthouses.", stop_after=60),
        cartography=record_run(db, behaviour_url(demo_server, usage="absent"), CARTOGRAPHY, max_tokens=280),
    )
    proc, runs.url = start_app(tmp)
    try:
        # Open the router first. Until app.py has run once in the process, Streamlit 1.67 takes
        # a folder named pages/ for an old-style multipage app: a first request for /runs would
        # list every module in pages/ as a page and skip app.py.
        warm = browser.new_context().new_page()
        warm.goto(runs.url)
        warm.get_by_label("Prompt", exact=True).wait_for(timeout=WAIT)
        warm.context.close()
        yield runs
    finally:
        stop_app(proc)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "streamlit-history.log").write_bytes((tmp / "streamlit.log").read_bytes())


def settled(page) -> None:
    """Wait until the script run has drawn everything (no skeleton, charts and grids painted)."""
    drawn(page)


def open_run(page, h: History, run_id: str) -> None:
    page.goto(f"{h.url}/runs?id={run_id}")
    page.locator(".st-key-run_actions").wait_for(timeout=WAIT)
    settled(page)


def visible_charts(page):  # type: ignore[no-untyped-def]
    return page.locator('[data-testid="stVegaLiteChart"]:visible')


def download(page, label: str):  # type: ignore[no-untyped-def]
    with page.expect_download() as info:
        page.get_by_role("button", name=label, exact=True).click()
    return info.value


# ---------------------------------------------------------------- Runs


def test_a_past_run_opens_from_the_list_with_its_rounds_and_named_downloads(page, history: History):
    page.goto(f"{history.url}/runs")
    page.get_by_text("6 runs.").wait_for(timeout=WAIT)
    page.get_by_test_id("stDataFrame").wait_for()
    settled(page)
    shot(page, "runs-list-light", full_page=False)
    page.get_by_role("textbox", name="Search").fill(history.press)  # a run id finds that run alone
    page.get_by_role("textbox", name="Search").press("Enter")
    page.get_by_text("1 run.").wait_for(timeout=WAIT)
    click_row(page, 0, rows=1)
    page.locator(".st-key-run_actions").wait_for(timeout=WAIT)
    expect(page.locator(".st-key-open_run h3")).to_contain_text(PRESS)
    assert f"id={history.press}" in page.url
    settled(page)
    shot(page, "runs-open-light", full_page=False)
    rounds = len(Store(history.db).load(history.press).rounds)
    open_tab(page, "Rounds")
    page.get_by_text(re.compile(rf"^Round {rounds} ·")).wait_for()
    assert page.get_by_text(re.compile(r"^Round \d+ ·")).count() == rounds
    md = download(page, "Download output")
    assert md.path().read_text(encoding="utf-8") == demo_document(PRESS)
    assert re.fullmatch(
        r"write-about-1500-tokens-on-the-history-of-the-\d{8}-\d{4}\.md", md.suggested_filename
    )
    assert download(page, "CSV").suggested_filename.endswith(".csv")


def test_at_1280_px_the_table_fits_and_a_picked_run_is_brought_into_view(browser, history: History):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        page.goto(f"{history.url}/runs")
        page.get_by_test_id("stDataFrame").wait_for(timeout=WAIT)
        settled(page)
        shot(page, "runs-list-1280-light", full_page=False)
        click_row(page, 0, rows=Store(history.db).count_runs())  # the newest run
        page.locator(".st-key-run_actions").wait_for(timeout=WAIT)
        settled(page)
        expect(page.locator(".st-key-open_run h3")).to_be_in_viewport(ratio=1)
        expect(page.locator(".st-key-run_actions")).to_be_in_viewport(ratio=1)
        shot(page, "runs-open-1280-light", full_page=False)
    finally:
        context.close()


def test_an_interrupted_run_is_listed_as_interrupted_and_can_be_deleted(page, history: History):
    page.goto(f"{history.url}/runs")
    page.get_by_text("6 runs.").wait_for(timeout=WAIT)
    choose(page, "Status", "interrupted")
    page.get_by_text("1 run.").wait_for(timeout=WAIT)
    click_row(page, 0, rows=1)
    page.get_by_text("Interrupted.", exact=False).first.wait_for(timeout=WAIT)
    page.locator(".st-key-run_delete button").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("cannot be undone").wait_for(timeout=WAIT)
    drawn(page)
    shot(page, "runs-delete-light", full_page=False)
    dialog.get_by_role("button", name="Delete").click()
    page.get_by_test_id("stAlert").filter(has_text="Deleted").wait_for(timeout=WAIT)
    assert not Store(history.db).exists(history.interrupted)


def test_resuming_a_past_run_continues_the_same_run_in_the_studio(page, history: History):
    before = len(Store(history.db).load(history.cut_short).rounds)
    open_run(page, history, history.cut_short)
    page.get_by_role("button", name="Resume").click()
    page.get_by_role("spinbutton", name="More rounds").fill("40")
    shot(page, "runs-resume-light", full_page=False)
    page.get_by_role("button", name="Resume in the Studio").click()
    page.locator(".st-key-clear_run").wait_for(timeout=WAIT)  # the Studio, the run ended
    assert "Finished" in page.locator(".st-key-run_head").inner_text()
    assert download(page, "Download output").path().read_text(encoding="utf-8") == demo_document(TIDES)
    shot(page, "studio-resumed-light", full_page=False)
    with Store(history.db) as store:
        result = store.load(history.cut_short)
        assert store.count_runs(query=TIDES) == 2  # this one and the restart run: no new run
    assert len(result.rounds) > before and result.text == demo_document(TIDES)


# ---------------------------------------------------------------- Inspect


def choose(page, label: str, option: str) -> None:
    page.get_by_role("combobox", name=label).click()
    page.get_by_role("option", name=option).first.click()


def test_two_runs_of_one_prompt_are_compared_side_by_side(page, history: History):
    page.goto(f"{history.url}/inspect?id={history.press}")
    page.get_by_role("tab", name="Seams").wait_for(timeout=WAIT)
    page.get_by_role("combobox", name="Compare with").click()
    page.get_by_role("option").filter(has_text="instruction").first.click()
    open_tab(page, "Compare")
    page.get_by_text("The two answers are identical").wait_for(timeout=WAIT)
    assert f"vs={history.press_instruction}" in page.url
    visible_charts(page).nth(3).wait_for()
    drawn(page)
    shot(page, "inspect-compare-light", full_page=False)
    page.get_by_text("First difference in the text").scroll_into_view_if_needed()
    drawn(page)  # painted after the scroll
    shot(page, "inspect-compare-charts-light", full_page=False)


def test_the_seam_view_of_a_run_on_a_prefill_ignoring_server_shows_the_restart(browser, history: History):
    for scheme in ("light", "dark"):
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, color_scheme=scheme)
        page = context.new_page()
        try:
            page.goto(f"{history.url}/inspect?id={history.restart}")
            seam = page.locator(".st-key-seam_2")
            seam.wait_for(timeout=WAIT)
            expect(seam).to_contain_text("restart")
            expect(seam).to_contain_text("the server ignored the prefill")
            expect(seam).to_contain_text("Discarded")
            settled(page)
            shot(page, f"inspect-restart-{scheme}", full_page=False)
        finally:
            context.close()


def test_seams_charts_and_a_past_run_look_right_in_the_dark(browser, history: History):
    context = browser.new_context(viewport={"width": 1400, "height": 1100}, color_scheme="dark")
    page = context.new_page()
    try:
        page.goto(f"{history.url}/inspect?id={history.cartography}")
        expect(page.locator(".st-key-seam_2")).to_contain_text("open table", timeout=WAIT)
        expect(page.locator(".st-key-seam_2")).to_contain_text("estimated tokens")
        settled(page)
        shot(page, "inspect-seams-dark", full_page=False)
        open_tab(page, "Charts")
        visible_charts(page).nth(3).wait_for()
        drawn(page)
        shot(page, "inspect-charts-dark", full_page=False)
        open_run(page, history, history.cartography)
        shot(page, "runs-open-dark", full_page=False)
    finally:
        context.close()
