"""core.services.snapshot after an edit: the text and the gauge are those of the edited answer.

An edit holds the whole answer as the user left it; the rounds before it keep no text (their
counts stay: they were sent and billed). A run going on after an edit shows, downloads and
measures the edited text followed by the rounds after it (issue 12).
"""

from __future__ import annotations

import time

from core.continuation import budget
from core.services.inspect import result_gauge
from core.services.jobs import JobManager
from core.services.snapshot import LiveRound, Snapshot, gauge_for
from core.types import Edit, Round, RunResult, RunSpec

SPEC = RunSpec(messages=[{"role": "user", "content": "Write about tides."}], context_window=8192)
MINE = "A short answer of my own, and"


def rnd(index: int, text: str, prompt_tokens: int, completion_tokens: int = 100) -> Round:
    return Round(index=index, text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)


def edited(*after: Round) -> tuple[list[Round], Edit]:
    """Two rounds of 100 tokens, cut by the user to ``MINE``, then the rounds ``after``."""
    result = RunResult(spec=SPEC, rounds=[rnd(1, "x " * 200, 20), rnd(2, "y " * 200, 120)])
    change = result.edit(MINE)
    assert change is not None
    return result.rounds + list(after), change


def live(text: str, chunks: int) -> LiveRound:
    return LiveRound(3, 400, "prefill", text, "", chunks, time.monotonic(), None)


def snapshot(rounds: list[Round], edits: tuple[Edit, ...], live_round: LiveRound | None = None) -> Snapshot:
    gauge = gauge_for(SPEC, rounds, live_round, edits)
    return Snapshot(
        "j", 1, "running", SPEC, tuple(rounds), live_round, None, None, (), None, 0.0, 1.0, gauge, None, edits
    )


def test_the_text_while_a_run_goes_on_after_an_edit_is_the_edited_text_then_the_new_rounds():
    rounds, change = edited(rnd(3, " and the rest.", 35, 4))
    snap = snapshot(rounds, (change,), live(" More", 1))
    assert snap.text == MINE + " and the rest. More"


def test_the_run_of_a_snapshot_keeps_its_edits():
    rounds, change = edited(rnd(3, " and the rest.", 35, 4))
    result = snapshot(rounds, (change,)).to_result()
    assert result.edits == [change] and result.text == MINE + " and the rest."


def test_the_gauge_after_an_edit_counts_the_edited_text_not_the_rounds_it_replaced():
    rounds, change = edited()
    gauge = gauge_for(SPEC, rounds, edits=(change,))
    assert (gauge.generated_tokens, gauge.estimated) == (budget.estimate_text(MINE), True)
    assert gauge.billed_input_tokens == 140  # both rounds were sent and billed all the same


def test_the_round_after_an_edit_counts_the_edited_text_from_its_input():
    rounds, change = edited(rnd(3, " and the rest.", 35, 4))
    gauge = gauge_for(SPEC, rounds, edits=(change,))
    assert (gauge.prompt_tokens, gauge.generated_tokens, gauge.estimated) == (20, 35 - 20 + 4, False)


def test_the_live_round_after_an_edit_is_sent_the_edited_text():
    rounds, change = edited()
    gauge = gauge_for(SPEC, rounds, live(" More", 1), (change,))
    assert gauge.billed_input_tokens == 140 + 20 + budget.estimate_text(MINE)
    assert gauge.generated_tokens == budget.estimate_text(MINE) + 1


def test_an_opening_is_counted_in_the_first_round_s_input():
    result = RunResult(spec=SPEC)
    opening = result.edit("# Tides\n\n")
    assert opening is not None
    gauge = gauge_for(SPEC, [rnd(1, "Text.", 25, 3)], edits=(opening,))
    assert (gauge.prompt_tokens, gauge.generated_tokens) == (25, 3)


# ---------------------------------------------------------------- a job going on after an edit


def test_a_job_going_on_after_an_edit_shows_and_measures_the_edited_answer(demo_server: str):
    # Needs the job to hand its edits to its snapshots: Job._snapshot_locked passes
    # ``edits=self.edits`` and Job._gauge_locked ``gauge_for(self.spec, self._rounds, live, self.edits)``.
    spec = RunSpec(
        messages=[{"role": "user", "content": "Write about 2500 tokens on the tides."}],
        base_url=demo_server,
        max_tokens=400,
        max_rounds=2,
        context_window=8192,
    )
    first = JobManager().start(spec)
    assert first.join(30)
    part = first.result()
    part.edit(part.text[: part.text.rstrip().rfind("\n\n")] + "\n\nMY OWN LINE, written by hand and")
    part.spec.max_rounds = 30
    job = JobManager().start(part.spec, resume=part)
    assert job.join(30)
    snap = job.snapshot()
    assert snap.result is not None and snap.text == snap.result.text
    assert snap.gauge == result_gauge(snap.result)
