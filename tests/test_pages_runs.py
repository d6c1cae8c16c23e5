"""The Runs and Inspect pages with Streamlit's AppTest: list, open, resume, duplicate, delete, seams.

Runs are made with the real engine against the demo model and recorded in the
test's database (``tmp_db``), as the app records them. The app's own demo model
runs unthrottled (CONTINUUM_DEMO_RATE=0), so a resumed run ends inside one
script run. Browser behaviour is in tests/e2e/test_history.py.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.continuation import engine
from core.demo import demo_document
from core.services.store import Recorder, Store
from core.types import Round, RunResult, RunSpec, RunStarted
from pages._history import ResumeOptions, rebase_url, resume_spec, studio_state

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 30
PROMPT = "Write about 1500 tokens on the history of the printing press."
RUNS = "pages/runs.py"
INSPECT = "pages/inspect.py"


def record_run(
    db: Path,
    base_url: str,
    prompt: str = PROMPT,
    *,
    stop_after: int | None = None,
    **fields: object,
) -> str:
    """A demo run recorded in ``db`` as the app records one; ``stop_after`` events leaves it interrupted."""
    values: dict[str, object] = {"max_tokens": 400, "max_rounds": 30, "context_window": 8192, **fields}
    run_spec = RunSpec(
        messages=[{"role": "user", "content": prompt}],
        provider="demo",
        base_url=base_url,
        **values,  # type: ignore[arg-type]
    )
    with Store(db) as store:
        recorder = Recorder(store)
        events = recorder.record(engine.run(run_spec))
        for n, _ in enumerate(events, 1):
            if stop_after is not None and n >= stop_after:
                events.close()
                break
        assert recorder.run_id is not None
        return recorder.run_id


@pytest.fixture
def app(clean_env, tmp_db: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("CONTINUUM_DEMO_RATE", "0")
    return AppTest.from_file(APP, default_timeout=TIMEOUT)


def open_page(at: AppTest, page: str, **params: str) -> AppTest:
    at.run()  # the router first, as a browser does
    for key, value in params.items():
        at.query_params[key] = value
    return at.switch_page(page).run()


def texts(at: AppTest) -> str:
    parts = [e.value for e in at.markdown] + [e.value for e in at.caption] + [e.value for e in at.subheader]
    parts += [e.value for e in at.info] + [e.value for e in at.warning] + [e.value for e in at.error]
    parts += [e.value for e in at.success]
    return "\n".join(str(p) for p in parts)


def button(at: AppTest, key: str):  # type: ignore[no-untyped-def]
    return next(b for b in at.button if b.key == key)


def table(at: AppTest):  # type: ignore[no-untyped-def]
    return at.dataframe[0].value


# ---------------------------------------------------------------- the list


def test_without_runs_the_page_explains_the_history_and_points_to_the_studio(app: AppTest):
    at = open_page(app, RUNS)
    assert not at.exception
    assert "No runs yet" in texts(at) and "saved here as it streams" in texts(at)


def test_saved_runs_are_listed_newest_first_with_rounds_tokens_and_status(
    app: AppTest, tmp_db: Path, demo_server: str
):
    record_run(tmp_db, demo_server, "Write about 800 tokens on tea.")
    record_run(tmp_db, demo_server, max_rounds=2)
    frame = table(open_page(app, RUNS))
    stored = Store(tmp_db).list_runs()
    assert list(frame["Run"]) == [PROMPT, "Write about 800 tokens on tea."]
    assert list(frame["Status"]) == ["max rounds", "finished"]
    assert list(frame["Rounds"]) == [s.rounds for s in stored] and frame["Tokens"][0] == "800"


def test_the_search_keeps_the_runs_whose_prompt_has_every_word(app: AppTest, tmp_db: Path, demo_server: str):
    record_run(tmp_db, demo_server, "Write about 800 tokens on tea.")
    record_run(tmp_db, demo_server)
    at = open_page(app, RUNS)
    at.text_input(key="runs_q").input("PRINTING history").run()
    assert list(table(at)["Run"]) == [PROMPT]


def test_a_filter_matching_nothing_says_so_and_offers_to_clear_it(
    app: AppTest, tmp_db: Path, demo_server: str
):
    record_run(tmp_db, demo_server)
    at = open_page(app, RUNS)
    at.selectbox(key="runs_status").set_value("error").run()
    assert "No runs match" in texts(at)
    button(at, "runs_clear").click().run()
    assert list(table(at)["Run"]) == [PROMPT]


def test_a_run_left_running_by_a_process_that_is_gone_is_listed_as_interrupted(
    app: AppTest, tmp_db: Path, demo_server: str
):
    record_run(tmp_db, demo_server, stop_after=40)  # the recorder closed mid-run
    with Store(tmp_db) as store:
        store.create_run(RunSpec(messages=[{"role": "user", "content": "orphan"}]))  # nobody records it
    at = open_page(app, RUNS)
    at.selectbox(key="runs_status").set_value("interrupted").run()
    assert list(table(at)["Status"]) == ["interrupted", "interrupted"]


# ---------------------------------------------------------------- one run


def test_a_run_named_in_the_url_opens_read_only_with_its_rounds_and_downloads(
    app: AppTest, tmp_db: Path, demo_server: str
):
    run_id = record_run(tmp_db, demo_server)
    at = open_page(app, RUNS, id=run_id)
    at.session_state["run_view"] = "Rounds"  # the tab (only the open tab is drawn)
    at.run()
    assert not at.exception
    rounds = Store(tmp_db).load(run_id).rounds
    headings = [m.value for m in at.markdown if str(m.value).startswith("**Round ")]
    assert len(headings) == len(rounds) >= 3 and "Finished" in texts(at)
    assert {b.key for b in at.download_button} == {
        "download_md",
        "download_txt",
        "download_json",
        "download_csv",
    }


def test_close_puts_the_run_away_and_out_of_the_url(app: AppTest, tmp_db: Path, demo_server: str):
    run_id = record_run(tmp_db, demo_server)
    at = open_page(app, RUNS, id=run_id)
    button(at, "run_close").click().run()
    assert "id" not in at.query_params and not at.download_button


def test_an_interrupted_run_says_so_and_can_be_resumed(app: AppTest, tmp_db: Path, demo_server: str):
    run_id = record_run(tmp_db, demo_server, stop_after=40)
    at = open_page(app, RUNS, id=run_id)
    assert "Interrupted." in texts(at) and "Resume in the Studio" in [b.label for b in at.button]


def test_a_run_named_in_the_url_that_is_gone_is_reported(app: AppTest, tmp_db: Path, demo_server: str):
    record_run(tmp_db, demo_server)
    at = open_page(app, RUNS, id="no-such-run")
    assert not at.exception and "no longer in the history" in texts(at)


def test_delete_asks_first_and_cancel_keeps_the_run(app: AppTest, tmp_db: Path, demo_server: str):
    run_id = record_run(tmp_db, demo_server)
    at = open_page(app, RUNS, id=run_id)
    button(at, "run_delete").click().run()
    assert "cannot be undone" in texts(at) and Store(tmp_db).exists(run_id)
    button(at, "delete_cancel").click().run()
    assert Store(tmp_db).exists(run_id)


def test_confirming_the_delete_removes_the_run_and_closes_it(app: AppTest, tmp_db: Path, demo_server: str):
    run_id = record_run(tmp_db, demo_server)
    at = open_page(app, RUNS, id=run_id)
    button(at, "run_delete").click().run()
    button(at, "delete_confirm").click().run()
    assert not Store(tmp_db).exists(run_id) and "id" not in at.query_params
    assert "No runs yet" in texts(at)


def test_duplicate_fills_the_studio_form_with_the_prompt_and_settings(
    app: AppTest, tmp_db: Path, demo_server: str
):
    run_id = record_run(tmp_db, demo_server, max_rounds=7, max_tokens=640, model="demo-32k", strategy="vllm")
    at = open_page(app, RUNS, id=run_id)
    button(at, "run_duplicate").click().run()
    assert at.text_area(key="prompt").value == PROMPT and not at.download_button
    assert (at.number_input(key="max_rounds").value, at.number_input(key="max_tokens").value) == (7, 640)
    assert at.selectbox(key="studio_model_demo").value == "demo-32k"
    assert at.selectbox(key="strategy_demo").value == "vllm"


def test_resume_continues_the_same_run_in_the_studio_to_the_whole_answer(
    app: AppTest, tmp_db: Path, demo_server: str
):
    run_id = record_run(tmp_db, demo_server, max_rounds=2)
    at = open_page(app, RUNS, id=run_id)
    at.number_input(key="resume_more").set_value(40)
    next(b for b in at.button if b.label == "Resume in the Studio").click().run()
    assert not at.exception and at.text_area(key="prompt") is not None  # the Studio
    with Store(tmp_db) as store:
        runs = store.list_runs()
        result = store.load(run_id)
    assert [s.id for s in runs] == [run_id] and runs[0].status == "finished"
    assert len(result.rounds) > 2 and result.text == demo_document(PROMPT)


def test_a_run_being_written_is_followed_until_its_writer_stops_then_resumable(
    app: AppTest, tmp_db: Path, demo_server: str
):
    """The page follows a running run (its script run stays in a loop) until the run ends: a
    writer that stops leaves it interrupted, drawn again with Resume and Delete. (That both are
    disabled while the run is written, and that its text grows, is tests/e2e/test_two_servers.py.)"""
    store = Store(tmp_db)
    writer = Recorder(store)
    writer.handle(RunStarted(RunSpec(messages=[{"role": "user", "content": PROMPT}], base_url=demo_server)))
    stop = threading.Timer(2.0, writer.close)  # the writer goes away while the page follows the run
    stop.start()
    try:
        at = open_page(app, RUNS, id=str(writer.run_id))
        assert not at.exception and "Interrupted." in texts(at)
        assert not button(at, "run_delete").disabled
    finally:
        stop.cancel()
        writer.close()
        store.close()


# ---------------------------------------------------------------- Inspect


def test_inspect_without_runs_explains_what_it_shows(app: AppTest):
    at = open_page(app, INSPECT)
    assert not at.exception and "Nothing to inspect yet" in texts(at)


def test_the_seams_of_a_run_on_a_server_ignoring_the_prefill_show_the_restart_flag(
    app: AppTest, tmp_db: Path, demo_url: Callable[..., str]
):
    run_id = record_run(tmp_db, demo_url(prefill="ignored"))
    at = open_page(app, INSPECT, id=run_id)
    assert not at.exception
    assert any("restart" in str(m.value) and "Round 1 → 2" in str(m.value) for m in at.markdown)
    assert any(str(e.value).startswith("**Restart**") for e in at.error)


def test_seams_show_both_sides_with_whitespace_drawn(app: AppTest, tmp_db: Path, demo_server: str):
    run_id = record_run(tmp_db, demo_server)
    at = open_page(app, INSPECT, id=run_id)
    codes = [str(c.value) for c in at.code]
    assert codes and any("·" in c for c in codes) and not any(" " in c.replace("\u200b", "") for c in codes)


def test_two_runs_in_the_url_are_compared_side_by_side(app: AppTest, tmp_db: Path, demo_server: str):
    a = record_run(tmp_db, demo_server)
    b = record_run(tmp_db, demo_server, strategy="instruction", max_tokens=700)
    at = open_page(app, INSPECT, id=a, vs=b)
    totals = next(d.value for d in at.dataframe if "Same" in d.value.columns)
    rows = dict(zip(totals[""], totals["Same"], strict=True))
    assert (rows["Strategy"], rows["Characters"]) == ("≠", "✓")
    assert any("identical" in str(s.value) for s in at.success)


def test_runs_with_the_same_prompt_are_offered_for_comparison(app: AppTest, tmp_db: Path, demo_server: str):
    a = record_run(tmp_db, demo_server)
    b = record_run(tmp_db, demo_server, model="demo-32k")
    record_run(tmp_db, demo_server, "Another prompt entirely, 500 tokens.")
    at = open_page(app, INSPECT, id=a)
    at.session_state["inspect_view"] = "Compare"
    at.run()
    assert [x.key for x in at.button if str(x.key).startswith("same_")] == [f"same_{b}"]
    button(at, f"same_{b}").click().run()
    assert at.query_params["vs"] == [b] or at.query_params["vs"] == b
    assert any("Same" in d.value.columns for d in at.dataframe)


def test_choosing_the_compared_run_as_the_run_drops_the_comparison(
    app: AppTest, tmp_db: Path, demo_server: str
):
    a = record_run(tmp_db, demo_server)
    b = record_run(tmp_db, demo_server, model="demo-32k")
    at = open_page(app, INSPECT, id=a, vs=b)
    at.selectbox(key="inspect_run").set_value(b).run()
    assert not at.exception and at.selectbox(key="inspect_vs").value is None and "vs" not in at.query_params


def test_a_history_written_by_a_newer_continuum_is_a_readable_error(app: AppTest, tmp_db: Path):
    Store(tmp_db).close()
    with sqlite3.connect(tmp_db) as conn:
        conn.execute("INSERT INTO migrations (name, applied_at) VALUES ('9999_from_the_future', 0)")
    at = open_page(app, RUNS)
    assert not at.exception and "cannot be opened" in at.error[0].value and "newer" in at.error[0].value


# ---------------------------------------------------------------- resume and duplicate, as data


def test_a_demo_run_resumes_on_this_demo_server_with_its_behaviours():
    old = "http://127.0.0.1:40001/x/prefill=ignored,k=t/v1"
    assert rebase_url(old, "http://127.0.0.1:50002/v1") == "http://127.0.0.1:50002/x/prefill=ignored,k=t/v1"


def test_resume_adds_rounds_beyond_those_the_run_has():
    result = RunResult(spec=RunSpec(messages=[], provider="demo", max_rounds=3), rounds=[Round(index=1)] * 3)
    options = ResumeOptions(more_rounds=5, target_tokens=9000, max_tokens=800, strategy="instruction")
    spec = resume_spec(result, options, "http://127.0.0.1:5/v1")
    assert (spec.max_rounds, spec.target_tokens, spec.max_tokens, spec.strategy) == (
        8,
        9000,
        800,
        "instruction",
    )
    assert result.spec.max_rounds == 3 and spec.base_url == "http://127.0.0.1:5/v1"


def test_a_duplicate_carries_the_system_prompt_and_settings_into_the_studio_keys():
    spec = RunSpec(
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        provider="openrouter",
        strategy="instruction",
        temperature=None,
        target_tokens=None,
    )
    values = studio_state(spec)
    assert (values["prompt"], values["system"], values["studio_provider"]) == (
        "Hi",
        "Be brief.",
        "openrouter",
    )
    assert (values["strategy_openrouter"], values["temperature"], values["target_tokens"]) == (
        "instruction",
        0.7,
        0,
    )


def test_a_run_title_with_a_data_link_is_shown_as_text(app: AppTest, tmp_db: Path, demo_server: str):
    title = "Notes [open me](data:text/html,<script>alert(1)</script>)"
    run_id = record_run(tmp_db, demo_server, title=title)
    at = open_page(app, RUNS, id=run_id)
    shown = [h.value for h in at.subheader]
    assert any("open me]\\(data:" in value for value in shown), shown
    assert not any("](data:" in value for value in shown)
