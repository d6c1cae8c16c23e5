"""Where a run came from (``runs.source``, migration ``0006_run_source``).

"" for the app, the command line and batches; ``"api"`` for a request to ``python -m core serve``.
The Runs page and ``runs list`` read it from :attr:`~core.services.store.RunSummary.source`.
"""

from __future__ import annotations

import time

from .runs import Store

__all__ = ["set_source"]


def set_source(store: Store, run_id: str, source: str) -> None:
    """Record that run ``run_id`` came from ``source`` (the run row must exist)."""
    with store._write() as conn:  # the store's own write transaction (this package's)
        conn.execute("UPDATE runs SET source = ?, updated_at = ? WHERE id = ?", (source, time.time(), run_id))
