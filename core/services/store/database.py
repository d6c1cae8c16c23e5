"""The history opened: the connection, its lock, reads, writes, migration (SQLite or PostgreSQL).

:class:`Database` is the plumbing under :class:`~core.services.store.Store` (and
:class:`~core.services.store.Batches`, which writes through the store). One connection per
store, shared by every thread behind a lock (SQLite serialises writers anyway;
each write is a short transaction). Several processes (the app, a ``python -m
core run``) may use one file at once: WAL lets readers run beside the writer and
``busy_timeout`` makes writers wait.

Every failure is a :class:`StoreError` naming the file and what to do (a file
that is not a database, a directory, a lock held by another process…). A history
this process cannot write (a read-only file, folder or file system) is opened for
reading instead: ``read_only`` is True and every write raises
:class:`ReadOnlyHistoryError`.

A PostgreSQL URL (``CONTINUUM_DB=postgresql://user@host/db``, see :mod:`.dialect`) opens the
same store on PostgreSQL through psycopg (:mod:`.postgres`): the same methods, the same
migrations. ``path`` is then the URL without its password; ``dialect`` says which one it is.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from .db import (
    BUSY_TIMEOUT_S,
    ELSEWHERE,
    ReadOnlyHistoryError,
    StoreError,
    connect,
    default_db_path,
    migrate,
    pending_migrations,
    store_error,
    transaction,
)
from .dialect import POSTGRESQL, SQLITE, Connection, Dialect, is_postgresql_url, redact_url
from .migrations import MIGRATIONS
from .query import casefold


class Database:
    """The history, opened and migrated: a SQLite file, or a PostgreSQL database named by URL.
    ``timeout``: seconds a write waits for another process's write lock."""

    path: Path | str  # the file, or the URL without its password

    def __init__(self, path: str | Path | None = None, *, timeout: float = BUSY_TIMEOUT_S) -> None:
        target = path if path is not None else default_db_path()
        self.dialect: Dialect = POSTGRESQL if is_postgresql_url(target) else SQLITE
        self._url = str(target) if self.dialect is POSTGRESQL else ""
        self.path = redact_url(self._url) if self._url else Path(target)
        self.read_only = False
        self._timeout = timeout
        self._lock = threading.RLock()
        self._conn: Connection | None = None
        self._read_only_error: ReadOnlyHistoryError | None = None
        self._errors: tuple[type[Exception], ...] = (sqlite3.Error,)
        try:
            self._open(read_only=False)
        except StoreError as exc:
            if not (isinstance(self.path, Path) and self.path.is_file() and _cannot_write(exc)):
                raise
            self._open_for_reading(exc)

    def _open(self, *, read_only: bool) -> None:
        self.read_only = read_only
        if self.dialect is POSTGRESQL:
            self._conn = self._connect_postgresql()
        else:
            assert isinstance(self.path, Path)
            conn = connect(self.path, self._timeout, read_only=read_only)
            conn.create_function("casefold", 1, casefold, deterministic=True)
            self._conn = conn
        try:
            self.migrate()
        except BaseException:
            self.close()
            raise

    def _connect_postgresql(self) -> Connection:
        from . import postgres  # psycopg is loaded only for a PostgreSQL history

        self._errors = (sqlite3.Error, postgres.psycopg.Error)
        return postgres.connect_postgresql(self._url, self._timeout)

    def _error(self, exc: Exception) -> StoreError:
        """A database failure as a StoreError naming the history and what to do."""
        if self.dialect is POSTGRESQL and not isinstance(exc, sqlite3.Error):
            from . import postgres  # loaded already: the history is on PostgreSQL

            return postgres.pg_store_error(exc, self._url)
        assert isinstance(exc, sqlite3.Error | OSError)
        return store_error(exc, self.path)

    def _open_for_reading(self, cause: StoreError) -> None:
        """The history exists but cannot be written: open it read-only, or raise ``cause``."""
        assert isinstance(self.path, Path)
        try:
            self._open(read_only=True)
        except StoreError:
            self.read_only = False
            raise cause from None
        folder = self.path.parent
        if not os.access(folder, os.W_OK):
            why = f"its folder {folder} cannot be written"
        elif not os.access(self.path, os.W_OK):
            why = "the file cannot be written"
        else:
            why = str(cause.__cause__ or cause.message)
        self._read_only_error = ReadOnlyHistoryError(
            f"the run history {self.path} is read-only ({why})",
            hint=f"make the file and its folder writable, {ELSEWHERE}",
        )

    # ------------------------------------------------------------ plumbing

    def migrate(self) -> list[str]:
        """Apply pending migrations (done on open); returns the names applied.

        A read-only history must be up to date already (ReadOnlyHistoryError otherwise).
        """
        with self._lock:
            conn = self._db()
            try:
                if self.read_only:
                    pending = pending_migrations(conn, MIGRATIONS, self.dialect)
                    if pending:
                        raise ReadOnlyHistoryError(
                            f"the run history {self.path} is read-only and needs an upgrade this process "
                            f"cannot write ({', '.join(pending)})",
                            hint=f"open it once where it is writable, {ELSEWHERE}",
                        )
                    return []
                return migrate(conn, MIGRATIONS, self.dialect)
            except self._errors as exc:
                raise self._error(exc) from exc

    def check_writable(self) -> None:
        """Raise a StoreError unless this process can write the history now.

        :class:`ReadOnlyHistoryError` when it never can; "locked" when another
        process holds the write lock longer than ``timeout``. Call it before
        starting anything that should be saved.
        """
        with self._write() as conn:
            conn.execute("UPDATE runs SET id = id WHERE 1 = 0")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _db(self) -> Connection:
        if self._conn is None:
            raise StoreError("the run history is closed")
        if getattr(self._conn, "broken", False):  # PostgreSQL: the server restarted, or the network broke
            self._conn.close()
            self._conn = self._connect_postgresql()
        return self._conn

    @contextmanager
    def _write(self, *, wait: bool = True) -> Iterator[Connection]:
        """One write transaction; ``wait=False`` gives up at once when another process holds the lock."""
        with self._lock:
            if self.read_only:
                known = self._read_only_error
                if known is None:
                    raise ReadOnlyHistoryError(f"the run history {self.path} is open for reading only")
                raise ReadOnlyHistoryError(known.message, known.hint)
            sqlite = self.dialect is SQLITE
            try:
                conn = self._db()
                if not wait and sqlite:
                    conn.execute("PRAGMA busy_timeout = 0")
                try:
                    with transaction(conn, self.dialect):
                        if not wait and not sqlite:
                            conn.execute("SET LOCAL lock_timeout = 1")  # 1 ms (0 would mean: forever)
                        yield conn
                finally:
                    if not wait and sqlite:
                        conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            except self._errors as exc:
                raise self._error(exc) from exc

    def _read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        """Rows of ``sql`` (on PostgreSQL, :class:`~.postgres.PgRow`, read the same way)."""
        with self._lock:
            try:
                return self._db().execute(sql, params).fetchall()
            except self._errors as exc:
                raise self._error(exc) from exc


def _cannot_write(exc: StoreError) -> bool:
    """Whether opening failed for want of write access (worth trying read-only)."""
    cause = exc.__cause__
    code = getattr(cause, "sqlite_errorname", "") or ""
    return isinstance(exc, ReadOnlyHistoryError) or code.startswith("SQLITE_CANTOPEN")
