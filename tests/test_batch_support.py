"""Helpers shared by the batch tests (no tests here)."""

from __future__ import annotations

from typing import Any

from core.continuation.engine import RetryPolicy
from core.services.batch import BatchItem, BatchRunner, create_batch
from core.services.store import Store
from core.types import Prices, RunSpec

FAST_RETRY = RetryPolicy(base=0.001, cap=0.01, max_wait=0.01, max_attempts=10)


def prompt(i: int, tokens: int = 300) -> str:
    return f"Write {tokens} tokens about item number {i}"


def make_items(n: int, tokens: int = 300, **overrides: Any) -> list[BatchItem]:
    return [BatchItem(id=f"item-{i}", prompt=prompt(i, tokens), overrides=dict(overrides)) for i in range(n)]


def settings(base_url: str, **kw: Any) -> RunSpec:
    values: dict[str, Any] = {
        "max_tokens": 128,
        "max_rounds": 30,
        "context_window": 8192,
        "prices": Prices(0.1, 0.4),
        **kw,
    }
    return RunSpec(messages=[], base_url=base_url, **values)


def new_batch(store: Store, base_url: str, items: list[BatchItem], concurrency: int = 8, **kw: Any) -> str:
    return create_batch(store, items, settings(base_url, **kw), concurrency=concurrency, title="test batch")


def runner(store: Store, batch_id: str, **kw: Any) -> BatchRunner:
    kw.setdefault("retry", FAST_RETRY)
    return BatchRunner(store, batch_id, **kw)
