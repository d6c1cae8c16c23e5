"""Runs: the history. Search and filter every saved run, open one, resume it, duplicate it, delete it."""

from __future__ import annotations

import time
from typing import TypedDict

import streamlit as st

from core.services.store import RunSummary
from core.types import STRATEGIES, RunResult
from pages import _history as history
from pages import _people as people
from pages._blocks import inert, inert_code
from pages._history_view import RunView, draw_run, follow_run
from pages._routing import ensure_routed
from pages._runs_table import runs_table
from pages._steering import thread_strip

ensure_routed(__file__)  # run without app.py (Streamlit's legacy pages/ mode): go through it

PAGE_SIZE = 200
ANY = "All"


class RunFilters(TypedDict):
    """The filter row's choices, as keyword arguments of ``list_runs`` and ``count_runs``."""

    query: str | None
    provider: str | None
    model: str | None
    status: str | None
    since: float | None


def _flash(kind: str, text: str) -> None:
    st.session_state["runs_flash"] = (kind, text)


def _table_key() -> str:
    """The table's widget key; a new one (after Close or Delete) clears its row selection."""
    return f"runs_table_{st.session_state.get('runs_table_gen', 0)}"


PICKED = "runs_picked"  # session key: how many rows were picked; set when one was just picked


def _on_select() -> None:
    state = st.session_state.get(_table_key())
    rows = list(getattr(getattr(state, "selection", None), "rows", []) or [])
    ids = st.session_state.get("runs_ids", [])
    run_id = ids[rows[0]] if rows and rows[0] < len(ids) else None
    history.pick_run(run_id)
    if run_id:
        st.session_state[PICKED] = st.session_state.get("runs_picks", 0) + 1
        st.session_state["runs_picks"] = st.session_state[PICKED]


def bring_into_view(pick: int) -> None:
    """Scroll the page to the opened run, which is drawn below the table: a click on a row shows
    the run it opens. A constant script (it requests nothing); the pick's number makes each
    pick a new element, so it runs once per pick and never on the reruns of an open run."""
    st.html(
        "<style>.st-key-open_run { scroll-margin-top: 4rem; }</style>"
        f"<script>/* pick {int(pick)} */ "
        "document.querySelector('.st-key-open_run')?.scrollIntoView({block: 'start'});</script>",
        unsafe_allow_javascript=True,
    )


def _new_table() -> None:
    """Forget the table's row selection (its rows change: filters, a deleted run)."""
    st.session_state["runs_table_gen"] = st.session_state.get("runs_table_gen", 0) + 1


def _close_run() -> None:
    history.pick_run(None)
    _new_table()


def _clear_filters() -> None:
    for key in ("runs_q", "runs_provider", "runs_model", "runs_status", "runs_date"):
        st.session_state.pop(key, None)
    _new_table()


def empty_state() -> None:
    with st.container(border=True):
        st.markdown("##### No runs yet")
        st.caption(
            "Every run you start in the Studio is saved here as it streams: its prompt, settings, every "
            "round and its text. Come back to read a run again, download it, resume it with more rounds "
            "or another strategy, or compare two runs in Inspect."
        )
        st.page_link(history.STUDIO, label="Start a run in the Studio", icon=":material/edit_note:")


def filters(facets: dict[str, list[str]]) -> RunFilters:
    row = st.columns([4, 2, 2, 2, 2], vertical_alignment="bottom")
    query = row[0].text_input(
        "Search",
        key="runs_q",
        on_change=_new_table,
        placeholder="Words in the prompt or title, or a run id",
        icon=":material/search:",
    )
    provider = row[1].selectbox(
        "Provider", [ANY, *facets.get("provider", [])], key="runs_provider", on_change=_new_table
    )
    model = row[2].selectbox("Model", [ANY, *facets.get("model", [])], key="runs_model", on_change=_new_table)
    status = row[3].selectbox(
        "Status", [ANY, *history.STATUS_COLORS], key="runs_status", on_change=_new_table
    )
    date = row[4].selectbox("Date", list(history.DATE_RANGES), key="runs_date", on_change=_new_table)
    back = history.DATE_RANGES[date]
    return {
        "query": query.strip() or None,
        "provider": None if provider == ANY else provider,
        "model": None if model == ANY else model,
        "status": None if status == ANY else status,
        "since": None if back is None else time.time() - back,
    }


def run_table(runs: list[RunSummary]) -> None:
    st.session_state["runs_ids"] = [s.id for s in runs]
    store = history.history()
    threads = store.threads(s.thread_id for s in runs if s.thread_id)
    table = runs_table(runs, threads, you=store.viewer)  # signed in: an Owner column
    st.dataframe(
        table.frame,
        hide_index=True,
        key=_table_key(),
        on_select=_on_select,
        selection_mode="single-row",
        column_config=table.columns,
        row_height=table.row_height,
        height=table.height,
    )


# ---------------------------------------------------------------- one run


def resume_form(result: RunResult, run_id: str) -> None:
    defaults = history.resume_options(result)
    with st.form(f"resume_{run_id}", border=False):
        st.markdown("**Resume this run**")
        st.caption(
            f"It has {len(result.rounds)} round{'s' if len(result.rounds) != 1 else ''}. Add rounds, raise the "
            "target or change the strategy: the new rounds join this same run, and you watch them in the Studio."
        )
        more = st.number_input("More rounds", 1, 500, defaults.more_rounds, key="resume_more")
        target = st.number_input(
            "Target length (tokens)",
            0,
            10_000_000,
            defaults.target_tokens,
            step=1000,
            key="resume_target",
            help="Stop once the answer has this many tokens in all. 0: let the model finish.",
        )
        max_tokens = st.number_input(
            "Max tokens per round",
            16,
            262_144,
            max(16, defaults.max_tokens),
            step=256,
            key="resume_max_tokens",
        )
        strategy = st.selectbox(
            "Strategy", STRATEGIES, index=STRATEGIES.index(defaults.strategy), key="resume_strategy"
        )
        go = st.form_submit_button("Resume in the Studio", type="primary", icon=":material/play_arrow:")
    if go:
        options = history.ResumeOptions(int(more), int(target), int(max_tokens), str(strategy))
        error = history.start_resume(run_id, options)
        if error:
            st.error(inert(error))
            st.toast(inert(error), icon=":material/error:")
        else:
            st.switch_page(history.STUDIO)


