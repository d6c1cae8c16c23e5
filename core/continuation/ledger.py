"""The run's accounting across rounds: tokens, cost and the context they fill. DESIGN §5.

:class:`Ledger` keeps the running totals (tokens produced, money spent), the
context window (as configured, or as a server's overflow error named it), the
chars-per-token calibration and the last request's size, from which the next
prompt is estimated. :meth:`Ledger.account` books a closed round: the server's
usage when it is plausible (:func:`~core.continuation.budget.implausible_usage`;
else a ``usage_ignored`` flag), an estimate otherwise.
"""

from __future__ import annotations

from typing import Any

from core.continuation import budget
from core.continuation.reader import Got
from core.continuation.rounds import Plan
from core.types import Round, RunResult, RunSpec

__all__ = ["Ledger"]


class Ledger:
    def __init__(self, spec: RunSpec, result: RunResult) -> None:
        self.spec = spec
        self.window = spec.context_window
        self.calib = budget.Calibration.from_rounds(result.rounds)
        # the last request: (chars, messages, prompt tokens, completion tokens, generated chars)
        self.prev: tuple[int, int, int, int, int] | None = None
        self.produced = result.completion_tokens  # running totals, not re-summed per round
        self.spent = result.cost or 0.0

    def context_tokens(self, body: dict[str, Any]) -> tuple[int, int]:
        """Estimated prompt tokens of ``body`` and its size in characters."""
        chars, messages = budget.sent_size(body)
        if self.prev is None:
            return budget.estimate_prompt(chars, messages, self.calib), chars
        sent, sent_messages, prompt, completion, generated = self.prev
        tokens = budget.next_prompt_tokens(
            prev_prompt=prompt,
            prev_completion=completion,
            generated_chars=generated,
            delta_chars=chars - sent,
            calib=self.calib,
        )
        return tokens + budget.MESSAGE_OVERHEAD_TOKENS * max(0, messages - sent_messages), chars

    def room(self, context: int) -> budget.Budget:
        """The next round's budget after a prompt of ``context`` tokens."""
        return budget.round_budget(
            self.spec, context_tokens=context, produced_tokens=self.produced, window=self.window
        )

    def account(self, rnd: Round, plan: Plan, got: Got, *, generated: int, ok: bool) -> None:
        """Book round ``rnd`` (``generated`` characters; ``ok``: it ended with a finish_reason)."""
        if plan.window:  # named by an overflow error: the server knows best
            self.window = min(self.window or plan.window, plan.window)
        rnd.max_tokens = plan.max_tokens  # what was sent last (an overflow may have lowered it)
        usage = got.usage
        if usage is not None and (usage.completion_tokens or usage.prompt_tokens):
            why = budget.implausible_usage(
                usage,
                max_tokens=plan.max_tokens,
                generated_chars=generated,
                sent_chars=plan.sent_chars,
                window=self.window,
            )
            if why:
                usage = None
                rnd.seam_flags.append(
                    {
                        "kind": "usage_ignored",
                        "message": "the server's token counts cannot be true ("
                        + "; ".join(why)
                        + "); Continuum estimated them instead",
                    }
                )
        if usage is not None and (usage.completion_tokens or usage.prompt_tokens):
            rnd.completion_tokens = usage.completion_tokens
            rnd.cached_tokens = usage.cached_tokens
            rnd.reasoning_tokens = usage.reasoning_tokens
            self.calib.observe(usage.completion_tokens, generated, from_server=True)
            rnd.prompt_tokens = usage.prompt_tokens or plan.prompt_estimate
            rnd.prompt_estimated = not usage.prompt_tokens
        else:
            self.calib.observe(got.chunks, generated, from_server=False)
            rnd.completion_tokens = budget.estimate_completion(generated, got.chunks, self.calib)
            rnd.completion_estimated = True
            billed = got.chunks > 0 or ok
            rnd.prompt_tokens = plan.prompt_estimate if billed else 0
            rnd.prompt_estimated = billed
        prices = self.spec.prices
        rnd.cost = budget.round_cost(prices, rnd.prompt_tokens, rnd.completion_tokens, rnd.cached_tokens)
        self.produced += rnd.completion_tokens
        self.spent += rnd.cost or 0.0
        if rnd.prompt_tokens:
            messages = budget.sent_size(plan.body)[1]
            self.prev = (plan.sent_chars, messages, rnd.prompt_tokens, rnd.completion_tokens, generated)
