"""The Studio: a prompt, then the answer streaming round by round, the context gauge, downloads;
then Continue, Edit and continue, or Follow up. The form always shows the run on screen."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from core.continuation import validation
from core.services import steering
from core.services.jobs import Job
from core.services.providers import PROVIDERS
from core.types import STRATEGIES, RunResult
from core.wire.errors import ContinuumError
from pages import _common as common
from pages import _history as history
from pages import _live as live
from pages import _replay as replay
from pages import _steering as steer
from pages import _timeouts as timeouts
from pages._blocks import inert, inert_code
from pages._history_view import render_run
from pages._routing import ensure_routed

ensure_routed(__file__)  # run without app.py (Streamlit's legacy pages/ mode): go through it

EXAMPLES = (
    "Write about 6000 tokens on the history of the printing press, with headings and a timeline.",
    "Write a 3000 words short story about a lighthouse keeper who collects lost letters.",
    "Explain how response continuation works for LLM APIs, in about 2500 tokens, with examples.",
)

REPLAY_HELP = " **Replay** entries stream a recorded run (a shipped sample, a saved run) at its pace."

DEMO_BANNER = (
    "**No API key found, so this is the offline demo model.** It runs inside the app and writes "
    "placeholder text, enough to watch continuation stitch several rounds into one answer. "
    "To use a real model, paste a key in **Settings** or set `DEEPINFRA_API_KEY` (or another "
    "provider's variable) in the environment or `.streamlit/secrets.toml`."
)


def _flash(kind: str, text: str) -> None:
    st.session_state["flash"] = (kind, text)


def _use_example(text: str) -> None:
    st.session_state["prompt"] = text


def _on_provider() -> None:
    common.get_settings().provider = st.session_state["studio_provider"]


def _on_model(provider_id: str) -> None:
    value = st.session_state.get(f"studio_model_{provider_id}")
    if value:
        common.get_settings().models[provider_id] = str(value).strip()
        if replay.is_choice(value):
            _load_recording(str(value))


def _load_recording(choice: str) -> None:
    """Put a recording's prompt and round settings in the form: what the replay will show."""
    spec = replay.recorded_spec(choice)
    if spec is None:
        return
    values = history.studio_state(spec)
    keep = ("prompt", "system", "max_tokens", "max_rounds", "target_tokens", "temperature")
    st.session_state.update({k: values[k] for k in keep})
    st.session_state["opening"] = ""


def _on_speed() -> None:
    speed = st.session_state.get("replay_speed")
    if speed is not None:
        common.get_settings().replay_speed = float(speed)


def _number(key: str, default: float) -> float:
    """A number input's value as given (0 and negatives included: validation explains them)."""
    value = st.session_state.get(key)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else default


def _problems_text(problems: list[validation.Problem]) -> str:
    lines = "\n".join(f"- {p}" for p in problems)
    return f"**This run cannot start:**\n\n{lines}"


def _start_run() -> None:
    state = st.session_state
    prompt = str(state.get("prompt") or "").strip()
    if not prompt:
        _flash("warning", "The prompt is empty: write what the model should answer (or pick an example).")
        return
    running = common.current_job()
    if running is not None and not running.done:
        _flash("warning", "A run is already going: stop it first, or wait for it to end.")
        return
    p = common.provider()
    key, _ = common.key_for(p.id)
    if p.needs_key and not key:
        _flash("error", f"No API key for {p.label}: {p.key_hint()}.")
        return
    form = common.RunForm(
        prompt=prompt,
        system=str(state.get("system") or ""),
        model=common.model_for(p),
        strategy=str(state.get(f"strategy_{p.id}") or p.strategy),
        max_tokens=int(_number("max_tokens", 1024)),
        max_rounds=int(_number("max_rounds", 20)),
        target_tokens=int(_number("target_tokens", 0)),  # 0: no target
        temperature=float(_number("temperature", 0.7)),
    )
    try:
        spec = common.build_spec(p, form)
    except ContinuumError as exc:  # a Replay choice that names no recording
        _flash("error", str(exc))
        return
    opening = str(state.get("opening") or "")
    if not spec.base_url:
        _flash("error", f"{p.label} needs a base URL: set it in Settings.")
        return
    seed = steering.opening(spec, opening)  # the answer begins with the opening, if any
    try:  # the job manager checks the spec, once, before anything starts
        job = common.job_manager().start(spec, api_key=key, resume=seed, timeouts=timeouts.session_timeouts())
    except validation.Invalid as exc:
        if len(prompt) > validation.MAX_PROMPT_CHARS:
            # not kept for the form: restore_form would send it back to the browser on every visit
            state["prompt"] = ""
        _flash("error", _problems_text(exc.problems))
        return
    except ContinuumError as exc:
        _flash("error", str(exc))
        return
    common.remember_job(job)
    state[common.FORM_RUN] = job.id  # the form shows this run already


def _clear_run() -> None:
    common.forget_job()
    st.session_state.pop(common.FORM_RUN, None)


