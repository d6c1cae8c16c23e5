"""Chaos: one random fault per request, for fault campaigns (behaviour ``chaos``).

Each chat or completion request draws its fault from a random generator seeded
with ``chaos_seed``, the URL prefix and the request's number under that prefix,
so a sequence of requests on one prefix always meets the same faults:

- ``cut``: the connection closes at a random byte of the streamed reply, no
  terminating chunk. Where (``cuts`` in the stats): ``frame`` (inside a
  chunk-size line), ``utf8`` (inside a multi-byte character), ``boundary``
  (between two events) or ``event`` (inside an event). Every cut but a
  ``frame`` one leaves a chunk frame short of the size it announced.
- ``429`` (with ``Retry-After`` and ``retry-after-ms`` from ``retry_after``),
  ``429_bare`` (no retry header at all), ``500``, ``502`` (nginx HTML), ``503``.
- ``stall``: at a random byte, nothing at all for ``chaos_stall`` seconds (set it
  above the client's idle timeout), then the rest.
- ``keepalive``: at a random event boundary, ``: keep-alive`` comments for
  ``chaos_stall`` seconds (every min(0.1, chaos_stall/5) s), then the rest: not
  a fault for a client that counts comments as activity.
- ``drip``: from a random byte, the next ``DRIP_WINDOW`` bytes leave in pieces
  of 1 to ``DRIP_PIECE`` bytes, one chunk frame each, ``chaos_drip`` seconds apart.

A request is faulty with probability ``chaos``; the kind is drawn uniformly from
``chaos_kinds`` (``all`` or names joined by ``+``). Non-streamed requests only get
the status faults. After ``chaos_max`` faulty requests in a row on one prefix the
next one is clean, so runs with enough retries always end.
"""

from __future__ import annotations

import itertools
import math
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.demo.behaviours import CHAOS_KINDS as KINDS
from core.demo.chunks import KEEP_ALIVE
from core.demo.errors import DemoError

STATUS_KINDS = frozenset({"429", "429_bare", "500", "502", "503"})
CUT_PLACES: tuple[str, ...] = ("frame", "utf8", "boundary", "event")
DRIP_WINDOW = 1024  # bytes sent drop by drop
DRIP_PIECE = 8  # largest drop, in bytes

BAD_GATEWAY_HTML = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1>"
    "</center>\r\n<hr><center>nginx (demo fault)</center>\r\n</body>\r\n</html>\r\n"
)
_CONTINUATION = re.compile(rb"[\x80-\xbf]")

Write = Callable[[bytes], object]
Wait = Callable[[float], None]


class ChaosCut(Exception):
    """The stream was cut: close the connection without ending the reply."""


def kinds_of(value: str) -> tuple[str, ...]:
    return KINDS if value == "all" else tuple(value.split("+"))


def rate_limited(retry_after: float | None, note: str) -> DemoError:
    """A 429; with ``retry_after`` it carries ``Retry-After`` (whole seconds) and ``retry-after-ms``."""
    headers: dict[str, str] = {}
    message = f"Rate limit reached for the demo model ({note})."
    if retry_after is not None:
        headers = {
            "Retry-After": str(max(1, math.ceil(retry_after))),
            "retry-after-ms": str(round(retry_after * 1000)),
        }
        message += f" Retry in {retry_after:g}s."
    return DemoError(429, message, kind="requests", code="rate_limit_exceeded", headers=headers)


def server_failed(status: int) -> DemoError:
    """A 500 or 503 as JSON, a 502 as an nginx HTML page."""
    if status == 502:
        return DemoError(502, "Bad Gateway", html=BAD_GATEWAY_HTML)
    message = "The demo model is overloaded" if status == 503 else "The demo model had an internal error"
    return DemoError(status, f"{message} (demo fault). Retry later.", kind="server_error", code=status)


