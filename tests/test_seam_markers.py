"""Rounds at a glance: where the Document view marks the seams, what the marks say, the live
speed on the status line, the gauge's parts, and the text the Copy button writes."""

from __future__ import annotations

import itertools
import json
import re
import time

import pytest

from core.demo import demo_document
from core.services.snapshot import Gauge, LiveRound, Snapshot
from core.types import Edit, Round, RunSpec
from pages._blocks import fence_after
from pages._copy import copy_html, script_string
from pages._seam_marks import MarkTracker, Seam, document_seams, place_marks
from pages._status import MIN_PART, gauge_parts, live_rate, status_line

DOC = demo_document("Write about 7000 tokens on the history of cartography, with tables and code.")


def seam(offset: int, number: int = 2, tokens: int = 100, **kw: object) -> Seam:
    return Seam(offset, number, tokens, **kw)  # type: ignore[arg-type]


def segments(text: str, ats: list[int]) -> list[str]:
    cuts = [0, *ats, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(cuts)]


# ---------------------------------------------------------------- where marks go


def test_a_mark_sits_at_the_first_paragraph_break_after_its_seam():
    text = "First paragraph here.\n\nSecond paragraph goes on.\n\nThird one."
    (mark,) = place_marks(text, [seam(5)], final=True)
    assert mark.at == text.index("\n\n") and mark.rounds == (2,)


def test_a_seam_at_the_start_of_a_paragraph_is_marked_right_there():
    text = "First paragraph here.\n\nSecond paragraph goes on."
    (mark,) = place_marks(text, [seam(text.index("Second"))], final=True)
    assert mark.at == text.index("\n\n") and mark.tooltip.endswith("begins here.")


def test_a_seam_inside_a_code_block_with_blank_lines_is_marked_after_the_block():
    text = "Intro text.\n\n```python\nx = 1\n\n\ny = 2\n```\n\nAfter the code."
    (mark,) = place_marks(text, [seam(text.index("x = 1"))], final=True)
    assert text[: mark.at].endswith("```") and mark.at > text.index("y = 2")


def test_a_seam_inside_a_table_is_marked_after_the_table():
    text = "Intro.\n\n| a | b |\n| --- | --- |\n| 1 | 2 |\n| 3 | 4 |\n\nAfter the table."
    (mark,) = place_marks(text, [seam(text.index("| 3"))], final=True)
    assert text[: mark.at].endswith("| 3 | 4 |")


def test_a_break_before_an_indented_line_is_not_a_place_for_a_mark():
    text = "- item one\n\n  still item one\n\nNext paragraph."
    (mark,) = place_marks(text, [seam(3)], final=True)
    assert text[mark.at :].startswith("\n\nNext")


def test_while_the_text_grows_a_mark_waits_until_the_engine_can_no_longer_take_the_break_back():
    text = "One paragraph, long enough to hold back from.\n\nTwo words"  # the engine may hold
    assert place_marks(text, [seam(3)], final=False) == []  # back "\n\nTwo words" and write it again
    longer = text + " and then a few more words after them"
    assert [m.at for m in place_marks(longer, [seam(3)], final=False)] == [text.index("\n\n")]


def test_a_seam_in_the_last_paragraph_is_marked_at_the_end_once_the_run_has_ended():
    text = "One paragraph.\n\nThe last one, written across the seam."
    assert place_marks(text, [seam(len(text) - 10)], final=False) == []
    (mark,) = place_marks(text, [seam(len(text) - 10)], final=True)
    assert mark.at == len(text) and mark.at_end and "last paragraph" in mark.tooltip


def test_a_text_with_crlf_line_ends_gets_its_marks_too():
    text = "First paragraph here.\r\n\r\nSecond paragraph goes on."
    (mark,) = place_marks(text, [seam(5)], final=False)
    assert mark.at == text.index("\n") and not mark.at_end


def test_seams_that_reach_the_same_break_share_one_mark():
    text = "A long paragraph with two short rounds in it.\n\nNext."
    (mark,) = place_marks(text, [seam(5, 2, 10), seam(20, 3, 12)], final=True)
    assert mark.rounds == (2, 3) and mark.label == "Rounds 2–3 · 22 tokens"


