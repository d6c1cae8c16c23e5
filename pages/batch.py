"""Batch: a CSV or JSONL of prompts answered many at once — progress, items, results; stop and resume."""

from __future__ import annotations

import functools
import time
from typing import Any

import pandas as pd
import streamlit as st

from core.services.batch import (
    DEFAULT_CONCURRENCY,
    EXPORT_FORMATS,
    BatchManager,
    BatchProgress,
    BatchRunner,
    InputError,
    ParsedInput,
    check_items,
    concurrency_cap,
    create_batch,
    export_batch,
    parse_items,
    stored_progress,
)
from core.services.batch.specs import settings_from_dict
from core.services.export import slugify
from core.services.providers import PROVIDERS, get_provider
from core.services.store import Batches
from core.types import STRATEGIES
from core.wire.errors import ContinuumError
from pages import _common as common
from pages._blocks import inert
from pages._history import history
from pages._routing import ensure_routed
from pages._timeouts import session_timeouts

ensure_routed(__file__)  # run without app.py (Streamlit's legacy pages/ mode): go through it

BATCH_PARAM = "batch"  # the URL query parameter holding the batch on screen
STATUS_EVERY = 0.5  # seconds between updates of the progress while a batch runs
TABLE_EVERY = 2.0  # seconds between updates of the item table
MAX_ERRORS_SHOWN = 50

EXAMPLE = "\n".join(
    f'{{"id": "{slug}", "prompt": "Write {tokens} tokens about {topic}, with headings."}}'
    for slug, tokens, topic in (
        ("lighthouses", 1200, "the history of lighthouses"),
        ("tides", 900, "how tides work"),
        ("paper", 1500, "the invention of paper"),
        ("bees", 800, "how honey bees communicate"),
        ("maps", 1000, "the first world maps"),
        ("glass", 700, "how glass is made"),
        ("clocks", 1100, "mechanical clocks"),
        ("salt", 600, "the salt trade"),
    )
)

FORMAT_HELP = (
    "One row per prompt. Columns (CSV header) or keys (JSONL): **id**, **prompt**, and optionally "
    "**system**, **max_tokens**, **max_rounds**, **target_tokens**, **model**, **temperature**, "
    "**strategy** to override the settings for that row. Other columns are kept and come back in the results."
)


# ---------------------------------------------------------------- process-wide


@st.cache_resource(show_spinner=False)
def batch_manager() -> BatchManager:
    """The batch runners of this Streamlit process (they outlive reruns and reloads)."""
    return BatchManager()


# ---------------------------------------------------------------- session


def _flash(kind: str, text: str) -> None:
    st.session_state["batch_flash"] = (kind, text)


def current_batch() -> str | None:
    batch_id = st.session_state.get("batch_id") or st.query_params.get(BATCH_PARAM)
    if not batch_id:
        return None
    try:
        Batches(history()).get(batch_id)
    except ContinuumError:
        st.session_state.pop("batch_id", None)
        return None
    st.session_state["batch_id"] = batch_id
    return str(batch_id)


def _show_batch(batch_id: str | None) -> None:
    if batch_id:
        st.session_state["batch_id"] = batch_id
        st.query_params[BATCH_PARAM] = batch_id
    else:
        st.session_state.pop("batch_id", None)
        if BATCH_PARAM in st.query_params:
            del st.query_params[BATCH_PARAM]


def _input() -> tuple[ParsedInput | None, bytes, str]:
    """The parsed input (uploaded file, else pasted rows), its bytes and its name."""
    upload = st.session_state.get("batch_file")
    if upload is not None:
        data, name = upload.getvalue(), upload.name
    else:
        text = str(st.session_state.get("batch_text") or "")
        data, name = text.encode("utf-8"), "pasted rows"
    if not data.strip():
        return None, data, name
    return parse_items(data, None if upload is None else name), data, name


# ---------------------------------------------------------------- actions


def _use_example() -> None:
    st.session_state["batch_text"] = EXAMPLE


