"""Recorder: engine events → rows, as they stream.

    store = Store()
    with Recorder(store) as recorder:                 # or Recorder(store, run_id=result.run_id)
        for event in recorder.record(engine.run(spec, api_key=key)):
            show(event)

What is written when:

- ``RunStarted``: the run row (a new id, or the given id reopened for a resume); for a
  run given as ``resume``, its edits, its thread, and the rounds an edit took the text of.
- ``RoundStarted``: the round's live row.
- ``Delta``: buffered; appended to the live row when ``flush_interval`` (1 s)
  has passed since the last write (only the live row and the run's totals are
  rewritten, never the earlier rounds). ``flush()`` writes the buffer at once;
  ``autoflush=True`` starts a daemon thread that calls it every interval, so a
  stalled stream still saves what arrived. A process killed mid-round loses at
  most the text that arrived since the last flush.
- ``RoundFinished``: the round as the engine assembled it (replacing the live row).
- ``RunFinished``: status, stop reason, error; rounds the engine changed after
  they finished (held back tails, seam flags) are rewritten; ``result.run_id`` set.
- Interpreter exit (a Streamlit server stopped by SIGTERM or Ctrl+C, a script
  that returns while a run streams in a daemon thread): every recorder still
  recording is closed by an ``atexit`` hook, so the buffered text is saved and
  the run is left "interrupted". A process killed outright (SIGKILL, a crash)
  leaves its run "running" with a dead owner: ``Store.mark_interrupted`` finds it.

A database error never breaks the run being recorded: it is logged, kept in
``last_error``, and the buffered text is retried on the next write. A history
that cannot be written at all (:class:`ReadOnlyHistoryError`) is logged once;
the recorder then stops trying (``unsaved``) and the run goes on; so it does when another
process has taken the run over (:class:`RunTakenOver`: a batch worker whose claim went stale).
"""

from __future__ import annotations

