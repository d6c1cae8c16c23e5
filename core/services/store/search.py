"""The run-list search, folded the same way on SQLite and PostgreSQL.

A search word matches a run when it appears in the run's title or prompt, case aside, in the
sense of Python's ``str.casefold`` (full Unicode case folding: "STRASSE" finds "Straße", "ﬁ"
finds "fi"). PostgreSQL has no such function (``lower`` leaves "ß" alone, and in a database whose
locale is ``C`` it folds ASCII only), so the store folds once, in Python, when it writes: the
``runs.search_text`` column (migration ``0009_search_fold``) holds ``casefold(title + "\\n" +
prompt)``, written with the title and prompt (:func:`search_text`, :func:`refold`), and the
search (:mod:`.dialect`'s ``text_contains``) looks in it with the words casefolded the same way.
A row whose ``search_text`` is NULL (written by something else than the store) is still searched,
folded by the database as before.
"""

from __future__ import annotations

from .dialect import Connection

BACKFILL_ROWS = 1000  # runs read at a time by the migration


def search_text(title: str | None, prompt: str | None) -> str:
    """What the search looks in: the title and the prompt, casefolded."""
    return f"{title or ''}\n{prompt or ''}".casefold()


def refold(conn: Connection, run_id: str) -> None:
    """Write the search text of ``run_id`` again from its title and prompt (after a rename)."""
    row = conn.execute("SELECT title, prompt FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is not None:
        conn.execute("UPDATE runs SET search_text = ? WHERE id = ?", (search_text(row[0], row[1]), run_id))


def add_search_text(conn: Connection) -> None:
    """Migration ``0009_search_fold`` (on both databases): the column, filled for every run."""
    conn.execute("ALTER TABLE runs ADD COLUMN search_text TEXT")
    last = None
    while True:
        after = "" if last is None else " WHERE rowid > ?"
        rows = conn.execute(
            f"SELECT rowid, id, title, prompt FROM runs{after} ORDER BY rowid LIMIT {BACKFILL_ROWS}",
            () if last is None else (last,),
        ).fetchall()
        if not rows:
            return
        last = rows[-1][0]
        conn.executemany(
            "UPDATE runs SET search_text = ? WHERE id = ?", [(search_text(r[2], r[3]), r[1]) for r in rows]
        )