def _start() -> None:
    try:
        parsed, data, name = _input()
    except InputError as exc:
        _flash("error", str(exc))
        return
    if parsed is None or not parsed.items:
        _flash("warning", "Add prompts first: upload a CSV or JSONL file, or paste rows.")
        return
    p = common.provider()
    key, _ = common.key_for(p.id)
    if p.needs_key and not key:
        _flash("error", f"No API key for {p.label}: {p.key_hint()}.")
        return
    state = st.session_state
    form = common.RunForm(
        prompt="",
        model=common.model_for(p),
        strategy=str(state.get(f"batch_strategy_{p.id}") or p.strategy),
        max_tokens=int(state.get("batch_max_tokens") or 1024),
        max_rounds=int(state.get("batch_max_rounds") or 20),
        target_tokens=int(state.get("batch_target_tokens") or 0),
        temperature=float(state.get("batch_temperature") or 0.0),
    )
    settings = common.build_spec(p, form)
    system = str(state.get("batch_system") or "").strip()
    settings.messages = [{"role": "system", "content": system}] if system else []
    if not settings.base_url:
        _flash("error", f"{p.label} needs a base URL: set it in Settings.")
        return
    items, problems = check_items(parsed.items, settings)
    if not items:
        _flash("error", "No row can run with these settings: " + "; ".join(str(e) for e in problems[:3]))
        return
    if problems:
        _flash("warning", f"{len(problems)} problem(s) skipped: " + "; ".join(str(e) for e in problems[:3]))
    store = history()
    batch_id = create_batch(
        store,
        items,
        settings,
        title=name,
        source=name,
        source_data=data,
        concurrency=int(state.get("batch_concurrency") or DEFAULT_CONCURRENCY),
    )
    try:
        batch_manager().start(BatchRunner(store, batch_id, api_key=key, timeouts=session_timeouts()))
    except ContinuumError as exc:
        _flash("error", str(exc))
    _show_batch(batch_id)


def _stop(batch_id: str) -> None:
    batch_manager().stop(batch_id)


def _resume(batch_id: str) -> None:
    store = history()
    settings = settings_from_dict(Batches(store).get(batch_id).settings)
    p = get_provider(settings.provider)
    if p.is_demo:
        settings.base_url = common.base_url_for(p)  # this process's demo model
    key, _ = common.key_for(p.id, base_url=settings.base_url)  # a shared server's key: its own URL only
    if p.needs_key and not key:
        _flash("error", f"No API key for {p.label}: {p.key_hint()}.")
        return
    try:
        batch_manager().start(
            BatchRunner(store, batch_id, api_key=key, settings=settings, timeouts=session_timeouts())
        )
    except ContinuumError as exc:
        _flash("error", str(exc))


# ---------------------------------------------------------------- the new-batch form


def _on_provider() -> None:
    common.get_settings().provider = st.session_state["batch_provider"]


def input_panel() -> ParsedInput | None:
    st.file_uploader("Prompts file", type=["csv", "jsonl", "ndjson", "json", "tsv"], key="batch_file")
    with st.expander("…or paste rows", expanded=st.session_state.get("batch_file") is None):
        st.text_area(
            "Rows",
            key="batch_text",
            height=140,
            placeholder='{"id": "owls", "prompt": "Write 2000 tokens about owls"}',
            label_visibility="collapsed",
        )
        st.button("Use the example", on_click=_use_example, type="tertiary", icon=":material/arrow_outward:")
    st.caption(FORMAT_HELP)
    try:
        parsed, _, name = _input()
    except InputError as exc:
        st.error(inert(str(exc)))
        return None
    if parsed is None:
        return None
    skipped = f", **{len(parsed.errors)} rows skipped**" if parsed.errors else ""
    st.markdown(f"**{len(parsed.items)} prompts** from {name}{skipped}")
    if parsed.errors:
        with st.expander(f"Rows that will be skipped ({len(parsed.errors)})", expanded=not parsed.items):
            st.code("\n".join(str(e) for e in parsed.errors[:MAX_ERRORS_SHOWN]), language=None)
            if len(parsed.errors) > MAX_ERRORS_SHOWN:
                st.caption(f"… and {len(parsed.errors) - MAX_ERRORS_SHOWN} more.")
    return parsed


