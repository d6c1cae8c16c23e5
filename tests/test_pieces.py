"""A text given as pieces (core.types.pieces.Pieces) reads like the str it stands for.

The answer so far travels in each request as the rounds' own strings, never joined
(bench/bench_memory.py); the seam checks and the reply filters read it through the str
operations below, so each must give what the joined str gives, at any split.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.types.pieces import Pieces

PROPS = settings(max_examples=200, deadline=None)

chars = st.text(st.sampled_from('ab\n"\\é—\U0001f600 '), max_size=12)
pieces = st.lists(chars, max_size=8)
bounds = st.one_of(st.none(), st.integers(-30, 30))


@PROPS
@given(pieces)
def test_length_truth_and_the_joined_text_are_the_strs(parts: list[str]) -> None:
    text, joined = Pieces(parts), "".join(parts)
    assert (len(text), bool(text), str(text)) == (len(joined), bool(joined), joined)


@PROPS
@given(pieces, st.integers(0, 100))
def test_a_head_is_the_strs_beginning(parts: list[str], n: int) -> None:
    joined = "".join(parts)
    head = Pieces(parts).head(min(n, len(joined)))
    assert str(head) == joined[:n] and len(head) == len(joined[:n]) and head[-2:] == joined[:n][-2:]


@PROPS
@given(pieces, bounds, bounds)
def test_a_slice_is_the_strs_slice(parts: list[str], start: int | None, stop: int | None) -> None:
    assert Pieces(parts)[start:stop] == "".join(parts)[start:stop]


@PROPS
@given(pieces, st.integers(-30, 30))
def test_an_index_is_the_strs_character_or_the_same_error(parts: list[str], index: int) -> None:
    joined = "".join(parts)
    if -len(joined) <= index < len(joined):
        assert Pieces(parts)[index] == joined[index]
    else:
        with pytest.raises(IndexError):
            Pieces(parts)[index]


@PROPS
@given(pieces, chars, st.integers(0, 30))
def test_startswith_endswith_and_prefix_of_are_the_strs(parts: list[str], other: str, at: int) -> None:
    text, joined = Pieces(parts), "".join(parts)
    assert text.startswith(other, at) == joined.startswith(other, at)
    assert text.startswith(joined[at : at + 3], at) == joined.startswith(joined[at : at + 3], at)
    assert text.endswith(other) == joined.endswith(other)
    assert text.endswith(joined[-3:]) and text.is_prefix_of(joined + other)
    assert text.is_prefix_of(other) == other.startswith(joined)


@PROPS
@given(pieces, st.sampled_from(["", "\n", "a", "ab", "\n\n", "a\n", "é—", 'b"\\']), bounds, bounds)
def test_rfind_is_the_strs_also_across_pieces(
    parts: list[str], sub: str, start: int | None, end: int | None
) -> None:
    assert Pieces(parts).rfind(sub, start, end) == "".join(parts).rfind(sub, start, end)


@PROPS
@given(pieces, pieces, chars)
def test_equality_and_concatenation_are_the_strs(left: list[str], right: list[str], extra: str) -> None:
    a, b = "".join(left), "".join(right)
    assert (Pieces(left) == Pieces(right)) == (a == b)
    assert (Pieces(left) == b) == (a == b) and Pieces(left) == a
    assert str(Pieces(left) + Pieces(right)) == a + b
    assert str(extra + Pieces(left) + extra) == extra + a + extra


def test_the_pieces_are_the_strings_given_not_copies() -> None:
    first, second = "x" * 100, "y" * 100
    text = Pieces([first, "", second])
    assert all(a is b for a, b in zip(text.pieces, (first, "", second), strict=True))
    assert text.head(150).pieces[0] is first and str(text.head(100)) == first


def test_a_slice_with_a_step_is_refused() -> None:
    with pytest.raises(ValueError, match="step"):
        Pieces(["abc", "def"])[::2]
