"""Stitching rounds together, and checking every seam. DESIGN §6.

New text is appended byte-exact: nothing is stripped or added between rounds.
Two things keep the joins clean:

* **Hold-back.** Chat templates often trim the assistant message, so a trailing
  space or a half word at the end of the answer so far gets lost or doubled.
  Before sending it, :func:`hold_back` picks the trailing partial word (with
  the whitespace around it) for the model to regenerate; the engine removes it
  from the previous round (``Round.held_back``). It never holds back when that
  could stop progress: a tiny per-round budget, or most of the last round.
* **Checks** on every seam, each returning a flag
  ``{"kind": ..., "message": ..., ...}``: ``overlap`` (the new text repeats the
  end of the answer), ``restart`` (it repeats the beginning: a server ignoring
  the prefill), ``repetition`` (the answer ends in a loop), ``open_fence`` and
  ``open_table`` (the seam falls inside a code block or a table).
"""

from __future__ import annotations

from typing import Any

from core.types.pieces import Text

Flag = dict[str, Any]

# A round allowed fewer tokens than this regenerates only whitespace, never a word.
HOLD_MIN_TOKENS = 16
OVERLAP_WINDOW = 4096  # how far back an overlap is looked for (characters)
OVERLAP_MIN_FLAG = 16  # an overlap shorter than this is treated as coincidence
RESTART_MIN = 24  # characters that must match the beginning of the answer
RESTART_MIN_SHORT = 8  # ... when the answer or the new round is shorter than that: all of it, at least this
LOOP_WINDOW = 4096
LOOP_MAX_PERIOD = 512
LOOP_MIN_SPAN = 240


# ---------------------------------------------------------------- hold-back


def hold_back(last_text: str, max_tokens: int) -> int:
    """How many characters at the end of the last round to send back for regeneration.

    The trailing partial word, the whitespace before it and any whitespace after
    it; only the trailing whitespace when the budget is tiny; nothing when the
    held part would be more than half of the last round's text.
    """
    n = len(last_text)
    stripped = last_text.rstrip()
    end = len(stripped)
    if max_tokens >= HOLD_MIN_TOKENS:
        start = end
        while start > 0 and not stripped[start - 1].isspace():
            start -= 1
        while start > 0 and stripped[start - 1].isspace():
            start -= 1
        if start > 0 and (n - start) * 2 <= n:
            return n - start
    held = n - end
    return held if held and held * 2 <= n else 0


VERIFY_CHARS = 24  # text held back at the first seam at temperature 0, to check it comes back
VERIFY_SEAM_CHARS = 4  # a rewrite that differs this early is a new turn, not sampling noise


def hold_back_to_verify(last_text: str, max_tokens: int) -> int:
    """Like :func:`hold_back`, but whole words until at least VERIFY_CHARS characters are held.

    At temperature 0 a server that continues writes the held words again (DESIGN §6: it is
    self-consistent); one that opens a new turn writes something else from the first
    characters on. 0 when the round is too short to spare that much.
    """
    n = len(last_text)
    if max_tokens < HOLD_MIN_TOKENS:
        return hold_back(last_text, max_tokens)
    start = len(last_text.rstrip())
    while start > 0:
        while start > 0 and not last_text[start - 1].isspace():
            start -= 1
        while start > 0 and last_text[start - 1].isspace():
            start -= 1
        if n - start >= VERIFY_CHARS:
            break
    if start > 0 and (n - start) * 2 <= n:
        return n - start
    return hold_back(last_text, max_tokens)


def check_rewritten(held: str, new_text: str, round_index: int) -> Flag | None:
    """At temperature 0, the round after a seam must start by writing the held text again.

    A ``dropped`` flag when it does not; the engine then checks the seam with two short
    requests (a server may also penalise repeats within a request, which is no new turn).
    """
    n = min(len(held), len(new_text))
    if n < VERIFY_SEAM_CHARS or len(held.strip()) < VERIFY_SEAM_CHARS:
        return None
    agreed = 0
    while agreed < n and held[agreed] == new_text[agreed]:
        agreed += 1
    if agreed >= VERIFY_SEAM_CHARS:
        return None
    return {
        "kind": "dropped",
        "message": (
            f"at temperature 0 the new round should have started with the {len(held)} characters held "
            f"back from round {round_index} ('{held.strip()[:40]}'), but it wrote "
            f"'{new_text.strip()[:40]}': it may have started a new turn"
        ),
        "chars": len(held),
        "excerpt": held[:80],
        "at_temperature_0": True,
    }


