"""Opening the database: where it lives, how it is configured, how it is upgraded.

Migrations are named, append-only and tracked in the ``migrations`` table
(``name``, ``applied_at``). Each one is either SQL text or a function taking the
connection; all pending migrations run in one ``BEGIN IMMEDIATE`` transaction,
so two processes opening an old database at once upgrade it exactly once and a
failed upgrade leaves the database as it was. A database that is up to date is
only read when opened: a reader never needs the write lock, so another process
holding it (even ``BEGIN EXCLUSIVE``, which WAL mode lets readers through) does
not stop ``runs list``.

On PostgreSQL (:mod:`.dialect`) the same migrations run, in PostgreSQL's words (a migration's
own ``postgresql`` SQL, else its SQL translated by :func:`~.dialect.to_postgresql`), in one
transaction that first takes an advisory lock, so concurrent upgrades are serialised there too.

Every SQLite or file-system failure leaves this package as a :class:`StoreError`
(see :func:`store_error`) whose message names the file and says what to do.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.wire.errors import ContinuumError

from .dialect import SQLITE, Connection, Dialect, is_postgresql_url, to_postgresql

BUSY_TIMEOUT_S = 10.0  # how long a write waits for another process's write lock
ELSEWHERE = "or set CONTINUUM_DB to another file"
MIGRATIONS_TABLE = "CREATE TABLE IF NOT EXISTS migrations ( name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"


class StoreError(ContinuumError):
    """The run history cannot be used as asked: a closed store, an unknown run, a newer schema,
    a busy run, a path that is not a history, a history locked by another process.

    The message names the file and says what to do; front ends show it as it is.
    """


class ReadOnlyHistoryError(StoreError):
    """This process cannot write the history (a read-only file, folder or file system).

    It can usually still be read: :class:`~core.services.store.Store` then opens it read-only
    (``Store.read_only``) and raises this on the first write.
    """


class RunTakenOver(StoreError):
    """Another process has taken the run over (a batch worker whose claim went stale): this
    process's write to it is refused, and nothing of it is written."""


def store_error(exc: sqlite3.Error | OSError, path: str | Path) -> StoreError:
    """``exc`` (from SQLite or the file system) as a StoreError naming ``path`` and what to do."""
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return ReadOnlyHistoryError(
                f"the run history {path} cannot be created ({reason}: {exc.filename or Path(path).parent})",
                hint=f"make that folder writable, {ELSEWHERE}",
            )
        return StoreError(
            f"the run history {path} cannot be created ({reason})", hint=f"check the path, {ELSEWHERE}"
        )
    code = getattr(exc, "sqlite_errorname", "") or ""
    reason = str(exc)
    if code.startswith("SQLITE_NOTADB") or "not a database" in reason:
        return StoreError(
            f"{path} is not a run history (it is not a SQLite database: {reason})",
            hint=f"move that file away, {ELSEWHERE}",
        )
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in reason:
        return StoreError(
            f"the run history {path} is locked by another process ({reason})",
            hint=f"wait for that process to finish its write (or close it), {ELSEWHERE}",
        )
    if code.startswith("SQLITE_READONLY") or "readonly" in reason:
        return ReadOnlyHistoryError(
            f"the run history {path} is read-only ({reason})",
            hint=f"make the file and its folder writable, {ELSEWHERE}",
        )
    if code.startswith("SQLITE_CANTOPEN"):
        return StoreError(
            f"the run history {path} cannot be opened ({reason})",
            hint=f"check that the file and its folder can be read and written, {ELSEWHERE}",
        )
    if code.startswith("SQLITE_CORRUPT") or "malformed" in reason:
        return StoreError(
            f"the run history {path} is damaged ({reason})",
            hint=f"move that file away (the `sqlite3` tool's .recover may save its runs), {ELSEWHERE}",
        )
    if code.startswith("SQLITE_FULL"):
        return StoreError(f"the run history {path} cannot grow: the disk is full", hint="free some space")
    return StoreError(f"the run history {path} failed: {reason}", hint=f"check the file, {ELSEWHERE}")


# A migration written as a function gets the connection (``execute(sql, params)`` with ``?``).
MigrationStep = str | Callable[[Any], None]

# Concurrent upgrades of one PostgreSQL database wait for each other on this advisory lock.
PG_MIGRATION_LOCK = 7_262_011_401


@dataclass(frozen=True)
class Migration:
    """One schema step. ``apply`` is SQL (one or more statements, SQLite's words) or ``fn(connection)``.

    ``postgresql``: what runs on PostgreSQL instead, when the translation of ``apply``
    (:func:`~.dialect.to_postgresql`) is not right; a function ``apply`` runs on both unless given.
    """

    name: str
    apply: MigrationStep
    postgresql: MigrationStep | None = None

    def step(self, dialect: Dialect) -> MigrationStep:
        if dialect is SQLITE:
            return self.apply
        if self.postgresql is not None:
            return self.postgresql
        return to_postgresql(self.apply) if isinstance(self.apply, str) else self.apply


def default_db_path() -> Path | str:
    """``$CONTINUUM_DB``, else ``$XDG_DATA_HOME/continuum/continuum.sqlite3``
    (``~/.local/share/continuum/continuum.sqlite3`` when XDG_DATA_HOME is unset).

    A PostgreSQL URL (``postgresql://…`` or ``postgres://…``) comes back as it is, a str.
    """
    explicit = os.environ.get("CONTINUUM_DB")
    if explicit and is_postgresql_url(explicit):
        return explicit
    if explicit:
        return Path(explicit).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home).expanduser() / "continuum" / "continuum.sqlite3"