def settings_panel() -> None:
    p = common.provider()
    ids = list(PROVIDERS)
    left, right = st.columns(2)
    left.selectbox(
        "Provider",
        ids,
        index=ids.index(p.id),
        format_func=lambda pid: PROVIDERS[pid].label,
        key="batch_provider",
        on_change=_on_provider,
    )
    right.text_input(
        "Model", value=common.model_for(p), disabled=True, help="Change it in the Studio or Settings."
    )
    limits = common.limits_for(p, common.model_for(p))
    left.number_input(
        "Max tokens per round",
        min_value=16,
        max_value=262_144,
        value=1024 if p.is_demo else min(limits.output_cap or 4096, 4096),
        step=256,
        key="batch_max_tokens",
    )
    right.number_input("Max rounds", min_value=1, max_value=500, value=20, key="batch_max_rounds")
    left.number_input(
        "Target length (tokens)",
        min_value=0,
        max_value=10_000_000,
        value=0,
        step=1000,
        key="batch_target_tokens",
        help="Stop each answer once it has this many tokens. 0: let the model finish.",
    )
    right.selectbox(
        "Strategy",
        STRATEGIES,
        index=STRATEGIES.index(p.strategy) if p.strategy in STRATEGIES else 0,
        key=f"batch_strategy_{p.id}",
    )
    cap = concurrency_cap(p.id)
    left.number_input(
        "Concurrency",
        min_value=1,
        max_value=cap,
        value=min(DEFAULT_CONCURRENCY, cap),
        key="batch_concurrency",
        help=f"Requests in flight at most (up to {cap} for {p.label}). A rate limit (HTTP 429) halves it "
        "for the whole batch; it grows back as requests succeed.",
    )
    right.slider("Temperature", 0.0, 2.0, 0.7, 0.05, key="batch_temperature")
    st.text_area("System prompt for rows without one (optional)", key="batch_system", height=68)


def new_batch_panel() -> None:
    st.subheader("New batch")
    parsed = input_panel()
    with st.expander("Settings for every row", expanded=False):
        settings_panel()
    ready = parsed is not None and bool(parsed.items)
    st.button(
        f"Start {len(parsed.items) if parsed else 0} runs" if ready else "Start",
        type="primary",
        icon=":material/play_arrow:",
        disabled=not ready,
        on_click=_start,
    )


def earlier_batches() -> None:
    summaries = Batches(history()).list(limit=20)
    if not summaries:
        return
    with st.expander("Earlier batches"):
        for s in summaries:
            done = s.counts.get("finished", 0)
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.record.created_at))
            st.button(
                f"{s.record.title or s.record.id[:8]} · {done}/{s.total} finished · {when}",
                key=f"open_{s.record.id}",
                on_click=_show_batch,
                args=(s.record.id,),
                type="tertiary",
            )


# ---------------------------------------------------------------- a batch on screen


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _money(value: float | None) -> str:
    if value is None:
        return "—"
    return f"${value:.4f}" if value < 1 else f"${value:,.2f}"


def draw_status(box: Any, p: BatchProgress) -> None:
    with box.container():
        st.progress(p.fraction, text=f"{p.ended} of {p.total} done")
        cols = st.columns(6)
        cols[0].metric("Finished", p.finished)
        cols[1].metric("Running", p.running)
        cols[2].metric("Failed", p.failed)
        cols[3].metric("Output tokens", f"{p.tokens:,}")
        cols[4].metric("Cost", _money(p.cost))
        cols[5].metric("Time left", _duration(p.eta_s) if p.state == "running" else "—")
        if p.max_limit:
            limited = f" · {p.rate_limits} rate limits" if p.rate_limits else ""
            st.caption(
                f"Concurrency {p.limit} of {p.max_limit} · {p.in_flight} requests in flight{limited} · "
                f"{_duration(p.elapsed_s)} elapsed"
            )


def items_frame(p: BatchProgress) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "id": i.id,
                "status": i.status,
                "rounds": i.rounds,
                "tokens": i.tokens,
                "cost": i.cost,
                "stop reason": i.stop_reason or "",
                "error": i.error or "",
            }
            for i in p.items
        ]
    )


