"""Token accounting for a run: the per-round budget, estimates, cost. DESIGN §5.

Before each round::

    max_tokens = min(per-round setting, output cap,
                     window - tokens in context - margin, tokens left to target)

*Tokens in context* is the prompt of the next request. It is derived from the
previous round's server-reported ``prompt + completion`` (adjusted for what the
next request drops or adds), or, when the server reports no usage, from a
character estimate calibrated by the ratio of tokens to characters seen earlier
in the same run. Estimates are flagged as such on the :class:`~core.types.Round`.

Nothing here does I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from core.continuation.strategies import get_strategy
from core.types import Prices, Round, RunResult, RunSpec, Usage
from core.types.pieces import Pieces
from core.wire.errors import ConfigError

# Below this many tokens a round cannot do useful work: stop with context_exhausted.
MIN_ROUND_TOKENS = 16
# Tokens per character before the run has seen any server usage: deliberately
# high (most tokenizers give 0.2-0.3 for English prose) so an estimate errs on
# the side of a smaller request rather than one the server must refuse.
DEFAULT_TOKENS_PER_CHAR = 1 / 3
# Per-message template overhead (role markers, separators) in tokens.
MESSAGE_OVERHEAD_TOKENS = 8


def context_margin(window: int) -> int:
    """Tokens kept free below the window for re-tokenisation at seams and estimate error."""
    return 16 + window // 64


@dataclass
class Calibration:
    """The run's token-per-character ratio, learnt from server usage (or chunk counts)."""

    tokens: int = 0
    chars: int = 0
    from_server: bool = False

    def observe(self, tokens: int, chars: int, *, from_server: bool) -> None:
        if tokens <= 0 or chars <= 0:
            return
        if from_server and not self.from_server:  # server numbers replace chunk counts
            self.tokens = self.chars = 0
            self.from_server = True
        elif not from_server and self.from_server:
            return
        self.tokens += tokens
        self.chars += chars

    @property
    def ratio(self) -> float:
        if self.chars < 200:  # too little text to trust
            if self.chars and self.tokens / self.chars > DEFAULT_TOKENS_PER_CHAR:
                return self.tokens / self.chars
            return DEFAULT_TOKENS_PER_CHAR
        return self.tokens / self.chars

    def estimate(self, chars: int) -> int:
        """Tokens for ``chars`` characters of text, rounded up and padded by 5 %."""
        if chars <= 0:
            return 0
        return math.ceil(chars * self.ratio * 1.05)

    @classmethod
    def from_rounds(cls, rounds: list[Round]) -> Calibration:
        calib = cls()
        for r in rounds:
            chars = len(r.text) + len(r.held_back) + len(r.reasoning)
            calib.observe(r.completion_tokens, chars, from_server=not r.completion_estimated)
        return calib


def implausible_usage(
    usage: Usage, *, max_tokens: int, generated_chars: int, sent_chars: int, window: int | None
) -> list[str]:
    """Why the server's counts for one round cannot be true (empty: they can). DESIGN §5.

    A count is refused when it is negative, when the completion is more than the
    request allowed (``max_tokens``; gateways that fill usage in with their own
    tokenizer over-count), when text arrived but no completion tokens were
    counted, or when a count is far outside what the characters can hold (a
    token covers at most 64 characters and is never more than 4 per character).
    Refused counts are estimated instead.
    """
    why: list[str] = []
    c, p = usage.completion_tokens, usage.prompt_tokens
    if c < 0:
        why.append(f"negative completion tokens ({c})")
    elif c > max_tokens:
        why.append(f"{c:,} completion tokens for max_tokens {max_tokens:,}")
    elif generated_chars and (
        c == 0 or c * 64 < generated_chars or c - usage.reasoning_tokens > 4 * generated_chars + 16
    ):  # (hidden reasoning tokens aside)
        why.append(f"{c:,} completion tokens for {generated_chars:,} characters")
    if p < 0:
        why.append(f"negative prompt tokens ({p})")
    elif window and p > window:
        why.append(f"{p:,} prompt tokens in a window of {window:,}")
    elif p > 4 * sent_chars + 1024 or (p and p * 64 < sent_chars):
        why.append(f"{p:,} prompt tokens for {sent_chars:,} characters sent")
    if usage.cached_tokens < 0 or (p >= 0 and usage.cached_tokens > p):
        why.append(f"{usage.cached_tokens:,} cached tokens of {p:,} prompt tokens")
    return why


def sent_size(body: dict[str, Any]) -> tuple[int, int]:
    """Characters of text in a request body and its number of messages (a prompt counts as one).
    A text given as :class:`~core.types.pieces.Pieces` is counted without joining it."""
    if "prompt" in body:
        return _chars(body["prompt"]), 1
    messages = body.get("messages", ())
    return sum(_chars(m.get("content") or "") for m in messages), len(messages)


