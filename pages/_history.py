"""The run history behind the Runs, Inspect and Studio pages: the store, a run's status in words,
resume (also after an edit), follow-ups, duplicate, and the Studio's form loaded from a run
(the Runs table is ``pages/_runs_table.py``).

UI glue only (the history itself is ``core.services.store``; the numbers are ``core.services.inspect``).
The store is opened once per database file per process (``st.cache_resource``
keyed on the path, so ``CONTINUUM_DB`` decides which file). Runs are never
resumed while a live process is still writing them (:meth:`Store.is_active`).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import streamlit as st

from core.services import steering
from core.services.providers import PROVIDERS, Provider
from core.services.store import Store, default_db_path
from core.types import STRATEGIES, RunResult, RunSpec
from core.wire.errors import ContinuumError
from pages import _common as common
from pages import _people as people
from pages._blocks import inert

STUDIO = "pages/studio.py"
RUNS = "pages/runs.py"
INSPECT = "pages/inspect.py"
RUN_ID_PARAM = common.STORED_PARAM  # query parameter naming the run a history page shows

STATUS_COLORS = {
    "finished": "green",
    "running": "blue",
    "interrupted": "orange",
    "error": "red",
    "cancelled": "gray",
}

# Date filter: label -> seconds back (None: any time).
DATE_RANGES: dict[str, float | None] = {
    "Any time": None,
    "Last 24 hours": 24 * 3600,
    "Last 7 days": 7 * 24 * 3600,
    "Last 30 days": 30 * 24 * 3600,
}


# ---------------------------------------------------------------- the store


@st.cache_resource(show_spinner=False)
def _open_store(path: str) -> Store:
    return Store(path)


def history() -> Store:
    """The run history of this process (``$CONTINUUM_DB`` or the user data directory), as the
    signed-in person sees it (:func:`pages._people.viewer`; without sign-in, all of it)."""
    return _open_store(str(default_db_path())).seen_by(people.viewer(), name=people.viewer_name())


def history_or_stop() -> Store:
    """:func:`history`, or a readable error and the end of the page when it cannot be opened."""
    try:
        return history()
    except ContinuumError as exc:
        st.error(inert(f"**The run history cannot be opened.** {exc}"), icon=":material/error:")
    except Exception as exc:  # noqa: BLE001 - a broken file must not show a traceback
        st.error(
            inert(
                f"**The run history cannot be opened** ({type(exc).__name__}: {exc}). Check `CONTINUUM_DB` "
                f"({default_db_path()})."
            ),
            icon=":material/error:",
        )
    st.stop()


def load(run_id: str | None) -> RunResult | None:
    """The stored run, or None when there is no such run (deleted, or a stale link)."""
    if not run_id:
        return None
    store = history()
    if not store.exists(run_id):
        return None
    return store.load(run_id)


def picked_run_id() -> str | None:
    value = st.query_params.get(RUN_ID_PARAM)
    return str(value) if value else None


def pick_run(run_id: str | None) -> None:
    """Show ``run_id`` (None: none) and keep it in the URL, so a link or a reload opens it again."""
    if run_id:
        st.query_params[RUN_ID_PARAM] = run_id
    elif RUN_ID_PARAM in st.query_params:
        del st.query_params[RUN_ID_PARAM]


# ---------------------------------------------------------------- what a run is, in words


def when(timestamp: float | None) -> str:
    if not timestamp:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def status_badge(status: str, stop_reason: str | None = None) -> str:
    """A colored badge for a run's status; finished runs say why they stopped."""
    color = STATUS_COLORS.get(status, "gray")
    text = status
    if status == "finished" and stop_reason and stop_reason != "finished":
        text = stop_reason
        color = "green" if stop_reason == "target_reached" else "orange"
    return f":{color}-badge[{text.replace('_', ' ').capitalize()}]"


def tokens_text(value: int, estimated: bool) -> str:
    return f"≈{value:,}" if estimated else f"{value:,}"


# ---------------------------------------------------------------- resume


@dataclass(frozen=True)
class ResumeOptions:
    more_rounds: int = 10
    target_tokens: int = 0  # 0: no target
    max_tokens: int = 1024  # per round
    strategy: str = "prefill"


def resume_options(result: RunResult) -> ResumeOptions:
    """The resume form's defaults: the run's own settings, ten more rounds."""
    spec = result.spec
    return ResumeOptions(
        more_rounds=10,
        target_tokens=int(spec.target_tokens or 0),
        max_tokens=int(spec.max_tokens),
        strategy=spec.strategy if spec.strategy in STRATEGIES else "prefill",
    )


def resume_spec(result: RunResult, options: ResumeOptions, demo_base_url: str | None = None) -> RunSpec:
    """The spec to resume ``result`` with: ``more_rounds`` beyond the rounds it has, the new
    target, budget and strategy. A demo run moves to this process's demo model (its
    behaviour prefix kept); any other run keeps its base URL."""
    spec = dataclasses.replace(result.spec)
    spec.max_rounds = len(result.rounds) + max(1, int(options.more_rounds))
    spec.target_tokens = int(options.target_tokens) or None
    spec.max_tokens = max(1, int(options.max_tokens))
    spec.strategy = options.strategy
    if demo_base_url and spec.provider in PROVIDERS and PROVIDERS[spec.provider].is_demo:
        spec.base_url = rebase_url(spec.base_url, demo_base_url)
    return spec


