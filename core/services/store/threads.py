"""Steering in the history: the user's edits of a run, and threads of runs (follow-ups).

:class:`Threads` is the part of :class:`~core.services.store.Store` that keeps them:

- ``edits`` rows, one per :class:`~core.types.Edit` of a run, in order, each with the
  whole answer as it stood before it (the text of the rounds it took over);
- ``runs.thread_id`` / ``runs.parent_id``: a follow-up joins the thread of the run it
  follows (which starts one, named after itself, if it had none).

Reads keep to the runs the store's viewer sees (:mod:`.viewers`).
"""

from __future__ import annotations

from collections.abc import Iterable

from core.types import Edit

from .dialect import Connection
from .query import seen_runs
from .rows import SUMMARY_COLUMNS, RunSummary
from .viewers import Viewers

EDIT_COLUMNS = ("after_round", "at", "removed", "added", "made_at", "inserted", "text_before")


class Threads(Viewers):
    """Edits and threads (see the module docstring); :class:`Store` adds runs and rounds."""

    # ------------------------------------------------------------ edits

    def edits_of(self, run_id: str) -> list[Edit]:
        seen, params = seen_runs(self.viewer)
        rows = self._read(
            f"SELECT {', '.join(EDIT_COLUMNS)} FROM edits WHERE run_id = ?"
            f" AND EXISTS (SELECT 1 FROM runs WHERE id = edits.run_id AND {seen}) ORDER BY position",
            (run_id, *params),
        )
        return [
            Edit(
                after_round=row["after_round"],
                at=row["at"],
                removed=row["removed"],
                inserted=row["inserted"],
                text_before=row["text_before"],
                made_at=row["made_at"],
            )
            for row in rows
        ]

    def write_edits(self, run_id: str, edits: Iterable[Edit]) -> None:
        """Make ``edits`` the run's edits (an edit never changes: those already stored stay as written)."""
        with self._write() as conn:
            self._write_edits(conn, run_id, list(edits))

    @staticmethod
    def _write_edits(conn: Connection, run_id: str, edits: list[Edit]) -> None:
        conn.execute("DELETE FROM edits WHERE run_id = ? AND position >= ?", (run_id, len(edits)))
        marks = ", ".join("?" * (len(EDIT_COLUMNS) + 2))
        conn.executemany(
            f"INSERT INTO edits (run_id, position, {', '.join(EDIT_COLUMNS)}) SELECT {marks}"
            " WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?) ON CONFLICT (run_id, position) DO NOTHING",
            [
                (
                    run_id,
                    n,
                    e.after_round,
                    e.at,
                    e.removed,
                    e.added,
                    e.made_at,
                    e.inserted,
                    e.text_before,
                    run_id,
                )
                for n, e in enumerate(edits)
            ],
        )

    # ------------------------------------------------------------ threads

    def join_thread(self, run_id: str, thread_id: str, parent_id: str | None = None) -> None:
        """Put ``run_id`` in ``thread_id`` after ``parent_id``; the thread's first run joins too."""
        with self._write() as conn:
            self._join_thread(conn, run_id, thread_id, parent_id)

    @staticmethod
    def _join_thread(conn: Connection, run_id: str, thread_id: str, parent_id: str | None) -> None:
        conn.execute(
            "UPDATE runs SET thread_id = ?, parent_id = coalesce(?, parent_id) WHERE id = ?",
            (thread_id, parent_id, run_id),
        )
        conn.execute(
            "UPDATE runs SET thread_id = ? WHERE id = ? AND thread_id IS NULL", (thread_id, thread_id)
        )

    def thread_of(self, run_id: str) -> str | None:
        seen, params = seen_runs(self.viewer)
        rows = self._read(f"SELECT thread_id FROM runs WHERE id = ? AND {seen}", (run_id, *params))
        return rows[0]["thread_id"] if rows else None

    def thread(self, thread_id: str) -> list[RunSummary]:
        """The runs of a thread, oldest first."""
        seen, params = seen_runs(self.viewer)
        rows = self._read(
            f"SELECT {SUMMARY_COLUMNS} FROM runs WHERE thread_id = ? AND {seen} ORDER BY created_at, rowid",
            (thread_id, *params),
        )
        return [RunSummary.from_row(row) for row in rows]

    def threads(self, thread_ids: Iterable[str]) -> dict[str, list[str]]:
        """Run ids of each thread named, oldest first (for a Thread column: "2 of 3")."""
        wanted = sorted(set(thread_ids))
        if not wanted:
            return {}
        found: dict[str, list[str]] = {t: [] for t in wanted}
        seen, params = seen_runs(self.viewer)
        for start in range(0, len(wanted), 500):  # SQLite caps the parameters of one statement
            chunk = wanted[start : start + 500]
            rows = self._read(
                f"SELECT id, thread_id FROM runs WHERE thread_id IN ({','.join('?' * len(chunk))})"
                f" AND {seen} ORDER BY created_at, rowid",
                [*chunk, *params],
            )
            for row in rows:
                found[row["thread_id"]].append(row["id"])
        return found
