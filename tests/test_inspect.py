"""core.services.inspect: seams with whitespace made visible, per-round series, two runs compared."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from core.continuation import budget, engine
from core.services.compare import compare_series, compare_totals, first_difference
from core.services.inspect import (
    flag_counts,
    overhead,
    result_gauge,
    result_snapshot,
    round_series,
    seams,
    visible_whitespace,
)
from core.services.jobs import JobManager
from core.types import Prices, Round, RunFinished, RunResult, RunSpec

PROMPT = "Write about 2500 tokens on the history of tides."


def spec(base_url: str = "", prompt: str = PROMPT, **fields: object) -> RunSpec:
    values: dict[str, object] = {"max_tokens": 400, "max_rounds": 30, "context_window": 8192, **fields}
    return RunSpec(messages=[{"role": "user", "content": prompt}], base_url=base_url, **values)  # type: ignore[arg-type]


def finished(run_spec: RunSpec) -> RunResult:
    last = list(engine.run(run_spec))[-1]
    assert isinstance(last, RunFinished)
    return last.result


def made(*rounds: Round, prompt: str = PROMPT) -> RunResult:
    return RunResult(spec=spec(prompt=prompt), rounds=list(rounds), stop_reason="finished")


def rnd(index: int, text: str, **fields: object) -> Round:
    values: dict[str, object] = {"prompt_tokens": 10 * index, "completion_tokens": 5, **fields}
    return Round(index=index, text=text, **values)  # type: ignore[arg-type]


# ---------------------------------------------------------------- whitespace


def test_spaces_tabs_and_line_breaks_are_drawn():
    assert visible_whitespace("a b\tc\nd") == "a·b→c¶\nd"


def test_a_no_break_space_is_told_apart_from_a_space():
    assert visible_whitespace("a\u00a0b c") == "a⍽b·c"


def test_text_without_whitespace_is_unchanged():
    assert visible_whitespace("naïve—ledger") == "naïve—ledger"


# ---------------------------------------------------------------- seams


def test_a_run_of_three_rounds_has_two_seams_in_order():
    found = seams(made(rnd(1, "one "), rnd(2, "two "), rnd(3, "three")))
    assert [(s.before_index, s.after_index) for s in found] == [(1, 2), (2, 3)]


def test_a_single_round_has_no_seam():
    assert seams(made(rnd(1, "all of it"))) == []


def test_a_seam_shows_the_end_of_the_answer_and_the_start_of_the_next_round():
    seam = seams(made(rnd(1, "The first part ends"), rnd(2, " here and goes on.")))[0]
    assert (seam.before, seam.after, seam.offset) == ("The first part ends", " here and goes on.", 19)


def test_the_end_before_a_seam_reaches_back_across_short_rounds():
    seam = seams(made(rnd(1, "abc"), rnd(2, "de"), rnd(3, "f")), width=4)[1]
    assert (seam.before, seam.before_cut) == ("bcde", True)


def test_long_sides_are_cut_to_the_width_and_say_so():
    seam = seams(made(rnd(1, "x" * 50), rnd(2, "y" * 50)), width=10)[0]
    assert (seam.before, seam.after, seam.before_cut, seam.after_cut) == ("x" * 10, "y" * 10, True, True)


def test_the_held_back_tail_is_shown_apart_from_the_kept_text():
    seam = seams(made(rnd(1, "The river", held_back=" bank"), rnd(2, " bank flows.")))[0]
    assert (seam.before, seam.held_back, seam.after) == ("The river", " bank", " bank flows.")


def test_a_restarted_round_shows_what_was_discarded():
    restart = {"kind": "restart", "message": "starts over", "excerpt": "# Title", "discarded_chars": 900}
    seam = seams(made(rnd(1, "# Title\n\nText"), rnd(2, "", seam_flags=[restart])))[0]
    assert (seam.after, seam.discarded, seam.discarded_chars, seam.kinds) == ("", "# Title", 900, ["restart"])


def test_output_tokens_up_to_a_seam_are_counted_and_estimates_marked():
    found = seams(made(rnd(1, "a"), rnd(2, "b", completion_estimated=True), rnd(3, "c")))
    assert [(s.tokens, s.tokens_estimated) for s in found] == [(5, True), (10, True)]


def test_a_seam_inside_the_reasoning_shows_the_reasoning():
    found = seams(made(rnd(1, "", reasoning="First I think"), rnd(2, "", reasoning=" and then more")))
    assert (found[0].in_reasoning, found[0].before, found[0].after) == (
        True,
        "First I think",
        " and then more",
    )


def test_the_seams_of_a_demo_run_are_cut_from_the_answer_itself(demo_server: str):
    result = finished(spec(demo_server))
    text = result.text
    found = seams(result)
    assert len(found) == len(result.rounds) - 1 >= 3
    assert all(
        text[s.offset - len(s.before) : s.offset] == s.before and text[s.offset :].startswith(s.after)
        for s in found
    )


def edited_run(base_url: str) -> RunResult:
    """A demo run stopped after 2 rounds, its last paragraph replaced by the user's, continued."""
    part = finished(spec(base_url, max_rounds=2))
    part.edit(part.text[: part.text.rstrip().rfind("\n\n")] + "\n\nMY OWN LINE, written by hand and")
    part.spec.max_rounds = 30
    last = list(engine.run(part.spec, resume=part))[-1]
    assert isinstance(last, RunFinished)
    return last.result


