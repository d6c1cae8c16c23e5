"""The Runs table: one row per run, sized so that it fits a 1280-px window and no cell is cut.

Every column but Run is as wide as its widest value (or its header); Run takes the rest of
the width the grid has at 1280 px with the sidebar open. When a value needs more than one
line (a title, a long model name), the rows are tall enough for three lines and the grid
wraps them; a title longer than three lines ends in "…" (the opened run shows it whole).
Wider data than a 1280-px window holds scrolls sideways rather than cutting a value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st

from core.services.store import RunSummary
from pages import _grid as grid
from pages._format import money
from pages._history import tokens_text

# The grid is 820 px wide in a 1280-px window with the sidebar open; its border and the row
# checkboxes leave this much for the columns (its scrollbars overlay the cells).
WIDTH_PX = 820 - 2 - grid.ROW_MARKER_PX - 4
RUN_MIN_PX = 180  # three lines of it hold a prompt's first line (80 characters, about 450 px)
LINES = 3  # a wrapped row's lines
HEIGHT_PX = 440  # the table's most height; more rows scroll inside it
# A column that may wrap: at most this wide (its values take up to LINES lines).
WRAP_AT_PX = {"Model": 110, "Status": 90}
# A column that wraps at its spaces only when the Run column would be narrower than RUN_MIN_PX.
WRAP_WHEN_TIGHT = ("Owner",)

COLUMN_HELP = {
    "Run": "The title, else the prompt",
    "Owner": "Whose run: you; the name of the person who shared it with the team; "
    "team: a run of nobody's (the command line or the endpoint)",
    "Thread": "Runs of one conversation: a follow-up asks the next question after an answer",
    "Status": "Why a finished run stopped (finished, max rounds, repetition…), else interrupted, "
    "cancelled, error or running. Interrupted: the process writing it stopped; resume it.",
    "Source": "API: a request to the endpoint (python -m core serve); blank: the app, the CLI or a batch",
    "Tokens": "Output tokens (≈: estimated)",
    "Cost": "Estimated from the listed prices (—: no prices known)",
}
DATE_FORMAT = "MMM D, HH:mm"  # as the grid shows the Date column


@dataclass(frozen=True)
class RunsTable:
    """What ``st.dataframe`` needs: the rows, each column's width, the rows' height (None: one line)."""

    frame: pd.DataFrame
    columns: dict[str, Any]
    widths: dict[str, int]
    row_height: int | None
    height: int


def outcome(summary: RunSummary) -> str:
    """The status, or for a finished run why it stopped ("finished", "max rounds", "repetition"…)."""
    if summary.status == "finished" and summary.stop_reason:
        return summary.stop_reason.replace("_", " ")
    return summary.status


def thread_place(summary: RunSummary, threads: dict[str, list[str]]) -> str:
    """ "2 of 3" for the second run of a thread of three; "" for a run in no thread."""
    members = threads.get(summary.thread_id or "", [])
    if len(members) < 2 or summary.id not in members:
        return ""
    return f"{members.index(summary.id) + 1} of {len(members)}"


def source_text(source: str) -> str:
    """Where a run came from, as the table shows it: "API" for the endpoint, "" otherwise."""
    return "API" if source == "api" else source


def owner_text(summary: RunSummary, you: str | None) -> str:
    """Whose run it is, as the Owner column says it: "you", the name of the person who shared
    it, or "team" for a run of nobody (the command line, the endpoint)."""
    if summary.person is None:
        return "team"
    if summary.person == you:
        return "you"
    return summary.person_name or "someone"


def date_text(moment: datetime) -> str:
    """A date as the grid shows it (``DATE_FORMAT``): "Dec 6, 10:06"."""
    return f"{moment:%b} {moment.day}, {moment:%H:%M}"


def runs_frame(
    runs: list[RunSummary], threads: dict[str, list[str]] | None = None, you: str | None = None
) -> pd.DataFrame:
    """The rows of the Runs table (the run ids stay out of sight, in the same order);
    ``threads``: :meth:`Store.threads` of the runs' threads, for the Thread column, shown
    only when a run in the list is in a thread; the Source column only when one came from the
    endpoint; the Owner column only for a signed-in person, ``you`` (None: no sign-in, no
    column). The provider is in the filters and the opened run, not in a column: the width
    goes to the title."""
    places = [thread_place(s, threads or {}) for s in runs]
    sources = [source_text(s.source) for s in runs]
    columns: dict[str, list[Any]] = {
        "Date": [datetime.fromtimestamp(s.created_at) for s in runs],
        "Run": [s.display_title or "(no prompt)" for s in runs],
        "Owner": [owner_text(s, you) for s in runs],
        "Thread": places,
        "Source": sources,
        "Model": [s.model for s in runs],
        "Strategy": [s.strategy for s in runs],
        "Status": [outcome(s) for s in runs],
        "Rounds": [s.rounds for s in runs],
        "Tokens": [tokens_text(s.completion_tokens, s.tokens_estimated) for s in runs],
        "Cost": [money(s.cost) for s in runs],
    }
    if you is None:
        del columns["Owner"]
    if not any(places):
        del columns["Thread"]
    if not any(sources):
        del columns["Source"]
    return pd.DataFrame(columns)


def shown(frame: pd.DataFrame, column: str) -> list[str]:
    """A column's values as the grid shows them."""
    values = list(frame[column])
    if column == "Date":
        return [date_text(v) for v in values]
    return [str(v) for v in values]


