"""What a batch looks like at a moment: :class:`BatchProgress` and one :class:`ItemProgress` per item.

Built by a running :class:`~core.services.batch.runner.BatchRunner`, or from the store
alone (:func:`stored_progress`) for a batch that no process here is running: that one also
says whether the batch is handed to batch workers and which workers hold its items now, on
whatever host they run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from core.services.batch.limiter import LimiterStats
from core.services.store import Batches, BatchItemRow, Store
from core.services.store.claims import Claims, WorkerInfo

ItemStatus = Literal["queued", "running", "finished", "failed", "stopped"]
ITEM_STATUSES: tuple[str, ...] = ("queued", "running", "finished", "failed", "stopped")
BatchState = Literal["ready", "running", "stopping", "stopped", "done"]


def item_status(run_status: str | None) -> ItemStatus:
    """An item's status from its run's status in the store (None: no run yet)."""
    if run_status is None:
        return "queued"
    if run_status == "finished":
        return "finished"
    if run_status == "error":
        return "failed"
    if run_status == "running":
        return "running"
    return "stopped"  # cancelled, interrupted


@dataclass(frozen=True)
class ItemProgress:
    position: int
    id: str
    status: str
    run_id: str | None = None
    rounds: int = 0
    tokens: int = 0  # output tokens: finished rounds, plus chunks of the live one
    cost: float | None = None
    stop_reason: str | None = None
    error: str | None = None
    retries: int = 0
    duration_s: float | None = None


@dataclass(frozen=True)
class BatchProgress:
    batch_id: str
    state: str
    total: int
    queued: int
    running: int
    finished: int
    failed: int
    stopped: int
    tokens: int
    cost: float | None
    elapsed_s: float
    eta_s: float | None  # time left, from this session's pace; None until an item ends
    limit: int  # the shared concurrency limit now
    max_limit: int
    in_flight: int
    rate_limits: int
    items: tuple[ItemProgress, ...]
    for_workers: bool = False  # handed to batch workers (python -m core batch-worker)
    workers: tuple[WorkerInfo, ...] = ()  # the workers holding its items now (from the history)

    @property
    def ended(self) -> int:
        return self.finished + self.failed

    @property
    def fraction(self) -> float:
        return self.ended / self.total if self.total else 1.0


def item_from_row(row: BatchItemRow) -> ItemProgress:
    duration = row.finished_at - row.started_at if row.finished_at and row.started_at else None
    return ItemProgress(
        position=row.position,
        id=row.item_id,
        status=item_status(row.status),
        run_id=row.run_id if row.status is not None else None,
        rounds=row.rounds,
        tokens=row.completion_tokens,
        cost=row.cost,
        stop_reason=row.stop_reason,
        error=row.error.message if row.error else None,
        duration_s=duration,
    )


def build_progress(
    batch_id: str,
    state: str,
    items: Sequence[ItemProgress],
    *,
    elapsed_s: float = 0.0,
    ended_now: int = 0,
    limiter: LimiterStats | None = None,
) -> BatchProgress:
    """Counts and totals over ``items``; ``ended_now``: items ended in this session (for the time left)."""
    counts = dict.fromkeys(ITEM_STATUSES, 0)
    for item in items:
        counts[item.status] = counts.get(item.status, 0) + 1
    costs = [i.cost for i in items if i.cost is not None]
    left = counts["queued"] + counts["running"]
    running = state == "running"
    eta = elapsed_s / ended_now * left if running and ended_now and left else None
    if state == "stopped" and not left and not counts["stopped"]:
        state = "done"
    return BatchProgress(
        batch_id=batch_id,
        state=state,
        total=len(items),
        queued=counts["queued"],
        running=counts["running"],
        finished=counts["finished"],
        failed=counts["failed"],
        stopped=counts["stopped"],
        tokens=sum(i.tokens for i in items),
        cost=sum(costs) if costs else None,
        elapsed_s=elapsed_s,
        eta_s=eta,
        limit=limiter.limit if limiter else 0,
        max_limit=limiter.maximum if limiter else 0,
        in_flight=limiter.in_flight if limiter else 0,
        rate_limits=limiter.rate_limits if limiter else 0,
        items=tuple(items),
    )


def stored_progress(store: Store, batch_id: str) -> BatchProgress:
    """The batch as the store has it, every worker's items included: "running" while an item
    runs (or, handed to workers, while items are left), else "stopped" or "done"."""
    items = [item_from_row(row) for row in Batches(store).items(batch_id)]
    claims = Claims(store)
    handed = claims.for_workers(batch_id)
    left = any(i.status in ("queued", "running", "stopped") for i in items)
    running = any(i.status == "running" for i in items) or (handed and left)
    progress = build_progress(batch_id, "running" if running else "stopped", items)
    return replace(progress, for_workers=handed, workers=tuple(claims.workers(batch_id)))
