"""One round on the wire: open the stream, retry what may be retried, turn chunks into deltas.

:class:`RoundStreamer` is the engine's per-chunk path, so it is kept lean: a
chunk becomes one :class:`~core.types.Delta` and one list append. Only the
first chunks of a round may take a slower path (an echo or overlap filter
deciding what to drop, a ``<think>`` splitter at the start of an answer);
both drop out as soon as they are decided.

Retries (:class:`RetryPolicy`): a 429 waits for ``Retry-After`` (or
``retry-after-ms``) when the server gives one, else exponential backoff with
jitter, capped; 5xx, 408, 409 and transport failures back off the same way;
other status errors never retry. Every wait uses ``CancelToken.wait``, so a
cancel ends it at once. A stream that breaks after text arrived is not retried
here: the text is kept and the engine continues with a recovery round.
"""

from __future__ import annotations

import random
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Literal

from core.budget import MIN_ROUND_TOKENS
from core.client import Client
from core.errors import ContextOverflowError, ContinuumError, ProtocolError, RateLimitError
from core.reasoning import ThinkSplitter
from core.strategies import ReplyFilter, Think
from core.types import CancelToken, Delta, Event, Notice, Retrying, Round, RunSpec, Usage

OutcomeKind = Literal["ok", "broken", "cancelled", "error", "exhausted"]