import atexit
import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from core.types import (
    Delta,
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

from .db import ReadOnlyHistoryError, RunTakenOver, StoreError
from .owner import claim_run, release_run
from .rows import INTERRUPTED, fingerprint, status_for
from .runs import Store

log = logging.getLogger(__name__)

# Recorders between RunStarted and their end, closed at interpreter exit (close_open_recorders).
_open_lock = threading.Lock()
_open: weakref.WeakSet[Recorder] = weakref.WeakSet()


def close_open_recorders() -> list[str]:
    """Close every recorder of this process still recording (their runs become "interrupted").

    Registered with ``atexit``; returns the run ids closed. The worker threads
    feeding those recorders may go on until the interpreter stops: a closed
    recorder ignores their events.
    """
    with _open_lock:
        recorders = list(_open)
    closed = []
    for recorder in recorders:
        try:
            recorder.close()
        except Exception:  # noqa: BLE001 - exiting: save what can be saved, never raise
            continue
        if recorder.run_id is not None:
            closed.append(recorder.run_id)
    return closed


atexit.register(close_open_recorders)


class Recorder:
    """Consumes engine events (``handle(event)``) and keeps the run in the store.

    ``run_id`` names an existing run to extend (a resume: rounds are appended to
    the same run and its totals recomputed) or an id to create; None creates a
    new run on ``RunStarted``. For a resume pass ``resume=`` the RunResult given
    to ``engine.run(..., resume=result)`` (from ``store.load``): its id is used
    and the engine's later edits to its rounds are saved as they happen.
    Thread-safe: ``flush()`` may come from any thread.
    """

    def __init__(
        self,
        store: Store,
        run_id: str | None = None,
        *,
        resume: RunResult | None = None,
        flush_interval: float = 1.0,
        autoflush: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.run_id = run_id if run_id is not None else (resume.run_id if resume else None)
        self.flush_interval = flush_interval
        self.last_error: Exception | None = None
        self.unsaved = False  # the history turned out read-only: nothing more is tried
        self._clock = clock
        self._lock = threading.RLock()
        self._spec: RunSpec | None = None
        self._started = False
        self._finished = False
        self._claimed = False  # this recorder holds the run (see owner.claim_run)
        self._live: int | None = None  # index of the round being streamed
        self._text: list[str] = []  # streamed, not yet written
        self._reasoning: list[str] = []
        self._last_write = clock()
        self._written: dict[int, tuple[Any, ...]] = {}  # fingerprints of rows as written
        # The Round objects the engine owns (it trims a round's held-back tail later).
        self._rounds: dict[int, Round] = {r.index: r for r in resume.rounds} if resume else {}
        self._resume = resume  # its edits and thread are saved with the run
        self._autoflush = autoflush
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ public

    def handle(self, event: Event) -> None:
        with self._lock:
            if self.unsaved:
                return
            try:
                self._dispatch(event)
            except (ReadOnlyHistoryError, RunTakenOver) as exc:
                self._give_up(exc)
            except (sqlite3.Error, StoreError) as exc:
                self.last_error = exc
                log.warning("could not save run %s to the history: %s", self.run_id, exc)

    __call__ = handle

    def record(self, events: Iterable[Event]) -> Iterator[Event]:
        """Pass ``events`` through, recording each; closes the recorder when they end or are abandoned."""
        try:
            for event in events:
                self.handle(event)
                yield event
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()  # an abandoned engine run closes its HTTP stream
            self.close()

    def flush(self) -> None:
        """Write the buffered text of the live round now (and the heartbeat)."""
        with self._lock:
            if not self._started or self._finished or self.run_id is None or self.unsaved:
                return
            try:
                self._flush()
            except (ReadOnlyHistoryError, RunTakenOver) as exc:
                self._give_up(exc)
            except (sqlite3.Error, StoreError) as exc:
                self.last_error = exc
                log.warning("could not save run %s to the history: %s", self.run_id, exc)

    def close(self) -> None:
        """Flush; a run that never got ``RunFinished`` is left "interrupted" (resumable)."""
        with self._lock:
            if self._started and not self._finished and self.run_id is not None and not self.unsaved:
                self.flush()
                try:
                    self._end_interrupted()
                except (sqlite3.Error, StoreError) as exc:
                    self.last_error = exc
                    log.warning("could not save run %s to the history: %s", self.run_id, exc)
            self._finished = self._finished or self._started
            self._release()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _give_up(self, exc: StoreError) -> None:
        """The history cannot be written at all, or another process took the run over: say so
        once, then let the run go on unsaved."""
        self.unsaved = True
        self.last_error = exc
        log.warning("this run is not saved: %s", exc)
        self._release()

    # ------------------------------------------------------------ events

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._run_started(event)
        elif self._finished or not self._ensure_run():
            return
        elif isinstance(event, Delta):
            (self._reasoning if event.kind == "reasoning" else self._text).append(event.text)
            if self._live is None:
                self._live = event.round_index or len(self._written) + 1
            self._maybe_flush()
        elif isinstance(event, RoundStarted):
            self._round_started(event)
        elif isinstance(event, RoundFinished):
            self._round_finished(event.round)
        elif isinstance(event, Retrying | Notice):
            self._maybe_flush()
        elif isinstance(event, RunFinished):
            self._run_finished(event)

    def _run_started(self, event: RunStarted) -> None:
        self._spec = event.spec
        self._finished = False
        if self.run_id is None:
            self._started = True  # a failed create is retried on the next event
            self.run_id = self.store.create_run(event.spec)
        else:
            self.store.begin_run(self.run_id, event.spec)  # refused: nothing of this run is written
            self._started = True
            for round_ in self.store.stored_rounds(self.run_id):
                self._written[round_.index] = fingerprint(round_)
        self._claim()
        self._save_steering()
        self._last_write = self._clock()
        if self._autoflush and self._thread is None:
            self._thread = threading.Thread(
                target=self._autoflush_loop, name="continuum-recorder", daemon=True
            )
            self._thread.start()

    def _save_steering(self) -> None:
        """The resumed (or seeded) run's edits and thread; the rounds an edit took the text of."""
        resume = self._resume
        if resume is None or self.run_id is None:
            return
        if resume.edits:
            self.store.write_edits(self.run_id, resume.edits)
        if resume.thread_id:
            self.store.join_thread(self.run_id, resume.thread_id, resume.parent_id)
        changed = [r for r in resume.rounds if fingerprint(r) != self._written.get(r.index)]
        if changed:
            self._write(changed)

    def _ensure_run(self) -> bool:
        """After a failed RunStarted write, try again before the next event; False if not started."""
        if not self._started or self._spec is None:
            return False
        if self.run_id is None:
            self.run_id = self.store.create_run(self._spec)
            self._claim()
            self._save_steering()
        return True

    def _round_started(self, event: RoundStarted) -> None:
        assert self.run_id is not None
        if self._live is not None and self._live != event.index:
            self._flush()
        self._text.clear()
        self._reasoning.clear()
        self._live = event.index
        previous = self._rounds.get(event.index - 1)
        if previous is not None and fingerprint(previous) != self._written.get(previous.index):
            self._write([previous])  # the engine held back the tail of the previous round
        live = Round(
            index=event.index,
            strategy=event.strategy,
            max_tokens=event.max_tokens,
            recovery=event.recovery,
            started_at=time.time(),
        )
        self.store.start_round(self.run_id, live)
        self._written.pop(event.index, None)
        self._last_write = self._clock()

    def _round_finished(self, round_: Round) -> None:
        changed = [round_]
        previous = self._rounds.get(round_.index - 1)
        if previous is not None and fingerprint(previous) != self._written.get(previous.index):
            changed.insert(0, previous)
        self._write(changed)
        self._rounds[round_.index] = round_
        if self._live == round_.index:
            self._live = None
            self._text.clear()
            self._reasoning.clear()

    def _run_finished(self, event: RunFinished) -> None:
        assert self.run_id is not None
        result = event.result
        if result.run_id is None:
            result.run_id = self.run_id
        changed = [r for r in result.rounds if fingerprint(r) != self._written.get(r.index)]
        self.store.finish_run(
            self.run_id,
            spec=result.spec,
            status=status_for(event.stop_reason),
            stop_reason=event.stop_reason,
            error=event.error or result.error,
            started_at=result.started_at,
            finished_at=result.finished_at,
            rounds=changed,
            keep=[r.index for r in result.rounds],
        )
        for round_ in changed:
            self._written[round_.index] = fingerprint(round_)
        self._live = None
        self._text.clear()
        self._reasoning.clear()
        self._finished = True
        self._release()

    # ------------------------------------------------------------ writes

    def _write(self, rounds: list[Round]) -> None:
        assert self.run_id is not None
        self.store.write_rounds(self.run_id, rounds)
        for round_ in rounds:
            self._written[round_.index] = fingerprint(round_)
        self._last_write = self._clock()

    def _maybe_flush(self) -> None:
        if self._clock() - self._last_write >= self.flush_interval:
            self._flush()

    def _flush(self) -> None:
        assert self.run_id is not None
        if self._live is not None and (self._text or self._reasoning):
            self.store.append_live(self.run_id, self._live, "".join(self._text), "".join(self._reasoning))
            self._text.clear()
            self._reasoning.clear()
        else:
            self.store.heartbeat(self.run_id)
        self._last_write = self._clock()

    def _end_interrupted(self) -> None:
        assert self.run_id is not None and self._spec is not None
        self.store.finish_run(
            self.run_id, spec=self._spec, status=INTERRUPTED, stop_reason=None, error=None, finished_at=None
        )

    def _claim(self) -> None:
        assert self.run_id is not None
        claim_run(self.run_id)
        self._claimed = True
        with _open_lock:
            _open.add(self)

    def _release(self) -> None:
        if self._claimed and self.run_id is not None:
            release_run(self.run_id)
            self._claimed = False
        with _open_lock:
            _open.discard(self)
        self._stop.set()  # the autoflush thread ends at its next wake-up

    def _autoflush_loop(self) -> None:
        while not self._stop.wait(self.flush_interval / 2):
            with self._lock:
                if self._finished or self._stop.is_set():
                    return
                if self._clock() - self._last_write >= self.flush_interval:
                    self.flush()
