"""``runs copy``: a SQLite history into a real (throwaway) PostgreSQL, row for row.

The source is a real SQLite file written through the store (runs of every status, edits, a
thread, a batch, unicode, long texts, NULLs, floats that need every bit); the destination is a
fresh schema of the test cluster (``pg_db``). What arrives is compared table by table (every
column of the migrated schema, in insertion order) and read back through the store.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from core.cli import main
from core.services.store import Batches, Store, StoreError
from core.services.store.copy import CopyRefused, copy_history
from core.services.store.owner import claim_run, release_run
from core.services.store.schema import schema
from core.types import Edit, ErrorInfo, Round, RunResult, RunSpec
from tests.pg import raw_rows

FIXTURES = Path(__file__).with_name("fixtures")
LONG = "Ein Fluss fließt 🌊 über Steine.\n" * 6000  # ~200 kB: spills into SQLite's overflow pages
TIE = 1_712_345_678.123_456_7  # runs created at the same instant: insertion order breaks the tie
Rows = dict[str, list[tuple[Any, ...]]]


def spec(prompt: str) -> RunSpec:
    return RunSpec(messages=[{"role": "user", "content": prompt}], provider="demo", model="demo-32k")


def result(prompt: str, stop: str | None, rounds: list[Round], **kw: Any) -> RunResult:
    return RunResult(spec=spec(prompt), rounds=rounds, stop_reason=stop, started_at=TIE - 5, **kw)


def make_source(path: Path) -> dict[str, str]:
    """A history with a bit of everything; returns the ids by name."""
    with Store(path) as store:
        first = [
            Round(index=1, text=LONG, finish_reason="length", cost=0.1 + 0.2, ttft_s=1e-300),
            Round(index=2, text="Ende.", finish_reason="stop", reasoning="思考 " * 50),
        ]
        ids = {"long": store.save(result("Schreibe ÜBER Flüsse", "finished", first))}
        error = ErrorInfo(kind="HTTPError", message="503 ☃")
        ids["error"] = store.save(result("Write about ice", "error", [], error=error))
        ids["cancelled"] = store.save(result("Write about salt", "cancelled", [Round(index=1, text="Salt")]))
        ids["follow"] = store.save(result("And now the sea", "finished", [Round(index=1, text="Sea")]))
        store.join_thread(ids["follow"], ids["long"], parent_id=ids["long"])
        edit = Edit(after_round=1, at=3, removed=2, inserted="«neu»", text_before=LONG)
        store.write_edits(ids["long"], [edit])
        store.rename(ids["cancelled"], "Salz")
        batches = Batches(store)
        ids["batch"] = batches.create([{"id": "a", "prompt": "x"}, {"id": "b", "prompt": "y"}], settings={})
        # A batch item whose process "died" mid-round: owned by this process, no recorder holds it.
        ids["gone"] = store.create_run(spec("Batch item ✓"), batch_id=ids["batch"])
        batches.link(ids["batch"], 0, ids["gone"])
        store.start_round(ids["gone"], Round(index=1, text="half a"))
    tied = (TIE, ids["error"], ids["cancelled"], ids["follow"])
    raw_rows(path, "UPDATE runs SET created_at = ? WHERE id IN (?, ?, ?)", tied)
    return ids


def table_rows(target: str | Path) -> Rows:
    """Every table of the migrated schema, every column, in insertion order."""
    with Store(target) as store:
        tables = schema(store)
    return {
        name: raw_rows(target, f"SELECT {', '.join(t.columns)} FROM {name} ORDER BY rowid")
        for name, t in tables.items()
    }


def as_interrupted(rows: Rows, run_id: str) -> Rows:
    """``rows`` with run ``run_id`` as a store shows it once its process is gone."""
    with_status = []
    for row in rows["runs"]:
        with_status.append(
            tuple("interrupted" if v == "running" else v for v in row) if row[0] == run_id else row
        )
    return {**rows, "runs": with_status}


def read_back(target: str | Path) -> dict[str, Any]:
    """What the store API shows of a history: the list, searches, every run loaded, batches."""
    with Store(target) as store:
        listed = [(s.id, s.status, s.rounds, s.characters, s.cost) for s in store.list_runs(limit=100)]
        loaded = {run_id: store.load(run_id) for run_id, *_ in listed}
        found = {q: [s.id for s in store.list_runs(query=q)] for q in ("über flüsse", "SALZ", "sea", "✓")}
        batches = [(b, Batches(store).items(b.record.id)) for b in Batches(store).list()]
    return {
        "listed": listed,
        "found": found,
        "texts": {
            run_id: (r.text, [x.text for x in r.rounds], r.edits, r.thread_id) for run_id, r in loaded.items()
        },
        "results": {run_id: _without_clock(r.to_dict()) for run_id, r in loaded.items()},
        "batches": batches,
    }


def _without_clock(transcript: dict[str, Any]) -> dict[str, Any]:
    """The duration of a run that never finished runs on with the clock: not a copy's business."""
    totals = {k: v for k, v in transcript["totals"].items() if k != "duration_s"}
    return {**transcript, "totals": totals}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return tmp_path / "laptop.sqlite3"


