"""What the browser fetches: the app's own address only, and never what a server's words point at.

- Every page (Studio, Runs, Inspect, Batch, Settings) and a demo run, opened in
  a browser that records every request: none goes anywhere but the app itself;
  nor does the access gate of a shared server (which also slows wrong passwords down).
- A scripted server on loopback whose error body, model names and probe reply
  hold Markdown images pointing back at it (closed, and unclosed):
  the Studio, Settings, Runs and Inspect show those words, and the server counts
  no request for an image.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import WAIT, after_run, click_row, drawn, idle, open_tab, shot, start_app, stop_app
from tests.e2e.test_studio import choose, enabled_input, finished, generate, open_studio, set_number, status

PROMPT = "Write about 400 tokens on the harbours of Cornwall."
BAIT_PROMPT = "Write about 300 tokens on the lighthouses of Finistère."  # the one request the bait refuses
PAGES = (
    ("Studio", ""),
    ("Runs", "runs"),
    ("Inspect", "inspect"),
    ("Batch", "batch"),
    ("Settings", "settings"),
)


def outside(url: str, app_url: str) -> bool:
    """A request that is not to the app itself (data: and blob: URLs stay in the page)."""
    parts, app = urlsplit(url), urlsplit(app_url)
    if parts.scheme in ("data", "blob"):
        return False
    return not (parts.scheme in ("http", "ws") and parts.netloc == app.netloc)


def test_every_page_and_a_demo_run_request_nothing_but_the_app(browser, app_url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(WAIT)
    requests: list[str] = []
    context.on("request", lambda request: requests.append(request.url))
    page = context.new_page()
    try:
        open_studio(page, app_url)
        set_number(page, "Max tokens per round", 200)
        generate(page, PROMPT)
        finished(page)
        assert "Finished" in status(page)
        open_tab(page, "Table & charts")
        page.get_by_test_id("stVegaLiteChart").locator("visible=true").nth(1).wait_for()
        drawn(page)
        page.get_by_role("link", name="Runs").click()  # the run, opened from the history
        search = page.get_by_role("textbox", name="Search")
        search.wait_for()
        idle(page)
        search.fill("harbours of Cornwall")
        after_run(page, lambda: search.press("Enter"))  # the filtered grid, not the one being replaced
        found = page.get_by_text(re.compile(r"^\d+ runs?\.")).first
        found.wait_for()
        count = int(found.inner_text().split()[0])  # 1, or more when a timed-out attempt ran again
        assert count >= 1
        click_row(page, 0, rows=count)  # the newest first
        page.get_by_role("button", name="Inspect seams").click()  # and inspected: seams and charts
        page.get_by_role("heading", name="Inspect", level=1).wait_for()
        open_tab(page, "Charts")
        page.get_by_test_id("stVegaLiteChart").locator("visible=true").nth(1).wait_for()
        drawn(page)
        for title, _ in PAGES:  # through the menu (one session), then each as a fresh page load
            page.get_by_role("link", name=title).click()
            page.get_by_role("heading", name=title, level=1).wait_for()
        for title, path in PAGES:
            page.goto(f"{app_url}/{path}")
            page.get_by_role("heading", name=title, level=1).wait_for()
        page.get_by_role("button", name="Fetch models").click()
        page.locator('[data-testid^="glide-cell"]').first.wait_for(state="attached")
        drawn(page)
    finally:
        context.close()
    assert len(requests) > 20  # the recorder saw the pages load
    assert [url for url in requests if outside(url, app_url)] == []


def test_the_access_gate_requests_nothing_but_the_app_and_slows_wrong_passwords(browser, tmp_path: Path):
    """A shared server with an access password and no server-side key: the gate, and only the app's requests."""
    secrets_file = tmp_path / "secrets.toml"
    secrets_file.write_text('access_password = "correct horse battery"\n')
    proc, url = start_app(
        tmp_path, args=("--secrets.files", str(secrets_file)), env={"CONTINUUM_SHARED": "1"}
    )
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    context.set_default_timeout(WAIT)
    requests: list[str] = []
    context.on("request", lambda request: requests.append(request.url))
    page = context.new_page()
    try:
        page.goto(f"{url}/settings")  # through app.py, which redirects to its gate first
        box = page.get_by_label("Access password")
        slowed = re.compile(r"wait \d+ s before the next one|Try again in \d+ s")
        clicks = 0
        while not page.get_by_text(slowed).count():
            clicks += 1
            assert clicks <= 10, "no slowdown after 10 wrong passwords"
            idle(page)
            box.fill("wrong")
            page.get_by_role("button", name="Enter").click()
            page.wait_for_timeout(300)  # the script run the submit starts (a fast one may never show)
            idle(page)
        assert clicks >= 3  # the gate slows down only after wrong tries (two are free: tests/test_access.py)
        page.get_by_text(slowed).wait_for()
        drawn(page)
        shot(page, "gate-slowed-light", full_page=False)
        assert page.get_by_role("combobox", name="Provider").count() == 0
    finally:
        context.close()
        stop_app(proc)
    assert len(requests) > 10
    assert [u for u in requests if outside(u, url)] == []


