"""Copying a history into another: a SQLite file into a team's PostgreSQL, or any store into any store.

:func:`copy_history` opens both ends as stores (so each is first migrated to the current schema by
its own migrations), then copies every table of that schema, found in the databases themselves
(:mod:`.schema`: a table or column a later migration adds is copied with no change here), parents before children
(by their foreign keys), each table in the order its rows were inserted (``rowid``; the destination
numbers them again in that order, so "newest first, ties in insertion order" holds there too).
The ``migrations`` table is each database's own and is not copied.

- The source is read in one snapshot (a read transaction), in pages of :data:`PAGE_ROWS` rows, and
  the destination is written in one transaction: a copy that fails leaves it as it was.
- A destination that already holds rows is refused (:class:`CopyRefused`) unless ``merge``: then a
  row whose primary key is already there is skipped, and so is every row that hangs from a skipped
  one (by a foreign key: the rounds and edits of a run already there), so a run is never half from
  each side. What is there stays as it is.
- Rows go in with ``COPY`` on PostgreSQL, with ``executemany`` on SQLite.
- A run left "running" by a process that is gone arrives "interrupted" (as the source's own
  ``runs list`` shows it); a run that a live process is still recording is refused: copy once it
  has ended.
- Values go as they are: ids, timestamps, JSON text, NULLs, floats (exactly: psycopg sends a
  float's shortest round-trip text).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .db import BUSY_TIMEOUT_S, StoreError, applied_migrations, connect, store_error
from .dialect import POSTGRESQL, SQLITE, Connection, is_postgresql_url, redact_url
from .runs import Store
from .schema import Table, common, parents_first, quoted, schema

SOURCE_HINT = "give the file (or database URL) of a history a Continuum app or command wrote"
PAGE_ROWS = 500  # rows read, and written (one COPY or executemany), at a time
SNAPSHOT = {  # a read transaction: every page is read from the same state of the source
    SQLITE.name: "BEGIN",
    POSTGRESQL.name: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
}


class CopyRefused(StoreError):
    """The copy would lose or mix data (a destination with rows, a run still being recorded…)."""


@dataclass
class TableCopy:
    """How one table went: ``rows`` in the source, ``copied``, ``skipped`` (already there)."""

    name: str
    rows: int = 0
    copied: int = 0
    skipped: int = 0


@dataclass
class CopyReport:
    source: str  # the file, or the URL without its password
    destination: str
    tables: list[TableCopy] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)  # runs copied as "interrupted"
    seconds: float = 0.0

    def copied(self, table: str) -> int:
        return sum(t.copied for t in self.tables if t.name == table)


Progress = Callable[[TableCopy], None]


def copy_history(
    source: str | Path,
    destination: str | Path,
    *,
    merge: bool = False,
    progress: Progress | None = None,
) -> CopyReport:
    """Copy every row of the history ``source`` into ``destination`` (see the module docstring).

    Raises :class:`StoreError` when either end cannot be used (a missing source, a file that is
    not a history, a schema newer than this Continuum, a server that cannot be reached) and
    :class:`CopyRefused` when the copy would lose or mix data.
    """
    started = time.monotonic()
    check_source(source)
    with _open(source, "source") as src, _open(destination, "destination") as dst:
        if _same(src, dst):
            raise CopyRefused(f"the source and the destination are the same history ({src.path})")
        report = CopyReport(str(src.path), str(dst.path))
        tables = parents_first(common(schema(src), schema(dst)))
        with _snapshot(src), dst._write() as out:
            if not merge:
                _refuse_rows(dst, out, tables)
            report.interrupted = _orphans(src)
            copier = _Copier(src, dst, out, tables, merge=merge, progress=progress)
            for table in tables:
                fix = _interrupt(table, set(report.interrupted)) if table.name == "runs" else None
                report.tables.append(copier.copy(table, fix))
    report.seconds = time.monotonic() - started
    return report


def check_source(source: str | Path) -> None:
    """Raise a StoreError unless ``source`` is an existing Continuum history (it is never created)."""
    where = redact_url(str(source)) if is_postgresql_url(source) else str(Path(source).expanduser())
    try:
        found = _applied(source)
    except StoreError as exc:
        raise type(exc)(f"source: {exc.message}", hint=exc.hint) from exc
    if not found:
        raise StoreError(f"{where} is not a Continuum history (it has no migrations table)", hint=SOURCE_HINT)


def _applied(source: str | Path) -> list[str]:
    """The migrations ``source`` records, read without creating or upgrading anything."""
    if is_postgresql_url(source):
        from . import postgres  # psycopg is loaded only for a PostgreSQL history

        with _closing(postgres.connect_postgresql(str(source), BUSY_TIMEOUT_S)) as conn:
            try:
                return applied_migrations(conn, POSTGRESQL)
            except postgres.psycopg.Error as exc:
                raise postgres.pg_store_error(exc, str(source)) from exc
    path = Path(source).expanduser()
    if not path.exists():
        raise StoreError(f"the history {path} does not exist", hint="check the path")
    if path.is_dir():
        raise StoreError(f"the history {path} is a directory, not a database file", hint=SOURCE_HINT)
    with _closing(connect(path, read_only=True)) as conn:
        try:
            return applied_migrations(conn, SQLITE)
        except sqlite3.Error as exc:
            raise store_error(exc, path) from exc


@contextmanager
def _closing(conn: Connection) -> Iterator[Connection]:
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def _open(target: str | Path, role: str) -> Iterator[Store]:
    """The store at ``target``, migrated; its errors say which end it is."""
    try:
        store = Store(target)
    except StoreError as exc:
        raise type(exc)(f"{role}: {exc.message}", hint=exc.hint) from exc
    with store:
        yield store


def _same(a: Store, b: Store) -> bool:
    if isinstance(a.path, Path) and isinstance(b.path, Path):
        return a.path.exists() and b.path.exists() and a.path.samefile(b.path)
    return str(a.path) == str(b.path)


@contextmanager
def _snapshot(store: Store) -> Iterator[None]:
    """One read transaction on ``store`` (holding its lock: no other thread uses the connection)."""
    with store._lock:
        conn = store._db()
        try:
            conn.execute(SNAPSHOT[store.dialect.name])
        except store._errors as exc:
            raise store._error(exc) from exc
        try:
            yield
        finally:
            try:
                conn.execute("ROLLBACK")
            except store._errors:
                pass  # the connection broke: the snapshot ended with it


# ---------------------------------------------------------------- the rows


def _refuse_rows(dst: Store, out: Connection, tables: list[Table]) -> None:
    counts = {
        t.name: int(out.execute(f"SELECT count(*) FROM {quoted(t.name)}").fetchone()[0]) for t in tables
    }
    if any(counts.values()):
        runs = counts.pop("runs", 0)
        others = sum(counts.values())
        held = f"{runs:,} runs" + (f" and {others:,} other rows" if others else "")
        raise CopyRefused(
            f"the destination {dst.path} already holds a history ({held}); nothing was copied",
            hint="merge into it (runs copy --merge: rows already there stay as they are and are skipped)"
            " or copy into an empty database",
        )


def _orphans(src: Store) -> list[str]:
    """Runs the source shows "running" whose process is gone (copied as "interrupted");
    CopyRefused when a live process still records one."""
    running = [row[0] for row in src._read("SELECT id FROM runs WHERE status = 'running' ORDER BY rowid")]
    live = [run_id for run_id in running if src.is_active(run_id)]
    if live:
        raise CopyRefused(
            f"{len(live)} run(s) of the source are still being recorded ({', '.join(live[:5])}); nothing was copied",
            hint="copy once they have ended (or stop them)",
        )
    return running


def _interrupt(table: Table, orphans: set[str]) -> Callable[[list[Any]], list[Any]] | None:
    """The runs-row fix: a "running" run whose process is gone becomes "interrupted"."""
    if not orphans or "status" not in table.columns or "id" not in table.columns:
        return None
    status, run_id = table.columns.index("status"), table.columns.index("id")

    def fix(row: list[Any]) -> list[Any]:
        if row[status] == "running" and row[run_id] in orphans:
            row[status] = "interrupted"
        return row

    return fix


class _Copier:
    """Copies tables page by page, remembering the keys of rows skipped (merge) for their children."""

    def __init__(
        self,
        src: Store,
        dst: Store,
        out: Connection,
        tables: list[Table],
        *,
        merge: bool,
        progress: Progress | None,
    ) -> None:
        self.src = src
        self.dst = dst
        self.out = out
        self.merge = merge
        self.progress = progress
        self.wanted: dict[str, set[tuple[str, ...]]] = {}  # table → column sets its children reference
        for table in tables:
            for fk in table.parents:
                self.wanted.setdefault(fk.parent, set()).add(fk.references)
        self.skipped: dict[tuple[str, tuple[str, ...]], set[tuple[Any, ...]]] = {}

    def copy(self, table: Table, fix: Callable[[list[Any]], list[Any]] | None) -> TableCopy:
        done = TableCopy(table.name)
        name = quoted(table.name)
        done.rows = int(self.src._read(f"SELECT count(*) FROM {name}")[0][0])
        before = int(self.out.execute(f"SELECT count(*) FROM {name}").fetchone()[0])
        there = self._keys(table) if self.merge and table.key else set()
        columns = ", ".join(quoted(c) for c in table.columns)
        insert = f"INSERT INTO {name} ({columns}) VALUES ({', '.join('?' * len(table.columns))})"
        if self.merge:
            insert += " ON CONFLICT DO NOTHING"
        for page in self._pages(table):
            rows = [
                row for row in (fix(row) if fix else row for row in page) if self._keep(table, row, there)
            ]
            if rows:
                self._insert(table, insert, rows)
            done.copied += len(rows)
            done.skipped += len(page) - len(rows)
            if self.progress:
                self.progress(done)
        done.copied = int(self.out.execute(f"SELECT count(*) FROM {name}").fetchone()[0]) - before
        done.skipped = done.rows - done.copied
        return done

    def _insert(self, table: Table, sql: str, rows: list[list[Any]]) -> None:
        """``executemany`` (SQLite), or COPY (PostgreSQL: the rows are new, ``_keep`` saw to it)."""
        try:
            if self.dst.dialect is POSTGRESQL:
                from .postgres import PgConnection  # psycopg is loaded only for a PostgreSQL history

                assert isinstance(self.out, PgConnection)
                self.out.copy_rows(quoted(table.name), [quoted(c) for c in table.columns], rows)
            else:
                self.out.executemany(sql, rows)
        except self.dst._errors as exc:
            error = self.dst._error(exc)
            raise type(error)(f"copying the {table.name} table: {error.message}", hint=error.hint) from exc

    def _keys(self, table: Table) -> set[tuple[Any, ...]]:
        key = ", ".join(quoted(c) for c in table.key)
        return {tuple(row) for row in self.out.execute(f"SELECT {key} FROM {quoted(table.name)}").fetchall()}

    def _keep(self, table: Table, row: list[Any], there: set[tuple[Any, ...]]) -> bool:
        """False for a row already in the destination, or hanging from a row skipped."""
        index = table.columns.index
        skip = bool(there) and tuple(row[index(c)] for c in table.key) in there
        for fk in table.parents:
            gone = self.skipped.get((fk.parent, fk.references), set())
            skip = skip or (bool(gone) and tuple(row[index(c)] for c in fk.columns) in gone)
        if skip:
            for columns in self.wanted.get(table.name, ()):
                if all(c in table.columns for c in columns):
                    found = self.skipped.setdefault((table.name, columns), set())
                    found.add(tuple(row[index(c)] for c in columns))
        return not skip

    def _pages(self, table: Table) -> Iterator[list[list[Any]]]:
        """The source rows in insertion order, :data:`PAGE_ROWS` at a time (all at once without a rowid)."""
        columns = ", ".join(quoted(c) for c in table.columns)
        name = quoted(table.name)
        if not table.rowid:
            order = f" ORDER BY {', '.join(quoted(c) for c in table.key)}" if table.key else ""
            yield [list(row) for row in self.src._read(f"SELECT {columns} FROM {name}{order}")]
            return
        last: Any = None
        while True:
            where = "" if last is None else " WHERE rowid > ?"
            sql = f"SELECT rowid, {columns} FROM {name}{where} ORDER BY rowid LIMIT {PAGE_ROWS}"
            page = self.src._read(sql, () if last is None else (last,))
            if not page:
                return
            last = page[-1][0]
            yield [list(row)[1:] for row in page]