DELETING = "runs_deleting"  # session key: the run whose delete is being confirmed


def _ask_delete(run_id: str) -> None:
    st.session_state[DELETING] = run_id


def _drop_delete() -> None:
    st.session_state.pop(DELETING, None)


@st.dialog("Delete this run?", on_dismiss=_drop_delete)
def confirm_delete(run_id: str, title: str) -> None:
    st.markdown(f"**{inert(title)}**")
    st.caption("The run, its rounds and its text are removed from the history. This cannot be undone.")
    row = st.container(horizontal=True, horizontal_alignment="right")
    if row.button("Cancel", key="delete_cancel"):
        _drop_delete()
        st.rerun()
    if row.button("Delete", type="primary", icon=":material/delete:", key="delete_confirm"):
        _drop_delete()
        if history.history().is_active(run_id):
            _flash("error", "This run is still being written; stop it first.")
        elif history.history().delete(run_id):
            _close_run()
            _flash("success", f"Deleted “{title}”.")
        else:  # the store deletes only the person's own runs
            _flash("error", "Only the person who started this run can delete it.")
        st.rerun()


def open_run(run_id: str) -> RunView | None:
    """Draw the run; returns its view while it is being written (to follow it live), else None."""
    store = history.history()
    summary = store.summary(run_id)
    result = history.load(run_id)
    if summary is None or result is None:
        st.warning("That run is no longer in the history.")
        return None
    active = summary.status == "running" and store.is_active(run_id)
    mine = store.may_change(run_id)  # a run shared with this person is theirs to read, not to change
    # "running" with its owner gone and not marked yet (the write waits for no lock): interrupted.
    status = "running" if active else "interrupted" if summary.status == "running" else summary.status
    with st.container(key="open_run"):
        st.subheader(inert(summary.display_title or "(no prompt)"), anchor=False)
        spec = result.spec
        st.caption(
            f"{history.when(summary.created_at)} · {spec.provider} · {inert_code(spec.model)} · {spec.strategy} · "
            f"run `{run_id}`" + (" · a request to the endpoint (API)" if summary.source == "api" else "")
        )
        actions = st.container(horizontal=True, gap="small", key="run_actions")
        with actions.popover(
            "Resume",
            icon=":material/resume:",
            disabled=active or not mine,
        ):
            resume_form(result, run_id)
        if actions.button(
            "Open in Studio",
            icon=":material/edit_note:",
            key="run_open_studio",
            help="Show this run in the Studio, with its settings in the form: continue it, edit it, follow it up",
        ):
            history.open_in_studio(run_id)
        if actions.button(
            "Duplicate in Studio",
            icon=":material/content_copy:",
            key="run_duplicate",
            help="Start a new run from this one's prompt and settings, edited first",
        ):
            history.duplicate_to_studio(result)
            st.switch_page(history.STUDIO)
        if actions.button(
            "Inspect seams",
            icon=":material/query_stats:",
            key="run_inspect",
            help="The seams between rounds, per-round charts, and a comparison with another run",
        ):
            st.switch_page(history.INSPECT, query_params={history.RUN_ID_PARAM: run_id})
        actions.button(
            "Delete",
            icon=":material/delete:",
            key="run_delete",
            disabled=active or not mine,
            on_click=_ask_delete,
            args=(run_id,),
        )
        actions.button(
            "Close",
            icon=":material/close:",
            type="tertiary",
            key="run_close",
            on_click=_close_run,
        )
        people.sharing(store, summary)
        if st.session_state.get(DELETING) == run_id:
            confirm_delete(run_id, summary.display_title or run_id)
        view = draw_run(result, status, extra=lambda: thread_strip(result, studio=False))
    return view if active else None


# ---------------------------------------------------------------- the page

st.title("Runs")
st.caption(
    "Every run is saved as it streams. Open one to read it again, resume it, or start a new one from it. "
    "A follow-up joins the thread of the run it follows (its place shows in a Thread column)."
)

store = history.history_or_stop()
store.mark_interrupted()

flash = st.session_state.pop("runs_flash", None)
if flash:
    getattr(st, flash[0])(inert(flash[1]))  # may quote a title or a server

if store.count_runs() == 0:
    empty_state()
    st.stop()

chosen = filters(store.facets())
runs = store.list_runs(limit=PAGE_SIZE, **chosen)
matching = store.count_runs(**chosen)
if not runs:
    st.info("No runs match these filters.", icon=":material/filter_alt_off:")
    st.button("Clear the filters", on_click=_clear_filters, key="runs_clear")
else:
    shown = f" (the newest {len(runs)} shown)" if matching > len(runs) else ""
    st.caption(f"{matching:,} run{'s' if matching != 1 else ''}{shown}. Select a row to open the run.")
    run_table(runs)

picked = history.picked_run_id()
just_picked = st.session_state.pop(PICKED, None)
if picked:
    st.divider()
    running = open_run(picked)
    if just_picked:
        bring_into_view(just_picked)
    if running is not None:
        follow_run(store, running)  # until it ends (then the page is drawn again) or a click
