"""Cutting a growing Markdown text into sealed blocks and a small live tail.

Every update of a Streamlit element re-sends the whole element, so streaming a
long answer into one element costs the square of its length on the wire. The
Studio instead seals finished text into blocks (each sent once) and re-sends
only the short tail after the last seal. This module decides where to cut.
It is pure (no Streamlit), so it is tested on its own.

Cuts fall on paragraph breaks (a blank line), never inside the last word of the
text (the engine may hold that back and re-generate it next round), and, when a
paragraph runs on too long, on a line break or a space. A cut inside a code
fence closes the fence at the end of the block and re-opens it at the start of
the next one, so each block renders as valid Markdown on its own.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass

FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_TRAILING_WORD = re.compile(r"\s*\S*\Z")


@dataclass(frozen=True)
class Block:
    text: str
    fence_before: str | None = None  # the fence line open when this block starts
    fence_after: str | None = None  # the fence line still open when it ends

    def markdown(self) -> str:
        return to_markdown(self.text, self.fence_before, close=True)


def fence_after(text: str, fence: str | None) -> str | None:
    """The fence line open after ``text``, given the one open before it (None: outside code)."""
    for line in text.split("\n"):
        match = FENCE_RE.match(line)
        if not match:
            continue
        marker, info = match.group(1), match.group(2)
        if fence is None:
            if marker[0] == "`" and "`" in info:
                continue  # ``` followed by a backtick is inline code, not a fence
            fence = line.strip()
        else:
            opener = _fence_marker(fence)
            if marker[0] == opener[0] and len(marker) >= len(opener) and not info.strip():
                fence = None
    return fence


def _fence_marker(fence: str) -> str:
    match = FENCE_RE.match(fence)
    return match.group(1) if match else "```"


def _map_prose(text: str, fence: str | None, change: Callable[[str, int, list[str]], str]) -> str:
    """``text`` with ``change(line, index, lines)`` applied to every line outside fenced code.

    ``fence``: the fence line of a code block still open before ``text`` (None: none is).
    """
    lines = text.split("\n")
    out = []
    for i, line in enumerate(lines):
        match = FENCE_RE.match(line)
        if fence is not None:
            out.append(line)
            if match and match.group(1)[0] == _fence_marker(fence)[0] and not match.group(2).strip():
                fence = None
            continue
        if match and not (match.group(1)[0] == "`" and "`" in match.group(2)):
            fence = line.strip()
            out.append(line)
            continue
        out.append(change(line, i, lines))
    return "\n".join(out)


def _outside_code_spans(line: str, change: Callable[[str], str]) -> str:
    parts = re.split(r"(`+[^`]*`+)", line)  # inline code spans stay as they are
    return "".join(p if p.startswith("`") else change(p) for p in parts)


def escape_dollars(text: str, fence: str | None) -> str:
    r"""Escape ``$`` outside code so Streamlit does not read money amounts as LaTeX math."""
    if "$" not in text:
        return text
    return _map_prose(
        text, fence, lambda line, i, lines: _outside_code_spans(line, lambda p: p.replace("$", r"\$"))
    )


# Links in model output: Streamlit drops javascript: URLs but keeps others (data:text/html…);
# only these schemes stay links, the rest is shown as text. Images are never fetched.
_SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
_SAFE_DATA = re.compile(r"data:image/(?:png|jpeg|gif|webp)[;,]", re.IGNORECASE)
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_REF_DEF = re.compile(r"^( {0,3})(\[(?:[^\]\\]|\\.)+\]:)(.*)$")
_AUTOLINK = re.compile(r"<([A-Za-z][A-Za-z0-9+.\-]{1,31}):[^\s<>]*>")
_INLINE_IMAGE = re.compile(r"!\[[^\[\]]*\]\(")  # ![alt]( with no brackets inside the alt text


def _decoded(destination: str) -> str:
    """A link destination as a browser reads it: entities and escapes decoded, whitespace and controls removed."""
    url = re.sub(r"\\(.)", r"\1", html.unescape(destination))
    return "".join(c for c in url if c > " " and c != "\x7f").lstrip("<")


def unsafe_url(destination: str) -> bool:
    """Whether a Markdown link destination would be a live link with a scheme other than
    http(s)/mailto (entities and escapes decoded, whitespace and controls removed as browsers do)."""
    url = _decoded(destination)
    match = _SCHEME.match(url)
    if not match or match.group(1).lower() in _SAFE_SCHEMES:
        return False
    return not (match.group(1).lower() == "data" and _SAFE_DATA.match(url))


def _destination(rest: str) -> str:
    rest = rest.lstrip()
    if rest.startswith("<"):
        return rest[: rest.find(">") + 1 or None]
    return re.split(r"[\s)]", rest, maxsplit=1)[0]


def _defang_images(part: str) -> str:
    """Every image becomes text (``!\\[``): the browser would fetch it from wherever it points.

    Only an inline ``data:`` image (png, jpeg, gif, webp) stays a picture: it needs no request.
    """
    out, start = [], 0
    while (at := part.find("![", start)) >= 0:
        out.append(part[start:at])
        inline = _INLINE_IMAGE.match(part, at)
        local = inline is not None and _SAFE_DATA.match(_decoded(_destination(part[inline.end() :])))
        out.append("![" if local else "!\\[")
        start = at + 2
    out.append(part[start:])
    return "".join(out)


def _defang_inline(part: str) -> str:
    part = _defang_images(part) if "![" in part else part
    out, start = [], 0
    while (at := part.find("](", start)) >= 0:
        out.append(part[start:at])
        out.append("]\\(" if unsafe_url(_destination(part[at + 2 :])) else "](")
        start = at + 2
    out.append(part[start:])
    text = "".join(out)
    return _AUTOLINK.sub(lambda m: "\\" + m.group(0) if unsafe_url(m.group(0)[1:-1]) else m.group(0), text)


def _defang_line(
    line: str, i: int, lines: list[str], split: Callable[[str, Callable[[str], str]], str]
) -> str:
    ref = _REF_DEF.match(line)
    if ref:
        dest = _destination(ref.group(3)) or (_destination(lines[i + 1]) if i + 1 < len(lines) else "")
        if unsafe_url(dest):
            line = f"{ref.group(1)}\\{ref.group(2)}{ref.group(3)}"
    return split(line, _defang_inline)


def safe_links(text: str, fence: str | None) -> str:
    """``text`` with images (but inline data: ones) and with links, reference definitions and
    autolinks whose scheme is not http, https, mailto (or a data: image) turned into plain text;
    code is left alone."""
    if ":" not in text and "&" not in text and "![" not in text:
        return text
    return _map_prose(text, fence, lambda line, i, lines: _defang_line(line, i, lines, _outside_code_spans))


def inert(text: str) -> str:
    """Text Continuum did not write, ready for any Markdown element: the one door for every string
    that came from a server (error messages, model names, probe replies, notices) or another session.

    The rendering of model output (:func:`safe_links`, ``$`` escaped), with no exemption for code:
    such a string is set inside Markdown of ours, where its fences and code spans would not parse as
    they do alone. So no image can form anywhere in it (a backslash may show inside its code).
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("$", r"\$")
    lines = text.split("\n")
    return "\n".join(
        _defang_line(line, i, lines, lambda part, change: change(part)) for i, line in enumerate(lines)
    )


def inert_code(text: str) -> str:
    """``text`` (a model name, a finish reason) as inline code that nothing in it can close or escape."""
    flat = " ".join(text.split())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", flat)), default=0) + 1)
    return f"{fence} {flat} {fence}"


def to_markdown(text: str, fence_before: str | None, *, close: bool) -> str:
    """``text`` ready for ``st.markdown``: fences re-opened/closed, ``$`` escaped, unsafe links and images defused."""
    body = safe_links(escape_dollars(text, fence_before), fence_before)
    if fence_before is not None:
        body = f"{fence_before}\n{body}"
    if close:
        still_open = fence_after(text, fence_before)
        if still_open is not None:
            body = f"{body}\n{_fence_marker(still_open)}"
    return body


class BlockCutter:
    """Remembers what has been sealed of one growing text and cuts new blocks from it."""

    def __init__(self, min_block: int = 240, max_tail: int = 1600) -> None:
        self.min_block = min_block  # do not try to cut before this much text is pending
        self.max_tail = max_tail  # past this, cut on a line break or space if no blank line
        self.sealed = 0  # characters of the text sealed so far
        self.fence: str | None = None  # fence open at the sealed boundary
        self._last = ""  # the last sealed block's text, to check the text still extends it

    def extends(self, text: str) -> bool:
        """Whether ``text`` still starts with what was sealed (False after a rewrite)."""
        if len(text) < self.sealed:
            return False
        return text.startswith(self._last, self.sealed - len(self._last))

    def cut(self, text: str) -> list[Block]:
        """Seal what can be sealed of ``text`` (which must :meth:`extend`); returns the new blocks."""
        blocks: list[Block] = []
        while True:
            pending = text[self.sealed :]
            if len(pending) < self.min_block:
                break
            at = self._cut_point(pending)
            if at <= 0:
                break
            piece = pending[:at]
            after = fence_after(piece, self.fence)
            blocks.append(Block(piece, self.fence, after))
            self.sealed += at
            self.fence = after
            self._last = piece
        return blocks

    def tail(self, text: str) -> str:
        """The unsealed end of ``text`` as Markdown (an open fence is left open)."""
        return to_markdown(text[self.sealed :], self.fence, close=False)

    def _cut_point(self, pending: str) -> int:
        # Never cut into the trailing (possibly partial) word nor the whitespace before it.
        trailing = _TRAILING_WORD.search(pending)  # always matches (both parts may be empty)
        safe = len(pending) - (len(trailing.group(0)) if trailing else 0)
        if safe <= 0:
            return 0
        separators = ("\n\n", "\n", " ") if len(pending) >= self.max_tail else ("\n\n",)
        for separator in separators:
            end = safe
            while (at := pending.rfind(separator, 0, end)) > 0 and pending[:at].strip():
                if separator == "\n\n" or not _in_table(pending, at):
                    return at
                end = at  # inside a table: a cut there would orphan the rows below
        return 0


def _in_table(text: str, at: int) -> bool:
    """Whether a cut at ``at`` (a line break or a space) falls inside a table row."""
    start = at + 1 if text[at] == "\n" else text.rfind("\n", 0, at) + 1
    return text[start : start + 8].lstrip(" ").startswith("|")


def split_blocks(text: str, min_block: int = 240, max_tail: int = 1600) -> list[Block]:
    """All of ``text`` as blocks, cut the same way a stream of it would be (the tail last)."""
    cutter = BlockCutter(min_block, max_tail)
    blocks = cutter.cut(text)
    rest = text[cutter.sealed :]
    if rest:
        blocks.append(Block(rest, cutter.fence, fence_after(rest, cutter.fence)))
    return blocks
