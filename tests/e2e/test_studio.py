"""The Studio in a real browser: runs, Stop, reload, errors, downloads, and how it looks."""

from __future__ import annotations

import csv
import io
import json
import re

from playwright.sync_api import expect

from core.demo import behaviour_url, demo_document
from core.services.plain import plain_text
from tests.e2e.conftest import WAIT, drawn, idle, open_tab, shot

SHORT = "Write about 3000 tokens on the history of the printing press, with headings."
LONG = "Write about 20000 tokens on lighthouses of the Atlantic coast."
STATUS = re.compile(r"\d+ rounds? · ")
LONG_WAIT = WAIT


def open_studio(page, url: str) -> None:
    page.goto(url)
    page.get_by_label("Prompt", exact=True).wait_for()


def choose(page, label: str, option: str) -> None:
    idle(page)  # a choice made while a rerun redraws the page may be drawn over by the old value
    box = page.get_by_role("combobox", name=label)
    box.click()
    box.fill(option)  # filter first: the list is virtualised, a long one may not draw the option
    page.get_by_role("option", name=option, exact=True).click()
    expect(box).to_have_value(option)


def set_number(page, label: str, value: int) -> None:
    page.get_by_role("spinbutton", name=label).fill(str(value))


def generate(page, prompt: str) -> None:
    idle(page)  # the form as the last rerun drew it, not one being replaced
    page.get_by_label("Prompt", exact=True).fill(prompt)
    page.get_by_role("button", name="Generate").click()


def running(page) -> None:
    page.locator(".st-key-stop_run").wait_for()


def finished(page) -> None:
    """Wait for the end of the run (the "New run" button replaces Stop)."""
    page.locator(".st-key-clear_run").wait_for(timeout=LONG_WAIT)


def status(page) -> str:
    return page.locator(".st-key-run_head").inner_text()


def tokens_on_screen(page) -> int:
    match = re.search(r"([\d,]+) tokens", status(page))
    assert match, status(page)
    return int(match.group(1).replace(",", ""))


def wait_for_tokens(page, at_least: int) -> None:
    """Wait until the status line counts ``at_least`` tokens (polling gently: the page is busy)."""
    page.wait_for_function(
        """(n) => { const e = document.querySelector('.st-key-run_head');
                    const m = e && /([\\d,]+) tokens/.exec(e.textContent);
                    return m && parseInt(m[1].replace(/,/g, '')) >= n; }""",
        arg=at_least,
        polling=100,
        timeout=LONG_WAIT,
    )


def download(page, label: str) -> bytes:
    with page.expect_download() as info:
        page.get_by_role("button", name=label, exact=True).click()
    return info.value.path().read_bytes()


def document_text(page, md: str) -> str:
    """The Document tab's text, once its code blocks (highlighted lazily) have all rendered."""
    fences = sum(1 for line in md.split("\n") if line.lstrip().startswith(("```", "~~~"))) // 2
    page.wait_for_function(
        """(n) => [...document.querySelectorAll('[role=tabpanel] [data-testid="stCode"] code')]
                  .filter(c => c.textContent.trim()).length >= n""",
        arg=fences,
        polling=200,
        timeout=LONG_WAIT,
    )
    return page.get_by_role("tabpanel").first.inner_text()


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


def markdown_words(md: str) -> list[str]:
    """The words a reader sees once ``md`` is rendered (markers, fences and rules removed)."""
    lines = []
    for line in md.split("\n"):
        if line.lstrip().startswith(("```", "~~~")):
            continue
        lines.append(re.sub(r"^\s*(\d+\.|[-*+])\s+", "", line))
    return words("\n".join(lines))


# ---------------------------------------------------------------- a run, end to end


def test_a_multi_round_run_streams_to_the_end(page, app_url):
    open_studio(page, app_url)
    shot(page, "studio-empty-light")
    set_number(page, "Max tokens per round", 512)
    generate(page, SHORT)
    running(page)
    finished(page)
    text = status(page)
    rounds = int(re.search(r"(\d+) rounds", text).group(1))
    assert "Finished" in text and rounds >= 5
    open_tab(page, "Rounds")
    page.get_by_text(re.compile(rf"^Round {rounds} ·")).wait_for()
    assert page.get_by_text(re.compile(r"^Round \d+ ·")).count() == rounds


