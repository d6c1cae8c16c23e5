"""Who signs in on a team server (core.services.people): the [auth] table read, a person named by
their identity provider's issuer and subject, sign-in standing in for the access password, and the
app (AppTest) showing nothing but its sign-in page to a session nobody signed in to."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.services.access import needs_password
from core.services.people import display_name, person_id, providers, sign_in_configured
from tests.test_access import sent  # everything the elements on screen would send to the browser

ROOT = Path(__file__).resolve().parents[1]
SHARED = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "cookie-SENTINEL-" + "c" * 16,
}
PROVIDER = {
    "client_id": "continuum",
    "client_secret": "client-SENTINEL-s",
    "server_metadata_url": "https://id.example.com/.well-known/openid-configuration",
}


def test_sign_in_needs_the_shared_settings_and_one_whole_provider() -> None:
    assert providers({"auth": {**SHARED, **PROVIDER}}) == [None]
    assert providers({"auth": {**SHARED, "okta": PROVIDER, "half": {"client_id": "x"}}}) == ["okta"]
    assert not sign_in_configured({"auth": PROVIDER})  # no redirect_uri / cookie_secret
    assert not sign_in_configured({}) and not sign_in_configured(None)
    assert not sign_in_configured({"auth": "not a table"})


def test_a_person_is_the_issuer_and_subject_never_the_email() -> None:
    claims = {"iss": "https://id.example.com", "sub": "00u1", "email": "ann@example.com", "name": "Ann"}
    assert person_id(claims) == "https://id.example.com|00u1"
    assert person_id({**claims, "email": "someone.else@example.com"}) == person_id(claims)
    assert person_id({"email": "ann@example.com"}) is None
    assert display_name(claims) == "Ann" and display_name({"sub": "00u1"}) == "00u1"


def test_on_a_team_server_sign_in_is_the_gate_unless_a_password_is_set_too() -> None:
    key = {"DEEPINFRA_API_KEY": "sk-x"}
    team = {**key, "auth": {**SHARED, **PROVIDER}}
    assert needs_password("0.0.0.0", key, {})  # exposed with a server key: a password, or no serving
    assert not needs_password("0.0.0.0", team, {})
    assert needs_password("0.0.0.0", {**team, "access_password": "p"}, {})


def test_with_sign_in_configured_a_session_nobody_signed_in_to_sees_only_the_sign_in_page(
    tmp_db: Path,
) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.secrets["auth"] = {**SHARED, **PROVIDER}
    at.run()
    at.run()  # the first script run of a process may go through Streamlit's old pages/ mode
    assert [b.label for b in at.button] == ["Sign in"]
    assert not at.text_area and not at.sidebar.markdown  # no Studio, no sidebar
    on_screen = sent(at)
    assert "Sign in" in on_screen
    assert not [s for s in (SHARED["cookie_secret"], PROVIDER["client_secret"]) if s in on_screen]


def test_without_sign_in_nothing_changes(tmp_db: Path) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
    at.run()
    assert any(t.label == "Prompt" for t in at.text_area) and "Sign in" not in [b.label for b in at.button]
