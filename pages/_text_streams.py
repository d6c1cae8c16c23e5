"""The Studio's text streams: a growing answer as Markdown blocks sent once with a short live
tail (:class:`MarkdownStream`), one round's box (:class:`RoundBox`), and a user's edit between
rounds (:func:`edit_box`). Used by the live view (``pages/_live.py``), the document's seam
segments (``pages/_document.py``) and the stored-run views."""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.types import Edit, Round
from pages._blocks import BlockCutter, to_markdown

ROUND_HEIGHT = 260  # pixels: each round scrolls in its own box

# ---------------------------------------------------------------- text streams


PLACEHOLDER = "\x00placeholder"  # what a stream's tail slot shows while it has no text: its placeholder


class MarkdownStream:
    """A growing Markdown text in its own slot: sealed blocks (sent once) and a live tail."""

    def __init__(self, parent: Any, placeholder: str = "") -> None:
        self._holder = parent.empty()  # the sealed blocks' container (replaced on a rewrite)
        self._tail = parent.empty()
        self._placeholder = placeholder
        self._reset()
        self._shown: str | None = None if placeholder else ""  # the new tail slot is empty already

    def _reset(self) -> None:
        self._blocks = self._holder.container()
        self._cutter = BlockCutter()
        self._shown = None  # a rewrite: the tail is drawn again
        self._closed = False
        self._visible = 0  # characters of the text on screen

    def update(self, text: str, placeholder: str | None = None, *, final: bool = True) -> None:
        """Show ``text``. ``final=False`` (a live update, more to come): when whole paragraphs were
        just sealed, the partial one after them waits for the next update rather than being sent
        now and again then (each update of the tail re-sends it whole). Nothing shown is taken back."""
        if placeholder is not None:
            self._placeholder = placeholder
        if self._closed or not self._cutter.extends(text):
            self._reset()  # the text was rewritten behind the seal (rare): start over
        blocks = self._cutter.cut(text)
        for block in blocks:
            self._blocks.markdown(block.markdown())
        if blocks and not final and self._cutter.sealed >= self._visible:
            tail = ""
        else:
            tail = self._cutter.tail(text)
        self._visible = len(text) if tail.strip() else self._cutter.sealed
        if not tail.strip():
            tail = PLACEHOLDER if self._cutter.sealed == 0 and self._placeholder else ""
        if tail == self._shown and placeholder is None:
            return
        self._shown = tail
        if tail == PLACEHOLDER:
            self._tail.caption(self._placeholder)
        elif tail:
            self._tail.markdown(tail)
        else:
            self._tail.empty()

    def close(self, text: str) -> None:
        """Show ``text`` as it stays (the stream's last call): what the sealed blocks do not hold yet
        goes out as one more block, so a closing costs one element rather than a block and a tail."""
        if not self._cutter.extends(text):
            self._reset()
        rest = text[self._cutter.sealed :]
        if rest.strip():
            self._blocks.markdown(to_markdown(rest, self._cutter.fence, close=True))
        if self._shown:
            self._tail.empty()
        self._shown = ""
        self._closed = True  # a later update draws the text again, from scratch


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
