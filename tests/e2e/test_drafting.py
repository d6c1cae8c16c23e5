"""Drafting in a real browser: continue a run, edit the answer and continue, start with an opening,
follow up in a thread, and a form that always shows the run on screen.

The app's demo model continues any prefix of its own document; an edit that departs from
it is continued from where it departs, so the tests that continue after such an edit give
the continuation one round (a large per-round budget) and check the seam, not the sense.
Waits follow what the page says (a status, a strip, a field's value), never the clock.
"""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from core.demo import behaviour_url, demo_document
from core.services.plain import plain_text
from tests.e2e.conftest import WAIT, click_row, drawn, idle, open_tab, shot
from tests.e2e.test_studio import (
    download,
    generate,
    open_studio,
    running,
    set_number,
    use_custom_server,
    wait_for_tokens,
)

PRESS = "Write about 1500 tokens on the history of the printing press, with headings."
HARBOURS = "Write about 1400 tokens on the harbours of Cornwall, with headings."
OPENING = "# Harbours of Cornwall: a field guide\n\nOutline: the coast, the quays, the boats.\n\n"
MINE = "\n\nMY OWN SENTENCE, written by hand in the Studio's editor and"


def slow_demo(demo_server: str, name: str) -> str:
    """The demo at 60 tokens/s: a run still going after a reload or a Stop on a loaded machine."""
    return behaviour_url(demo_server, rate=60, k=name)


def head(page):  # type: ignore[no-untyped-def]
    return page.locator(".st-key-run_head")


def stop_mid_way(page, tokens: int = 150) -> None:
    running(page)
    wait_for_tokens(page, tokens)
    page.locator(".st-key-stop_run button").click()
    expect(head(page)).to_contain_text("Cancelled")
    page.locator(".st-key-steer_row").wait_for()
    idle(page)


def transcript(page) -> dict:  # type: ignore[type-arg]
    return json.loads(download(page, "JSON"))


def ended(page, text: str = "Finished") -> None:
    """The run on screen ended with ``text`` in its status, and the page is drawn for it."""
    expect(head(page)).to_contain_text(text, timeout=WAIT)
    page.locator(".st-key-steer_row").wait_for()
    idle(page)


# ---------------------------------------------------------------- continue and edit


def test_a_stopped_run_continues_to_the_end_on_the_same_run(page, app_url, demo_server):
    use_custom_server(page, app_url, slow_demo(demo_server, "e2e-draft-continue"), None)
    generate(page, PRESS)
    stop_mid_way(page)
    run_id = transcript(page)["run_id"]
    stopped = download(page, "Download output").decode("utf-8")
    assert run_id and demo_document(PRESS).startswith(stopped) and len(stopped) < len(demo_document(PRESS))
    page.get_by_role("button", name="Continue", exact=True).click()
    page.get_by_role("spinbutton", name="More rounds").fill("40")
    page.get_by_role("button", name="Continue this run").click()
    ended(page)
    assert download(page, "Download output").decode("utf-8") == demo_document(PRESS)
    assert transcript(page)["run_id"] == run_id  # the same run, longer


def test_an_edited_answer_is_continued_from_the_edit_and_kept_in_the_transcript(page, app_url, demo_server):
    use_custom_server(page, app_url, slow_demo(demo_server, "e2e-draft-edit"), None)
    generate(page, HARBOURS)
    stop_mid_way(page, 250)
    before = download(page, "Download output").decode("utf-8")
    rounds_before = len(transcript(page)["rounds"])
    page.get_by_role("button", name="Edit and continue").click()
    editor = page.get_by_label("Answer so far (Markdown)")
    expect(editor).to_have_value(before)  # the Markdown source of the answer so far
    edited = before[: before.rstrip().rfind("\n\n")] + MINE  # the last paragraph cut, a line of mine
    editor.fill(edited)
    page.get_by_role("spinbutton", name="Tokens per round", exact=True).fill(
        "4096"
    )  # one round: see the docstring
    shot(page, "drafting-editor-filled-light", full_page=False)
    page.get_by_role("button", name="Continue from this text").click()
    ended(page)
    md = download(page, "Download output").decode("utf-8")
    data = transcript(page)
    assert md == data["text"] and download(page, "Text").decode("utf-8") == plain_text(md)
    assert md.startswith(edited) and len(md) > len(edited)
    assert md == edited + data["rounds"][-1]["text"]
    (edit,) = data["edits"]
    assert (edit["after_round"], edit["text_before"]) == (rounds_before, before)
    assert edit["removed"] == len(before) - edit["at"] and edit["inserted"] == edited[edit["at"] :]
    page.get_by_text("MY OWN SENTENCE", exact=False).first.wait_for()
    open_tab(page, "Rounds")
    expect(page.locator(".st-key-edit_1")).to_contain_text(f"Your edit after round {rounds_before}")


