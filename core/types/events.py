"""What flows while a run goes: stream deltas (one decoded chunk), the engine's events, and the
:class:`CancelToken` that stops a run from another thread.

The engine (``core.continuation.engine``) turns a :class:`~core.types.RunSpec` into a stream of
:data:`Event` objects; the UI, the command line, the store and the batch runner all consume the
same events. Nothing here does I/O.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from core.types.records import ErrorInfo, Round, RunResult, RunSpec

DeltaKind = Literal["content", "reasoning"]

# ---------------------------------------------------------------- stream level


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass
class StreamDelta:
    """One decoded chunk of a streamed completion, provider differences removed.

    ``reasoning`` holds ``reasoning_content`` / ``reasoning`` fields; ``<think>``
    tags inside ``content`` are split by the engine, not the client.
    """

    content: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


# ---------------------------------------------------------------- engine events


@dataclass
class RunStarted:
    spec: RunSpec
    resumed_rounds: int = 0  # rounds carried over from an earlier run


@dataclass
class RoundStarted:
    index: int
    max_tokens: int
    strategy: str
    held_back: int = 0  # characters removed from the end of the answer so far
    recovery: bool = False


@dataclass
class Delta:
    text: str
    kind: DeltaKind = "content"
    round_index: int = 0


@dataclass
class Retrying:
    reason: str
    wait: float
    attempt: int
    round_index: int = 0


@dataclass
class Notice:
    """Something the user should know that is not an error (reasoning ate the budget…)."""

    message: str
    round_index: int = 0


@dataclass
class RoundFinished:
    round: Round


@dataclass
class RunFinished:
    stop_reason: str
    result: RunResult
    error: ErrorInfo | None = None


Event = RunStarted | RoundStarted | Delta | Retrying | Notice | RoundFinished | RunFinished


class CancelToken:
    """Thread-safe cancel flag that also aborts whatever is blocking the run.

    The engine registers an abort callback (closing the live HTTP stream) while
    a request is in flight, so ``cancel()`` from another thread ends a run
    within milliseconds even while the server sends nothing.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._aborts: list[Callable[[], None]] = []

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        with self._lock:
            self._event.set()
            aborts = list(self._aborts)
        for abort in aborts:
            try:
                abort()
            except Exception:  # noqa: BLE001 - an abort must never raise into the canceller
                pass

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds; True if cancelled meanwhile."""
        return self._event.wait(timeout)

    def register(self, abort: Callable[[], None]) -> Callable[[], None]:
        """Call ``abort`` on cancel (at once if already cancelled); returns an unregister."""
        with self._lock:
            already = self._event.is_set()
            if not already:
                self._aborts.append(abort)
        if already:
            abort()

        def unregister() -> None:
            with self._lock:
                if abort in self._aborts:
                    self._aborts.remove(abort)

        return unregister
