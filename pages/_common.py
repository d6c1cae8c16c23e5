"""What every page shares: process-wide resources, the session's settings, run specs.

UI glue only. The session's settings live in ``st.session_state["cfg"]`` (not in
widget keys, which Streamlit drops when a page stops rendering the widget):
the chosen provider, per-provider base URL and model overrides, and API keys a
user pasted in Settings. Keys never leave the session: they are not put in the
URL, the run spec, the logs or any export.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import streamlit as st

from core.services import access
from core.services.jobs import Job, JobManager, recording_runner
from core.services.keys import find_api_key
from core.services.providers import DEFAULT_PROVIDER, PROVIDERS, Provider, get_provider
from core.services.specs import make_spec, model_limits
from core.types import Prices, RunSpec
from core.wire import guard
from core.wire.errors import ContinuumError
from pages import _people as people
from pages import _replay as replay
from pages._secrets import secrets

if TYPE_CHECKING:
    from core.services.store import Store

log = logging.getLogger(__name__)

DEMO_RATE_ENV = "CONTINUUM_DEMO_RATE"
DEFAULT_DEMO_RATE = 400.0  # tokens/s: realistic for a demo; tests raise it
RUN_PARAM = "run"  # the URL query parameter holding the session's job id
STORED_PARAM = "id"  # the URL query parameter naming a run of the history a page shows
FORM_RUN = "studio_form_run"  # session state: the run (job id, or "id:" + run id) the Studio's form shows


# ---------------------------------------------------------------- process-wide


@st.cache_resource(show_spinner=False)
def _recording_store(db_path: str) -> Store | None:
    try:
        from core.services.store import Store

        return Store(db_path)
    except Exception:
        log.exception("the run history at %s cannot be opened; runs will not be saved", db_path)
        return None


@st.cache_resource(show_spinner=False)
def _job_manager(db_path: str, person: str | None, name: str | None) -> JobManager:
    store = _recording_store(db_path)
    if store is None:
        return JobManager()
    return JobManager(recording_runner(store.seen_by(person, name=name)))


def job_manager() -> JobManager:
    """The JobManager of this Streamlit process for the signed-in person (jobs outlive reruns and
    reloads; a person finds only their own jobs, also by URL).

    Every run it starts is also saved to the run history (``$CONTINUUM_DB``) as the person's,
    which the Runs and Inspect pages read.
    """
    from core.services.store import default_db_path

    return _job_manager(str(default_db_path()), people.viewer(), people.viewer_name())


def demo_rate() -> float:
    try:
        return max(0.0, float(os.environ.get(DEMO_RATE_ENV, DEFAULT_DEMO_RATE)))
    except ValueError:
        return DEFAULT_DEMO_RATE


@st.cache_resource(show_spinner=False)
def _demo_server(rate: float) -> Any:
    from core.demo import start_demo_server

    return start_demo_server(rate=rate)


def demo_base_url() -> str:
    """Base URL of this process's demo model, started on first use."""
    return str(_demo_server(demo_rate()).base_url)


def fresh_container(parent: Any = None, **kwargs: Any) -> Any:
    """A container that starts empty in every script run.

    The Studio stays in one script run while a job streams, and Streamlit only
    removes what a run did not redraw when that run ends; until then, leftovers
    of the previous run (example prompts, an old error) would show, faded. A
    block written over a block of the *same* type keeps the old children, so
    this writes a block of another type (an expander) at the spot first: the
    container that replaces it has no children but the new ones.
    """
    slot = (parent or st).empty()
    slot.expander("·")
    return slot.container(**kwargs)


# ---------------------------------------------------------------- session settings


@dataclass
class Settings:
    provider: str = "demo"
    base_urls: dict[str, str] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # pasted in Settings; this session only
    model_lists: dict[str, list[Any]] = field(default_factory=dict)  # provider id -> [ModelInfo]
    replay_speed: float = 1.0  # the demo's Replay choice: pace factor (0 = no waiting)


def key_for(
    provider_id: str, settings: Settings | None = None, *, base_url: str | None = None
) -> tuple[str | None, str | None]:
    """(key, source) for a provider: session, then secrets, then environment.

    On a shared server a key from the secrets or the environment is withheld,
    ``(None, "withheld")``, when the request goes elsewhere than the provider's
    own base URL or the allow-list (:func:`core.services.access.server_key_may_go_to`):
    ``base_url`` (a stored run's, when resuming), else the session's setting.
    """
    settings = settings or get_settings()
    key, source = find_api_key(
        provider_id, session_key=settings.keys.get(provider_id), secrets=secrets(), environ=os.environ
    )
    if key and source != "session" and guard.is_shared():
        p = get_provider(provider_id)
        target = base_url or base_url_for(p, settings)
        if not p.is_demo and not access.server_key_may_go_to(p.base_url, target):
            return None, "withheld"
    return key, source


def configured_providers() -> list[str]:
    """Providers (other than the demo) with a key from secrets, the environment or this session."""
    return [p.id for p in PROVIDERS.values() if not p.is_demo and p.key_envs and key_for(p.id)[0]]


def _initial_provider() -> str:
    ready = configured_providers()
    if DEFAULT_PROVIDER in ready:
        return DEFAULT_PROVIDER
    return ready[0] if ready else "demo"


def get_settings() -> Settings:
    if "cfg" not in st.session_state:
        settings = Settings()
        st.session_state["cfg"] = settings
        settings.provider = _initial_provider()
    settings = st.session_state["cfg"]
    assert isinstance(settings, Settings)
    return settings


def provider() -> Provider:
    return get_provider(get_settings().provider)