def draw_table(box: Any, p: BatchProgress) -> None:
    box.dataframe(
        items_frame(p),
        hide_index=True,
        width="stretch",
        height=min(420, 38 + 35 * max(1, len(p.items))),
        column_config={
            "cost": st.column_config.NumberColumn("cost (USD)", format="$%.5f"),
            "tokens": st.column_config.NumberColumn(format="%d"),
        },
    )


def downloads(batch_id: str, title: str) -> None:
    store = history()
    stem = slugify(title) or "batch"
    labels = {"jsonl": "Transcripts (JSONL)", "csv": "Summary (CSV)", "zip": "Answers (ZIP of Markdown)"}
    row = st.container(horizontal=True, gap="small")
    for fmt, mime in EXPORT_FORMATS.items():
        row.download_button(
            labels[fmt],
            data=functools.partial(export_batch, store, batch_id, fmt),
            file_name=f"{stem}-{batch_id[:8]}.{fmt}",
            mime=mime,
            on_click="ignore",
            icon=":material/download:",
            type="primary" if fmt == "zip" else "secondary",
            key=f"batch_download_{fmt}",
        )


def batch_panel(batch_id: str) -> None:
    store = history()
    record = Batches(store).get(batch_id)
    runner = batch_manager().get(batch_id)
    live = runner is not None and not runner.done
    p = runner.progress() if runner is not None else stored_progress(store, batch_id)
    settings = record.settings
    created = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.created_at))
    st.subheader(inert(record.title or "Batch"), anchor=False)
    st.caption(
        f"{p.total} prompts · {settings.get('provider', '')} · `{settings.get('model', '')}` · "
        f"concurrency {record.concurrency} · started {created}"
    )
    row = st.container(horizontal=True, vertical_alignment="center")
    left = p.queued + p.stopped + p.failed
    if live:
        row.button("Stop", icon=":material/stop:", on_click=_stop, args=(batch_id,), key="batch_stop")
        row.caption("Stopping keeps every answer so far; resume continues where each one was.")
    elif left:
        row.button(
            f"Resume {left} runs",
            type="primary",
            icon=":material/play_arrow:",
            on_click=_resume,
            args=(batch_id,),
            key="batch_resume",
        )
        row.caption("Finished answers are not redone.")
    row.button("New batch", icon=":material/add:", on_click=_show_batch, args=(None,), type="tertiary")
    status, table = st.empty(), st.empty()
    draw_status(status, p)
    draw_table(table, p)
    if not live:
        if p.finished or p.failed or p.stopped:
            downloads(batch_id, record.title)
        return
    assert runner is not None
    last_table = time.monotonic()
    while not runner.done:
        runner.wait(STATUS_EVERY)
        p = runner.progress()
        draw_status(status, p)
        if time.monotonic() - last_table >= TABLE_EVERY:
            draw_table(table, p)
            last_table = time.monotonic()
        # Reading session state is a yield point: a click or a reload ends this loop with a
        # rerun, and the batch goes on untouched.
        st.session_state.get("batch_id")
    st.rerun()


# ---------------------------------------------------------------- the page

st.title("Batch")
st.caption(
    "Many long answers at once: one run per row of a CSV or JSONL file, continued round after round, "
    "sharing the provider's rate limits. Every answer is saved as it streams; a stopped batch resumes "
    "where it was."
)

flash = st.session_state.pop("batch_flash", None)
if flash:
    getattr(st, flash[0])(inert(flash[1]))  # may quote a server

current = current_batch()
if current is None:
    left_col, right_col = st.columns([6, 5], gap="large")
    with left_col:
        new_batch_panel()
    with right_col:
        earlier_batches()
        if common.provider().is_demo:
            st.info(
                "The offline **demo model** is selected: it writes placeholder documents, enough to "
                "try a batch end to end. Pick a provider under **Settings for every row** (keys go in "
                "Settings).",
                icon=":material/science:",
            )
else:
    if st.query_params.get(BATCH_PARAM) != current:
        st.query_params[BATCH_PARAM] = current
    batch_panel(current)
