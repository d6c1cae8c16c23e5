"""Security in a real browser: no key anywhere, inert model output, and the shared-server gate.

- A sentinel key typed into Settings (and another in the server's environment)
  goes through whole runs, a 401, model lists, a probe, every download, the Runs
  and Inspect pages; then the page HTML of every page, the browser's URLs,
  storage and cookies, every websocket frame the server sent, the console, the
  Streamlit server's log (at DEBUG), the demo server's request log and the
  database files are searched for it (the search of ``tests/test_secrets.py``).
- Model output full of script, event-handler and ``javascript:`` payloads, live
  in the Studio and stored on the Runs and Inspect pages, never runs: no dialog
  opens, the flag the payloads set stays unset, no live element exists.
- A server listening beyond loopback with a server-side key asks for the access
  password before anything else, even on the very first request of the process,
  and then shows the page that request asked for. A fresh password-protected
  server (Streamlit still reads ``pages/`` as a legacy folder) shows the gate and
  nothing of the page on a first request for any page's URL.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import expect

from core.demo import behaviour_url, demo_document
from core.services.store import Store
from tests.e2e.conftest import ROOT, WAIT, open_tab, shot, start_app, stop_app
from tests.e2e.test_studio import choose, download, enabled_input, finished, generate, set_number, status
from tests.test_pages_runs import record_run
from tests.test_secrets import files_under, find_leaks, new_sentinel

PROMPT = "Write about 600 tokens on the harbours of Cornwall."
DOWNLOADS = ("Download output", "Text", "JSON", "CSV")


# ---------------------------------------------------------------- servers


def launch_app(
    tmp: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """The app as start_app starts it, at 1,500 demo tokens/s (``--server.address 127.0.0.1`` unless ``args`` say otherwise)."""
    return start_app(tmp, "1500", args=args, env=env)


@dataclass
class DemoProcess:
    url: str
    proc: subprocess.Popen[bytes]


def launch_demo(tmp: Path) -> DemoProcess:
    """The demo model in its own process, logging every request line to ``tmp/demo.log``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.demo", "--port", "0", "--rate", "0", "--verbose"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=(tmp / "demo.log").open("wb"),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    assert "listening on" in line, line
    return DemoProcess(line.rsplit(" ", 1)[1].strip(), proc)


XSS = "\n\n".join(
    [
        "Echo: # Payloads that must stay text",
        "<script>window.__xss='script';alert('script')</script>",
        "<img src=x onerror=\"window.__xss='img';alert('img')\">",
        "<a href=\"javascript:window.__xss='a';alert('a')\">html link</a>",
        "[markdown link](javascript:window.__xss='md')",
        "[spaced link]( javascript:alert(1) )",
        "![markdown image](javascript:alert('mdimg'))",
        "<iframe src=\"javascript:alert('iframe')\" srcdoc=\"<script>parent.__xss='srcdoc'</script>\"></iframe>",
        "<svg onload=\"window.__xss='svg';alert('svg')\"><circle r=5 /></svg>",
        "<details open ontoggle=\"window.__xss='details'\">details</details>",
        "[data link](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "<math><mtext><table><mglyph><style><img src=x onerror=\"window.__xss='mxss'\">",
        "<a href=\"JaVaScRiPt:window.__xss='case'\">mixed case link</a> and the end.",
    ]
)


@dataclass
class App:
    url: str
    tmp: Path
    db: Path
    demo: DemoProcess
    env_key: str  # CONTINUUM_API_KEY of the server: the Custom provider's server-side key
    xss_run: str  # a stored run whose prompt and answer are the payloads


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    tmp = tmp_path_factory.mktemp("security")
    demo = launch_demo(tmp)
    db = tmp / "e2e.sqlite3"  # the file start_app gives the app
    env_key = new_sentinel()
    try:
        xss_run = record_run(db, behaviour_url(demo.url, k="stored-xss"), XSS, max_tokens=60)
        proc, url = launch_app(tmp, "--logger.level", "debug", env={"CONTINUUM_API_KEY": env_key})
        try:
            yield App(url, tmp, db, demo, env_key, xss_run)
        finally:
            stop_app(proc)
    finally:
        demo.proc.terminate()
        demo.proc.wait(10)


# ---------------------------------------------------------------- what the browser holds


