"""Looking closely at finished runs: seams, per-round series, two runs compared.

Pure functions of :class:`~core.types.RunResult` (no I/O, no Streamlit), used by
the Inspect and Runs pages and their tests:

- :func:`visible_whitespace` — spaces, tabs and line breaks drawn as ``·``,
  ``→`` and ``¶`` so a doubled or lost space at a seam can be seen.
- :func:`seams` — one :class:`Seam` per join between round *k* and round *k+1*:
  the end of the answer before it, what round *k* held back, the start of round
  *k+1* (or what the engine discarded when the round restarted the answer), the
  flags :mod:`core.continuation.seams` stored on ``Round.seam_flags``, and whether the token
  counts around it are estimates. A user's edit after round *k* is that seam's
  :attr:`Seam.edit`, and the answer before the seam is the edited one; a seam
  whose rounds a later edit took over says so (:attr:`Seam.edited_away`).
- :func:`round_series` — one row per round for charts: input and output
  tokens, time to first token, tokens per second, and the input billed so far
  next to what one request of the same length would have billed.
- :func:`compare_totals`, :func:`compare_series`, :func:`first_difference` —
  two runs side by side (same prompt on two providers, models or strategies).
- :func:`result_gauge`, :func:`result_snapshot` — a stored run in the shapes the
  Studio's rendering functions take (:class:`~core.services.snapshot.Gauge`,
  :class:`~core.services.snapshot.Snapshot`), so a past run looks like a live one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from core.continuation import budget
from core.services.snapshot import Gauge, Snapshot, gauge_for
from core.types import Edit, Round, RunResult

__all__ = [
    "Overhead",
    "Seam",
    "flag_counts",
    "overhead",
    "result_gauge",
    "result_snapshot",
    "round_series",
    "seams",
    "visible_whitespace",
]

SEAM_WIDTH = 240  # characters shown on each side of a seam

# How whitespace is drawn. A line break keeps its break after the mark, so lines stay lines.
WHITESPACE_MARKS: dict[str, str] = {
    " ": "·",
    "\t": "→",
    "\n": "¶\n",
    "\r": "␍",
    "\u00a0": "⍽",  # no-break space
    "\u200b": "⸱",  # zero-width space
    "\u3000": "□",  # ideographic space
}
_WHITESPACE_TABLE = str.maketrans(WHITESPACE_MARKS)


def visible_whitespace(text: str) -> str:
    """``text`` with whitespace drawn: space ``·``, tab ``→``, line break ``¶`` (then the break)."""
    return text.translate(_WHITESPACE_TABLE)


# ---------------------------------------------------------------- seams


@dataclass(frozen=True)
class Seam:
    """The join between round ``before_index`` and round ``after_index`` (= before + 1)."""

    before_index: int
    after_index: int
    before: str  # the end of the answer at the seam (round k's kept text last)
    held_back: str  # the tail round k gave back for round k+1 to regenerate
    after: str  # the start of round k+1 as kept in the answer
    discarded: str  # what round k+1 wrote and the engine dropped (a restart), as far as stored
    discarded_chars: int
    flags: tuple[dict[str, Any], ...]  # Round.seam_flags of round k+1
    offset: int  # characters of the answer (or of the reasoning) before the seam
    tokens: int  # output tokens of rounds 1..k
    tokens_estimated: bool  # counts on either side came from estimates, not the server
    finish_reason: str | None  # why round k ended
    recovery: bool  # round k+1 continued after a broken stream
    in_reasoning: bool  # the seam falls inside the reasoning (no answer text yet)
    before_cut: bool  # ``before`` is shortened (more text precedes it)
    after_cut: bool  # ``after`` is shortened (round k+1 goes on)
    edit: Edit | None = None  # the user's edit made after round k: ``before`` ends the edited answer
    # A later edit holds round k+1's text (its rounds keep none): the round of that edit.
    edited_away: int | None = None

    @property
    def kinds(self) -> list[str]:
        return [str(f.get("kind", "seam")) for f in self.flags]

    @property
    def flagged(self) -> bool:
        return bool(self.flags)


def _in_reasoning(prev: Round, nxt: Round, answer_before: str) -> bool:
    if any(f.get("in_reasoning") for f in nxt.seam_flags):
        return True
    return not answer_before and not prev.text and bool(prev.reasoning)


def seams(result: RunResult, width: int = SEAM_WIDTH) -> list[Seam]:
    """Every seam of ``result``, in order (a run of n rounds has n - 1 seams).

    An edit holds the whole answer as the user left it (the rounds before it keep no text), so
    the answer before a seam starts again from the last edit made before it.
    """
    out: list[Seam] = []
    rounds = result.rounds
    edited = {e.after_round: e for e in result.edits}  # the last edit after each round
    opening = edited.get(0)
    answer_parts: list[str] = [opening.text] if opening else []
    answer_len = len(opening.text) if opening else 0
    reasoning_len = 0
    reasoning_parts: list[str] = []
    tokens = 0
    for i in range(len(rounds) - 1):
        prev, nxt = rounds[i], rounds[i + 1]
        edit = edited.get(prev.index)
        if edit is not None:
            answer_parts, answer_len = [edit.text], len(edit.text)
        else:
            answer_parts.append(prev.text)
            answer_len += len(prev.text)
        reasoning_parts.append(prev.reasoning)
        reasoning_len += len(prev.reasoning)
        tokens += prev.completion_tokens
        answer_tail = _tail(answer_parts, width + 1)
        in_reasoning = _in_reasoning(prev, nxt, answer_tail)
        if in_reasoning:
            tail = _tail(reasoning_parts, width + 1)
            offset = reasoning_len
            after_text = nxt.reasoning
        else:
            tail = answer_tail
            offset = answer_len
            after_text = nxt.text
        taken = next((e.after_round for e in result.edits if e.after_round >= nxt.index), None)
        restart = next((f for f in nxt.seam_flags if f.get("kind") == "restart"), None)
        discarded = str(restart.get("excerpt", "")) if restart else ""
        discarded_chars = int(restart.get("discarded_chars", len(discarded))) if restart else 0
        out.append(
            Seam(
                before_index=prev.index,
                after_index=nxt.index,
                before=tail[-width:],
                held_back="" if in_reasoning else prev.held_back,
                after=after_text[:width],
                discarded=discarded,
                discarded_chars=discarded_chars,
                flags=tuple(dict(f) for f in nxt.seam_flags),
                offset=offset,
                tokens=tokens,
                tokens_estimated=prev.tokens_estimated or nxt.tokens_estimated,
                finish_reason=prev.finish_reason,
                recovery=nxt.recovery,
                in_reasoning=in_reasoning,
                before_cut=len(tail) > width,
                after_cut=len(after_text) > width,
                edit=edit,
                edited_away=taken if not nxt.text else None,
            )
        )
    return out


def _tail(parts: list[str], n: int) -> str:
    """The last ``n`` characters of ``"".join(parts)`` without joining everything."""
    taken: list[str] = []
    size = 0
    for part in reversed(parts):
        if size >= n:
            break
        taken.append(part)
        size += len(part)
    return "".join(reversed(taken))[-n:]


def flag_counts(result: RunResult) -> dict[str, int]:
    """How many times each seam flag kind fired in the run."""
    return dict(Counter(str(f.get("kind", "seam")) for r in result.rounds for f in r.seam_flags))


# ---------------------------------------------------------------- per-round series


def original_prompt_tokens(result: RunResult) -> tuple[int, bool]:
    """(tokens, estimated) of the prompt alone: round 1's input, else an estimate from the spec."""
    first = result.rounds[0] if result.rounds else None
    if first is not None and first.prompt_tokens:
        return first.prompt_tokens, first.prompt_estimated
    return budget.first_prompt(result.spec)[1], True


