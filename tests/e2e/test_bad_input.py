"""Bad input in a real browser: a number out of range, a prompt too long for the window.

The 10 MB prompt in the browser is bench/bench_bad_input.py (Chromium alone takes
tens of seconds to lay out 10 MB in a text area); tests/test_pages_studio.py checks
its message and that the Studio still works afterwards.
"""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.conftest import WAIT, shot
from tests.e2e.test_studio import generate


def open_studio(page, url: str) -> None:
    """The Studio, given a minute for its first page load (the machine may be busy)."""
    page.goto(url)
    page.get_by_label("Prompt", exact=True).wait_for(timeout=WAIT)


def paste(page, label: str, char: str, times: int) -> None:
    """Put ``char * times`` in a text area the way a paste does (one input event; ``fill`` types
    it piece by piece and takes about 20 s for 10 MB)."""
    page.get_by_label(label, exact=True).evaluate(
        """(area, [char, times]) => {
            const set = Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, 'value').set;
            set.call(area, char.repeat(times));
            area.dispatchEvent(new Event('input', {bubbles: true}));
        }""",
        [char, times],
    )


def test_a_zero_max_tokens_is_refused_by_the_input_with_its_minimum(page, app_url: str):
    """Streamlit's number input refuses an out-of-range value (it keeps the last good one)
    and the browser says why; core.continuation.validation stands behind it for other callers."""
    open_studio(page, app_url)
    box = page.get_by_role("spinbutton", name="Max tokens per round")
    box.fill("0")
    box.press("Enter")
    assert box.evaluate("e => e.validationMessage") == "Value must be greater than or equal to 16."


def test_a_prompt_longer_than_the_window_is_refused_with_the_numbers(page, app_url: str):
    open_studio(page, app_url)
    generate(page, "x" * 30_000)
    message = page.get_by_text("This run cannot start")
    expect(message).to_be_visible()
    expect(page.get_by_text("demo's context window is 8,192 tokens", exact=False)).to_be_visible()
    shot(page, "bad-input-window")
