"""Showing a job: status and Stop, the context gauge, the document, the rounds, downloads.

While the job runs, :func:`render_job` stays in a loop in the page's script
run, polling the job's snapshot and *appending* to the screen: finished text is
sealed into Markdown blocks that are sent once, and every other update is
counted, because Streamlit re-sends an element whole each time it changes: the
text every 800 tokens or 2 s (a tail only while no paragraph was finished since
the last update), the status line every 2.5 s, the gauge every 5 s and on a new level (its bar as 130
bytes of HTML; the Vega chart, 2.3 KB, at the end) (the constants below).
When the run ends the form's Generate is turned on in place: a rerun would send
the whole page again, the answer included.
A click (Stop, a tab) or a reload interrupts the loop with a rerun, never the
job. (Not a ``st.fragment(run_every=…)``: every tick would re-send all of the
fragment's elements, and in Streamlit 1.67 a click inside a running fragment
waits for it to end instead of interrupting it.)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import streamlit as st

import core.services.export as export
from core.services.jobs import Job, Snapshot
from core.types import Round
from pages import _charts as charts
from pages._blocks import inert
from pages._copy import copy_button
from pages._document import SeamedDocument, seams_toggle
from pages._seam_marks import document_seams
from pages._status import (
    GAUGE_STYLE,
    example_prices,
    gauge_chart,
    gauge_line,
    gauge_running,
    gauge_text,
    live_heading,
    round_heading,
    show_error,
    status_line,
    stop_message,
)
from pages._text_streams import MarkdownStream, RoundBox, edit_box, edited_placeholder

log = logging.getLogger(__name__)

# Every update re-sends a whole element (the live tail, the status line, the gauge) with about
# 100 bytes of framing, so updates are counted: bench/bench_ui.py holds the websocket to 1.5x the
# answer's text at 400 tokens/s (README, "Streaming to the browser").
TAIL_EVERY = 0.25  # seconds: the live text is updated at most this often, once TAIL_BATCH tokens came…
TAIL_BATCH = 800  # tokens
TAIL_WAIT = 2.0  # …or once this long has passed since its last update (a slow model)
STATUS_EVERY = 2.5  # seconds between updates of the status line
GAUGE_EVERY = 5.0  # seconds between updates of a running gauge (bar and words; a new level at once)

# ---------------------------------------------------------------- the job view


class JobView:
    """The screen of one job, laid out once; :meth:`update_text` / :meth:`update_status` fill it."""

    def __init__(
        self,
        job: Job,
        on_clear: Callable[[], None] | None = None,
        steer: Callable[[Snapshot], None] | None = None,
    ) -> None:
        self.job = job
        self.steer = steer
        head = st.container(horizontal=True, vertical_alignment="center", gap="small", key="run_head")
        self.stop = head.empty()  # first, so the growing status text never moves the button
        self.clear = head.empty()
        self.status = head.empty()
        self.on_clear = on_clear
        self.message = st.empty()
        self._message_shown = ""  # the retry or notice shown while the run goes
        self.gauge_chart = st.empty()
        self.gauge_text = st.empty()
        self._gauge_drawn = False  # the chart, once the run has ended
        self._gauge_styled = False  # the running bar's classes, sent once
        self._gauge_words = ""  # the gauge's words last sent
        self._gauge_sent: tuple[float, str] = (0.0, "")  # when, and at which level
        self.downloads = st.empty()
        self.steering = st.empty()  # Continue, Edit, Follow up: once the run has ended
        # Above the tabs, not in the Document's panel (whose text is the answer's, nothing more):
        # Show seams, and Copy once the run has ended.
        tools = st.container(
            horizontal=True, vertical_alignment="center", horizontal_alignment="distribute", key="doc_tools"
        )
        self.show_seams = seams_toggle(tools)
        self._copy_slot: Any = tools.empty()
        tabs = st.tabs(["Document", "Rounds", "Table & charts"], key="studio_view", on_change="rerun")
        doc_tab, rounds_tab, details_tab = tabs
        self.doc: SeamedDocument | None = None
        self.doc_reasoning: MarkdownStream | None = None
        self._doc_reasoning_slot: Any = None
        if doc_tab.open is not False:
            self._doc_reasoning_slot = doc_tab.empty()
            self.doc = SeamedDocument(
                doc_tab,
                lambda parent, placeholder: MarkdownStream(parent, placeholder),
                "Waiting for the first tokens…",
            )
        self.rounds_box = rounds_tab.container() if rounds_tab.open is not False else None
        self.round_boxes: dict[int, RoundBox] = {}
        self._edits_shown = 0
        self._round_seen: dict[int, Round] = {}
        self.details = details_tab.empty() if details_tab.open is not False else None
        self._details_key: tuple[int, bool] | None = None
        self._finished_key: tuple[int, int] = (-1, -1)
        self._finished_text = ""
        self._finished_reasoning = ""
        self._stop_shown: bool | None = None

    # ---------------------------------------------------------- parts

    def _assembled(self, snap: Snapshot) -> tuple[str, str]:
        key = (len(snap.rounds), id(snap.rounds[-1]) if snap.rounds else 0)
        if key != self._finished_key:
            self._finished_key = key
            self._finished_text = self.job.edited_text + "".join(r.text for r in snap.rounds)
            self._finished_reasoning = "".join(r.reasoning for r in snap.rounds)
        if snap.live is None:
            return self._finished_text, self._finished_reasoning
        return self._finished_text + snap.live.text, self._finished_reasoning + snap.live.reasoning

    def update_text(self, snap: Snapshot) -> None:
        text, reasoning = self._assembled(snap)
        if self.doc is not None:
            if reasoning:
                if self.doc_reasoning is None:
                    expander = self._doc_reasoning_slot.expander("Reasoning", icon=":material/psychology:")
                    self.doc_reasoning = MarkdownStream(expander)
                self.doc_reasoning.update(reasoning, final=snap.done)
            seams = document_seams(snap.rounds, self.job.edits, snap.live) if self.show_seams else ()
            self.doc.update(
                text, seams, final=snap.done, placeholder="No text was generated." if snap.done else None
            )
        if self.rounds_box is not None:
            self._update_rounds(snap, headings=False)

    def _update_rounds(self, snap: Snapshot, *, headings: bool) -> None:
        assert self.rounds_box is not None
        edits = self.job.edits
        for r in snap.rounds:
            box = self._round_box(r.index)
            if self._round_seen.get(r.index) is not r:  # new, or trimmed by the next round
                self._round_seen[r.index] = r
                box.update(round_heading(r), r.text, r.reasoning, edited_placeholder(r, edits))
        live = snap.live
        if live is not None:
            box = self._round_box(live.index)
            box.update(live_heading(live) if headings else None, live.text, live.reasoning)
        if snap.done:
            self._edit_boxes(len(snap.rounds) + 1)

    def _round_box(self, index: int) -> RoundBox:
        box = self.round_boxes.get(index)
        if box is None:
            self._edit_boxes(index)  # the edits made before this round come first
            box = self.round_boxes[index] = RoundBox(self.rounds_box)
        return box

    def _edit_boxes(self, before_round: int) -> None:
        edits = self.job.edits
        while self._edits_shown < len(edits) and edits[self._edits_shown].after_round < before_round:
            edit_box(self.rounds_box, edits[self._edits_shown], self._edits_shown + 1)
            self._edits_shown += 1

    def update_status(self, snap: Snapshot) -> None:
        self.status.markdown(status_line(snap))
        running = not snap.done
        if running != self._stop_shown:
            self._stop_shown = running
            if running:
                self.stop.button(
                    "Stop", icon=":material/stop_circle:", on_click=self.job.stop, key="stop_run"
                )
                self.clear.empty()
            else:
                self.stop.empty()
                if self.on_clear is not None:
                    self.clear.button(
                        "New run",
                        icon=":material/add:",
                        on_click=self.on_clear,
                        key="clear_run",
                        type="tertiary",
                    )
        rounds = len(snap.rounds) + (1 if snap.live else 0)
        gauge = snap.gauge
        if gauge.window and snap.done and not self._gauge_drawn:  # the chart, with its tooltips
            self._gauge_drawn = True
            self.gauge_chart.altair_chart(gauge_chart(gauge), width="stretch")
        # Running: the bar as HTML above the first line of words (the billing line, which counts
        # rounds, would lag behind the status line); the chart and the whole words at the end.
        if snap.done:
            words = gauge_text(gauge, rounds, example=example_prices(snap.spec))
        else:
            words = gauge_running(gauge) if gauge.window else gauge_line(gauge)
            if gauge.window and not self._gauge_styled:
                self._gauge_styled = True
                st.html(GAUGE_STYLE)  # style only: Streamlit keeps it out of the layout
        now, (sent_at, sent_level) = time.monotonic(), self._gauge_sent
        due = snap.done or gauge.level != sent_level or now - sent_at >= GAUGE_EVERY
        if due and words != self._gauge_words:
            self._gauge_words, self._gauge_sent = words, (now, gauge.level)
            if snap.done or not gauge.window:
                self.gauge_text.caption(words)
            else:
                self.gauge_text.markdown(words, unsafe_allow_html=True)
        message = snap.retrying or (snap.notices[-1] if snap.notices and running else "")
        if running and message != self._message_shown:  # sent when it changes, not every time
            self._message_shown = message
            if message:
                icon = ":material/refresh:" if snap.retrying else ":material/info:"
                self.message.info(inert(message), icon=icon)
            else:
                self.message.empty()
        if self.rounds_box is not None:
            self._update_rounds(snap, headings=True)
        if self.details is not None:
            details_key = (len(snap.rounds), snap.done)
            if details_key != self._details_key:
                self._details_key = details_key
                with self.details.container():
                    charts.render_details(snap)

    def finish(self, snap: Snapshot) -> None:
        self.update_text(snap)
        self.update_status(snap)
        outcome = stop_message(snap)
        with self.message.container():
            if snap.error is not None:
                show_error(snap.error)
            elif outcome is not None:
                kind, text = outcome
                if kind in ("warning", "error"):
                    getattr(st, kind)(text)
                else:
                    st.caption(text)
            for notice in snap.notices:
                st.caption(inert(f":material/info: {notice}"))
        if self.rounds_box is not None and not self.round_boxes:
            self.rounds_box.caption("No rounds ran.")
        text = self._assembled(snap)[0]
        if text:
            with self._copy_slot.container(horizontal=True, vertical_alignment="center", width="content"):
                copy_button(
                    lambda: export.export(snap.to_result(), "md").decode("utf-8")
                )  # the download's text
        if snap.rounds or text:
            with self.downloads.container(horizontal=True, gap="small"):
                render_downloads(snap, formats=None if text else ("json",))
        if self.steer is not None:
            with self.steering.container():
                self.steer(snap)

    # ---------------------------------------------------------- the loop

    def stream(self, snap: Snapshot) -> Snapshot:
        """Follow the job until it ends, appending to the screen; returns the final snapshot."""
        last_status = last_text = time.monotonic()  # render_job has just drawn both
        last_rounds = len(snap.rounds)
        shown = snap.gauge.generated_tokens
        while not snap.done:
            tick = time.monotonic()
            snap = self.job.wait(snap.version, timeout=STATUS_EVERY)
            tokens = snap.gauge.generated_tokens
            first = shown == 0 < tokens  # the first tokens show at once, not TAIL_WAIT later
            if first or tick - last_text >= TAIL_WAIT or tokens - shown >= TAIL_BATCH:
                self.update_text(snap)
                last_text, shown = tick, tokens
            rounds_shown = self.rounds_box is not None and len(snap.rounds) != last_rounds  # their headings
            if tick - last_status >= STATUS_EVERY or rounds_shown:
                self.update_status(snap)
                last_status, last_rounds = tick, len(snap.rounds)
            rest = TAIL_EVERY - (time.monotonic() - tick)
            if rest > 0 and not snap.done:
                time.sleep(rest)
            # Reading session state is a Streamlit yield point: a click (Stop, a tab) or a
            # reload ends this loop here with a rerun, and the job goes on untouched.
            st.session_state.get("job_id")
        return snap


DOWNLOADS = (
    ("md", "Download output", "The answer as Markdown, exactly as shown", "text/markdown"),
    ("txt", "Text", "The answer as a plain-text file", "text/plain"),
    (
        "json",
        "JSON",
        "The transcript: settings (no key), every round, totals and the text",
        "application/json",
    ),
    ("csv", "CSV", "The round table: tokens, finish reasons, timings and cost per round", "text/csv"),
)


def render_downloads(snap: Snapshot, formats: tuple[str, ...] | None = None) -> None:
    """The download buttons (all of them, or only ``formats``)."""
    result = snap.to_result()
    for ext, label, help_text, mime in DOWNLOADS:
        if formats is not None and ext not in formats:
            continue
        try:
            data = export.export(result, ext)
        except Exception:
            log.exception("the %s export of run %s failed", ext, snap.job_id)
            st.caption(f":red[{label}: this export failed]")
            continue
        st.download_button(
            label,
            data=data,
            file_name=export.download_name(result, ext),
            mime=mime,
            on_click="ignore",
            icon=":material/download:",
            type="primary" if ext == "md" else "secondary",
            help=help_text,
            key=f"download_{ext}",
        )


def render_job(
    job: Job,
    on_clear: Callable[[], None] | None = None,
    steer: Callable[[Snapshot], None] | None = None,
) -> Snapshot:
    """Show ``job``; while it runs, follow it live (returns when it has ended). ``steer`` draws
    what may be done with the ended run (Continue, Edit, Follow up), above its tabs."""
    snap = job.snapshot()
    view = JobView(job, on_clear, steer)
    view.update_status(snap)
    view.update_text(snap)
    if not snap.done:
        snap = view.stream(snap)
    view.finish(snap)
    return snap