def rebase_url(old: str, new_base: str) -> str:
    """``new_base``'s scheme and host with ``old``'s path (a demo behaviour prefix like ``/x/k=v/v1``)."""
    path = urlsplit(old).path if old else ""
    if not path.strip("/"):
        return new_base
    parts = urlsplit(new_base)
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def resume_problem(run_id: str) -> str | None:
    """Why ``run_id`` cannot be resumed now (None: it can)."""
    store = history()
    if not store.exists(run_id):
        return "This run is no longer in the history."
    if not store.may_change(run_id):
        return "This run is shared with you: only the person who started it can go on with it. Duplicate it instead."
    if store.is_active(run_id):
        return "This run is still being written: wait for it to end (or stop it) before resuming it."
    running = common.current_job()
    if running is not None and not running.done:
        return "A run is already going in the Studio: stop it first, or wait for it to end."
    return None


def start_resume(run_id: str, options: ResumeOptions, *, edited_text: str | None = None) -> str:
    """Start the resumed run as a background job of this session; returns an error message or "".

    ``edited_text``: the answer as the user edited it; the run records the edit and goes
    on from exactly that text (:func:`core.services.steering.edited`).
    """
    problem = resume_problem(run_id)
    if problem:
        return problem
    result = history().load(run_id)
    if edited_text is not None:
        steering.edited(result, edited_text)
    provider = PROVIDERS.get(result.spec.provider)
    if provider is None:
        return f"This run used an unknown provider ({result.spec.provider!r}); it cannot be resumed here."
    demo = common.demo_base_url_for(result.spec) if provider.is_demo else None
    return _launch(provider, resume_spec(result, options, demo), result)


def start_follow_up(run_id: str, message: str, max_rounds: int | None = None) -> str:
    """Ask ``message`` after ``run_id``'s answer: a new run in its thread; an error message or ""."""
    if not message.strip():
        return "Write the follow-up first: what should the model revise or write next?"
    problem = resume_problem(run_id)
    if problem:
        return problem
    seed = steering.follow_up(history().load(run_id), message.strip(), max_rounds=max_rounds)
    provider = PROVIDERS.get(seed.spec.provider)
    if provider is None:
        return f"This run used an unknown provider ({seed.spec.provider!r}); it cannot be followed up here."
    if provider.is_demo:
        seed.spec.base_url = rebase_url(seed.spec.base_url, common.demo_base_url_for(seed.spec))
    return _launch(provider, seed.spec, seed)


def _launch(provider: Provider, spec: RunSpec, resume: RunResult) -> str:
    """Start ``spec`` from ``resume`` as this session's job, its form loaded; an error message or ""."""
    key, _ = common.key_for(provider.id, base_url=spec.base_url)  # a shared server's key: its own URL only
    if provider.needs_key and not key:
        return f"No API key for {provider.label}: {provider.key_hint()}."
    if not spec.base_url:
        return f"{provider.label} needs a base URL: set it in Settings."
    try:
        job = common.job_manager().start(spec, api_key=key, resume=resume)
    except ContinuumError as exc:
        return str(exc)
    common.remember_job(job)
    load_form(spec, steering.opening_of(resume), run_key=job.id)
    return ""


# ---------------------------------------------------------------- duplicate


def studio_state(spec: RunSpec) -> dict[str, Any]:
    """The Studio's session-state keys (see pages/studio.py) holding ``spec``'s prompt and settings."""
    system = next((str(m.get("content") or "") for m in spec.messages if m.get("role") == "system"), "")
    provider_id = spec.provider if spec.provider in PROVIDERS else "demo"
    values: dict[str, Any] = {
        "prompt": spec.prompt,
        "system": system,
        "max_tokens": max(16, int(spec.max_tokens)),
        "max_rounds": max(1, int(spec.max_rounds)),
        "target_tokens": int(spec.target_tokens or 0),
        "temperature": float(spec.temperature if spec.temperature is not None else 0.7),
        "studio_provider": provider_id,
    }
    if spec.strategy in STRATEGIES:
        values[f"strategy_{provider_id}"] = spec.strategy
    return values


def load_form(spec: RunSpec, opening: str = "", *, run_key: str | None = None) -> bool:
    """Put ``spec``'s provider, model, prompt and settings (and the answer's ``opening``) into the
    Studio's form; ``run_key`` names the run the form now shows. True if the provider or the
    model changed (the sidebar, drawn before the page, shows them)."""
    values = studio_state(spec)
    values["opening"] = opening
    provider_id = values["studio_provider"]
    settings = common.get_settings()
    model = common.form_model(spec)  # a replay run: its Replay choice
    changed = settings.provider != provider_id or settings.models.get(provider_id) != model
    settings.provider = provider_id
    if model:
        settings.models[provider_id] = model
        values[f"studio_model_{provider_id}"] = model
    preset = PROVIDERS[provider_id]
    if not preset.is_demo and spec.base_url and spec.base_url != preset.base_url:
        settings.base_urls[provider_id] = spec.base_url
    st.session_state.update(values)
    st.session_state[common.FORM_RUN] = run_key
    return changed


def duplicate_to_studio(result: RunResult) -> None:
    """Put the run's prompt and settings into the Studio's form (the user edits, then generates)."""
    load_form(result.spec, steering.opening_of(result))
    common.forget_job()


def open_in_studio(run_id: str) -> None:
    """Show the stored run in the Studio (its thread, Continue, Edit, Follow up), form included."""
    common.forget_job()
    st.session_state.pop(common.FORM_RUN, None)
    st.switch_page(STUDIO, query_params={RUN_ID_PARAM: run_id})