def base_url_for(p: Provider, settings: Settings | None = None) -> str:
    if p.is_demo:
        return demo_base_url()
    return (settings or get_settings()).base_urls.get(p.id) or p.base_url


def model_for(p: Provider) -> str:
    return get_settings().models.get(p.id) or p.default_model


def prompting_model_for(p: Provider) -> str:
    """The model for pages that send prompts of their own (Batch, Settings' probe): the chosen
    one, except that a Replay choice, which can only replay its recording, gives the demo's default."""
    model = model_for(p)
    return p.default_model if p.is_demo and replay.is_choice(model) else model


def key_status(p: Provider) -> str:
    """A line for the sidebar: where the key comes from, never the key."""
    if p.is_demo:
        return "No key needed: the demo model runs inside this app."
    key, source = key_for(p.id)
    if source == "withheld":
        return "Server key not used: a shared server sends it only to the provider's own URL (or an allowed one)."
    if key:
        where = {"session": "pasted in Settings (this session only)", "secrets": "from secrets.toml"}
        env = " / ".join(p.key_envs)
        return f"Key: {where.get(source or '', f'from the environment ({env})')}"
    if not p.needs_key:
        return "No key set (this server may not need one)."
    return f"No key: {p.key_hint()}."


# ---------------------------------------------------------------- models


@st.cache_resource(show_spinner=False)
def _demo_models(base_url: str) -> list[Any]:
    from core.wire.client import Client

    return list(Client(base_url).list_models(with_meta=True))


def model_list(p: Provider) -> list[Any]:
    """The provider's models if known (fetched in Settings; the demo's are always known)."""
    if p.is_demo:
        try:
            return _demo_models(demo_base_url())
        except Exception:  # noqa: BLE001 - fall back to the preset
            return []
    return get_settings().model_lists.get(p.id, [])


def model_info(p: Provider, model: str) -> Any | None:
    if p.is_demo and replay.is_choice(model):
        try:
            return replay.serve(model, get_settings().replay_speed).info
        except ContinuumError:  # not a recording: the preset's limits
            return None
    for info in model_list(p):
        if getattr(info, "id", None) == model:
            return info
    return None


@dataclass(frozen=True)
class ModelLimits:
    context_window: int | None
    output_cap: int | None
    prices: Prices | None


def limits_for(p: Provider, model: str) -> ModelLimits:
    """Context window, output cap and prices: the spec factory's rule (model list, then preset)."""
    window, cap, prices = model_limits(p, model_info(p, model))
    return ModelLimits(context_window=window, output_cap=cap, prices=prices)


# ---------------------------------------------------------------- runs


@dataclass(frozen=True)
class RunForm:
    prompt: str
    system: str = ""
    model: str = ""
    strategy: str = "prefill"
    max_tokens: int = 1024
    max_rounds: int = 20
    target_tokens: int = 0
    temperature: float = 0.7


def demo_target(p: Provider, model: str) -> tuple[str, str, Any | None]:
    """(base URL, model id, model entry) a run of ``model`` goes to: for the demo's Replay
    choices, the replay server of that recording at the session's speed and its model ``replay``.
    ConfigError for a Replay choice that names no recording."""
    if p.is_demo and replay.is_choice(model):
        served = replay.serve(model, get_settings().replay_speed)
        return served.base_url, replay.MODEL, served.info
    return base_url_for(p), model, model_info(p, model)


def demo_base_url_for(spec: RunSpec) -> str:
    """Where a demo run goes on (resume, follow-up): the replay server it ran on while it still
    runs in this process, else this process's demo model."""
    if spec.model == replay.MODEL and replay.choice_of(spec.base_url) is not None:
        return spec.base_url
    return demo_base_url()


def form_model(spec: RunSpec) -> str:
    """The Studio's model choice for ``spec``: a replay run's Replay choice (and its speed put in
    the settings) while its server runs in this process, else the spec's model."""
    served = replay.choice_of(spec.base_url) if spec.model == replay.MODEL else None
    if served is None:
        return spec.model
    get_settings().replay_speed = served[1]
    return served[0]


def build_spec(p: Provider, form: RunForm) -> RunSpec:
    base_url, model, info = demo_target(p, form.model or p.default_model)
    return make_spec(
        p,
        form.prompt,
        system=form.system,
        model=model,
        base_url=base_url,
        info=info,
        max_tokens=int(form.max_tokens),
        max_rounds=int(form.max_rounds),
        target_tokens=int(form.target_tokens) or None,
        strategy=form.strategy,
        temperature=float(form.temperature),
        api_key_env=p.key_env,
    )


def current_job() -> Job | None:
    """The session's job: from session state, else from the URL (a reload reattaches)."""
    manager = job_manager()
    job_id = st.session_state.get("job_id") or st.query_params.get(RUN_PARAM)
    job = manager.get(job_id)
    if job is None:
        st.session_state.pop("job_id", None)
        return None
    st.session_state["job_id"] = job.id
    return job


def remember_job(job: Job) -> None:
    """Show ``job`` in the Studio: its id in the session and in the URL (a reload finds it again)."""
    st.session_state["job_id"] = job.id
    st.query_params[RUN_PARAM] = job.id
    if STORED_PARAM in st.query_params:  # the run the Studio showed before; the job's own comes when it ends
        del st.query_params[STORED_PARAM]


def forget_job() -> None:
    """Show no run in the Studio (a new one is being written)."""
    st.session_state.pop("job_id", None)
    for param in (RUN_PARAM, STORED_PARAM):
        if param in st.query_params:
            del st.query_params[param]
