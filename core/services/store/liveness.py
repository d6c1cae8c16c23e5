"""Which running runs still have a live owner, and the heartbeat that proves it across hosts.

:class:`Liveness` is the part of :class:`~core.services.store.Store` that answers "is anyone
still recording this run?" (:mod:`.owner` says how an owner on this host is checked) and marks
the orphans "interrupted", so they can be resumed anywhere.

An owner on another host cannot be checked by pid: it is alive while it beats. On PostgreSQL
(several hosts share one history) every store runs a heartbeat thread: once a second it stamps
``heartbeat_at`` on the runs this process's recorders hold (one UPDATE, none when there are
none), beside the stamp every flush of a recorder writes; a run whose owner is on another host
and whose heartbeat is older than :data:`PG_STALE_AFTER_S` is interrupted. On SQLite (one host,
as a rule) nothing beats besides the flushes, and another host's run counts as gone after
:data:`SQLITE_STALE_AFTER_S`, as before.
"""

from __future__ import annotations

import threading
import time

from core.types import Round

from .db import RunTakenOver, StoreError
from .dialect import POSTGRESQL, Connection
from .owner import OWNER_COLUMNS, active_runs, current_owner, owner_gone
from .query import seen_runs
from .rows import round_from_row
from .threads import Threads

HEARTBEAT_INTERVAL_S = 1.0  # how often a PostgreSQL store stamps the runs its process records
PG_STALE_AFTER_S = 6.0  # another host's run without a heartbeat for this long is interrupted
SQLITE_STALE_AFTER_S = 600.0


class Liveness(Threads):
    """Owners, heartbeats and interrupted runs (see the module docstring)."""

    _heartbeat: threading.Thread | None = None
    _heartbeat_stop: threading.Event | None = None

    @property
    def stale_after(self) -> float:
        """Seconds after which a run of another host without a heartbeat counts as orphaned."""
        return PG_STALE_AFTER_S if self.dialect is POSTGRESQL else SQLITE_STALE_AFTER_S

    def _held(self, conn: Connection, run_id: str) -> None:
        """Raise :class:`RunTakenOver` when the run's owner stamp is another process's (a batch
        worker took it over, ``begin_run`` elsewhere): the write is refused, the new owner's rows stay.
        A run with no owner (saved whole, imported) or none at all is left to the write."""
        lock = " FOR UPDATE" if self.dialect is POSTGRESQL else ""  # no takeover until we commit
        rows = conn.execute(
            f"SELECT owner_host, owner_pid FROM runs WHERE id = ?{lock}", (run_id,)
        ).fetchall()
        if not rows or rows[0]["owner_pid"] is None:
            return
        owner = current_owner()
        if (rows[0]["owner_host"], int(rows[0]["owner_pid"])) != (owner.host, owner.pid):
            raise RunTakenOver(
                f"run {run_id} was taken over by {rows[0]['owner_host']}:{rows[0]['owner_pid']}; "
                "this process no longer writes it"
            )

    def mark_interrupted(self, stale_after: float | None = None) -> list[str]:
        """Mark runs left "running" by a process that is gone as "interrupted"; returns their ids.

        The owner is dead when it is on this host and its pid no longer exists (or
        was reused, or is a zombie), or, in this process, when no Recorder holds
        the run. Owners on another host count as dead once their heartbeat is
        older than ``stale_after`` seconds (default :attr:`stale_after`). Call it at
        start-up and before listing.

        Housekeeping, so it never waits: while another process holds the write
        lock, or when the history is read-only, nothing is marked (returns []).
        """
        stale = self.stale_after if stale_after is None else stale_after
        now = time.time()
        rows = self._read(f"SELECT {OWNER_COLUMNS} FROM runs WHERE status = 'running'")
        gone = [row["id"] for row in rows if owner_gone(row, now, stale)]
        if gone:
            try:
                with self._write(wait=False) as conn:
                    conn.executemany(
                        "UPDATE runs SET status = 'interrupted', updated_at = ?"
                        " WHERE id = ? AND status = 'running'",
                        [(now, run_id) for run_id in gone],
                    )
            except StoreError:
                return []  # marked by the next process that can write
        return gone

    def is_active(self, run_id: str, stale_after: float | None = None) -> bool:
        """True while a live process (this one included) is recording the run: do not resume it."""
        stale = self.stale_after if stale_after is None else stale_after
        rows = self._read(f"SELECT {OWNER_COLUMNS} FROM runs WHERE id = ? AND status = 'running'", (run_id,))
        return bool(rows) and not owner_gone(rows[0], time.time(), stale)

    def rounds_from(self, run_id: str, first: int) -> list[Round]:
        """The rounds of a run from index ``first`` on, live rows as they are: what a page following
        a running run re-reads (the rounds before ``first`` have ended and do not change)."""
        seen, params = seen_runs(self.viewer)  # a page follows only a run its person sees
        rows = self._read(
            "SELECT * FROM rounds WHERE run_id = ? AND idx >= ?"
            f" AND EXISTS (SELECT 1 FROM runs WHERE id = rounds.run_id AND {seen}) ORDER BY idx",
            (run_id, first, *params),
        )
        return [round_from_row(row, run_running=True) for row in rows]

    def beat(self) -> int:
        """Stamp ``heartbeat_at`` on the running runs this process's recorders hold; returns how many."""
        held = sorted(active_runs())
        if not held:
            return 0
        owner = current_owner()
        marks = ",".join("?" * len(held))
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE runs SET heartbeat_at = ? WHERE status = 'running' AND owner_host = ? AND owner_pid = ?"
                f" AND id IN ({marks})",
                (time.time(), owner.host, owner.pid, *held),
            )
            return int(cursor.rowcount)

    def start_heartbeat(self, interval: float = HEARTBEAT_INTERVAL_S) -> None:
        """Beat every ``interval`` seconds in a daemon thread until :meth:`close` (PostgreSQL stores do)."""
        if self._heartbeat is not None:
            return
        stop = threading.Event()
        self._heartbeat_stop = stop
        self._heartbeat = threading.Thread(
            target=self._beat_until, args=(stop, interval), name="continuum-heartbeat", daemon=True
        )
        self._heartbeat.start()

    def _beat_until(self, stop: threading.Event, interval: float) -> None:
        while not stop.wait(interval):
            try:
                self.beat()
            except StoreError:
                continue  # a closed store ends below; a lost connection is retried at the next beat

    def _open(self, *, read_only: bool) -> None:
        super()._open(read_only=read_only)
        if self.dialect is POSTGRESQL:
            self.start_heartbeat()

    def close(self) -> None:
        if self._heartbeat_stop is not None:
            self._heartbeat_stop.set()
        super().close()
