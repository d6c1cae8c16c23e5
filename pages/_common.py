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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from core.jobs import Job, JobManager, recording_runner
from core.keys import find_api_key
from core.providers import DEFAULT_PROVIDER, PROVIDERS, Provider, get_provider
from core.types import Prices, RunSpec

log = logging.getLogger(__name__)

DEMO_RATE_ENV = "CONTINUUM_DEMO_RATE"
DEFAULT_DEMO_RATE = 400.0  # tokens/s: realistic for a demo; tests raise it
RUN_PARAM = "run"  # the URL query parameter holding the session's job id


# ---------------------------------------------------------------- process-wide


@st.cache_resource(show_spinner=False)
def _job_manager(db_path: str) -> JobManager:
    try:
        from core.store import Store

        store = Store(db_path)
    except Exception:
        log.exception("the run history at %s cannot be opened; runs will not be saved", db_path)
        return JobManager()
    return JobManager(recording_runner(store))


def job_manager() -> JobManager:
    """The JobManager of this Streamlit process (jobs outlive reruns and reloads).

    Every run it starts is also saved to the run history (``$CONTINUUM_DB``),
    which the Runs and Inspect pages read.
    """
    from core.store import default_db_path

    return _job_manager(str(default_db_path()))


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


def secrets() -> Mapping[str, Any]:
    """``st.secrets`` when a secrets.toml exists, else an empty mapping (never an error on screen)."""
    try:
        if st.secrets.load_if_toml_exists():
            return st.secrets
    except Exception:  # noqa: BLE001 - a broken secrets file must not break the page
        pass
    return {}


def key_for(provider_id: str, settings: Settings | None = None) -> tuple[str | None, str | None]:
    """(key, source) for a provider: session, then secrets, then environment."""
    settings = settings or get_settings()
    return find_api_key(
        provider_id, session_key=settings.keys.get(provider_id), secrets=secrets(), environ=os.environ
    )


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


def base_url_for(p: Provider) -> str:
    if p.is_demo:
        return demo_base_url()
    return get_settings().base_urls.get(p.id) or p.base_url


def model_for(p: Provider) -> str:
    return get_settings().models.get(p.id) or p.default_model


def key_status(p: Provider) -> str:
    """A line for the sidebar: where the key comes from, never the key."""
    if p.is_demo:
        return "No key needed: the demo model runs inside this app."
    key, source = key_for(p.id)
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
    from core.client import Client

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
    """Context window, output cap and prices: the provider's model list first, then the preset."""
    info = model_info(p, model)
    return ModelLimits(
        context_window=getattr(info, "context_length", None) or p.context_window,
        output_cap=getattr(info, "max_output", None) or p.output_cap,
        prices=getattr(info, "prices", None) or p.prices,
    )


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


def build_spec(p: Provider, form: RunForm) -> RunSpec:
    messages: list[dict[str, Any]] = []
    if form.system.strip():
        messages.append({"role": "system", "content": form.system.strip()})
    messages.append({"role": "user", "content": form.prompt})
    model = form.model or p.default_model
    limits = limits_for(p, model)
    return RunSpec(
        messages=messages,
        provider=p.id,
        base_url=base_url_for(p),
        model=model,
        max_tokens=int(form.max_tokens),
        max_rounds=int(form.max_rounds),
        target_tokens=int(form.target_tokens) or None,
        context_window=limits.context_window,
        output_cap=limits.output_cap,
        strategy=form.strategy,
        temperature=float(form.temperature),
        prices=limits.prices,
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
    st.session_state["job_id"] = job.id
    st.query_params[RUN_PARAM] = job.id


def forget_job() -> None:
    st.session_state.pop("job_id", None)
    if RUN_PARAM in st.query_params:
        del st.query_params[RUN_PARAM]
