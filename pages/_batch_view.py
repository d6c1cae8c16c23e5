"""A batch on screen: progress, the item table, downloads, stop or resume, live while it runs.

UI glue only: the numbers are :class:`core.services.batch.BatchProgress` (from
the live runner, else from the history, which also has the batch workers' items and which
workers hold them, on any machine); the buttons call the actions of
``pages/_batches.py``. While the batch runs, :func:`batch_panel` redraws the
progress every :data:`STATUS_EVERY` seconds and the table every
:data:`TABLE_EVERY` seconds, until the batch ends or the session reruns.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from core.services.batch import EXPORT_FORMATS, BatchProgress, export_batch, stored_progress
from core.services.export import slugify
from core.services.store import Batches, BatchRecord
from pages._batches import batch_manager, hand_to_workers, resume_batch, show_batch, stop_batch
from pages._blocks import inert
from pages._format import money
from pages._history import history

STATUS_EVERY = 0.5  # seconds between updates of the progress while a batch runs
TABLE_EVERY = 2.0  # seconds between updates of the item table

DOWNLOAD_LABELS = {"jsonl": "Transcripts (JSONL)", "csv": "Summary (CSV)", "zip": "Answers (ZIP of Markdown)"}


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def draw_status(box: Any, p: BatchProgress) -> None:
    with box.container():
        st.progress(p.fraction, text=f"{p.ended} of {p.total} done")
        cols = st.columns(6)
        cols[0].metric("Finished", p.finished)
        cols[1].metric("Running", p.running)
        cols[2].metric("Failed", p.failed)
        cols[3].metric("Output tokens", f"{p.tokens:,}")
        cols[4].metric("Cost", money(p.cost))
        cols[5].metric("Time left", duration(p.eta_s) if p.state == "running" else "—")
        if p.max_limit:
            limited = f" · {p.rate_limits} rate limits" if p.rate_limits else ""
            st.caption(
                f"Concurrency {p.limit} of {p.max_limit} · {p.in_flight} requests in flight{limited} · "
                f"{duration(p.elapsed_s)} elapsed"
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
    row = st.container(horizontal=True, gap="small")
    for fmt, mime in EXPORT_FORMATS.items():
        row.download_button(
            DOWNLOAD_LABELS[fmt],
            data=functools.partial(export_batch, store, batch_id, fmt),
            file_name=f"{stem}-{batch_id[:8]}.{fmt}",
            mime=mime,
            on_click="ignore",
            icon=":material/download:",
            type="primary" if fmt == "zip" else "secondary",
            key=f"batch_download_{fmt}",
        )


def _header(record: BatchRecord, p: BatchProgress, live: bool) -> None:
    """Title, settings line, and the buttons: Stop while it runs, Resume what is left, New batch."""
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
        row.button("Stop", icon=":material/stop:", on_click=stop_batch, args=(record.id,), key="batch_stop")
        row.caption("Stopping keeps every answer so far; resume continues where each one was.")
    elif p.for_workers and p.queued + p.running + p.stopped:
        row.button(
            "Take back",
            icon=":material/undo:",
            on_click=hand_to_workers,
            args=(record.id, False),
            key="batch_take_back",
        )
        row.caption("Handed to batch workers: they take no new item once it is taken back.")
    elif p.for_workers:
        row.caption("Run by batch workers.")
    elif p.workers:
        row.caption("Taken back: the batch workers finish the items they hold.")
    elif left:
        row.button(
            f"Resume {left} runs",
            type="primary",
            icon=":material/play_arrow:",
            on_click=resume_batch,
            args=(record.id,),
            key="batch_resume",
        )
        row.button(
            "Hand to workers",
            icon=":material/lan:",
            on_click=hand_to_workers,
            args=(record.id,),
            key="batch_hand_over",
            help="Let `python -m core batch-worker` processes (any machine sharing this history) run what is left.",
        )
        row.caption("Finished answers are not redone.")
    row.button("New batch", icon=":material/add:", on_click=show_batch, args=(None,), type="tertiary")


def draw_workers(box: Any, p: BatchProgress) -> None:
    """The batch workers holding items now (from the history: every machine's)."""
    if not p.workers and not (p.for_workers and p.queued + p.running + p.stopped):
        box.empty()
        return
    if not p.workers:
        box.info(
            "Waiting for a batch worker: start `python -m core batch-worker` on any machine that shares "
            "this history (see the README's PostgreSQL section).",
            icon=":material/lan:",
        )
        return
    box.dataframe(
        pd.DataFrame(
            [
                {
                    "worker": f"{w.host}:{w.pid}",
                    "items held": w.items,
                    "last heartbeat": f"{w.beat_age_s:.0f} s ago",
                    "state": "working" if w.alive else "gone (its items go to another worker)",
                }
                for w in p.workers
            ]
        ),
        hide_index=True,
        width="stretch",
    )


def _follow(
    progress: Callable[[], BatchProgress], ended: Callable[[BatchProgress], bool], boxes: Any
) -> None:
    """Redraw the progress (and now and then the table) until ``ended``, then rerun."""
    status, table, workers = boxes
    last_table = time.monotonic()
    while True:
        time.sleep(STATUS_EVERY)
        p = progress()
        draw_status(status, p)
        draw_workers(workers, p)
        if time.monotonic() - last_table >= TABLE_EVERY:
            draw_table(table, p)
            last_table = time.monotonic()
        if ended(p):
            break
        # Reading session state is a yield point: a click or a reload ends this loop with a
        # rerun, and the batch goes on untouched.
        st.session_state.get("batch_id")
    st.rerun()


def _stored(batch_id: str) -> BatchProgress:
    """The batch as the history has it, every worker's items included."""
    store = history()
    store.mark_interrupted()  # an item whose process died is not "running" (housekeeping: never waits)
    return stored_progress(store, batch_id)


def batch_panel(batch_id: str) -> None:
    """The batch ``batch_id``: live while its runner runs here, else as stored, with its downloads."""
    record = Batches(history()).get(batch_id)
    runner = batch_manager().get(batch_id)
    live = runner is not None and not runner.done
    p = runner.progress() if runner is not None and not record.workers else _stored(batch_id)
    _header(record, p, live)
    status, workers, table = st.empty(), st.empty(), st.empty()
    draw_status(status, p)
    draw_workers(workers, p)
    draw_table(table, p)
    if live and runner is not None:
        _follow(runner.progress, lambda _: runner.done, (status, table, workers))
    elif p.state == "running":  # run by batch workers, or by another app server: followed from the history
        _follow(lambda: _stored(batch_id), lambda q: q.state != "running", (status, table, workers))
    elif p.finished or p.failed or p.stopped:
        downloads(batch_id, record.title)
