"""A stored run, read-only, the way the Studio shows a finished one.

The same pieces as the Studio (``pages/_status.py``, ``pages/_charts.py``,
``pages/_live.py``): status line, context gauge, stop or error message,
downloads named after the run, then the Document, Rounds and Table & charts
tabs. A stored run becomes a finished job's Snapshot with
:func:`core.services.inspect.result_snapshot`, so every Studio function applies as is.

A run still being written (by the Studio, another process or another app server on the
same database) is followed live by :func:`follow_run`: the page's script run stays in a
loop that reads the store once a second (one row, and only the last rounds when that row
changed) and appends to the Document what was saved since, as the Studio streams a job
(sealed blocks sent once, a short tail); when the run ends, or its owner is gone, the page
is drawn again with the run as it ended (interrupted: with Resume).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import streamlit as st

from core.services import export
from core.services.inspect import result_snapshot
from core.services.jobs import Snapshot
from core.services.store import Store, StoreError
from core.types import Round, RunResult
from pages import _charts as charts
from pages._blocks import split_blocks
from pages._copy import copy_button
from pages._document import SeamedDocument, seams_toggle
from pages._history import status_badge, tokens_text
from pages._live import render_downloads
from pages._seam_marks import Seam, document_seams
from pages._status import (
    GAUGE_STYLE,
    example_prices,
    gauge_chart,
    gauge_running,
    gauge_text,
    round_heading,
    show_error,
    stop_message,
)
from pages._text_streams import ROUND_HEIGHT, MarkdownStream, edit_box, edited_placeholder

INTERRUPTED_TEXT = (
    "**Interrupted.** The process writing this run stopped before the run ended (the app was "
    "closed, restarted or killed, on this server or another). The text up to the last save is kept; "
    "**Resume** continues from there."
)
TABS_KEY = "run_view"  # session key of the open run's tabs

# Where the Studio's stop messages point at its form, a stored run points at Resume.
HISTORY_STOP_MESSAGES = {
    "max_rounds": "Reached the round limit. **Resume** it with more rounds to let it go further.",
    "target_reached": "Reached the target length. **Resume** it with a larger target to go on.",
    "cost_limit": "Reached the cost limit. **Resume** it to spend more.",
    "cancelled": "Stopped by you. The text so far is kept; **Resume** goes on from there.",
}
RUNNING_TEXT = (
    "This run is still being written (in the Studio, by another process or another app server). "
    "Reload the page to see the latest saved text."
)
FOLLOWED_TEXT = (  # on the Runs page, which follows it (follow_run)
    "This run is still being written (in the Studio, by another process or another app server): "
    "its text grows here as it is saved, about once a second."
)
POLL_EVERY = 1.0  # seconds between two reads of an open running run (its writer saves once a second)


def facts(snap: Snapshot) -> str:
    rounds = len(snap.rounds)
    tokens = snap.gauge.generated_tokens
    return (
        f"{rounds} round{'s' if rounds != 1 else ''} · {tokens_text(tokens, snap.gauge.estimated)} tokens"
        f" · {snap.elapsed_s:.1f} s"
    )


def markdown_blocks(text: str, parent: Any = None) -> None:
    """``text`` as sealed Markdown blocks (fences closed and re-opened at each cut, ``$`` escaped)."""
    target = parent or st
    for block in split_blocks(text):
        target.markdown(block.markdown())


def render_round(r: Round, edited: str | None = None) -> None:
    """One round; ``edited``: what to say when an edit took its text."""
    with st.container(border=True):
        st.markdown(round_heading(r))
        if r.reasoning:
            with st.expander("Reasoning", icon=":material/psychology:"):
                markdown_blocks(r.reasoning)
        if r.text:
            markdown_blocks(r.text, st.container(height=ROUND_HEIGHT, border=False))
        else:
            st.caption(edited or "This round added no text.")


def render_rounds(result: RunResult) -> None:
    """The rounds in order, each edit between the round it followed and the next."""
    if not result.rounds and not result.edits:
        st.caption("No rounds ran.")
    pending = list(enumerate(result.edits, 1))
    for r in result.rounds:
        while pending and pending[0][1].after_round < r.index:
            edit_box(st, pending[0][1], pending[0][0])
            pending.pop(0)
        render_round(r, edited_placeholder(r, result.edits))
    for number, edit in pending:
        edit_box(st, edit, number)


def render_message(snap: Snapshot, status: str, *, followed: bool = False) -> None:
    """What the run's status says; ``followed``: a running run grows on screen (:func:`follow_run`)."""
    if status == "interrupted":
        st.warning(INTERRUPTED_TEXT, icon=":material/pause_circle:")
        return
    if status == "running":
        st.info(FOLLOWED_TEXT if followed else RUNNING_TEXT, icon=":material/progress_activity:")
        return
    if snap.error is not None:
        show_error(snap.error)
        return
    outcome = stop_message(snap)
    if outcome is None:
        return
    kind, text = outcome
    text = HISTORY_STOP_MESSAGES.get(snap.stop_reason or "", text)
    if kind in ("warning", "error"):
        getattr(st, kind)(text)
    else:
        st.caption(text)


