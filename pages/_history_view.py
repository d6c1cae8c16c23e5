"""A stored run, read-only, the way the Studio shows a finished one.

The same pieces as the Studio (``pages/_status.py``, ``pages/_charts.py``,
``pages/_live.py``): status line, context gauge, stop or error message,
downloads named after the run, then the Document, Rounds and Table & charts
tabs. A stored run becomes a finished job's Snapshot with
:func:`core.services.inspect.result_snapshot`, so every Studio function applies as is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from core.services import export
from core.services.inspect import result_snapshot
from core.services.jobs import Snapshot
from core.types import Round, RunResult
from pages import _charts as charts
from pages._blocks import split_blocks
from pages._copy import copy_button
from pages._document import SeamedDocument, seams_toggle
from pages._history import status_badge, tokens_text
from pages._live import render_downloads
from pages._seam_marks import document_seams
from pages._status import example_prices, gauge_chart, gauge_text, round_heading, show_error, stop_message
from pages._text_streams import ROUND_HEIGHT, edit_box, edited_placeholder

INTERRUPTED_TEXT = (
    "**Interrupted.** The process writing this run stopped before the run ended (the app was "
    "closed or restarted). The text up to the last save is kept; **Resume** continues from there."
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
    "This run is still being written (in the Studio or by another process). "
    "Reload the page to see the latest saved text."
)


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


def render_message(snap: Snapshot, status: str) -> None:
    if status == "interrupted":
        st.warning(INTERRUPTED_TEXT, icon=":material/pause_circle:")
        return
    if status == "running":
        st.info(RUNNING_TEXT, icon=":material/progress_activity:")
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


def render_run(result: RunResult, status: str, extra: Callable[[], None] | None = None) -> Snapshot:
    """The whole read-only view of a stored run; returns the snapshot it was drawn from.

    ``extra`` draws more above the tabs (the thread of the run, what may be done with it)."""
    snap = result_snapshot(result)
    st.markdown(f"{status_badge(status, result.stop_reason)} {facts(snap)}")
    render_message(snap, status)
    gauge = snap.gauge
    if gauge.window:
        st.altair_chart(gauge_chart(gauge), width="stretch")
    st.caption(gauge_text(gauge, len(snap.rounds), example=example_prices(snap.spec)))
    if snap.rounds or result.text:
        with st.container(horizontal=True, gap="small", key="run_downloads"):
            render_downloads(snap, formats=None if result.text else ("json", "csv"))
    if extra is not None:
        extra()
    # As in the Studio: Show seams, and Copy, above the tabs (the Document's panel holds the answer only).
    tools = st.container(
        horizontal=True, vertical_alignment="center", horizontal_alignment="distribute", key="doc_tools"
    )
    show_seams = seams_toggle(tools)
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
            if result.text:
                seams = document_seams(result.rounds, result.edits) if show_seams else ()
                SeamedDocument(st.container(), StoredText).update(result.text, seams, final=True)
            else:
                st.caption("No text was generated.")
    if rounds.open is not False:
        with rounds:
            render_rounds(result)
    if details.open is not False:
        with details:
            charts.render_details(snap)
    return snap
