"""Model output as Markdown: links with schemes other than http(s)/mailto become plain text.

Streamlit escapes raw HTML and drops ``javascript:`` links itself, but keeps
``data:text/html`` and other schemes as live links; ``pages/_blocks.safe_links``
(applied by ``to_markdown`` to every block the Studio and the history draw)
turns those into text. The browser side is ``tests/e2e/test_security.py``.
"""

from __future__ import annotations

import pytest

from pages._blocks import safe_links, split_blocks, to_markdown, unsafe_url

UNSAFE = [
    "[x](data:text/html;base64,PHNjcmlwdD4=)",
    "[x](javascript:alert(1))",
    "[x]( JaVaScRiPt:alert(1) )",
    "[x](<data:text/html,hi>)",
    "[x](data&#58;text/html,hi)",  # an entity for the colon
    "[x](java&#x09;script:alert(1))",  # a tab, which browsers drop
    "[x](vbscript:msgbox)",
    "[x](file:///etc/passwd)",
    "![img](data:image/svg+xml,<svg onload=alert(1)>)",
    '[x](data:text/html "a title")',
    "see <data:text/html,hi> here",
    "see <javascript:alert(1)> here",
]


@pytest.mark.parametrize("md", UNSAFE)
def test_unsafe_links_become_text(md):
    out = safe_links(md, None)
    assert out != md and ("]\\(" in out or "\\<" in out)


def test_an_unsafe_reference_definition_becomes_text():
    md = "A [link][1] and [another][2].\n\n[1]: data:text/html,hi\n[2]:\n   javascript:alert(1)"
    out = safe_links(md, None)
    assert "\n\\[1]: data:text/html,hi\n\\[2]:\n" in out


SAFE = [
    "[site](https://example.com/a_(b))",
    "[site](http://example.com)",
    "[mail](mailto:a@example.com)",
    "[relative](./notes.md) and [anchor](#top) and [proto](//example.com)",
    "![png](data:image/png;base64,iVBORw0KGgo=)",
    "a ratio 3:4 and a time 10:30 and `[x](data:text/html,hi)` in code",
    "```html\n[x](data:text/html,hi)\n<javascript:alert(1)>\n```",
    "<https://example.com> and a tag <span>",
]


@pytest.mark.parametrize("md", SAFE)
def test_safe_links_and_code_are_left_alone(md):
    assert safe_links(md, None) == md


def test_inside_a_fence_opened_in_an_earlier_block_nothing_changes():
    assert safe_links("[x](data:text/html,hi)\n```\nafter [y](data:text/html,hi)", "```") == (
        "[x](data:text/html,hi)\n```\nafter [y]\\(data:text/html,hi)"
    )


def test_every_block_the_app_draws_is_defused():
    text = "Intro paragraph.\n\n" + "[x](data:text/html,hi) words " * 80 + "\n\nEnd."
    drawn = "".join(block.markdown() for block in split_blocks(text, min_block=50, max_tail=300))
    assert "](data:" not in drawn and drawn.count("]\\(data:") == 80
    assert to_markdown("[x](javascript:alert(1))", None, close=True) == "[x]\\(javascript:alert(1))"


@pytest.mark.parametrize(
    ("url", "unsafe"),
    [
        ("https://x", False),
        ("data:image/webp;base64,AA", False),
        ("data:image/svg+xml,x", True),
        ("x:y", True),
    ],
)
def test_unsafe_url(url, unsafe):
    assert unsafe_url(url) is unsafe
