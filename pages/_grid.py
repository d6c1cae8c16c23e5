"""How wide text is in an ``st.dataframe`` grid, so a table's columns can be sized to their values.

The grid draws its cells on a canvas in the app's font (14 px Source Sans, the theme's
``sans-serif``) with 8 px of padding each side. The widths below were measured in Chromium
with ``CanvasRenderingContext2D.measureText`` in that font and rounded up to a quarter pixel;
a character not listed counts as wide (14 px, an emoji 18 px), so an estimate errs on the wide
side and a column sized from it never cuts its text.

A grid wraps the text of its cells only when its rows are taller than 4rem (64 px):
``WRAPPED_ROW_PX`` rows hold three lines.
"""

from __future__ import annotations

import math

_MEASURED = {
    3.0: " ",
    3.5: "',.:;ij|·",
    3.75: "Il",
    4.25: "!()[]f{}",
    4.5: "-",
    4.75: "t",
    5.0: "/\\r",
    6.0: '"*?sz',
    6.25: "x",
    6.5: "c",
    6.75: "JYvy",
    7.0: "0123456789#$+<=>FL^_ek~≈é",
    7.25: "VXag",
    7.5: "ES",
    7.75: "ATZ`bhnou",
    8.0: "CPRdpq",
    8.25: "BK",
    8.75: "&DG",
    9.25: "HNU",
    9.5: "OQ",
    10.25: "Mw",
    11.25: "W—",
    11.75: "%m",
    12.0: "@",
    13.5: "…",
}
CHAR_PX = {char: width for width, chars in _MEASURED.items() for char in chars}
WIDE_PX = 14.0  # a character not measured (accented, CJK, symbols)
EMOJI_PX = 18.0
PADDING_PX = 8  # each side of a cell's text
SLACK_PX = 4  # the cell's border and the rounding of a canvas
LINE_PX = 19.6  # 14 px at the grid's line height of 1.4
ROW_PX = 35  # the height of a one-line row
WRAPPED_ROW_PX = 65  # the least height at which the grid wraps text: three lines
HEADER_PX = 38
ROW_MARKER_PX = 34  # the checkbox column of a selectable grid


def text_px(text: str) -> float:
    """The width of ``text`` on one line, in pixels (at least what the grid draws)."""
    return sum(CHAR_PX.get(c, EMOJI_PX if ord(c) >= 0x1F000 else WIDE_PX) for c in text)


def cell_px(text: str) -> int:
    """The width of a column that shows ``text`` (each of its lines) without cutting it."""
    widest = max((text_px(line) for line in text.split("\n")), default=0.0)
    return math.ceil(widest) + 2 * PADDING_PX + SLACK_PX


def wrapped(text: str, width: int) -> list[str]:
    """``text`` broken into lines at spaces (and at its newlines) to fit a column ``width`` wide,
    as the grid wraps it; a word longer than a line is broken inside."""
    room = width - 2 * PADDING_PX - SLACK_PX
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if text_px(candidate) <= room:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = word
            while text_px(line) > room and len(line) > 1:  # a word longer than the line
                cut = 1
                while text_px(line[: cut + 1]) <= room:
                    cut += 1
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line)
    return lines


def shortened(text: str, width: int, lines: int) -> str:
    """``text`` as it fits in ``lines`` lines of a column ``width`` wide: whole, or cut at a
    space and ended with "…"."""
    if len(wrapped(text, width)) <= lines:
        return text
    words = text.split(" ")
    while len(words) > 1 and len(wrapped(" ".join(words) + "…", width)) > lines:
        words.pop()
    short = " ".join(words)
    while short and len(wrapped(short + "…", width)) > lines:  # one word longer than the lines
        short = short[:-1]
    return short + "…"
