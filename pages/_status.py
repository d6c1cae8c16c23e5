"""The words and numbers around a run: status line, gauge, round headings, stop and error messages."""

from __future__ import annotations

import time
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from core.services.jobs import Gauge, LiveRound, Snapshot
from core.services.providers import PROVIDERS
from core.types import ErrorInfo, Round, RunSpec
from pages._blocks import inert, inert_code

STOP_MESSAGES = {
    "finished": "The model finished on its own.",
    "max_rounds": "Reached the round limit. Raise **Max rounds** to let it go further.",
    "target_reached": "Reached the target length.",
    "context_exhausted": "The context window is full: the prompt and the answer fill the model's window.",
    "no_progress": "Stopped: a round added nothing new.",
    "repetition": "Stopped: the model started repeating itself.",
    "cost_limit": "Reached the cost limit.",
    "cancelled": "Stopped by you. The text so far is kept.",
    "error": "Stopped on an error. The text so far is kept.",
}

ERROR_TITLES = {
    "AuthenticationError": "The provider rejected the API key",
    "PaymentRequiredError": "The provider account has no credit left",
    "PermissionDeniedError": "This key may not use that model",
    "NotFoundError": "Not found: check the model name and the base URL",
    "ContextOverflowError": "The prompt is too long for the model's context window",
    "PrefillUnsupportedError": "This server refuses a trailing assistant message",
    "ConnectError": "Could not reach the server",
    "ConnectTimeoutError": "The server did not answer in time",
    "IdleTimeoutError": "The server went silent",
    "RoundTimeoutError": "A round took too long",
    "StreamInterrupted": "The server stopped in the middle of the answer",
    "RateLimitError": "The provider is rate limiting this key",
    "ServerError": "The provider had a server error",
    "UnexpectedResponseError": "The server's reply is not an OpenAI-compatible API response",
    "MalformedStreamError": "The server sent a broken stream",
    "ValidationError": "The provider rejected the request",
    "BadRequestError": "The provider rejected the request",
    "ConfigError": "A setting needs fixing",
}


def error_title(info: ErrorInfo) -> str:
    return ERROR_TITLES.get(info.kind, "The run stopped on an error")


def show_error(info: ErrorInfo, target: Any = None) -> None:
    # the server's own words: no image, only http(s) links stay links
    (target or st).error(inert(f"**{error_title(info)}.** {info.message}"), icon=":material/error:")


# ---------------------------------------------------------------- formatting


def _n(value: int, estimated: bool = False) -> str:
    return f"{'≈' if estimated else ''}{value:,}"


