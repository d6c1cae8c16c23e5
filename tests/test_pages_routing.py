"""Every page runs inside app.py, behind its access gate, also on a server's first request.

Until a session calls ``st.navigation``, Streamlit reads the ``pages/`` folder as a
legacy multipage app and runs the file a URL names on its own. AppTest starts
every ``run()`` in that mode, as a fresh server starts, so a first run that asks
for a page is a fresh server's first request for that page's URL. The browser
test is in ``tests/e2e/test_security.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["pages/studio.py", "pages/runs.py", "pages/inspect.py", "pages/batch.py", "pages/settings.py"]


@pytest.fixture
def fresh_app(clean_env, tmp_db: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("CONTINUUM_DEMO_RATE", "0")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.secrets["access_password"] = "open sesame"
    return at


@pytest.mark.parametrize("page", PAGES)
def test_a_first_request_for_a_page_shows_the_gate_and_nothing_of_it(fresh_app: AppTest, page: str) -> None:
    at = fresh_app.switch_page(page).run()  # the first run: Streamlit's legacy pages/ mode
    shown = ([t.value for t in at.title], [t.label for t in at.text_input])
    assert shown == (["Continuum"], ["Access password"])


def test_a_page_started_as_the_app_itself_says_how_to_start_continuum(clean_env, tmp_db: Path) -> None:
    at = AppTest.from_file(str(ROOT / "pages" / "settings.py"), default_timeout=30).run()
    assert ([e.value for e in at.error], list(at.title)) == (
        ["Continuum's pages run inside its router: start it with `streamlit run app.py`."],
        [],
    )