FORM_KEYS = ("prompt", "system", "opening", "max_tokens", "max_rounds", "target_tokens", "temperature")
SAVED_FORM = "studio_form"  # a plain session key: survives pages that do not draw the form


def _form_keys() -> list[str]:
    return [k for k in st.session_state if k in FORM_KEYS or k.startswith("strategy_")]


def restore_form() -> None:
    """Put back the form's last submitted values (Streamlit drops widget state on other pages)."""
    for key, value in st.session_state.get(SAVED_FORM, {}).items():
        if key not in st.session_state:
            st.session_state[key] = value


def save_form() -> None:
    st.session_state[SAVED_FORM] = {k: st.session_state[k] for k in _form_keys()}


def _seed(key: str, default: object) -> str:
    """``key``, after putting the widget's default in session state unless it already holds a value.

    The widget then reads its value from session state and takes no ``value=`` / ``index=``
    (passing both makes Streamlit warn).
    """
    st.session_state.setdefault(key, default)
    return key


def pickers() -> None:
    settings = common.get_settings()
    p = common.provider()
    ids = list(PROVIDERS)
    left, mid = st.columns([2, 3])
    left.selectbox(
        "Provider",
        ids,
        format_func=lambda pid: PROVIDERS[pid].label,
        key=_seed("studio_provider", p.id),
        on_change=_on_provider,
    )
    models = [m.id for m in common.model_list(p)]
    if p.is_demo:
        models += replay.options()
    current = common.model_for(p) or (models[0] if models else "")
    if current and current not in models:
        models.insert(0, current)
    if current:
        settings.models.setdefault(p.id, current)
    mid.selectbox(
        "Model",
        models,
        key=_seed(f"studio_model_{p.id}", current or None),
        accept_new_options=True,
        format_func=replay.label,
        placeholder="Type a model id",
        on_change=_on_model,
        args=(p.id,),
        help="Type a model id to use one that is not listed. Settings fetches the provider's model list."
        + (REPLAY_HELP if p.is_demo else ""),
    )
    if p.is_demo and replay.is_choice(current):
        st.session_state["replay_speed"] = settings.replay_speed
        st.segmented_control(
            "Replay pace",
            list(replay.SPEEDS),
            format_func=replay.SPEEDS.__getitem__,
            required=True,
            key="replay_speed",
            on_change=_on_speed,
            help="1×: every round at its recorded pace (time to first token and duration); 2×, 4×: "
            "that much faster; Instant: no waiting.",
        )


def _generate_row(slot: Any, running: bool) -> None:
    """Generate and its caption; disabled while a run goes (keys differ: both may be drawn in one run)."""
    row = slot.container(
        horizontal=True, vertical_alignment="center", key="generate_row_locked" if running else "generate_row"
    )
    row.form_submit_button(
        "Generate",
        type="primary",
        icon=":material/play_arrow:",
        on_click=_start_run,
        disabled=running,
        key="generate_locked" if running else "generate",
    )
    if running:
        row.caption("A run is going: stop it to start another.")
    else:
        row.caption("Ctrl+Enter in the prompt also generates")


def prompt_form(running: bool = False) -> Callable[[], None]:
    """The form; returns what turns Generate on in place once the run on screen has ended
    (no rerun: a rerun would send the whole page again, the answer included)."""
    p = common.provider()
    limits = common.limits_for(p, common.model_for(p))
    default_max = 1024 if p.is_demo else min(limits.output_cap or 4096, 4096)
    with st.form("generate", border=True):
        st.text_area(
            "Prompt",
            key="prompt",
            height=130,
            placeholder="What should the model write? Long answers are the point: ask for thousands.",
        )
        generate_slot = st.empty()
        _generate_row(generate_slot, running)
        with st.expander("Start the answer with (optional)"):
            st.text_area(
                "Start the answer with",
                key="opening",
                height=90,
                label_visibility="collapsed",
                placeholder="A title, an outline… The answer begins with exactly this, and the model goes on.",
            )
        with st.expander("System prompt (optional)"):
            st.text_area("System prompt", key="system", height=90, label_visibility="collapsed")
        left, right = st.columns(2)
        left.number_input(
            "Max tokens per round",
            min_value=16,
            max_value=262_144,
            step=256,
            key=_seed("max_tokens", default_max),
            help="Asked for in each round; the budget lowers it to fit the output cap and the window.",
        )
        right.number_input("Max rounds", min_value=1, max_value=500, key=_seed("max_rounds", 20))
        left.number_input(
            "Target length (tokens)",
            min_value=0,
            max_value=10_000_000,
            step=1000,
            key=_seed("target_tokens", 0),
            help="Stop once the answer has this many tokens. 0: let the model finish.",
        )
        right.selectbox(
            "Strategy",
            STRATEGIES,
            key=_seed(f"strategy_{p.id}", p.strategy if p.strategy in STRATEGIES else STRATEGIES[0]),
            help=f"How a round continues the answer. {p.label}'s default: {p.strategy}. {p.notes}",
        )
        st.slider("Temperature", 0.0, 2.0, step=0.05, key=_seed("temperature", 0.7))
    window = f"{limits.context_window:,}-token window" if limits.context_window else "window unknown"
    cap = f"output cap {limits.output_cap:,} per round" if limits.output_cap else "no known output cap"
    model = common.model_for(p)
    st.caption(f"{inert_code(replay.MODEL if replay.is_choice(model) else model)}: {window}, {cap}.")
    return lambda: _generate_row(generate_slot, False) if running else None