@dataclass(frozen=True)
class RetryPolicy:
    """Waits and limits for retries (seconds)."""

    max_attempts: int = 6  # requests per round, the first included
    base: float = 1.0  # first backoff
    cap: float = 30.0  # longest backoff
    max_wait: float = 120.0  # longest wait honoured from a server's Retry-After
    jitter: float = 0.5  # a backoff is shortened by up to this fraction at random
    max_recoveries: int = 8  # recovery rounds in a row after broken streams

    def wait(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before attempt ``attempt + 1``."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_wait)
        delay = min(self.cap, self.base * 2 ** (attempt - 1))
        return min(self.max_wait, delay * (1.0 - self.jitter * rng.random()))


@dataclass
class Plan:
    """The request a round sends, and how to read its reply."""

    endpoint: str
    body: dict[str, Any]
    max_tokens: int
    held: int  # characters held back from the previous round
    answer: str  # the answer so far as sent (after hold-back)
    prefill: str  # what the request carries as the assistant's partial turn
    prompt_estimate: int
    sent_chars: int
    reply_filter: ReplyFilter | None = None
    splitter: ThinkSplitter | None = None
    lowered: bool = False  # max_tokens was lowered once after a context overflow
    window: int | None = None  # the context window a server's overflow error named


@dataclass
class Got:
    """What a round received."""

    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    chunks: int = 0  # chunks that carried text
    finish_reason: str | None = None
    usage: Usage | None = None
    think: Think = None  # where <think> reasoning in the content stood at the end


@dataclass
class Outcome:
    kind: OutcomeKind
    got: Got
    error: ContinuumError | None = None


class RoundStreamer:
    def __init__(self, client: Client, cancel: CancelToken, policy: RetryPolicy, spec: RunSpec) -> None:
        self.client = client
        self.cancel = cancel
        self.policy = policy
        self.keep_reasoning = spec.reasoning == "separate"
        self.rng = random.Random()

    def stream(self, rnd: Round, plan: Plan) -> Generator[Event, None, Outcome]:
        """Stream one round into ``rnd`` (timings, retries), yielding Delta/Retrying/Notice events."""
        got = Got()
        attempt = 0
        while True:
            attempt += 1
            start = time.monotonic()
            if plan.endpoint == "completions":
                stream = self.client.stream_completion(plan.body)
            else:
                stream = self.client.stream_chat(plan.body)
            unregister = self.cancel.register(stream.abort)
            try:
                yield from self._consume(stream, rnd, plan, got, start)
                got.finish_reason = stream.finish_reason
                got.usage = stream.usage
                yield from self._flush(plan, got, cut=(stream.finish_reason or "") != "stop", index=rnd.index)
                return Outcome("ok", got)
            except ContinuumError as exc:
                got.usage = stream.usage
                if self.cancel.cancelled:
                    yield from self._flush(plan, got, cut=True, index=rnd.index)
                    return Outcome("cancelled", got, exc)
                if got.chunks:
                    yield from self._flush(plan, got, cut=True, index=rnd.index)
                    if isinstance(exc, ContextOverflowError):
                        return Outcome("exhausted", got, exc)
                    broken = exc.retryable and not isinstance(exc, ProtocolError)
                    return Outcome("broken" if broken else "error", got, exc)
                if isinstance(exc, ContextOverflowError):
                    lowered = self._lower(plan, rnd, exc)
                    if lowered is None:
                        return Outcome("exhausted", got, exc)
                    yield lowered
                    attempt -= 1
                    continue
                if not exc.retryable or isinstance(exc, ProtocolError) or attempt >= self.policy.max_attempts:
                    return Outcome("error", got, exc)
                retry_after = exc.retry_after if isinstance(exc, RateLimitError) else None
                wait = self.policy.wait(attempt, retry_after, self.rng)
                rnd.retries += 1
                yield Retrying(f"{exc.message}", wait, attempt + 1, rnd.index)
                if self.cancel.wait(wait):
                    return Outcome("cancelled", got, exc)
            finally:
                unregister()
                stream.close()
                rnd.duration_s = time.monotonic() - start

    def _consume(self, stream: Any, rnd: Round, plan: Plan, got: Got, start: float) -> Generator[Event]:
        """The per-chunk path."""
        content_append = got.content.append
        reasoning_append = got.reasoning.append
        keep_reasoning = self.keep_reasoning
        index = rnd.index
        filt = plan.reply_filter
        split = plan.splitter
        slow = filt is not None or split is not None
        first = True
        for delta in stream:
            text = delta.content
            if text:
                got.chunks += 1
                if first:
                    first = False
                    rnd.ttft_s = time.monotonic() - start
                if slow:
                    if filt is not None:
                        text = filt.feed(text)
                    yield from self._route(text, plan, got, index)
                    slow = (filt is not None and not filt.decided) or (
                        split is not None and not split.passthrough
                    )
                else:
                    content_append(text)
                    yield Delta(text, "content", index)
            text = delta.reasoning
            if text:
                got.chunks += 1
                if first:
                    first = False
                    rnd.ttft_s = time.monotonic() - start
                reasoning_append(text)
                if keep_reasoning:
                    yield Delta(text, "reasoning", index)

    def _route(self, text: str, plan: Plan, got: Got, index: int) -> Generator[Event]:
        """Content through the <think> splitter (the start of an answer only)."""
        if not text:
            return
        split = plan.splitter
        if split is None:
            got.content.append(text)
            yield Delta(text, "content", index)
            return
        pieces = split.feed(text)
        for kind, piece in pieces:
            if kind == "content":
                got.content.append(piece)
                yield Delta(piece, "content", index)
            else:
                got.reasoning.append(piece)
                if self.keep_reasoning:
                    yield Delta(piece, "reasoning", index)

    def _flush(self, plan: Plan, got: Got, *, cut: bool, index: int) -> Generator[Event]:
        """End of the round: release whatever the reply filter or the splitter still holds."""
        text = plan.reply_filter.flush() if plan.reply_filter is not None else ""
        yield from self._route(text, plan, got, index)
        split = plan.splitter
        if split is not None:
            if split.opened:
                got.think = "closed" if split.closed else "open"
            for kind, piece in split.finish(cut=cut):
                if kind == "content":
                    got.content.append(piece)
                    yield Delta(piece, "content", index)
                else:
                    got.reasoning.append(piece)
                    if self.keep_reasoning:
                        yield Delta(piece, "reasoning", index)

    def _lower(self, plan: Plan, rnd: Round, exc: ContextOverflowError) -> Notice | None:
        """Lower max_tokens once to what the server says fits; None when it cannot fit."""
        if exc.context_length:
            plan.window = exc.context_length
        if plan.lowered:
            return None
        fit = exc.fitting_max_tokens(plan.max_tokens)
        new = fit if fit is not None else plan.max_tokens // 2
        new = min(new, plan.max_tokens - 1)
        if new < MIN_ROUND_TOKENS:
            return None
        plan.lowered = True
        plan.max_tokens = rnd.max_tokens = plan.body["max_tokens"] = new
        return Notice(f"the request did not fit the context window; lowered max_tokens to {new}", rnd.index)