def test_the_seam_at_an_edit_shows_the_end_of_the_edited_answer(demo_server: str):
    result = edited_run(demo_server)
    (edit,) = result.edits
    at_edit = seams(result)[edit.after_round - 1]
    assert (at_edit.before_index, at_edit.edit) == (edit.after_round, edit)
    assert at_edit.before == edit.text[-len(at_edit.before) :] and at_edit.before.endswith("by hand and")
    assert at_edit.offset == len(edit.text) and at_edit.after == result.rounds[edit.after_round].text[:240]


def test_the_seams_before_an_edit_say_that_the_edit_holds_their_text(demo_server: str):
    result = edited_run(demo_server)
    taken = [(s.before_index, s.edited_away, s.before, s.after) for s in seams(result) if s.edited_away]
    assert taken == [(1, 2, "", "")]


def test_the_seams_of_an_edited_run_are_cut_from_the_edited_answer(demo_server: str):
    result = edited_run(demo_server)
    text = result.text
    after_edit = [s for s in seams(result) if s.before_index >= result.edits[0].after_round]
    assert len(after_edit) >= 2 and [s.edit is not None for s in after_edit].count(True) == 1
    assert all(
        text[s.offset - len(s.before) : s.offset] == s.before and text[s.offset :].startswith(s.after)
        for s in after_edit
    )


def test_a_run_against_a_server_ignoring_the_prefill_has_a_restart_seam(demo_url: Callable[..., str]):
    result = finished(spec(demo_url(prefill="ignored")))
    restarts = [s for s in seams(result) if "restart" in s.kinds]
    assert restarts and restarts[0].discarded and result.text.startswith(restarts[0].discarded.lstrip()[:24])


def test_flag_counts_count_each_kind():
    overlap = {"kind": "overlap", "message": "m"}
    table = {"kind": "open_table", "message": "m"}
    result = made(rnd(1, "a"), rnd(2, "b", seam_flags=[overlap]), rnd(3, "c", seam_flags=[overlap, table]))
    assert flag_counts(result) == {"overlap": 2, "open_table": 1}


# ---------------------------------------------------------------- per-round series


def test_input_billed_accumulates_while_one_request_bills_the_prompt_once():
    rows = round_series(made(rnd(1, "a", prompt_tokens=100), rnd(2, "b", prompt_tokens=400)))
    assert [(r["cumulative_input"], r["single_request_input"]) for r in rows] == [(100, 100), (500, 100)]


def test_series_carry_ttft_and_tokens_per_second():
    row = round_series(made(rnd(1, "a", completion_tokens=100, ttft_s=0.5, duration_s=2.5)))[0]
    assert (row["ttft_s"], row["tokens_per_s"]) == (0.5, 50.0)


def test_the_last_cumulative_input_of_a_demo_run_is_its_input_billed(demo_server: str):
    result = finished(spec(demo_server))
    assert round_series(result)[-1]["cumulative_input"] == result.prompt_tokens_billed > 0


