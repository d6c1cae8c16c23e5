"""Showing a job: status and Stop, the context gauge, the document, the rounds, downloads.

While the job runs, :func:`render_job` stays in a loop inside the page's
fragment, polling the job's snapshot and *appending* to the screen: finished
text is sealed into Markdown blocks that are sent once, the live tail is
re-sent at most ~10 times a second, and the status line and gauge about twice a
second. A click (Stop, a tab) or a reload interrupts the loop, never the job.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from core import export
from core.jobs import Gauge, Job, LiveRound, Snapshot
from core.types import ErrorInfo, Round
from pages import _charts as charts
from pages._blocks import BlockCutter

ROUND_HEIGHT = 260  # pixels: each round scrolls in its own box
TAIL_EVERY = 0.1  # seconds between updates of the live text
STATUS_EVERY = 0.5  # seconds between updates of the status line and the gauge

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
    (target or st).error(f"**{error_title(info)}.** {info.message}", icon=":material/error:")


# ---------------------------------------------------------------- text streams


class MarkdownStream:
    """A growing Markdown text in its own slot: sealed blocks (sent once) and a live tail."""

    def __init__(self, parent: Any, placeholder: str = "") -> None:
        self._holder = parent.empty()
        self._placeholder = placeholder
        self._reset()

    def _reset(self) -> None:
        box = self._holder.container()
        self._blocks = box.container()
        self._tail = box.empty()
        self._cutter = BlockCutter()
        self._shown: str | None = None

    def update(self, text: str) -> None:
        if not self._cutter.extends(text):
            self._reset()  # the text was rewritten behind the seal (rare): start over
        for block in self._cutter.cut(text):
            self._blocks.markdown(block.markdown())
        tail = self._cutter.tail(text)
        if tail == self._shown:
            return
        self._shown = tail
        if tail.strip():
            self._tail.markdown(tail)
        elif self._cutter.sealed == 0 and self._placeholder:
            self._tail.caption(self._placeholder)
        else:
            self._tail.empty()


# ---------------------------------------------------------------- formatting


def _n(value: int, estimated: bool = False) -> str:
    return f"{'≈' if estimated else ''}{value:,}"


def _money(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def round_heading(r: Round) -> str:
    parts = [f"**Round {r.index}**", f"{_n(r.completion_tokens, r.completion_estimated)} tokens"]
    parts.append(f"`{r.finish_reason}`" if r.finish_reason else "no finish reason")
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


def status_line(snap: Snapshot) -> str:
    rounds = len(snap.rounds) + (1 if snap.live else 0)
    tokens = snap.gauge.generated_tokens
    facts = f"{rounds} round{'s' if rounds != 1 else ''} · {_n(tokens, snap.gauge.estimated)} tokens"
    facts += f" · {snap.elapsed_s:.1f} s"
    if snap.status == "running":
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


def gauge_chart(g: Gauge) -> alt.Chart:
    """The window as one bar: prompt (blue), generated (green → amber → red), remaining (gray)."""
    window = g.window or max(1, g.used)
    data = pd.DataFrame(
        {
            "part": ["prompt", "generated", "remaining"],
            "tokens": [g.prompt_tokens, g.generated_tokens, g.remaining or 0],
            "order": [0, 1, 2],
        }
    )
    colors = [PROMPT_COLOR, LEVEL_COLORS[g.level], REMAINING_COLOR]
    return (
        alt.Chart(data)
        .mark_bar(height=16, cornerRadius=3)
        .encode(
            x=alt.X("sum(tokens):Q", axis=None, scale=alt.Scale(domain=[0, window], nice=False)),
            color=alt.Color(
                "part:N",
                scale=alt.Scale(domain=["prompt", "generated", "remaining"], range=colors),
                legend=None,
            ),
            order=alt.Order("order:Q"),
            tooltip=["part", alt.Tooltip("tokens:Q", format=",")],
        )
        .properties(height=22)
    )


def gauge_text(g: Gauge, rounds: int) -> str:
    est = g.estimated
    if g.window:
        color = {"ok": "green", "amber": "orange", "red": "red"}[g.level]
        head = f":{color}-badge[{round(100 * (g.fraction or 0))}% of the {g.window:,}-token window]"
        rest = "n/a" if g.remaining is None else _n(g.remaining, est)
    else:
        head, rest = ":gray-badge[window unknown]", "unknown"
    line = (
        f"{head} &nbsp; prompt **{_n(g.prompt_tokens, est)}** · generated **{_n(g.generated_tokens, est)}**"
        f" · remaining **{rest}**"
    )
    billed = (
        f":material/receipt_long: Input billed **{_n(g.billed_input_tokens, est)}** tokens"
        f" over {rounds} round{'s' if rounds != 1 else ''} · est. cost **{_money(g.cost)}**"
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


# ---------------------------------------------------------------- the job view


class RoundBox:
    """One round's element in the Rounds tab: heading, reasoning (collapsed), text."""

    def __init__(self, parent: Any) -> None:
        box = parent.container(border=True)
        self.heading = box.empty()
        self._reasoning_slot = box.empty()
        self._reasoning: MarkdownStream | None = None
        self.text = MarkdownStream(box.container(height=ROUND_HEIGHT, border=False), placeholder="Waiting…")

    def update(self, heading: str | None, text: str, reasoning: str) -> None:
        if heading is not None:
            self.heading.markdown(heading)
        if reasoning:
            if self._reasoning is None:
                expander = self._reasoning_slot.expander("Reasoning", icon=":material/psychology:")
                self._reasoning = MarkdownStream(expander)
            self._reasoning.update(reasoning)
        self.text.update(text)


