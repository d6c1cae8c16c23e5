"""The batch commands' progress on stderr, and how a job is driven until it ends or is stopped.

- :class:`BatchDisplay` — one redrawn line on a terminal, a line every 10 s otherwise.
- :func:`progress_line` — a batch's progress (every worker's, for a batch handed to workers).
- :func:`drive` — start a job (a BatchRunner, a BatchWorker, :class:`Following`), show its progress,
  stop it on the first Ctrl-C (or SIGTERM, SIGHUP), abort on the second.
- :class:`Following` — a batch handed to workers, followed from the history until it is done.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Protocol, TextIO, TypeVar

from core.cli.common import on_stop_signal
from core.services.batch import BatchProgress, ItemProgress, stored_progress
from core.services.store import Store
from core.services.store.claims import Claims

P = TypeVar("P")
P_co = TypeVar("P_co", covariant=True)


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def progress_line(p: BatchProgress, width: int = 20) -> str:
    filled = round(width * p.fraction)
    bar = "█" * filled + "░" * (width - filled)
    cost = f" · ${p.cost:.4f}" if p.cost is not None else ""
    eta = f" · {duration(p.eta_s)} left" if p.eta_s is not None else ""
    limited = f" · {p.rate_limits} rate limits" if p.rate_limits else ""
    concurrency = f" · concurrency {p.limit}/{p.max_limit}" if p.max_limit else ""
    workers = f" · {workers_text(p)}" if p.for_workers else ""
    return (
        f"[{bar}] {p.finished + p.failed}/{p.total} · {p.running} running · {p.failed} failed · "
        f"{p.tokens:,} tokens{cost}{concurrency}{limited}{workers} · {duration(p.elapsed_s)}{eta}"
    )


def workers_text(p: BatchProgress) -> str:
    """Which workers hold items of the batch: ``2 workers: a:41 (8), b:77 (8)``."""
    live = [w for w in p.workers if w.alive]
    if not live:
        return "waiting for a batch worker (python -m core batch-worker)"
    held = ", ".join(f"{w.host}:{w.pid} ({w.items})" for w in live)
    return f"{len(live)} worker{'s' if len(live) != 1 else ''}: {held}"


class BatchDisplay:
    """Progress on stderr: one redrawn line on a terminal, a line every 10 s otherwise."""

    def __init__(self, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.stream: TextIO = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self.every = 0.2 if self.tty else 10.0
        self._lock = threading.Lock()
        self._last = 0.0

    def tick(self, p: BatchProgress, force: bool = False) -> None:
        self.show(progress_line(p), force)

    def show(self, text: str, force: bool = False) -> None:
        """Redraw the progress line (at most every ``every`` seconds unless ``force``)."""
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < self.every):
            return
        self._last = now
        with self._lock:
            if self.tty:
                self.stream.write("\r\x1b[K" + text)
            else:
                self.stream.write(text + "\n")
            self.stream.flush()

    def line(self, text: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            self.stream.write(("\r\x1b[K" if self.tty else "") + text + "\n")
            self.stream.flush()

    def item_ended(self, item: ItemProgress) -> None:
        if item.status == "failed":
            self.line(f"item {item.id!r} failed: {item.error}")


class Job(Protocol[P_co]):
    """What :func:`drive` runs: a BatchRunner, a BatchWorker, or the following of workers."""

    def start(self) -> None: ...

    def wait(self, timeout: float | None = None) -> bool: ...

    def stop(self) -> None: ...

    def progress(self) -> P_co: ...


STOPPING = "items in flight are saved and can be resumed"


def drive(job: Job[P], display: BatchDisplay, line: Callable[[P], str], stopping: str = STOPPING) -> P:
    """Run with a progress display; the first Ctrl-C (or SIGTERM, SIGHUP) stops the job, a second one aborts."""
    stopped = threading.Event()

    def on_stop(signum: int, _frame: object) -> None:
        if stopped.is_set():
            raise KeyboardInterrupt
        stopped.set()
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        display.line(f"stopping ({name}): {stopping} (Ctrl-C again to abort)")
        job.stop()

    with on_stop_signal(on_stop):
        job.start()
        while not job.wait(display.every if display.enabled else 1.0):
            display.show(line(job.progress()))
    progress = job.progress()
    display.show(line(progress), force=True)
    if display.tty:
        display.line("")
    return progress


class Following:
    """A batch handed to workers, followed from the history until no item of it is left."""

    def __init__(self, store: Store, batch_id: str) -> None:
        self.store, self.batch_id = store, batch_id
        self._stopped = threading.Event()
        self._started = time.monotonic()

    def start(self) -> None:
        """Nothing to start: the workers run the batch."""

    def stop(self) -> None:
        self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        """True once every item is done (or following was stopped); looks every :data:`POLL_S` seconds."""
        end = time.monotonic() + (timeout if timeout is not None else float("inf"))
        while Claims(self.store).pending(self.batch_id):
            left = end - time.monotonic()
            if left <= 0:
                return False
            if self._stopped.wait(min(POLL_S, left)):
                return True
        return True

    def progress(self) -> BatchProgress:
        p = stored_progress(self.store, self.batch_id)
        return dataclasses.replace(p, elapsed_s=time.monotonic() - self._started)


POLL_S = 0.5  # how often following workers looks at the history
FOLLOWING = "the batch goes on on the workers"