class StoredText:
    """A finished segment of a stored run's document (the text stream :class:`SeamedDocument` asks
    for): drawn once, in blocks, as the Studio draws a finished run."""

    def __init__(self, parent: Any, placeholder: str = "") -> None:
        self.slot = parent.empty()

    def update(self, text: str, placeholder: str | None = None, *, final: bool = True) -> None:
        if text:
            markdown_blocks(text, self.slot.container())

    def close(self, text: str) -> None:
        self.update(text)


class FollowedText(MarkdownStream):
    """A segment of a followed run's document: it grows as the Studio's does (sealed blocks sent
    once), but its last, partial paragraph is shown at every update, even one that sealed
    paragraphs (the Studio holds it back until the next update; here updates come once a second,
    and holding it back would show each flush a second late)."""

    def update(self, text: str, placeholder: str | None = None, *, final: bool = True) -> None:
        super().update(text, placeholder, final=True)


def render_run(result: RunResult, status: str, extra: Callable[[], None] | None = None) -> Snapshot:
    """The whole read-only view of a stored run; returns the snapshot it was drawn from.

    ``extra`` draws more above the tabs (the thread of the run, what may be done with it)."""
    return draw_run(result, status, extra, followed=False).snap


@dataclass
class RunView:
    """A stored run as drawn, with the parts a running run updates in place (:func:`follow_run`)."""

    result: RunResult
    snap: Snapshot
    status: str
    facts: Any  # the slot of the status badge and the facts line
    message: Any  # the slot of what the status says
    gauge_bar: Any
    gauge_words: Any
    document: SeamedDocument | None = None  # the Document tab's answer (None: another tab is open)
    show_seams: bool = False
    _charted: bool = False  # the gauge's chart drawn (a run that is not running)
    _styled: bool = False  # the running bar's classes sent
    _words: str = ""

    def show_facts(self) -> None:
        line = facts(self.snap)
        if self.status == "running" and self.result.started_at:  # how long it has been going
            line = line.rpartition(" · ")[0] + f" · {max(0.0, time.time() - self.result.started_at):.0f} s"
        self.facts.markdown(f"{status_badge(self.status, self.result.stop_reason)} {line}")

    def show_gauge(self) -> None:
        """Running: the bar in HTML above the first line of words (as the Studio's), redrawn when
        they change; else the chart, with its tooltips, and the whole words."""
        gauge = self.snap.gauge
        if self.status == "running" and gauge.window:
            if not self._styled:
                self._styled = True
                st.html(GAUGE_STYLE)  # style only: Streamlit keeps it out of the layout
            words = gauge_running(gauge)
            if words != self._words:
                self._words = words
                self.gauge_words.markdown(words, unsafe_allow_html=True)
            return
        if gauge.window and not self._charted:
            self._charted = True
            self.gauge_bar.altair_chart(gauge_chart(gauge), width="stretch")
        words = gauge_text(gauge, len(self.snap.rounds), example=example_prices(self.snap.spec))
        if words != self._words:
            self._words = words
            self.gauge_words.caption(words)

    def interrupted(self) -> None:
        self.status = "interrupted"
        self.show_facts()
        self.message.warning(INTERRUPTED_TEXT, icon=":material/pause_circle:")

    def refresh(self, rounds: list[Round]) -> None:
        """Take ``rounds`` (re-read from the store: the last ones) in place of the rounds of the
        same index and later, and show what changed."""
        first = rounds[0].index if rounds else len(self.result.rounds) + 1
        self.result.rounds = [r for r in self.result.rounds if r.index < first] + rounds
        self.snap = result_snapshot(self.result)
        self.show_facts()
        self.show_gauge()
        if self.document is not None:
            self.document.update(self.result.text, self.seams(), final=False)

    def seams(self) -> list[Seam]:
        if not self.show_seams:
            return []
        ended = [r for r in self.result.rounds if r.finish_reason is not None]  # a live round: no mark yet
        return document_seams(ended, self.result.edits)