def _money(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def round_heading(r: Round) -> str:
    parts = [f"**Round {r.index}**", f"{_n(r.completion_tokens, r.completion_estimated)} tokens"]
    parts.append(inert_code(r.finish_reason) if r.finish_reason else "no finish reason")  # the server's word
    parts.append(f"{r.duration_s:.1f} s")
    if r.recovery:
        parts.append(":orange-badge[recovery]")
    if r.retries:
        parts.append(f":orange-badge[{r.retries} retries]")
    for flag in r.seam_flags:
        parts.append(f":orange-badge[{flag.get('kind', 'seam')}]")
    if r.error:
        parts.append(":red-badge[error]")
    return " · ".join(parts)


def live_heading(live: LiveRound) -> str:
    what = "reasoning" if live.reasoning and not live.text else "streaming"
    recovery = " · :orange-badge[recovery]" if live.recovery else ""
    return (
        f"**Round {live.index}** · {_n(live.chunks, True)} tokens · "
        f":blue-badge[{what}] · {live.elapsed_s():.1f} s{recovery}"
    )


RATE_AFTER = 0.25  # seconds a round streams before its own speed is shown (before: the last round's)


def live_rate(snap: Snapshot, now: float | None = None) -> float | None:
    """Tokens a second of the stream now: the live round's since its first token, once it has
    streamed ``RATE_AFTER`` seconds; until then the last finished round's (None: no round yet)."""
    live = snap.live
    if live is not None and live.first_token_at is not None and live.chunks > 1:
        streaming = (time.monotonic() if now is None else now) - live.first_token_at
        if streaming >= RATE_AFTER:
            return (live.chunks - 1) / streaming
    return next((r.tokens_per_s for r in reversed(snap.rounds) if r.tokens_per_s), None)


def status_line(snap: Snapshot, now: float | None = None) -> str:
    """The run in one line; while it runs, with the live speed in tokens a second (≈: the live
    round counts stream chunks, about one token each)."""
    rounds = len(snap.rounds) + (1 if snap.live else 0)
    tokens = snap.gauge.generated_tokens
    facts = f"{rounds} round{'s' if rounds != 1 else ''} · {_n(tokens, snap.gauge.estimated)} tokens"
    facts += f" · {snap.elapsed_s:.1f} s"
    if snap.status == "running":
        rate = live_rate(snap, now)
        if rate is not None:
            facts += f" · ≈{rate:,.0f} tok/s"
        return f":blue-badge[:material/progress_activity: Generating] {facts}"
    if snap.status == "stopping":
        return f":orange-badge[:material/stop_circle: Stopping…] {facts}"
    reason = snap.stop_reason or "finished"
    color = {"finished": "green", "target_reached": "green", "cancelled": "gray", "error": "red"}.get(
        reason, "orange"
    )
    return f":{color}-badge[{reason.replace('_', ' ').capitalize()}] {facts}"


LEVEL_COLORS = {"ok": "#2f9e44", "amber": "#f08c00", "red": "#e03131"}
PROMPT_COLOR = "#4c6ef5"
REMAINING_COLOR = "rgba(134, 142, 150, 0.35)"  # reads on light and dark themes
GAUGE_BAR_PX = 16  # the bar's height, in the chart and in its HTML twin
GAUGE_BAR_MARGIN = "3px 0"  # the HTML twin's margin (set from a screenshot of both)
MIN_PART = 0.01  # of the bar: a part thinner than this is drawn this wide, so it is seen at all
PART_GAP = 0.004  # of the bar: the gap that shows where one part ends and the next begins


def gauge_parts(g: Gauge) -> pd.DataFrame:
    """The bar's parts in window units: part, tokens (the true count), start, end (as drawn).

    Prompt and generated are separate parts, each at least ``MIN_PART`` of the bar wide
    when it holds any token (a 17-token prompt in a 32k window would be a fraction of a
    pixel); a gap of ``PART_GAP`` separates each part from the next. Numbers are in the
    tooltip and the words below the bar.
    """
    window = g.window or max(1, g.used)
    prompt = min(g.prompt_tokens, window)  # a prompt past the window fills the bar, no more
    generated = min(g.generated_tokens, window - prompt)
    rows: list[dict[str, Any]] = []
    at = 0.0
    for part, tokens, width in (
        ("prompt", g.prompt_tokens, prompt),
        ("generated", g.generated_tokens, generated),
    ):
        if tokens <= 0 or at >= window:
            continue
        end = min(float(window), at + max(float(width), window * (MIN_PART + PART_GAP)))
        rows.append({"part": part, "tokens": tokens, "start": at, "end": end})
        at = end
    if at < window:
        rows.append({"part": "remaining", "tokens": window - prompt - generated, "start": at, "end": window})
    for row in rows[:-1]:
        row["end"] = max(row["start"], row["end"] - window * PART_GAP)
    return pd.DataFrame(rows, columns=["part", "tokens", "start", "end"])


def gauge_chart(g: Gauge) -> alt.Chart:
    """The window as one bar: prompt (blue), generated (green → amber → red), remaining (gray)."""
    window = g.window or max(1, g.used)
    colors = [PROMPT_COLOR, LEVEL_COLORS[g.level], REMAINING_COLOR]
    return (
        alt.Chart(gauge_parts(g))
        .mark_bar(height=GAUGE_BAR_PX, cornerRadius=3)
        .encode(
            x=alt.X("start:Q", axis=None, scale=alt.Scale(domain=[0, window], nice=False)),
            x2="end:Q",
            color=alt.Color(
                "part:N",
                scale=alt.Scale(domain=["prompt", "generated", "remaining"], range=colors),
                legend=None,
            ),
            tooltip=["part", alt.Tooltip("tokens:Q", format=",")],
        )
        .properties(height=22)
    )


GAUGE_STYLE = f"""<style>
.cm-gauge {{ position: relative; height: {GAUGE_BAR_PX}px; margin: {GAUGE_BAR_MARGIN}; }}
.cm-gauge::before, .cm-gauge i, .cm-gauge::after {{ content: ""; position: absolute; top: 0; bottom: 0;
  border-radius: 3px; }}
.cm-gauge::before {{ left: 0; width: var(--p); background: {PROMPT_COLOR}; }}
.cm-gauge i {{ left: var(--g); width: var(--w); }}
.cm-gauge::after {{ left: var(--r); right: 0; background: {REMAINING_COLOR}; }}
{"".join(f".cm-gauge.{level} i {{ background: {color}; }}" for level, color in LEVEL_COLORS.items())}
.cm-gauge-words {{ font-size: 0.875rem; opacity: 0.6; }}
</style>"""


def gauge_running(g: Gauge) -> str:
    """What a running job's gauge shows, as one Markdown element redrawn every status update:
    the same bar as :func:`gauge_chart` in about 130 bytes of HTML (its parts as CSS variables
    of ``GAUGE_STYLE``, sent once; the Vega chart is 2.3 KB a time and replaces the bar, with
    its tooltips, when the run ends) and :func:`gauge_line` below it."""
    window = g.window or max(1, g.used)
    at = {"prompt": (0.0, 0.0), "generated": (0.0, 0.0), "remaining": (window, window)}
    for part, start, end in gauge_parts(g)[["part", "start", "end"]].itertuples(index=False):
        at[part] = (start, end)
    (_, prompt_end), (gen_start, gen_end), (rest_start, _) = at["prompt"], at["generated"], at["remaining"]

    def pc(tokens: float) -> str:
        return f"{100 * tokens / window:.1f}%"

    share = round(100 * (g.fraction or 0))
    variables = f"--p:{pc(prompt_end)};--g:{pc(gen_start)};--w:{pc(gen_end - gen_start)};--r:{pc(rest_start)}"
    bar = f'<div class="cm-gauge {g.level}" role="img" aria-label="{share}% of the window" style="{variables}"><i></i></div>'
    # the words as a caption looks (Streamlit's caption fades its whole box, the bar's colours too)
    return f'{bar}\n\n<div class="cm-gauge-words">\n\n{gauge_line(g)}\n\n</div>'


def example_prices(spec: RunSpec) -> bool:
    """The demo model's prices are made up: its costs are shown as examples, never as bills."""
    provider = PROVIDERS.get(spec.provider)
    return provider is not None and provider.is_demo


def gauge_line(g: Gauge) -> str:
    """The gauge's first line in words: the share of the window, prompt, generated, remaining
    (what a running job shows: the billing line waits for the end)."""
    est = g.estimated
    if g.window:
        color = {"ok": "green", "amber": "orange", "red": "red"}[g.level]
        head = f":{color}-badge[{round(100 * (g.fraction or 0))}% of the {g.window:,}-token window]"
        rest = "n/a" if g.remaining is None else _n(g.remaining, est)
    else:
        head, rest = ":gray-badge[window unknown]", "unknown"
    return (
        f"{head} &nbsp; prompt **{_n(g.prompt_tokens, est)}** · generated **{_n(g.generated_tokens, est)}**"
        f" · remaining **{rest}**"
    )


def gauge_text(g: Gauge, rounds: int, *, example: bool = False) -> str:
    """The gauge in words; ``example``: the prices are the demo's made-up ones (say so)."""
    est = g.estimated
    line = gauge_line(g)
    billed = (
        f":material/receipt_long: Input billed **{_n(g.billed_input_tokens, est)}** tokens"
        f" over {rounds} round{'s' if rounds != 1 else ''} · "
        + (
            f"cost at example prices **{_money(g.cost)}** (the demo bills nothing)"
            if example
            else f"est. cost **{_money(g.cost)}**"
        )
    )
    if rounds > 1:
        billed += " — every round re-sends the prompt and all the text so far"
    return f"{line}  \n{billed}"


def stop_message(snap: Snapshot) -> tuple[str, str] | None:
    """(kind, message) explaining why a finished job stopped; None while it runs."""
    if not snap.done:
        return None
    if snap.error is not None:
        return "error", ""
    reason = snap.stop_reason or "finished"
    if reason == "context_exhausted" and not snap.text:
        window = snap.spec.context_window
        where = f"the model's {window:,}-token window" if window else "the model's window"
        return (
            "warning",
            f"The prompt (≈{snap.gauge.prompt_tokens:,} tokens) leaves no room for an answer in {where}. "
            "Shorten the prompt or choose a model with a larger window.",
        )
    kind = "success" if reason in ("finished", "target_reached") else "info"
    if reason in ("context_exhausted", "repetition", "no_progress", "cost_limit", "max_rounds"):
        kind = "warning"
    return kind, STOP_MESSAGES.get(reason, reason)