def connect(
    path: str | Path, timeout: float = BUSY_TIMEOUT_S, *, read_only: bool = False
) -> sqlite3.Connection:
    """A configured connection: WAL, busy timeout, foreign keys, autocommit mode.

    Autocommit (``isolation_level=None``) because every write goes through
    :func:`transaction`. ``synchronous=NORMAL`` in WAL mode keeps every committed
    transaction across a killed process (only an OS crash can lose the last ones).
    ``check_same_thread=False``: the store serialises access with its own lock.
    The journal mode is only switched (a write) when it is not WAL already.

    ``read_only``: open for reading only (``mode=ro``); when even that cannot
    work because SQLite cannot create the ``-shm`` file beside a WAL database (a
    read-only folder), the file is opened ``immutable``: no process can be
    writing it then, since a writer would need that file too.

    Raises :class:`StoreError` (see :func:`store_error`), never a sqlite3 error.
    """
    target = str(path)
    memory = target == ":memory:"
    if not memory and Path(target).is_dir():
        raise StoreError(
            f"the run history {path} is a directory, not a database file",
            hint=f"set CONTINUUM_DB to a file path, e.g. {Path(target) / 'continuum.sqlite3'}",
        )
    if not memory and not read_only:
        try:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise store_error(exc, path) from exc
    uri = None if memory or not read_only else Path(target).resolve().as_uri() + "?mode=ro"
    try:
        return _configure(_open(uri or target, timeout, uri=uri is not None), timeout, read_only)
    except sqlite3.Error as exc:
        cannot_open = getattr(exc, "sqlite_errorname", "").startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY"))
        folder = Path(target).parent
        if cannot_open and not memory and not Path(target).exists() and not os.access(folder, os.W_OK):
            raise ReadOnlyHistoryError(
                f"the run history {path} cannot be created: its folder {folder} is read-only",
                hint=f"make that folder writable, {ELSEWHERE}",
            ) from exc
        if uri is None or not cannot_open:
            raise store_error(exc, path) from exc
    try:
        return _configure(_open(uri + "&immutable=1", timeout, uri=True), timeout, read_only)
    except sqlite3.Error as exc:
        raise store_error(exc, path) from exc


def _open(target: str, timeout: float, *, uri: bool) -> sqlite3.Connection:
    return sqlite3.connect(target, timeout=timeout, isolation_level=None, check_same_thread=False, uri=uri)


def _configure(conn: sqlite3.Connection, timeout: float, read_only: bool) -> sqlite3.Connection:
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]  # the first read: a bad file fails here
        if not read_only:
            if str(mode).lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def transaction(conn: Connection, dialect: Dialect = SQLITE) -> Iterator[Connection]:
    """``BEGIN IMMEDIATE`` (PostgreSQL: ``BEGIN``) … ``COMMIT``, rolled back if the block raises."""
    conn.execute(dialect.begin)
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


def applied_migrations(conn: Connection, dialect: Dialect = SQLITE) -> list[str]:
    """Names of the migrations recorded in the database, oldest first."""
    exists = conn.execute(dialect.table_exists, ("migrations",)).fetchone()
    if not exists:
        return []
    rows = conn.execute("SELECT name FROM migrations ORDER BY rowid").fetchall()
    return [row[0] for row in rows]


def pending_migrations(
    conn: Connection, migrations: Sequence[Migration], dialect: Dialect = SQLITE
) -> list[str]:
    """Names of ``migrations`` not yet applied (a read only).

    Raises :class:`StoreError` when the database records a migration this code
    does not know (it was written by a newer Continuum).
    """
    names = [m.name for m in migrations]
    if len(set(names)) != len(names):
        raise ValueError("migration names must be unique")
    done = applied_migrations(conn, dialect)
    unknown = [name for name in done if name not in names]
    if unknown:
        raise StoreError(
            f"the run history database has migrations this version does not know ({', '.join(unknown)}); "
            "it was written by a newer Continuum: upgrade, or point CONTINUUM_DB at another file"
        )
    return [name for name in names if name not in done]


def migrate(conn: Connection, migrations: Sequence[Migration], dialect: Dialect = SQLITE) -> list[str]:
    """Apply the migrations not yet recorded, in order; returns the names applied now.

    An up-to-date database is only read (no write lock). Raises
    :class:`StoreError` when the database records a migration this code does not
    know (it was written by a newer Continuum).
    """
    if not pending_migrations(conn, migrations, dialect):
        return []
    with transaction(conn, dialect):
        if dialect is not SQLITE:
            conn.execute("SELECT pg_advisory_xact_lock(?)", (PG_MIGRATION_LOCK,))
        conn.execute(MIGRATIONS_TABLE if dialect is SQLITE else to_postgresql(MIGRATIONS_TABLE))
        pending = pending_migrations(conn, migrations, dialect)  # again, under the lock: another may have won
        applied: list[str] = []
        for migration in migrations:
            if migration.name not in pending:
                continue
            step = migration.step(dialect)
            if isinstance(step, str):
                for statement in split_sql(step):
                    conn.execute(statement)
            else:
                step(conn)
            conn.execute(
                "INSERT INTO migrations (name, applied_at) VALUES (?, ?)", (migration.name, time.time())
            )
            applied.append(migration.name)
    return applied