@dataclass
class Witness:
    """Everything a browser context received: frames, requests, dialogs, popups, page HTML."""

    frames: list[bytes] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    html: dict[str, str] = field(default_factory=dict)

    def watch(self, context) -> None:  # type: ignore[no-untyped-def]
        """Watch every page of ``context``, popups included (call before opening a page)."""
        context.on("page", self._watch_page)

    def _watch_page(self, page) -> None:  # type: ignore[no-untyped-def]
        def frame(payload: str | bytes) -> None:
            self.frames.append(payload if isinstance(payload, bytes) else payload.encode())

        def dialog(d) -> None:  # type: ignore[no-untyped-def]
            self.dialogs.append(d.message)
            d.dismiss()

        page.on("websocket", lambda ws: ws.on("framereceived", frame))
        page.on("request", lambda r: self.urls.append(r.url))
        page.on("framenavigated", lambda f: self.urls.append(f.url))
        page.on("console", lambda m: self.console.append(m.text))
        page.on("dialog", dialog)

    def snapshot(self, page, name: str) -> None:  # type: ignore[no-untyped-def]
        self.html[name] = page.content()
        self.urls.append(page.url)

    def artifacts(self, page) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
        storage = page.evaluate(
            "() => JSON.stringify([{...localStorage}, {...sessionStorage}, document.cookie])"
        )
        found = {f"html of {name}": text.encode() for name, text in self.html.items()}
        found["websocket frames received"] = b"\n".join(self.frames)
        found["urls"] = "\n".join(self.urls).encode()
        found["console"] = "\n".join(self.console).encode()
        found["storage"] = storage.encode()
        found["cookies"] = repr(page.context.cookies()).encode()
        return found


def settled(page) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_function("() => !document.querySelector('[data-testid=stSkeleton]')", timeout=WAIT)


def to_studio(page) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("link", name="Studio").click()
    page.get_by_label("Prompt", exact=True).wait_for()


def set_base_url(page, url: str) -> None:  # type: ignore[no-untyped-def]
    expect(enabled_input(page, "Base URL")).to_have_count(1)  # another provider's may linger a moment
    box = enabled_input(page, "Base URL")
    box.fill(url)
    box.press("Enter")
    expect(enabled_input(page, "Base URL")).to_have_value(url)


def use_model(page, model: str) -> None:  # type: ignore[no-untyped-def]
    box = page.get_by_role("combobox", name="Model")
    box.fill(model)
    box.press("Enter")
    expect(box).to_have_value(model)


def new_run(page) -> None:  # type: ignore[no-untyped-def]
    """Clear the finished run, so the next wait for the end of a run waits for the next one."""
    page.locator(".st-key-clear_run button").click()
    page.get_by_text("Nothing generated yet").wait_for()


def downloads(page, witness_dir: Path, stem: str) -> list[bytes]:  # type: ignore[no-untyped-def]
    got = []
    for label in DOWNLOADS:
        data = download(page, label)
        (witness_dir / f"{stem}-{label.replace(' ', '-')}").write_bytes(data)
        got.append(data)
    return got


# ---------------------------------------------------------------- the sentinel key


