"""A text given as the pieces it is made of, never joined whole: :class:`Pieces`.

A continuation request carries the whole answer so far, and the answer is already held,
piece by piece, by the rounds that wrote it (``Round.text``). Joining the pieces for each
request would hold a second whole copy (two bytes a character once the text has one
character above U+00FF), so the request carries the pieces themselves: the request body
encoder writes them one after the other (:mod:`core.wire.body`), and the seam checks read
the ends of the text, which is all they need (:mod:`core.continuation.seams`).

:class:`Pieces` reads like the ``str`` it stands for where that costs no whole copy:
``len``, truth, indexing and slices (a ``str``, as long as the slice), ``startswith``,
``endswith``, ``rfind``, ``==`` and ``+`` with a ``str`` or another :class:`Pieces`.
Only ``str(pieces)`` joins them, on purpose.

:data:`Text` is what may stand for a text: a ``str``, or :class:`Pieces`.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from itertools import accumulate
from typing import TypeAlias

__all__ = ["Pieces", "Text"]


class Pieces:
    """The text of ``pieces`` joined, without joining them."""

    __slots__ = ("_length", "_offsets", "pieces")

    def __init__(self, pieces: Iterable[str] = ()) -> None:
        self.pieces: tuple[str, ...] = tuple(pieces)
        self._length = sum(map(len, self.pieces))
        self._offsets: list[int] | None = None  # counted when first needed (not every use does)

    @property
    def _starts(self) -> list[int]:
        """Where each piece starts, then the length."""
        if self._offsets is None:
            self._offsets = [0, *accumulate(map(len, self.pieces))]
        return self._offsets

    def head(self, n: int) -> Pieces:
        """The first ``n`` characters (0 <= n <= len), sharing every piece but the one cut."""
        if n >= self._length:
            return self
        head = Pieces()
        last = len(self.pieces[-1])
        if n >= self._length - last:  # in the last piece: the usual cut (a round's held-back tail)
            index, at = len(self.pieces) - 1, self._length - last
        else:
            index = bisect_right(self._starts, n) - 1
            at = self._starts[index]
        head.pieces = (*self.pieces[:index], self.pieces[index][: n - at]) if n > at else self.pieces[:index]
        head._length = n
        return head

    def __len__(self) -> int:
        return self._length

    def __bool__(self) -> bool:
        return self._length > 0

    def __str__(self) -> str:
        return "".join(self.pieces)

    def __repr__(self) -> str:
        return f"<Pieces: {len(self.pieces)} pieces, {len(self)} characters>"

    def __add__(self, other: str | Pieces) -> Pieces:
        if isinstance(other, Pieces):
            return Pieces((*self.pieces, *other.pieces))
        if isinstance(other, str):
            return Pieces((*self.pieces, other))
        return NotImplemented

    def __radd__(self, other: str) -> Pieces:
        if isinstance(other, str):
            return Pieces((other, *self.pieces))
        return NotImplemented

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return len(other) == len(self) and self.is_prefix_of(other)
        if isinstance(other, Pieces):
            return len(other) == len(self) and all(
                self.startswith(piece, at) for piece, at in zip(other.pieces, other._starts, strict=False)
            )
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to a str, so it cannot hash like one

    def __getitem__(self, key: int | slice) -> str:
        """A character, or a contiguous slice as a ``str`` (a copy of only that much)."""
        length = len(self)
        if isinstance(key, slice):
            start, stop, step = key.indices(length)
            if step != 1:
                raise ValueError("slices of Pieces take no step")
            return self._span(start, stop)
        index = key + length if key < 0 else key
        if not 0 <= index < length:
            raise IndexError("Pieces index out of range")
        return self._span(index, index + 1)

    def _span(self, start: int, stop: int) -> str:
        """The characters from ``start`` to ``stop`` (0 <= start, stop <= len)."""
        if stop <= start:
            return ""
        first = bisect_right(self._starts, start) - 1
        out: list[str] = []
        for index in range(first, len(self.pieces)):
            at = self._starts[index]
            if at >= stop:
                break
            out.append(self.pieces[index][start - at if start > at else 0 : stop - at])
        return out[0] if len(out) == 1 else "".join(out)

    def startswith(self, prefix: str, start: int = 0) -> bool:
        """Whether the text from ``start`` (0 or more) begins with ``prefix``."""
        if start < 0 or start + len(prefix) > len(self):
            return False
        return self._span(start, start + len(prefix)) == prefix

    def endswith(self, suffix: str) -> bool:
        return len(suffix) <= len(self) and self._span(len(self) - len(suffix), len(self)) == suffix

    def is_prefix_of(self, text: str) -> bool:
        """``text.startswith(str(self))``, without joining."""
        return len(text) >= len(self) and all(
            text.startswith(piece, at) for piece, at in zip(self.pieces, self._starts, strict=False)
        )

    def rfind(self, sub: str, start: int | None = None, end: int | None = None) -> int:
        """The highest index in ``text[start:end]`` where ``sub`` is found, or -1 (as ``str.rfind``)."""
        length = len(self)
        low, high, _ = slice(start, end).indices(length)
        if start is not None and start > length:
            return -1
        if not sub:
            return high if low <= high else -1
        width = len(sub)
        # from the last piece back: each is searched with the characters after it that a match
        # starting in it may reach, so a match across a boundary is found once, in its first piece
        for index in range(len(self.pieces) - 1, -1, -1):
            at = self._starts[index]
            if at >= high:
                continue
            if self._starts[index + 1] + width - 1 <= high:
                window = self.pieces[index] + self._span(
                    self._starts[index + 1], self._starts[index + 1] + width - 1
                )
            else:
                window = self._span(at, high)
            hit = window.rfind(sub, max(low - at, 0))
            if hit >= 0:
                return at + hit
            if at <= low:
                break
        return -1


Text: TypeAlias = str | Pieces
