"""Batch items taken by workers on any host: who holds which item, and taking over the dead's.

    claims = Claims(store)
    claims.hand_over(batch_id)              # the batch is for workers (``python -m core batch-worker``)
    for taken in claims.claim(limit=1):     # an item nobody holds, stamped with this process
        ...                                 # run it (resume ``taken.run_id`` when it has a run)
        claims.release(taken.batch_id, taken.position)
    claims.beat()                           # once a second: this process is alive

An item of a batch handed to workers is free while its run has not ended ("finished" or
"error") and no live worker holds it. A claim is stamped like a run's owner (host, pid, process
start time, :mod:`.owner`) plus ``claim_beat``, which the worker renews every second. A claim is
dead when its worker is on this host and its process is gone (checked by pid at once), or when its
beat is older than :data:`CLAIM_STALE_AFTER_S` (another host, or this one). Taking a dead claim
also marks the run it was recording "interrupted" (the same process owned it) and stamps the run
with the new worker, so the new worker can resume that run at once from its stored text, and the
old one, if it was only late, cannot write to it any more (``RunTakenOver``).

Taking items is one write transaction: on PostgreSQL ``SELECT … FOR UPDATE OF i SKIP LOCKED``
(workers never wait for each other's candidate rows), on SQLite inside ``BEGIN IMMEDIATE`` (one
writer at a time anyway).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .db import StoreError
from .dialect import POSTGRESQL, Connection
from .owner import Owner, current_owner, is_alive
from .rows import json_object
from .runs import Store

CLAIM_STALE_AFTER_S = 6.0  # a claim whose worker has not beaten for this long is dead
ENDED = "('finished', 'error')"  # run statuses after which an item is not taken again
NOT_ENDED = f"(r.status IS NULL OR r.status NOT IN {ENDED})"
_CLEAR = "claim_host = NULL, claim_pid = NULL, claim_started = NULL, claimed_at = NULL, claim_beat = NULL"

_FREE = f"""
SELECT i.batch_id, i.position, i.item_id, i.item_json, i.run_id, i.claim_host, i.claim_pid, i.claim_started
FROM batch_items i JOIN batches b ON b.id = i.batch_id LEFT JOIN runs r ON r.id = i.run_id
WHERE b.workers = 1 AND i.ended = 0 AND {NOT_ENDED} AND (i.claim_host IS NULL OR i.claim_beat < ?{{alive}}) {{batch}}
ORDER BY b.created_at, i.batch_id, i.position LIMIT ?
"""

_HELD_HERE = """
SELECT i.batch_id, i.position, i.run_id, i.claim_host, i.claim_pid, i.claim_started
FROM batch_items i WHERE i.claim_host = ? ORDER BY i.batch_id, i.position
"""


@dataclass(frozen=True)
class Claim:
    """An item this process now holds: run it, then :meth:`Claims.release` it."""

    batch_id: str
    position: int
    item_id: str
    item: dict[str, Any]
    run_id: str | None  # its run so far (resume it when it exists), None: never started
    taken_over: bool  # it was held by a worker that died


@dataclass(frozen=True)
class WorkerInfo:
    """One worker holding items of a batch, as the history shows it."""

    host: str
    pid: int
    items: int  # items it holds now
    beat_age_s: float  # seconds since its last heartbeat
    alive: bool  # False: its items will be taken by another worker


class Claims:
    """The claims of one :class:`Store` (see the module docstring). Thread-safe like the store."""

    def __init__(self, store: Store, stale_after: float = CLAIM_STALE_AFTER_S) -> None:
        self.store = store
        self.stale_after = stale_after

    # ------------------------------------------------------------ batches

    def hand_over(self, batch_id: str, workers: bool = True) -> None:
        """Give the batch to workers (or, ``workers=False``, take it back: no new item is taken)."""
        with self.store._write() as conn:
            conn.execute(
                "UPDATE batches SET workers = ?, updated_at = ? WHERE id = ?",
                (1 if workers else 0, time.time(), batch_id),
            )
            if workers:  # an item run here since a worker ended it may have to be taken again
                conn.execute("UPDATE batch_items SET ended = 0 WHERE batch_id = ? AND ended = 1", (batch_id,))

    def for_workers(self, batch_id: str) -> bool:
        rows = self.store._read("SELECT workers FROM batches WHERE id = ?", (batch_id,))
        return bool(rows and rows[0]["workers"])

    def check_not_held(self, batch_id: str) -> None:
        """Raise StoreError while the batch is handed to workers, or a live worker still holds an item."""
        if self.for_workers(batch_id):
            raise StoreError(
                f"Batch {batch_id} is handed to batch workers (python -m core batch-worker).",
                "Take it back first: Take back on the Batch page, or `python -m core batch FILE --resume ID`.",
            )
        held = sum(w.items for w in self.workers(batch_id) if w.alive)
        if held:
            raise StoreError(
                f"Batch {batch_id}: batch workers still hold {held} of its items.",
                "Wait for them to end: a worker takes no new item of a batch taken back.",
            )

    def pending(self, batch_id: str | None = None) -> int:
        """Items of batches handed to workers whose run has not ended (held or not)."""
        where, params = ("AND i.batch_id = ?", (batch_id,)) if batch_id else ("", ())
        rows = self.store._read(
            "SELECT count(*) AS n FROM batch_items i JOIN batches b ON b.id = i.batch_id"
            f" LEFT JOIN runs r ON r.id = i.run_id WHERE b.workers = 1 AND {NOT_ENDED} {where}",
            params,
        )
        return int(rows[0]["n"])

    # ------------------------------------------------------------ taking items

    def claim(self, limit: int = 1, batch_id: str | None = None) -> list[Claim]:
        """Take up to ``limit`` free items (of ``batch_id``, else of any batch handed to workers)."""
        owner = current_owner()
        now = time.time()
        lock = " FOR UPDATE OF i SKIP LOCKED" if self.store.dialect is POSTGRESQL else ""
        with self.store._write() as conn:
            alive = self._reap(conn, owner)  # late but alive here: not candidates (they would fill the LIMIT)
            marks = ",".join("?" * len(alive))
            sql = _FREE.format(
                alive=f" AND NOT (i.claim_host = ? AND i.claim_pid IN ({marks}))" if alive else "",
                batch="AND i.batch_id = ?" if batch_id else "",
            )
            params: tuple[Any, ...] = (
                now - self.stale_after,
                *((owner.host, *alive) if alive else ()),
                *((batch_id,) if batch_id else ()),
                int(limit),
            )
            rows = conn.execute(sql.strip() + lock, params).fetchall()
            taken = []
            for row in rows:
                previous = _holder(row)
                if previous is not None and is_alive(previous):
                    continue  # this host's worker, alive though its beat is late (a busy machine)
                conn.execute(
                    "UPDATE batch_items SET claim_host = ?, claim_pid = ?, claim_started = ?, claimed_at = ?,"
                    " claim_beat = ? WHERE batch_id = ? AND position = ?",
                    (owner.host, owner.pid, owner.started, now, now, row["batch_id"], row["position"]),
                )
                if previous is not None and row["run_id"]:
                    _interrupt(conn, row["run_id"], previous, owner, now)
                taken.append(
                    Claim(
                        batch_id=row["batch_id"],
                        position=row["position"],
                        item_id=row["item_id"],
                        item=json_object(row["item_json"]),
                        run_id=row["run_id"],
                        taken_over=previous is not None,
                    )
                )
        return taken

    def _reap(self, conn: Connection, owner: Owner) -> list[int]:
        """Make the claims of this host's dead workers stale (by pid: no need to wait for their beat);
        returns the pids of this host's live workers holding items (this one included)."""
        alive: set[int] = set()
        for row in conn.execute(_HELD_HERE, (owner.host,)).fetchall():
            holder = _holder(row)
            if holder is None:
                continue
            if holder == owner or is_alive(holder) is not False:
                alive.add(holder.pid)
                continue
            conn.execute(  # its beat, as old as can be: taken (and its run interrupted) like a stale one
                "UPDATE batch_items SET claim_beat = 0 WHERE batch_id = ? AND position = ? AND claim_pid = ?",
                (row["batch_id"], row["position"], holder.pid),
            )
        return sorted(alive)

    def release(self, batch_id: str, position: int, *, ended: bool = False) -> None:
        """Let go of an item this process holds: ``ended``, its run has ended (finished or failed);
        else it was stopped, and is free again. Marked ended only when the history says so too: a
        final write that never landed leaves the item to be taken again, not lost."""
        owner = current_owner()
        done = f"EXISTS (SELECT 1 FROM runs r WHERE r.id = batch_items.run_id AND r.status IN {ENDED})"
        with self.store._write() as conn:
            conn.execute(
                f"UPDATE batch_items SET {_CLEAR}, ended = {f'CASE WHEN {done} THEN 1 ELSE 0 END' if ended else '0'}"
                " WHERE batch_id = ? AND position = ? AND claim_host = ? AND claim_pid = ?",
                (batch_id, position, owner.host, owner.pid),
            )

    def beat(self) -> set[tuple[str, int]]:
        """Renew this process's claims; returns the (batch id, position) it still holds."""
        owner = current_owner()
        with self.store._write() as conn:
            conn.execute(
                "UPDATE batch_items SET claim_beat = ? WHERE claim_host = ? AND claim_pid = ?",
                (time.time(), owner.host, owner.pid),
            )
            rows = conn.execute(
                "SELECT batch_id, position FROM batch_items WHERE claim_host = ? AND claim_pid = ?",
                (owner.host, owner.pid),
            ).fetchall()
        return {(row["batch_id"], row["position"]) for row in rows}

    # ------------------------------------------------------------ who holds what

    def workers(self, batch_id: str) -> list[WorkerInfo]:
        """The workers holding items of the batch now, most items first."""
        rows = self.store._read(
            "SELECT claim_host, claim_pid, claim_started, count(*) AS n, max(claim_beat) AS beat"
            " FROM batch_items WHERE batch_id = ? AND claim_host IS NOT NULL"
            " GROUP BY claim_host, claim_pid, claim_started ORDER BY count(*) DESC, claim_host, claim_pid",
            (batch_id,),
        )
        now = time.time()
        found = []
        for row in rows:
            age = max(0.0, now - (row["beat"] or 0.0))
            alive = is_alive(Owner(row["claim_host"], int(row["claim_pid"] or 0), row["claim_started"]))
            found.append(
                WorkerInfo(
                    host=row["claim_host"],
                    pid=int(row["claim_pid"] or 0),
                    items=int(row["n"]),
                    beat_age_s=age,
                    alive=alive if alive is not None else age <= self.stale_after,
                )
            )
        return found


def _holder(row: Any) -> Owner | None:
    """The worker stamped on a claimed row (None: not claimed)."""
    if not row["claim_host"]:
        return None
    return Owner(row["claim_host"], int(row["claim_pid"] or 0), row["claim_started"])


def _interrupt(conn: Connection, run_id: str, holder: Owner, taker: Owner, now: float) -> None:
    """The run a dead worker was recording is "interrupted" (resumable at once) and the taker's,
    in the same transaction as the claim: a write the old worker still makes to it (it was only
    late, on another host) is refused (:class:`~.db.RunTakenOver`), never mixed into the new run."""
    conn.execute(
        "UPDATE runs SET status = CASE WHEN status = 'running' THEN 'interrupted' ELSE status END,"
        " owner_host = ?, owner_pid = ?, owner_started = ?, updated_at = ?"
        " WHERE id = ? AND owner_host = ? AND owner_pid = ?",
        (taker.host, taker.pid, taker.started, now, run_id, holder.host, holder.pid),
    )
