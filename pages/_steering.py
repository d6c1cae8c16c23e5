"""Steering a run that has ended: Continue, Edit then continue, Follow up, and the run's thread.

UI glue only: every action goes through the history's one code path
(:func:`pages._history.start_resume`, also after an edit, and
:func:`pages._history.start_follow_up`), which starts a job of this session and loads the
Studio's form from it. A failure is told by the Studio's flash message.
"""

from __future__ import annotations

import streamlit as st

from core.types import STRATEGIES, RunResult
from pages import _common as common
from pages import _history as history
from pages._blocks import inert

EDITING = "studio_editing"  # session state: the run whose answer is open in the editor
EDIT_TEXT = "studio_edit_text"  # session state: the editor's text (the widget's key)
TITLE_CHARS = 28  # a thread's run named in a button
FOLLOW_UP_ROUNDS = 20  # a follow-up's round limit, unless changed


def _flash_error(error: str) -> None:
    if error:
        st.session_state["flash"] = ("error", error)


def _options(prefix: str) -> history.ResumeOptions:
    state = st.session_state
    return history.ResumeOptions(
        more_rounds=int(state.get(f"{prefix}_more") or 10),
        target_tokens=int(state.get(f"{prefix}_target") or 0),
        max_tokens=int(state.get(f"{prefix}_max_tokens") or 1024),
        strategy=str(state.get(f"{prefix}_strategy") or "prefill"),
    )


def _continue(run_id: str, prefix: str) -> None:
    _flash_error(history.start_resume(run_id, _options(prefix)))


def _continue_edited(run_id: str, prefix: str) -> None:
    error = history.start_resume(
        run_id, _options(prefix), edited_text=str(st.session_state.get(EDIT_TEXT) or "")
    )
    _flash_error(error)
    if not error:
        st.session_state.pop(EDITING, None)


def _follow_up(run_id: str, key: str) -> None:
    rounds = int(st.session_state.get(f"{key}_rounds") or FOLLOW_UP_ROUNDS)
    error = history.start_follow_up(run_id, str(st.session_state.get(key) or ""), rounds)
    _flash_error(error)
    if not error:
        st.session_state.pop(key, None)


def _open_editor(run_id: str, text: str) -> None:
    st.session_state[EDITING] = run_id
    st.session_state[EDIT_TEXT] = text


def _close_editor() -> None:
    st.session_state.pop(EDITING, None)


def open_stored(run_id: str) -> None:
    """Show a run of the history in the Studio (a callback: the next script run shows it)."""
    common.forget_job()
    st.session_state.pop(EDITING, None)
    st.query_params[common.STORED_PARAM] = run_id


# ---------------------------------------------------------------- widgets


def options_inputs(result: RunResult, prefix: str, *, columns: bool = False) -> None:
    """More rounds, target, tokens per round and strategy, defaulting to the run's own."""
    defaults = history.resume_options(result)
    suffix = result.run_id or ""
    st.session_state.setdefault(f"{prefix}_owner", suffix)
    if st.session_state[f"{prefix}_owner"] != suffix:  # another run: its own defaults
        for name in ("more", "target", "max_tokens", "strategy"):
            st.session_state.pop(f"{prefix}_{name}", None)
        st.session_state[f"{prefix}_owner"] = suffix
    slots = st.columns(4) if columns else [st.container() for _ in range(4)]
    slots[0].number_input("More rounds", 1, 500, defaults.more_rounds, key=f"{prefix}_more")
    slots[1].number_input(
        "Target (tokens)" if columns else "Target length (tokens)",
        0,
        10_000_000,
        defaults.target_tokens,
        step=1000,
        key=f"{prefix}_target",
        help="Stop once the run has written this many tokens in all. 0: let the model finish.",
    )
    slots[2].number_input(
        "Tokens per round" if columns else "Max tokens per round",
        16,
        262_144,
        max(16, defaults.max_tokens),
        step=256,
        key=f"{prefix}_max_tokens",
    )
    slots[3].selectbox(
        "Strategy", STRATEGIES, index=STRATEGIES.index(defaults.strategy), key=f"{prefix}_strategy"
    )


