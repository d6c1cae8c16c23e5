"""Browser tests: the real app (``streamlit run app.py``) driven by Debian's headless Chromium.

A session-scoped fixture starts the app on a free loopback port with a fast demo
model, no provider keys and a temporary database, and stops it at the end.
Screenshots go to ``tests/e2e/artifacts/`` (git-ignored).

Waits follow the app's state, never the clock: an element, the end of the script
run a click starts (:func:`after_run`), a page fully drawn (:func:`drawn`), a grid
showing the rows expected (:func:`click_row`). ``WAIT`` only bounds them, generously.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from tests.conftest import PROVIDER_KEY_VARS

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
E2E_DEMO_RATE = "1500"  # tokens/s: fast, but slow enough to see (and stop) a run mid-stream
# The longest the app may take to reach a state a test waits for. Waits follow the app's state
# (an element, a script run's end); this limit only bounds them, generously: a loaded machine
# (two test workers and their browsers on two cores) is slow, and a passing wait never uses it.
WAIT = 120_000  # ms
expect.set_options(timeout=WAIT)


# A browser test that times out waiting for the page runs again, at most twice (pytest-rerunfailures;
# reruns show as "R" in the summary). Under a fully loaded 2-core machine a click can land while
# Streamlit replaces the widget, and the wait for its effect then runs out: seen once or twice
# per full run in test_requests.py and test_studio.py in session 3. Only Playwright timeouts are
# retried: a wrong text, a leaked key or an outside request fails at once. The causes are for a
# later session to remove; see the README's Development section.
E2E_RERUNS = 2


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here is an ``e2e`` test: ``-m "not e2e"`` skips the browser."""
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.flaky(reruns=E2E_RERUNS, only_rerun=["TimeoutError"]))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(
    url: str, proc: subprocess.Popen[bytes], timeout: float = WAIT / 1000, path: str = "/_stcore/health"
) -> None:
    """Wait until ``url + path`` answers 200 (default: Streamlit's health check) while ``proc`` runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}{path}", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)  # polling a starting server, not making a test pass
    raise RuntimeError(f"streamlit did not become healthy at {url}")


def start_app(
    tmp: Path,
    demo_rate: str = E2E_DEMO_RATE,
    port: int | None = None,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    prefix: Sequence[str] = (),
) -> tuple[subprocess.Popen[bytes], str]:
    """Start the app on ``port`` (default: a free one) with ``tmp/e2e.sqlite3`` as its history.

    ``args``: more ``streamlit run`` options (``--server.address`` among them replaces
    127.0.0.1); ``env``: variables added to a copy of this environment without provider keys;
    ``prefix``: a command the app is started through (it must exec the app: its pid is the app's).
    """
    port = port or free_port()
    full_env = {
        k: v for k, v in os.environ.items() if k not in PROVIDER_KEY_VARS and k != "CONTINUUM_API_KEY"
    }
    full_env.update(
        CONTINUUM_DEMO_RATE=demo_rate,
        CONTINUUM_DB=str(tmp / "e2e.sqlite3"),
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    full_env.update(env or {})
    address = () if "--server.address" in args else ("--server.address", "127.0.0.1")
    command = [*prefix, sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
    command += ["--server.port", str(port), *address, "--browser.gatherUsageStats", "false", *args]
    log = (tmp / "streamlit.log").open("wb")
    proc = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
    except Exception:
        proc.kill()
        raise
    return proc, url


def stop_app(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@pytest.fixture(scope="session")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of the app under test (one Streamlit process for the whole session)."""
    tmp = tmp_path_factory.mktemp("app")
    proc, url = start_app(tmp)
    try:
        yield url
    finally:
        stop_app(proc)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "streamlit.log").write_bytes((tmp / "streamlit.log").read_bytes())


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh browser context (its own Streamlit session) per test, light theme."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    context.set_default_timeout(WAIT)
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()


