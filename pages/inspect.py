"""Inspect: the seams of a run, its per-round numbers, each round's request, and two runs side by side."""

from __future__ import annotations

import streamlit as st

from core.services import inspect
from core.services.store import RunSummary
from core.services.store.rows import PROMPT_PREVIEW_CHARS
from core.types import RunResult
from pages import _history as history
from pages import _inspect_view as view
from pages import _requests_view as requests_view
from pages._routing import ensure_routed

ensure_routed(__file__)  # run without app.py (Streamlit's legacy pages/ mode): go through it

VS_PARAM = "vs"  # query parameter: the run compared with
RECENT = 500
SEAMS_PER_PAGE = 40
TABS_KEY = "inspect_view"


def label(summary: RunSummary) -> str:
    title = summary.display_title or "(no prompt)"
    title = title if len(title) <= 60 else title[:59] + "…"
    return f"{title} · {summary.model} · {summary.strategy} · {history.when(summary.created_at)}"


def _on_run() -> None:
    run_id = st.session_state.get("inspect_run")
    history.pick_run(run_id)
    if run_id and st.session_state.get("inspect_vs") == run_id:  # a run is not compared with itself
        st.session_state["inspect_vs"] = None
        if VS_PARAM in st.query_params:
            del st.query_params[VS_PARAM]


def _on_other() -> None:
    other = st.session_state.get("inspect_vs")
    if other:
        st.query_params[VS_PARAM] = other
        st.session_state[TABS_KEY] = "Compare"
    elif VS_PARAM in st.query_params:
        del st.query_params[VS_PARAM]


def _compare_with(run_id: str) -> None:
    st.session_state["inspect_vs"] = run_id
    st.session_state[TABS_KEY] = "Compare"
    st.query_params[VS_PARAM] = run_id


def empty_state() -> None:
    with st.container(border=True):
        st.markdown("##### Nothing to inspect yet")
        st.caption(
            "Inspect shows where the rounds of a run were joined (with whitespace made visible and the "
            "seam checks that fired), per-round charts, and two runs compared side by side. "
            "Start a run in the Studio first."
        )
        st.page_link(history.STUDIO, label="Start a run in the Studio", icon=":material/edit_note:")


def seams_tab(result: RunResult) -> None:
    found = inspect.seams(result)
    if not found:
        st.info("This run has a single round, so there is no seam to inspect.", icon=":material/info:")
        return
    flagged = [s for s in found if s.flagged]
    counts = inspect.flag_counts(result)
    summary = ", ".join(f"{kind.replace('_', ' ')} ×{n}" for kind, n in sorted(counts.items()))
    top = st.container(horizontal=True, vertical_alignment="center")
    top.markdown(
        f"**{len(found)} seam{'s' if len(found) != 1 else ''}**, "
        + (f"{len(flagged)} flagged: {summary}" if flagged else "none flagged")
    )
    only = top.toggle("Only flagged seams", value=bool(flagged) and len(found) > 12, key="inspect_flagged")
    st.caption(
        f"{view.WHITESPACE_LEGEND} Each seam shows the end of the answer before it and the start of the "
        "next round, as stored."
    )
    shown = flagged if only else found
    if not shown:
        st.caption("No seam was flagged.")
        return
    pages = (len(shown) + SEAMS_PER_PAGE - 1) // SEAMS_PER_PAGE
    page = 1
    if pages > 1:
        page = int(st.number_input(f"Page (of {pages})", 1, pages, 1, key="inspect_seam_page"))
    for seam in shown[(page - 1) * SEAMS_PER_PAGE : page * SEAMS_PER_PAGE]:
        view.seam_card(seam)


def compare_tab(result: RunResult, run_id: str, runs: list[RunSummary], other_id: str | None) -> None:
    other = history.load(other_id) if other_id else None
    if other is None:
        st.caption(
            "Pick a second run in **Compare with** above: the same prompt on another provider, model or "
            "strategy. Totals, per-round charts and the first difference in the text appear here."
        )
        prompt = result.spec.prompt
        same = [s for s in runs if s.id != run_id and s.prompt and s.prompt == prompt[:PROMPT_PREVIEW_CHARS]]
        if same:
            st.markdown("**Runs with the same prompt**")
            for s in same[:8]:
                st.button(
                    label(s),
                    key=f"same_{s.id}",
                    on_click=_compare_with,
                    args=(s.id,),
                    type="tertiary",
                    icon=":material/compare_arrows:",
                )
        return
    view.comparison(result, other)


# ---------------------------------------------------------------- the page

st.title("Inspect")
st.caption(
    "Where the rounds were joined, what each round cost and how fast it came, the request behind each "
    "round, and two runs compared."
)

store = history.history_or_stop()
store.mark_interrupted()
runs = store.list_runs(limit=RECENT)
if not runs:
    empty_state()
    st.stop()

by_id = {s.id: s for s in runs}
picked = history.picked_run_id()
if picked and picked not in by_id:
    extra = store.summary(picked)
    if extra is not None:
        runs.insert(0, extra)
        by_id[picked] = extra
    else:  # deleted, or another person's private run: the same words, so neither is told apart
        st.warning(
            "The run asked for is not in your history (deleted, or not shared with you): your latest run is shown."
        )
ids = [s.id for s in runs]
run_id = picked if picked in by_id else ids[0]
vs = st.query_params.get(VS_PARAM)
vs = vs if vs in by_id and vs != run_id else None

left, right = st.columns(2)
run_id = left.selectbox(
    "Run",
    ids,
    index=ids.index(run_id),
    format_func=lambda i: label(by_id[i]),
    key="inspect_run",
    on_change=_on_run,
)
others = [i for i in ids if i != run_id]
other_id = right.selectbox(
    "Compare with",
    others,
    index=others.index(vs) if vs in others else None,
    format_func=lambda i: label(by_id[i]),
    key="inspect_vs",
    on_change=_on_other,
    placeholder="Another run (optional)",
)
result = history.load(run_id)
if result is None:
    st.warning("That run is no longer in the history.")
    st.stop()

seams_tab_, charts_tab_, requests_tab_, compare_tab_ = st.tabs(
    ["Seams", "Charts", "Requests", "Compare"],
    default="Compare" if other_id else "Seams",
    key=TABS_KEY,
    on_change="rerun",
)
if seams_tab_.open is not False:  # only the open tab is drawn
    with seams_tab_:
        seams_tab(result)
if charts_tab_.open is not False:
    with charts_tab_:
        view.round_charts(result)
if requests_tab_.open is not False:
    with requests_tab_:
        requests_view.requests_tab(result)
if compare_tab_.open is not False:
    with compare_tab_:
        compare_tab(result, run_id, runs, other_id)