class JobView:
    """The screen of one job, laid out once; :meth:`update_text` / :meth:`update_status` fill it."""

    def __init__(self, job: Job, on_clear: Callable[[], None] | None = None) -> None:
        self.job = job
        head = st.container(horizontal=True, vertical_alignment="center", gap="small")
        self.status = head.empty()
        self.stop = head.empty()
        self.clear = head.empty()
        self.on_clear = on_clear
        self.message = st.empty()
        self.gauge_chart = st.empty()
        self.gauge_text = st.empty()
        self._gauge_key: tuple[int, str] | None = None
        self.downloads = st.empty()
        tabs = st.tabs(["Document", "Rounds", "Table & charts"], key="studio_view", on_change="rerun")
        doc_tab, rounds_tab, details_tab = tabs
        self.doc: MarkdownStream | None = None
        self.doc_reasoning: MarkdownStream | None = None
        self._doc_reasoning_slot: Any = None
        if doc_tab.open is not False:
            self._doc_reasoning_slot = doc_tab.empty()
            self.doc = MarkdownStream(doc_tab, placeholder="Waiting for the first tokens…")
        self.rounds_box = rounds_tab.container() if rounds_tab.open is not False else None
        self.round_boxes: dict[int, RoundBox] = {}
        self._round_seen: dict[int, Round] = {}
        self.details = details_tab.empty() if details_tab.open is not False else None
        self._details_key: tuple[int, bool] | None = None
        self._finished_key: tuple[int, int] = (-1, -1)
        self._finished_text = ""
        self._finished_reasoning = ""
        self._stop_shown: bool | None = None

    # ---------------------------------------------------------- parts

    def _assembled(self, snap: Snapshot) -> tuple[str, str]:
        key = (len(snap.rounds), id(snap.rounds[-1]) if snap.rounds else 0)
        if key != self._finished_key:
            self._finished_key = key
            self._finished_text = "".join(r.text for r in snap.rounds)
            self._finished_reasoning = "".join(r.reasoning for r in snap.rounds)
        if snap.live is None:
            return self._finished_text, self._finished_reasoning
        return self._finished_text + snap.live.text, self._finished_reasoning + snap.live.reasoning

    def update_text(self, snap: Snapshot) -> None:
        text, reasoning = self._assembled(snap)
        if self.doc is not None:
            if reasoning:
                if self.doc_reasoning is None:
                    expander = self._doc_reasoning_slot.expander("Reasoning", icon=":material/psychology:")
                    self.doc_reasoning = MarkdownStream(expander)
                self.doc_reasoning.update(reasoning)
            self.doc.update(text)
        if self.rounds_box is not None:
            self._update_rounds(snap, headings=False)

    def _update_rounds(self, snap: Snapshot, *, headings: bool) -> None:
        assert self.rounds_box is not None
        for r in snap.rounds:
            box = self.round_boxes.get(r.index)
            if box is None:
                box = self.round_boxes[r.index] = RoundBox(self.rounds_box)
            if self._round_seen.get(r.index) is not r:  # new, or trimmed by the next round
                self._round_seen[r.index] = r
                box.update(round_heading(r), r.text, r.reasoning)
        live = snap.live
        if live is not None:
            box = self.round_boxes.get(live.index)
            if box is None:
                box = self.round_boxes[live.index] = RoundBox(self.rounds_box)
            box.update(live_heading(live) if headings else None, live.text, live.reasoning)

    def update_status(self, snap: Snapshot) -> None:
        self.status.markdown(status_line(snap))
        running = not snap.done
        if running != self._stop_shown:
            self._stop_shown = running
            if running:
                self.stop.button(
                    "Stop", icon=":material/stop_circle:", on_click=self.job.stop, key="stop_run"
                )
                self.clear.empty()
            else:
                self.stop.empty()
                if self.on_clear is not None:
                    self.clear.button(
                        "New run",
                        icon=":material/add:",
                        on_click=self.on_clear,
                        key="clear_run",
                        type="tertiary",
                    )
        rounds = len(snap.rounds) + (1 if snap.live else 0)
        gauge = snap.gauge
        key = (round(100 * (gauge.fraction or 0)), gauge.level)
        if key != self._gauge_key and gauge.window:  # the bar moves in whole percents
            self._gauge_key = key
            self.gauge_chart.altair_chart(gauge_chart(gauge), width="stretch")
        self.gauge_text.caption(gauge_text(gauge, rounds))
        if snap.retrying:
            self.message.info(snap.retrying, icon=":material/refresh:")
        elif snap.notices and running:
            self.message.info(snap.notices[-1], icon=":material/info:")
        elif running:
            self.message.empty()
        if self.rounds_box is not None:
            self._update_rounds(snap, headings=True)
        if self.details is not None:
            details_key = (len(snap.rounds), snap.done)
            if details_key != self._details_key:
                self._details_key = details_key
                with self.details.container():
                    charts.render_details(snap)

    def finish(self, snap: Snapshot) -> None:
        self.update_text(snap)
        self.update_status(snap)
        outcome = stop_message(snap)
        with self.message.container():
            if snap.error is not None:
                show_error(snap.error)
            elif outcome is not None:
                kind, text = outcome
                if kind in ("warning", "error"):
                    getattr(st, kind)(text)
                else:
                    st.caption(text)
            for notice in snap.notices:
                st.caption(f":material/info: {notice}")
        if self.rounds_box is not None and not self.round_boxes:
            self.rounds_box.caption("No rounds ran.")
        if snap.rounds or snap.text:
            with self.downloads.container(horizontal=True, gap="small"):
                render_downloads(snap)

    # ---------------------------------------------------------- the loop

    def stream(self, snap: Snapshot) -> Snapshot:
        """Follow the job until it ends, appending to the screen; returns the final snapshot."""
        last_status = 0.0
        last_rounds = -1
        while not snap.done:
            tick = time.monotonic()
            snap = self.job.wait(snap.version, timeout=STATUS_EVERY)
            self.update_text(snap)
            if tick - last_status >= STATUS_EVERY or len(snap.rounds) != last_rounds:
                self.update_status(snap)
                last_status, last_rounds = tick, len(snap.rounds)
            rest = TAIL_EVERY - (time.monotonic() - tick)
            if rest > 0 and not snap.done:
                time.sleep(rest)
        return snap


DOWNLOADS = (
    ("md", "Download output", "The answer as Markdown, exactly as shown", "text/markdown"),
    ("txt", "Text", "The answer as a plain-text file", "text/plain"),
    (
        "json",
        "JSON",
        "The transcript: settings (no key), every round, totals and the text",
        "application/json",
    ),
    ("csv", "CSV", "The round table: tokens, finish reasons, timings and cost per round", "text/csv"),
)


def render_downloads(snap: Snapshot) -> None:
    result = snap.to_result()
    for ext, label, help_text, mime in DOWNLOADS:
        st.download_button(
            label,
            data=export.export(result, ext),
            file_name=export.download_name(result, ext),
            mime=mime,
            on_click="ignore",
            icon=":material/download:",
            type="primary" if ext == "md" else "secondary",
            help=help_text,
            key=f"download_{ext}",
        )


def render_job(job: Job, on_clear: Callable[[], None] | None = None) -> Snapshot:
    """Show ``job``; while it runs, follow it live (returns when it has ended)."""
    snap = job.snapshot()
    view = JobView(job, on_clear)
    view.update_status(snap)
    view.update_text(snap)
    if not snap.done:
        snap = view.stream(snap)
    view.finish(snap)
    return snap
