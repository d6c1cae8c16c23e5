"""What a page sees of a background run: immutable snapshots of a :class:`~core.services.jobs.Job`.

A :class:`Snapshot` holds the finished rounds (never mutated after), the round
being streamed (:class:`LiveRound`), the run's status, and the context budget
(:class:`Gauge`). It is built under the job's lock and safe to read from any
thread. Nothing here does I/O or imports Streamlit.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from core.continuation import budget
from core.types import ErrorInfo, Round, RunResult, RunSpec

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

    @property
    def done(self) -> bool:
        return self.status == "done"

    @property
    def text(self) -> str:
        """The assembled answer so far, live round included."""
        finished = "".join(r.text for r in self.rounds)
        return finished + self.live.text if self.live else finished

    def to_result(self) -> RunResult:
        """The run as a RunResult (the finished one when done; else the finished rounds so far)."""
        if self.result is not None:
            return self.result
        return RunResult(spec=self.spec, rounds=list(self.rounds), started_at=self.started_at)


def gauge_for(spec: RunSpec, rounds: Sequence[Round], live: LiveRound | None = None) -> Gauge:
    """The context gauge of a run: the Studio's live view and a stored run's view alike.

    Counts are the rounds' own (the server's usage, else the engine's estimates); the prompt
    before any round is :func:`core.continuation.budget.first_prompt`'s estimate (the one the validation's
    refusal uses); a round cut off while streaming (interrupted) has text but no counts and is
    estimated from its text; the live round counts its chunks (about one token each).
    """
    estimated = any(r.tokens_estimated for r in rounds)
    if rounds and rounds[0].prompt_tokens:
        prompt = rounds[0].prompt_tokens
        estimated = estimated or rounds[0].prompt_estimated
    else:
        prompt = budget.first_prompt(spec)[1]
        estimated = True
    generated = 0
    for r in rounds:
        if r.completion_tokens or not (r.text or r.reasoning):
            generated += r.completion_tokens
        else:
            generated += budget.estimate_text(r.text + r.reasoning)
            estimated = True
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
        cost = budget.round_cost(spec.prices, billed, generated)
    return Gauge(
        window=spec.context_window,
        prompt_tokens=prompt,
        generated_tokens=generated,
        billed_input_tokens=billed,
        cost=cost,
        estimated=estimated,
    )