# ---------------------------------------------------------------- start with


def test_the_opening_is_the_beginning_of_the_answer_and_stays_in_the_form(page, app_url):
    open_studio(page, app_url)
    page.get_by_text("Start the answer with (optional)").click()
    page.get_by_label("Start the answer with", exact=True).fill(OPENING)
    set_number(page, "Max tokens per round", 4096)  # one round: see the module docstring
    generate(page, HARBOURS)
    ended(page)
    md = download(page, "Download output").decode("utf-8")
    assert md.startswith(OPENING) and len(md) > len(OPENING) + 1000
    data = transcript(page)
    assert data["edits"][0]["after_round"] == 0 and data["edits"][0]["inserted"] == OPENING
    page.reload()
    ended(page)
    expect(page.get_by_label("Start the answer with", exact=True)).to_have_value(OPENING)
    expect(page.get_by_label("Prompt", exact=True)).to_have_value(HARBOURS)


# ---------------------------------------------------------------- follow-ups and threads


def test_a_follow_up_is_a_new_run_in_the_thread_shown_on_runs(page, app_url):
    ask = "Now write about 700 tokens on the fishing boats of Newlyn."
    open_studio(page, app_url)
    generate(page, "Write about 900 tokens on the harbour of Mousehole.")
    ended(page)
    first = transcript(page)
    page.get_by_role("button", name="Follow up").click()
    page.get_by_label("Your next message").fill(ask)
    page.get_by_role("button", name="Send follow-up").click()
    strip = page.locator(".st-key-thread_strip")
    expect(strip).to_contain_text("2 runs", timeout=WAIT)
    ended(page)
    follow = transcript(page)
    assert (follow["parent_id"], follow["thread_id"]) == (first["run_id"], first["run_id"])
    assert follow["spec"]["messages"][-2:] == [
        {"role": "assistant", "content": first["text"]},
        {"role": "user", "content": ask},
    ]
    assert download(page, "Download output").decode("utf-8") == demo_document(ask)
    expect(page.get_by_label("Prompt", exact=True)).to_have_value(ask)  # the form shows the run shown
    page.get_by_role("link", name="Runs").click()
    page.get_by_role("textbox", name="Search").fill("fishing boats of Newlyn")
    page.get_by_role("textbox", name="Search").press("Enter")
    page.get_by_text("1 run.").wait_for()
    click_row(page, 0, rows=1)
    runs_strip = page.locator(".st-key-thread_strip")
    expect(runs_strip).to_contain_text("2 runs")
    expect(runs_strip).to_contain_text("1 · Write about 900 tokens")
    drawn(page)
    shot(page, "drafting-thread-runs-light", full_page=False)
    runs_strip.get_by_role("button", name=re.compile(r"^1 · ")).click()
    expect(page.locator(".st-key-open_run h3")).to_contain_text("harbour of Mousehole")
    idle(page)  # the run before it is gone from the page
    page.get_by_role("button", name="Open in Studio").click()
    expect(page.get_by_label("Prompt", exact=True)).to_have_value(
        "Write about 900 tokens on the harbour of Mousehole."
    )
    expect(page.locator(".st-key-thread_strip")).to_contain_text("2 runs")