def _chars(value: Any) -> int:
    return len(value) if isinstance(value, str | Pieces) else len(str(value))


def first_prompt(spec: RunSpec) -> tuple[int, int]:
    """(characters, estimated tokens) of the first request of ``spec``, as the engine estimates it.

    The gauge before any usage arrived and the validation's refusal of a prompt too long for the
    window both use this, so they cannot disagree.
    """
    try:
        body = get_strategy(spec.strategy).build(spec, "", "")[1]
    except ConfigError:  # an unknown strategy or template: count the messages alone
        body = {"messages": spec.messages}
    chars, messages = sent_size(body)
    return chars, estimate_prompt(chars, messages, Calibration())


def estimate_text(text: str, calib: Calibration | None = None) -> int:
    """Tokens of a text (the run's calibration, else the default ratio): the one estimator."""
    return (calib or Calibration()).estimate(len(text))


def estimate_completion(chars: int, chunks: int, calib: Calibration) -> int:
    """Completion tokens of a round without server usage.

    Most servers send one token per chunk, so the chunk count is the estimate
    (and a floor); once the run has seen the server's own counts, the
    calibrated character estimate also covers servers that batch tokens.
    """
    if chars <= 0:
        return chunks
    if not calib.from_server and chunks:
        return chunks
    return max(chunks, math.ceil(chars * calib.ratio))


def estimate_prompt(message_chars: int, messages: int, calib: Calibration) -> int:
    """Prompt tokens of a request from its characters and message count."""
    return calib.estimate(message_chars) + MESSAGE_OVERHEAD_TOKENS * (messages + 1)


def next_prompt_tokens(
    *, prev_prompt: int, prev_completion: int, generated_chars: int, delta_chars: int, calib: Calibration
) -> int:
    """The next request's prompt tokens from the previous request's usage.

    ``delta_chars``: how many characters longer the next request is. Up to
    ``generated_chars`` (what the previous round generated, ``prev_completion``
    tokens) that growth is the generated text coming back, counted at the
    round's own tokens-per-character; the rest (an instruction message) and any
    shrinking are estimated from the run's calibration.
    """
    if delta_chars < 0:
        return max(0, prev_prompt - int(-delta_chars * calib.ratio * 0.9))
    carried = min(delta_chars, generated_chars)
    tokens = prev_prompt + (math.ceil(prev_completion * carried / generated_chars) if carried else 0)
    return tokens + calib.estimate(delta_chars - carried)


@dataclass(frozen=True)
class Budget:
    """What the next round may ask for, and why."""

    max_tokens: int
    limited_by: str  # "per_round" | "output_cap" | "context" | "target"
    context_tokens: int  # estimated prompt tokens of the next request
    context_room: int | None  # window - context - margin; None when the window is unknown

    @property
    def exhausted(self) -> bool:
        """Too little room left in the window for a useful round."""
        return self.context_room is not None and self.context_room < MIN_ROUND_TOKENS


def round_budget(spec: RunSpec, *, context_tokens: int, produced_tokens: int, window: int | None) -> Budget:
    """``max_tokens`` for the next round (DESIGN §5)."""
    limits = [("per_round", spec.max_tokens)]
    if spec.output_cap:
        limits.append(("output_cap", spec.output_cap))
    room = None
    if window:
        room = window - context_tokens - context_margin(window)
        limits.append(("context", room))
    if spec.target_tokens:
        limits.append(("target", spec.target_tokens - produced_tokens))
    name, value = min(limits, key=lambda item: item[1])
    return Budget(max(0, value), name, context_tokens, room)


USD_DIGITS = 10  # a ten-billionth of a dollar: far below any price, far above float noise


def round_cost(prices: Prices | None, prompt: int, completion: int, cached: int = 0) -> float | None:
    """USD for one request, or None without prices."""
    if prices is None:
        return None
    cached = min(cached, prompt)
    cached_price = prices.cached_input_per_mtok
    if cached_price is None:
        cached_price = prices.input_per_mtok
    usd = (
        (prompt - cached) * prices.input_per_mtok
        + cached * cached_price
        + completion * prices.output_per_mtok
    ) / 1_000_000
    return round(usd, USD_DIGITS)  # no float noise (0.0005137000000000001) in tables and exports


def prompt_cost(prices: Prices | None, prompt: int) -> float:
    """USD for ``prompt`` input tokens (0 without prices): :func:`round_cost` with no output."""
    return round_cost(prices, prompt, 0) or 0.0


def context_used(result: RunResult) -> int:
    """Tokens the context holds after the last round: its prompt plus what it generated."""
    for r in reversed(result.rounds):
        if r.prompt_tokens or r.completion_tokens:
            return r.prompt_tokens + r.completion_tokens
    return 0


def totals(result: RunResult) -> dict[str, object]:
    """The run's totals (tokens billed, output, cost), the same numbers the transcript shows."""
    return result.totals()
