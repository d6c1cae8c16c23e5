"""The run store_db: where the file lives, runs in and out, lists, filters, owners, secrets."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from core.services.store import Store, StoreError, default_db_path
from core.types import ErrorInfo, Prices, Round, RunResult, RunSpec
from tests.pg import raw_rows, stored_bytes

ROOT = Path(__file__).resolve().parents[1]


def spec(prompt: str = "Write about rivers", **kw: object) -> RunSpec:
    return RunSpec(messages=[{"role": "user", "content": prompt}], **kw)  # type: ignore[arg-type]


def full_result() -> RunResult:
    return RunResult(
        spec=RunSpec(
            messages=[{"role": "system", "content": "Be long."}, {"role": "user", "content": "Write 🌊"}],
            provider="demo",
            base_url="http://127.0.0.1:1/v1",
            model="demo-32k",
            max_tokens=300,
            target_tokens=5000,
            cost_limit=0.25,
            strategy="completions",
            template="chatml",
            temperature=0.0,
            seed=7,
            prices=Prices(0.1, 0.2, 0.05),
            api_key_env="DEEPINFRA_API_KEY",
            extra_body={"top_k": 40, "stop": ["\n\n\n"]},
            title="Waves",
        ),
        rounds=[
            Round(
                index=1,
                strategy="completions",
                max_tokens=300,
                text="Über 🌊 ",
                reasoning="thinking…",
                finish_reason="length",
                prompt_tokens=12,
                completion_tokens=300,
                cached_tokens=4,
                reasoning_tokens=20,
                ttft_s=0.125,
                duration_s=3.5,
                started_at=1_700_000_000.25,
                cost=0.0001,
            ),
            Round(
                index=2,
                text="the sea.",
                held_back=" w",
                finish_reason="stop",
                prompt_tokens=320,
                completion_tokens=3,
                prompt_estimated=True,
                retries=2,
                recovery=True,
                error=None,
                seam_flags=[{"kind": "restart", "message": "starts over", "offset": 0}],
                cost=None,
            ),
        ],
        stop_reason="finished",
        error=None,
        started_at=1_700_000_000.0,
        finished_at=1_700_000_010.5,
    )


# ---------------------------------------------------------------- the file


def test_store_opens_the_file_named_by_continuum_db(tmp_db: Path) -> None:
    with Store() as store:
        assert store.path == tmp_db
    assert tmp_db.exists()


def test_default_file_is_under_xdg_data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONTINUUM_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    with Store() as store:
        assert store.path == tmp_path / "data" / "continuum" / "continuum.sqlite3"
        assert store.path.exists()


def test_default_file_falls_back_to_local_share(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONTINUUM_DB", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_db_path() == tmp_path / ".local" / "share" / "continuum" / "continuum.sqlite3"


def test_database_is_in_wal_mode(tmp_db: Path) -> None:
    Store().close()
    with sqlite3.connect(tmp_db) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_closed_store_refuses_use(store_db: str | Path) -> None:
    store = Store()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.list_runs()


# ---------------------------------------------------------------- runs in and out


def test_created_run_loads_back_with_its_spec_and_no_rounds(store_db: str | Path) -> None:
    with Store() as store:
        run_id = store.create_run(spec("Write 3000 tokens about ice", model="demo-32k"))
        result = store.load(run_id)
    assert (result.run_id, result.spec, result.rounds) == (
        run_id,
        spec("Write 3000 tokens about ice", model="demo-32k"),
        [],
    )


def test_saved_result_loads_back_equal(store_db: str | Path) -> None:
    result = full_result()
    with Store() as store:
        run_id = store.save(result)
        assert store.load(run_id) == result


def test_saved_error_loads_back_as_error_info(store_db: str | Path) -> None:
    result = RunResult(spec=spec(), stop_reason="error", error=ErrorInfo("RateLimitError", "Slow down.", 429))
    with Store() as store:
        loaded = store.load(store.save(result))
    assert loaded.error == ErrorInfo("RateLimitError", "Slow down.", 429)


def test_loading_an_unknown_run_names_it(store_db: str | Path) -> None:
    with Store() as store, pytest.raises(StoreError, match="no-such-run"):
        store.load("no-such-run")


def test_summary_carries_the_totals_of_the_rounds(store_db: str | Path) -> None:
    with Store() as store:
        summary = store.summary(store.save(full_result()))
    assert summary is not None
    assert (summary.rounds, summary.prompt_tokens_billed, summary.completion_tokens) == (2, 332, 303)
    assert (summary.characters, summary.tokens_estimated, summary.cost) == (
        len("Über 🌊 the sea."),
        True,
        0.0001,
    )
    assert (summary.status, summary.stop_reason, summary.display_title) == ("finished", "finished", "Waves")


def test_deleting_a_run_removes_its_rounds(store_db: str | Path) -> None:
    with Store() as store:
        run_id = store.save(full_result())
        assert store.delete(run_id) is True
    assert raw_rows(store_db, "SELECT count(*) FROM rounds") == [(0,)]


def test_deleting_an_unknown_run_reports_false(store_db: str | Path) -> None:
    with Store() as store:
        assert store.delete("nothing") is False


def test_rename_changes_the_title_everywhere(store_db: str | Path) -> None:
    with Store() as store:
        run_id = store.create_run(spec(title="old"))
        store.rename(run_id, "Rivers, second draft")
        assert store.load(run_id).spec.title == "Rivers, second draft"
        assert store.list_runs(query="second draft")[0].title == "Rivers, second draft"


# ---------------------------------------------------------------- listing


def make_runs(store: Store) -> dict[str, str]:
    return {
        "rivers": store.create_run(spec("Write about rivers", provider="demo", model="demo")),
        "über": store.create_run(spec("Schreibe ÜBER Flüsse", provider="deepinfra", model="llama")),
        "ice": store.create_run(spec("Write about ice", provider="deepinfra", model="qwen")),
    }


def test_runs_are_listed_newest_first(store_db: str | Path) -> None:
    with Store() as store:
        ids = make_runs(store)
        listed = [r.id for r in store.list_runs()]
    assert listed == [ids["ice"], ids["über"], ids["rivers"]]


def test_query_needs_every_word_case_insensitively(store_db: str | Path) -> None:
    with Store() as store:
        ids = make_runs(store)
        assert [r.id for r in store.list_runs(query="WRITE rivers")] == [ids["rivers"]]


def test_query_folds_case_beyond_ascii(store_db: str | Path) -> None:
    with Store() as store:
        ids = make_runs(store)
        assert [r.id for r in store.list_runs(query="über flüsse")] == [ids["über"]]


def test_query_finds_a_run_by_its_id(store_db: str | Path) -> None:
    with Store() as store:
        ids = make_runs(store)
        assert [r.id for r in store.list_runs(query=ids["ice"])] == [ids["ice"]]


def test_runs_filter_by_provider_and_model(store_db: str | Path) -> None:
    with Store() as store:
        ids = make_runs(store)
        assert [r.id for r in store.list_runs(provider="deepinfra", model="qwen")] == [ids["ice"]]


def test_runs_filter_by_status(store_db: str | Path) -> None:
    with Store() as store:
        ids = make_runs(store)
        done = store.save(full_result())
        assert [r.id for r in store.list_runs(status="finished")] == [done]
        assert {r.id for r in store.list_runs(status=["running"])} == set(ids.values())


def test_runs_filter_by_creation_time(store_db: str | Path) -> None:
    with Store() as store:
        make_runs(store)
        assert store.list_runs(since=datetime.now() + timedelta(hours=1)) == []
        assert len(store.list_runs(since=datetime.now() - timedelta(hours=1))) == 3


def test_runs_page_with_limit_and_offset(store_db: str | Path) -> None:
    with Store() as store:
        ids = make_runs(store)
        page = [r.id for r in store.list_runs(limit=2, offset=1)]
        assert (page, store.count_runs()) == ([ids["über"], ids["rivers"]], 3)


def test_facets_list_what_the_filters_can_choose(store_db: str | Path) -> None:
    with Store() as store:
        make_runs(store)
        assert store.facets() == {
            "provider": ["deepinfra", "demo"],
            "model": ["demo", "llama", "qwen"],
            "status": ["running"],
        }


def test_summary_shows_the_prompt_when_there_is_no_title(store_db: str | Path) -> None:
    with Store() as store:
        summary = store.summary(store.create_run(spec("Write about rivers\nand lakes")))
    assert summary is not None and summary.display_title == "Write about rivers"


# ---------------------------------------------------------------- secrets


SENTINEL = "sk-SENTINELd4f9a7c2b18e46b0a9"


def test_secret_looking_spec_fields_are_not_written(store_db: str | Path) -> None:
    leaky = spec(
        base_url=f"https://user:{SENTINEL}@api.example.com/v1?api_key={SENTINEL}&region=eu",
        api_key_env="DEEPINFRA_API_KEY",
        extra_body={"api_key": SENTINEL, "headers": {"Authorization": f"Bearer {SENTINEL}"}, "top_k": 5},
    )
    with Store() as store:
        loaded = store.load(store.create_run(leaky)).spec
        assert SENTINEL.encode() not in stored_bytes(store_db)
    assert (loaded.base_url, loaded.api_key_env) == (
        "https://api.example.com/v1?region=eu",
        "DEEPINFRA_API_KEY",
    )
    assert loaded.extra_body == {"headers": {}, "top_k": 5}


def test_message_text_is_kept_as_written(store_db: str | Path) -> None:
    prompt = "Explain why a key like sk-abcdefghijklmnopqrstu must never be committed"
    with Store() as store:
        assert store.load(store.create_run(spec(prompt))).spec.prompt == prompt


# ---------------------------------------------------------------- owners and interruption


def child(code: str, db: Path) -> subprocess.Popen[str]:
    script = "import os, sys\nfrom core.services.store import Store\nfrom core.types import RunSpec\n" + code
    env = {**os.environ, "CONTINUUM_DB": str(db), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


CREATE_RUN = "run_id = Store().create_run(RunSpec(messages=[{'role': 'user', 'content': 'hi'}]))\n"


def test_run_left_running_by_a_dead_process_is_marked_interrupted(store_db: str | Path) -> None:
    proc = child(CREATE_RUN + "print(run_id, flush=True)\nos._exit(0)\n", store_db)
    run_id = proc.communicate(timeout=60)[0].strip()
    with Store() as store:
        assert store.mark_interrupted() == [run_id]
        assert store.summary(run_id).status == "interrupted"  # type: ignore[union-attr]


def test_run_of_a_live_process_is_not_marked_interrupted(store_db: str | Path) -> None:
    proc = child(CREATE_RUN + "print(run_id, flush=True)\nsys.stdin.read()\n", store_db)
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    with Store() as store:
        try:
            assert (store.mark_interrupted(), store.is_active(run_id)) == ([], True)
        finally:
            proc.communicate(timeout=60)
        assert store.mark_interrupted() == [run_id]


def test_run_of_this_process_without_a_recorder_is_marked_interrupted(store_db: str | Path) -> None:
    with Store() as store:
        run_id = store.create_run(spec())
        assert store.mark_interrupted() == [run_id]


def test_finished_runs_are_never_marked_interrupted(store_db: str | Path) -> None:
    with Store() as store:
        store.save(full_result())
        assert store.mark_interrupted() == []


# ---------------------------------------------------------------- threads


def test_one_store_serves_many_threads(store_db: str | Path) -> None:
    errors: list[BaseException] = []
    with Store() as store:

        def work(n: int) -> None:
            try:
                for i in range(20):
                    run_id = store.create_run(spec(f"thread {n} run {i}"))
                    store.write_rounds(run_id, [Round(index=1, text="x" * i)])
                    store.list_runs(query=f"thread {n}")
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert (errors, store.count_runs()) == ([], 160)


def test_two_stores_on_one_file_see_each_others_runs(store_db: str | Path) -> None:
    with Store() as first, Store() as second:
        run_id = first.create_run(spec())
        assert [r.id for r in second.list_runs()] == [run_id]