# ---------------------------------------------------------------- the form and the run


def test_generate_is_disabled_while_a_run_goes(page, app_url, demo_server):
    use_custom_server(page, app_url, slow_demo(demo_server, "e2e-draft-disabled"), None)
    generate(page, PRESS)
    running(page)
    expect(page.get_by_role("button", name="Generate")).to_be_disabled()
    page.get_by_text("A run is going: stop it to start another.").wait_for()
    page.locator(".st-key-stop_run button").click()
    ended(page, "Cancelled")
    expect(page.get_by_role("button", name="Generate")).to_be_enabled(timeout=WAIT)


def test_a_reload_mid_run_keeps_the_form_and_the_run_in_sync(page, app_url, demo_server):
    prompt = "Write about 1300 tokens on the lighthouses of Finistère."
    url = slow_demo(demo_server, "e2e-draft-reload")
    use_custom_server(page, app_url, url, None)
    set_number(page, "Max tokens per round", 320)
    set_number(page, "Max rounds", 9)
    generate(page, prompt)
    running(page)
    wait_for_tokens(page, 100)
    page.reload()  # a new browser session: only the URL says which run
    running(page)
    expect(page.get_by_label("Prompt", exact=True)).to_have_value(prompt)
    expect(page.get_by_role("spinbutton", name="Max tokens per round")).to_have_value("320")
    expect(page.get_by_role("spinbutton", name="Max rounds")).to_have_value("9")
    expect(page.get_by_role("combobox", name="Provider")).to_have_value(re.compile("Custom"))
    expect(page.get_by_role("combobox", name="Model")).to_have_value("demo")
    expect(page.get_by_role("button", name="Generate")).to_be_disabled()
    ended(page)
    expect(page.get_by_role("button", name="Generate")).to_be_enabled()
    assert download(page, "Download output").decode("utf-8") == demo_document(prompt)
    page.get_by_role("link", name="Settings").click()
    expect(page.locator('input[aria-label="Base URL"]:not([disabled])')).to_have_value(url)


# ---------------------------------------------------------------- how it looks


def test_the_editor_and_a_thread_look_right_in_light_and_dark(browser, app_url):
    for scheme in ("light", "dark"):
        context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme=scheme)
        context.set_default_timeout(WAIT)
        page = context.new_page()
        try:
            open_studio(page, app_url)
            prompt_box = page.get_by_label("Prompt", exact=True)
            expect(page.get_by_role("button", name="Generate")).to_be_in_viewport()  # no scrolling
            expect(prompt_box).to_be_in_viewport()
            page.get_by_text("offline demo model").first.wait_for()
            shot(page, f"drafting-studio-{scheme}", full_page=False)
            generate(page, f"Write about 900 tokens on the piers of Penzance ({scheme}).")
            ended(page)
            page.get_by_role("button", name="Follow up").click()
            page.get_by_label("Your next message").fill("Now the boats that use them, in about 600 tokens.")
            page.get_by_role("button", name="Send follow-up").click()
            expect(page.locator(".st-key-thread_strip")).to_contain_text("2 runs", timeout=WAIT)
            ended(page)
            page.get_by_role("button", name="Edit and continue").click()
            page.locator(".st-key-editor").scroll_into_view_if_needed()
            page.mouse.move(5, 5)
            drawn(page)
            shot(page, f"drafting-editor-{scheme}", full_page=False)
            page.get_by_role("button", name="Cancel editing").click()
            page.get_by_role("link", name="Runs").click()
            page.get_by_role("textbox", name="Search").fill(f"Penzance ({scheme})")
            page.get_by_role("textbox", name="Search").press("Enter")
            page.get_by_text("1 run.").wait_for()
            click_row(page, 0, rows=1)
            expect(page.locator(".st-key-thread_strip")).to_contain_text("2 runs")
            page.locator(".st-key-thread_strip").scroll_into_view_if_needed()
            page.mouse.move(5, 5)
            drawn(page)
            shot(page, f"drafting-thread-{scheme}", full_page=False)
        finally:
            context.close()
