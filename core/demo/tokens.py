"""The demo tokenizer and :class:`Document`, a text cut into demo tokens.

A demo token is one piece matched by ``\\s*\\S{1,12}``: optional leading
whitespace, then up to 12 non-space characters (longer words are split into
12-character pieces). Trailing whitespace at the very end of a text is a token
of its own. The pieces partition the text exactly, so ``"".join(tokens(t)) == t``.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from functools import cached_property

TOKEN_RE = re.compile(r"\s*\S{1,12}|\s+")


def tokenize(text: str) -> list[str]:
    """The demo tokens of ``text``; they join back to ``text`` exactly."""
    return TOKEN_RE.findall(text)


def count_tokens(text: str) -> int:
    """How many demo tokens ``text`` holds (what the demo model bills)."""
    return len(TOKEN_RE.findall(text))


def common_prefix_length(a: str, b: str) -> int:
    """Length of the longest common prefix of ``a`` and ``b`` (binary search on C-level compares)."""
    if b.startswith(a):
        return len(a)
    if a.startswith(b):
        return len(b)
    lo, hi = 0, min(len(a), len(b))  # a[:lo] == b[:lo] holds; a[:hi+1] != b[:hi+1]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


PROBE_CHARS = 32  # what :func:`continue_at` looks for first, in an answer that departs


def continue_at(answer: str, text: str) -> int:
    """The character of ``text`` (a demo document) where the demo goes on after ``answer``.

    An answer that is a prefix of the text goes on where it ends. One that departs from it at
    character ``k`` (an edit) goes on with ``text[k:]``: from where it departs. The next request
    sends that answer back with what the demo wrote, so an answer that ends with the start of
    ``text[k:]`` goes on after the longest such end, as any continuation does: a run goes on
    round after round after an edit, not one round only.
    """
    k = common_prefix_length(answer, text)
    if k == len(answer):
        return k
    rest = answer[k:]
    ahead = text[k : k + len(rest)]  # what the demo writes after the departure, as long as rest at most
    probe = ahead[:PROBE_CHARS]
    if len(probe) == PROBE_CHARS:  # an end of PROBE_CHARS or more starts with the probe
        at = rest.find(probe)
        while at != -1:
            if ahead.startswith(rest[at:]):
                return k + len(rest) - at
            at = rest.find(probe, at + 1)
    for size in range(min(len(ahead), PROBE_CHARS - 1), 0, -1):
        if rest.endswith(ahead[:size]):
            return k + size
    return k


class Document:
    """A text and its demo tokens, with the offsets needed to continue from any character."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        starts: list[int] = []
        offset = 0
        for token in self.tokens:
            starts.append(offset)
            offset += len(token)
        self.starts = starts

    def __len__(self) -> int:
        return len(self.tokens)

    @cached_property
    def encoded(self) -> list[bytes]:
        """Each token as a JSON string literal in UTF-8, ready to splice into an SSE chunk."""
        return [json.dumps(t, ensure_ascii=False).encode() for t in self.tokens]

    def locate(self, offset: int) -> tuple[int, str | None]:
        """Where continuing from character ``offset`` starts.

        Returns ``(index, partial)``: ``partial`` is the rest of token ``index`` when
        ``offset`` falls inside it (emitted first), else ``None`` and the stream
        starts at token ``index``. ``index == len(self)`` means nothing is left.
        """
        if offset <= 0:
            return 0, None
        if offset >= len(self.text):
            return len(self.tokens), None
        index = bisect_right(self.starts, offset) - 1
        start = self.starts[index]
        if start == offset:
            return index, None
        return index, self.text[offset : start + len(self.tokens[index])]

    def prefix_tokens(self, text: str) -> int | None:
        """``count_tokens(text)`` when ``text`` is a prefix of this document, else None.

        One C-level compare and a bisection instead of a tokenization: a continuation
        round re-sends the whole answer so far, and a 1M-token answer is ~6 MB of text.
        Exact: tokens wholly inside the prefix are the document's own (the pattern is
        greedy and looks no further than a token's end), and a token cut by the end of
        the prefix leaves one non-empty piece, which is one token.
        """
        if not self.text.startswith(text):
            return None
        index, partial = self.locate(len(text))
        return index + (partial is not None)

    def restart_offset(self, offset: int, back: int) -> int:
        """The start of the ``back``-th last token that overlaps ``text[:offset]`` (0 if none)."""
        offset = min(offset, len(self.text))
        if offset <= 0 or back <= 0:
            return offset
        last = bisect_right(self.starts, offset - 1) - 1  # the token holding text[offset - 1]
        return self.starts[max(0, last - back + 1)]
