"""The continuation loop. DESIGN §2.

:func:`run` turns a :class:`~core.types.RunSpec` into events::

    RunStarted
    (RoundStarted  Delta*  (Retrying | Notice)*  RoundFinished)*
    RunFinished            exactly once, also on error or cancel

Each round sends the conversation plus the answer so far (built by the
strategy, :mod:`core.continuation.strategies`), streams the reply, and the engine decides:
continue only when the round was truncated (``TRUNCATED_FINISH_REASONS``), or
when the stream broke off (a *recovery* round continues from the text kept).
Budget and token accounting live in :mod:`core.continuation.budget`, seams in
:mod:`core.continuation.seams`, one round's streaming in :mod:`core.continuation.rounds`.

The engine never raises a ContinuumError out of the generator: it records an
:class:`~core.types.ErrorInfo` and stops with ``"error"``. Closing the
generator early closes the HTTP stream.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Generator, Iterator
from typing import Any

from core.continuation import budget, seams
from core.continuation.probe import self_consistency
from core.continuation.reasoning import ThinkSplitter
from core.continuation.rounds import Outcome, Plan, RetryPolicy, RoundStreamer
from core.continuation.strategies import Think, get_strategy, prefill_text
from core.types import (
    TRUNCATED_FINISH_REASONS,
    CancelToken,
    ErrorInfo,
    Event,
    Notice,
    Retrying,
    Round,
    RoundFinished,
    RoundStarted,
    RunFinished,
    RunResult,
    RunSpec,
    RunStarted,
)
from core.wire.client import Client, Timeouts
from core.wire.errors import (
    ConfigError,
    ContinuumError,
    PrefillIgnoredError,
    RateLimitError,
    ServerError,
    sentence,
)
from core.wire.redaction import KEY_PLACEHOLDER

__all__ = ["RetryPolicy", "run"]

VERIFY_TOKENS = 24  # per request of a seam check

REASONING_BUDGET_NOTICE = "reasoning used the whole round budget; raise max tokens per round"
UNKNOWN_FINISH_NOTICE = (
    "the server ended the round without a finish reason; treating the answer as finished "
    "(resume the run if it looks cut off)"
)


def run(
    spec: RunSpec,
    *,
    api_key: str | None = None,
    cancel: CancelToken | None = None,
    resume: RunResult | None = None,
    client: Client | None = None,
    timeouts: Timeouts | None = None,
    retry: RetryPolicy | None = None,
) -> Iterator[Event]:
    """Run (or resume) a continuation run, yielding events. See the module docstring.

    ``client``: an existing client to use (not closed here); else one is made
    from ``spec.base_url`` and ``api_key`` and closed at the end. ``retry``:
    waits and limits for retries (tests pass tiny waits).
    """
    runner = _Runner(spec, api_key, cancel or CancelToken(), resume, client, timeouts, retry or RetryPolicy())
    try:
        yield from runner.events()
    finally:
        runner.close()


def final_info(exc: ContinuumError, attempts: int) -> ErrorInfo:
    """``exc`` as the run's last word: a hint that promised a retry now says the run has stopped."""
    info = exc.to_info()
    if exc.retryable:
        tried = f"Continuum gave up after {attempts} attempts" if attempts > 1 else "The run stopped"
        info.message = (
            f"{sentence(exc.message)} {tried}; the text generated so far is kept: resume the run to "
            "continue from it once the server is well."
        )
    return info


