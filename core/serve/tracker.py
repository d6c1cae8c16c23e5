"""What of the answer may go to a client now: one stream across rounds, nothing ever taken back.

The engine's events describe an answer that can still change at its end: when round k is
cut, the next round's plan holds back the tail of round k (the trailing partial word, or at
the first seam at temperature 0 whole words up to :data:`~core.continuation.seams.VERIFY_CHARS`
characters) and the model writes it again (``RoundStarted.held_back``). A client of the
endpoint cannot be told to delete text, so the :class:`AnswerTracker` keeps back the part of
the live round that a hold-back could still take, and lets it go once the next round's plan
(or the run's end) has settled it.

Where a hold-back may start: always at the start of a whitespace run that follows a word
(:func:`core.continuation.seams.hold_back`, :func:`~core.continuation.seams.hold_back_to_verify`).
So everything before the last such position that has a word after it and
``VERIFY_CHARS`` characters from the end is safe, and so is everything before the first such
position. Text is only ever appended after that, so what was safe stays safe.

A round after the first is also held until its first :data:`RESTART_WINDOW` characters are
in, and stays held if :func:`~core.continuation.seams.check_restart` finds it starting the answer
over (a server ignoring the prefill: the engine discards that round and stops with an error).
Anything else that would change text already sent is caught at the round's end: :meth:`AnswerTracker.round_finished` raises
:class:`Diverged`, and the stream ends with an error event. Pure logic, no I/O.
"""

from __future__ import annotations

from core.continuation.seams import VERIFY_CHARS, check_restart
from core.types import Round

__all__ = ["RESTART_WINDOW", "AnswerTracker", "Diverged", "safe_length"]

RESTART_WINDOW = 64  # characters check_restart compares with the beginning of the answer


class Diverged(Exception):
    """The engine changed text that was already sent to the client."""


def safe_length(text: str, before: str = "") -> int:
    """How many leading characters of a live round's ``text`` no hold-back can take.

    ``before`` is the round's text already judged (only its last character matters: a whitespace
    run at the start of ``text`` follows a word when ``before`` ends in one).
    """
    n = len(text)
    prev_space = not before or before[-1].isspace()  # position 0 of a round is never a hold-back start
    first = n  # the first whitespace-run start: no hold-back starts before it
    last = -1  # the last one followed by a word, VERIFY_CHARS or more from the end
    seen_word_after = False
    # walk backwards from the end: cheap, since the interesting positions are near the end
    i = n - 1
    while i >= 0:
        ch = text[i]
        if not ch.isspace():
            seen_word_after = True
        else:
            left_space = text[i - 1].isspace() if i > 0 else prev_space
            if not left_space:  # i starts a whitespace run that follows a word
                first = i
                if last < 0 and seen_word_after and n - i >= VERIFY_CHARS:
                    last = i
                    break
        i -= 1
    return last if last >= 0 else first


class AnswerTracker:
    """Follows the engine's rounds; :meth:`take` gives the text that may go out now.

    Call :meth:`round_started`, :meth:`delta`, :meth:`round_finished` and :meth:`run_finished`
    in event order; each returns the content that became sendable (possibly "").
    """

    def __init__(self, opening: str = "") -> None:
        """``opening``: the answer's start the client sent itself (never sent back)."""
        self.rounds: list[Round] = []  # the engine's finished rounds (its objects: it trims them)
        self.sent = 0  # characters of the answer sent
        self._pending = ""  # the live round's text not sent yet (short: a few words)
        self._sent_parts: list[str] = []  # the live round's text sent
        self._last = ""  # the last character of the live round sent
        self._head = opening[:256]  # the beginning of the answer (what check_restart compares with)
        self._checking = False  # the live round is held until it is known not to start over
        self._blocked = False  # ... and it does: nothing more of it goes out

    # ------------------------------------------------------------ events

    def round_started(self) -> str:
        """A new round: its plan has settled the previous round's tail (a hold-back removed)."""
        out = self._settle()
        self._pending, self._sent_parts, self._last = "", [], ""
        self._checking, self._blocked = bool(self._head), False
        return out

    def delta(self, text: str) -> str:
        pending = self._pending + text
        if self._blocked or (self._checking and not self._judge(pending)):
            self._pending = pending
            return ""
        safe = safe_length(pending, self._last)
        if not safe:
            self._pending = pending
            return ""
        out, self._pending = pending[:safe], pending[safe:]
        self._sent_parts.append(out)
        self._last = out[-1]
        self.sent += safe
        if len(self._head) < 256:
            self._head = (self._head + out)[:256]
        return out

    def _judge(self, pending: str) -> bool:
        """Whether the live round may be sent: False while too short to tell, or when it restarts."""
        if len(pending) < RESTART_WINDOW:
            return False
        self._checking = False
        if check_restart(self._head, pending[:256]) is not None:
            self._blocked = True
            return False
        return True

    def round_finished(self, rnd: Round) -> str:
        """The round as the engine assembled it; its tail stays back until the next plan."""
        sent = "".join(self._sent_parts)
        if not rnd.text.startswith(sent):
            raise Diverged(f"round {rnd.index} was changed after {len(sent)} characters of it were sent")
        self.rounds.append(rnd)
        self._pending, self._sent_parts, self._last = "", [], ""
        self._checking = self._blocked = False
        return ""

    def run_finished(self) -> str:
        """The run ended: the answer is final; the rest goes out."""
        return self._settle()

    # ------------------------------------------------------------ helpers

    def _settle(self) -> str:
        """Send what the finished rounds now hold beyond what was sent."""
        total = sum(len(r.text) for r in self.rounds)
        if total < self.sent:
            raise Diverged(f"the answer is {total} characters long, but {self.sent} were sent")
        need = total - self.sent
        parts: list[str] = []
        for r in reversed(self.rounds):  # only the last rounds hold text not sent yet
            if need <= 0:
                break
            piece = r.text[-need:] if need < len(r.text) else r.text
            parts.append(piece)
            need -= len(piece)
        self.sent = total
        out = "".join(reversed(parts))
        if len(self._head) < 256:
            self._head = (self._head + out)[:256]
        return out