def steering_bar(result: RunResult) -> None:
    """What may be done with an ended run: Continue, Edit and continue, Follow up; its thread."""
    run_id = result.run_id
    if not run_id:
        st.caption("This run is not in the history, so it cannot be continued here.")
        return
    editing = st.session_state.get(EDITING) == run_id
    row = st.container(horizontal=True, gap="small", key="steer_row", vertical_alignment="center")
    popover = row.popover("Continue", icon=":material/resume:", disabled=editing)
    with popover, st.form("continue_form", border=False):
        st.caption("More rounds on the same run, from the answer as it stands.")
        options_inputs(result, "cont")
        st.form_submit_button(
            "Continue this run",
            type="primary",
            icon=":material/play_arrow:",
            on_click=_continue,
            args=(run_id, "cont"),
        )
    row.button(
        "Edit and continue",
        icon=":material/edit:",
        key="steer_edit",
        disabled=editing,
        on_click=_open_editor,
        args=(run_id, result.text),
        help="Open the answer as Markdown, change it, and let the model go on from your text",
    )
    follow_key = f"follow_{run_id}"
    popover = row.popover("Follow up", icon=":material/forum:", disabled=editing)
    with popover, st.form("follow_form", border=False):
        st.text_area(
            "Your next message",
            key=follow_key,
            height=110,
            placeholder="Ask for a revision or the next part: “Now write part 2”, “Shorten section 3”…",
        )
        st.number_input("Max rounds", 1, 500, FOLLOW_UP_ROUNDS, key=f"{follow_key}_rounds")
        st.caption("A new run in this thread: the prompt and this answer are sent with your message.")
        st.form_submit_button(
            "Send follow-up",
            type="primary",
            icon=":material/send:",
            on_click=_follow_up,
            args=(run_id, follow_key),
        )
    thread_strip(result)
    if editing:
        editor(result)


def editor(result: RunResult) -> None:
    """The answer as editable Markdown, and Continue from the edited text."""
    run_id = result.run_id or ""
    if EDIT_TEXT not in st.session_state:  # dropped while another page showed: start from the answer
        st.session_state[EDIT_TEXT] = result.text
    with st.container(border=True, key="editor"):
        st.markdown("**Edit the answer, then continue from your text**")
        st.caption(
            "The Markdown source of the answer so far. Cut what went astray, rewrite a heading, add your "
            "own lines: the model goes on from exactly this text, and the run keeps your edit."
        )
        with st.form("edit_form", border=False):
            st.text_area("Answer so far (Markdown)", key=EDIT_TEXT, height=360)
            options_inputs(result, "edit", columns=True)
            st.form_submit_button(
                "Continue from this text",
                type="primary",
                icon=":material/play_arrow:",
                on_click=_continue_edited,
                args=(run_id, "edit"),
            )
        st.button("Cancel editing", key="edit_cancel", type="tertiary", on_click=_close_editor)


def thread_strip(result: RunResult, *, studio: bool = True) -> None:
    """The runs of ``result``'s thread in order, each a button that opens it (this one marked)."""
    if not result.thread_id:
        return
    runs = history.history().thread(result.thread_id)
    if len(runs) < 2:
        return
    row = st.container(horizontal=True, gap="small", key="thread_strip", vertical_alignment="center")
    row.markdown(f":material/forum: **Thread** · {len(runs)} runs")
    for n, summary in enumerate(runs, 1):
        title = summary.display_title or "(no prompt)"
        short = title if len(title) <= TITLE_CHARS else title[: TITLE_CHARS - 1] + "…"
        label = inert(
            f"{n} · {short}".replace("[", "(").replace("]", ")")
        )  # a prompt, maybe another session's
        if summary.id == result.run_id:
            row.markdown(f":blue-badge[{label} · shown]", help=inert(title))
            continue
        row.button(
            label,
            key=f"thread_run_{summary.id}",
            type="tertiary",
            help=inert(title),
            on_click=open_stored if studio else history.pick_run,
            args=(summary.id,),
        )
