"""One browser session of ``bench/bench_load.py``: its settings, its steps, and what it must never see.

A :class:`Session` is one Playwright browser context (one Streamlit session)
with its own prompt, server prefix, key, model and round size. The steps here
set it up through Settings, start its run, time page opens while it streams,
and check the end. :data:`WATCH_JS` runs in every tab of the context and notes
any other session's prompt, server, run id, key or text that ever shows.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from core.demo import demo_document

WAIT_MS = 180_000
PROMPT_BOX = 'textarea[aria-label="Prompt"]'

# Runs in every page (every tab of a context): on each change of the page, at most every
# 300 ms, search the page's text and URL for what this session must never see.
WATCH_JS = """
window.__forbid = %s; window.__leaks = [];
window.__text = () => {  // the page's text, a space between text nodes (block elements do not merge)
  const parts = [];
  if (!document.body) return '';
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) parts.push(walk.currentNode.nodeValue);
  return parts.join(' ');
};
(() => {
  let due = false;
  const scan = () => {
    due = false;
    const text = window.__text() + ' ' + location.href;
    const words = ' ' + text.replace(/[^\\p{L}\\p{N}_]+/gu, ' ') + ' ';
    for (const f of window.__forbid) {
      const hit = f.words ? words.includes(' ' + f.value + ' ') : text.includes(f.value);
      if (hit && !window.__leaks.some((l) => l.what === f.what)) {
        window.__leaks.push({what: f.what, at: Date.now()});
      }
    }
  };
  new MutationObserver(() => { if (!due) { due = true; setTimeout(scan, 300); } })
    .observe(document, {subtree: true, childList: true, characterData: true});
  window.__scan = scan;
})();
"""


@dataclass
class Session:
    index: int
    name: str
    prompt: str
    model: str
    max_tokens: int
    key: str
    base_url: str = ""
    context: Any = None
    page: Any = None
    run: str = ""
    done: float | None = None
    errors: list[str] = field(default_factory=list)
    mid_leaks: list[str] = field(default_factory=list)
    probes: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, list[float]] = field(default_factory=dict)

    def timed(self, kind: str, seconds: float) -> None:
        self.timings.setdefault(kind, []).append(seconds)


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


@cache
def document(prompt: str) -> str:
    return demo_document(prompt)


@cache
def _joined_words(text: str) -> str:
    return " " + " ".join(words(text)) + " "


@cache
def _phrases(text: str, avoid: str, count: int, size: int) -> tuple[str, ...]:
    ws, others = words(text), _joined_words(avoid)
    found = []
    for start in range(0, min(len(ws), 300) - size, 25):
        phrase = " ".join(ws[start : start + size])
        if f" {phrase} " not in others:
            found.append(phrase)
        if len(found) == count:
            break
    return tuple(found)


def phrases(text: str, avoid: str, count: int = 3, size: int = 6) -> list[str]:
    """Runs of ``size`` words from the first rounds of ``text`` that ``avoid`` lacks."""
    return list(_phrases(text, avoid, count, size))


CONTROL = "control: its own text"  # must be seen: proves the search works


def forbidden(me: Session, everyone: list[Session], runs: bool) -> list[dict[str, Any]]:
    """What ``me``'s pages must never show: any key, and the others' prompts, servers, run ids, text."""
    mine = document(me.prompt)
    out: list[dict[str, Any]] = [{"what": f"key of {s.name}", "value": s.key} for s in everyone]
    out.append({"what": CONTROL, "value": phrases(mine, "", count=1)[0], "words": True})
    for other in everyone:
        if other is me:
            continue
        out.append({"what": f"prompt of {other.name}", "value": other.prompt})
        out.append({"what": f"server of {other.name}", "value": f"k={other.name}"})
        if runs and other.run:
            out.append({"what": f"run id of {other.name}", "value": other.run})
        for phrase in phrases(document(other.prompt), mine):
            out.append({"what": f"text of {other.name}", "value": phrase, "words": True})
    return out


# ---------------------------------------------------------------- browser steps


def watch_script_run(page: Any, marks: dict[str, float]) -> None:
    """Note when the tab asks the server to run the page (``rerun``) and when that run ends (``finished``).

    The frames are read as the browser's network layer gets them (Streamlit's
    own protobuf messages), so ``finished - rerun`` is the server's part of a
    page open, apart from what the busy browser takes to draw it.
    """
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    def sent(payload: bytes | str) -> None:
        if "rerun" not in marks and isinstance(payload, bytes):
            msg = BackMsg()
            msg.ParseFromString(payload)
            if msg.WhichOneof("type") == "rerun_script":
                marks["rerun"] = time.perf_counter()

    def received(payload: bytes | str) -> None:
        if "rerun" in marks and "finished" not in marks and isinstance(payload, bytes):
            msg = ForwardMsg()
            msg.ParseFromString(payload)
            if msg.WhichOneof("type") == "script_finished":
                marks["finished"] = time.perf_counter()

    def on_websocket(ws: Any) -> None:
        ws.on("framesent", sent)
        ws.on("framereceived", received)

    page.on("websocket", on_websocket)


async def open_studio(context: Any, url: str, ready: str) -> tuple[float, Any, dict[str, float]]:
    """A new tab of ``context`` at ``url``: seconds until ``ready`` (a CSS selector) shows.

    Also returns the parts: ``assets``, loading the page's files (until the
    ``load`` event), and ``server``, the session's first script run as the
    browser's network layer sees it (rerun request → script finished); the
    rest is the browser's own work.
    """
    page = await context.new_page()
    marks: dict[str, float] = {}
    watch_script_run(page, marks)
    started = time.perf_counter()
    await page.goto(url)
    loaded = time.perf_counter()
    await page.locator(ready).first.wait_for(timeout=WAIT_MS)
    ended = time.perf_counter()
    parts = {"assets": loaded - started}
    if "finished" in marks:
        parts["server"] = marks["finished"] - marks["rerun"]
    return ended - started, page, parts


BASE_URL_IS = (
    "(v) => [...document.querySelectorAll('input[aria-label=\"Base URL\"]')].some(e => e.value === v)"
)


async def set_up(s: Session, app_url: str) -> None:
    """Settings: the Custom provider, this session's server and key; Studio: model, round size, prompt."""
    page = s.page = await s.context.new_page()
    started = time.perf_counter()
    await page.goto(f"{app_url}/settings")
    await page.get_by_role("combobox", name="Provider").click()
    await page.get_by_role("option", name="Custom (OpenAI-compatible)", exact=True).click()
    base = page.locator('input[aria-label="Base URL"]:not([disabled])')
    await base.fill(s.base_url)
    await base.press("Enter")
    key = page.locator('input[aria-label="API key"]:not([disabled])')
    await key.fill(s.key)
    await key.press("Enter")
    await page.get_by_test_id("stMainBlockContainer").get_by_text("pasted in Settings").wait_for()
    await page.get_by_role("link", name="Studio").click()
    model = page.get_by_role("combobox", name="Model")
    await model.fill(s.model)
    await model.press("Enter")
    # The caption under the form names the model once the rerun has drawn the form again;
    # values typed into the form before that could be redrawn away.
    await page.locator('[data-testid="stCaptionContainer"] code', has_text=s.model).first.wait_for()
    await page.get_by_role("spinbutton", name="Max tokens per round").fill(str(s.max_tokens))
    await page.get_by_role("spinbutton", name="Max rounds").fill("50")
    await page.locator(PROMPT_BOX).fill(s.prompt)
    s.timed("setup", time.perf_counter() - started)


