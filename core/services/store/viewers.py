"""Who the store answers for: a view of the history for one person, and runs shared with the team.

:class:`Viewers` is the part of :class:`~core.services.store.Store` that knows the viewer:

    store = Store()                      # the administrator's view: every run (the CLI, the endpoint)
    mine = store.seen_by("https://id.example.com|alice")  # alice's view of the same history

A view shares its store's connection and lock (nothing is opened), and every read of it keeps
to what its person sees (:func:`~.query.seen_runs`: their own runs, runs shared with the team,
runs of nobody), every change to what they own (:func:`~.query.changeable`), and every run or
batch it creates is theirs, with their name. A run of a batch belongs to the batch's person. The SQL of it lives
in :mod:`.query`, once.
"""

from __future__ import annotations

import copy
from typing import Self

from .database import Database
from .db import StoreError
from .dialect import Connection
from .query import changeable, seen_runs


class Viewers(Database):
    """The viewer of a store (see the module docstring); None: the administrator, every run."""

    viewer: str | None = None
    viewer_name: str | None = None  # what the viewer is called, stored with the runs they start
    _viewed: Database | None = None  # the store a view looks through (None: this is the store)

    def seen_by(self, viewer: str | None, *, name: str | None = None) -> Self:
        """This history as ``viewer`` sees it (None: everything); ``name``: what they are called on
        screen (:func:`core.services.people.display_name`), kept with every run or batch the view
        creates so the team reads who shared a run. Cheap: share the connection. A view is never
        closed (closing belongs to the store it looks through)."""
        view = copy.copy(self)
        view.viewer = viewer or None
        view.viewer_name = ((name or "").strip() or None) if view.viewer else None
        view._viewed = self._viewed or self
        view._conn = None  # every query goes through the store's own connection (:meth:`_db`)
        return view

    def _db(self) -> Connection:
        if self._viewed is not None:  # one connection, reopened in one place
            return self._viewed._db()
        return super()._db()

    def _sees(self, run_id: str) -> bool:
        seen, params = seen_runs(self.viewer)
        return bool(self._read(f"SELECT 1 FROM runs WHERE id = ? AND {seen}", (run_id, *params)))

    def may_change(self, run_id: str) -> bool:
        """Whether this viewer may rename, delete, share or resume ``run_id`` (their own run)."""
        mine, params = changeable(self.viewer)
        return bool(self._read(f"SELECT 1 FROM runs WHERE id = ? AND {mine}", (run_id, *params)))

    def share(self, run_id: str, shared: bool) -> None:
        """Share ``run_id`` with the team, or make it private again (its person only)."""
        mine, params = changeable(self.viewer)
        with self._write() as conn:
            cur = conn.execute(
                f"UPDATE runs SET shared = ? WHERE id = ? AND {mine}", (int(shared), run_id, *params)
            )
            if cur.rowcount == 0:
                raise StoreError(f"no run {run_id!r} of yours in the history")

    def _changing(self, conn: Connection, run_id: str) -> None:
        """Refuse a change to a run this viewer does not own (called inside a write)."""
        if self.viewer is None:
            return
        rows = conn.execute("SELECT person FROM runs WHERE id = ?", (run_id,)).fetchall()
        if rows and rows[0][0] != self.viewer:
            raise StoreError(f"run {run_id} is not yours: only the person who started it may change it")
