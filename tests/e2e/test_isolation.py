"""Sessions at once never see each other: run text, run ids, keys and settings stay in their own tab.

Two browser contexts (two Streamlit sessions of one app process) each set
their own server, key, model and round size in Settings and stream a run at
the same time. While they stream and after they end, every page is searched
for what belongs to the others; the demo model's relay checks that each
session's requests carried its own key.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass

import pytest
from playwright.sync_api import expect

from core.demo import behaviour_url, demo_document
from tests.e2e.conftest import WAIT
from tests.e2e.relay import KeyRelay
from tests.e2e.test_studio import (
    choose,
    download,
    enabled_input,
    finished,
    generate,
    running,
    set_number,
    wait_for_tokens,
)

TOPICS = ("the ropewalks of Chatham", "the salt marshes of Essex")  # bench/bench_load.py runs 20
MODELS = ("demo", "demo-32k")


@dataclass
class Session:
    name: str
    prompt: str
    model: str
    max_tokens: int
    key: str
    base_url: str
    page: object = None
    run: str = ""  # the job id in the page's URL

    @property
    def marker(self) -> str:
        return f"k={self.name}"


def phrases(text: str, avoid: str, count: int = 4, size: int = 6) -> list[str]:
    """``count`` runs of ``size`` words from the start of ``text`` that ``avoid`` does not contain."""
    words, others = re.findall(r"\w+", text), " ".join(re.findall(r"\w+", avoid))
    found: list[str] = []
    for start in range(0, min(len(words), 160) - size, size):
        phrase = " ".join(words[start : start + size])
        if phrase not in others:
            found.append(phrase)
        if len(found) == count:
            break
    assert len(found) == count
    return found


def screen_words(page) -> str:
    return " ".join(re.findall(r"\w+", page.locator("body").inner_text()))


def check_isolated(me: Session, everyone: list[Session], studio: bool = True) -> None:
    """``me``'s page shows its own run and nothing of anyone else's; no key on any page."""
    html, url, words = me.page.content(), me.page.url, screen_words(me.page)
    for other in everyone:
        assert other.key not in html and other.key not in url  # keys are never shown, not even one's own
        if other is me:
            continue
        leaked = [x for x in (other.prompt, other.run, other.marker, other.base_url) if x in html or x in url]
        assert not leaked, f"{me.name} shows {other.name}'s {leaked}"
        assert not any(p in words for p in phrases(demo_document(other.prompt), demo_document(me.prompt)))
    if studio:
        assert me.run in url


def _provider(s: Session) -> None:
    choose(s.page, "Provider", "Custom (OpenAI-compatible)")


def _base_url(s: Session) -> None:
    enabled_input(s.page, "Base URL").fill(s.base_url)
    enabled_input(s.page, "Base URL").press("Enter")


def _key(s: Session) -> None:
    expect(enabled_input(s.page, "Base URL")).to_have_value(s.base_url)
    enabled_input(s.page, "API key").fill(s.key)
    enabled_input(s.page, "API key").press("Enter")


def _to_studio(s: Session) -> None:
    s.page.get_by_test_id("stMainBlockContainer").get_by_text("pasted in Settings").wait_for()
    s.page.get_by_role("link", name="Studio").click()


def _model(s: Session) -> None:
    box = s.page.get_by_role("combobox", name="Model")
    box.fill(s.model)
    box.press("Enter")


def _max_tokens(s: Session) -> None:
    # The caption under the form names the model once the rerun has drawn the form again
    # (a value typed into the form before that could be drawn away).
    s.page.locator('[data-testid="stCaptionContainer"] code', has_text=s.model).first.wait_for()
    set_number(s.page, "Max tokens per round", s.max_tokens)


SETUP = (_provider, _base_url, _key, _to_studio, _model, _max_tokens)


@pytest.fixture
def relay(demo_server: str):
    with KeyRelay(demo_server) as relay:
        yield relay


def test_sessions_streaming_at_once_never_see_each_others_runs_keys_or_settings(browser, app_url, relay):
    tag = secrets.token_hex(4)
    sessions = [
        Session(
            name=f"iso-{tag}-{i}",
            prompt=f"Write about 1200 tokens on {topic}.",
            model=MODELS[i],
            max_tokens=300 + 37 * i,
            key=f"sk-ISOLATION-{i}-{secrets.token_hex(12)}",
            base_url="",
        )
        for i, topic in enumerate(TOPICS)
    ]
    for s in sessions:
        s.base_url = behaviour_url(relay.base_url, rate=250, k=s.name)
    contexts = [
        browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True) for _ in sessions
    ]
    try:
        # The router first, as a user arriving would: on a cold server, pages requested before
        # app.py ever ran are served as an old-style multipage app (a known Streamlit quirk).
        warm = contexts[0].new_page()
        warm.goto(app_url)
        warm.get_by_label("Prompt", exact=True).wait_for(timeout=WAIT)
        warm.close()
        for s, context in zip(sessions, contexts, strict=True):
            context.set_default_timeout(WAIT)
            s.page = context.new_page()
            s.page.goto(f"{app_url}/settings", wait_until="commit")
        for step in SETUP:  # step by step across the sessions: their reruns overlap
            for s in sessions:
                step(s)
        for s in sessions:  # both stream at once
            generate(s.page, s.prompt)
        for s in sessions:
            running(s.page)
            s.run = re.search(r"run=([\w-]+)", s.page.url).group(1)
        for s in sessions:
            wait_for_tokens(s.page, 150)
            check_isolated(s, sessions)

        for s in sessions:
            finished(s.page)
            assert "Finished" in s.page.locator(".st-key-run_head").inner_text()
            assert download(s.page, "Download output").decode("utf-8") == demo_document(s.prompt)
            spec = json.loads(download(s.page, "JSON"))["spec"]  # the run used this session's settings
            assert (spec["base_url"], spec["model"], spec["max_tokens"]) == (
                s.base_url,
                s.model,
                s.max_tokens,
            )
            check_isolated(s, sessions)
            assert phrases(demo_document(s.prompt), "")[0] in screen_words(s.page)  # the search can find text

        for s in sessions:  # each session's Settings still hold its own server and key, and only those
            s.page.get_by_role("link", name="Settings").click()
            page = s.page
            expect(enabled_input(page, "Base URL")).to_have_value(s.base_url)
            page.get_by_test_id("stMainBlockContainer").get_by_text("pasted in Settings").wait_for()
            assert enabled_input(page, "API key").input_value() == ""
            check_isolated(s, sessions, studio=False)
    finally:
        for context in contexts:
            context.close()

    for s in sessions:  # on the wire: each session's requests carried its own key, and only those did
        assert relay.keys_by_prefix(s.marker + ",") | relay.keys_by_prefix(s.marker + "/") == {s.key}
    assert all(seen.key in {s.key for s in sessions} for seen in relay.seen)
