"""Seams: hold-back, overlap and echo removal, restart / repetition / structure checks."""

from __future__ import annotations

from core.continuation.seams import (
    EchoFilter,
    FenceTracker,
    OverlapFilter,
    check_overlap,
    check_repetition,
    check_restart,
    check_structure,
    find_overlap,
    hold_back,
)

ROUND = "The quiet river follows the old harbour and the wor"


def held(text: str, max_tokens: int = 64) -> str:
    n = hold_back(text, max_tokens)
    return text[len(text) - n :] if n else ""


def test_hold_back_takes_the_partial_word_and_the_space_before_it() -> None:
    assert held(ROUND) == " wor"


def test_hold_back_includes_trailing_whitespace() -> None:
    assert held("Some heading words\n\n") == " words\n\n"


def test_a_tiny_budget_holds_back_only_trailing_whitespace() -> None:
    assert held("Some words here \n", max_tokens=7) == " \n"
    assert held(ROUND, max_tokens=7) == ""


def test_hold_back_never_takes_more_than_half_of_the_round() -> None:
    assert held(" extraordinarily") == ""
    assert held("a longwordthatismostoftheround") == ""


def test_hold_back_of_a_single_word_round_is_nothing() -> None:
    assert held("word") == ""


def test_find_overlap_is_the_longest_repeated_end() -> None:
    answer = "alpha beta gamma delta epsilon"
    assert find_overlap(answer, " delta epsilon zeta eta") == len(" delta epsilon")


def test_no_overlap_below_the_minimum() -> None:
    assert find_overlap("one two three", "e four five") == 0


def test_overlap_filter_drops_the_repeat_across_chunks() -> None:
    answer = "The garden records the map beneath a curious station while"
    filt = OverlapFilter(answer)
    out = "".join(filt.feed(c) for c in [" station", " while", " the", " river", " shapes"]) + filt.flush()
    assert out == " the river shapes"
    assert filt.dropped == " station while"


def test_overlap_filter_passes_a_true_continuation() -> None:
    filt = OverlapFilter("The garden records the map")
    out = "".join(filt.feed(c) for c in [" beneath", " a", " station"]) + filt.flush()
    assert out == " beneath a station"


def test_echo_filter_strips_an_echoed_prefill() -> None:
    filt = EchoFilter("1, 2, 3,")
    out = "".join(filt.feed(c) for c in ["1,", " 2,", " 3,", " 4,"]) + filt.flush()
    assert out == " 4,"


def test_echo_filter_passes_a_reply_that_is_no_echo() -> None:
    filt = EchoFilter("1, 2, 3,")
    out = "".join(filt.feed(c) for c in ["1", "0, 11"]) + filt.flush()
    assert out == "10, 11"


def test_overlap_is_flagged() -> None:
    flag = check_overlap("and the river follows the old harbour", " follows the old harbour again")
    assert flag is not None and flag["kind"] == "overlap"


def test_restart_is_flagged_when_the_new_text_repeats_the_beginning() -> None:
    answer = "# Quiet River\n\nThe quiet river follows the harbour and more text"
    flag = check_restart(answer, "# Quiet River\n\nThe quiet river follows the harbour and")
    assert flag is not None and flag["kind"] == "restart"


def test_a_true_continuation_is_no_restart() -> None:
    assert check_restart("# Quiet River\n\nThe quiet river follows", " the harbour and the archive") is None


def test_a_loop_at_the_end_is_repetition() -> None:
    text = "Intro paragraph. " + "The model repeats this line again. " * 12
    flag = check_repetition(text)
    assert flag is not None and flag["period"] == len("The model repeats this line again. ")


def test_a_round_copying_recent_text_is_repetition() -> None:
    from core.continuation.seams import check_repeated_round

    earlier = "Some introduction. " + "x" * 10 + " ".join(f"word{i}" for i in range(60))
    copied = earlier[19:260]
    assert check_repeated_round(earlier, copied) is not None
    assert check_repeated_round(earlier, copied[:150]) is None  # short repeats happen in real text
    assert check_repeated_round(earlier[:200], earlier[19:260]) is None


def test_varied_prose_is_no_repetition() -> None:
    from core.demo import demo_document

    assert check_repetition(demo_document("Write 3000 tokens about rivers")) is None


def test_a_seam_inside_a_code_fence_is_flagged() -> None:
    fences = FenceTracker()
    text = "Intro\n\n```python\ndef f():\n    return 1"
    assert [f["kind"] for f in check_structure(text, fences)] == ["open_fence"]


def test_a_closed_fence_is_not_flagged() -> None:
    assert check_structure("Intro\n\n```python\nx = 1\n```\n\nMore", FenceTracker()) == []


def test_fence_tracker_follows_a_growing_and_trimmed_text() -> None:
    fences = FenceTracker()
    text = "a\n```\ncode\n```\nafter\n```py\nx"
    assert fences.open_at(text[:8])
    assert not fences.open_at(text[:18])
    assert fences.open_at(text)
    assert fences.open_at(text[:8])  # trimmed back before a checkpoint
    assert not fences.open_at(text[:20])


def test_a_seam_inside_a_table_is_flagged() -> None:
    flags = check_structure("Text\n\n| Item | Note |\n| --- | --- |\n| river |", FenceTracker())
    assert [f["kind"] for f in flags] == ["open_table"]