def test_the_start_of_the_document_is_no_seam():
    assert place_marks("Text.\n\nMore text here.", [seam(0)], final=True) == []


@pytest.mark.parametrize("step", [97, 331, 1009])
def test_no_mark_ever_splits_a_code_fence_of_the_demo_document(step: int):
    seams = [seam(at, n) for n, at in enumerate(range(step, len(DOC), step), start=2)]
    marks = place_marks(DOC, seams, final=True)
    assert sum(len(m.seams) for m in marks) == len(seams)  # every seam is marked
    for part in segments(DOC, [m.at for m in marks]):
        assert fence_after(part, None) is None  # each segment renders on its own


def test_a_mark_once_placed_stays_where_it_is_as_the_text_grows():
    seams = [seam(at, n) for n, at in enumerate(range(400, len(DOC), 700), start=2)]
    placed: dict[int, int] = {}
    for end in range(200, len(DOC), 150):
        for mark in place_marks(DOC[:end], [s for s in seams if s.offset <= end], final=False):
            assert placed.setdefault(mark.rounds[0], mark.at) == mark.at


def test_the_tracker_places_marks_as_a_whole_scan_would_without_rescanning_the_text():
    seams = [seam(at, n) for n, at in enumerate(range(400, len(DOC), 700), start=2)]
    tracker = MarkTracker()
    for end in range(200, len(DOC), 150):
        assert tracker.update(DOC[:end], [s for s in seams if s.offset <= end], final=False)
    assert tracker.update(DOC, seams, final=True)
    assert tracker.marks == place_marks(DOC, seams, final=True)


def test_the_tracker_starts_over_when_the_text_changes_behind_a_mark():
    tracker = MarkTracker()
    text = "First paragraph of the answer.\n\nSecond paragraph, long enough to stay put here."
    tracker.update(text, [seam(5)], final=False)
    assert [m.at for m in tracker.marks] == [text.index("\n\n")]
    assert not tracker.update("A retried round wrote this instead.", [seam(5)], final=True)
    assert [m.at_end for m in tracker.marks] == [True]


def test_a_marks_label_follows_its_round_from_streaming_to_its_tokens():
    tracker = MarkTracker()
    text = "First paragraph of the answer.\n\nSecond paragraph, long enough to stay put here."
    tracker.update(text, [seam(5, 2, 3, streaming=True)], final=False)
    assert tracker.marks[0].label == "Round 2 · streaming"
    assert tracker.update(text + " More.", [seam(5, 2, 40)], final=False)
    assert tracker.marks[0].label == "Round 2 · 40 tokens"


# ---------------------------------------------------------------- which seams, what they say


def rounds_of(*texts: str) -> list[Round]:
    return [Round(index=i, text=t, completion_tokens=10 * i) for i, t in enumerate(texts, start=1)]


def test_a_run_of_n_rounds_has_n_minus_one_seams_at_the_ends_of_the_rounds():
    found = document_seams(rounds_of("aaa", "bb", "c"))
    assert [(s.offset, s.round, s.tokens) for s in found] == [(3, 2, 20), (5, 3, 30)]


def test_the_live_round_begins_at_a_seam_and_is_labelled_streaming():
    live = LiveRound(3, 64, "prefill", "xyz", "", 7, time.monotonic(), None)
    found = document_seams(rounds_of("aaa", "bb"), live=live)
    assert found[-1] == Seam(5, 3, 7, True, streaming=True)
    text = "aaa bb.\n\nxyz words here"
    assert place_marks(text, found[-1:], final=False)[0].label == "Round 3 · streaming"


def test_after_an_edit_the_seams_follow_the_edited_text():
    edit = Edit(after_round=2, at=0, removed=5, inserted="EDITED TEXT", text_before="aaabb")
    rounds = rounds_of("", "", "ccc", "dd")  # the edit took over rounds 1 and 2
    found = document_seams(rounds, [edit])
    assert [(s.offset, s.round, s.after) for s in found] == [(11, 3, "edit"), (14, 4, "")]
    text = edit.text + "ccc" + "dd"
    assert found[0].offset == len(edit.text) and text[found[1].offset :] == "dd"


