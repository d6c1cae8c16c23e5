"""Run history in SQLite, or PostgreSQL: rounds → rows.

- :class:`Store` — runs and rounds in one file (``$CONTINUUM_DB``, else
  ``$XDG_DATA_HOME/continuum/continuum.sqlite3``), WAL mode, migrated on open; or, when
  ``$CONTINUUM_DB`` is a ``postgresql://`` URL, in that database (psycopg 3; the same methods and
  migrations, :mod:`.dialect` says where the SQL differs), where runs of other hosts are judged
  by their heartbeat (:mod:`.liveness`).
- :class:`Recorder` — engine events → rows as they stream (the live round is
  saved at least once a second), so a killed run can be marked "interrupted"
  by :meth:`Store.mark_interrupted` and resumed from :meth:`Store.load`.
- :class:`RunSummary` — one line of :meth:`Store.list_runs` (its ``source``: "api" for a run
  that answered a request to ``python -m core serve``, set by :func:`set_source`).
- :class:`Batches` — batches (``core.services.batch``): shared settings and items, each
  item linked to its run.
- :class:`StoreError` — every failure, naming the file and what to do (not a
  database, a directory, locked by another process…); :class:`ReadOnlyHistoryError`
  when this process cannot write it (a read-only history is still opened for reading).

API keys are never stored: specs are cleaned of secret-looking fields first.
"""

from __future__ import annotations

from .batches import Batches, BatchItemRow, BatchRecord, BatchSummary
from .db import Migration, ReadOnlyHistoryError, RunTakenOver, StoreError, default_db_path
from .migrations import MIGRATIONS
from .recorder import Recorder
from .rows import RUN_STATUSES, RunSummary, status_for
from .runs import Store
from .sources import set_source

__all__ = [
    "MIGRATIONS",
    "RUN_STATUSES",
    "BatchItemRow",
    "BatchRecord",
    "BatchSummary",
    "Batches",
    "Migration",
    "ReadOnlyHistoryError",
    "Recorder",
    "RunSummary",
    "RunTakenOver",
    "Store",
    "StoreError",
    "default_db_path",
    "set_source",
    "status_for",
]
