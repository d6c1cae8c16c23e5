"""``<think>`` tags in streamed content, split into reasoning and answer.

Some servers send reasoning in a field of its own (``reasoning_content`` or
``reasoning``); the client maps those to ``StreamDelta.reasoning``. Others
(DeepSeek-R1 style templates, many local servers) put it inline::

    <think>\\nI should list…\\n</think>\\n\\n# The answer

:class:`ThinkSplitter` turns such content into ``("reasoning", …)`` and
``("content", …)`` pieces while it streams, with tags split anywhere across
chunks. A ``<think>`` only opens reasoning at the very start of an answer (after
optional whitespace), so an answer that *talks about* the tag is left alone.

A round cut inside the reasoning is continued inside it: the next request's
prefill is :func:`reasoning_prefill` (``"<think>\\n" + R``, no closing tag), and
that round's splitter starts ``inside``, so the rest of the reasoning, the
closing tag and the answer are split the same way.
"""

from __future__ import annotations

from typing import Literal

OPEN = "<think>"
CLOSE = "</think>"

Piece = tuple[Literal["content", "reasoning"], str]

_START, _INSIDE, _AFTER, _CONTENT = range(4)


def reasoning_prefill(reasoning: str) -> str:
    """The assistant prefill that continues a reasoning cut mid-way."""
    return OPEN + "\n" + reasoning


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that is a proper beginning of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class ThinkSplitter:
    """Splits ``<think>…</think>`` out of content deltas, one round at a time.

    ``inside=True``: the round continues a reasoning cut in the previous round;
    ``closed=True``: the previous round ended right after ``</think>``;
    ``empty=True`` (with ``inside``): it ended right after ``<think>``, so the
    newline after the tag may still come.
    ``at_start=False``: the answer already has content, so nothing here can open
    reasoning and every piece is content (:attr:`passthrough` is then True and
    callers may skip the splitter entirely).

    Whitespace right after ``<think>`` (one newline), right before ``</think>``
    and right after it is markup, not text, and is dropped.
    """

    __slots__ = ("_buf", "_skip_newline", "_state", "closed", "opened")

    def __init__(
        self, *, inside: bool = False, at_start: bool = True, closed: bool = False, empty: bool = False
    ) -> None:
        self._state = _INSIDE if inside else (_START if at_start else _CONTENT)
        if closed:  # the reasoning closed in an earlier round; the answer has not started
            self._state = _AFTER
        self._buf = ""  # text not yet decided (a possible tag or held whitespace)
        self._skip_newline = inside and empty
        self.closed = closed  # a </think> was seen (in this round, or before it)
        self.opened = inside or closed  # reasoning came in <think> tags

    @property
    def passthrough(self) -> bool:
        return self._state == _CONTENT and not self._buf

    @property
    def inside(self) -> bool:
        """True while the stream is inside the reasoning."""
        return self._state == _INSIDE

    def feed(self, text: str) -> list[Piece]:
        out: list[Piece] = []
        if self._state == _CONTENT and not self._buf:
            if text:
                out.append(("content", text))
            return out
        self._buf += text
        self._drain(out)
        return out

    def finish(self, *, cut: bool = False) -> list[Piece]:
        """Flush at the end of the round.

        ``cut``: the round was truncated, so whitespace held at the end of the
        reasoning is dropped (the next round regenerates it after the prefill).
        """
        out: list[Piece] = []
        buf, self._buf = self._buf, ""
        if self._state == _START:
            if buf.strip():
                out.append(("content", buf))
        elif self._state == _INSIDE:
            if buf and not (cut and not buf.strip()):
                out.append(("reasoning", buf))
        elif self._state == _CONTENT and buf:
            out.append(("content", buf))
        return out

    # ------------------------------------------------------------ state machine

    def _drain(self, out: list[Piece]) -> None:
        while self._buf:
            state = self._state
            if state == _START:
                if not self._start(out):
                    return
            elif state == _INSIDE:
                if not self._inside(out):
                    return
            elif state == _AFTER:
                rest = self._buf.lstrip()
                if not rest:
                    self._buf = ""
                    return
                self._buf = rest
                self._state = _CONTENT
            else:
                out.append(("content", self._buf))
                self._buf = ""
                return

    def _start(self, out: list[Piece]) -> bool:
        stripped = self._buf.lstrip()
        if not stripped or (len(stripped) < len(OPEN) and OPEN.startswith(stripped)):
            return False  # undecided: wait for more
        if stripped.startswith(OPEN):
            self._buf = stripped[len(OPEN) :]
            self._state = _INSIDE
            self._skip_newline = True
            self.opened = True
            return True
        self._state = _CONTENT
        return True

    def _inside(self, out: list[Piece]) -> bool:
        buf = self._buf
        if self._skip_newline:
            if buf.startswith("\n"):
                buf = buf[1:]
            self._skip_newline = False
            if not buf:
                self._buf = ""
                return False
        end = buf.find(CLOSE)
        if end >= 0:
            reasoning = buf[:end].rstrip()
            if reasoning:
                out.append(("reasoning", reasoning))
            self._buf = buf[end + len(CLOSE) :]
            self._state = _AFTER
            self.closed = True
            return True
        keep = _partial_suffix(buf, CLOSE)
        body = buf[: len(buf) - keep] if keep else buf
        stripped = body.rstrip()
        keep += len(body) - len(stripped)  # hold trailing whitespace: it may precede </think>
        if stripped:
            out.append(("reasoning", stripped))
        self._buf = buf[len(buf) - keep :] if keep else ""
        return False
