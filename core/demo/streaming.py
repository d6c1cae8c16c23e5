"""Assembling and pacing the SSE events of one streamed reply (faults included).

Unthrottled, events leave in writes of ``BATCH_EVENTS``; throttled, billed token
k leaves at ``start + k / rate`` on a monotonic clock, and whatever is due goes
in one write.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.demo.behaviours import Behaviours
from core.demo.chunks import DONE, KEEP_ALIVE, ChunkFormat, usage_of
from core.demo.replies import Plan, Rendered

BATCH_EVENTS = 256  # events joined into one socket write when unthrottled

Write = Callable[[bytes], None]
Wait = Callable[[float], None]


@dataclass
class EventPlan:
    events: list[bytes]
    free: set[int]  # indices of events that are not billed tokens (role, echo, malformed, finish…)
    dropped: bool  # the stream ends without finish chunk, [DONE] or terminating chunk


def drop_point(b: Behaviours, tokens: int, request_number: Callable[[], int], key: str) -> int:
    """After how many billed tokens to drop the connection (0: never)."""
    if b.drop == "random":
        rng = random.Random(f"{b.seed}:{key}:{request_number()}")
        if tokens > 0 and rng.random() < b.drop_p:
            return rng.randint(1, tokens)
        return 0
    assert isinstance(b.drop, int)
    return b.drop if 0 < b.drop <= tokens else 0


def build_events(
    kind: str, response_id: str, plan: Plan, out: Rendered, request: dict[str, Any], b: Behaviours, drop: int
) -> EventPlan:
    fmt = ChunkFormat(kind, response_id, plan.model.id)
    events: list[bytes] = [fmt.role_event()] if kind == "chat" else []
    if plan.echo:
        events += fmt.token_events("content", [json.dumps(plan.echo, ensure_ascii=False).encode()])
    free = set(range(len(events)))
    first = len(events)
    for piece in out.pieces:
        events += fmt.token_events(piece.field, piece.tokens)
    if 0 < b.malformed <= out.completion_tokens:
        events.insert(first + b.malformed, fmt.malformed_event())
        free.add(first + b.malformed)
        if drop >= b.malformed:
            drop += 1
    if drop:
        del events[first + drop :]
        return EventPlan(events, free, True)
    usage = usage_of(plan, out)
    include = (request.get("stream_options") or {}).get("include_usage") is True
    free.update(range(len(events), len(events) + 3))
    events.append(fmt.finish_event(out.finish_reason, usage if b.usage == "final" else None))
    if b.usage == "separate" and include:
        events.append(fmt.usage_event(usage))
    events.append(DONE)
    return EventPlan(events, free, False)


def keep_alive(seconds: float, write: Write, wait: Wait) -> None:
    """``: keep-alive`` comments for ``seconds``: one at once, then every min(1, seconds/5) s."""
    interval = min(1.0, seconds / 5)
    end = time.monotonic() + seconds
    while True:
        write(KEEP_ALIVE)
        left = end - time.monotonic()
        if left <= 0:
            return
        wait(min(interval, left))


def send_events(plan: EventPlan, rate: float, write: Write, wait: Wait) -> None:
    events = plan.events
    if rate <= 0:
        for i in range(0, len(events), BATCH_EVENTS):
            write(b"".join(events[i : i + BATCH_EVENTS]))
        return
    free = plan.free
    start = time.monotonic()
    sent = 0  # billed tokens written
    i = 0
    while i < len(events):
        due = int((time.monotonic() - start) * rate) + 1
        if sent >= due:
            wait(start + sent / rate - time.monotonic())
            continue
        j = i
        while j < len(events) and (j in free or sent < due):
            if j not in free:
                sent += 1
            j += 1
        write(b"".join(events[i:j]))
        i = j
