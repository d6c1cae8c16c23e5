"""A PostgreSQL history through psycopg 3: the connection the store uses, and its errors.

:class:`PgConnection` gives the store what it uses of a ``sqlite3.Connection``: ``execute``
(``?`` / ``:name`` placeholders, translated by :func:`~.dialect.pyformat`), ``executemany``,
and rows read by name or position (:class:`PgRow`, like ``sqlite3.Row``). It is in autocommit
mode: every write goes through :func:`~.db.transaction` (``BEGIN`` … ``COMMIT``), as on SQLite.
``lock_timeout`` plays SQLite's ``busy_timeout``: a write waits that long for a row another
process is writing. One connection per store, behind the store's lock; a connection broken by a
server restart is replaced on the next use (:attr:`PgConnection.broken`).

Every psycopg failure leaves as a :class:`~.db.StoreError` (:func:`pg_store_error`) naming the
database (its URL without the password) and what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from .db import ReadOnlyHistoryError, StoreError
from .dialect import SECRET_PARAMS, pyformat, redact_url

CONNECT_TIMEOUT_S = 10
ELSEWHERE_PG = "or set CONTINUUM_DB to another database (or unset it for the local SQLite file)"


class PgRow:
    """One result row: ``row["name"]``, ``row[0]``, ``row.keys()``, iterable (like sqlite3.Row)."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        return self._values[self._index[key] if isinstance(key, str) else key]

    def keys(self) -> list[str]:
        return list(self._index)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"PgRow({dict(zip(self._index, self._values, strict=False))!r})"


def _rows(cursor: Any) -> Callable[[Sequence[Any]], PgRow]:
    description = cursor.description or []
    index = {column.name: i for i, column in enumerate(description)}
    return lambda values: PgRow(values, index)


class PgConnection:
    """A psycopg connection speaking the store's SQL (see the module docstring)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = (), /) -> Any:
        return self._conn.execute(pyformat(sql), parameters)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Any:
        cursor = self._conn.cursor()
        cursor.executemany(pyformat(sql), parameters)
        return cursor

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], /) -> None:
        """``COPY table (columns) FROM STDIN``: many rows at once (names quoted already; used by
        :mod:`.copy`, several times faster than ``executemany``)."""
        with (
            self._conn.cursor() as cursor,
            cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)

    @property
    def broken(self) -> bool:
        return bool(self._conn.closed or self._conn.broken)

    def close(self) -> None:
        self._conn.close()


def connect_postgresql(url: str, timeout: float) -> PgConnection:
    """A configured connection to ``url``; a StoreError when the server cannot be reached."""
    try:
        conn = psycopg.connect(
            url,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name="continuum",
            row_factory=_rows,
        )
    except psycopg.Error as exc:
        raise StoreError(
            f"cannot connect to the run history {redact_url(url)} ({_reason(exc, url)})",
            hint=f"check that the server runs and that the URL, user and password are right, {ELSEWHERE_PG}",
        ) from exc
    try:
        conn.execute(f"SET lock_timeout = {int(timeout * 1000)}")
    except psycopg.Error as exc:
        conn.close()
        raise pg_store_error(exc, url) from exc
    return PgConnection(conn)


def _reason(exc: Exception, url: str) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:  # a URL libpq cannot read: it had no secret to show either
        return text
    for secret in (params.get(name) for name in SECRET_PARAMS):
        if secret:
            text = text.replace(str(secret), "***")
    return text


def pg_store_error(exc: Exception, url: str) -> StoreError:
    """``exc`` as a StoreError naming the database (without its password) and what to do."""
    where = redact_url(url)
    reason = _reason(exc, url)
    if isinstance(exc, pg_errors.InsufficientPrivilege | pg_errors.ReadOnlySqlTransaction):
        return ReadOnlyHistoryError(
            f"the run history {where} cannot be written by this user ({reason})",
            hint=f"grant the user write access to the database, {ELSEWHERE_PG}",
        )
    if isinstance(exc, pg_errors.LockNotAvailable | pg_errors.DeadlockDetected):
        return StoreError(
            f"the run history {where} is locked by another process ({reason})",
            hint=f"wait for that process to finish its write (or close it), {ELSEWHERE_PG}",
        )
    if isinstance(exc, pg_errors.DiskFull):
        return StoreError(
            f"the run history {where} cannot grow: the server's disk is full", hint="free some space"
        )
    if isinstance(exc, psycopg.OperationalError):
        return StoreError(
            f"the run history {where} cannot be reached ({reason})",
            hint=f"check that the server runs (the next write reconnects), {ELSEWHERE_PG}",
        )
    return StoreError(f"the run history {where} failed: {reason}", hint=f"check the database, {ELSEWHERE_PG}")