WATCH_RUNS = """() => {
    const app = document.querySelector('[data-testid=stApp]');
    if (window.__runWatch) window.__runWatch.disconnect();
    window.__runStates = [];
    window.__runWatch = new MutationObserver(records => {  // every state passed through, even briefly
        for (const record of records) window.__runStates.push(record.oldValue);
        window.__runStates.push(app.getAttribute('data-test-script-state'));
    });
    window.__runWatch.observe(
        app, {attributes: true, attributeFilter: ['data-test-script-state'], attributeOldValue: true});
}"""
RUN_DONE = """() => window.__runStates.includes('running')
    && document.querySelector('[data-testid=stApp]').getAttribute('data-test-script-state') === 'notRunning'"""


IDLE = """() => document.querySelector('[data-testid=stApp]')?.getAttribute('data-test-script-state')
    === 'notRunning'"""


def idle(page, timeout: float = WAIT) -> None:
    """Wait until no script run is going (a click during a rerun may land on a widget being replaced)."""
    page.wait_for_function(IDLE, timeout=timeout, polling=100)


def after_run(page, action: Callable[[], object], timeout: float = WAIT) -> None:
    """Do ``action`` (a click, a key) and wait for the script run it starts to end.

    Follows the app's state (the ``data-test-script-state`` Streamlit keeps on its root
    element): a run must start after the action and then stop, however long either takes.
    """
    page.evaluate(WATCH_RUNS)
    action()
    page.wait_for_function(RUN_DONE, timeout=timeout)


DRAWN = """() => !document.querySelector('[data-testid=stSkeleton]')
    && [...document.querySelectorAll('[data-testid=stVegaLiteChart]')]
        .filter(chart => chart.offsetParent !== null)
        .every(chart => chart.querySelector('svg.marks g[class*="mark-"] > *'))"""
PAINTED = """() => document.fonts.ready.then(
    () => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done))))"""


def drawn(page, timeout: float = WAIT) -> None:
    """Wait until the page is drawn: no element still a skeleton, every visible chart with its
    marks, the fonts loaded, and two frames painted since (grids and scrolls draw on a frame)."""
    page.wait_for_function(DRAWN, timeout=timeout, polling=100)
    page.evaluate(PAINTED)


def click_row(page, row: int, rows: int, tries: int = 3) -> None:
    """Select ``row`` of the page's table (a canvas grid: click its checkbox cell) once the grid
    shows ``rows`` rows, and wait until the selection holds with no script run going.

    The grid's accessible table says which row is selected (``aria-selected``). A click that
    lands while a rerun replaces the grid is lost, so the row is clicked again (only while
    it is not selected: a second click would clear it), at most ``tries`` times.
    """
    grid = page.get_by_test_id("stDataFrame")
    table = grid.locator("table[role=grid]")
    expect(table).to_have_attribute("aria-rowcount", str(rows + 1))
    selected = table.locator(f"tbody tr[aria-rowindex='{row + 2}'][aria-selected='true']")
    for attempt in range(tries):
        drawn(page)
        idle(page)
        if selected.count() == 0:
            grid.click(position={"x": 18, "y": 35 * row + 35 + 17})
        try:
            selected.wait_for(state="attached", timeout=10_000)
            page.wait_for_timeout(300)  # the rerun the selection starts
            idle(page)
            if selected.count():
                return
        except PlaywrightTimeoutError:
            if attempt == tries - 1:
                raise


def open_tab(page, name: str, tries: int = 3) -> None:
    """Open the tab ``name`` once no script run is going, and wait until it is the selected one
    with no run going. A tab with ``on_change="rerun"`` starts a rerun; a click that lands while
    a rerun replaces the tabs is lost, so the tab is clicked again while it is not selected."""
    tab = page.get_by_role("tab", name=name)
    for attempt in range(tries):
        idle(page)
        if tab.get_attribute("aria-selected") != "true":
            tab.click()
        try:
            expect(tab).to_have_attribute("aria-selected", "true", timeout=10_000)
            page.wait_for_timeout(300)  # the rerun the click starts
            idle(page)
            if tab.get_attribute("aria-selected") == "true":
                return
        except AssertionError:
            if attempt == tries - 1:
                raise


def shot(page, name: str, full_page: bool = True) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
