"""What the endpoint may stream before a round is settled (core.serve.tracker): never text that a
hold-back will take, never a round that starts the answer over, and in the end exactly the answer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.continuation.seams import hold_back, hold_back_to_verify
from core.serve.tracker import RESTART_WINDOW, AnswerTracker, Diverged, safe_length
from core.types import Round

words = st.lists(
    st.tuples(
        st.sampled_from(["", " ", "  ", "\n", "\n\n", " \n"]), st.text("abcé—xyz,.", min_size=1, max_size=14)
    ),
    min_size=1,
    max_size=40,
)


def text_of(parts: list[tuple[str, str]], tail: str) -> str:
    return "".join(space + word for space, word in parts) + tail


def feed(tracker: AnswerTracker, text: str, cuts: list[int]) -> str:
    """Feed ``text`` as deltas cut at ``cuts``; what the tracker let out."""
    out, start = [], 0
    for cut in [*sorted(set(cuts)), len(text)]:
        if start < cut <= len(text):
            out.append(tracker.delta(text[start:cut]))
            start = cut
    return "".join(out)


@settings(max_examples=300, deadline=None)
@given(words, st.sampled_from(["", " ", "\n", "  "]), st.lists(st.integers(0, 600), max_size=30))
def test_nothing_a_hold_back_takes_is_ever_sent(parts, tail, cuts) -> None:
    text = text_of(parts, tail)
    tracker = AnswerTracker()
    tracker.round_started()
    sent = feed(tracker, text, cuts)
    assert text.startswith(sent)
    for hold in (hold_back, hold_back_to_verify):
        held = hold(text, 4096)
        assert len(sent) <= len(text) - held, (hold.__name__, text, sent)


def test_the_first_word_goes_out_at_once() -> None:
    tracker = AnswerTracker()
    tracker.round_started()
    assert tracker.delta("The") == "The"  # a hold-back starts at a space after a word, never before
    assert tracker.delta(" compass") == ""  # " compass" may be the partial word a next round rewrites


def test_safe_length_keeps_the_last_words_back() -> None:
    text = "one two three four five six seven eight nine ten"
    assert text[: safe_length(text)] == "one two three four five"  # " six … ten": 25 characters, at least 24


def test_a_cut_round_gives_back_its_tail_and_the_answer_arrives_whole() -> None:
    tracker = AnswerTracker()
    first = Round(index=1, text="Alpha beta gamma delta epsilon zeta eta theta iota kappa")
    sent = tracker.round_started() + tracker.delta(first.text) + tracker.round_finished(first)
    first.text, first.held_back = first.text[:-6], first.text[-6:]  # the plan holds " kappa" back
    sent += tracker.round_started()
    second = Round(index=2, text=" kappa lambda mu nu xi omicron pi rho sigma tau upsilon phi chi psi omega.")
    sent += tracker.delta(second.text) + tracker.round_finished(second) + tracker.run_finished()
    assert sent == first.text + second.text


def test_a_round_that_starts_the_answer_over_is_not_sent() -> None:
    tracker = AnswerTracker()
    opening = "The compass watched the harbour while the tide turned slowly toward the northern pier. "
    first = Round(index=1, text=opening * 2)
    sent = tracker.round_started() + tracker.delta(first.text) + tracker.round_finished(first)
    sent += tracker.round_started()
    sent += tracker.delta(opening[:RESTART_WINDOW]) + tracker.delta(opening[RESTART_WINDOW:])
    assert sent == first.text  # round 1 settled; nothing of the new turn
    discarded = Round(index=2, text="")  # the engine discards a new turn's text
    assert tracker.round_finished(discarded) + tracker.run_finished() == ""


def test_text_changed_after_it_was_sent_is_a_divergence() -> None:
    tracker = AnswerTracker()
    tracker.round_started()
    tracker.delta("one two three four five six seven eight nine ten eleven twelve")
    with pytest.raises(Diverged):
        tracker.round_finished(Round(index=1, text="uno dos tres"))