def draw_run(
    result: RunResult, status: str, extra: Callable[[], None] | None = None, *, followed: bool = True
) -> RunView:
    """:func:`render_run`, returning what was drawn; ``followed``: a running run will be followed
    (:func:`follow_run`: its document grows in place)."""
    snap = result_snapshot(result)
    view = RunView(
        result, snap, status, facts=st.empty(), message=st.empty(), gauge_bar=None, gauge_words=None
    )
    view.show_facts()
    with view.message.container():
        render_message(snap, status, followed=followed)
    view.gauge_bar, view.gauge_words = st.empty(), st.empty()
    view.show_gauge()
    if snap.rounds or result.text:
        with st.container(horizontal=True, gap="small", key="run_downloads"):
            render_downloads(snap, formats=None if result.text else ("json", "csv"))
    if extra is not None:
        extra()
    # As in the Studio: Show seams, and Copy, above the tabs (the Document's panel holds the answer only).
    tools = st.container(
        horizontal=True, vertical_alignment="center", horizontal_alignment="distribute", key="doc_tools"
    )
    view.show_seams = seams_toggle(tools)
    if result.text:
        with tools.container(horizontal=True, vertical_alignment="center", width="content"):
            copy_button(lambda: export.export(result, "md").decode("utf-8"))  # the download's text
    # Only the open tab is drawn (a click on another one reruns the page): a long run's
    # rounds and charts cost nothing until they are looked at.
    document, rounds, details = st.tabs(
        ["Document", "Rounds", "Table & charts"], key=TABS_KEY, on_change="rerun"
    )
    if document.open is not False:
        with document:
            if result.reasoning:
                with st.expander("Reasoning", icon=":material/psychology:"):
                    markdown_blocks(result.reasoning)
            if status == "running" and followed:
                view.document = SeamedDocument(st.container(), FollowedText, "Waiting for the first tokens…")
                view.document.update(result.text, view.seams(), final=False)
            elif result.text:
                seams = document_seams(result.rounds, result.edits) if view.show_seams else ()
                SeamedDocument(st.container(), StoredText).update(result.text, seams, final=True)
            else:
                st.caption("No text was generated.")
    if rounds.open is not False:
        with rounds:
            render_rounds(result)
    if details.open is not False:
        with details:
            charts.render_details(snap)
    return view


def follow_run(store: Store, view: RunView) -> None:
    """Keep the view of a running run current until it ends, then draw the page again.

    Once every :data:`POLL_EVERY` seconds: the run's row (its status, when it was last written,
    its characters) and whether its owner is alive (:meth:`Store.is_active`: a process of this
    host by pid, one of another host by its heartbeat); only when the row changed, the last two
    rounds (the one before the live round may have been trimmed at the seam). The Document gets
    only what was added (sealed blocks sent once, the tail), with the facts line and the gauge's
    words. A click or a reload ends the loop with a rerun, as in the Studio; a read that fails
    (a connection lost) is tried again at the next poll.
    """
    seen: tuple[float, int, int] | None = None
    while True:
        try:
            seen = _poll(store, view, seen)
        except StoreError:
            pass
        time.sleep(POLL_EVERY)
        # Reading session state is a Streamlit yield point: a click or a reload ends the loop here.
        st.session_state.get(TABS_KEY)


def _poll(store: Store, view: RunView, seen: tuple[float, int, int] | None) -> tuple[float, int, int]:
    """One look at the followed run (see :func:`follow_run`); returns what was seen of its row."""
    run_id = view.result.run_id or ""
    summary = store.summary(run_id)
    if summary is None or summary.status != "running" or not store.is_active(run_id):
        if summary is not None and summary.status == "running" and run_id in store.mark_interrupted():
            view.interrupted()  # said at once; the page drawn again then offers Resume
        st.rerun()
    assert summary is not None  # st.rerun() does not return
    mark = (summary.updated_at, summary.characters, summary.rounds)
    if mark != seen:  # the first time too: it may have changed since the page loaded it
        last = max((r.index for r in view.result.rounds), default=1)
        view.refresh(store.rounds_from(run_id, max(1, last - 1)))
    return mark