def test_a_sentinel_key_typed_into_settings_leaves_no_trace(browser, app: App):
    key = new_sentinel()
    saved = app.tmp / "downloads"
    saved.mkdir(exist_ok=True)
    open_url = behaviour_url(app.demo.url, auth="open", k="e2e-sentinel")
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    context.set_default_timeout(WAIT)
    seen = Witness()
    seen.watch(context)
    page = context.new_page()
    try:
        page.goto(f"{app.url}/settings")
        choose(page, "Provider", "Custom (OpenAI-compatible)")
        set_base_url(page, open_url)
        enabled_input(page, "API key").fill(key)
        enabled_input(page, "API key").press("Enter")
        page.get_by_test_id("stMainBlockContainer").get_by_text("pasted in Settings").wait_for()
        expect(enabled_input(page, "API key")).to_have_value("")
        page.get_by_role("button", name="Fetch models").click()
        page.locator('[data-testid^="glide-cell"]').first.wait_for(state="attached")
        seen.snapshot(page, "settings")

        to_studio(page)
        use_model(page, "demo")
        set_number(page, "Max tokens per round", 300)
        generate(page, PROMPT)
        finished(page)
        assert "Finished" in status(page)
        seen.snapshot(page, "studio")
        assert downloads(page, saved, "studio")[0].decode() == demo_document(PROMPT)
        page.get_by_role("link", name="Settings").click()
        page.get_by_role("button", name="Probe continuation").click()  # probes the model chosen above
        page.get_by_text("Continuation works").wait_for()
        seen.snapshot(page, "settings, probed")

        # Still in this session (a reload would start a new one): a 401 with the pasted key, then
        # a run with the server's own key once the pasted one is forgotten.
        set_base_url(page, behaviour_url(app.demo.url, auth="key", k="e2e-sentinel-401"))
        page.get_by_role("button", name="Fetch models").click()  # also shows the URL change was taken
        page.get_by_text("The provider rejected the API key").wait_for()
        seen.snapshot(page, "settings 401")
        to_studio(page)
        new_run(page)
        generate(page, PROMPT)
        finished(page)
        page.get_by_text("The provider rejected the API key").wait_for()
        seen.snapshot(page, "studio 401")
        page.get_by_role("link", name="Settings").click()
        page.get_by_role("button", name="Forget the pasted key").click()
        page.get_by_test_id("stMainBlockContainer").get_by_text("from the environment").wait_for()
        set_base_url(page, open_url)
        page.get_by_role("button", name="Fetch models").click()
        page.locator('[data-testid^="glide-cell"]').first.wait_for(state="attached")
        seen.snapshot(page, "settings, server key")
        to_studio(page)
        new_run(page)
        generate(page, "Write about 300 tokens on the harbours of Devon.")
        finished(page)
        assert "Finished" in status(page)
        seen.snapshot(page, "studio, server key")
        downloads(page, saved, "server-key")
        # The Runs and Inspect pages (each page.goto is a new session).
        run_id = Store(app.db).list_runs(query="harbours of Cornwall", status="finished")[0].id
        page.goto(f"{app.url}/runs")
        page.get_by_test_id("stDataFrame").wait_for()
        settled(page)
        seen.snapshot(page, "runs list")
        page.goto(f"{app.url}/runs?id={run_id}")
        page.locator(".st-key-run_actions").wait_for(timeout=WAIT)
        settled(page)
        seen.snapshot(page, "runs")
        downloads(page, saved, "runs")
        page.goto(f"{app.url}/inspect?id={run_id}")
        settled(page)
        seen.snapshot(page, "inspect")

        found = seen.artifacts(page)
    except Exception:
        shot(page, "security-sentinel-failure", full_page=False)
        raise
    finally:
        context.close()
    assert seen.html and seen.frames and seen.urls and not seen.dialogs
    logs = files_under(app.tmp)  # the database (with -wal/-shm), downloads, Streamlit's and the demo's logs
    assert "/x/auth=open,k=e2e-sentinel/v1/chat/completions" in (app.tmp / "demo.log").read_text()
    assert (
        "Beginning script thread" in (app.tmp / "streamlit.log").read_text()
    )  # a DEBUG line: the level was on
    for secret in (key, app.env_key):
        assert find_leaks(secret, {**found, **logs}) == []


# ---------------------------------------------------------------- inert model output

LIVE_CHECK = """() => {
    const bad = [];
    for (const el of document.querySelectorAll('*')) {
        for (const a of el.attributes) {
            const name = a.name.toLowerCase(), value = a.value.replace(/\\s/g, '').toLowerCase();
            if (name.startsWith('on')) bad.push(`${el.tagName} ${name}`);
            if (['href', 'src', 'xlink:href', 'action', 'formaction', 'data', 'srcdoc'].includes(name)
                && (value.startsWith('javascript:') || value.startsWith('data:text/html') || name === 'srcdoc'))
                bad.push(`${el.tagName} ${name}=${value.slice(0, 40)}`);
        }
    }
    for (const s of document.querySelectorAll('script')) if (s.textContent.includes('__xss')) bad.push('script');
    for (const f of document.querySelectorAll('iframe, embed, object')) bad.push(f.tagName);
    if (window.__xss !== undefined) bad.push('flag ' + window.__xss);
    return bad;
}"""


def live_payloads(page) -> list[str]:  # type: ignore[no-untyped-def]
    return page.evaluate(LIVE_CHECK)


def click_links(page) -> None:  # type: ignore[no-untyped-def]
    """Click every link the payloads made: a javascript: link would run on the click."""
    main = page.get_by_test_id("stMainBlockContainer")
    for name in ("html link", "markdown link", "spaced link", "data link", "mixed case link"):
        links = main.get_by_role("link", name=name)
        for i in range(links.count()):
            links.nth(i).click(no_wait_after=True)
    page.wait_for_timeout(300)  # time for a handler to run, if one could (this can only fail a test)
    for other in page.context.pages:
        if other is not page:
            other.close()


