"""Rows ↔ domain objects: ``rounds`` rows ↔ :class:`Round`, ``runs`` rows → :class:`RunSummary`."""

from __future__ import annotations

import json
import sqlite3
import zlib
from dataclasses import asdict, dataclass
from typing import Any

from core.types import ErrorInfo, Round

RUN_STATUSES: tuple[str, ...] = ("running", "finished", "interrupted", "error", "cancelled")
PROMPT_PREVIEW_CHARS = 300
INTERRUPTED = "interrupted"

# Round fields with a column of their own (``index`` → ``idx``, ``seam_flags`` → JSON);
# any other Round field goes to ``extra_json``.
_ROUND_COLUMNS = (
    "strategy",
    "max_tokens",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "prompt_estimated",
    "completion_estimated",
    "ttft_s",
    "duration_s",
    "retries",
    "recovery",
    "error",
    "cost",
    "started_at",
    "held_back",
    "text",
    "reasoning",
)
_ROUND_BOOLS = ("prompt_estimated", "completion_estimated", "recovery")
ROUND_WRITE_COLUMNS = (
    "live",
    *_ROUND_COLUMNS,
    "characters",
    "reasoning_characters",
    "seam_flags_json",
    "extra_json",
)


def status_for(stop_reason: str | None) -> str:
    """The run status a stop reason ends in (None: the run never finished)."""
    if stop_reason is None:
        return INTERRUPTED
    if stop_reason in ("error", "cancelled"):
        return stop_reason
    return "finished"


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _throwaway(text: str) -> str:
    """A copy of a non-ASCII ``text`` for the database driver. sqlite3 binds a ``str`` through
    CPython's ``PyUnicode_AsUTF8AndSize``, which keeps the UTF-8 it makes inside the string for
    the string's life: bound as is, every round's text (kept by the run) would carry a second,
    UTF-8 copy of itself (bench/bench_memory.py: a recorded 1M-token run held 3.6x its answer, now 2.6x).
    The copy takes that cache and is freed with the statement. An ASCII text has no cache."""
    return text if text.isascii() else "".join((text, ""))


def round_row(round_: Round, *, live: bool = False) -> dict[str, Any]:
    """Column values for one round (without run_id / idx)."""
    data = asdict(round_)
    row: dict[str, Any] = {"live": int(live)}
    for name in _ROUND_COLUMNS:
        value = data.pop(name)
        row[name] = int(value) if name in _ROUND_BOOLS else value
    data.pop("index")
    for name in ("text", "reasoning", "held_back"):
        row[name] = _throwaway(row[name])
    row["characters"] = len(round_.text)
    row["reasoning_characters"] = len(round_.reasoning)
    row["seam_flags_json"] = dumps(data.pop("seam_flags"))
    row["extra_json"] = dumps(data)
    return row


def round_from_row(row: sqlite3.Row, *, run_running: bool) -> Round:
    """A Round from its row; a live row (never finished) of a run that is not running
    comes back as interrupted: ``finish_reason`` None, ``error`` "interrupted"."""
    keys = row.keys()
    values: dict[str, Any] = {}
    if "extra_json" in keys and row["extra_json"]:
        values.update(json.loads(row["extra_json"]))
    for name in _ROUND_COLUMNS:
        value = row[name]
        values[name] = bool(value) if name in _ROUND_BOOLS else value
    values["index"] = row["idx"]
    values["seam_flags"] = json.loads(row["seam_flags_json"] or "[]")
    if row["live"] and not run_running:
        values["finish_reason"] = None
        values["error"] = values.get("error") or INTERRUPTED
    return Round.from_dict(values)


def fingerprint(round_: Round) -> tuple[Any, ...]:
    """A cheap identity of what a round row holds: the text columns by length and CRC."""
    row = round_row(round_)
    for name in ("text", "reasoning", "held_back"):
        raw = str(row[name]).encode("utf-8", "surrogatepass")
        row[name] = (len(raw), zlib.crc32(raw))
    return tuple(sorted(row.items()))


def error_from_json(text: str | None) -> ErrorInfo | None:
    if not text:
        return None
    return ErrorInfo.from_dict(json.loads(text))


@dataclass(frozen=True)
class RunSummary:
    """One line of the run history (no round text: cheap to list by the hundred)."""

    id: str
    title: str
    prompt: str  # the last user message, cut to PROMPT_PREVIEW_CHARS
    provider: str
    base_url: str
    model: str
    strategy: str
    status: str
    stop_reason: str | None
    created_at: float
    updated_at: float
    started_at: float
    finished_at: float | None
    rounds: int
    prompt_tokens_billed: int
    completion_tokens: int
    tokens_estimated: bool
    cost: float | None
    characters: int
    error: ErrorInfo | None
    batch_id: str | None
    thread_id: str | None = None  # runs of one conversation (follow-ups) share it
    parent_id: str | None = None  # the run this one follows up on
    source: str = ""  # where the run came from: "" (the app, the CLI, a batch) or "api" (core.serve)
    person: str | None = None  # who started it (None: nobody — the CLI, the endpoint, no sign-in)
    shared: bool = False  # shared with the team by its person
    person_name: str | None = None  # what its person was called when they started it (None: unknown)

    @property
    def display_title(self) -> str:
        """The title, else the first line of the prompt, shortened."""
        if self.title.strip():
            return self.title.strip()
        first = self.prompt.strip().splitlines()[0] if self.prompt.strip() else ""
        return first if len(first) <= 80 else first[:79] + "…"

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RunSummary:
        return cls(
            id=row["id"],
            title=row["title"],
            prompt=row["prompt_preview"],
            provider=row["provider"],
            base_url=row["base_url"],
            model=row["model"],
            strategy=row["strategy"],
            status=row["status"],
            stop_reason=row["stop_reason"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            rounds=row["rounds"],
            prompt_tokens_billed=row["prompt_tokens_billed"],
            completion_tokens=row["completion_tokens"],
            tokens_estimated=bool(row["tokens_estimated"]),
            cost=row["cost"],
            characters=row["characters"],
            error=error_from_json(row["error_json"]),
            batch_id=row["batch_id"],
            thread_id=row["thread_id"],
            parent_id=row["parent_id"],
            source=row["source"],
            person=row["person"],
            shared=bool(row["shared"]),
            person_name=row["person_name"],
        )


SUMMARY_COLUMNS = (
    f"id, title, substr(prompt, 1, {PROMPT_PREVIEW_CHARS}) AS prompt_preview, provider, base_url, model,"
    " strategy, status, stop_reason, created_at, updated_at, started_at, finished_at, rounds,"
    " prompt_tokens_billed, completion_tokens, tokens_estimated, cost, characters, error_json, batch_id,"
    " thread_id, parent_id, source, person, shared, person_name"
)


def json_object(text: str) -> dict[str, Any]:
    value = json.loads(text or "{}")
    return value if isinstance(value, dict) else {}
