"""SQL shared by the store: totals, the round upsert, and the run-list filters."""

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
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
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
