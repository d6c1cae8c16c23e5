"""Cutting a streamed answer into sealed Markdown blocks and a short live tail (pages/_blocks.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from core.demo import demo_document
from pages._blocks import BlockCutter, escape_dollars, fence_after, split_blocks

DOC = demo_document("Write about 4000 tokens on lighthouses, with code and tables.")


def stream(text: str, step: int, cutter: BlockCutter | None = None) -> tuple[BlockCutter, list[str]]:
    cutter = cutter or BlockCutter()
    sealed: list[str] = []
    for end in range(step, len(text) + step, step):
        sealed += [b.text for b in cutter.cut(text[:end])]
    return cutter, sealed


def test_sealed_blocks_and_tail_reassemble_the_text_exactly():
    cutter, sealed = stream(DOC, 23)
    assert "".join(sealed) + DOC[cutter.sealed :] == DOC


def test_the_live_tail_stays_short_while_streaming():
    cutter = BlockCutter()
    longest = 0
    for end in range(0, len(DOC), 41):
        cutter.cut(DOC[:end])
        longest = max(longest, end - cutter.sealed)
    assert longest < 2 * cutter.max_tail


def test_blocks_are_cut_on_paragraph_breaks():
    _, sealed = stream(DOC, 50)
    assert all(DOC[len("".join(sealed[: i + 1])) :].startswith("\n") for i in range(len(sealed)))


def test_the_trailing_word_is_never_sealed():
    cutter = BlockCutter(min_block=10)
    text = "First paragraph here.\n\nSecond paragraph ends mid-wo"
    cutter.cut(text)
    assert cutter.sealed <= text.rindex("Second")


def test_a_text_rewritten_behind_the_seal_is_detected():
    cutter = BlockCutter(min_block=10)
    cutter.cut("Alpha beta gamma.\n\nDelta epsilon zeta.\n\nEta theta")
    assert not cutter.extends("Alpha beta gamma.\n\nDelta EPSILON zeta.\n\nEta theta iota")


def test_held_back_tail_can_be_retracted_without_breaking_the_seal():
    cutter = BlockCutter(min_block=10)
    text = "Alpha beta gamma.\n\nDelta epsilon zeta.\n\nEta theta io"
    cutter.cut(text)
    assert cutter.extends(text[: -len("io")])


def test_a_block_ending_inside_a_code_fence_closes_it_and_the_next_reopens_it():
    code = "\n".join(f"line_{i} = {i}" for i in range(200))
    text = f"Intro paragraph.\n\n```python\n{code}\n```\n\nAfter the code."
    cutter = BlockCutter(min_block=50, max_tail=400)
    blocks = [b for end in range(0, len(text) + 30, 30) for b in cutter.cut(text[:end])]
    inside = [b for b in blocks if b.fence_before == "```python"]
    assert inside and all(b.markdown().startswith("```python\n") for b in inside)
    assert all(b.markdown().rstrip().endswith("```") for b in blocks if b.fence_after)


def test_a_long_table_is_not_split_between_rows():
    rows = "\n".join(f"| r{i} | {i} |" for i in range(300))
    text = f"Intro.\n\n| a | b |\n| --- | --- |\n{rows}\nTail words here"
    cutter = BlockCutter(min_block=50, max_tail=400)
    blocks = [b for end in range(0, len(text) + 30, 30) for b in cutter.cut(text[:end])]
    table = [b.text for b in blocks if "| r" in b.text] or [text[cutter.sealed :]]
    assert len(table) == 1 and "| a | b |" in table[0] and "| r299 | 299 |" in table[0]


def test_split_blocks_covers_the_whole_text():
    assert "".join(b.text for b in split_blocks(DOC)) == DOC


def test_fence_state_follows_opening_and_closing_lines():
    assert fence_after("text\n```js\ncode", None) == "```js"
    assert fence_after("code\n```\nafter", "```js") is None
    assert fence_after("inline ```code``` here", None) is None


def test_dollars_are_escaped_outside_code_only():
    text = "It costs $5 and `$HOME` stays.\n```sh\necho $PATH\n```\nThen $6."
    escaped = escape_dollars(text, None)
    assert escaped == "It costs \\$5 and `$HOME` stays.\n```sh\necho $PATH\n```\nThen \\$6."


@settings(max_examples=150, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("ab \n`|$#-")), max_size=3000),
    st.integers(min_value=1, max_value=300),
)
def test_any_text_streamed_in_any_steps_reassembles_exactly(text: str, step: int):
    cutter, sealed = stream(text, step, BlockCutter(min_block=20, max_tail=200))
    assert "".join(sealed) + text[cutter.sealed :] == text