def _width(frame: pd.DataFrame, column: str, tight: bool = False) -> int:
    """The narrowest width that shows the header on one line and each value in at most LINES
    lines: the widest value's, or ``WRAP_AT_PX`` for a column that may wrap; ``tight``: the
    widest word's (values wrap at their spaces)."""
    values = shown(frame, column)
    header = grid.cell_px(column)
    one_line = max([header, *(grid.cell_px(v) for v in values)])
    wrap_at = max([0, *(grid.cell_px(w) for v in values for w in v.split())]) if tight else one_line
    width = max(header, min(one_line, WRAP_AT_PX.get(column, wrap_at)))
    while any(len(grid.wrapped(v, width)) > LINES for v in values):
        width += 10
    return width


def runs_table(
    runs: list[RunSummary], threads: dict[str, list[str]] | None = None, you: str | None = None
) -> RunsTable:
    """The Runs table of ``runs``, laid out for a 1280-px window (``you``: see :func:`runs_frame`)."""
    frame = runs_frame(runs, threads, you)
    widths = {c: _width(frame, c) for c in frame.columns if c != "Run"}
    for column in (c for c in WRAP_WHEN_TIGHT if c in widths):
        if WIDTH_PX - sum(widths.values()) < RUN_MIN_PX:
            widths[column] = _width(frame, column, tight=True)
    run_px = max(RUN_MIN_PX, WIDTH_PX - sum(widths.values()))
    frame["Run"] = [grid.shortened(title, run_px, LINES) for title in frame["Run"]]
    widths["Run"] = run_px
    lines = max(
        (len(grid.wrapped(v, widths[c])) for c in frame.columns for v in shown(frame, c)),
        default=1,
    )
    row_px = grid.ROW_PX if lines == 1 else grid.WRAPPED_ROW_PX
    return RunsTable(
        frame=frame,
        columns=_column_config(frame, widths),
        widths=widths,
        row_height=None if lines == 1 else row_px,
        height=min(grid.HEADER_PX + row_px * len(runs) + 2, HEIGHT_PX),
    )


def _column_config(frame: pd.DataFrame, widths: dict[str, int]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for column in frame.columns:
        width, tip = widths[column], COLUMN_HELP.get(column)
        if column == "Date":
            config[column] = st.column_config.DatetimeColumn(format=DATE_FORMAT, width=width)
        elif column == "Rounds":
            config[column] = st.column_config.NumberColumn(width=width)
        else:
            config[column] = st.column_config.TextColumn(width=width, help=tip)
    return config