# ---------------------------------------------------------------- everything arrives


def test_every_table_arrives_row_for_row(source: Path, pg_db: str) -> None:
    ids = make_source(source)
    report = copy_history(source, pg_db)
    assert table_rows(pg_db) == as_interrupted(table_rows(source), ids["gone"])
    assert report.interrupted == [ids["gone"]] and report.copied("runs") == 5


def test_the_store_shows_the_copy_as_it_showed_the_source(source: Path, pg_db: str) -> None:
    make_source(source)
    copy_history(source, pg_db)
    with Store(source) as src:
        src.mark_interrupted()
    before, after = read_back(source), read_back(pg_db)
    assert after == before
    assert [len(v) for v in after["found"].values()] == [1, 1, 1, 1]


def test_runs_created_at_one_instant_keep_their_order(source: Path, pg_db: str) -> None:
    ids = make_source(source)
    copy_history(source, pg_db)
    with Store(pg_db) as dst:
        listed = [s.id for s in dst.list_runs()]
    assert listed == [ids[name] for name in ("gone", "long", "follow", "cancelled", "error")]


def test_an_old_schema_file_is_upgraded_then_copied(tmp_path: Path, pg_db: str) -> None:
    old = tmp_path / "v1.sqlite3"
    shutil.copyfile(FIXTURES / "continuum-v1.sqlite3", old)
    report = copy_history(old, pg_db)
    assert report.copied("runs") == 3
    assert read_back(pg_db) == read_back(old)


def test_the_copy_copies_back_into_a_file_row_for_row(source: Path, pg_db: str, tmp_path: Path) -> None:
    make_source(source)
    copy_history(source, pg_db)
    back = tmp_path / "back.sqlite3"
    copy_history(pg_db, back)
    assert table_rows(back) == table_rows(pg_db)


# ---------------------------------------------------------------- refusals and --merge


def test_a_destination_with_runs_is_refused_and_left_as_it_was(source: Path, pg_db: str) -> None:
    make_source(source)
    copy_history(source, pg_db)
    before = table_rows(pg_db)
    with pytest.raises(CopyRefused) as refused:
        copy_history(source, pg_db)
    assert "already holds a history (5 runs and 9 other rows)" in refused.value.message and "--merge" in str(
        refused.value
    )
    assert table_rows(pg_db) == before


def test_merge_adds_what_is_missing_and_keeps_what_is_there(source: Path, pg_db: str) -> None:
    ids = make_source(source)
    copy_history(source, pg_db)
    with Store(pg_db) as dst:
        dst.delete(ids["follow"])  # gone from the destination: comes back whole
        dst.rename(ids["long"], "Renamed there")  # changed in the destination: stays so
        dst.save(result("Only there", "finished", [Round(index=1, text="mine")]))
    with Store(source) as src:
        new = src.save(result("Written since", "finished", [Round(index=1, text="new")]))
        src.write_rounds(ids["long"], [Round(index=3, text=" more", finish_reason="stop")])
    report = copy_history(source, pg_db, merge=True)
    assert report.copied("runs") == 2 and report.copied("rounds") == 2  # follow's and the new run's
    with Store(pg_db) as dst:
        assert dst.summary(ids["long"]).title == "Renamed there"  # type: ignore[union-attr]
        assert len(dst.load(ids["long"]).rounds) == 2  # its third round hangs from a run kept as it was
        assert dst.load(new).text == "new" and dst.load(ids["follow"]).text == "Sea"
        assert dst.count_runs() == 7