@dataclass
class Fault:
    """The fault drawn for one request."""

    kind: str
    key: str
    rng: random.Random

    def error(self, retry_after: float) -> DemoError:
        """The error response of a status fault."""
        if self.kind == "429":
            return rate_limited(retry_after, "demo chaos")
        if self.kind == "429_bare":
            return rate_limited(None, "demo chaos, no Retry-After")
        return server_failed(int(self.kind))


class Ledger:
    """A server's chaos state: request numbers and faults in a row per prefix, faults injected by kind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._numbers: dict[str, int] = {}
        self._streak: dict[str, int] = {}
        self._faults: dict[str, Counter[str]] = {}
        self._cuts: dict[str, Counter[str]] = {}
        self._abandoned: dict[str, Counter[str]] = {}
        self._silences: dict[str, dict[str, float]] = {}  # by kind: the shortest longest gap of those

    def count(self, key: str) -> int:
        """The number of this chat/completion request under prefix ``key`` (1, 2, …)."""
        with self._lock:
            self._numbers[key] = number = self._numbers.get(key, 0) + 1
            return number

    def record(self, key: str, kind: str) -> None:
        with self._lock:
            self._faults.setdefault(key, Counter())[kind] += 1

    def record_cut(self, key: str, place: str) -> None:
        with self._lock:
            self._cuts.setdefault(key, Counter())[place] += 1

    def record_abandoned(self, key: str, kind: str, silence: float) -> None:
        """The client hung up during a keep-alive span or a drip whose longest gap was ``silence`` s."""
        with self._lock:
            self._abandoned.setdefault(key, Counter())[kind] += 1
            shortest = self._silences.setdefault(key, {})
            shortest[kind] = min(silence, shortest.get(kind, silence))

    def draw(
        self, key: str, number: int, *, p: float, seed: int, kinds: str, limit: int, streamed: bool
    ) -> Fault | None:
        """The fault for request ``number`` on ``key``, or None (and count it)."""
        rng = random.Random(f"chaos:{seed}:{key}:{number}")
        allowed = [k for k in kinds_of(kinds) if streamed or k in STATUS_KINDS]
        hit = rng.random() < p
        kind = rng.choice(allowed) if allowed else None
        with self._lock:
            streak = self._streak.get(key, 0)
            if not hit or kind is None or streak >= limit:
                self._streak[key] = 0
                return None
            self._streak[key] = streak + 1
            self._faults.setdefault(key, Counter())[kind] += 1
        return Fault(kind, key, rng)

    def stats(self, key: str | None = None) -> dict[str, Any]:
        """For one prefix, or summed over all: ``requests`` (chat and completion), ``faults``
        (injected, by kind), ``cuts`` (by place) and ``abandoned`` (keep-alive spans and
        drips during which the client hung up: a client that takes them for silence, or a
        server too starved to write in time: ``abandoned_silence_s`` tells which, with the
        shortest, by kind, of their longest gaps between two writes)."""
        with self._lock:
            keys = [key] if key is not None else list(self._numbers.keys() | self._faults.keys())
            tables: dict[str, Counter[str]] = {"faults": Counter(), "cuts": Counter(), "abandoned": Counter()}
            for k in keys:
                tables["faults"].update(self._faults.get(k, Counter()))
                tables["cuts"].update(self._cuts.get(k, Counter()))
                tables["abandoned"].update(self._abandoned.get(k, Counter()))
            requests = sum(self._numbers.get(k, 0) for k in keys)
            silences: dict[str, float] = {}
            for k in keys:
                for kind, gap in self._silences.get(k, {}).items():
                    silences[kind] = round(min(gap, silences.get(kind, gap)), 3)
        counts = {name: dict(sorted(t.items())) for name, t in tables.items()}
        return {"requests": requests} | counts | {"abandoned_silence_s": dict(sorted(silences.items()))}


def _frame(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


class StreamFault:
    """A chunked-body writer (``write(payload)``) that injects one stream fault.

    ``events`` are the SSE events the reply will send, in order: the fault's
    byte offset is drawn over them before the first write.
    """

    def __init__(
        self,
        fault: Fault,
        events: list[bytes],
        ledger: Ledger,
        raw: Write,
        wait: Wait,
        *,
        stall: float,
        drip: float,
        since: float | None = None,
    ) -> None:
        self.kind = fault.kind
        self.key = fault.key
        self.ledger = ledger
        self.rng = rng = fault.rng
        self.raw = raw
        self.wait = wait
        self.stall = stall
        self.drip = drip
        self.pos = 0  # payload bytes written so far
        self.fired = False
        self.last = time.monotonic() if since is None else since  # of the last write (or the request)
        self.silence = 0.0  # the longest gap between two writes so far
        self.watched = False  # in a keep-alive span or a drip: a failed write is counted
        self.dripping = 0  # payload bytes still to drip
        total = sum(len(e) for e in events)
        bounds = [0, *itertools.accumulate(len(e) for e in events)][:-1]  # where each event starts
        self.place = ""
        if total == 0:
            self.at = -1
        elif self.kind == "keepalive":
            self.at = rng.choice(bounds)
        elif self.kind == "cut":
            self.at, self.place = self._cut_point(events, bounds, total)
            ledger.record_cut(fault.key, self.place)
        else:
            self.at = rng.randrange(total)

    def _cut_point(self, events: list[bytes], bounds: list[int], total: int) -> tuple[int, str]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.1:
            return rng.randrange(total), "frame"
        if roll < 0.2:
            return rng.choice(bounds), "boundary"
        payload = b"".join(events)
        if roll < 0.4:
            middles = [m.start() for m in _CONTINUATION.finditer(payload)]
            if middles:
                return rng.choice(middles), "utf8"
        at = rng.randrange(total)
        if _CONTINUATION.match(payload, at):
            return at, "utf8"
        return at, "boundary" if at in set(bounds) else "event"

    def __call__(self, data: bytes) -> None:
        if not data:
            return
        if self.dripping:
            data = self._drip(data)
        end = self.pos + len(data)
        if self.fired or not self.pos <= self.at < end:
            if data:
                self._send(_frame(data))
            self.pos = end
            return
        self.fired = True
        k = self.at - self.pos
        head, rest = data[:k], data[k:]
        if self.kind == "cut":
            header = b"%x\r\n" % len(data)
            if self.place == "frame":
                self.raw(header[: self.rng.randrange(1, len(header))])
            else:
                self.raw(header + head)
            raise ChaosCut
        if head:
            self._send(_frame(head))
        self.pos += k
        if self.kind == "stall":
            self.wait(self.stall)
        elif self.kind == "keepalive":
            self.watched = True
            self._keep_alive()
            self.watched = False
        elif self.kind == "drip":
            self.dripping = DRIP_WINDOW
            rest = self._drip(rest)
        if rest:
            self._send(_frame(rest))
        self.pos += len(rest)

    def _drip(self, data: bytes) -> bytes:
        """Send the start of ``data`` drop by drop while the window lasts; return the rest."""
        i = 0
        self.watched = True
        while self.dripping and i < len(data):
            n = min(self.rng.randint(1, DRIP_PIECE), self.dripping, len(data) - i)
            self._send(_frame(data[i : i + n]))
            i += n
            self.dripping -= n
            self.wait(self.drip)
        self.pos += i
        self.watched = False
        return data[i:]

    def _send(self, frame: bytes) -> None:
        """Write, timing the gaps; a failure in a keep-alive span or a drip means the client hung
        up during it, after the longest gap so far (since the request arrived)."""
        self.silence = max(self.silence, time.monotonic() - self.last)
        try:
            self.raw(frame)
        except OSError:
            if self.watched:
                self.ledger.record_abandoned(self.key, self.kind, self.silence)
            raise
        self.last = time.monotonic()

    def _keep_alive(self) -> None:
        interval = min(0.1, self.stall / 5)
        end = time.monotonic() + self.stall
        while True:
            self._send(_frame(KEEP_ALIVE))
            left = end - time.monotonic()
            if left <= 0:
                return
            self.wait(min(interval, left))