def empty_state() -> None:
    with st.container(border=True):
        st.markdown("##### Nothing generated yet")
        st.caption(
            "Ask for something long. Each round is one request; when a round hits its token limit, "
            "Continuum sends the answer so far back and the model picks up where it stopped. "
            "The rounds, the context window and the cost fill in here as it writes."
        )
        st.markdown("**Try one of these**")
        for i, example in enumerate(EXAMPLES):
            st.button(
                example,
                key=f"example_{i}",
                on_click=_use_example,
                args=(example,),
                type="tertiary",
                icon=":material/arrow_outward:",
            )


# ---------------------------------------------------------------- the run on screen


def shown_run() -> tuple[str, Job | None, RunResult | None]:
    """The run the Studio shows: (its form key, the session's job or None, the stored run or None).

    The session's job first (its id is in the URL: a reload finds it again), else the run of
    the history named by ``?id=`` (opened from Runs, or from the thread of the run shown).
    """
    job = common.current_job()
    if job is not None:
        return job.id, job, None
    run_id = st.query_params.get(common.STORED_PARAM)
    if not run_id:
        return "", None, None
    try:
        result = history.load(str(run_id))
    except Exception:  # noqa: BLE001 - a history that cannot be read shows no run, never a traceback
        result = None
    return (f"id:{run_id}", None, result) if result is not None else ("", None, None)


def sync_form(key: str, job: Job | None, stored: RunResult | None) -> None:
    """Load the form from the run on screen whenever another run is shown (a reload, Resume,
    Continue, a follow-up, a run opened from its thread); the user's edits stay until then."""
    if not key or st.session_state.get(common.FORM_RUN) == key:
        return
    result = job.result() if job is not None else stored
    if result is None:
        return
    st.session_state.pop(steer.EDITING, None)
    if history.load_form(result.spec, steering.opening_of(result), run_key=key):
        st.rerun()  # the provider or the model changed: the sidebar (drawn first) shows them too


def job_panel(job: Job, unlock: Callable[[], None]) -> None:
    """The session's job: followed live while it runs, then what may be done with it."""
    live.render_job(job, on_clear=_clear_run, steer=lambda _snap: ended_run(job))
    unlock()  # the run ended while this script run followed it: Generate on, in place


def ended_run(job: Job) -> None:
    steer.steering_bar(job.result())


def stored_panel(result: RunResult) -> None:
    """A run of the history (no job of this session): read-only, with Continue, Edit, Follow up."""
    store = history.history()
    summary = store.summary(result.run_id or "")
    status = summary.status if summary is not None else "finished"
    active = status == "running" and store.is_active(result.run_id or "")
    head = st.container(horizontal=True, vertical_alignment="center", gap="small", key="run_head")
    head.button("New run", icon=":material/add:", on_click=_clear_run, key="clear_run", type="tertiary")
    head.markdown(f"**{inert(summary.display_title if summary else result.spec.prompt[:80])}**")
    render_run(
        result, "running" if active else status, extra=None if active else lambda: steer.steering_bar(result)
    )


st.title("Studio")
st.caption("Long answers by response continuation: every round visible, every token accounted for.")

with common.fresh_container():
    if common.provider().is_demo and not common.configured_providers():
        st.info(DEMO_BANNER, icon=":material/science:")

restore_form()
key, job, stored = shown_run()
sync_form(key, job, stored)
left, right = st.columns([5, 7], gap="large")
with left:
    pickers()
    unlock = prompt_form(running=job is not None and not job.done)
    if job is not None or stored is not None:
        spec = job.spec if job is not None else stored.spec if stored is not None else None
        turns = steering.conversation_turns(spec) if spec is not None else 0
        if turns:
            st.caption(
                f":material/forum: The run shown follows up {turns} earlier turn{'s' if turns != 1 else ''} "
                "of its thread; Generate starts a new conversation from the prompt alone."
            )
save_form()

with right, common.fresh_container():
    flash = st.session_state.pop("flash", None)
    if flash:
        getattr(st, flash[0])(inert(flash[1]))  # may quote a server
    if job is not None:
        if st.query_params.get(common.RUN_PARAM) != job.id:
            st.query_params[common.RUN_PARAM] = job.id
        job_panel(job, unlock)
    elif stored is not None:
        stored_panel(stored)
    else:
        empty_state()