async def start_run(s: Session) -> None:
    """Generate; the run's id is the ``run`` parameter the Studio puts in the URL."""
    await s.page.get_by_role("button", name="Generate").click()
    try:
        await s.page.wait_for_url(re.compile(r"[?&]run="), timeout=WAIT_MS)
    except Exception as exc:
        alerts = await s.page.get_by_test_id("stAlert").all_inner_texts()
        raise RuntimeError(f"no run started; the page says {alerts}") from exc
    match = re.search(r"[?&]run=([\w-]+)", s.page.url)
    assert match, s.page.url
    s.run = match.group(1)


def streaming(everyone: list[Session]) -> int:
    return sum(1 for x in everyone if x.run and x.done is None)


def note(s: Session, kind: str, seconds: float, before: int, everyone: list[Session], **parts: float) -> None:
    """A probe's time (and parts), with the fewest runs streaming between its start and its end."""
    s.probes.append({"kind": kind, "s": seconds, "streaming": min(before, streaming(everyone)), **parts})


async def probe_new_tab(s: Session, app_url: str, everyone: list[Session]) -> None:
    """A new tab of the session opens the Studio (a new Streamlit session: an empty Studio)."""
    before = streaming(everyone)
    seconds, page, parts = await open_studio(s.context, app_url, PROMPT_BOX)
    note(s, "new_tab", seconds, before, everyone, **parts)
    await page.close()


