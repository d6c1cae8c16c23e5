"""The Inspect page of an edited run (AppTest): the seam at the edit shows the edited answer.

Before, the seam after the edited round showed an empty "before" side: the rounds before an
edit keep no text (the edit holds it), and the seam was cut from the rounds alone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.continuation import engine
from core.services.store import Recorder, Store
from core.types import RunFinished, RunResult
from tests.test_pages_runs import APP, INSPECT, TIMEOUT, open_page, record_run, texts

MINE = "\n\nMY OWN LINE, written by hand and"


@pytest.fixture
def app(clean_env: dict[str, str], tmp_db: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("CONTINUUM_DEMO_RATE", "0")
    return AppTest.from_file(APP, default_timeout=TIMEOUT)


def record_edited_run(db: Path, base_url: str) -> str:
    """A demo run of two rounds, its last paragraph replaced by the user's, continued; its id."""
    with Store(db) as store:
        run_id = record_run(db, base_url, max_rounds=2)
        result = store.load(run_id)
        result.edit(result.text[: result.text.rstrip().rfind("\n\n")] + MINE)
        spec = dataclasses.replace(result.spec, max_rounds=30)
        events = list(Recorder(store, resume=result).record(engine.run(spec, resume=result)))
        last = events[-1]
        assert isinstance(last, RunFinished)
        return run_id


def test_the_seam_at_an_edit_shows_the_edited_answer_and_the_edit(
    app: AppTest, tmp_db: Path, demo_server: str
) -> None:
    run_id = record_edited_run(tmp_db, demo_server)
    stored: RunResult = Store(tmp_db).load(run_id)
    assert stored.edits and stored.edits[0].after_round == 2
    at = open_page(app, INSPECT, id=run_id)
    assert not at.exception
    heading = next(str(m.value) for m in at.markdown if "Round 2 → 3" in str(m.value))
    assert "your edit" in heading and "Your edit after round 2" in texts(at)
    captions = [str(c.value) for c in at.caption]
    assert "End of the answer as you edited it" in captions
    assert "The text of both rounds is now part of your edit after round 2." in captions  # the seam 1 → 2
    drawn = "MY·OWN·LINE,·written·by·hand·and"  # whitespace drawn (a zero-width space after each ·)
    assert any(str(c.value).replace("\u200b", "").endswith(drawn) for c in at.code)
