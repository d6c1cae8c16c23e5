"""The Studio's Replay choice for the demo provider, with Streamlit's AppTest (in-process).

The pace itself is checked in a browser (tests/e2e/test_replay.py) and by bench/bench_replay.py;
here every replay runs at the Instant pace.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.demo import TRANSCRIPTS
from core.wire.errors import ConfigError
from pages import _replay as replay

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 30
WATER_LEAKS = "replay:file:water-leaks"


@pytest.fixture
def app(clean_env, tmp_db, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("CONTINUUM_DEMO_RATE", "0")
    return AppTest.from_file(APP, default_timeout=TIMEOUT).run()


def shipped(name: str) -> dict:
    return json.loads((TRANSCRIPTS / f"{name}.json").read_text(encoding="utf-8"))


def choose_replay(at: AppTest, choice: str = WATER_LEAKS, pace: float = 0.0) -> AppTest:
    at.selectbox(key="studio_model_demo").select(choice).run()
    at.segmented_control(key="replay_speed").set_value(pace).run()
    return at


def generate(at: AppTest) -> AppTest:
    return at.button[[b.label for b in at.button].index("Generate")].click().run()


def test_the_demo_model_list_offers_the_shipped_transcripts(app: AppTest):
    options = app.selectbox(key="studio_model_demo").options
    assert "Replay: finding leaks you cannot see (with reasoning)" in options
    assert "Replay: starting a tool library" in options


def test_choosing_a_replay_loads_its_prompt_and_round_size(app: AppTest):
    at = choose_replay(app)
    spec = shipped("water-leaks")["spec"]
    assert at.text_area(key="prompt").value == spec["messages"][-1]["content"]
    assert at.number_input(key="max_tokens").value == spec["max_tokens"]


def test_a_replay_writes_the_recorded_text_and_reasoning_through_the_replay_model(app: AppTest):
    from pages._common import job_manager

    at = generate(choose_replay(app))
    assert not at.exception
    snap = job_manager().get(at.session_state["job_id"]).snapshot()
    source = shipped("water-leaks")
    assert snap.spec.model == "replay" and snap.stop_reason == "finished"
    assert snap.text == source["text"] and snap.to_result().reasoning == source["reasoning"]
    assert len(snap.rounds) == len(source["rounds"])


def test_one_server_per_recording_and_pace_is_reused(app: AppTest):
    first = replay.serve(WATER_LEAKS, 0.0)
    assert replay.serve(WATER_LEAKS, 0.0) is first
    assert replay.serve(WATER_LEAKS, 2.0).base_url != first.base_url
    assert replay.choice_of(first.base_url) == (WATER_LEAKS, 0.0)


def test_the_form_shows_the_replay_choice_of_the_run_on_screen_after_a_reload(app: AppTest):
    at = generate(choose_replay(app, pace=2.0))
    run_id = at.session_state["job_id"]
    again = AppTest.from_file(APP, default_timeout=TIMEOUT)
    again.query_params["run"] = run_id
    again.run()
    assert again.selectbox(key="studio_model_demo").value == WATER_LEAKS
    assert again.segmented_control(key="replay_speed").value == 2.0


def test_a_replay_id_that_names_no_recording_is_refused_readably(clean_env, tmp_db):
    for choice in ("replay:file:../../etc/passwd", "replay:file:nothing", "replay:run:no-such-run"):
        with pytest.raises(ConfigError, match="no recording"):
            replay.serve(choice, 1.0)
        assert replay.recorded_spec(choice) is None


def test_batch_after_a_replay_choice_sends_its_prompts_to_the_demo_model(app: AppTest):
    """A Replay choice replays its recording only: Batch, whose prompts are its own, sends them
    to the demo's default model (the replay model would answer 404)."""
    at = choose_replay(app)
    at.switch_page("pages/batch.py").run()
    assert not at.exception
    model = next(t for t in at.text_input if t.label == "Model")
    assert model.value == "demo"
