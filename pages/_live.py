"""Showing a job: status and Stop, the context gauge, the document, the rounds, downloads.

While the job runs, :func:`render_job` stays in a loop in the page's script
run, polling the job's snapshot and *appending* to the screen: finished text is
sealed into Markdown blocks that are sent once, the live tail is re-sent at
most ~10 times a second, and the status line and gauge about twice a second.
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
from core.types import Edit, Round
from pages import _charts as charts
from pages._blocks import BlockCutter, inert
from pages._status import (
    example_prices,
    gauge_chart,
    gauge_text,
    live_heading,
    round_heading,
    show_error,
    status_line,
    stop_message,
)

log = logging.getLogger(__name__)

ROUND_HEIGHT = 260  # pixels: each round scrolls in its own box
TAIL_EVERY = 0.1  # seconds between updates of the live text
STATUS_EVERY = 0.5  # seconds between updates of the status line and the gauge's numbers
CHART_EVERY = 1.0  # seconds between redraws of the gauge's bar (a Vega chart: costly in the browser)

# ---------------------------------------------------------------- text streams


class MarkdownStream:
    """A growing Markdown text in its own slot: sealed blocks (sent once) and a live tail."""

    def __init__(self, parent: Any, placeholder: str = "") -> None:
        self._holder = parent.empty()
        self._placeholder = placeholder
        self._reset()

    def _reset(self) -> None:
        box = self._holder.container()
        self._blocks = box.container()
        self._tail = box.empty()
        self._cutter = BlockCutter()
        self._shown: str | None = None

    def update(self, text: str, placeholder: str | None = None) -> None:
        if placeholder is not None:
            self._placeholder = placeholder
        if not self._cutter.extends(text):
            self._reset()  # the text was rewritten behind the seal (rare): start over
        for block in self._cutter.cut(text):
            self._blocks.markdown(block.markdown())
        tail = self._cutter.tail(text)
        if tail == self._shown and placeholder is None:
            return
        self._shown = tail
        if tail.strip():
            self._tail.markdown(tail)
        elif self._cutter.sealed == 0 and self._placeholder:
            self._tail.caption(self._placeholder)
        else:
            self._tail.empty()


# ---------------------------------------------------------------- the job view


class RoundBox:
    """One round's element in the Rounds tab: heading, reasoning (collapsed), text."""

    def __init__(self, parent: Any) -> None:
        box = parent.container(border=True)
        self.heading = box.empty()
        self._reasoning_slot = box.empty()
        self._reasoning: MarkdownStream | None = None
        self.text = MarkdownStream(box.container(height=ROUND_HEIGHT, border=False), placeholder="Waiting…")

    def update(self, heading: str | None, text: str, reasoning: str, placeholder: str | None = None) -> None:
        if heading is not None:
            self.heading.markdown(heading)
        if reasoning:
            if self._reasoning is None:
                expander = self._reasoning_slot.expander("Reasoning", icon=":material/psychology:")
                self._reasoning = MarkdownStream(expander)
            self._reasoning.update(reasoning)
        self.text.update(text, placeholder)


EDITED_ROUND = "Its text is part of your edit after round {after}: see that edit below."


def edited_placeholder(r: Round, edits: tuple[Edit, ...] | list[Edit]) -> str | None:
    """What an empty round says when an edit took its text (None: it has text, or no edit did)."""
    if r.text:
        return None
    after = next((e.after_round for e in edits if e.after_round >= r.index), None)
    return None if after is None else EDITED_ROUND.format(after=after)


def edit_box(parent: Any, edit: Edit, number: int) -> None:
    """One edit of the answer, between the rounds: where, how much, and the text it changed."""
    with parent.container(border=True, key=f"edit_{number}"):
        if not edit.after_round and not edit.text_before:
            st.markdown(f"**Opening** · the answer starts with these {edit.added:,} characters")
            st.code(edit.inserted, language=None, wrap_lines=True)
            return
        st.markdown(
            f"**Your edit after round {edit.after_round}** · {edit.removed:,} characters removed, "
            f"{edit.added:,} added, from character {edit.at:,}"
        )
        with st.expander("What changed", icon=":material/difference:"):
            removed = edit.text_before[edit.at : edit.at + edit.removed]
            st.caption("Removed" if removed else "Nothing removed")
            if removed:
                st.code(removed, language=None, wrap_lines=True)
            st.caption("Added" if edit.inserted else "Nothing added")
            if edit.inserted:
                st.code(edit.inserted, language=None, wrap_lines=True)


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
        self.gauge_chart = st.empty()
        self.gauge_text = st.empty()
        self._gauge_key: tuple[int, str] | None = None
        self._gauge_at = 0.0
        self.downloads = st.empty()
        self.steering = st.empty()  # Continue, Edit, Follow up: once the run has ended
        tabs = st.tabs(["Document", "Rounds", "Table & charts"], key="studio_view", on_change="rerun")
        doc_tab, rounds_tab, details_tab = tabs
        self.doc: MarkdownStream | None = None
        self.doc_reasoning: MarkdownStream | None = None
        self._doc_reasoning_slot: Any = None
        if doc_tab.open is not False:
            self._doc_reasoning_slot = doc_tab.empty()
            self.doc = MarkdownStream(doc_tab, placeholder="Waiting for the first tokens…")
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
                self.doc_reasoning.update(reasoning)
            self.doc.update(text, "No text was generated." if snap.done else None)
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
        key = (round(100 * (gauge.fraction or 0)), gauge.level)
        now = time.monotonic()
        due = snap.done or key[1] != (self._gauge_key or (0, ""))[1] or now - self._gauge_at >= CHART_EVERY
        if gauge.window and key != self._gauge_key and due:  # whole percents, at most once a second
            self._gauge_key, self._gauge_at = key, now
            self.gauge_chart.altair_chart(gauge_chart(gauge), width="stretch")
        self.gauge_text.caption(gauge_text(gauge, rounds, example=example_prices(snap.spec)))
        if snap.retrying:
            self.message.info(inert(snap.retrying), icon=":material/refresh:")
        elif snap.notices and running:
            self.message.info(inert(snap.notices[-1]), icon=":material/info:")
        elif running:
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
        if snap.rounds or text:
            with self.downloads.container(horizontal=True, gap="small"):
                render_downloads(snap, formats=None if text else ("json",))
        if self.steer is not None:
            with self.steering.container():
                self.steer(snap)

    # ---------------------------------------------------------- the loop

    def stream(self, snap: Snapshot) -> Snapshot:
        """Follow the job until it ends, appending to the screen; returns the final snapshot."""
        last_status = 0.0
        last_rounds = -1
        while not snap.done:
            tick = time.monotonic()
            snap = self.job.wait(snap.version, timeout=STATUS_EVERY)
            self.update_text(snap)
            if tick - last_status >= STATUS_EVERY or len(snap.rounds) != last_rounds:
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