def test_the_overhead_is_the_input_beyond_one_prompt_and_its_cost_at_the_input_price():
    result = made(
        rnd(1, "a", prompt_tokens=100), rnd(2, "b", prompt_tokens=400), rnd(3, "c", prompt_tokens=700)
    )
    result.spec.prices = Prices(input_per_mtok=2.0, output_per_mtok=8.0)
    found = overhead(result)
    assert found is not None
    assert (found.input_billed, found.single_request_input, found.extra_input_tokens) == (1200, 100, 1100)
    assert found.extra_cost == 1100 * 2.0 / 1_000_000


def test_one_round_adds_nothing_and_no_prices_means_no_cost():
    found = overhead(made(rnd(1, "a", prompt_tokens=100)))
    assert found is not None and found.extra_input_tokens == 0 and found.extra_cost is None
    assert overhead(made()) is None


# ---------------------------------------------------------------- two runs


def test_identical_texts_have_no_difference():
    diff = first_difference("same text", "same text")
    assert (diff.identical, diff.offset) == (True, None)


def test_the_first_difference_is_found_with_its_line_and_column():
    diff = first_difference("line one\nline two here", "line one\nline 2 here")
    assert (diff.offset, diff.line, diff.column, diff.a[:3], diff.b[:3]) == (14, 2, 6, "two", "2 h")


def test_a_text_that_stops_early_differs_where_it_ends():
    diff = first_difference("abc", "abcdef")
    assert (diff.offset, diff.a, diff.b) == (3, "", "def")


@given(st.text(max_size=60), st.text(max_size=60))
def test_the_difference_is_at_the_end_of_the_common_prefix(a: str, b: str):
    diff = first_difference(a, b)
    expected = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    assert diff.offset == (None if a == b else expected)


def test_comparing_two_runs_marks_the_totals_that_differ():
    a = made(rnd(1, "a"), rnd(2, "b"))
    b = made(rnd(1, "a"))
    b.spec.model = "demo-32k"
    rows = {r["key"]: r for r in compare_totals(a, b)}
    assert (rows["model"]["same"], rows["rounds"]["same"], rows["provider"]["same"]) == (False, False, True)


def test_compared_series_are_labelled_by_run():
    rows = compare_series(made(rnd(1, "a"), rnd(2, "b")), made(rnd(1, "a")), labels=("A", "B"))
    assert [(r["run"], r["round"]) for r in rows] == [("A", 1), ("A", 2), ("B", 1)]


def test_the_same_prompt_with_two_strategies_on_the_demo_gives_the_same_text(demo_server: str):
    a = finished(spec(demo_server))
    b = finished(spec(demo_server, strategy="instruction", max_tokens=700))
    assert first_difference(a.text, b.text).identical and len(a.rounds) != len(b.rounds)


# ---------------------------------------------------------------- a stored run as the Studio shows it


def test_a_stored_run_has_the_gauge_the_studio_showed_at_its_end(demo_server: str):
    job = JobManager().start(spec(demo_server))
    assert job.join(30)
    snap = job.snapshot()
    assert snap.result is not None
    assert result_gauge(snap.result) == snap.gauge


def test_the_gauge_of_an_interrupted_round_estimates_the_text_it_kept():
    gauge = result_gauge(made(rnd(1, "x" * 400, completion_tokens=0, error="interrupted")))
    assert (gauge.generated_tokens, gauge.estimated) == (budget.estimate_text("x" * 400), True)


def test_an_edited_stored_run_becomes_a_snapshot_with_its_edited_text(demo_server: str):
    result = edited_run(demo_server)
    snap = result_snapshot(result)
    assert snap.text == result.text == snap.to_result().text and snap.edits == tuple(result.edits)


def test_a_stored_run_becomes_a_finished_snapshot_with_its_rounds_and_text(demo_server: str):
    result = finished(spec(demo_server))
    snap = result_snapshot(result)
    assert (snap.done, snap.rounds, snap.text, snap.stop_reason) == (
        True,
        tuple(result.rounds),
        result.text,
        "finished",
    )
