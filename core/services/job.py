"""One run in a worker thread: engine events folded into state a page reads as snapshots.

A :class:`Job` is made by :class:`core.services.jobs.JobManager`. Its worker thread
consumes a runner (:func:`core.continuation.engine.run`, or one that also records) and
folds every event into state guarded by one lock; :meth:`Job.snapshot` is an immutable
copy of that state (:class:`~core.services.snapshot.Snapshot`):

- ``rounds``: the finished rounds (copies, never mutated afterwards),
- ``live``: the round being streamed (its text so far, joined once per snapshot),
- ``version``: bumped by every event, so a poller can tell whether anything changed,
- ``status``, ``stop_reason``, ``error`` (an :class:`~core.types.ErrorInfo`),
  notices, the last retry message, and the :class:`~core.services.snapshot.Gauge` numbers.

A resumed run's edits (:attr:`Job.edits`) come with it: the answer shown is the last
edit's text followed by the rounds after it. Stopping is :meth:`Job.stop`: it cancels
the run's :class:`~core.types.CancelToken`, which also aborts the HTTP stream in flight.
Nothing here imports Streamlit, and the API key only lives in the worker's frame.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from core.services.snapshot import Gauge, JobStatus, LiveRound, Snapshot, gauge_for
from core.types import (
    CancelToken,
    Delta,
    Edit,
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
from core.wire.redaction import redact

if TYPE_CHECKING:
    from core.continuation.validation import Checked
    from core.wire.client import Timeouts

log = logging.getLogger(__name__)

__all__ = ["Job", "Runner"]

Runner = Callable[..., Iterator[Event]]


@dataclasses.dataclass
class _Live:
    """The round being streamed, as the worker accumulates it (parts, never a rebuilt string)."""

    index: int
    max_tokens: int
    strategy: str
    recovery: bool = False
    text: list[str] = dataclasses.field(default_factory=list)
    reasoning: list[str] = dataclasses.field(default_factory=list)
    chunks: int = 0
    started: float = dataclasses.field(default_factory=time.monotonic)
    first_token_at: float | None = None

    @staticmethod
    def joined(parts: list[str]) -> str:
        if len(parts) > 1:  # compact once per snapshot, never per delta
            parts[:] = ["".join(parts)]
        return parts[0] if parts else ""

    def view(self) -> LiveRound:
        return LiveRound(
            index=self.index,
            max_tokens=self.max_tokens,
            strategy=self.strategy,
            text=self.joined(self.text),
            reasoning=self.joined(self.reasoning),
            chunks=self.chunks,
            started=self.started,
            first_token_at=self.first_token_at,
            recovery=self.recovery,
        )


class Job:
    """One run in a worker thread. Create through :meth:`JobManager.start`."""

    def __init__(self, job_id: str, spec: RunSpec, *, resume: RunResult | None = None) -> None:
        self.id = job_id
        self.spec = spec
        self.created_at = time.time()
        self.cancel_token = CancelToken()
        self._cond = threading.Condition()
        self._version = 0
        self._status: JobStatus = "running"
        self._rounds: list[Round] = [dataclasses.replace(r) for r in resume.rounds] if resume else []
        self._live: _Live | None = None
        self._stop_reason: str | None = None
        self._error: ErrorInfo | None = None
        self._notices: list[str] = []
        self._retrying: str | None = None
        self._result: RunResult | None = None
        self._started_mono = time.monotonic()
        self._finished_mono: float | None = None
        self._thread: threading.Thread | None = None
        self.finished_at: float | None = None
        self.timeouts: Timeouts | None = None  # what the run's client uses (None: the defaults)
        # what the run carries over from ``resume``: the user's edits, its place in the history
        self.edits: tuple[Edit, ...] = tuple(resume.edits) if resume else ()
        self.run_id = resume.run_id if resume else None  # a new run's id comes with its result
        self.thread_id = resume.thread_id if resume else None
        self.parent_id = resume.parent_id if resume else None

    @property
    def edited_text(self) -> str:
        """The answer as the last edit left it ("" without edits): the rounds after it follow."""
        return self.edits[-1].text if self.edits else ""

    def result(self) -> RunResult:
        """The run as a RunResult: the finished one once done, else its edits and rounds so far."""
        with self._cond:
            if self._result is not None:
                return self._result
            return self._result_locked()

    def _result_locked(self) -> RunResult:
        return RunResult(
            spec=self.spec,
            rounds=list(self._rounds),
            started_at=self.created_at,
            run_id=self.run_id,
            edits=list(self.edits),
            thread_id=self.thread_id,
            parent_id=self.parent_id,
        )

    # ------------------------------------------------------------ control

    def stop(self) -> None:
        """Cancel the run; the worker records ``cancelled`` and keeps the text so far."""
        with self._cond:
            if self._status == "running":
                self._status = "stopping"
                self._bump()
        self.cancel_token.cancel()

    @property
    def done(self) -> bool:
        return self._status == "done"

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker to end; True if it has."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.done

    # ------------------------------------------------------------ reading

    @property
    def version(self) -> int:
        return self._version

    def wait(self, version: int, timeout: float) -> Snapshot:
        """Block until the job changed past ``version`` (or ended, or ``timeout``); then snapshot."""
        with self._cond:
            if self._version <= version and self._status != "done":
                self._cond.wait_for(lambda: self._version > version or self._status == "done", timeout)
            return self._snapshot_locked()

    def snapshot(self) -> Snapshot:
        with self._cond:
            return self._snapshot_locked()

    def _snapshot_locked(self) -> Snapshot:
        live = self._live.view() if self._live is not None else None
        end = self._finished_mono if self._finished_mono is not None else time.monotonic()
        return Snapshot(
            job_id=self.id,
            version=self._version,
            status=self._status,
            spec=self.spec,
            rounds=tuple(self._rounds),
            live=live,
            stop_reason=self._stop_reason,
            error=self._error,
            notices=tuple(self._notices),
            retrying=self._retrying,
            started_at=self.created_at,
            elapsed_s=end - self._started_mono,
            gauge=self._gauge_locked(live),
            result=self._result,
            edits=self.edits,
        )

    def _gauge_locked(self, live: LiveRound | None) -> Gauge:
        return gauge_for(self.spec, self._rounds, live, self.edits)

    # ------------------------------------------------------------ the worker

    def _bump(self) -> None:
        self._version += 1
        self._cond.notify_all()

    def _run(
        self,
        runner: Runner,
        api_key: str | None,
        resume: RunResult | None,
        timeouts: Timeouts | None = None,
        checked: Checked | None = None,
    ) -> None:
        saw_finish = False
        extra: dict[str, Any] = {"timeouts": timeouts} if timeouts is not None else {}
        if checked is not None:  # the manager validated the spec: the engine need not again
            extra["checked"] = checked
        try:
            events = runner(self.spec, api_key=api_key, cancel=self.cancel_token, resume=resume, **extra)
            try:
                for event in events:
                    self._fold(event)
                    if isinstance(event, RunFinished):
                        saw_finish = True
            finally:
                close = getattr(events, "close", None)
                if close is not None:
                    close()
        except Exception as exc:
            log.exception("run %s failed outside the engine", self.id)
            self._finish_with(_error_info(exc, api_key))
            return
        if not saw_finish:
            self._finish_with(
                ErrorInfo(
                    kind="InternalError",
                    message="The run ended without reporting why; the text so far is kept.",
                )
            )

    def _finish_with(self, error: ErrorInfo) -> None:
        with self._cond:
            if self._status == "done":
                return
            if self._live is not None:
                self._seal_live_locked(error=error.message)
            result = self._result_locked()
            cancelled = self.cancel_token.cancelled and error.kind == "CancelledError"
            result.stop_reason = "cancelled" if cancelled else "error"
            result.error = None if cancelled else error
            result.finished_at = time.time()
            self._done_locked(result)

    def _seal_live_locked(self, error: str | None = None) -> None:
        """Turn an interrupted live round into a finished one (text kept)."""
        live = self._live
        assert live is not None
        first = live.first_token_at
        self._rounds.append(
            Round(
                index=live.index,
                strategy=live.strategy,
                max_tokens=live.max_tokens,
                text="".join(live.text),
                reasoning="".join(live.reasoning),
                completion_tokens=live.chunks,
                completion_estimated=True,
                prompt_estimated=True,
                ttft_s=None if first is None else first - live.started,
                duration_s=time.monotonic() - live.started,
                error=error,
            )
        )
        self._live = None

    def _done_locked(self, result: RunResult) -> None:
        self._result = result
        self._rounds = [dataclasses.replace(r) for r in result.rounds]
        self._stop_reason = result.stop_reason
        self._error = result.error
        self._status = "done"
        self._live = None
        self._retrying = None
        self._finished_mono = time.monotonic()
        self.finished_at = time.time()
        self._bump()

    def _fold(self, event: Event) -> None:
        with self._cond:
            if isinstance(event, Delta):
                live = self._live
                if live is None:  # a delta outside a round: fold it into a fresh one
                    index = event.round_index or len(self._rounds) + 1
                    live = self._live = _Live(index, 0, self.spec.strategy)
                (live.reasoning if event.kind == "reasoning" else live.text).append(event.text)
                live.chunks += 1
                if live.first_token_at is None:
                    live.first_token_at = time.monotonic()
                self._retrying = None
            elif isinstance(event, RoundStarted):
                if event.held_back:
                    self._trim_answer_locked(event.held_back)
                strategy = event.strategy or self.spec.strategy
                self._live = _Live(event.index, event.max_tokens, strategy, event.recovery)
                self._retrying = None
            elif isinstance(event, RoundFinished):
                self._rounds.append(dataclasses.replace(event.round))
                self._live = None
            elif isinstance(event, Retrying):
                self._retrying = f"{event.reason} — retrying in {event.wait:.1f} s (attempt {event.attempt})"
                if self._live is not None:  # the request starts over: drop its partial text
                    live = self._live
                    live.text.clear()
                    live.reasoning.clear()
                    live.chunks, live.first_token_at = 0, None
            elif isinstance(event, Notice):
                self._notices.append(event.message)
            elif isinstance(event, RunStarted):
                pass
            elif isinstance(event, RunFinished):
                result = event.result
                if result.stop_reason is None:
                    result.stop_reason = event.stop_reason
                if result.error is None and event.error is not None:
                    result.error = event.error
                if result.finished_at is None:
                    result.finished_at = time.time()
                self._done_locked(result)
                return
            self._bump()

    def _trim_answer_locked(self, chars: int) -> None:
        """Drop ``chars`` characters from the end of the answer (the engine held them back)."""
        index = len(self._rounds) - 1
        while chars > 0 and index >= 0:
            r = self._rounds[index]
            cut = min(chars, len(r.text))
            if cut:
                self._rounds[index] = dataclasses.replace(
                    r, text=r.text[: len(r.text) - cut], held_back=r.text[len(r.text) - cut :] + r.held_back
                )
            chars -= cut
            index -= 1


def _error_info(exc: BaseException, api_key: str | None) -> ErrorInfo:
    to_info = getattr(exc, "to_info", None)
    if callable(to_info):
        info = to_info()
        if isinstance(info, ErrorInfo):
            return info
    message = str(exc)
    message = redact(message, api_key)
    return ErrorInfo(
        kind="InternalError",
        message=f"The run stopped on an unexpected error ({type(exc).__name__}: {message}). "
        "The text so far is kept; please report this.",
    )
