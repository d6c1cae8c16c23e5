"""The records of a run: what is asked (:class:`RunSpec`), what each request did
(:class:`Round`), what the user changed between rounds (:class:`Edit`), and the run so far
(:class:`RunResult`, whose :meth:`RunResult.to_dict` is the JSON transcript in the README).

Nothing here does I/O, and nothing here ever holds an API key.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

# Why a run stopped. DESIGN §2.
StopReason = Literal[
    "finished",
    "max_rounds",
    "target_reached",
    "context_exhausted",
    "no_progress",
    "repetition",
    "cost_limit",
    "cancelled",
    "error",
]
STOP_REASONS: tuple[str, ...] = (
    "finished",
    "max_rounds",
    "target_reached",
    "context_exhausted",
    "no_progress",
    "repetition",
    "cost_limit",
    "cancelled",
    "error",
)

# Strategies, one class each in core.continuation.strategies.
StrategyName = Literal["prefill", "vllm", "prefix", "completions", "instruction"]
STRATEGIES: tuple[str, ...] = ("prefill", "vllm", "prefix", "completions", "instruction")

# finish_reason values that mean "the round was cut, continue".
TRUNCATED_FINISH_REASONS = frozenset({"length", "max_tokens", "model_context_window_exceeded"})


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The items of ``data`` that are fields of the dataclass ``cls`` (a newer writer's extra keys
    are left out, so older code reads newer records)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass(frozen=True)
class Prices:
    """USD per million tokens."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    cached_input_per_mtok: float | None = None


