"""Downloads of a run: Markdown, plain text, the JSON transcript, the round table as CSV.

Pure functions from a :class:`~core.types.RunResult` to bytes (UTF-8), plus the
file name a download gets. The Markdown and text downloads hold exactly the
assembled answer the Studio shows (the user's edits included: the last edit's text,
then the rounds after it); the JSON is :meth:`RunResult.to_dict` (the transcript,
with every edit and the text before it, which never holds an API key); the CSV has
one row per round, the same rows the Studio's round table shows (:func:`round_rows`).
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
import unicodedata
from typing import Any

from core.services.plain import plain_text
from core.types import Round, RunResult

FORMATS: dict[str, str] = {
    "md": "text/markdown",
    "txt": "text/plain",
    "json": "application/json",
    "csv": "text/csv",
}

# Columns of the round table, in order (the CSV header and the Studio's DataFrame).
ROUND_COLUMNS: tuple[str, ...] = (
    "round",
    "strategy",
    "max_tokens",
    "input_tokens",
    "input_estimated",
    "output_tokens",
    "output_estimated",
    "token_source",
    "cached_tokens",
    "reasoning_tokens",
    "finish_reason",
    "ttft_s",
    "duration_s",
    "tokens_per_s",
    "retries",
    "cost_usd",
    "characters",
    "seam_flags",
    "error",
)


def to_markdown(result: RunResult) -> bytes:
    """The assembled answer, as the model wrote it (it is Markdown already)."""
    return result.text.encode("utf-8")


def to_text(result: RunResult) -> bytes:
    """The assembled answer as plain text: its words without the Markdown syntax (:mod:`core.services.plain`)."""
    return plain_text(result.text).encode("utf-8")


def to_json(result: RunResult) -> bytes:
    """The JSON transcript: spec (no key), every round, stop reason, totals, text."""
    return json.dumps(result.to_dict(), ensure_ascii=False, indent=2, default=str).encode("utf-8")


def token_source(r: Round) -> str:
    """Where a round's token counts came from: ``server``, ``estimated`` (no usage sent) or
    ``estimated: server's refused`` (usage that could not be true, see budget.implausible_usage)."""
    if any(f.get("kind") == "usage_ignored" for f in r.seam_flags):
        return "estimated: server's refused"
    if r.prompt_estimated or r.completion_estimated:
        return "estimated" if r.prompt_estimated and r.completion_estimated else "partly estimated"
    return "server"


def _round_row(r: Round) -> dict[str, Any]:
    return {
        "round": r.index,
        "strategy": r.strategy,
        "max_tokens": r.max_tokens,
        "input_tokens": r.prompt_tokens,
        "input_estimated": r.prompt_estimated,
        "output_tokens": r.completion_tokens,
        "output_estimated": r.completion_estimated,
        "token_source": token_source(r),
        "cached_tokens": r.cached_tokens,
        "reasoning_tokens": r.reasoning_tokens,
        "finish_reason": r.finish_reason or "",
        "ttft_s": None if r.ttft_s is None else round(r.ttft_s, 3),
        "duration_s": round(r.duration_s, 3),
        "tokens_per_s": None if r.tokens_per_s is None else round(r.tokens_per_s, 1),
        "retries": r.retries,
        "cost_usd": r.cost,
        "characters": len(r.text),
        "seam_flags": " ".join(str(f.get("kind", "")) for f in r.seam_flags),
        "error": r.error or "",
    }


def round_rows(result: RunResult) -> list[dict[str, Any]]:
    """One dict per round with the keys of :data:`ROUND_COLUMNS`."""
    return [_round_row(r) for r in result.rounds]


def to_csv(result: RunResult) -> bytes:
    """The round table: a header of :data:`ROUND_COLUMNS`, then one line per round."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ROUND_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in round_rows(result):
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue().encode("utf-8")


EXPORTERS = {"md": to_markdown, "txt": to_text, "json": to_json, "csv": to_csv}


def export(result: RunResult, ext: str) -> bytes:
    """The download for ``ext`` (one of :data:`FORMATS`)."""
    try:
        return EXPORTERS[ext](result)
    except KeyError:
        raise ValueError(f"unknown export format {ext!r}; choose one of {', '.join(FORMATS)}") from None


def slugify(text: str, max_len: int = 48) -> str:
    """A lowercase ASCII slug of the first words of ``text`` ("" when nothing is left)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > max_len:
            break
        slug = candidate
    if not slug and words:
        slug = words[0][:max_len]
    return slug


def download_name(result: RunResult, ext: str) -> str:
    """``<title or prompt slug>-<YYYYMMDD-HHMM>.<ext>``, e.g. ``a-history-of-rome-20251126-0930.md``."""
    slug = slugify(result.spec.title) or slugify(result.spec.prompt) or "continuum-run"
    stamp = time.strftime("%Y%m%d-%H%M", time.localtime(result.started_at))
    return f"{slug}-{stamp}.{ext.lstrip('.')}"
