"""Settings' panel on the OpenAI-compatible endpoint (``python -m core serve``): its address and a
copyable example when it runs, the command to start it when not."""

from __future__ import annotations

import streamlit as st

from core.serve.discovery import Endpoint, client_example, find_endpoint, serve_url
from core.services.providers import Provider


@st.cache_data(ttl=10, show_spinner=False)
def _running(url: str) -> Endpoint | None:
    return find_endpoint(url)


def endpoint_panel(p: Provider) -> None:
    url = serve_url()
    found = _running(url)
    model = p.default_model or "MODEL"
    with st.expander("Use Continuum as an OpenAI-compatible endpoint", expanded=found is not None):
        if found is not None:
            st.markdown(
                f"The endpoint is running at `{found.base_url}` ({found.active} of {found.limit} answers "
                "in progress). Point any OpenAI client or chat front end there: a request's `max_tokens` "
                "is the budget of the whole answer."
                + (" Clients send `CONTINUUM_SERVE_TOKEN` as their API key." if found.token else "")
            )
            st.code(client_example(found.base_url, model, token=found.token), language="python")
        else:
            st.markdown(
                f"No endpoint answers at `{url}` (set `CONTINUUM_SERVE_URL` for another address). "
                "Start one with the provider of your choice; every request becomes a run in the history:"
            )
            st.code(f"python -m core serve --provider {p.id}", language="bash")
            st.code(client_example(url, model), language="python")
