"""Two runs side by side: their totals, their per-round series, and where their texts part.

Built on the per-round numbers of :mod:`core.services.inspect`; the Inspect page's Compare
tab draws them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.services.inspect import flag_counts, original_prompt_tokens, round_series
from core.types import RunResult

__all__ = [
    "TextDifference",
    "compare_series",
    "compare_totals",
    "first_difference",
    "run_label",
    "run_totals",
]


def run_label(result: RunResult) -> str:
    """A short name for a run in a comparison: provider · model · strategy."""
    spec = result.spec
    return f"{spec.provider} · {spec.model} · {spec.strategy}"


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def run_totals(result: RunResult) -> dict[str, Any]:
    """The numbers a comparison shows for one run (None where unknown)."""
    totals = result.totals()
    rates = [r.tokens_per_s for r in result.rounds if r.tokens_per_s is not None]
    ttfts = [r.ttft_s for r in result.rounds if r.ttft_s is not None]
    prompt, _ = original_prompt_tokens(result)
    billed = int(totals["prompt_tokens_billed"])
    duration = (result.finished_at - result.started_at) if result.finished_at else None
    flags = flag_counts(result)
    return {
        "provider": result.spec.provider,
        "model": result.spec.model,
        "strategy": result.spec.strategy,
        "stop_reason": result.stop_reason,
        "rounds": totals["rounds"],
        "output_tokens": totals["completion_tokens"],
        "input_billed": billed,
        "input_vs_one_request": (billed / prompt) if prompt else None,
        "tokens_estimated": totals["tokens_estimated"],
        "characters": totals["characters"],
        "cost": totals["cost"],
        "duration_s": duration,
        "mean_tokens_per_s": _mean(rates),
        "mean_ttft_s": _mean(ttfts),
        "retries": totals["retries"],
        "seam_flags": ", ".join(f"{k} ×{n}" for k, n in sorted(flags.items())) or "none",
    }


TOTALS_LABELS: tuple[tuple[str, str], ...] = (
    ("provider", "Provider"),
    ("model", "Model"),
    ("strategy", "Strategy"),
    ("stop_reason", "Stop reason"),
    ("rounds", "Rounds"),
    ("output_tokens", "Output tokens"),
    ("input_billed", "Input billed (all rounds)"),
    ("input_vs_one_request", "Input billed ÷ one request"),
    ("characters", "Characters"),
    ("cost", "Cost (USD)"),
    ("duration_s", "Duration (s)"),
    ("mean_tokens_per_s", "Mean tokens/s"),
    ("mean_ttft_s", "Mean time to first token (s)"),
    ("retries", "Retries"),
    ("seam_flags", "Seam flags"),
)


def compare_totals(a: RunResult, b: RunResult) -> list[dict[str, Any]]:
    """Rows ``{"key", "metric", "a", "b", "same"}`` comparing the totals of two runs."""
    ta, tb = run_totals(a), run_totals(b)
    return [
        {"key": key, "metric": label, "a": ta[key], "b": tb[key], "same": ta[key] == tb[key]}
        for key, label in TOTALS_LABELS
    ]


def compare_series(a: RunResult, b: RunResult, labels: tuple[str, str] = ("A", "B")) -> list[dict[str, Any]]:
    """:func:`round_series` of both runs in one long table, each row with ``run`` set to its label."""
    rows: list[dict[str, Any]] = []
    for label, result in zip(labels, (a, b), strict=True):
        rows.extend({**row, "run": label} for row in round_series(result))
    return rows


@dataclass(frozen=True)
class TextDifference:
    """Where two texts first differ. ``offset`` is None when they are identical."""

    offset: int | None
    line: int  # 1-based line of the offset (in both texts: they agree up to it)
    column: int  # 1-based
    before: str  # the shared text just before the difference
    a: str  # each text from the difference on (shortened)
    b: str
    a_length: int
    b_length: int

    @property
    def identical(self) -> bool:
        return self.offset is None


def first_difference(a: str, b: str, context: int = 160) -> TextDifference:
    """The first character where ``a`` and ``b`` differ, with ``context`` characters around it."""
    n = min(len(a), len(b))
    lo, hi = 0, n  # the common prefix is a[:lo]; compare in halves, not character by character
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    if lo == len(a) == len(b):
        return TextDifference(None, 0, 0, "", "", "", len(a), len(b))
    line = a.count("\n", 0, lo) + 1
    column = lo - (a.rfind("\n", 0, lo) + 1) + 1
    return TextDifference(
        offset=lo,
        line=line,
        column=column,
        before=a[max(0, lo - context) : lo],
        a=a[lo : lo + context],
        b=b[lo : lo + context],
        a_length=len(a),
        b_length=len(b),
    )
