"""What a page sees of a background run: immutable snapshots of a :class:`~core.services.jobs.Job`.

A :class:`Snapshot` holds the finished rounds (never mutated after), the round
being streamed (:class:`LiveRound`), the user's edits of the answer, the run's status,
and the context budget (:class:`Gauge`). It is built under the job's lock and safe to read from any
thread. Nothing here does I/O or imports Streamlit.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from core.continuation import budget
from core.types import Edit, ErrorInfo, Round, RunResult, RunSpec

JobStatus = Literal["running", "stopping", "done"]

AMBER_AT = 0.75  # share of the window used at which the gauge turns amber
RED_AT = 0.90


@dataclass(frozen=True)
class LiveRound:
    """The round being streamed."""

    index: int
    max_tokens: int
    strategy: str
    text: str
    reasoning: str
    chunks: int  # deltas received: about one token each on OpenAI-compatible streams
    started: float  # time.monotonic()
    first_token_at: float | None
    recovery: bool = False

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.started

    def elapsed_s(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.started


@dataclass(frozen=True)
class Gauge:
    """The context budget at one moment. Token counts may be estimates (``estimated``)."""

    window: int | None
    prompt_tokens: int
    generated_tokens: int
    billed_input_tokens: int  # summed over rounds: every round re-sends everything so far
    cost: float | None
    estimated: bool

    @property
    def used(self) -> int:
        return self.prompt_tokens + self.generated_tokens

    @property
    def remaining(self) -> int | None:
        return None if self.window is None else max(0, self.window - self.used)

    @property
    def fraction(self) -> float | None:
        if not self.window:
            return None
        return min(1.0, self.used / self.window)

    @property
    def level(self) -> Literal["ok", "amber", "red"]:
        fraction = self.fraction or 0.0
        if fraction >= RED_AT:
            return "red"
        if fraction >= AMBER_AT:
            return "amber"
        return "ok"


@dataclass(frozen=True)
class Snapshot:
    """An immutable view of a job, safe to read from any thread."""

    job_id: str
    version: int
    status: JobStatus
    spec: RunSpec
    rounds: tuple[Round, ...]
    live: LiveRound | None
    stop_reason: str | None
    error: ErrorInfo | None
    notices: tuple[str, ...]
    retrying: str | None
    started_at: float  # unix time
    elapsed_s: float
    gauge: Gauge
    result: RunResult | None  # set once done
    edits: tuple[Edit, ...] = ()  # the user's edits of the answer (a resumed run's), oldest first

    @property
    def done(self) -> bool:
        return self.status == "done"

    @property
    def text(self) -> str:
        """The assembled answer so far: the last edit's text, the rounds after it, the live round
        (as :attr:`RunResult.text`; an edit holds the text of the rounds before it)."""
        last = self.edits[-1] if self.edits else None
        finished = (last.text if last else "") + "".join(
            r.text for r in self.rounds if last is None or r.index > last.after_round
        )
        return finished + self.live.text if self.live else finished

    def to_result(self) -> RunResult:
        """The run as a RunResult (the finished one when done; else its edits and rounds so far)."""
        if self.result is not None:
            return self.result
        return RunResult(
            spec=self.spec, rounds=list(self.rounds), started_at=self.started_at, edits=list(self.edits)
        )


def gauge_for(
    spec: RunSpec, rounds: Sequence[Round], live: LiveRound | None = None, edits: Sequence[Edit] = ()
) -> Gauge:
    """The context gauge of a run: the Studio's live view and a stored run's view alike.

    Counts are the rounds' own (the server's usage, else the engine's estimates); the prompt
    before any round is :func:`core.continuation.budget.first_prompt`'s estimate (the one the validation's
    refusal uses); a round cut off while streaming (interrupted) has text but no counts and is
    estimated from its text; the live round counts its chunks (about one token each).

    After an edit the answer is the edit's text and the rounds after it (:func:`edited_tokens`):
    what the edit removed no longer fills the window, what it added does. Input billed and cost
    stay those of every round sent.
    """
    estimated = any(r.tokens_estimated for r in rounds)
    if rounds and rounds[0].prompt_tokens:
        prompt = rounds[0].prompt_tokens
        estimated = estimated or rounds[0].prompt_estimated
    else:
        prompt = budget.first_prompt(spec)[1]
        estimated = True
    written = [_output_tokens(r) for r in rounds]
    output = sum(tokens for tokens, _ in written)  # what every round wrote (and was billed for)
    estimated = estimated or any(guess for _, guess in written)
    generated = output
    if edits:  # the answer in the window: the last edit's text and the rounds after it
        last = edits[-1]
        generated, edit_estimated = edited_tokens(last, rounds, prompt)
        generated += sum(
            tokens for r, (tokens, _) in zip(rounds, written, strict=True) if r.index > last.after_round
        )
        estimated = estimated or edit_estimated
    billed = sum(r.prompt_tokens for r in rounds)
    costs = [r.cost for r in rounds if r.cost is not None]
    cost: float | None = sum(costs) if costs else None
    if live is not None:
        live_prompt = prompt + generated
        billed += live_prompt
        generated += live.chunks
        estimated = True
        extra = budget.round_cost(spec.prices, live_prompt, live.chunks)
        if extra is not None:
            cost = (cost or 0.0) + extra
    elif cost is None and rounds:
        cost = budget.round_cost(spec.prices, billed, output)
    return Gauge(
        window=spec.context_window,
        prompt_tokens=prompt,
        generated_tokens=generated,
        billed_input_tokens=billed,
        cost=cost,
        estimated=estimated,
    )


def _output_tokens(r: Round) -> tuple[int, bool]:
    """(tokens, estimated) a round wrote: its count, else (a round cut off while streaming) its text's."""
    if r.completion_tokens or not (r.text or r.reasoning):
        return r.completion_tokens, False
    return budget.estimate_text(r.text + r.reasoning), True


def edited_tokens(edit: Edit, rounds: Sequence[Round], prompt: int) -> tuple[int, bool]:
    """(tokens, estimated) of the answer as ``edit`` left it, as it fills the window.

    The round after the edit was sent the prompt and that text, so the server's count of its
    input less the prompt is the text's; an opening is already inside the first round's count
    (``prompt``). Before that round is counted, the text is estimated.
    """
    after = next((r for r in rounds if r.index == edit.after_round + 1 and r.prompt_tokens), None)
    if after is not None and edit.after_round == 0:
        return 0, after.prompt_estimated
    if after is not None and not after.prompt_estimated:
        return max(0, after.prompt_tokens - prompt), False
    return budget.estimate_text(edit.text), True
