"""One thread that writes every throttled stream: the demo model at hundreds of streams.

A thread per stream that sleeps until its next token is due costs a wake-up, a
GIL hand-over and a system call per token; 200 streams at 50 tokens/s make
10,000 of each per second, and the threads' contention for the GIL, not the
work, is what limits the server then. With a pacer, a handler thread hands its
planned events over and blocks (no wake-ups) until the stream is written; the
pacer keeps the streams in a heap ordered by when their next token is due,
wakes once for everything due within ``SLACK`` seconds, and writes each
stream's due events as one chunk with a non-blocking send. A client that
stops reading does not hold up the others: what it does not take waits in its
own buffer and is retried ``RETRY`` seconds later.

The schedule is the same as :func:`core.demo.streaming.send_events`: billed
token k leaves at ``start + k / rate`` (at most ``SLACK`` early), events that
are not billed tokens go with the token before them.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from dataclasses import dataclass, field

from core.demo.streaming import EventPlan

SLACK = 0.004  # seconds: streams due this soon are written in the same wake-up
RETRY = 0.01  # seconds before retrying a stream whose client is not reading
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


class PacerStopped(Exception):
    """The server stopped before the stream was written."""


@dataclass(eq=False)
class _Job:
    sock: socket.socket
    plan: EventPlan
    rate: float
    start: float
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    index: int = 0  # next event to write
    sent: int = 0  # billed tokens written
    pending: memoryview = field(default_factory=lambda: memoryview(b""))  # not yet taken by the socket

    def step(self, now: float) -> float | None:
        """Write what is due; the time of the next step, or None when the stream is written."""
        if not self.pending:
            events, free = self.plan.events, self.plan.free
            due = int((now - self.start + SLACK) * self.rate) + 1
            i = j = self.index
            while j < len(events) and (j in free or self.sent < due):
                if j not in free:
                    self.sent += 1
                j += 1
            self.index = j
            if j > i:
                data = b"".join(events[i:j])
                self.pending = memoryview(b"%x\r\n" % len(data) + data + b"\r\n")
        if self.pending:
            try:
                n = self.sock.send(self.pending, _DONTWAIT)
            except BlockingIOError:
                n = 0
            self.pending = self.pending[n:]
            if self.pending:
                return now + RETRY
        if self.index >= len(self.plan.events):
            return None
        return self.start + self.sent / self.rate


class Pacer:
    """Writes throttled streams for many handler threads from one thread (started on first use)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Job]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def send(self, sock: socket.socket, plan: EventPlan, rate: float) -> None:
        """Write ``plan``'s events to ``sock`` as HTTP chunks at ``rate`` billed tokens/s; block until done.

        Raises the ``OSError`` of a client that went away, or :class:`PacerStopped`.
        """
        job = _Job(sock, plan, rate, time.monotonic())
        with self._wake:
            if self._stopped:
                raise PacerStopped
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="demo-pacer", daemon=True)
                self._thread.start()
            heapq.heappush(self._heap, (job.start, next(self._order), job))
            self._wake.notify()
        job.done.wait()
        if job.error is not None:
            raise job.error

    def stop(self) -> None:
        """End every stream in progress (their senders get :class:`PacerStopped`)."""
        with self._wake:
            self._stopped = True
            self._wake.notify()

    def _loop(self) -> None:
        heap = self._heap
        while True:
            with self._wake:
                while not self._stopped:
                    if heap:
                        delay = heap[0][0] - time.monotonic()
                        if delay <= SLACK:
                            break
                        self._wake.wait(delay)
                    else:
                        self._wake.wait()
                if self._stopped:
                    for _, _, job in heap:
                        job.error = PacerStopped()
                        job.done.set()
                    heap.clear()
                    return
                now = time.monotonic()
                ready = []
                while heap and heap[0][0] - now <= SLACK:
                    ready.append(heapq.heappop(heap)[2])
            later = []
            for job in ready:
                try:
                    at = job.step(now)
                except OSError as exc:  # the client went away
                    job.error = exc
                    at = None
                if at is None:
                    job.done.set()
                else:
                    later.append((at, next(self._order), job))
            if later:
                with self._wake:
                    for entry in later:
                        heapq.heappush(heap, entry)
