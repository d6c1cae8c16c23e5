"""Settings: provider, base URL, API key, the model list, and checks of the server."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.services.providers import PROVIDERS, Provider
from core.wire.errors import ContinuumError
from pages import _common as common
from pages import _status as status
from pages import _timeouts as timeouts
from pages._blocks import inert, inert_code
from pages._endpoint import endpoint_panel
from pages._routing import ensure_routed

ensure_routed(__file__)  # run without app.py (Streamlit's legacy pages/ mode): go through it


def _on_provider() -> None:
    common.get_settings().provider = st.session_state["settings_provider"]


def _on_base_url(provider_id: str) -> None:
    value = str(st.session_state.get(f"base_url_{provider_id}") or "").strip()
    settings = common.get_settings()
    if value and value != PROVIDERS[provider_id].base_url:
        settings.base_urls[provider_id] = value
    else:
        settings.base_urls.pop(provider_id, None)
    settings.model_lists.pop(provider_id, None)


def _on_key(provider_id: str) -> None:
    widget = f"api_key_{provider_id}"
    value = str(st.session_state.get(widget) or "").strip()
    if value:
        common.get_settings().keys[provider_id] = value
    st.session_state[widget] = ""  # never keep the key in the input (nor echo it back)


def _forget_key(provider_id: str) -> None:
    common.get_settings().keys.pop(provider_id, None)


def _client(p: Provider) -> Any:
    from core.wire.client import Client

    key, _ = common.key_for(p.id)
    return Client(common.base_url_for(p), api_key=key, timeouts=timeouts.session_timeouts())


def _fetch_models(p: Provider) -> list[Any]:
    with _client(p) as client:
        models = list(client.list_models(with_meta=True))
    common.get_settings().model_lists[p.id] = models
    return models


def _models_frame(models: list[Any]) -> pd.DataFrame:
    def price(info: Any, name: str) -> float | None:
        prices = getattr(info, "prices", None)
        return getattr(prices, name, None) if prices else None

    return pd.DataFrame(
        {
            "Model": [m.id for m in models],
            "Context length": [m.context_length for m in models],
            "Output cap": [m.max_output for m in models],
            "Input $/M tokens": [price(m, "input_per_mtok") for m in models],
            "Output $/M tokens": [price(m, "output_per_mtok") for m in models],
        }
    )


def _show_error(exc: BaseException) -> None:
    if isinstance(exc, ContinuumError):
        status.show_error(exc.to_info())
    else:
        st.error(inert(f"**That did not work.** {type(exc).__name__}: {exc}"))


def connection_checks(p: Provider) -> None:
    st.subheader("Check the server")
    row = st.container(horizontal=True)
    fetch = row.button("Fetch models", icon=":material/list:", key="fetch_models")
    test = row.button("Test connection", icon=":material/lan:", key="test_connection")
    probe = row.button("Probe continuation", icon=":material/science:", key="probe_continuation")
    if fetch or test:
        try:
            with st.spinner("Asking the server for its models…"):
                models = _fetch_models(p)
        except Exception as exc:  # noqa: BLE001 - shown to the user as a message
            _show_error(exc)
        else:
            if test:
                st.success(inert(f"Connected to {common.base_url_for(p)}: {len(models)} models listed."))
    if probe:
        run_probe(p)
    models = common.model_list(p)
    if models:
        st.markdown("**Models**")
        st.dataframe(
            _models_frame(models),
            hide_index=True,
            column_config={
                "Context length": st.column_config.NumberColumn(format="localized"),
                "Output cap": st.column_config.NumberColumn(format="localized"),
                "Input $/M tokens": st.column_config.NumberColumn(format="$%.2f"),
                "Output $/M tokens": st.column_config.NumberColumn(format="$%.2f"),
            },
        )
        st.caption("Empty cells: the server does not say; the preset's values are used instead.")
    else:
        st.caption("Fetch the model list to see context lengths, output caps and prices (where offered).")


def run_probe(p: Provider) -> None:
    from core.continuation.probe import VERDICT_HEADLINES, probe_all

    key, _ = common.key_for(p.id)
    model = common.prompting_model_for(p)
    try:
        with st.spinner(
            f"Probing {inert_code(model)}: for each strategy, one answer at temperature 0, then its first "
            "half sent back to see whether the server continues it exactly…"
        ):
            report = probe_all(
                common.base_url_for(p), model, api_key=key, timeouts=timeouts.session_timeouts()
            )
    except Exception as exc:  # noqa: BLE001 - shown to the user as a message
        _show_error(exc)
        return
    rows = [
        {
            "Strategy": r.strategy,
            "Verdict": VERDICT_HEADLINES[r.verdict],
            "Matched": f"{r.agreed}/{r.compared}",
        }
        for r in report.results
    ]
    rows += [
        {"Strategy": name, "Verdict": f"not probed: {why}", "Matched": ""}
        for name, why in report.skipped.items()
    ]
    if report.recommended:
        current = "" if report.recommended == p.strategy else f" (the preset uses `{p.strategy}`)"
        st.success(
            f"**Continuation works with `{report.recommended}`**{current}. {inert(report.advice)}",
            icon=":material/check_circle:",
        )
    else:
        st.warning(
            f"**This server does not continue the answer with any strategy probed.** {inert(report.advice)}"
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(
        "The probe does not read the text, so it works with any model: at temperature 0 a server that "
        "continues writes, from the first half of its own answer, exactly the rest of it."
    )
    with st.expander("What the server answered"):
        for r in report.results:
            st.markdown(f"**{r.strategy}** — {inert(r.advice)}")
            st.code(r.sample or "(nothing)", language=None)


settings = common.get_settings()
ids = list(PROVIDERS)
st.title("Settings")
st.selectbox(
    "Provider",
    ids,
    index=ids.index(settings.provider),
    format_func=lambda pid: PROVIDERS[pid].label,
    key="settings_provider",
    on_change=_on_provider,
)
p = common.provider()
if p.notes:
    st.caption(p.notes)

left, right = st.columns(2)
with left:
    if p.is_demo:
        st.text_input(
            "Base URL", value=common.base_url_for(p), disabled=True, help="Started inside this app."
        )
    else:
        st.text_input(
            "Base URL",
            value=common.base_url_for(p),
            key=f"base_url_{p.id}",
            on_change=_on_base_url,
            args=(p.id,),
            placeholder="https://host/v1",
            help="The OpenAI-compatible API root (ending in /v1 for most servers).",
        )
with right:
    if p.is_demo:
        st.text_input("API key", value="", disabled=True, type="password", placeholder="not needed")
    else:
        st.text_input(
            "API key",
            type="password",
            key=f"api_key_{p.id}",
            on_change=_on_key,
            args=(p.id,),
            placeholder="Paste a key: kept in this browser session only",
            help="Kept in this session's memory only: never shown again, saved, logged or exported. "
            f"Or set {' or '.join(p.key_envs) or 'a key variable'}, or use .streamlit/secrets.toml.",
        )
st.caption(common.key_status(p))
if settings.keys.get(p.id):
    st.button("Forget the pasted key", on_click=_forget_key, args=(p.id,), type="tertiary")

connection_checks(p)
timeouts.advanced_settings()
endpoint_panel(p)