def test_a_run_still_being_recorded_is_refused(source: Path, pg_db: str) -> None:
    ids = make_source(source)
    claim_run(ids["gone"])  # what a Recorder does while it records
    try:
        with pytest.raises(CopyRefused, match="still being recorded"):
            copy_history(source, pg_db)
    finally:
        release_run(ids["gone"])
    assert raw_rows(pg_db, "SELECT count(*) FROM runs") == [(0,)]


def test_a_file_that_is_no_history_is_refused_and_left_alone(tmp_path: Path, pg_db: str) -> None:
    other = tmp_path / "other.sqlite3"
    raw_rows(other, "CREATE TABLE notes (body TEXT)")
    with pytest.raises(StoreError, match="is not a Continuum history"):
        copy_history(other, pg_db)
    assert raw_rows(other, "SELECT name FROM sqlite_master") == [("notes",)]


def test_a_history_is_not_copied_into_itself(source: Path) -> None:
    make_source(source)
    before = table_rows(source)
    with pytest.raises(CopyRefused, match="the same history"):
        copy_history(source, source.parent / "." / source.name, merge=True)
    assert table_rows(source) == before


def test_a_destination_of_a_newer_continuum_is_refused(source: Path, pg_db: str) -> None:
    make_source(source)
    Store(pg_db).close()
    raw_rows(pg_db, "INSERT INTO migrations (name, applied_at) VALUES ('9999_from_the_future', 0)")
    with pytest.raises(StoreError, match=r"destination: .*newer Continuum"):
        copy_history(source, pg_db)
    assert raw_rows(pg_db, "SELECT count(*) FROM runs") == [(0,)]


# ---------------------------------------------------------------- the command line


def test_the_command_copies_into_continuum_db_and_says_so(
    source: Path, pg_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    make_source(source)
    assert main(["runs", "copy", "--from", str(source)]) == 0  # --to: CONTINUUM_DB (pg_db sets it)
    err = capsys.readouterr().err
    assert "copied 1 batches, 5 runs, 2 batch items, 1 edits, 5 rounds from" in err
    assert "1 of its runs left running by a process that is gone: interrupted" in err
    assert main(["runs", "copy", "--from", str(source)]) == 1
    assert "already holds a history" in capsys.readouterr().err
    assert main(["runs", "copy", "--from", str(source), "--merge", "--quiet"]) == 0
    assert "copied nothing" in capsys.readouterr().err


def test_the_command_refuses_a_missing_source(
    tmp_path: Path, pg_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["runs", "copy", "--from", str(tmp_path / "nowhere.sqlite3")])
    assert exited.value.code == 2 and "no such file" in capsys.readouterr().err
    assert not (tmp_path / "nowhere.sqlite3").exists()


def test_a_file_that_is_not_a_database_is_one_line(
    tmp_path: Path, pg_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    noise = tmp_path / "noise.sqlite3"
    noise.write_bytes(b"not a database at all " * 400)
    assert main(["runs", "copy", "--from", str(noise)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "is not a run history (it is not a SQLite database" in err
    assert noise.read_bytes() == b"not a database at all " * 400


def test_an_unreachable_server_is_one_line_without_the_password(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_source(source)
    url = "postgresql://continuum:s3cret-Pa55@127.0.0.1:9/history"
    assert main(["runs", "copy", "--from", str(source), "--to", url]) == 1
    err = capsys.readouterr().err
    assert "destination: cannot connect" in err.lower() and "s3cret" not in err and "***" in err
