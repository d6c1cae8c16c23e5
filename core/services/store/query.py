"""SQL shared by the store: totals, the round upsert, the run-list filters, and who sees what.

Who sees what is decided here, once, in SQL: :func:`seen_runs`, :func:`seen_batches` and
:func:`changeable` take the viewer (a person's id; None: the administrator, who sees everything)
and give a condition every query of a view of the store adds (:mod:`.viewers`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .dialect import SQLITE, Dialect
from .rows import ROUND_WRITE_COLUMNS


def casefold(value: object) -> str:
    return str(value or "").casefold()


TOTALS_SQL = """
UPDATE runs SET
    (rounds, prompt_tokens_billed, completion_tokens, tokens_estimated, cost, characters) = (
        SELECT count(*), coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0),
               coalesce(max(CASE WHEN prompt_estimated <> 0 OR completion_estimated <> 0 THEN 1 ELSE 0 END), 0),
               sum(cost),
               coalesce(sum(characters), 0) + coalesce((
                   SELECT length(text_before) - removed + added FROM edits
                   WHERE edits.run_id = runs.id ORDER BY position DESC LIMIT 1), 0)
        FROM rounds WHERE rounds.run_id = runs.id),
    updated_at = :now, heartbeat_at = :now
WHERE id = :run_id
"""

UPSERT_ROUND_SQL = (
    f"INSERT INTO rounds (run_id, idx, {', '.join(ROUND_WRITE_COLUMNS)})"
    f" SELECT :run_id, :idx, {', '.join(':' + c for c in ROUND_WRITE_COLUMNS)}"
    " WHERE EXISTS (SELECT 1 FROM runs WHERE id = :run_id)"
    " ON CONFLICT (run_id, idx) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in ROUND_WRITE_COLUMNS)
)


def seen_runs(viewer: str | None) -> tuple[str, list[Any]]:
    """Runs ``viewer`` sees: their own, those shared with the team, and those of nobody (the
    command line, the endpoint, a server before sign-in); everything for None."""
    if viewer is None:
        return "1 = 1", []
    return "(person = ? OR shared <> 0 OR person IS NULL)", [viewer]


def seen_batches(viewer: str | None) -> tuple[str, list[Any]]:
    """Batches ``viewer`` sees: their own (a batch is run from its page, so one of nobody — made by
    the command line — stays the administrator's; its runs are the team's); everything for None."""
    return changeable(viewer)


def changeable(viewer: str | None) -> tuple[str, list[Any]]:
    """Rows ``viewer`` may change (rename, delete, share, resume): their own; everything for None."""
    if viewer is None:
        return "1 = 1", []
    return "person = ?", [viewer]


def _timestamp(value: float | datetime) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


def filters(
    query: str | None,
    provider: str | None,
    model: str | None,
    status: str | Iterable[str] | None,
    since: float | datetime | None,
    until: float | datetime | None,
    batch_id: str | None,
    dialect: Dialect = SQLITE,
    viewer: str | None = None,
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if viewer is not None:
        seen, params = seen_runs(viewer)
        clauses.append(seen)
    if query and query.strip():
        words = dialect.fold(query).split()
        contains = dialect.text_contains.format(text=f"title || {dialect.newline} || prompt")
        text_match = " AND ".join([contains] * len(words))
        clauses.append(f"(({text_match}) OR id = ?)")
        params.extend([*words, query.strip()])
    for column, value in (("provider", provider), ("model", model), ("batch_id", batch_id)):
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    if status:
        statuses = [status] if isinstance(status, str) else list(status)
        clauses.append(f"status IN ({','.join('?' * len(statuses))})")
        params.extend(statuses)
    if since is not None:
        clauses.append("created_at >= ?")
        params.append(_timestamp(since))
    if until is not None:
        clauses.append("created_at < ?")
        params.append(_timestamp(until))
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params