def test_an_opening_is_a_seam_before_the_first_round():
    opening = Edit(after_round=0, at=0, removed=0, inserted="# Title\n\n", text_before="")
    (first, *_) = document_seams(rounds_of("Body text.", "More."), [opening])
    assert (first.offset, first.round, first.after) == (9, 1, "opening")


def test_labels_name_the_round_and_its_tokens_estimated_or_not():
    text = "One.\n\nTwo words."
    assert place_marks(text, [seam(2, 4, 1536)], final=True)[0].label == "Round 4 · 1,536 tokens"
    estimated = seam(2, 4, 1536, estimated=True, after="edit")
    assert place_marks(text, [estimated], final=True)[0].label == "Round 4 · ≈1,536 tokens · after your edit"


# ---------------------------------------------------------------- the status line's live speed


def snapshot(rounds: tuple[Round, ...], live: LiveRound | None, status: str = "running") -> Snapshot:
    gauge = Gauge(8192, 17, 100, 17, None, True)
    spec = RunSpec(provider="demo", base_url="http://127.0.0.1:1/v1", model="demo", messages=[])
    return Snapshot("j", 1, status, spec, rounds, live, None, None, (), None, 0.0, 1.0, gauge, None)  # type: ignore[arg-type]


def test_the_status_line_shows_the_live_rounds_tokens_per_second_while_it_runs():
    live = LiveRound(2, 64, "prefill", "text", "", 101, started=0.0, first_token_at=10.0)
    assert "≈50 tok/s" in status_line(snapshot((), live), now=12.0)


def test_before_a_round_has_streamed_a_while_the_last_rounds_speed_is_shown():
    done = Round(index=1, completion_tokens=300, duration_s=2.0, ttft_s=0.5)  # 200 tokens/s
    live = LiveRound(2, 64, "prefill", "", "", 2, started=0.0, first_token_at=10.0)
    assert live_rate(snapshot((done,), live), now=10.1) == pytest.approx(200)
    assert "≈200 tok/s" in status_line(snapshot((done,), None))


def test_an_ended_run_shows_no_live_speed():
    done = Round(index=1, completion_tokens=300, duration_s=2.0, ttft_s=0.5)
    assert "tok/s" not in status_line(snapshot((done,), None, status="done"))


# ---------------------------------------------------------------- the gauge's parts


def test_the_gauge_draws_prompt_and_generated_as_separate_visible_parts():
    parts = gauge_parts(Gauge(32_768, 17, 5_000, 17, None, False)).to_dict("records")
    assert [p["part"] for p in parts] == ["prompt", "generated", "remaining"]
    assert [p["tokens"] for p in parts] == [17, 5_000, 32_768 - 5_017]  # the true counts
    assert parts[0]["end"] - parts[0]["start"] >= 32_768 * MIN_PART - 1e-6  # seen, though 17 tokens
    assert parts[0]["end"] < parts[1]["start"] and parts[1]["end"] < parts[2]["start"]  # a gap each


def test_before_any_token_the_gauge_has_no_generated_part():
    parts = gauge_parts(Gauge(8_192, 400, 0, 0, None, True))
    assert list(parts["part"]) == ["prompt", "remaining"]


def test_a_full_window_is_drawn_to_the_end_and_no_further():
    parts = gauge_parts(Gauge(1_000, 300, 900, 300, None, False)).to_dict("records")
    assert [p["part"] for p in parts] == ["prompt", "generated"] and parts[-1]["end"] == 1_000


# ---------------------------------------------------------------- the copy


@pytest.mark.parametrize(
    "text", ["</script><script>alert(1)</script>", "a & b <!-- c -->", "line\u2028sep ‘quotes’"]
)
def test_the_copied_text_is_a_script_string_nothing_in_it_can_end(text: str):
    literal = script_string(text)
    assert json.loads(literal) == text
    assert not re.search(r"[<>&\u2028\u2029]", literal)


def test_every_click_makes_a_new_copy_script():
    assert copy_html("same text", 1) != copy_html("same text", 2)
