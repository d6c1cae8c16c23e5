"""The Document tab's answer, with a thin mark at each seam between rounds (*Show seams*).

The answer is drawn as Markdown segments, one per mark, each in a text stream of
its own (:class:`pages._text_streams.MarkdownStream`: sealed blocks sent once, a short
live tail); where the marks go is :mod:`pages._seam_marks`' business (at safe
paragraph breaks only, so a split never breaks a code block, a table or a list).
While the run streams, a segment ends when the next mark is placed and is not
sent again; a mark's place is kept (an empty slot) while its round streams, and
the mark is drawn there once, when the round ends, with its tokens (each element
update crosses the websocket whole: bench/bench_ui.py). With the toggle off, the
answer is one stream, as before the marks existed.

A mark is an ``st.html`` separator whose label is CSS generated content: it reads
as a label, screen readers get it from ``aria-label``, and it is never part of a
selection, a copy or a download.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import streamlit as st

from pages._seam_marks import Mark, MarkTracker, Seam

SHOW_SEAMS = "show_seams"  # the choice, in a plain session key: kept on pages without the toggle
TOGGLE_KEY = "show_seams_toggle"
SHOWN_BY_DEFAULT = True

MARK_STYLE = """<style>
.cm-seam { display: flex; align-items: center; gap: 0.6rem; margin: 0.1rem 0; font-size: 0.8rem;
  line-height: 1.25; opacity: 0.7; user-select: none; cursor: default; }
.cm-seam::before { content: attr(data-label); white-space: nowrap; font-variant-numeric: tabular-nums; }
.cm-seam::after { content: ""; flex: 1; border-top: 1px dashed currentColor; opacity: 0.7; }
</style>"""


class TextStream(Protocol):
    def update(self, text: str, placeholder: str | None = None, *, final: bool = True) -> None: ...

    def close(self, text: str) -> None: ...


def seams_shown() -> bool:
    """Whether the marks are on (the toggle's last value; on by default)."""
    return bool(st.session_state.get(SHOW_SEAMS, SHOWN_BY_DEFAULT))


def seams_toggle(parent: Any) -> bool:
    """The *Show seams* toggle; returns whether the marks are on. The choice lasts the session."""
    state = st.session_state
    if TOGGLE_KEY not in state:  # Streamlit forgets a widget's state on a page that does not draw it
        state[TOGGLE_KEY] = seams_shown()
    parent.toggle(
        "Show seams",
        key=TOGGLE_KEY,
        help="Mark where each round begins, with its tokens (at the first paragraph break after the seam). "
        "The marks are not part of the answer: copies and downloads never hold them.",
    )
    state[SHOW_SEAMS] = bool(state[TOGGLE_KEY])
    return bool(state[SHOW_SEAMS])


def mark_html(mark: Mark) -> str:
    """One mark as a labelled separator (its words are ours: round numbers and counts)."""
    label = html.escape(mark.label, quote=True)
    tip = html.escape(mark.tooltip, quote=True)
    rounds = " ".join(str(n) for n in mark.rounds)
    return (
        f'<div class="cm-seam" role="separator" aria-label="{label}" title="{tip}" '
        f'data-label="{label}" data-rounds="{rounds}"></div>'
    )


class SeamedDocument:
    """A growing answer in Markdown segments with a seam mark between them.

    ``make_stream(parent, placeholder)`` makes the text stream of one segment.
    """

    def __init__(
        self, parent: Any, make_stream: Callable[[Any, str], TextStream], placeholder: str = ""
    ) -> None:
        self._holder = parent.empty()
        self._make_stream = make_stream
        self._placeholder = placeholder
        self._styled = False
        self._reset()

    def _reset(self) -> None:
        self._box = self._holder.container()
        self._tracker = MarkTracker()
        self._marks: list[Mark] = []  # as drawn
        self._slots: list[Any] = []
        self._streams = [self._make_stream(self._box, self._placeholder)]

    @property
    def marks(self) -> tuple[Mark, ...]:
        return tuple(self._marks)

    def update(
        self, text: str, seams: Sequence[Seam] = (), *, final: bool = False, placeholder: str | None = None
    ) -> None:
        if not self._tracker.update(text, seams, final=final):
            self._reset()  # the text changed behind a mark (a retry, a rewrite): draw it again
            self._tracker.update(text, seams, final=final)
        marks = self._tracker.marks
        if marks and not self._styled:
            st.html(MARK_STYLE)  # style only: Streamlit keeps it out of the layout
            self._styled = True
        for i, mark in enumerate(marks):
            if i < len(self._marks):
                if mark.label != self._marks[i].label or mark.tooltip != self._marks[i].tooltip:
                    self._slots[i].html(mark_html(mark))  # its round ended: drawn, with its tokens
                    self._marks[i] = mark
                continue
            start = self._marks[-1].at if self._marks else 0
            self._streams[-1].close(text[start : mark.at])  # the segment before it ends here
            slot = self._box.empty()
            if not any(seam.streaming for seam in mark.seams):  # else drawn once its round has ended
                slot.html(mark_html(mark))
            self._slots.append(slot)
            self._marks.append(mark)
            self._streams.append(self._make_stream(self._box, ""))
        start = self._marks[-1].at if self._marks else 0
        self._streams[-1].update(text[start:], placeholder, final=final)  # live: its tail may wait
