"""Shared fixtures: a real demo server on loopback, a temporary database, a clean environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.demo import behaviour_url, start_demo_server
from tests.pg import pg_cluster, pg_db, store_db  # noqa: F401 - fixtures: the store tests on SQLite and PostgreSQL

PROVIDER_KEY_VARS = (
    "DEEPINFRA_API_KEY",
    "DEEPINFRA_TOKEN",
    "OPENAI_API_KEY",
    "OPENROUTER_API_KEY",
    "TOGETHER_API_KEY",
    "FIREWORKS_API_KEY",
    "GROQ_API_KEY",
    "MISTRAL_API_KEY",
    "DEEPSEEK_API_KEY",
)


@pytest.fixture(scope="session")
def demo_server() -> Iterator[str]:
    """Base URL (ending in /v1) of an unthrottled demo model on loopback."""
    with start_demo_server(rate=0.0) as server:
        yield server.base_url


@pytest.fixture
def demo_url(demo_server: str, request: pytest.FixtureRequest):
    """Build a per-test behaviour URL; the test's name keys the demo's fault counters."""

    def build(**behaviours: object) -> str:
        behaviours.setdefault("k", request.node.name.replace(",", "_").replace("/", "_"))
        return behaviour_url(demo_server, **behaviours)

    return build


@pytest.fixture
def tmp_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh SQLite file, also exported as CONTINUUM_DB for code that reads the environment."""
    path = tmp_path / "continuum.sqlite3"
    monkeypatch.setenv("CONTINUUM_DB", str(path))
    return path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An environment without any provider key."""
    for name in PROVIDER_KEY_VARS:
        monkeypatch.delenv(name, raising=False)
    return dict(os.environ)
