"""Helpers for the endpoint's tests: a ``python -m core serve`` in a thread over a demo model."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from core import RetryPolicy
from core.serve import Defaults, RunningServe, ServeConfig, start_serve
from core.services.providers import get_provider
from core.services.store import Store
from core.types import RunResult
from core.wire.client import Timeouts

FAST_RETRY = RetryPolicy(max_attempts=6, base=0.02, cap=0.2, max_wait=1.0)


def serve_demo(upstream: str, history: Path, **config: Any) -> RunningServe:
    """The endpoint over the demo model at ``upstream`` (a base URL), saving runs in ``history``."""
    defaults = config.pop("defaults", {})
    config.setdefault("retry", FAST_RETRY)
    config.setdefault("timeouts", Timeouts(connect=5, idle=5, round=60))
    return start_serve(
        ServeConfig(
            Defaults(provider=get_provider("demo"), base_url=upstream, model="demo-32k", **defaults),
            history=history,
            **config,
        )
    )


def chat(prompt: str, **fields: Any) -> dict[str, Any]:
    return {"model": "demo-32k", "messages": [{"role": "user", "content": prompt}], **fields}


def sse_events(url: str, body: dict[str, Any], **headers: str) -> list[str]:
    """Every SSE line of a streamed request, as received (comments included)."""
    lines = []
    with httpx.stream(
        "POST", url + "/chat/completions", json={**body, "stream": True}, headers=headers, timeout=60
    ) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line:
                lines.append(line)
    return lines


def streamed_text(lines: list[str]) -> tuple[str, dict[str, Any]]:
    """The content of a stream's chunks, and its last chunk."""
    parts, last = [], {}
    for line in lines:
        if line.startswith("data: {"):
            last = json.loads(line[6:])
            for choice in last.get("choices", []):
                parts.append(choice.get("delta", {}).get("content") or "")
    return "".join(parts), last


def stored(history: Path, run_id: str) -> RunResult:
    with Store(history) as store:
        return store.load(run_id)


def wait_for(check: Callable[[], Any], bound: float, step: float = 0.01) -> Any:
    """Poll ``check`` until it returns something true or ``bound`` seconds pass; its last value."""
    end = time.monotonic() + bound
    value = check()
    while not value and time.monotonic() < end:
        time.sleep(step)
        value = check()
    return value
