"""Properties of the seam logic (core.continuation.seams): hold-back, overlap and echo removal, checks.

A text split into rounds at arbitrary points, with arbitrary repeats at the
joins and arbitrary network chunking, assembles back to the original; nothing
is lost or doubled unless the join is ambiguous (then the tests say exactly
what happens); the checks flag what they claim and nothing else.
"""

from __future__ import annotations

import itertools

from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.continuation import seams
from core.continuation.seams import EchoFilter, FenceTracker, OverlapFilter, find_overlap, hold_back

PROPS = settings(max_examples=200, deadline=None)

# Prose-like text: letters, digits, spaces, newlines, some punctuation and markup, odd whitespace.
prose = st.text(st.sampled_from("ab cdé\n\t.,|`~#\u00a0\u2003\x1f漢"), max_size=120)
words = st.text(st.characters(codec="utf-8"), max_size=80)
texts = st.one_of(prose, words)


def chunked(text: str, cuts: list[int]) -> list[str]:
    bounds = [0, *sorted(min(cut, len(text)) for cut in cuts), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def longest_overlap(answer: str, new_text: str, min_chars: int = 8) -> int:
    """The longest end of ``answer`` (last OVERLAP_WINDOW characters) that ``new_text`` starts with."""
    tail = answer[-seams.OVERLAP_WINDOW :]
    for k in range(min(len(tail), len(new_text)), min_chars - 1, -1):
        if k and tail.endswith(new_text[:k]):
            return k
    return 0


def run_filter(filt: OverlapFilter | EchoFilter, pieces: list[str]) -> str:
    out = "".join(filt.feed(piece) for piece in pieces) + filt.flush()
    assert filt.decided and filt.flush() == "" and filt.feed("z") == "z"  # decided once, then transparent
    return out


# ---------------------------------------------------------------- hold-back


@PROPS
@given(texts, st.integers(1, 64))
@example("word " * 3 + "wor", 64)
@example(" \u00a0 ", 64)
@example("a\x1f", 64)  # U+001F is whitespace to Python
def test_hold_back_gives_back_at_most_half_the_round_and_ends_the_prefill_on_a_word(
    text: str, budget: int
) -> None:
    held = hold_back(text, budget)
    n = len(text)
    assert held >= 0 and 2 * held <= n
    if held:
        kept, back = text[: n - held], text[n - held :]
        assert not kept[-1].isspace()  # the prefill never ends in whitespace
        assert len(back.split()) <= 1  # at most one (partial) word goes back
        if budget < seams.HOLD_MIN_TOKENS:
            assert back.isspace()  # a tiny budget regenerates only whitespace


@PROPS
@given(texts)
def test_a_larger_budget_never_holds_back_less(text: str) -> None:
    tiny = hold_back(text, seams.HOLD_MIN_TOKENS - 1)
    assert hold_back(text, seams.HOLD_MIN_TOKENS) >= tiny
    assert hold_back(text, seams.HOLD_MIN_TOKENS) == hold_back(text, 10**6)


@PROPS
@given(
    st.text(st.sampled_from("abc xyz.é漢"), min_size=1, max_size=300),
    st.lists(st.integers(1, 40), min_size=1, max_size=30),
    st.integers(1, 64),
)
def test_prefill_rounds_with_hold_back_assemble_the_original_and_always_progress(
    original: str, sizes: list[int], budget: int
) -> None:
    rounds: list[str] = []
    for step in range(4 * len(original) + 4):
        if rounds:
            held = hold_back(rounds[-1], budget)
            rounds[-1] = rounds[-1][: len(rounds[-1]) - held]
        answer = "".join(rounds)
        if len(answer) == len(original):
            break
        size = sizes[step % len(sizes)]
        rounds.append(original[len(answer) : len(answer) + size])  # the model continues exactly
    else:
        raise AssertionError("no progress: hold-back kept giving back what the rounds wrote")
    assert "".join(rounds) == original


# ---------------------------------------------------------------- overlap removal


@PROPS
@given(texts, texts, st.integers(1, 12))
@example("the end of the answer", "of the answer and more", 8)
@example("abababab", "abababababx", 4)  # the longest of several overlaps
@example("aaaaaaaaa", "aaaaaaaax", 8)  # the first place the start recurs is not an overlap, the next one is
def test_find_overlap_is_the_longest_end_of_the_answer_the_new_text_starts_with(
    answer: str, new_text: str, min_chars: int
) -> None:
    assert find_overlap(answer, new_text, min_chars=min_chars) == longest_overlap(answer, new_text, min_chars)


@st.composite
def seam_cases(draw: st.DrawFn, source: st.SearchStrategy[str] = texts) -> tuple[str, int, int, list[int]]:
    """An original text, a seam position, how much the reply repeats before it, and network cuts."""
    original = draw(source)
    seam = draw(st.integers(0, len(original)))
    repeat = draw(st.integers(0, seam))
    cuts = draw(st.lists(st.integers(0, len(original)), max_size=8))
    return original, seam, repeat, cuts


@PROPS
@given(seam_cases())
@example(("It was the best of times, it was the worst of times.", 30, 12, [3, 9]))
@example(("-" * 40, 20, 10, []))  # ambiguous: a periodic text repeats itself anywhere
def test_the_instruction_strategy_assembles_the_original_when_the_repeat_is_unambiguous(
    case: tuple[str, int, int, list[int]],
) -> None:
    original, seam, repeat, cuts = case
    answer, reply = original[:seam], original[seam - repeat :]
    filt = OverlapFilter(answer)
    out = run_filter(filt, chunked(reply, cuts))
    assert filt.dropped + out == reply  # nothing invented, nothing lost from the reply
    k = longest_overlap(answer, reply)
    assert len(filt.dropped) == k  # the same decision whatever the chunking
    if k == repeat:  # the repeat is the only overlap (and at least 8 characters) or there is none
        assert answer + out == original


@PROPS
@given(seam_cases())
@example(("abab", 2, 0, []))  # ambiguous: the continuation happens to start with the prefill
def test_the_prefix_strategy_assembles_the_original_whether_or_not_the_server_echoes(
    case: tuple[str, int, int, list[int]],
) -> None:
    original, seam, _, cuts = case
    answer = original[:seam]
    for reply in (original, original[seam:]):  # the prefill echoed back, or not
        filt = EchoFilter(answer)
        out = run_filter(filt, chunked(reply, cuts))
        assert filt.dropped + out == reply
        assert filt.dropped in ("", answer)
        if reply is original or not reply.startswith(answer) or not answer:
            assert answer + out == original


# ---------------------------------------------------------------- checks


@PROPS
@given(texts, texts)
def test_an_overlap_flag_is_a_true_overlap_of_at_least_the_flag_minimum(answer: str, new_text: str) -> None:
    flag = seams.check_overlap(answer, new_text)
    k = longest_overlap(answer, new_text, seams.OVERLAP_MIN_FLAG)
    assert (flag is None) == (k == 0)
    if flag:
        assert flag["chars"] == k and answer.endswith(new_text[:k])


@PROPS
@given(st.text(min_size=0, max_size=100), st.text(max_size=40), st.text(" \n\t", max_size=3))
def test_a_reply_that_starts_the_answer_over_is_a_restart(answer: str, more: str, space: str) -> None:
    flag = seams.check_restart(answer, space + answer + more)
    assert (flag is not None) == (len(answer.lstrip()) >= seams.RESTART_MIN_SHORT)


@PROPS
@given(
    st.text(max_size=50),
    st.text(st.sampled_from("ab c\n"), min_size=1, max_size=seams.LOOP_MAX_PERIOD),
    st.integers(0, 3),
)
@example("", "a", 0)
@example("x", "ab" * 256, 0)  # the longest period looked for
@example("", "abaaaa", 0)  # "aaaa" recurs 4 and 5 characters back: the loop is the second
def test_a_text_ending_in_a_loop_is_flagged_and_every_flag_is_a_true_loop(
    prefix: str, unit: str, extra: int
) -> None:
    span = max(3 * len(unit), seams.LOOP_MIN_SPAN)
    text = prefix + unit * (-(-(span + len(unit)) // len(unit)) + extra)  # at least span + one unit
    flag = seams.check_repetition(text)
    assert flag is not None
    _assert_true_loop(text, flag["period"])


@PROPS
@given(st.text(st.sampled_from("abc \n"), max_size=1500))
def test_a_repetition_flag_is_never_false(text: str) -> None:
    flag = seams.check_repetition(text)
    if flag is not None:
        _assert_true_loop(text, flag["period"])


def _assert_true_loop(text: str, period: int) -> None:
    tail = text[-seams.LOOP_WINDOW :]
    span = max(3 * period, seams.LOOP_MIN_SPAN)
    assert 1 <= period <= seams.LOOP_MAX_PERIOD and span + period <= len(tail)
    assert tail[len(tail) - span :] == tail[len(tail) - span - period : len(tail) - period]


def open_fence(text: str) -> bool:
    fences = sum(1 for line in text.split("\n") if line.lstrip().startswith(("```", "~~~")))
    return fences % 2 == 1


pieces = st.text(st.sampled_from("`~ \na|"), max_size=12)


@PROPS
@given(st.lists(st.one_of(pieces, st.integers(0, 60)), max_size=30))
@example(["```py\nx\n", 4, "\n~~~", 0, "```"])
def test_the_fence_tracker_agrees_with_a_full_rescan_on_a_growing_and_trimmed_text(
    ops: list[str | int],
) -> None:
    tracker, text = FenceTracker(), ""
    for op in ops:
        text = text + op if isinstance(op, str) else text[: max(0, len(text) - op)]
        assert tracker.open_at(text) == open_fence(text)
        assert tracker.open_at(text) == open_fence(text)  # asking again changes nothing
