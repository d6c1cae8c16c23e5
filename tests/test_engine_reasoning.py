"""The <think> splitter: tags split anywhere across chunks, continuing inside a cut reasoning."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from core.continuation.reasoning import ThinkSplitter, reasoning_prefill


def split(chunks: list[str], **kwargs: bool) -> tuple[str, str]:
    splitter = ThinkSplitter(**kwargs)
    pieces = []
    for chunk in chunks:
        pieces += splitter.feed(chunk)
    pieces += splitter.finish()
    content = "".join(text for kind, text in pieces if kind == "content")
    reasoning = "".join(text for kind, text in pieces if kind == "reasoning")
    return content, reasoning


def chop(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    edges = [0, *points, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(edges)]


STREAM = "<think>\nPlan the answer.\n\nThen write it.\n</think>\n\n# Title\n\nBody text."


def test_think_tags_split_reasoning_from_content() -> None:
    assert split([STREAM]) == ("# Title\n\nBody text.", "Plan the answer.\n\nThen write it.")


@given(st.lists(st.integers(min_value=0, max_value=200), max_size=12))
def test_tags_split_anywhere_across_chunks_give_the_same_result(cuts: list[int]) -> None:
    assert split(chop(STREAM, cuts)) == ("# Title\n\nBody text.", "Plan the answer.\n\nThen write it.")


def test_content_without_tags_passes_through_untouched() -> None:
    assert split(["  Hello", " world"]) == ("  Hello world", "")


def test_a_think_tag_after_the_answer_started_is_content() -> None:
    assert split(["Use the <think>", " tag</think>"]) == ("Use the <think> tag</think>", "")


def test_a_splitter_for_an_answer_with_content_is_a_passthrough() -> None:
    splitter = ThinkSplitter(at_start=False)
    assert splitter.passthrough
    assert splitter.feed("<think>x") == [("content", "<think>x")]


def test_continuing_inside_reasoning_splits_at_the_closing_tag() -> None:
    assert split([" more thought", "\n</th", "ink>\n\n# Answer"], inside=True) == (
        "# Answer",
        " more thought",
    )


def test_a_round_cut_inside_reasoning_drops_trailing_whitespace() -> None:
    splitter = ThinkSplitter(inside=True)
    pieces = splitter.feed("so far")
    pieces += splitter.feed("\n\n")
    pieces += splitter.finish(cut=True)
    assert pieces == [("reasoning", "so far")]


def test_the_reasoning_prefill_opens_the_tag_without_closing_it() -> None:
    assert reasoning_prefill("I think") == "<think>\nI think"


def test_a_lone_less_than_sign_inside_reasoning_is_reasoning() -> None:
    assert split(["<think>a <", "b and c</think>x"]) == ("x", "a <b and c")


def test_a_round_after_a_bare_opening_tag_drops_the_newline_after_it() -> None:
    assert split(["\nLet me", " think</think>A"], inside=True, empty=True) == ("A", "Let me think")


def test_a_round_after_the_closing_tag_drops_the_whitespace_before_the_answer() -> None:
    assert split(["\n\n", "# Answer"], closed=True) == ("# Answer", "")
