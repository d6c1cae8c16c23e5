"""The continuation loop. DESIGN §2.

:func:`run` turns a :class:`~core.types.RunSpec` into events::

    RunStarted
    (RoundStarted  Delta*  (Retrying | Notice)*  RoundFinished)*
    RunFinished            exactly once, also on error or cancel

Each round sends the conversation plus the answer so far (built by the
strategy, :mod:`core.continuation.strategies`), streams the reply, and the engine decides:
continue only when the round was truncated (``TRUNCATED_FINISH_REASONS``), or
when the stream broke off (a *recovery* round continues from the text kept).
The next request is planned in :mod:`core.continuation.planning`; tokens and cost
are booked in :mod:`core.continuation.ledger` (estimates in :mod:`core.continuation.budget`);
one round's requests and retries are :mod:`core.continuation.rounds`, its deltas
become events in :mod:`core.continuation.reader`; seams are checked in
:mod:`core.continuation.seamcheck` (the text checks are :mod:`core.continuation.seams`).

Per chunk the engine costs one Delta: the events of one network read travel up
the generators as one list, and :func:`run` hands them out one by one.

The engine never raises a ContinuumError out of the generator: it records an
:class:`~core.types.ErrorInfo` and stops with ``"error"``. Closing the
generator early closes the HTTP stream.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator

from core.continuation import seamcheck, seams
from core.continuation.ledger import Ledger
from core.continuation.planning import plan_round
from core.continuation.rounds import Outcome, Plan, RetryPolicy, RoundStreamer, Step
from core.continuation.strategies import Think, get_strategy
from core.continuation.validation import Checked, validate_spec
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
    ContinuumError,
    PrefillIgnoredError,
    RateLimitError,
    ServerError,
    sentence,
)
from core.wire.redaction import KEY_PLACEHOLDER

__all__ = ["RetryPolicy", "run"]

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
    checked: Checked | None = None,
) -> Iterator[Event]:
    """Run (or resume) a continuation run, yielding events. See the module docstring.

    ``client``: an existing client to use (not closed here); else one is made
    from ``spec.base_url`` and ``api_key`` and closed at the end. ``retry``:
    waits and limits for retries (tests pass tiny waits). The spec is validated before the first request
    (a refused one ends the run with ``"error"``), unless ``checked`` is a front end's proof it was.
    """
    runner = _Runner(spec, api_key, cancel or CancelToken(), resume, client, timeouts, retry or RetryPolicy())
    steps = runner.events(checked)
    try:
        for step in steps:  # the Delta events of one network read come as one list: hand them out
            if isinstance(step, list):
                yield from step
            else:
                yield step
    finally:
        steps.close()  # closes the HTTP stream of a run stopped early
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
        self.ledger = Ledger(spec, self.result)
        self.fences = seams.FenceTracker()
        self.reasoning_parts = [r.reasoning for r in self.result.rounds]
        self.think: Think = None  # <think> reasoning in content while the answer is empty
        last = self.result.rounds[-1] if self.result.rounds else None
        self.recovery_next = bool(last and last.error and last.finish_reason is None)
        self.recoveries = 0
        self.failures = 0  # rounds in a row that the server ended with an error after text
        self.no_progress = 0
        self.told_reasoning = False
        self.seam_checked = bool(self.resumed)  # the first seam at temperature 0 is checked once
        self.told: set[str] = set()  # kinds of seam flag already told as a Notice
        self.error: ErrorInfo | None = None

    def close(self) -> None:
        if self._own_client and self.client is not None:
            self.client.close()

    # ------------------------------------------------------------ top level

    def events(self, checked: Checked | None = None) -> Generator[Step, None, None]:
        yield RunStarted(self.spec, resumed_rounds=self.resumed)
        try:
            validate_spec(self.spec, checked)  # before anything is sent; once, given a front end's proof
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

    def _loop(self) -> Generator[Step, None, str]:
        while True:
            stop = self._limit_reached() or (yield from self._round())
            if stop:
                return stop

    def _round(self) -> Generator[Step, None, str | None]:
        """One round, planned, streamed and judged: a stop reason, or None to go on.

        A round of its own frame, so nothing of it (the plan, whose body holds the answer so
        far as sent) is alive while the next round is planned: a run holds one answer at a time.
        """
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
        return (yield from self._after_round(rnd, plan, outcome))

    # ------------------------------------------------------------ before a round

    def _limit_reached(self) -> str | None:
        spec, result = self.spec, self.result
        if self.cancel.cancelled:
            return "cancelled"
        if len(result.rounds) >= spec.max_rounds:
            return "max_rounds"
        if spec.target_tokens and self.ledger.produced >= spec.target_tokens:
            return "target_reached"
        if spec.cost_limit is not None and self.ledger.spent >= spec.cost_limit:
            return "cost_limit"
        return None

    def _plan_round(self) -> Plan | str:
        """The next request, or a stop reason when none should be sent."""
        parts = self.result.text_parts()
        empty = not any(parts)
        plan = plan_round(
            self.spec,
            self.result.rounds,
            self.strategy,
            self.ledger,
            parts=parts,
            reasoning="".join(self.reasoning_parts) if empty else "",
            think=self.think if empty else None,
            check_seam=not self.seam_checked,
        )
        if isinstance(plan, Plan) and plan.verify:
            self.seam_checked = True
        return plan

    # ------------------------------------------------------------ after a round

    def _close_round(self, rnd: Round, plan: Plan, outcome: Outcome) -> None:
        spec, got = self.spec, outcome.got
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
        self.ledger.account(rnd, plan, got, generated=len(content) + len(reasoning), ok=outcome.kind == "ok")
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
            seamcheck.check_content(rnd, plan, content, self.strategy.name, self.fences)
        elif not plan.answer and plan.prefill and reasoning:
            seamcheck.check_reasoning(rnd, "".join(self.reasoning_parts[:-1]), reasoning)
        self.result.rounds.append(rnd)

    def _verify_seam(self, rnd: Round, plan: Plan, outcome: Outcome) -> Generator[Event]:
        """A round that did not write the held-back tail again may be a new turn: check it
        (:func:`core.continuation.seamcheck.self_consistent`). A new turn's text is discarded and
        flagged ``restart``; the run then stops with PrefillIgnoredError."""
        dropped = seamcheck.to_verify(rnd)
        if dropped is None or outcome.kind == "cancelled" or self.cancel.cancelled:
            return
        yield Notice(
            f"round {rnd.index} did not write again the end of round {rnd.index - 1}; checking with two "
            "short requests at temperature 0 that the server continues the text sent",
            rnd.index,
        )
        verdict = "unclear"
        if self.client is not None:
            window = self.ledger.window
            verdict = seamcheck.self_consistent(
                self.client, self.strategy, self.spec, plan, window, self.cancel
            )
        seamcheck.judge(rnd, dropped, verdict)

    def _after_round(self, rnd: Round, plan: Plan, outcome: Outcome) -> Generator[Event, None, str | None]:
        kind = outcome.kind
        if kind == "cancelled":
            return "cancelled"
        if kind == "exhausted":
            empty = not any(self.result.text_parts()) and not any(self.reasoning_parts)
            if empty and outcome.error is not None:
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
