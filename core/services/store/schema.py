"""The tables of a history as the database itself describes them: columns, keys, foreign keys.

:func:`schema` reads them from SQLite (``sqlite_master``, ``pragma_table_info``,
``pragma_foreign_key_list``) or PostgreSQL (``information_schema``), so a tool that works on every
table (:mod:`.copy`) needs no list of its own and follows every migration. PostgreSQL's ``rowid``
identity column (:mod:`.dialect`) is not a column to copy: the destination numbers its rows itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .database import Database
from .db import StoreError
from .dialect import POSTGRESQL

OWN_TABLES = frozenset({"migrations"})  # each database's own record of its schema


@dataclass(frozen=True)
class ForeignKey:
    parent: str
    columns: tuple[str, ...]  # in the child
    references: tuple[str, ...]  # in the parent


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]  # those copied (PostgreSQL's generated ``rowid`` is left out)
    key: tuple[str, ...]  # the primary key; () when there is none
    parents: tuple[ForeignKey, ...]
    rowid: bool  # has a rowid: read in insertion order, page after page


def quoted(name: str) -> str:
    """A table or column name as an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


_PG_TABLES = (
    "SELECT table_name FROM information_schema.tables"
    " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name"
)
_PG_COLUMNS = (
    "SELECT column_name, is_identity FROM information_schema.columns"
    " WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position"
)
_PG_KEY = (
    "SELECT k.column_name FROM information_schema.table_constraints c"
    " JOIN information_schema.key_column_usage k ON k.constraint_schema = c.constraint_schema"
    " AND k.constraint_name = c.constraint_name AND k.table_name = c.table_name"
    " WHERE c.table_schema = current_schema() AND c.table_name = ? AND c.constraint_type = 'PRIMARY KEY'"
    " ORDER BY k.ordinal_position"
)
_PG_FOREIGN_KEYS = (
    "SELECT r.constraint_name, k.column_name, p.table_name, p.column_name AS parent_column"
    " FROM information_schema.referential_constraints r"
    " JOIN information_schema.key_column_usage k ON k.constraint_schema = r.constraint_schema"
    " AND k.constraint_name = r.constraint_name"
    " JOIN information_schema.key_column_usage p ON p.constraint_schema = r.unique_constraint_schema"
    " AND p.constraint_name = r.unique_constraint_name AND p.ordinal_position = k.position_in_unique_constraint"
    " WHERE k.table_schema = current_schema() AND k.table_name = ?"
    " ORDER BY r.constraint_name, k.ordinal_position"
)


def schema(store: Database) -> dict[str, Table]:
    """Every table of the history but ``migrations``: its columns, key and foreign keys."""
    return _pg_schema(store) if store.dialect is POSTGRESQL else _sqlite_schema(store)


def _sqlite_schema(store: Database) -> dict[str, Table]:
    tables: dict[str, Table] = {}
    names = store._read("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'")
    for (name,) in names:
        if name in OWN_TABLES:
            continue
        info = store._read("SELECT name, pk FROM pragma_table_info(?) ORDER BY cid", (name,))
        key = tuple(row["name"] for row in sorted((r for r in info if r["pk"]), key=lambda r: r["pk"]))
        links: dict[int, list[Any]] = {}
        for row in store._read('SELECT id, "table", "from", "to" FROM pragma_foreign_key_list(?)', (name,)):
            links.setdefault(row["id"], []).append(row)
        parents = tuple(
            ForeignKey(rows[0]["table"], tuple(r["from"] for r in rows), tuple(r["to"] or "" for r in rows))
            for _, rows in sorted(links.items())
        )
        tables[name] = Table(name, tuple(row["name"] for row in info), key, parents, rowid=True)
    return _implicit_references(tables)


def _implicit_references(tables: dict[str, Table]) -> dict[str, Table]:
    """SQLite's ``REFERENCES parent`` without columns names the parent's primary key."""
    fixed: dict[str, Table] = {}
    for name, table in tables.items():
        parents = tuple(
            ForeignKey(fk.parent, fk.columns, tables[fk.parent].key)
            if "" in fk.references and fk.parent in tables
            else fk
            for fk in table.parents
        )
        fixed[name] = Table(name, table.columns, table.key, parents, table.rowid)
    return fixed


def _pg_schema(store: Database) -> dict[str, Table]:
    tables: dict[str, Table] = {}
    for (name,) in store._read(_PG_TABLES):
        if name in OWN_TABLES:
            continue
        columns = store._read(_PG_COLUMNS, (name,))
        copied = tuple(row[0] for row in columns if row["is_identity"] != "YES")
        has_rowid = any(row[0] == "rowid" for row in columns)
        key = tuple(row[0] for row in store._read(_PG_KEY, (name,)))
        links: dict[str, list[Any]] = {}
        for row in store._read(_PG_FOREIGN_KEYS, (name,)):
            links.setdefault(row["constraint_name"], []).append(row)
        parents = tuple(
            ForeignKey(
                rows[0]["table_name"],
                tuple(r["column_name"] for r in rows),
                tuple(r["parent_column"] for r in rows),
            )
            for _, rows in sorted(links.items())
        )
        tables[name] = Table(name, copied, key, parents, has_rowid)
    return tables


def common(source: dict[str, Table], destination: dict[str, Table]) -> list[Table]:
    """The destination's tables, each with the columns the source has too."""
    missing = sorted(set(destination) - set(source))
    if missing:
        raise StoreError(f"the source has no table {', '.join(missing)} after its upgrade")
    return [
        Table(t.name, tuple(c for c in t.columns if c in source[t.name].columns), t.key, t.parents, t.rowid)
        for t in destination.values()
    ]


def parents_first(tables: list[Table]) -> list[Table]:
    """Parents before children (by foreign key), else by name."""
    pending = {t.name: t for t in sorted(tables, key=lambda t: t.name)}
    ordered: list[Table] = []
    while pending:
        ready = [
            t
            for t in pending.values()
            if all(fk.parent == t.name or fk.parent not in pending for fk in t.parents)
        ]
        if not ready:
            raise StoreError(f"the tables {', '.join(pending)} reference each other in a circle")
        for table in ready:
            ordered.append(pending.pop(table.name))
    return ordered
