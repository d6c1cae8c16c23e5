"""Opening the database: where it lives, how it is configured, how it is upgraded.

Migrations are named, append-only and tracked in the ``migrations`` table
(``name``, ``applied_at``). Each one is either SQL text or a function taking the
connection; all pending migrations run in one ``BEGIN IMMEDIATE`` transaction,
so two processes opening an old database at once upgrade it exactly once and a
failed upgrade leaves the database as it was.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.errors import ContinuumError

BUSY_TIMEOUT_MS = 10_000


class StoreError(ContinuumError):
    """The run history cannot be used as asked (closed store, unknown run, newer schema, busy run)."""


@dataclass(frozen=True)
class Migration:
    """One schema step. ``apply`` is SQL (one or more statements) or ``fn(connection)``."""

    name: str
    apply: str | Callable[[sqlite3.Connection], None]


def default_db_path() -> Path:
    """``$CONTINUUM_DB``, else ``$XDG_DATA_HOME/continuum/continuum.sqlite3``
    (``~/.local/share/continuum/continuum.sqlite3`` when XDG_DATA_HOME is unset)."""
    explicit = os.environ.get("CONTINUUM_DB")
    if explicit:
        return Path(explicit).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home).expanduser() / "continuum" / "continuum.sqlite3"


def connect(path: str | Path) -> sqlite3.Connection:
    """A configured connection: WAL, busy timeout, foreign keys, autocommit mode.

    Autocommit (``isolation_level=None``) because every write goes through
    :func:`transaction`. ``synchronous=NORMAL`` in WAL mode keeps every committed
    transaction across a killed process (only an OS crash can lose the last ones).
    ``check_same_thread=False``: the store serialises access with its own lock.
    """
    target = str(path)
    if target != ":memory:":
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        target, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back if the block raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def split_sql(script: str) -> list[str]:
    """Split a script into complete statements (``executescript`` would commit mid-transaction)."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement in migration: {pending.strip()[:80]!r}")
    return statements


def applied_migrations(conn: sqlite3.Connection) -> list[str]:
    """Names of the migrations recorded in the database, oldest first."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'migrations'"
    ).fetchone()
    if not exists:
        return []
    rows = conn.execute("SELECT name FROM migrations ORDER BY rowid").fetchall()
    return [row[0] for row in rows]


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> list[str]:
    """Apply the migrations not yet recorded, in order; returns the names applied now.

    Raises :class:`StoreError` when the database records a migration this code
    does not know (it was written by a newer Continuum).
    """
    names = [m.name for m in migrations]
    if len(set(names)) != len(names):
        raise ValueError("migration names must be unique")
    with transaction(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS migrations ( name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
        )
        done = applied_migrations(conn)
        unknown = [name for name in done if name not in names]
        if unknown:
            raise StoreError(
                f"the run history database has migrations this version does not know ({', '.join(unknown)}); "
                "it was written by a newer Continuum: upgrade, or point CONTINUUM_DB at another file"
            )
        applied: list[str] = []
        for migration in migrations:
            if migration.name in done:
                continue
            if isinstance(migration.apply, str):
                for statement in split_sql(migration.apply):
                    conn.execute(statement)
            else:
                migration.apply(conn)
            conn.execute(
                "INSERT INTO migrations (name, applied_at) VALUES (?, ?)", (migration.name, time.time())
            )
            applied.append(migration.name)
    return applied