def test_the_studio_looks_right_during_and_after_a_run_in_light_and_dark(browser, app_url):
    for scheme in ("light", "dark"):
        context = browser.new_context(viewport={"width": 1440, "height": 1400}, color_scheme=scheme)
        page = context.new_page()
        try:
            open_studio(page, app_url)
            choose(page, "Model", "demo-32k")
            generate(page, "Write about 7000 tokens on the history of cartography, with tables and code.")
            running(page)
            wait_for_tokens(page, 3000)
            shot(page, f"studio-running-{scheme}", full_page=False)
            finished(page)
            shot(page, f"studio-finished-{scheme}", full_page=False)
            open_tab(page, "Rounds")
            page.get_by_text(re.compile(r"^Round 2 ·")).wait_for()
            shot(page, f"studio-rounds-{scheme}", full_page=False)
            open_tab(page, "Table & charts")
            page.get_by_test_id("stVegaLiteChart").nth(1).wait_for()
            page.locator('[data-testid^="glide-cell"]').first.wait_for(state="attached")
            drawn(page)
            shot(page, f"studio-table-{scheme}", full_page=False)
        finally:
            context.close()


# ---------------------------------------------------------------- Stop and reload


def slow_demo(demo_server: str, name: str) -> str:
    """The demo at 150 tokens/s (a per-request behaviour): a run long enough to act on mid-way."""
    return behaviour_url(demo_server, rate=150, k=name)


def test_stop_ends_the_run_and_keeps_the_text(page, app_url, demo_server):
    use_custom_server(page, app_url, slow_demo(demo_server, "e2e-stop"), None, model="demo-32k")
    generate(page, LONG)
    running(page)
    wait_for_tokens(page, 100)
    page.locator(".st-key-stop_run button").click()
    finished(page)
    assert "Cancelled" in status(page)
    page.get_by_text("Stopped by you").wait_for()
    kept = download(page, "Download output").decode("utf-8")
    assert kept and demo_document(LONG).startswith(kept) and len(kept) < len(demo_document(LONG))
    shot(page, "studio-stopped-light", full_page=False)


def test_a_reload_mid_run_reattaches_to_the_running_job(page, app_url, demo_server):
    prompt = "Write about 1500 tokens on the lighthouses of Brittany."
    use_custom_server(page, app_url, slow_demo(demo_server, "e2e-reload"), None)
    generate(page, prompt)
    running(page)
    wait_for_tokens(page, 100)
    assert re.search(r"[?&]run=[\w-]{20,}", page.url)
    page.reload()
    # The same run, shown again from its first word, goes on to the end: a reload neither
    # stops it nor loses it (a stopped or lost run could not finish with the whole text).
    finished(page)
    assert "Finished" in status(page)
    assert download(page, "Download output").decode("utf-8") == demo_document(prompt)


def test_another_browser_does_not_see_the_run(browser, page, app_url):
    open_studio(page, app_url)
    generate(page, SHORT)
    finished(page)
    other = browser.new_context().new_page()
    try:
        open_studio(other, app_url)
        other.get_by_text("Nothing generated yet").wait_for()
        other.goto(re.sub(r"run=[\w-]+", "run=not-a-real-run-id-123456", page.url))
        other.get_by_text("Nothing generated yet").wait_for()
    finally:
        other.context.close()


# ---------------------------------------------------------------- errors


def enabled_input(page, label: str):
    """The enabled input labelled ``label`` (a disabled one may linger while the page redraws)."""
    return page.locator(f'input[aria-label="{label}"]:not([disabled])')


def use_custom_server(page, app_url: str, base_url: str, key: str | None, model: str = "demo") -> None:
    page.goto(f"{app_url}/settings")
    choose(page, "Provider", "Custom (OpenAI-compatible)")
    box = enabled_input(page, "Base URL")
    box.fill(base_url)
    box.press("Enter")
    if key is not None:
        enabled_input(page, "API key").fill(key)
        enabled_input(page, "API key").press("Enter")
        page.get_by_test_id("stMainBlockContainer").get_by_text("pasted in Settings").wait_for()
    page.get_by_role("link", name="Studio").click()
    page.get_by_label("Prompt", exact=True).wait_for()
    box = page.get_by_role("combobox", name="Model")
    box.fill(model)
    box.press("Enter")
    expect(box).to_have_value(model)