# ---------------------------------------------------------------- overlap


def find_overlap(answer: Text, new_text: str, *, min_chars: int = 8, window: int = OVERLAP_WINDOW) -> int:
    """Length of the longest end of ``answer`` that ``new_text`` starts with (0 below ``min_chars``)."""
    tail = answer[-window:]
    if len(tail) < min_chars or len(new_text) < min_chars:
        return 0
    probe = new_text[:min_chars]
    i = tail.find(probe)
    while i >= 0:
        if new_text.startswith(tail[i:]):
            return len(tail) - i
        i = tail.find(probe, i + 1)
    return 0


class OverlapFilter:
    """Streaming overlap removal for the instruction strategy.

    Buffers the start of a reply until it is clear how much of it repeats the
    end of the answer, then drops that much and passes everything else through.
    """

    __slots__ = ("_buf", "_min", "_tail", "decided", "dropped")

    def __init__(self, answer: Text, *, min_chars: int = 8) -> None:
        self._tail = answer[-OVERLAP_WINDOW:]
        self._buf = ""
        self._min = min_chars
        self.decided = not self._tail
        self.dropped = ""

    def feed(self, text: str) -> str:
        if self.decided:
            return text
        self._buf += text
        # Undecided while the reply so far could still grow into a longer overlap.
        if len(self._buf) < len(self._tail) and self._tail.find(self._buf, 0, len(self._tail) - 1) >= 0:
            return ""
        return self.flush()

    def flush(self) -> str:
        if self.decided:
            return ""
        self.decided = True
        buf, self._buf = self._buf, ""
        k = find_overlap(self._tail, buf, min_chars=self._min)
        if k >= self._min:
            self.dropped = buf[:k]
            return buf[k:]
        return buf


class EchoFilter:
    """Streaming removal of an echoed prefill (Mistral's ``prefix`` mode streams it back).

    While the reply is still a beginning of what was sent it is held; once it
    covers the whole prefill that much is dropped, and if it diverges earlier
    it was no echo and everything held is passed on.
    """

    __slots__ = ("_buf", "_sent", "decided", "dropped")

    def __init__(self, sent: Text) -> None:
        self._sent = sent
        self._buf = ""
        self.decided = not sent
        self.dropped: Text = ""

    def feed(self, text: str) -> str:
        if self.decided:
            return text
        at = len(self._buf)  # held so far: a beginning of what was sent, so only ``text`` is compared
        self._buf += text
        buf, sent = self._buf, self._sent
        if len(buf) < len(sent):
            if sent.startswith(text, at):
                return ""
            return self.flush()
        self.decided = True
        self._buf = ""
        if sent.startswith(buf[at : len(sent)], at):
            self.dropped = sent
            return buf[len(sent) :]
        return buf

    def flush(self) -> str:
        if self.decided:
            return ""
        self.decided = True
        buf, self._buf = self._buf, ""
        return buf


# ---------------------------------------------------------------- checks


def check_overlap(answer: Text, new_text: str) -> Flag | None:
    k = find_overlap(answer, new_text, min_chars=OVERLAP_MIN_FLAG)
    if not k:
        return None
    return {
        "kind": "overlap",
        "message": f"the new round repeats the last {k} characters of the answer",
        "chars": k,
        "excerpt": new_text[: min(k, 80)],
    }


def check_restart(answer: Text, new_text: str) -> Flag | None:
    """The new text starts the answer over: the server ignored the prefill.

    RESTART_MIN characters must match the beginning of the answer, or, when the answer or the
    new text is shorter than that (a round that an error ended after a few tokens), all of the
    shorter one, if it has RESTART_MIN_SHORT characters.
    """
    head = answer[:256].lstrip()
    new = new_text[:256].lstrip()
    n = min(len(head), len(new), 64)  # below RESTART_MIN only when one of them is that short
    if n < RESTART_MIN_SHORT or head[:n] != new[:n]:
        return None
    return {
        "kind": "restart",
        "message": (
            "the new round starts the answer over: the server ignored the prefill; "
            "use the instruction strategy (or probe the server in Settings)"
        ),
        "chars": n,
        "excerpt": new[: min(n, 80)],
    }