def round_series(result: RunResult) -> list[dict[str, Any]]:
    """One row per round, for charts.

    Keys: ``round``, ``input_tokens``, ``output_tokens``, ``input_estimated``,
    ``output_estimated``, ``ttft_s``, ``tokens_per_s``, ``duration_s``,
    ``cumulative_input`` (input billed up to and including the round: every
    round re-sends the prompt and the answer so far), ``cumulative_output``,
    ``single_request_input`` (what one request writing the same answer would bill
    for input: the prompt once), ``cost`` and ``cumulative_cost`` (None without prices).
    """
    rows: list[dict[str, Any]] = []
    prompt, _ = original_prompt_tokens(result)
    billed = 0
    written = 0
    spent: float | None = None
    for r in result.rounds:
        billed += r.prompt_tokens
        written += r.completion_tokens
        if r.cost is not None:
            spent = (spent or 0.0) + r.cost
        rows.append(
            {
                "round": r.index,
                "input_tokens": r.prompt_tokens,
                "output_tokens": r.completion_tokens,
                "input_estimated": r.prompt_estimated,
                "output_estimated": r.completion_estimated,
                "ttft_s": r.ttft_s,
                "tokens_per_s": r.tokens_per_s,
                "duration_s": r.duration_s,
                "cumulative_input": billed,
                "cumulative_output": written,
                "single_request_input": prompt,
                "cost": r.cost,
                "cumulative_cost": spent,
            }
        )
    return rows


@dataclass(frozen=True)
class Overhead:
    """What continuation added over one uncapped request writing the same answer.

    One request would bill the prompt once as input; each round re-sends the prompt and
    the answer so far. ``extra_input_tokens``: the difference. ``extra_cost``: those tokens at
    the listed input price (None without prices). ``estimated``: some counts were estimates.
    """

    rounds: int
    input_billed: int
    single_request_input: int
    extra_input_tokens: int
    extra_cost: float | None
    estimated: bool


def overhead(result: RunResult) -> Overhead | None:
    """The input tokens and cost continuation added (None: no rounds yet)."""
    rows = round_series(result)
    if not rows:
        return None
    billed, single = rows[-1]["cumulative_input"], rows[-1]["single_request_input"]
    extra = max(0, billed - single)
    prices = result.spec.prices
    cost = budget.round_cost(prices, extra, 0) if prices is not None else None
    estimated = result.tokens_estimated or original_prompt_tokens(result)[1]
    return Overhead(len(rows), billed, single, extra, cost, estimated)


# ---------------------------------------------------------------- a stored run as the Studio shows it


def result_gauge(result: RunResult) -> Gauge:
    """The context gauge of a finished (or interrupted) run, as the Studio computes it."""
    return gauge_for(result.spec, result.rounds, edits=result.edits)


def result_snapshot(result: RunResult, job_id: str | None = None) -> Snapshot:
    """A stored run as a finished job's :class:`Snapshot` (what the Studio's views render)."""
    end = result.finished_at or max((r.started_at + r.duration_s for r in result.rounds), default=0.0)
    return Snapshot(
        job_id=job_id or result.run_id or "",
        version=0,
        status="done",
        spec=result.spec,
        rounds=tuple(result.rounds),
        live=None,
        stop_reason=result.stop_reason,
        error=result.error,
        notices=(),
        retrying=None,
        started_at=result.started_at,
        elapsed_s=max(0.0, end - result.started_at) if end else 0.0,
        gauge=result_gauge(result),
        result=result,
        edits=tuple(result.edits),
    )
