"""What a page sees of a background run: immutable snapshots of a :class:`~core.jobs.Job`.

A :class:`Snapshot` holds the finished rounds (never mutated after), the round
being streamed (:class:`LiveRound`), the run's status, and the context budget
(:class:`Gauge`). It is built under the job's lock and safe to read from any
thread. Nothing here does I/O or imports Streamlit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from core.types import ErrorInfo, Round, RunResult, RunSpec

JobStatus = Literal["running", "stopping", "done"]

AMBER_AT = 0.75  # share of the window used at which the gauge turns amber
RED_AT = 0.90
CHARS_PER_TOKEN = 4.0  # rough estimate before the server has reported usage


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


def estimate_tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN + 0.5)


def prompt_estimate(spec: RunSpec) -> int:
    chars = sum(len(str(m.get("content") or "")) for m in spec.messages)
    return int(chars / CHARS_PER_TOKEN) + 4 * len(spec.messages)


def live_cost(spec: RunSpec, prompt_tokens: int, output_tokens: int) -> float | None:
    if spec.prices is None:
        return None
    return (
        prompt_tokens * spec.prices.input_per_mtok + output_tokens * spec.prices.output_per_mtok
    ) / 1_000_000