async def probe_reload(s: Session, app_url: str, everyone: list[Session]) -> None:
    """A new tab at the run's link (what a reload does): the run's status line, then its own text."""
    before = streaming(everyone)
    seconds, page, _ = await open_studio(s.context, f"{app_url}/?run={s.run}", ".st-key-run_head")
    note(s, "reload_run", seconds, before, everyone)
    own = phrases(document(s.prompt), "", count=1)[0]
    try:
        await page.wait_for_function(
            "(p) => (' ' + window.__text().replace(/[^\\p{L}\\p{N}_]+/gu, ' ') + ' ').includes(' ' + p + ' ')",
            arg=own,
            timeout=30_000,
        )
    except Exception:  # noqa: BLE001 - recorded
        s.errors.append("the reloaded tab did not show its own run's text")
    await page.close()


async def probe_navigate(s: Session, everyone: list[Session]) -> None:
    """In the session's own tab: Studio → Settings (its own server, no key shown) → Studio (its run)."""
    page = s.page
    before, started = streaming(everyone), time.perf_counter()
    await page.get_by_role("link", name="Settings").click()
    await page.wait_for_function(BASE_URL_IS, arg=s.base_url, timeout=WAIT_MS)
    note(s, "studio_to_settings", time.perf_counter() - started, before, everyone)
    if await page.locator('input[aria-label="API key"]').first.input_value() != "":
        s.errors.append("the key is back in the Settings field")
    s.mid_leaks += await html_leaks(s, everyone)
    before, started = streaming(everyone), time.perf_counter()
    await page.get_by_role("link", name="Studio").click()
    await page.locator(".st-key-run_head").wait_for(timeout=WAIT_MS)
    note(s, "settings_to_studio", time.perf_counter() - started, before, everyone)
    s.mid_leaks += await html_leaks(s, everyone)


async def finish(s: Session) -> None:
    await s.page.locator(".st-key-clear_run").wait_for(timeout=WAIT_MS * 2)
    s.done = time.perf_counter()


async def check_end(s: Session, everyone: list[Session]) -> dict[str, Any]:
    page = s.page
    head = await page.locator(".st-key-run_head").inner_text()
    async with page.expect_download() as info:
        await page.get_by_role("button", name="Download output", exact=True).click()
    md = Path(await (await info.value).path()).read_text(encoding="utf-8")
    async with page.expect_download() as info:
        await page.get_by_role("button", name="JSON", exact=True).click()
    raw = Path(await (await info.value).path()).read_text(encoding="utf-8")
    transcript = json.loads(raw)
    spec = transcript["spec"]
    own = (spec["base_url"], spec["model"], spec["max_tokens"]) == (s.base_url, s.model, s.max_tokens)
    return {
        "finished": "Finished" in head,
        "exact": md == document(s.prompt),
        "own_settings": own,
        "rounds": len(transcript["rounds"]),
        "key_in_transcript": any(x.key in raw for x in everyone),
    }


async def html_leaks(s: Session, everyone: list[Session]) -> list[str]:
    """What of the others (or any key) the page's HTML, text or URL holds right now."""
    html, url = await s.page.content(), s.page.url
    text = " " + " ".join(words(await s.page.locator("body").inner_text())) + " "
    found = []
    for f in forbidden(s, everyone, runs=True):
        hit = f" {f['value']} " in text if f.get("words") else f["value"] in html or f["value"] in url
        if hit and f["what"] != CONTROL:
            found.append(f["what"])
    return found


async def watched(s: Session) -> list[str]:
    """What the page watchers recorded in every tab of the session (the control included)."""
    leaks = []
    for page in s.context.pages:
        await page.evaluate("window.__scan && window.__scan()")
        leaks += [leak["what"] for leak in await page.evaluate("window.__leaks || []")]
    return leaks
