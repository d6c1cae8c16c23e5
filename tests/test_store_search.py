"""The run-list search folds case as Python's ``casefold`` does, on SQLite and on PostgreSQL alike.

PostgreSQL's ``lower`` leaves "ß" and the final sigma alone; the store folds the title and prompt
itself when it writes them (``runs.search_text``, :mod:`core.services.store.search`), so a search
finds the same runs on both databases.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.services.store import MIGRATIONS, Store
from core.services.store.db import connect, migrate
from core.services.store.dialect import POSTGRESQL, SQLITE
from core.services.store.postgres import connect_postgresql
from core.types import RunSpec
from tests.pg import is_pg, raw_rows

CASES = [
    ("Die Straße am Fluss", "STRASSE fluss"),  # ß is "ss"
    ("GROSSE WELLEN", "große"),  # and the other way round
    ("Der ẞ-Test", "ss-test"),  # the capital sharp s
    ("ΚΟΣΜΟΣ and sea", "κοσμος"),  # a final sigma is a sigma
    ("The ﬁsh market", "FISH"),  # a ligature unfolds
    ("Flüsse ÜBER alles", "über flüsse"),
]


def spec(prompt: str) -> RunSpec:
    return RunSpec(messages=[{"role": "user", "content": prompt}])


@pytest.mark.parametrize(("prompt", "query"), CASES)
def test_search_folds_case_as_python_does(store_db: str | Path, prompt: str, query: str) -> None:
    with Store() as store:
        wanted = store.create_run(spec(prompt))
        store.create_run(spec("Something else entirely"))
        assert [r.id for r in store.list_runs(query=query)] == [wanted]
        assert store.count_runs(query=query) == 1


def test_a_renamed_run_is_found_by_its_new_title(store_db: str | Path) -> None:
    with Store() as store:
        run_id = store.create_run(spec("Write about rivers"))
        store.rename(run_id, "Meine Straße")
        assert [r.id for r in store.list_runs(query="strasse")] == [run_id]
        assert store.list_runs(query="lighthouse") == []


def test_a_run_without_search_text_is_still_found(store_db: str | Path) -> None:
    with Store() as store:
        run_id = store.create_run(spec("Write about Rivers"))
    raw_rows(store_db, "UPDATE runs SET search_text = NULL")  # as a writer other than the store leaves it
    with Store() as store:
        assert [r.id for r in store.list_runs(query="RIVERS")] == [run_id]


def test_runs_of_an_older_history_are_folded_by_the_upgrade(store_db: str | Path) -> None:
    before = [m for m in MIGRATIONS if m.name < "0009_search_fold"]
    conn = connect_postgresql(str(store_db), 10.0) if is_pg(store_db) else connect(store_db)
    migrate(conn, before, POSTGRESQL if is_pg(store_db) else SQLITE)
    conn.execute(
        "INSERT INTO runs (id, created_at, updated_at, started_at, title, prompt, status, spec_json)"
        " VALUES ('old', 1, 1, 1, '', 'Die Straße', 'finished', '{}')"
    )
    conn.close()
    with Store() as store:
        assert [r.id for r in store.list_runs(query="STRASSE")] == ["old"]
