"""Batch: a CSV or JSONL of prompts answered many at once — progress, items, results; stop and resume.

The new-batch form and the page; the batch itself (runners, start, stop,
resume) is ``pages/_batches.py``, a batch on screen ``pages/_batch_view.py``.
"""

from __future__ import annotations

import time

import streamlit as st

from core.services.batch import DEFAULT_CONCURRENCY, InputError, ParsedInput, concurrency_cap
from core.services.providers import PROVIDERS
from core.services.store import Batches
from core.types import STRATEGIES
from pages import _common as common
from pages._batch_view import batch_panel
from pages._batches import (
    BATCH_PARAM,
    FLASH_KEY,
    current_batch,
    read_input,
    show_batch,
    start_batch,
    use_example,
)
from pages._blocks import inert
from pages._history import history
from pages._routing import ensure_routed

ensure_routed(__file__)  # run without app.py (Streamlit's legacy pages/ mode): go through it

MAX_ERRORS_SHOWN = 50

FORMAT_HELP = (
    "One row per prompt. Columns (CSV header) or keys (JSONL): **id**, **prompt**, and optionally "
    "**system**, **max_tokens**, **max_rounds**, **target_tokens**, **model**, **temperature**, "
    "**strategy** to override the settings for that row. Other columns are kept and come back in the results."
)


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
        st.button("Use the example", on_click=use_example, type="tertiary", icon=":material/arrow_outward:")
    st.caption(FORMAT_HELP)
    try:
        parsed, _, name = read_input()
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
        "Model",
        value=common.prompting_model_for(p),
        disabled=True,
        help="Change it in the Studio or Settings.",
    )
    limits = common.limits_for(p, common.prompting_model_for(p))
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
    st.checkbox(
        "Run on batch workers",
        key="batch_to_workers",
        help="Hand the batch to `python -m core batch-worker` processes, on any machine that shares this "
        "history (a PostgreSQL database), each with its own key and limits, instead of running it in this app.",
    )
    verb = "Hand to workers:" if st.session_state.get("batch_to_workers") else "Start"
    st.button(
        f"{verb} {len(parsed.items) if parsed else 0} runs" if ready else verb.rstrip(":"),
        type="primary",
        icon=":material/play_arrow:",
        disabled=not ready,
        on_click=start_batch,
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
                on_click=show_batch,
                args=(s.record.id,),
                type="tertiary",
            )


# ---------------------------------------------------------------- the page

st.title("Batch")
st.caption(
    "Many long answers at once: one run per row of a CSV or JSONL file, continued round after round, "
    "sharing the provider's rate limits. Every answer is saved as it streams; a stopped batch resumes "
    "where it was."
)

flash = st.session_state.pop(FLASH_KEY, None)
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
