"""The demo provider's Replay choice in a real browser: a shipped transcript streamed again.

The pace is checked on recorded data, not on the test's clock: the replayed run's own
transcript (its JSON download) against the shipped one, round by round.
"""

from __future__ import annotations

import json

from playwright.sync_api import expect

from core.demo import TRANSCRIPTS
from tests.e2e.conftest import WAIT, idle, shot
from tests.e2e.test_studio import choose, download, finished, open_studio, running, status

TOOL_LIBRARY = "Replay: starting a tool library"
WATER_LEAKS = "Replay: finding leaks you cannot see (with reasoning)"


def shipped(name: str) -> dict:
    return json.loads((TRANSCRIPTS / f"{name}.json").read_text(encoding="utf-8"))


def replay(page, app_url: str, choice: str, pace: str) -> dict:
    """Choose ``choice`` at ``pace`` in the Studio, generate, and return the run's transcript."""
    open_studio(page, app_url)
    choose(page, "Model", choice)
    page.get_by_text("Replay pace").wait_for()
    if pace != "1×":
        page.locator(".st-key-replay_speed").get_by_text(pace, exact=True).click()
        idle(page)
    idle(page)
    page.get_by_role("button", name="Generate").click()
    if pace != "Instant":  # an instant replay may end before the page first draws it running
        running(page)
    finished(page)
    assert "Finished" in status(page), status(page)
    return json.loads(download(page, "JSON"))


def test_a_replay_streams_its_rounds_at_their_recorded_pace(page, app_url):
    source = shipped("tool-library")
    run = replay(page, app_url, TOOL_LIBRARY, "1×")
    assert run["text"] == source["text"]
    assert run["spec"]["model"] == "replay" and run["stop_reason"] == "finished"
    assert [r["finish_reason"] for r in run["rounds"]] == [r["finish_reason"] for r in source["rounds"]]
    for replayed, recorded in zip(run["rounds"], source["rounds"], strict=True):
        assert abs(replayed["duration_s"] - recorded["duration_s"]) <= 0.10 * recorded["duration_s"], (
            replayed["index"],
            replayed["duration_s"],
            recorded["duration_s"],
        )
    assert download(page, "Download output").decode("utf-8") == source["text"]


def test_a_replay_at_instant_pace_keeps_text_and_reasoning(page, app_url):
    source = shipped("water-leaks")
    run = replay(page, app_url, WATER_LEAKS, "Instant")
    assert run["text"] == source["text"]
    assert run["reasoning"] == source["reasoning"]
    assert len(run["rounds"]) == len(source["rounds"])
    recorded = sum(r["duration_s"] for r in source["rounds"])
    # no waiting: far from the recorded pace
    assert sum(r["duration_s"] for r in run["rounds"]) < recorded / 4


def test_the_replay_choice_fits_the_first_screen(browser, app_url):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(WAIT)
    page = context.new_page()
    try:
        open_studio(page, app_url)
        choose(page, "Model", WATER_LEAKS)
        page.get_by_text("Replay pace").wait_for()
        expect(page.get_by_label("Prompt", exact=True)).to_have_value(
            shipped("water-leaks")["spec"]["messages"][-1]["content"]
        )
        expect(page.get_by_role("button", name="Generate")).to_be_in_viewport()  # no scrolling
        page.mouse.move(5, 5)
        idle(page)
        shot(page, "replay-choice", full_page=False)
    finally:
        context.close()
