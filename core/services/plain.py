"""Markdown to plain text, for the ``.txt`` download: the words without the syntax.

Models answer in Markdown; a ``.txt`` file should read as text in any editor. Kept:
every word, line breaks, list bullets and numbers, table cells, code (as is). Dropped:
heading marks, emphasis and inline-code markers, fence lines, blockquote marks, link
and image syntax (a link becomes ``text (url)``, an image its alt text), HTML comments.
A line-by-line pass, no Markdown library: what is not recognised stays as written.
"""

from __future__ import annotations

import re

__all__ = ["plain_text"]

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]+|$)")
CLOSING_HASHES = re.compile(r"[ \t]+#+[ \t]*$")
QUOTE = re.compile(r"^ {0,3}(?:>[ \t]?)+")
RULE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
EMPHASIS = re.compile(
    r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])|(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])"
)
STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
CODE = re.compile(r"(`+)(.+?)\1")
COMMENT = re.compile(r"<!--.*?-->", re.S)


def _inline(line: str) -> str:
    codes: list[str] = []

    def keep(match: re.Match[str]) -> str:  # code spans are not touched by the other rules
        codes.append(match.group(2).strip() if match.group(2).strip() else match.group(2))
        return f"\x00{len(codes) - 1}\x00"

    line = CODE.sub(keep, line)
    line = IMAGE.sub(r"\1", line)
    line = LINK.sub(
        lambda m: m.group(1) if m.group(1) == m.group(2) else f"{m.group(1)} ({m.group(2)})", line
    )
    line = STRONG.sub(r"\2", line)
    line = EMPHASIS.sub(lambda m: m.group(1) or m.group(2) or "", line)
    line = STRIKE.sub(r"\1", line)
    return re.sub(r"\x00(\d+)\x00", lambda m: codes[int(m.group(1))], line)


def plain_text(markdown: str) -> str:
    """``markdown`` as plain text (see the module docstring)."""
    out: list[str] = []
    fence: str | None = None
    for line in COMMENT.sub("", markdown).split("\n"):
        opened = FENCE.match(line)
        if fence is not None:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = None  # the closing fence line is dropped
            else:
                out.append(line)
            continue
        if opened:
            fence = opened.group(1)
            continue
        if RULE.match(line):
            out.append("")
            continue
        if HEADING.match(line):
            line = CLOSING_HASHES.sub("", HEADING.sub("", line, count=1))
        line = QUOTE.sub("", line)
        out.append(_inline(line))
    return "\n".join(out)
