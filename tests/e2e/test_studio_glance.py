"""The Studio at a glance, in a real browser: a mark at every seam of the Document (and the toggle
that hides them), the live speed on the status line, the gauge's separate parts, the Copy button,
and the prompt and Generate on the first screen. Screenshots: ``glance-*.png``."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from core.demo import demo_document
from pages._common import STORED_PARAM
from tests.e2e.conftest import WAIT, after_run, drawn, idle, shot
from tests.e2e.test_studio import (
    SHORT,
    choose,
    download,
    finished,
    generate,
    open_studio,
    running,
    set_number,
    status,
)

MARKS = """() => [...document.querySelectorAll('[role=tabpanel] .cm-seam')]
    .filter(mark => mark.offsetParent !== null)
    .map(mark => ({rounds: mark.dataset.rounds, label: mark.dataset.label,
                   shown: getComputedStyle(mark, '::before').content}))"""
RATE = re.compile(r"≈([\d,]+) tok/s")


def marks(page) -> list[dict[str, str]]:
    idle(page)  # the marks of the last script run, not those of one being replaced
    return page.evaluate(MARKS)


def label(r: dict) -> str:
    return f"Round {r['index']} · {'≈' if r['completion_estimated'] else ''}{r['completion_tokens']:,} tokens"


def toggle_seams(page) -> None:
    idle(page)
    after_run(page, lambda: page.get_by_text("Show seams", exact=True).click())


def start_long_run(page, app_url: str, prompt: str) -> None:
    """A run on the demo (its banner shown) that goes on for a while: 64 tokens a round until the
    32k window is full, some 500 rounds (the test stops it)."""
    open_studio(page, app_url)
    choose(page, "Model", "demo-32k")
    set_number(page, "Max tokens per round", 64)
    set_number(page, "Max rounds", 500)
    generate(page, prompt)
    running(page)


# ---------------------------------------------------------------- seam marks


def test_every_seam_has_a_mark_with_its_round_and_tokens_and_the_toggle_hides_them(page, app_url):
    open_studio(page, app_url)
    set_number(page, "Max tokens per round", 512)
    generate(page, SHORT)
    finished(page)
    rounds = json.loads(download(page, "JSON"))["rounds"]
    assert len(rounds) >= 5
    found = marks(page)
    assert len(found) == len(rounds) - 1  # one per seam
    assert [m["rounds"] for m in found] == [str(r["index"]) for r in rounds[1:]]
    assert [m["label"] for m in found] == [label(r) for r in rounds[1:]]
    assert [m["shown"] for m in found] == [json.dumps(m["label"], ensure_ascii=False) for m in found]
    # the marks are no part of the answer: neither of its text on screen nor of the download
    assert "Round 2" not in page.get_by_role("tabpanel").first.inner_text()
    assert download(page, "Download output").decode("utf-8") == demo_document(SHORT)
    toggle_seams(page)
    assert marks(page) == []
    expect(page.get_by_role("switch", name="Show seams")).not_to_be_checked()
    page.get_by_role("link", name="Settings").click()  # the choice lasts the session
    page.get_by_role("link", name="Studio").click()
    page.locator(".st-key-clear_run").wait_for()
    expect(page.get_by_role("switch", name="Show seams")).not_to_be_checked()
    assert marks(page) == []
    toggle_seams(page)
    assert [m["label"] for m in marks(page)] == [label(r) for r in rounds[1:]]


def test_a_run_opened_from_the_history_has_its_marks_and_copy(page, app_url):
    prompt = "Write about 2500 tokens on the harbours of Brittany, with headings."
    open_studio(page, app_url)
    set_number(page, "Max tokens per round", 512)
    generate(page, prompt)
    finished(page)
    transcript = json.loads(download(page, "JSON"))
    rounds = transcript["rounds"]
    assert len(rounds) >= 4
    page.goto(f"{app_url}/runs?{STORED_PARAM}={transcript['run_id']}")
    page.locator(".st-key-open_run").wait_for()
    drawn(page)
    assert [m["label"] for m in marks(page)] == [label(r) for r in rounds[1:]]
    expect(page.get_by_role("button", name="Copy", exact=True)).to_be_visible()
    assert "Round 2" not in page.get_by_role("tabpanel").first.inner_text()


def test_marks_appear_while_the_run_streams_and_look_right_in_light_and_dark(browser, app_url):
    for scheme in ("light", "dark"):
        context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme=scheme)
        context.set_default_timeout(WAIT)
        page = context.new_page()
        try:
            start_long_run(
                page, app_url, f"Write about 40000 tokens on the lighthouses of Biscay ({scheme})."
            )
            page.wait_for_function(
                """() => document.querySelectorAll('[role=tabpanel] .cm-seam').length >= 3
                         && / tok\\/s/.test(document.querySelector('.st-key-run_head').textContent)""",
                polling=100,
                timeout=WAIT,
            )
            page.locator(".st-key-run_head").evaluate("head => head.scrollIntoView({block: 'start'})")
            page.mouse.move(5, 5)
            drawn(page)
            assert page.locator(".st-key-stop_run").is_visible()  # still streaming when shot
            shot(page, f"glance-streaming-head-{scheme}", full_page=False)  # speed, gauge, toggle
            # the second mark at the bottom: the run's head, the gauge and the marks on one screen
            page.locator("[role=tabpanel] .cm-seam").nth(1).evaluate(
                "mark => mark.scrollIntoView({block: 'end'})"
            )
            page.mouse.move(5, 5)
            drawn(page)
            assert page.locator(".st-key-stop_run").is_visible()  # still streaming when shot
            shot(page, f"glance-streaming-{scheme}", full_page=False)
            page.locator(".st-key-stop_run button").click()
            finished(page)
        finally:
            context.close()


# ---------------------------------------------------------------- the status line and the gauge


def test_the_status_line_shows_tokens_per_second_while_the_run_goes(page, app_url):
    start_long_run(page, app_url, "Write about 40000 tokens on the harbours of Brittany.")
    page.wait_for_function(
        "() => / tok\\/s/.test(document.querySelector('.st-key-run_head')?.textContent || '')",
        polling=100,
        timeout=WAIT,
    )
    line = status(page)
    rate = RATE.search(line)
    assert rate and int(rate.group(1).replace(",", "")) > 0 and "Generating" in line
    page.locator(".st-key-stop_run button").click()
    finished(page)
    assert "tok/s" not in status(page)  # a speed is news only while the run goes


GAUGE_PARTS = """() => Object.fromEntries([...document.querySelectorAll('[data-testid=stVegaLiteChart] path')]
    .filter(path => /part: /.test(path.getAttribute('aria-label') || ''))
    .map(path => { const box = path.getBoundingClientRect();
                   return [/part: (\\w+)/.exec(path.getAttribute('aria-label'))[1],
                           {left: box.left, right: box.right, width: box.width}]; }))"""


def test_the_gauge_shows_prompt_and_generated_as_separate_parts(page, app_url):
    open_studio(page, app_url)
    choose(page, "Model", "demo-32k")  # a 17-token prompt in a 32k window: a sliver of the bar
    generate(page, "Write about 1500 tokens on the lighthouses of Cornwall.")
    finished(page)
    drawn(page)
    parts = page.evaluate(GAUGE_PARTS)
    assert set(parts) == {"prompt", "generated", "remaining"}
    assert parts["prompt"]["width"] >= 3 and parts["generated"]["width"] >= 3  # both to be seen
    assert parts["prompt"]["right"] < parts["generated"]["left"] < parts["generated"]["right"]


# ---------------------------------------------------------------- copy


def test_copy_puts_the_whole_answer_on_the_clipboard_from_the_keyboard(browser, app_url):
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, permissions=["clipboard-read", "clipboard-write"]
    )
    context.set_default_timeout(WAIT)
    page = context.new_page()
    prompt = "Write about 2500 tokens on the tides of the Channel, with a table and code."
    try:
        open_studio(page, app_url)
        set_number(page, "Max tokens per round", 700)
        generate(page, prompt)
        finished(page)
        idle(page)
        page.evaluate("() => navigator.clipboard.writeText('nothing copied yet')")
        button = page.get_by_role("button", name="Copy", exact=True)
        button.focus()
        page.keyboard.press("Enter")
        expect(page.locator(".cm-copy-status")).to_have_text(re.compile(r"^Copied [\d,]+ characters$"))
        copied = page.evaluate("() => navigator.clipboard.readText()")
        assert copied == download(page, "Download output").decode("utf-8") == demo_document(prompt)
        assert "Round 2" not in copied  # no seam mark in it
        page.locator(".st-key-doc_tools").scroll_into_view_if_needed()
        page.evaluate("() => document.activeElement?.blur()")  # no button's tooltip over the row
        page.mouse.move(5, 5)
        expect(page.get_by_test_id("stTooltipContent")).to_have_count(0)
        drawn(page)
        shot(page, "glance-copied-light", full_page=False)
    finally:
        context.close()


# ---------------------------------------------------------------- the first screen


def test_the_prompt_and_generate_are_on_the_first_screen_with_the_demo_banner(browser, app_url):
    for width, height in ((1280, 800), (1440, 900)):
        for scheme in ("light", "dark"):
            context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
            context.set_default_timeout(WAIT)
            page = context.new_page()
            try:
                open_studio(page, app_url)
                page.get_by_text("offline demo model").first.wait_for()
                expect(page.get_by_text("offline demo model").first).to_be_in_viewport()
                expect(page.get_by_label("Prompt", exact=True)).to_be_in_viewport(ratio=1)
                expect(page.get_by_role("button", name="Generate")).to_be_in_viewport(ratio=1)
                drawn(page)
                shot(page, f"glance-first-{width}x{height}-{scheme}", full_page=False)
            finally:
                context.close()