class _Runner:
    def __init__(
        self,
        spec: RunSpec,
        api_key: str | None,
        cancel: CancelToken,
        resume: RunResult | None,
        client: Client | None,
        timeouts: Timeouts | None,
        retry: RetryPolicy,
    ) -> None:
        self.spec = spec
        self.api_key = api_key
        self.cancel = cancel
        self.policy = retry
        self.timeouts = timeouts
        self.client = client
        self._own_client = client is None
        if resume is not None:
            resume.spec = spec
            resume.stop_reason = None
            resume.error = None
            resume.finished_at = None
            self.result = resume
        else:
            self.result = RunResult(spec=spec)
        self.resumed = len(self.result.rounds)
        self.window = spec.context_window
        self.calib = budget.Calibration.from_rounds(self.result.rounds)
        self.fences = seams.FenceTracker()
        self.reasoning_parts = [r.reasoning for r in self.result.rounds]
        self.think: Think = None  # <think> reasoning in content while the answer is empty
        # the last request: (chars, messages, prompt tokens, completion tokens, generated chars)
        self.prev: tuple[int, int, int, int, int] | None = None
        last = self.result.rounds[-1] if self.result.rounds else None
        self.recovery_next = bool(last and last.error and last.finish_reason is None)
        self.recoveries = 0
        self.failures = 0  # rounds in a row that the server ended with an error after text
        self.no_progress = 0
        self.told_reasoning = False
        self.seam_checked = bool(self.resumed)  # the first seam at temperature 0 is checked once
        self.told: set[str] = set()  # kinds of seam flag already told as a Notice
        self.error: ErrorInfo | None = None
        self.produced = self.result.completion_tokens  # running totals, not re-summed per round
        self.spent = self.result.cost or 0.0

    def close(self) -> None:
        if self._own_client and self.client is not None:
            self.client.close()

    # ------------------------------------------------------------ top level

    def events(self) -> Iterator[Event]:
        yield RunStarted(self.spec, resumed_rounds=self.resumed)
        try:
            self.strategy = get_strategy(self.spec.strategy)
            if self.client is None:
                self.client = Client(self.spec.base_url, self.api_key, timeouts=self.timeouts)
            self.streamer = RoundStreamer(self.client, self.cancel, self.policy, self.spec)
            stop = yield from self._loop()
        except ContinuumError as exc:
            stop, self.error = "error", exc.to_info()
        except Exception as exc:  # noqa: BLE001 - a bug must still end the run with a readable error
            stop = "error"
            self.error = ErrorInfo(kind=type(exc).__name__, message=f"Internal error in the engine: {exc}")
        self._restore_held()
        result = self.result
        result.stop_reason = stop
        result.error = self.error
        result.finished_at = time.time()
        yield RunFinished(stop, result, self.error)

    def _loop(self) -> Generator[Event, None, str]:
        while True:
            stop = self._limit_reached()
            if stop:
                return stop
            plan = self._plan_round()
            if isinstance(plan, str):
                return plan
            rnd = Round(
                index=len(self.result.rounds) + 1,
                strategy=self.strategy.name,
                max_tokens=plan.max_tokens,
                recovery=self.recovery_next,
                started_at=time.time(),
            )
            yield RoundStarted(rnd.index, plan.max_tokens, rnd.strategy, plan.held, rnd.recovery)
            outcome = yield from self.streamer.stream(rnd, plan)
            self._close_round(rnd, plan, outcome)
            yield from self._verify_seam(rnd, plan, outcome)
            yield RoundFinished(rnd)
            stop = yield from self._after_round(rnd, plan, outcome)
            if stop:
                return stop

    # ------------------------------------------------------------ before a round

    def _limit_reached(self) -> str | None:
        spec, result = self.spec, self.result
        if self.cancel.cancelled:
            return "cancelled"
        if len(result.rounds) >= spec.max_rounds:
            return "max_rounds"
        if spec.target_tokens and self.produced >= spec.target_tokens:
            return "target_reached"
        if spec.cost_limit is not None and self.spent >= spec.cost_limit:
            return "cost_limit"
        return None

    def _context_tokens(self, body: dict[str, Any]) -> tuple[int, int]:
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

    def _plan_round(self) -> Plan | str:
        """The next request, or a stop reason when none should be sent."""
        spec, rounds = self.spec, self.result.rounds
        if spec.max_tokens < 1:
            raise ConfigError(f"max_tokens per round is {spec.max_tokens}.", "Set it to at least 1.")
        full = self.result.text
        reasoning = "".join(self.reasoning_parts) if not full else ""
        think = self.think if not full else None
        body = self.strategy.build(spec, full, reasoning, think=think)[1]
        context, chars = self._context_tokens(body)
        room = budget.round_budget(
            spec, context_tokens=context, produced_tokens=self.produced, window=self.window
        )
        if room.exhausted:
            return "context_exhausted"
        last = rounds[-1] if rounds else None
        verify = (  # the first seam at temperature 0: hold back whole words and check they come back
            not self.seam_checked
            and spec.temperature == 0
            and last is not None
            and last.finish_reason in TRUNCATED_FINISH_REASONS
            and self.strategy.holds_back
        )
        held = 0
        if last and last.text and self.strategy.holds_back:
            hold = seams.hold_back_to_verify if verify else seams.hold_back
            held = hold(last.text, room.max_tokens)
        verify = verify and held > 0
        answer = full[: len(full) - held]
        endpoint, body = self.strategy.build(spec, answer, reasoning, think=think)
        if held:
            context, chars = self._context_tokens(body)
            room = budget.round_budget(
                spec, context_tokens=context, produced_tokens=self.produced, window=self.window
            )
        body["max_tokens"] = room.max_tokens
        spent = self.spent + budget.prompt_cost(spec.prices, context)
        if spec.cost_limit is not None and spec.prices is not None and spent > spec.cost_limit:
            return "cost_limit"
        held_text = ""
        if verify:
            self.seam_checked = True
        if held and last is not None:  # committed: the previous round gives its tail back
            held_text = last.text[-held:]
            last.held_back = held_text + last.held_back
            last.text = last.text[:-held]
        prefill = prefill_text(answer, reasoning, think)
        splitter = None
        if not answer:
            splitter = ThinkSplitter(inside=think == "open", closed=think == "closed", empty=not reasoning)
        return Plan(
            endpoint=endpoint,
            body=body,
            held=held,
            answer=answer,
            prefill=prefill,
            prompt_estimate=context,
            sent_chars=chars,
            held_text=held_text,
            verify=verify,
            reply_filter=self.strategy.reply_filter(prefill),
            splitter=splitter,
        )

    # ------------------------------------------------------------ after a round

    def _close_round(self, rnd: Round, plan: Plan, outcome: Outcome) -> None:
        spec, got = self.spec, outcome.got
        if plan.window:  # named by an overflow error: the server knows best
            self.window = min(self.window or plan.window, plan.window)
        content = "".join(got.content)
        reasoning = "".join(got.reasoning)
        cut = outcome.kind == "broken" or (got.finish_reason or "") in TRUNCATED_FINISH_REASONS
        if cut and not plan.answer and not content:
            reasoning = reasoning.rstrip()  # the next round's prefill must not end in whitespace
        if got.think is not None:
            self.think = got.think
        rnd.text = content
        rnd.reasoning = reasoning if spec.reasoning == "separate" else ""
        self.reasoning_parts.append(reasoning)
        rnd.finish_reason = got.finish_reason
        error = outcome.error
        if error is not None and outcome.kind != "cancelled":
            # the round's record says what happened; what the run did next is in its events
            if outcome.kind in ("broken", "failed"):
                rnd.error = sentence(error.message)
            elif outcome.kind == "error":
                rnd.error = final_info(error, rnd.retries + 1).message
            else:
                rnd.error = str(error)
        rnd.max_tokens = plan.max_tokens  # what was sent last (an overflow may have lowered it)
        generated = len(content) + len(reasoning)
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
            billed = got.chunks > 0 or outcome.kind == "ok"
            rnd.prompt_tokens = plan.prompt_estimate if billed else 0
            rnd.prompt_estimated = billed
        rnd.cost = budget.round_cost(spec.prices, rnd.prompt_tokens, rnd.completion_tokens, rnd.cached_tokens)
        self.produced += rnd.completion_tokens
        self.spent += rnd.cost or 0.0
        if rnd.prompt_tokens:
            messages = budget.sent_size(plan.body)[1]
            self.prev = (plan.sent_chars, messages, rnd.prompt_tokens, rnd.completion_tokens, generated)
        if got.redacted:
            rnd.seam_flags.append(
                {
                    "kind": "key_redacted",
                    "message": f"the server echoed the API key inside the text ({got.redacted}×); "
                    f"replaced by {KEY_PLACEHOLDER} before anything was shown or saved",
                    "count": got.redacted,
                }
            )
        if plan.answer and content:
            self._check_seam(rnd, plan, content)
        elif not plan.answer and plan.prefill and reasoning:
            self._check_reasoning_seam(rnd, plan, reasoning)
        self.result.rounds.append(rnd)

    def _check_seam(self, rnd: Round, plan: Plan, content: str) -> None:
        answer, flags = plan.answer, rnd.seam_flags
        dropped = plan.reply_filter.dropped if plan.reply_filter is not None else ""
        restart = seams.check_restart(answer, content)
        if restart is not None:
            restart["discarded_chars"] = len(content)
            flags.append(restart)
            rnd.text = ""
            return
        check_tail = seams.check_rewritten if plan.verify else seams.check_held_back
        dropped_tail = check_tail(plan.held_text, content, rnd.index - 1)
        if dropped_tail is not None:
            flags.append(dropped_tail)
        if dropped and self.strategy.name == "instruction":
            flags.append(
                {
                    "kind": "overlap",
                    "message": f"removed {len(dropped)} repeated characters at the start of the round",
                    "chars": len(dropped),
                    "removed": True,
                    "excerpt": dropped[:80],
                }
            )
        else:
            overlap = seams.check_overlap(answer, content)
            if overlap is not None:
                flags.append(overlap)
        flags.extend(seams.check_structure(answer, self.fences))
        tail = answer[-seams.LOOP_WINDOW :]
        loop = seams.check_repetition(tail + content) or seams.check_repeated_round(tail, content)
        if loop is not None:
            flags.append(loop)

    def _verify_seam(self, rnd: Round, plan: Plan, outcome: Outcome) -> Generator[Event]:
        """A round that did not write the held-back tail again may be a new turn: check it.

        Two short requests at temperature 0 from the answer before the round (DESIGN §6: a server
        that continues is self-consistent, :func:`core.continuation.probe.judge`). A new turn's text is
        discarded and flagged ``restart``; the run then stops with PrefillIgnoredError.
        """
        dropped = next((f for f in rnd.seam_flags if f["kind"] == "dropped"), None)
        if dropped is None or not rnd.text or outcome.kind == "cancelled" or self.cancel.cancelled:
            return
        yield Notice(
            f"round {rnd.index} did not write again the end of round {rnd.index - 1}; checking with two "
            "short requests at temperature 0 that the server continues the text sent",
            rnd.index,
        )
        verdict = self._self_consistent(plan)
        dropped["verified"] = verdict
        if verdict == "ignored":
            rnd.seam_flags.append(
                {
                    "kind": "restart",
                    "message": "the new round did not continue the text sent: at temperature 0 the server "
                    "is not self-consistent across a seam, so it starts a new turn",
                    "structural": True,
                    "discarded_chars": len(rnd.text),
                    "excerpt": rnd.text[:80],
                }
            )
            rnd.text = ""

    def _self_consistent(self, plan: Plan) -> str:
        """The probe's verdict for this run's own conversation at this seam ("unclear" on any error)."""
        room = budget.round_budget(
            self.spec, context_tokens=plan.prompt_estimate, produced_tokens=0, window=self.window
        )
        if room.max_tokens < 2 * VERIFY_TOKENS or self.client is None:
            return "unclear"
        spec = dataclasses.replace(self.spec, temperature=0.0, seed=0, max_tokens=VERIFY_TOKENS)
        try:
            return self_consistency(self.client, self.strategy, spec, plan.answer, self.cancel).verdict
        except ContinuumError:
            return "unclear"

    def _check_reasoning_seam(self, rnd: Round, plan: Plan, reasoning: str) -> None:
        """A round continuing the reasoning: does it restart or loop?"""
        before = "".join(self.reasoning_parts[:-1])
        flag = seams.check_restart(before, reasoning) or seams.check_repetition(
            before[-seams.LOOP_WINDOW :] + reasoning
        )
        if flag is not None:
            flag["in_reasoning"] = True
            rnd.seam_flags.append(flag)

    def _after_round(self, rnd: Round, plan: Plan, outcome: Outcome) -> Generator[Event, None, str | None]:
        kind = outcome.kind
        if kind == "cancelled":
            return "cancelled"
        if kind == "exhausted":
            if not self.result.text and not "".join(self.reasoning_parts) and outcome.error is not None:
                self.error = outcome.error.to_info()  # not even the first round fits: say why
                return "error"
            return "context_exhausted"
        if kind == "error":
            self.error = final_info(outcome.error, rnd.retries + 1) if outcome.error else None
            return "error"
        for flag in rnd.seam_flags:  # once a run for each kind; every round keeps its flag
            if flag["kind"] in ("key_redacted", "usage_ignored", "dropped") and flag["kind"] not in self.told:
                self.told.add(flag["kind"])
                yield Notice(flag["message"], rnd.index)
        if kind == "failed":
            stop = yield from self._back_off(rnd, outcome)
            if stop:
                return stop
        else:
            self.failures = 0
        for flag in rnd.seam_flags:
            if flag["kind"] == "restart" and kind != "failed":
                self.error = PrefillIgnoredError(
                    f"Round {rnd.index} started a new answer instead of continuing the text sent "
                    f"({flag.get('discarded_chars', 0)} characters discarded): the server ignores the "
                    f"prefill with the {self.strategy.name} strategy.",
                    "The text so far is kept. Probe the server (Settings → Probe continuation, or "
                    "python -m core probe) and resume with a strategy that continues there.",
                ).to_info()
                yield Notice(flag["message"], rnd.index)
                return "error"
            if flag["kind"] == "repetition":
                yield Notice(flag["message"], rnd.index)
                return "repetition"
        if kind == "failed":
            self.recovery_next = True
            return None
        added = len(rnd.text) + len(self.reasoning_parts[-1]) - plan.held
        if kind != "broken":  # a broken stream says nothing about the model: max_recoveries bounds those
            self.no_progress = self.no_progress + 1 if added <= 0 else 0
        if self.no_progress >= 2:
            return "no_progress"
        if kind == "broken":
            # broken rounds that add text converge (a slow model under the round ceiling, a
            # proxy that drops long streams); only those in a row that add nothing end the run
            self.recoveries = self.recoveries + 1 if added <= 0 else 0
            self.recovery_next = True
            if self.recoveries > self.policy.max_recoveries:
                self.error = final_info(outcome.error, self.recoveries) if outcome.error else None
                return "error"
            return None
        self.recoveries = 0
        self.recovery_next = False
        finish = rnd.finish_reason
        if finish in TRUNCATED_FINISH_REASONS:
            if not plan.answer and not rnd.text and self.reasoning_parts[-1] and not self.told_reasoning:
                self.told_reasoning = True
                yield Notice(REASONING_BUDGET_NOTICE, rnd.index)
            return None
        if not finish:
            yield Notice(UNKNOWN_FINISH_NOTICE, rnd.index)
        return "finished"

    def _back_off(self, rnd: Round, outcome: Outcome) -> Generator[Event, None, str | None]:
        """The server ended a round with an error after some text: wait like for a 5xx, then continue.

        Rounds failing in a row share the retry budget (``RetryPolicy.max_attempts``); the text
        they kept is checked at its seam like any other (a restart is discarded).
        """
        exc = outcome.error
        self.failures += 1
        if self.failures >= self.policy.max_attempts or exc is None:
            self.error = final_info(exc, self.failures) if exc else None
            return "error"
        retry_after = exc.retry_after if isinstance(exc, RateLimitError | ServerError) else None
        wait = self.policy.wait(self.failures, retry_after, self.streamer.rng)
        yield Retrying(exc.message, wait, self.failures + 1, rnd.index)
        if self.cancel.wait(wait):
            return "cancelled"
        return None

    def _restore_held(self) -> None:
        """Give the held-back tail back when the round after it did not regenerate it."""
        rounds = self.result.rounds
        if len(rounds) < 2 or not rounds[-2].held_back:
            return
        prev, last = rounds[-2], rounds[-1]
        if prev.held_back.startswith(last.text):
            prev.text += prev.held_back
            prev.held_back = ""
            last.text = ""
