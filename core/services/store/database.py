"""One SQLite file opened for the history: the connection, its lock, reads, writes, migration.

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
from .migrations import MIGRATIONS
from .query import casefold


class Database:
    """The history file, opened and migrated. ``timeout``: seconds a write waits for another
    process's write lock."""

    def __init__(self, path: str | Path | None = None, *, timeout: float = BUSY_TIMEOUT_S) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self.read_only = False
        self._timeout = timeout
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._read_only_error: ReadOnlyHistoryError | None = None
        try:
            self._open(read_only=False)
        except StoreError as exc:
            if not (self.path.is_file() and _cannot_write(exc)):
                raise
            self._open_for_reading(exc)

    def _open(self, *, read_only: bool) -> None:
        self.read_only = read_only
        self._conn = connect(self.path, self._timeout, read_only=read_only)
        self._conn.create_function("casefold", 1, casefold, deterministic=True)
        try:
            self.migrate()
        except BaseException:
            self.close()
            raise

    def _open_for_reading(self, cause: StoreError) -> None:
        """The history exists but cannot be written: open it read-only, or raise ``cause``."""
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
                    pending = pending_migrations(conn, MIGRATIONS)
                    if pending:
                        raise ReadOnlyHistoryError(
                            f"the run history {self.path} is read-only and needs an upgrade this process "
                            f"cannot write ({', '.join(pending)})",
                            hint=f"open it once where it is writable, {ELSEWHERE}",
                        )
                    return []
                return migrate(conn, MIGRATIONS)
            except sqlite3.Error as exc:
                raise store_error(exc, self.path) from exc

    def check_writable(self) -> None:
        """Raise a StoreError unless this process can write the history now.

        :class:`ReadOnlyHistoryError` when it never can; "locked" when another
        process holds the write lock longer than ``timeout``. Call it before
        starting anything that should be saved.
        """
        with self._write() as conn:
            conn.execute("UPDATE runs SET id = id WHERE 0")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("the run history is closed")
        return self._conn

    @contextmanager
    def _write(self, *, wait: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction; ``wait=False`` gives up at once when another process holds the lock."""
        with self._lock:
            if self.read_only:
                known = self._read_only_error
                if known is None:
                    raise ReadOnlyHistoryError(f"the run history {self.path} is open for reading only")
                raise ReadOnlyHistoryError(known.message, known.hint)
            conn = self._db()
            try:
                if not wait:
                    conn.execute("PRAGMA busy_timeout = 0")
                try:
                    with transaction(conn):
                        yield conn
                finally:
                    if not wait:
                        conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            except sqlite3.Error as exc:
                raise store_error(exc, self.path) from exc

    def _read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._db().execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise store_error(exc, self.path) from exc


def _cannot_write(exc: StoreError) -> bool:
    """Whether opening failed for want of write access (worth trying read-only)."""
    cause = exc.__cause__
    code = getattr(cause, "sqlite_errorname", "") or ""
    return isinstance(exc, ReadOnlyHistoryError) or code.startswith("SQLITE_CANTOPEN")