@dataclass
class RunSpec:
    """Everything needed to start or resume a run. Never the API key.

    ``messages`` are OpenAI chat messages (``{"role": ..., "content": ...}``)
    without the answer; the engine appends the continuation itself.
    """

    messages: list[dict[str, Any]]
    provider: str = "demo"
    base_url: str = ""
    model: str = "demo"
    max_tokens: int = 1024  # per round, before the budget clamps it
    max_rounds: int = 20
    target_tokens: int | None = None  # stop once this many output tokens exist
    cost_limit: float | None = None  # USD
    context_window: int | None = None  # None: from metadata/presets, else unknown
    output_cap: int | None = None  # the provider's per-request output cap
    strategy: str = "prefill"
    template: str | None = None  # completions strategy: a template name or Jinja text
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    prices: Prices | None = None
    api_key_env: str | None = None  # the *name* of the variable holding the key
    reasoning: Literal["separate", "drop"] = "separate"
    extra_body: dict[str, Any] = field(default_factory=dict)  # sent as-is with every request
    title: str = ""  # a short human name for the run (downloads are named after it)

    @property
    def prompt(self) -> str:
        """The last user message, for lists and titles."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return str(message.get("content") or "")
        return ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        values = _known(cls, data)
        prices = values.get("prices")
        if isinstance(prices, dict):
            values["prices"] = Prices(**prices)
        return cls(**values)


@dataclass
class Round:
    """One request/response of a run. DESIGN §2."""

    index: int  # 1-based
    strategy: str = "prefill"
    max_tokens: int = 0  # what was sent
    text: str = ""  # what this round contributes to the assembled answer
    reasoning: str = ""
    held_back: str = ""  # tail of this round's text that the next round re-generated
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    prompt_estimated: bool = False  # True when not from the server's usage
    completion_estimated: bool = False
    ttft_s: float | None = None
    duration_s: float = 0.0
    retries: int = 0
    recovery: bool = False  # started because the previous stream broke
    error: str | None = None
    seam_flags: list[dict[str, Any]] = field(default_factory=list)
    cost: float | None = None
    started_at: float = 0.0  # unix time

    @property
    def tokens_estimated(self) -> bool:
        return self.prompt_estimated or self.completion_estimated

    @property
    def tokens_per_s(self) -> float | None:
        gen = self.duration_s - (self.ttft_s or 0.0)
        if self.completion_tokens <= 0 or gen <= 0:
            return None
        return self.completion_tokens / gen

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tokens_estimated"] = self.tokens_estimated
        data["tokens_per_s"] = self.tokens_per_s
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Round:
        return cls(**_known(cls, data))


@dataclass
class ErrorInfo:
    """A ContinuumError as data: safe to store, show and export (no secrets)."""

    kind: str  # the exception class name, e.g. "AuthenticationError"
    message: str  # what happened and what to do
    status: int | None = None
    request_id: str | None = None
    retryable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ErrorInfo:
        return cls(**_known(cls, data))


@dataclass
class Edit:
    """The user's change to the answer between rounds: a seam too (DESIGN §6).

    One span of the answer as it stood (``text_before``) was replaced: ``removed``
    characters from ``at`` gave way to ``inserted``. An opening the answer must begin
    with is an edit before the first round (``after_round`` 0, ``text_before`` "").
    """

    after_round: int  # rounds the run had when the edit was made (0: before the first one)
    at: int  # where the changed span starts, in text_before
    removed: int  # characters of text_before replaced
    inserted: str  # what replaced them
    text_before: str  # the whole answer before the edit
    made_at: float = field(default_factory=time.time)

    @property
    def added(self) -> int:
        return len(self.inserted)

    @property
    def text(self) -> str:
        """The whole answer after the edit."""
        return self.text_before[: self.at] + self.inserted + self.text_before[self.at + self.removed :]

    @classmethod
    def between(cls, before: str, after: str, after_round: int) -> Edit:
        """The edit turning ``before`` into ``after``: the one span between their common ends."""
        limit = min(len(before), len(after))
        start = 0
        while start < limit and before[start] == after[start]:
            start += 1
        end = 0
        while end < limit - start and before[-1 - end] == after[-1 - end]:
            end += 1
        return cls(after_round, start, len(before) - start - end, after[start : len(after) - end], before)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["added"] = self.added
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Edit:
        return cls(**_known(cls, data))


@dataclass
class RunResult:
    """A run so far: its spec, its rounds, the user's edits and, once ended, why it stopped.

    The answer (:attr:`text`) is the last edit's text followed by the rounds after it.
    An edit takes over the text of the rounds before it (:meth:`edit`): they keep their
    numbers and their text lives on in the edit's ``text_before``, so the engine, which
    continues from :attr:`text` and re-sends the last round's tail, continues from exactly
    the edited text.
    """

    spec: RunSpec
    rounds: list[Round] = field(default_factory=list)
    stop_reason: str | None = None  # None while running
    error: ErrorInfo | None = None
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    run_id: str | None = None  # set by the store
    edits: list[Edit] = field(default_factory=list)
    thread_id: str | None = None  # runs of one conversation (follow-ups) share it
    parent_id: str | None = None  # the run this one follows up on

    @property
    def text(self) -> str:
        """The answer as one new ``str``: a whole copy beside the rounds' texts (a long answer is
        better read piece by piece, :meth:`text_parts`)."""
        return "".join(self.text_parts())

    def text_parts(self) -> list[str]:
        """The pieces :attr:`text` joins: the last edit's text, then the rounds after it (the
        strings themselves: the engine sends them as the answer so far, the command line
        writes them out)."""
        if not self.edits:
            return [r.text for r in self.rounds]
        last = self.edits[-1]
        return [last.text, *(r.text for r in self.rounds if r.index > last.after_round)]

    def edit(self, text: str) -> Edit | None:
        """Make ``text`` the answer so far, recorded as an :class:`Edit` (None: nothing changed)."""
        if text == self.text:
            return None
        change = Edit.between(self.text, text, len(self.rounds))
        for r in self.rounds:  # their text is in the edit now; nothing held back is owed to them
            r.text = r.held_back = ""
        self.edits.append(change)
        return change

    @property
    def reasoning(self) -> str:
        return "".join(r.reasoning for r in self.rounds)

    @property
    def prompt_tokens_billed(self) -> int:
        """Input tokens summed over every round: each round re-sends everything."""
        return sum(r.prompt_tokens for r in self.rounds)

    @property
    def completion_tokens(self) -> int:
        return sum(r.completion_tokens for r in self.rounds)

    @property
    def cost(self) -> float | None:
        costs = [r.cost for r in self.rounds if r.cost is not None]
        return round(sum(costs), 10) if costs else None  # as budget.round_cost: no float noise

    @property
    def tokens_estimated(self) -> bool:
        return any(r.tokens_estimated for r in self.rounds)

    def totals(self) -> dict[str, Any]:
        return {
            "rounds": len(self.rounds),
            "prompt_tokens_billed": self.prompt_tokens_billed,
            "completion_tokens": self.completion_tokens,
            "tokens_estimated": self.tokens_estimated,
            "cost": self.cost,
            "characters": sum(map(len, self.text_parts())),  # a long answer is not joined to count it
            "duration_s": (self.finished_at or time.time()) - self.started_at,
            "retries": sum(r.retries for r in self.rounds),
        }

    def to_dict(self) -> dict[str, Any]:
        """The JSON transcript (schema documented in the README)."""
        return {
            "schema": "continuum.transcript/1",
            "run_id": self.run_id,
            "spec": self.spec.to_dict(),
            "rounds": [r.to_dict() for r in self.rounds],
            "stop_reason": self.stop_reason,
            "error": self.error.to_dict() if self.error else None,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "totals": self.totals(),
            "text": self.text,
            "reasoning": self.reasoning,
            "edits": [e.to_dict() for e in self.edits],
            "thread_id": self.thread_id,
            "parent_id": self.parent_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        error = data.get("error")
        return cls(
            spec=RunSpec.from_dict(data["spec"]),
            rounds=[Round.from_dict(r) for r in data.get("rounds", [])],
            stop_reason=data.get("stop_reason"),
            error=ErrorInfo.from_dict(error) if error else None,
            started_at=data.get("started_at") or time.time(),
            finished_at=data.get("finished_at"),
            run_id=data.get("run_id"),
            edits=[Edit.from_dict(e) for e in data.get("edits") or []],
            thread_id=data.get("thread_id"),
            parent_id=data.get("parent_id"),
        )
