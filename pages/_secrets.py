"""The server's secrets (``.streamlit/secrets.toml``, or the files ``secrets.files`` names), read
without ever putting an error on screen. UI glue only; shared by the settings, the access gate
and sign-in (:mod:`pages._people`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st


def secrets() -> Mapping[str, Any]:
    """``st.secrets`` when a secrets.toml exists, else an empty mapping (never an error on screen)."""
    try:
        if st.secrets.load_if_toml_exists():
            return st.secrets
    except Exception:  # noqa: BLE001 - a broken secrets file must not break the page
        pass
    return {}
