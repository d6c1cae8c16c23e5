"""Helpers shared by the engine tests (no tests here)."""

from __future__ import annotations

from typing import Any

from core.continuation.engine import RetryPolicy, run
from core.types import Event, RunFinished, RunSpec

FAST_RETRY = RetryPolicy(base=0.001, cap=0.005, max_wait=0.005)


def spec_for(base_url: str, prompt: str, **kw: Any) -> RunSpec:
    kw.setdefault("max_rounds", 10_000)  # the most a run may have (core.bounds)
    return RunSpec(messages=[{"role": "user", "content": prompt}], base_url=base_url, **kw)


def run_all(spec: RunSpec, **kw: Any) -> list[Event]:
    kw.setdefault("retry", FAST_RETRY)
    return list(run(spec, **kw))


def finish(events: list[Event]) -> RunFinished:
    last = events[-1]
    assert isinstance(last, RunFinished), last
    assert sum(isinstance(e, RunFinished) for e in events) == 1
    return last


def first_difference(a: str, b: str) -> str:
    """A readable pointer to where two texts part (for assertion messages)."""
    i = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return f"at {i}: got {a[i - 40 : i + 40]!r}, want {b[i - 40 : i + 40]!r} (lengths {len(a)}, {len(b)})"