def test_a_bad_key_is_explained_without_a_traceback(page, app_url, demo_server):
    use_custom_server(page, app_url, behaviour_url(demo_server, auth="key", k="e2e-bad-key"), "wrong-key")
    generate(page, SHORT)
    finished(page)
    page.get_by_text("The provider rejected the API key").wait_for()
    assert "Traceback" not in page.content() and "wrong-key" not in page.content()
    shot(page, "studio-bad-key-light", full_page=False)


def test_a_prompt_too_long_for_the_window_is_explained(page, app_url):
    open_studio(page, app_url)
    generate(page, "Summarise this. " + "lorem ipsum dolor sit amet " * 2000)  # refused before sending
    page.get_by_text(re.compile(r"leaves no room|too long for the model")).first.wait_for()
    assert "Traceback" not in page.content()
    shot(page, "studio-overflow-light", full_page=False)


def test_a_server_gone_mid_stream_keeps_the_text_on_screen(page, app_url, demo_server):
    url = behaviour_url(demo_server, drop=200, k="e2e-drop")
    use_custom_server(page, app_url, url, None)
    set_number(page, "Max tokens per round", 4096)
    generate(page, SHORT)
    finished(page)
    md = download(page, "Download output").decode("utf-8")
    assert md and demo_document(SHORT).startswith(md)
    assert "Traceback" not in page.content()


# ---------------------------------------------------------------- downloads


def test_every_download_holds_what_the_screen_showed(page, app_url):
    open_studio(page, app_url)
    set_number(page, "Max tokens per round", 700)
    generate(page, SHORT)
    finished(page)
    shown_tokens = tokens_on_screen(page)
    md = download(page, "Download output").decode("utf-8")
    on_screen = document_text(page, md)
    txt = download(page, "Text").decode("utf-8")
    transcript = json.loads(download(page, "JSON"))
    rows = list(csv.DictReader(io.StringIO(download(page, "CSV").decode("utf-8"))))
    assert md == transcript["text"] == demo_document(SHORT) and txt == plain_text(md)
    assert markdown_words(md) == words(on_screen)
    assert transcript["totals"]["completion_tokens"] == shown_tokens
    open_tab(page, "Rounds")
    expect(page.get_by_text(re.compile(r"^Round \d+ ·"))).to_have_count(
        len(transcript["rounds"])
    )  # all drawn
    assert len(rows) == len(transcript["rounds"])
    assert [int(r["output_tokens"]) for r in rows] == [r["completion_tokens"] for r in transcript["rounds"]]


def test_ctrl_enter_generates_and_downloads_are_named_after_the_prompt(page, app_url):
    open_studio(page, app_url)
    prompt = page.get_by_label("Prompt", exact=True)
    prompt.fill(SHORT)
    prompt.press("Control+Enter")
    finished(page)
    names = []
    for label in ("Download output", "Text", "JSON", "CSV"):
        with page.expect_download() as info:
            page.get_by_role("button", name=label, exact=True).click()
        names.append(info.value.suggested_filename)
    stem = r"write-about-3000-tokens-on-the-history-of-the-\d{8}-\d{4}"
    exts = ("md", "txt", "json", "csv")
    assert all(re.fullmatch(rf"{stem}\.{ext}", n) for n, ext in zip(names, exts, strict=True))


def test_settings_lists_the_models_and_probes_the_server(page, app_url):
    page.goto(f"{app_url}/settings")
    page.get_by_role("button", name="Fetch models").click()
    page.locator('[data-testid^="glide-cell"]').first.wait_for(state="attached")
    page.get_by_role("button", name="Probe continuation").click()
    page.get_by_text("Continuation works").wait_for()
    drawn(page)
    shot(page, "settings-light", full_page=False)
