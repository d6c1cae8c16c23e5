"""Migrations: named, append-only, recorded; an old database upgrades without loss."""

from __future__ import annotations

import importlib.util
import shutil
import sqlite3
from pathlib import Path
from types import ModuleType

import pytest

from core.services.store import MIGRATIONS, Migration, Recorder, Store, StoreError
from core.services.store.db import applied_migrations, connect, migrate
from core.services.store.dialect import POSTGRESQL, SQLITE, Connection, Dialect
from core.services.store.postgres import connect_postgresql
from core.types import Round, RoundFinished, RunFinished, RunStarted
from tests.pg import is_pg, raw_rows

FIXTURES = Path(__file__).with_name("fixtures")


def fixture_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_fixture", FIXTURES / "make_fixture.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


V1 = fixture_module()


@pytest.fixture
def v1_db(tmp_db: Path) -> Path:
    """A copy of the committed v1 database at the test's database path."""
    shutil.copyfile(FIXTURES / "continuum-v1.sqlite3", tmp_db)
    return tmp_db


def schema(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
    return [(name, sql) for name, sql in rows]


# ---------------------------------------------------------------- the v1 fixture


def test_fixture_was_made_by_the_first_migration_only(v1_db: Path) -> None:
    with sqlite3.connect(v1_db) as raw:
        assert applied_migrations(raw) == ["0001_runs_and_rounds"]


def test_first_migration_still_builds_the_fixture_schema(v1_db: Path, tmp_path: Path) -> None:
    fresh = connect(tmp_path / "fresh.sqlite3")
    migrate(fresh, MIGRATIONS[:1])
    with sqlite3.connect(v1_db) as raw:
        assert schema(fresh) == schema(raw)
    fresh.close()


def test_v1_database_upgrades_to_every_migration(v1_db: Path) -> None:
    with Store() as store:
        assert store.path == v1_db
    with sqlite3.connect(v1_db) as raw:
        assert applied_migrations(raw) == [m.name for m in MIGRATIONS]


def test_v1_finished_run_loads_without_loss(v1_db: Path) -> None:
    with Store() as store:
        result = store.load(V1.FINISHED_ID)
    assert (result.spec, result.rounds) == (V1.finished_spec(), V1.finished_rounds())
    assert (result.stop_reason, result.started_at, result.finished_at) == (
        "finished",
        1_700_000_000.0,
        1_700_000_004.5,
    )


def test_v1_interrupted_run_loads_with_its_partial_round(v1_db: Path) -> None:
    with Store() as store:
        result = store.load(V1.INTERRUPTED_ID)
    expected = V1.interrupted_rounds()
    expected[-1].error = "interrupted"
    assert (result.spec, result.rounds, result.stop_reason) == (V1.interrupted_spec(), expected, None)


def test_v1_error_run_keeps_its_error(v1_db: Path) -> None:
    with Store() as store:
        assert store.load(V1.ERROR_ID).error == V1.ERROR


def test_v1_runs_list_with_their_totals(v1_db: Path) -> None:
    with Store() as store:
        rows = {r.id: r for r in store.list_runs()}
    finished = rows[V1.FINISHED_ID]
    assert len(rows) == 3
    assert (finished.title, finished.rounds, finished.prompt_tokens_billed, finished.completion_tokens) == (
        "Flüsse",
        2,
        440,
        520,
    )
    assert (finished.tokens_estimated, finished.cost) == (True, pytest.approx(0.001))


def test_v1_runs_are_searchable_after_the_upgrade(v1_db: Path) -> None:
    with Store() as store:
        assert [r.id for r in store.list_runs(query="ÜBER FLÜSSE")] == [V1.FINISHED_ID]


def test_v1_interrupted_run_resumes_after_the_upgrade(v1_db: Path) -> None:
    with Store() as store:
        result = store.load(V1.INTERRUPTED_ID)
        recorder = Recorder(store, resume=result)
        recorder.handle(RunStarted(result.spec, resumed_rounds=2))
        result.rounds.append(Round(index=3, text=" guide ships.", finish_reason="stop"))
        recorder.handle(RoundFinished(result.rounds[-1]))
        result.stop_reason = "finished"
        recorder.handle(RunFinished("finished", result))
        assert store.load(V1.INTERRUPTED_ID) == result
        assert result.text == "Lighthouses stand on rocky coasts and guide ships."


# ---------------------------------------------------------------- the runner


def connection(store_db: str | Path) -> tuple[Connection, Dialect]:
    """A bare connection to the (empty) store_db, and its dialect, as the store opens it."""
    if is_pg(store_db):
        return connect_postgresql(str(store_db), timeout=10), POSTGRESQL
    return connect(store_db), SQLITE


def tables(store_db: str | Path) -> list[str]:
    if is_pg(store_db):
        sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    return sorted(row[0] for row in raw_rows(store_db, sql))


def test_migrations_are_recorded_by_name_in_order(store_db: str | Path) -> None:
    Store().close()
    assert [row[0] for row in raw_rows(store_db, "SELECT name FROM migrations ORDER BY rowid")] == [
        m.name for m in MIGRATIONS
    ]


def test_reopening_applies_nothing(store_db: str | Path) -> None:
    Store().close()
    with Store() as store:
        assert store.migrate() == []


def test_function_migrations_run_with_the_connection(store_db: str | Path) -> None:
    def backfill(conn: Connection) -> None:
        conn.execute("INSERT INTO notes (body) SELECT upper(body) FROM notes")

    steps = [
        Migration("a_notes", "CREATE TABLE notes (body TEXT);\nINSERT INTO notes VALUES ('x');"),
        Migration("b_backfill", backfill),
    ]
    conn, dialect = connection(store_db)
    try:
        assert migrate(conn, steps, dialect) == ["a_notes", "b_backfill"]
    finally:
        conn.close()
    assert sorted(r[0] for r in raw_rows(store_db, "SELECT body FROM notes")) == ["X", "x"]


def test_new_migrations_apply_on_top_of_old_ones(store_db: str | Path) -> None:
    conn, dialect = connection(store_db)
    first = Migration("a", "CREATE TABLE a (x TEXT);")
    try:
        migrate(conn, [first], dialect)
        assert migrate(conn, [first, Migration("b", "CREATE TABLE b (y REAL);")], dialect) == ["b"]
    finally:
        conn.close()


def test_a_failing_migration_leaves_the_database_as_it_was(store_db: str | Path) -> None:
    def fail(conn: Connection) -> None:
        raise RuntimeError("broken step")

    conn, dialect = connection(store_db)
    try:
        with pytest.raises(RuntimeError, match="broken step"):
            migrate(conn, [Migration("a", "CREATE TABLE a (x TEXT);"), Migration("b", fail)], dialect)
        assert applied_migrations(conn, dialect) == []
    finally:
        conn.close()
    assert tables(store_db) == []


def test_database_from_a_newer_version_is_refused(store_db: str | Path) -> None:
    Store().close()
    raw_rows(store_db, "INSERT INTO migrations (name, applied_at) VALUES ('9999_from_the_future', 0)")
    with pytest.raises(StoreError, match="9999_from_the_future"):
        Store()