def test_the_checks_catch_a_live_payload(browser):
    """Control: the same checks on a page where the payloads are live report them."""
    context = browser.new_context()
    seen = Witness()
    seen.watch(context)
    page = context.new_page()
    try:
        page.set_content(
            "<img src=x onerror=\"window.__xss='img';alert('img')\">"
            "<a href=\"javascript:window.__xss='a'\">html link</a>"
        )
        page.wait_for_function("() => window.__xss === 'img'")
        assert seen.dialogs == ["img"]
        assert {"IMG onerror", "flag img"} <= set(live_payloads(page))
        assert any(b.startswith("A href=javascript:") for b in live_payloads(page))
    finally:
        context.close()


def assert_inert(page, seen: Witness, where: str) -> None:  # type: ignore[no-untyped-def]
    main = page.get_by_test_id("stMainBlockContainer")
    main.get_by_text("and the end.").first.wait_for(timeout=WAIT)  # the payloads arrived on the page
    assert live_payloads(page) == [], where
    click_links(page)
    assert live_payloads(page) == [] and seen.dialogs == [], where


def test_model_output_with_scripts_and_javascript_links_is_inert_in_the_studio(browser, app: App):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    seen = Witness()
    seen.watch(context)
    page = context.new_page()
    try:
        page.goto(app.url)
        page.get_by_label("Prompt", exact=True).wait_for()
        choose(page, "Provider", "Demo model (offline)")  # the server's key made Custom the default
        generate(page, XSS)  # the in-app demo model echoes the payloads back as its answer
        finished(page)
        assert "Finished" in status(page)
        assert_inert(page, seen, "studio document")
        names = []
        for label in DOWNLOADS:
            with page.expect_download() as info:
                page.get_by_role("button", name=label, exact=True).click()
            names.append(info.value.suggested_filename)
        assert all(
            re.fullmatch(r"echo-payloads-that-must-stay-text[a-z0-9-]*-\d{8}-\d{4}\.(md|txt|json|csv)", n)
            for n in names
        ), names
        open_tab(page, "Rounds")
        page.get_by_text(re.compile(r"^Round 1 ·")).wait_for()
        assert_inert(page, seen, "studio rounds")
        shot(page, "security-xss-studio-light", full_page=False)
    finally:
        context.close()


def test_stored_output_with_scripts_and_javascript_links_is_inert_on_runs_and_inspect(browser, app: App):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    seen = Witness()
    seen.watch(context)
    page = context.new_page()
    try:
        page.goto(f"{app.url}/runs?id={app.xss_run}")
        page.locator(".st-key-run_actions").wait_for(timeout=WAIT)
        settled(page)
        assert_inert(page, seen, "runs")
        shot(page, "security-xss-runs-light", full_page=False)
        page.goto(f"{app.url}/runs")
        page.get_by_test_id("stDataFrame").wait_for()
        settled(page)
        assert live_payloads(page) == []
        page.goto(f"{app.url}/inspect?id={app.xss_run}")
        settled(page)
        page.wait_for_function(  # the seams, payloads and all (their code blocks draw lazily)
            "() => document.querySelector('[data-testid=stMainBlockContainer]').innerText.includes('__xss')",
            timeout=WAIT,
        )
        assert live_payloads(page) == [] and seen.dialogs == []
        shot(page, "security-xss-inspect-light", full_page=False)
    finally:
        context.close()


# ---------------------------------------------------------------- the shared-server gate


@pytest.fixture(scope="module")
def shared_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """The app listening on every interface with a server-side key and an access password."""
    tmp = tmp_path_factory.mktemp("shared")
    secrets_file = tmp / "secrets.toml"
    secrets_file.write_text('access_password = "correct horse battery"\n')
    key = new_sentinel()
    proc, url = launch_app(
        tmp,
        "--server.address",
        "0.0.0.0",
        "--secrets.files",
        str(secrets_file),
        env={"DEEPINFRA_API_KEY": key, "CONTINUUM_DEMO_RATE": "0"},
    )
    try:
        yield url, key, tmp
    finally:
        stop_app(proc)


