"""Creating batches, and the runners of one process (for the app, where pages come and go)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence

from core.services.batch.inputs import BatchItem
from core.services.batch.runner import BatchRunner
from core.services.batch.specs import effective_concurrency, settings_dict
from core.services.store import Batches, Store
from core.types import RunSpec


def source_digest(data: bytes | str) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


def create_batch(
    store: Store,
    items: Sequence[BatchItem],
    settings: RunSpec,
    *,
    title: str = "",
    source: str = "",
    source_data: bytes | str | None = None,
    concurrency: int | None = None,
) -> str:
    """Store a new batch (shared settings + items, no runs yet); returns its id."""
    if not items:
        raise ValueError("a batch needs at least one item")
    return Batches(store).create(
        [item.to_dict() for item in items],
        settings=settings_dict(settings),
        title=title,
        source=source,
        source_sha256=source_digest(source_data) if source_data is not None else "",
        concurrency=effective_concurrency(concurrency, settings.provider),
    )


class BatchManager:
    """The batch runners of this process, by batch id (one at a time per batch). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runners: dict[str, BatchRunner] = {}

    def start(self, runner: BatchRunner) -> BatchRunner:
        """Start ``runner`` unless this batch already runs here (then the running one is returned)."""
        with self._lock:
            current = self._runners.get(runner.batch_id)
            if current is not None and not current.done:
                return current
            self._runners[runner.batch_id] = runner
        runner.start()
        return runner

    def get(self, batch_id: str | None) -> BatchRunner | None:
        if not batch_id:
            return None
        with self._lock:
            return self._runners.get(batch_id)

    def stop(self, batch_id: str) -> bool:
        runner = self.get(batch_id)
        if runner is None or runner.done:
            return False
        runner.stop()
        return True

    def running(self) -> list[BatchRunner]:
        with self._lock:
            return [r for r in self._runners.values() if not r.done]
