"""A 10 MB prompt in a real browser: the message, and whether the app stays usable.

Drives the real app (``streamlit run app.py``) in Debian's headless Chromium:
pastes 10 MiB into the Studio's prompt (one input event, like a paste), presses
Generate, and records how long each step took:

- ``paste_to_message_s``: Generate pressed → the refusal naming the size is on screen
  (it includes Chromium laying out 10 MB of text in the text area and the upload);
- ``runs_page_s``: the Runs page opens after that (target: within 2 s on an idle machine);
- ``studio_back_s``: back to the Studio, whose prompt was cleared;
- ``normal_run_s``: a 300-token demo run started afterwards finishes.

Nothing here is a test assertion: tests/test_pages_studio.py checks the message
and that the Studio still works (AppTest); this records the browser's timings.

Run: ``.venv/bin/python bench/bench_bad_input.py``. Writes ``bench/results/bad_input.json``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, start_app, stop_app  # noqa: E402
from tests.e2e.test_bad_input import paste  # noqa: E402

TEN_MB = 10 * 1024 * 1024
RESULTS = ROOT / "bench" / "results" / "bad_input.json"
WAIT = 180_000


def main() -> int:
    from playwright.sync_api import expect, sync_playwright

    figures: dict[str, float | int | str] = {"prompt_chars": TEN_MB}
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_app(Path(tmp))
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                page.set_default_timeout(WAIT)
                page.goto(url)
                area = page.get_by_label("Prompt", exact=True)
                area.wait_for()
                paste(page, "Prompt", "z", TEN_MB)
                start = time.monotonic()
                page.get_by_role("button", name="Generate").click()
                expect(page.get_by_text("The prompt is 10,485,760 characters", exact=False)).to_be_visible(
                    timeout=WAIT
                )
                figures["paste_to_message_s"] = round(time.monotonic() - start, 2)
                start = time.monotonic()
                nav = page.get_by_test_id("stSidebarNavItems")
                nav.get_by_role("link", name="Runs").click()
                page.get_by_role("heading", name="Runs", exact=True).wait_for()
                figures["runs_page_s"] = round(time.monotonic() - start, 2)
                start = time.monotonic()
                nav.get_by_role("link", name="Studio").click()
                area.wait_for()
                figures["studio_back_s"] = round(time.monotonic() - start, 2)
                figures["prompt_chars_after"] = int(area.evaluate("a => a.value.length"))
                start = time.monotonic()
                area.fill("Write about 300 tokens on tides.")
                page.get_by_role("button", name="Generate").click()
                page.locator(".st-key-clear_run").wait_for()
                figures["normal_run_s"] = round(time.monotonic() - start, 2)
                browser.close()
        finally:
            stop_app(proc)
    figures["load_average_1m"] = round(os.getloadavg()[0], 2)
    figures["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    for key, value in figures.items():
        print(f"{key:>22}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
