"""The Runs table at 1280 px (issue 12): it fits the window, titles are whole, no column cuts a value.

The widths come from ``pages/_grid.py``'s character widths, measured in Chromium in the
grid's font; the first test pins them to one measurement. The browser side (the table
drawn at 1280×800, a picked run brought into view) is in ``tests/e2e/test_history.py``.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from core.services.store import RunSummary
from pages import _grid as grid
from pages._runs_table import LINES, RUN_MIN_PX, WIDTH_PX, runs_table, shown

PRESS = "Write about 1500 tokens on the history of the printing press, with headings."
NOW = time.mktime((2026, 12, 16, 23, 58, 0, 0, 0, -1))


def summary(prompt: str = PRESS, **fields: object) -> RunSummary:
    values: dict[str, object] = {
        "id": f"run-{len(prompt)}-{len(fields)}",
        "title": "",
        "prompt": prompt,
        "provider": "demo",
        "base_url": "http://127.0.0.1:1/v1",
        "model": "demo",
        "strategy": "prefill",
        "status": "finished",
        "stop_reason": "finished",
        "created_at": NOW,
        "updated_at": NOW,
        "started_at": NOW,
        "finished_at": NOW,
        "rounds": 14,
        "prompt_tokens_billed": 120_000,
        "completion_tokens": 12_345,
        "tokens_estimated": True,
        "cost": 0.00051339,
        "characters": 60_000,
        "error": None,
        "batch_id": None,
        **fields,
    }
    return RunSummary(**values)  # type: ignore[arg-type]


def history() -> list[RunSummary]:
    """Runs as the e2e history holds them, and the widest values a real provider gives."""
    return [
        summary(),
        summary(model="demo-32k", strategy="instruction"),
        summary("Write about 1200 tokens on the tides of the Atlantic coast.", stop_reason="max_rounds"),
        summary("Write about 4000 tokens on lighthouses.", status="interrupted", stop_reason=None),
        summary(model="meta-llama/Llama-3.3-70B-Instruct", provider="deepinfra", strategy="completions"),
        summary(stop_reason="context_exhausted", cost=None),
    ]


def test_the_measured_widths_match_chromium_for_a_title():
    assert 436 <= grid.text_px(PRESS) <= 450  # measureText in the grid's font: 436.06 px


def test_the_columns_fit_the_grid_of_a_1280_px_window():
    table = runs_table(history())
    assert sum(table.widths.values()) <= WIDTH_PX


def test_no_column_cuts_a_value_or_its_header():
    table = runs_table(history())
    lines = LINES if table.row_height else 1
    assert table.row_height is None or table.row_height > 64  # the grid wraps text only above 4rem
    for column, width in table.widths.items():
        assert grid.cell_px(column) <= width, column
        for value in shown(table.frame, column):
            assert len(grid.wrapped(value, width)) <= lines, (column, value)


def test_a_title_is_shown_whole():
    assert runs_table(history()).frame["Run"][0] == PRESS


def test_a_title_longer_than_three_lines_ends_in_an_ellipsis():
    long = summary(title="A title that goes on " + "and on " * 40 + "to the end")
    table = runs_table([long])
    shown_title = table.frame["Run"][0]
    assert shown_title.endswith("…") and shown_title.startswith("A title that goes on and on")
    assert len(grid.wrapped(shown_title, table.widths["Run"])) == LINES


def test_short_titles_keep_one_line_rows():
    table = runs_table([summary("Tea."), summary("Coffee.")])
    assert table.row_height is None and table.height == grid.HEADER_PX + 2 * grid.ROW_PX + 2


@pytest.mark.parametrize("in_thread", [False, True])
def test_the_thread_column_shows_only_when_a_run_is_in_a_thread(in_thread: bool):
    runs = [dataclasses.replace(summary(), id="a", thread_id="t"), summary("Tea.", id="b", thread_id="t")]
    threads = {"t": ["a", "b"]} if in_thread else {}
    frame = runs_table(runs, threads).frame
    assert ("Thread" in frame.columns) is in_thread
    if in_thread:
        assert list(frame["Thread"]) == ["1 of 2", "2 of 2"]


@pytest.mark.parametrize("from_api", [False, True])
def test_the_source_column_shows_only_when_a_run_came_from_the_endpoint(from_api: bool):
    runs = [summary(id="a", source="api" if from_api else ""), summary("Tea.", id="b")]
    table = runs_table(runs)
    assert ("Source" in table.frame.columns) is from_api
    if from_api:
        assert list(table.frame["Source"]) == ["API", ""]
        assert sum(table.widths.values()) <= WIDTH_PX  # still fits a 1280-px window


def test_a_signed_in_person_sees_whose_each_run_is_in_an_owner_column():
    runs = [
        summary(person="idp|bob"),
        summary(person="idp|alice", person_name="Alice Martin", shared=True),
        summary(person=None),
        *(history()[i] for i in (0, 2, 3)),  # the demo's runs (wider data scrolls sideways)
    ]
    assert "Owner" not in runs_table(runs).frame.columns  # no sign-in: no column
    table = runs_table(runs, you="idp|bob")
    assert list(table.frame["Owner"])[:3] == ["you", "Alice Martin", "team"]
    assert sum(table.widths.values()) <= WIDTH_PX and table.widths["Run"] >= RUN_MIN_PX
    for column, width in table.widths.items():  # a name wraps at its spaces, never inside a word
        assert all(len(grid.wrapped(v, width)) <= LINES for v in shown(table.frame, column)), column
    assert grid.wrapped("Alice Martin", table.widths["Owner"]) in (["Alice Martin"], ["Alice", "Martin"])


def test_the_owner_column_keeps_a_name_on_one_line_when_there_is_room():
    runs = [summary("Short.", person="idp|alice", person_name="Alice Martin", shared=True)]
    table = runs_table(runs, you="idp|bob")
    assert table.row_height is None and grid.wrapped("Alice Martin", table.widths["Owner"]) == [
        "Alice Martin"
    ]