def test_a_shared_server_asks_for_the_password_first_even_on_a_pages_first_request(browser, shared_app):
    url, key, tmp = shared_app
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    try:
        page.goto(f"{url}/settings")  # the first request this process serves, straight to a page
        box = page.get_by_label("Access password")
        box.wait_for()
        settled(page)
        assert page.get_by_role("combobox", name="Provider").count() == 0
        assert "DeepInfra" not in page.content() and key not in page.content()
        shot(page, "security-gate-light", full_page=False)
        box.fill("correct horse")
        page.get_by_role("button", name="Enter").click()
        page.get_by_text("That is not the access password.").wait_for()
        page.get_by_label("Access password").fill("correct horse battery")
        page.get_by_role("button", name="Enter").click()
        page.get_by_role("heading", name="Settings").wait_for()  # the page the first request asked for
        expect(page).to_have_url(f"{url}/settings")
        to_studio(page)

        # Shared: the in-app demo model works, internal addresses do not, the server key stays home.
        choose(page, "Provider", "Demo model (offline)")  # the server's key made DeepInfra the default
        generate(page, "Write about 200 tokens on the harbours of Kent.")
        finished(page)
        assert "Finished" in status(page)
        page.get_by_role("link", name="Settings").click()
        choose(page, "Provider", "Custom (OpenAI-compatible)")
        set_base_url(page, "http://169.254.169.254/latest/meta-data")
        page.get_by_role("button", name="Fetch models").click()
        page.get_by_text(re.compile("not allowed on this shared server")).wait_for()
        choose(page, "Provider", "DeepInfra")
        page.get_by_test_id("stMainBlockContainer").get_by_text("from the environment").wait_for()
        set_base_url(page, "https://collector.example/v1")
        page.get_by_test_id("stMainBlockContainer").get_by_text("Server key not used").wait_for()
        assert key not in page.content()

        other = browser.new_context().new_page()  # another session: asked again
        try:
            other.goto(url)
            other.get_by_label("Access password").wait_for()
            assert other.get_by_label("Prompt", exact=True).count() == 0
        finally:
            other.context.close()
    finally:
        context.close()
    assert find_leaks(key, files_under(tmp)) == []


def test_several_first_requests_to_a_page_at_once_all_go_through_the_gate(browser, tmp_path: Path):
    """Fresh server, four tabs straight to /settings at the same time: each gets the gate, none an error."""
    secrets_file = tmp_path / "secrets.toml"
    secrets_file.write_text('access_password = "pass"\n')
    proc, url = launch_app(
        tmp_path,
        "--server.address",
        "0.0.0.0",
        "--secrets.files",
        str(secrets_file),
        env={"DEEPINFRA_API_KEY": new_sentinel(), "CONTINUUM_DEMO_RATE": "0"},
    )
    contexts = [browser.new_context() for _ in range(4)]
    try:
        pages = [c.new_page() for c in contexts]
        for page in pages:
            page.goto(f"{url}/settings", wait_until="commit")
        for page in pages:
            page.get_by_label("Access password").wait_for()
            settled(page)
            assert "encountered an error" not in page.content()
            assert page.get_by_role("combobox", name="Provider").count() == 0
    finally:
        for context in contexts:
            context.close()
        stop_app(proc)


# Every page's URL (as Streamlit's legacy pages/ mode names them) and the title the page draws first.
PAGE_URLS = [("studio", "Studio"), ("runs", "Runs"), ("inspect", "Inspect"), ("batch", "Batch")]
PAGE_URLS += [("settings", "Settings"), ("runs?id=0123abcd", "Runs")]


@pytest.mark.parametrize(("path", "title"), PAGE_URLS, ids=[path for path, _ in PAGE_URLS])
def test_a_fresh_servers_first_request_for_any_page_shows_the_gate_and_nothing_of_the_page(
    browser, tmp_path: Path, path: str, title: str
):
    """Only a process's first requests meet Streamlit's legacy pages/ mode (any run of app.py ends
    it), so each URL gets a server of its own."""
    secrets_file = tmp_path / "secrets.toml"
    secrets_file.write_text('access_password = "never given"\n')
    proc, url = launch_app(tmp_path, "--secrets.files", str(secrets_file), env={"CONTINUUM_DEMO_RATE": "0"})
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    try:
        page = context.new_page()
        page.goto(f"{url}/{path}")
        gate, drawn_page = page.get_by_label("Access password"), page.get_by_role("heading", name=title)
        expect(gate.or_(drawn_page).first).to_be_visible()  # whichever comes: the test fails, not hangs
        settled(page)
        assert (gate.count(), drawn_page.count()) == (1, 0)
        assert page.get_by_test_id("stSidebar").count() == 0  # no navigation, no provider, no key status
    finally:
        context.close()
        stop_app(proc)
