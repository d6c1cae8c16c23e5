"""Where the Document view marks the seams between rounds, and what each mark says.

The Document tab shows the answer as one Markdown document; with *Show seams* on,
a thin mark at each seam names the round that begins there and its tokens.
The document is then drawn as one Markdown segment per mark, so a mark must
never split a structure Markdown needs whole. A seam can fall anywhere: inside
a code fence, a table, a list, a word. So a mark is not drawn *at* its seam but
at the first **paragraph break at or after it** that is safe to split at:

- a blank line outside any fenced code block (the fence state is tracked from
  the document's start, the way :func:`pages._blocks.fence_after` reads it),
  so a code block with blank lines inside stays one block;
- followed by a line that starts at its first column, so the split never turns
  a list item's indented continuation into a paragraph, nor into indented code;
- tables and headings contain no blank line, so they are never split;
- while the text still grows, before the text the engine may still take back:
  at a seam it holds back the trailing word(s) and the whitespace before them
  for the next round to write again (:func:`core.continuation.seams.hold_back_to_verify`,
  the larger of its two hold-backs), and a mark placed there would have to move.

Seams that reach the same break share one mark ("Rounds 3–4"). When the run has
ended, a seam with no break after it (its round wrote the end of the last
paragraph) is marked after the document's end. A mark also says, in its tooltip,
how far before it the round really begins.

Marks are decoration, not text: the view draws them as their own elements with
the label in CSS generated content, so they are not part of a selection, a copy
or a download (the downloads are built from the run, never from the screen).
This module is pure (no Streamlit), so it is tested on its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from core.continuation.seams import hold_back_to_verify
from core.services.snapshot import LiveRound
from core.types import Edit, Round
from pages._blocks import fence_after

_BREAK = re.compile(r"\n(?:[ \t\r]*\n)+")  # a blank line (or more), CRLF ones too
ANY_BUDGET = 1 << 20  # a round's max_tokens large enough for the engine's full hold-back


@dataclass(frozen=True)
class Seam:
    """Where one round's text begins in the document."""

    offset: int  # characters of the document before the round's text
    round: int
    tokens: int
    estimated: bool = False
    streaming: bool = False  # the round is still being written
    after: str = ""  # "edit" or "opening": the text before it is the user's, not a round's


@dataclass(frozen=True)
class Mark:
    """One mark in the document: at ``at`` (a paragraph break, or the end), for ``seams``."""

    at: int
    seams: tuple[Seam, ...]
    at_end: bool = False  # no paragraph break after the seams: marked after the document's end

    @property
    def rounds(self) -> tuple[int, ...]:
        return tuple(s.round for s in self.seams)

    @property
    def label(self) -> str:
        first, last = self.seams[0], self.seams[-1]
        name = f"Round {first.round}" if len(self.seams) == 1 else f"Rounds {first.round}–{last.round}"
        if any(s.streaming for s in self.seams):
            size = "streaming"
        else:
            approx = "≈" if any(s.estimated for s in self.seams) else ""
            size = f"{approx}{sum(s.tokens for s in self.seams):,} tokens"
        after = {"edit": " · after your edit", "opening": " · after your opening"}.get(first.after, "")
        return f"{name} · {size}{after}"

    @property
    def tooltip(self) -> str:
        back = self.at - self.seams[0].offset
        name = f"Round {self.seams[0].round}"
        if back <= 2:
            return f"{name} begins here."
        if self.at_end:
            return f"{name} begins {back:,} characters before the end of the answer, in its last paragraph."
        return f"{name} begins {back:,} characters before this mark, at the paragraph break after its seam."


def document_seams(
    rounds: Sequence[Round], edits: Sequence[Edit] = (), live: LiveRound | None = None
) -> list[Seam]:
    """The seams of the document the run shows: the last edit's text, then the rounds after it.

    A round taken over by an edit has no place in the document any more; the first round
    after an edit begins at a seam too (an edit is a seam). The document's start is no seam.
    """
    last = edits[-1] if edits else None
    after = last.after_round if last is not None else 0
    offset = len(last.text) if last is not None else 0
    kind = "" if last is None else "opening" if not last.after_round and not last.text_before else "edit"
    out: list[Seam] = []
    for r in rounds:
        if r.index <= after:
            continue
        if offset > 0:
            out.append(Seam(offset, r.index, r.completion_tokens, r.completion_estimated, after=kind))
        kind = ""
        offset += len(r.text)
    if live is not None and offset > 0:
        out.append(Seam(offset, live.index, live.chunks, True, streaming=True, after=kind))
    return out


def place_marks(text: str, seams: Sequence[Seam], *, final: bool, start: int = 0) -> list[Mark]:
    """The marks of ``seams`` in ``text``; ``final``: the text will not grow any more.

    A mark's ``at`` is the start of a safe paragraph break (see the module's docstring): the
    segment before it ends there and the next one begins with the blank line. Pending seams
    (no safe break after them yet, the text still growing) get no mark. Placing is stable:
    as the text grows, a mark once placed stays where it is. ``start``: where to begin the
    scan, a place outside any code fence and before every seam given (an earlier mark's).
    """
    pending = sorted((s for s in seams if max(0, start) < s.offset <= len(text)), key=lambda s: s.offset)
    marks: list[Mark] = []
    if not pending:
        return marks
    settled = len(text) if final else len(text) - hold_back_to_verify(text, ANY_BUDGET)
    fence: str | None = None
    scanned = start  # fence is the state at text[scanned]
    i = 0
    for match in _BREAK.finditer(text, start):
        if i >= len(pending):
            break
        if match.end() < pending[i].offset:
            continue  # a break before the next seam
        after = text[match.end() : match.end() + 1]
        if not after or after.isspace():
            continue  # at the end, or an indented line follows: it belongs to the block above
        if match.end() >= settled:
            break  # the engine may still take this break back, and all that follows
        fence = fence_after(text[scanned : match.start()], fence) if match.start() > scanned else fence
        scanned = match.start()
        if fence is not None:
            continue
        here = []
        while i < len(pending) and pending[i].offset <= match.end():
            here.append(pending[i])
            i += 1
        if here:
            marks.append(Mark(match.start(), tuple(here)))
    if final and i < len(pending):
        marks.append(Mark(len(text), tuple(pending[i:]), at_end=True))
    return marks


class MarkTracker:
    """The marks of a growing text from one update to the next: each scan starts at the last mark.

    Marks once placed keep their place; their labels follow their seams ("streaming" becomes
    the round's tokens). When the text changes behind a mark, or a marked seam moves (a
    retried or restarted round), the marks are placed again from the start.
    """

    def __init__(self) -> None:
        self.marks: list[Mark] = []
        self._upto = ""  # the text up to the last mark, when it was placed

    def update(self, text: str, seams: Sequence[Seam], *, final: bool) -> bool:
        """Bring the marks up to date; False when the earlier ones no longer held (placed anew)."""
        by_round = {s.round: s for s in seams}
        marked = [s for m in self.marks for s in m.seams]
        held = text.startswith(self._upto) and all(
            s.round in by_round and by_round[s.round].offset == s.offset for s in marked
        )
        if not held:
            self.marks, self._upto = [], ""
        self.marks = [Mark(m.at, tuple(by_round[s.round] for s in m.seams), m.at_end) for m in self.marks]
        done = {s.round for m in self.marks for s in m.seams}
        start = self.marks[-1].at if self.marks else 0
        fresh = place_marks(text, [s for s in seams if s.round not in done], final=final, start=start)
        if fresh:
            self.marks.extend(fresh)
            self._upto = text[: fresh[-1].at]
        return held
