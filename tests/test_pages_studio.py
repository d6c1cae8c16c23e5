"""Page logic with Streamlit's AppTest: the router, the Studio and Settings, in-process.

The demo model runs unthrottled here (CONTINUUM_DEMO_RATE=0), so a run ends
inside one script run. Browser behaviour (live streaming, Stop, reload) is in
tests/e2e/.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.demo import demo_document

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 30
PROMPT = "Write about 1200 tokens on the tides."


@pytest.fixture
def app(clean_env, tmp_db, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("CONTINUUM_DEMO_RATE", "0")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    return at.run()


def texts(at: AppTest) -> str:
    parts = [e.value for e in at.markdown] + [e.value for e in at.caption]
    parts += [e.value for e in at.info] + [e.value for e in at.warning] + [e.value for e in at.error]
    return "\n".join(str(p) for p in parts)


def generate(at: AppTest, prompt: str = PROMPT, **numbers: int) -> AppTest:
    at.text_area(key="prompt").input(prompt)
    for key, value in numbers.items():
        at.number_input(key=key).set_value(value)
    return at.button[[b.label for b in at.button].index("Generate")].click().run()


def test_a_fresh_app_opens_on_the_demo_model_and_says_so(app: AppTest):
    assert not app.exception
    assert app.selectbox(key="studio_provider").value == "demo"
    assert "offline demo model" in app.info[0].value


def test_a_key_in_the_environment_selects_that_provider_without_showing_it(
    clean_env, tmp_db, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("DEEPINFRA_API_KEY", "di-secret-value-123")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert at.selectbox(key="studio_provider").value == "deepinfra"
    assert not any("offline demo model" in i.value for i in at.info)
    assert "DEEPINFRA_API_KEY" in texts(at) and "di-secret-value-123" not in texts(at)


def test_the_empty_studio_offers_example_prompts_that_fill_the_prompt(app: AppTest):
    assert "Nothing generated yet" in texts(app)
    example = next(b for b in app.button if b.key == "example_0")
    example.click().run()
    assert app.text_area(key="prompt").value == example.label


def test_generate_without_a_prompt_asks_for_one(app: AppTest):
    at = generate(app, "")
    assert any("The prompt is empty" in w.value for w in at.warning)


def test_a_run_streams_to_the_end_and_offers_the_downloads(app: AppTest):
    at = generate(app, max_tokens=256)
    assert not at.exception
    assert "Finished" in texts(at)
    assert "cost at example prices" in texts(at) and "est. cost" not in texts(at)  # the demo bills nothing
    assert at.query_params["run"] and at.session_state["job_id"] == at.query_params["run"]
    assert {"download_md", "download_txt", "download_json", "download_csv"} <= {
        e.key for e in at.get("download_button")
    }


def test_the_finished_run_is_the_demo_document_in_several_rounds(app: AppTest):
    from pages._common import job_manager

    at = generate(app, max_tokens=256)
    snap = job_manager().get(at.session_state["job_id"]).snapshot()
    assert snap.text == demo_document(PROMPT) and len(snap.rounds) >= 4


def test_a_prompt_too_long_for_the_window_is_a_warning_not_a_crash(app: AppTest):
    at = generate(app, "Summarise: " + "lorem ipsum dolor sit amet " * 2000)
    assert not at.exception
    messages = [w.value for w in at.warning] + [e.value for e in at.error]
    assert any("leaves no room" in m or "too long" in m for m in messages)


def test_new_run_clears_the_run_from_the_session_and_the_url(app: AppTest):
    at = generate(app, max_tokens=512)
    next(b for b in at.button if b.key == "clear_run").click().run()
    assert "run" not in at.query_params and "job_id" not in at.session_state
    assert "Nothing generated yet" in texts(at)


def test_a_run_id_in_the_url_reattaches_a_new_session(app: AppTest):
    run_id = generate(app, max_tokens=512).session_state["job_id"]
    fresh = AppTest.from_file(APP, default_timeout=TIMEOUT)
    fresh.query_params["run"] = run_id
    fresh.run()
    assert "Finished" in texts(fresh)


def test_an_unknown_run_id_in_the_url_shows_the_empty_studio(app: AppTest):
    fresh = AppTest.from_file(APP, default_timeout=TIMEOUT)
    fresh.query_params["run"] = "not-a-run"
    fresh.run()
    assert "Nothing generated yet" in texts(fresh)


def test_a_provider_that_needs_a_key_refuses_to_start_without_one(app: AppTest):
    app.selectbox(key="studio_provider").set_value("openai").run()
    at = generate(app)
    assert any("No API key for OpenAI" in e.value for e in at.error)


# ---------------------------------------------------------------- Settings


def settings_page(app: AppTest) -> AppTest:
    return app.switch_page("pages/settings.py").run()


def test_a_pasted_key_stays_in_the_session_and_is_never_echoed(app: AppTest):
    at = settings_page(app)
    at.selectbox(key="settings_provider").set_value("openrouter").run()
    at.text_input(key="api_key_openrouter").input("sk-or-pasted-456").run()
    assert at.text_input(key="api_key_openrouter").value == ""
    assert "pasted in Settings" in texts(at) and "sk-or-pasted-456" not in texts(at)
    assert at.session_state["cfg"].keys == {"openrouter": "sk-or-pasted-456"}


def test_the_demo_model_list_shows_context_lengths(app: AppTest):
    at = settings_page(app)
    next(b for b in at.button if b.key == "fetch_models").click().run()
    frame = at.dataframe[0].value
    assert dict(zip(frame["Model"], frame["Context length"], strict=True))["demo-32k"] == 32768


def test_test_connection_reports_a_bad_base_url_readably(app: AppTest):
    at = settings_page(app)
    at.selectbox(key="settings_provider").set_value("custom").run()
    at.text_input(key="base_url_custom").input("http://127.0.0.1:9/v1").run()
    next(b for b in at.button if b.key == "test_connection").click().run()
    assert not at.exception and at.error and "Could not reach" in at.error[0].value


def test_probing_the_demo_finds_that_it_continues_a_prefill(app: AppTest):
    at = settings_page(app)
    next(b for b in at.button if b.key == "probe_continuation").click().run()
    assert not at.exception and "Continuation works with `prefill`" in at.success[0].value


def test_probing_a_server_that_ignores_prefills_recommends_another_strategy(app: AppTest, demo_url):
    at = settings_page(app)
    at.selectbox(key="settings_provider").set_value("custom").run()
    at.text_input(key="base_url_custom").input(demo_url(prefill="ignored")).run()
    at.session_state["cfg"].models["custom"] = "demo"
    next(b for b in at.button if b.key == "probe_continuation").click().run()
    assert "Continuation works with `instruction`" in at.success[0].value
    table = at.dataframe[0].value
    verdicts = dict(zip(table["Strategy"], table["Verdict"], strict=True))
    assert verdicts["prefill"] == "starts a new answer instead of continuing"


def test_a_reasoning_model_shows_its_reasoning_apart_from_the_answer(app: AppTest):
    from core.demo import demo_reasoning
    from pages._common import job_manager

    app.selectbox(key="studio_model_demo").set_value("demo-reasoner").run()
    at = generate(app, max_tokens=2048)
    snap = job_manager().get(at.session_state["job_id"]).snapshot()
    assert snap.text == demo_document(PROMPT) and snap.to_result().reasoning == demo_reasoning(PROMPT)
    assert [e.label for e in at.expander if e.label == "Reasoning"]


def test_the_form_survives_a_visit_to_settings(app: AppTest):
    at = generate(app, "Keep me while I look at Settings", max_rounds=7)
    at = at.switch_page("pages/settings.py").run()
    at = at.switch_page("pages/studio.py").run()
    assert at.text_area(key="prompt").value == "Keep me while I look at Settings"
    assert at.number_input(key="max_rounds").value == 7


# ---------------------------------------------------------------- bad input


def refusal(at: AppTest) -> str:
    """The error the Studio shows when a run cannot start (and proof that none started).

    Zero or negative limits cannot get this far: Streamlit resets a number input's
    out-of-range value to its default, and the browser shows its own message (see
    tests/e2e/test_bad_input.py); core.continuation.validation refuses them behind that.
    """
    assert not at.exception and "run" not in at.query_params
    return "\n".join(e.value for e in at.error)


def test_a_prompt_longer_than_the_window_is_refused_with_the_numbers(app: AppTest):
    shown = refusal(generate(app, "x" * 30_000))
    assert (
        "The prompt is about 10,516 tokens (30,000 characters); demo's context window is 8,192 tokens"
        in shown
    )
    assert "Shorten the prompt to under about 22,902 characters" in shown


def test_a_10_mb_prompt_is_refused_and_the_studio_still_works(app: AppTest):
    refused = generate(app, "z" * (10 * 1024 * 1024))
    shown = refusal(refused)
    assert "The prompt is 10,485,760 characters (10.5 MB)" in shown
    assert refused.text_area(key="prompt").value == ""  # not kept in the form to be sent back on every visit
    at = generate(app, PROMPT, max_tokens=512)
    assert "Finished" in texts(at)


def test_advanced_settings_refuse_a_zero_timeout_and_keep_the_last_good_one(app: AppTest):
    from core.wire.client import Timeouts

    at = settings_page(app)
    at.number_input(key="timeout_idle").set_value(0.0).run()
    assert "The idle timeout must be more than 0 s (got 0)" in at.error[0].value
    assert at.number_input(key="timeout_idle").value == 60.0 and "cfg_timeouts" not in at.session_state
    at.number_input(key="timeout_round").set_value(120.0).run()
    assert not at.error and at.session_state["cfg_timeouts"] == Timeouts(round=120.0)


def test_the_round_timeout_from_settings_reaches_the_run(app: AppTest, demo_url):
    """A run on a demo model streaming 300 tokens/s with a 0.3 s round ceiling: every cut round
    is continued by a recovery round and the answer is still the exact document."""
    from core.wire.client import Timeouts
    from pages._common import job_manager

    at = settings_page(app)
    at.selectbox(key="settings_provider").set_value("custom").run()
    at.text_input(key="base_url_custom").input(demo_url(rate=300)).run()
    at.session_state["cfg"].models["custom"] = "demo"
    at.number_input(key="timeout_round").set_value(0.3).run()
    at = at.switch_page("pages/studio.py").run()
    prompt = "Write 240 tokens about tides"
    at = generate(at, prompt)
    job = job_manager().get(at.session_state["job_id"])
    assert job.join(timeout=30) and job.timeouts == Timeouts(round=0.3)
    snap = job.snapshot()
    assert snap.text == demo_document(prompt)
    assert any("round timeout" in (r.error or "") for r in snap.rounds) and snap.rounds[-1].recovery


def test_only_the_demo_models_costs_are_called_examples():
    from core.services.snapshot import Gauge
    from core.types import RunSpec
    from pages._status import example_prices, gauge_text

    gauge = Gauge(8192, 100, 200, 300, 0.00051339, False)
    demo, paid = RunSpec(messages=[], provider="demo"), RunSpec(messages=[], provider="deepinfra")
    assert example_prices(demo) and not example_prices(paid)
    assert "cost at example prices **$0.0005**" in gauge_text(gauge, 2, example=True)
    assert "est. cost **$0.0005**" in gauge_text(gauge, 2, example=example_prices(paid))