# ---------------------------------------------------------------- a server whose words hold images


@dataclass
class ImageBait:
    """A server on loopback: models, a probe reply and an error, all holding Markdown images of it."""

    httpd: ThreadingHTTPServer
    image_requests: list[str] = field(default_factory=list)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def base_url(self) -> str:
        return self.origin + "/v1"

    def image(self, name: str) -> str:
        return f"{self.origin}/img/{name}.png"

    @property
    def model(self) -> str:
        return f"bait ![model]({self.image('model')})"

    @property
    def error(self) -> str:
        # the message ends inside an image; Continuum's own message closes it: "(HTTP 400 …: <message>)"
        return f"Bad request ![closed]({self.image('error')}) and ![unclosed]({self.image('unclosed')}"


PNG = bytes.fromhex(  # 1x1 transparent PNG: were an image fetched, it would load
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082"
)


@pytest.fixture(scope="module")
def bait() -> Iterator[ImageBait]:
    server = ImageBait(ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler))
    owner = server

    class Handler(BaseHTTPRequestHandler):
        def reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path.startswith("/img/"):
                owner.image_requests.append(self.path)
                self.reply(200, PNG, "image/png")
                return
            models = [{"id": owner.model, "object": "model", "owned_by": f"![owner]({owner.image('owner')})"}]
            self.reply(200, json.dumps({"object": "list", "data": models}).encode(), "application/json")

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            if "lighthouses of Finist" not in body:  # the probe's requests: a reply that is an image
                reply = f"![probe]({owner.image('probe')}) and some words after the picture, " * 3
                delta = {"choices": [{"index": 0, "delta": {"content": reply}}]}
                done = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                stream = f"data: {json.dumps(delta)}\n\ndata: {json.dumps(done)}\n\ndata: [DONE]\n\n"
                self.reply(200, stream.encode(), "text/event-stream")
                return
            error = {"error": {"message": owner.error, "type": "invalid_request_error"}}
            self.reply(400, json.dumps(error).encode(), "application/json")

        def log_message(self, *args: object) -> None:
            pass

    server.httpd.RequestHandlerClass = Handler
    threading.Thread(target=server.httpd.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def test_images_in_a_servers_words_are_never_fetched(browser, app_url, bait: ImageBait):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(WAIT)
    page = context.new_page()
    main = page.get_by_test_id("stMainBlockContainer")
    try:
        page.goto(f"{app_url}/settings")
        choose(page, "Provider", "Custom (OpenAI-compatible)")
        box = enabled_input(page, "Base URL")
        box.fill(bait.base_url)
        box.press("Enter")
        expect(enabled_input(page, "Base URL")).to_have_value(bait.base_url)
        page.get_by_role("button", name="Test connection").click()
        main.get_by_text("1 models listed").wait_for()
        page.get_by_role("link", name="Studio").click()
        model = page.get_by_role("combobox", name="Model")
        model.click()
        page.get_by_role("option", name=bait.model, exact=True).click()
        expect(model).to_have_value(bait.model)
        expect(main).to_contain_text(bait.image("model"))  # the caption under the form
        page.get_by_role("link", name="Settings").click()
        expect(page.get_by_test_id("stSidebar")).to_contain_text(bait.image("model"))
        page.get_by_role("button", name="Probe continuation").click()
        page.get_by_text("What the server answered").click()  # the probe has ended
        drawn(page)
        shot(page, "inert-settings-light", full_page=False)

        page.get_by_role("link", name="Studio").click()
        generate(page, BAIT_PROMPT)
        finished(page)
        error = main.get_by_test_id("stAlert").filter(has_text="Bad request")
        error.wait_for()
        drawn(page)
        assert bait.image_requests == []
        expect(error).to_contain_text(bait.image("unclosed"))  # the words are shown, as text
        expect(error).to_contain_text(bait.image("error"))
        shot(page, "inert-studio-error-light", full_page=False)

        page.goto(f"{app_url}/runs")  # the failed run, stored: its error and model on the Runs page
        search = page.get_by_role("textbox", name="Search")
        search.wait_for()
        idle(page)  # the page app.py routed to, not the one it is replacing
        search.fill("lighthouses of Finistère")
        after_run(page, lambda: search.press("Enter"))
        found = main.get_by_text(re.compile(r"^\d+ runs?\.")).first
        found.wait_for()
        count = int(found.inner_text().split()[0])  # 1, or more when a timed-out attempt ran again
        assert count >= 1
        click_row(page, 0, rows=count)  # the newest first
        expect(main.get_by_test_id("stAlert").filter(has_text="Bad request")).to_contain_text(
            bait.image("unclosed")
        )
        drawn(page)
        shot(page, "inert-runs-error-light", full_page=False)
    except Exception:
        shot(page, "inert-failure", full_page=False)
        raise
    finally:
        context.close()
    assert bait.image_requests == []
