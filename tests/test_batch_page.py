"""The Batch page with Streamlit's AppTest: rows in, a batch that runs to the end, results out.

The demo model runs unthrottled here (CONTINUUM_DEMO_RATE=0), so a small batch
ends inside one script run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.demo import demo_document
from core.services.batch import export_batch
from core.services.store import Batches, Store

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGE = "pages/batch.py"
TIMEOUT = 60
ROWS = "\n".join(
    [
        json.dumps({"id": "owls", "prompt": "Write 300 tokens about owls"}),
        json.dumps({"id": "bad", "prompt": "Write about moths", "max_tokens": "plenty"}),
        json.dumps({"id": "bees", "prompt": "Write 300 tokens about bees"}),
    ]
)


@pytest.fixture
def page(clean_env, tmp_db, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("CONTINUUM_DEMO_RATE", "0")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()  # the router first, as a browser does
    return at.switch_page(PAGE).run()


def texts(at: AppTest) -> str:
    parts = [e.value for e in at.markdown] + [e.value for e in at.caption] + [e.value for e in at.code]
    parts += [e.value for e in at.info] + [e.value for e in at.warning] + [e.value for e in at.error]
    return "\n".join(str(p) for p in parts)


def paste(at: AppTest, rows: str = ROWS) -> AppTest:
    return at.text_area(key="batch_text").input(rows).run()


def start(at: AppTest) -> AppTest:
    button = next(b for b in at.button if b.label.startswith("Start"))
    return button.click().run()


def test_an_empty_page_offers_the_format_and_no_start(page: AppTest) -> None:
    start_button = next(b for b in page.button if b.label.startswith("Start"))
    assert (page.exception, start_button.disabled, "**prompt**" in texts(page)) == ([], True, True)


def test_pasted_rows_are_counted_and_bad_rows_named(page: AppTest) -> None:
    at = paste(page)
    shown = texts(at)
    assert "**2 prompts**" in shown and "line 2, column max_tokens" in shown


def test_the_example_fills_the_rows(page: AppTest) -> None:
    at = next(b for b in page.button if b.label == "Use the example").click().run()
    assert "**8 prompts**" in texts(at)


def test_a_started_batch_runs_to_the_end_and_offers_downloads(page: AppTest, tmp_db: Path) -> None:
    at = start(paste(page))
    with Store(tmp_db) as store:
        (summary,) = Batches(store).list()
        rows = [
            json.loads(line) for line in export_batch(store, summary.record.id, "jsonl").decode().splitlines()
        ]
    assert not at.exception
    assert [
        (r["item_id"], r["text"] == demo_document(r["spec"]["messages"][-1]["content"])) for r in rows
    ] == [
        ("owls", True),
        ("bees", True),
    ]
    assert ({m.label: m.value for m in at.metric}["Finished"], len(at.get("download_button"))) == ("2", 3)


def test_the_batch_stays_on_screen_by_its_url(page: AppTest) -> None:
    at = start(paste(page))
    assert at.query_params["batch"] == at.session_state["batch_id"]


def test_new_batch_leaves_the_finished_one_for_the_form(page: AppTest) -> None:
    at = start(paste(page))
    at = next(b for b in at.button if b.label == "New batch").click().run()
    assert ("batch" in at.query_params, any(b.label.startswith("Start") for b in at.button)) == (False, True)


def test_an_earlier_batch_can_be_opened_again(page: AppTest) -> None:
    at = start(paste(page))
    at = next(b for b in at.button if b.label == "New batch").click().run()
    at = next(b for b in at.button if "2/2 finished" in b.label).click().run()
    assert {m.label: m.value for m in at.metric}["Finished"] == "2"