def check_held_back(held: str, new_text: str, round_index: int) -> Flag | None:
    """The tail held back from round ``round_index`` was not written again: say what was dropped.

    Hold-back lets the model rewrite the last partial word; when the next round writes something
    else, those characters are not in the answer, and the seam says so (whitespace aside).
    """
    word = held.strip()
    if not word:
        return None
    start = new_text.lstrip()
    if start.startswith(word) or (len(start) < len(word) and word.startswith(start)):
        return None
    return {
        "kind": "dropped",
        "message": f"round {round_index} ended in '{word[:40]}', held back for the model to write again; "
        f"it wrote something else, so those {len(held)} characters are not in the answer",
        "chars": len(held),
        "excerpt": held[:80],
    }


def check_repetition(text: str) -> Flag | None:
    """The text ends in a loop: one unit repeated over at least LOOP_MIN_SPAN characters."""
    tail = text[-LOOP_WINDOW:]
    size = len(tail)
    if size <= LOOP_MIN_SPAN:  # the shortest loop: LOOP_MIN_SPAN characters and one more unit
        return None
    key = tail[-4:]  # a period p needs the last 4 characters to recur p characters earlier
    lowest = max(0, size - 4 - LOOP_MAX_PERIOD)
    end = size - 1
    while True:
        j = tail.rfind(key, lowest, end)
        if j < 0:
            return None
        period = size - 4 - j
        end = j + 3
        span = max(3 * period, LOOP_MIN_SPAN)
        if span + period > size:
            return None
        if tail[size - span :] == tail[size - span - period : size - period]:
            return {
                "kind": "repetition",
                "message": f"the answer ends in a loop repeating a {period}-character unit",
                "period": period,
                "excerpt": tail[size - period :][:80],
            }


REPEAT_MIN = 200  # a round repeating this much text verbatim is looping


def check_repeated_round(answer: Text, new_text: str) -> Flag | None:
    """The new round starts with a verbatim copy (REPEAT_MIN characters) of recent text."""
    if len(new_text) < REPEAT_MIN or new_text[:REPEAT_MIN] not in answer[-LOOP_WINDOW:]:
        return None
    return {
        "kind": "repetition",
        "message": "the new round repeats text written before, verbatim",
        "excerpt": new_text[:80],
    }


def _fence_lines(text: str) -> int:
    count = 0
    for line in text.split("\n"):
        stripped = line.lstrip()
        if stripped.startswith("```") or stripped.startswith("~~~"):
            count += 1
    return count


class FenceTracker:
    """Whether the end of a growing (and occasionally trimmed) text is inside a code fence.

    Counts fence lines incrementally from checkpoints, so a run of a million
    tokens never rescans its whole text at every seam.
    """

    def __init__(self) -> None:
        self._checkpoints: list[tuple[int, int]] = [(0, 0)]  # (position after a newline, fences before)

    def open_at(self, text: Text) -> bool:
        length = len(text)
        while self._checkpoints[-1][0] > length:
            self._checkpoints.pop()
        pos, fences = self._checkpoints[-1]
        last_nl = text.rfind("\n", pos, length)
        if last_nl >= 0:
            fences += _fence_lines(text[pos:last_nl])
            pos = last_nl + 1
            self._checkpoints.append((pos, fences))
        partial = text[pos:length].lstrip()
        if partial.startswith("```") or partial.startswith("~~~"):
            fences += 1
        return fences % 2 == 1


def check_structure(text: Text, fences: FenceTracker) -> list[Flag]:
    """Flags for a seam at the end of ``text`` that falls inside a code block or a table."""
    flags: list[Flag] = []
    if fences.open_at(text):
        flags.append(
            {"kind": "open_fence", "message": "the seam falls inside a code block: check the join there"}
        )
    line_start = text.rfind("\n", 0, len(text) - 1 if text.endswith("\n") else len(text)) + 1
    if text[line_start:].lstrip().startswith("|"):
        flags.append({"kind": "open_table", "message": "the seam falls inside a table: check the row there"})
    return flags
