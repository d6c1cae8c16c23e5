"""The app's Settings page shows the endpoint's address and a copyable example when it runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.serving import serve_demo

ROOT = Path(__file__).resolve().parents[1]


def settings_page(monkeypatch: pytest.MonkeyPatch, url: str) -> AppTest:
    monkeypatch.setenv("CONTINUUM_SERVE_URL", url)
    monkeypatch.setenv("CONTINUUM_DEMO_RATE", "0")
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).switch_page("pages/settings.py").run()


def test_settings_shows_a_running_endpoint(
    clean_env, tmp_db: Path, monkeypatch, demo_server: str, tmp_path: Path
) -> None:
    with serve_demo(demo_server, tmp_path / "h.sqlite3") as server:
        at = settings_page(monkeypatch, server.base_url)
    assert not at.exception
    assert any(f"running at `{server.base_url}`" in m.value for m in at.markdown)
    assert any(f'base_url="{server.base_url}"' in c.value for c in at.code)


def test_settings_says_how_to_start_the_endpoint(clean_env, tmp_db: Path, monkeypatch) -> None:
    at = settings_page(monkeypatch, "http://127.0.0.1:9/v1")  # nothing listens on the discard port
    assert not at.exception
    assert any("python -m core serve --provider" in c.value for c in at.code)
