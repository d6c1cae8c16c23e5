"""People on a team server: two people sign in through a real OpenID Connect identity provider
(``oidc-provider-mock``, a server on loopback) with Streamlit's ``st.login``, each in a browser
context of their own, and neither sees the other's private runs or batches — on the Runs page,
in Inspect, in Batch, or by URL — while a run shared with the team is seen by both.

The app reads its ``[auth]`` table from a secrets file in a temporary folder, named with
Streamlit's public ``--secrets.files`` option (the repository's ``.streamlit/`` is not touched).
Streamlit's docs: ``redirect_uri`` is the app's URL with ``/oauth2callback``, ``http://localhost``
for local development; Authlib allows plain HTTP to a loopback identity provider.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import expect

from core.services.store import Batches, Store
from tests.e2e.conftest import (
    WAIT,
    after_run,
    drawn,
    free_port,
    idle,
    shot,
    start_app,
    stop_app,
    wait_healthy,
)

PEOPLE = {
    "alice": {"sub": "alice", "name": "Alice Martin", "email": "alice@example.com"},
    "bob": {"sub": "bob", "name": "Bob Chen", "email": "bob@example.com"},
}
MARK = secrets.token_hex(4)
ALICE_PRIVATE, ALICE_SHARED, BOB_PRIVATE = (
    f"{who}{MARK}" for who in ("ALICEPRIVATE", "ALICESHARED", "BOBPRIVATE")
)


@dataclass(frozen=True)
class Team:
    url: str  # the app, as http://localhost:PORT (the redirect_uri's origin, where the cookie is set)
    db: Path
    log: Path  # the app's log
    secrets: tuple[str, str]  # cookie_secret, client_secret: never shown, never logged


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    tmp = tmp_path_factory.mktemp("people")
    idp_port, app_port = free_port(), free_port()
    claims = [arg for person in PEOPLE.values() for arg in ("--user-claims", json.dumps(person))]
    idp_log = (tmp / "idp.log").open("wb")
    idp = subprocess.Popen(
        [sys.executable, "-m", "oidc_provider_mock", "--port", str(idp_port), *claims],
        stdout=idp_log,
        stderr=subprocess.STDOUT,
    )
    idp_url, discovery = f"http://127.0.0.1:{idp_port}", "/.well-known/openid-configuration"
    metadata = idp_url + discovery
    cookie_secret, client_secret = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    (tmp / "secrets.toml").write_text(
        "[auth]\n"
        f'redirect_uri = "http://localhost:{app_port}/oauth2callback"\n'
        f'cookie_secret = "{cookie_secret}"\n'
        'client_id = "continuum"\n'
        f'client_secret = "{client_secret}"\n'
        f'server_metadata_url = "{metadata}"\n',
        encoding="utf-8",
    )
    app = None
    try:
        wait_healthy(idp_url, idp, path=discovery)
        app, _ = start_app(
            tmp, demo_rate="0", port=app_port, args=["--secrets.files", str(tmp / "secrets.toml")]
        )
        yield Team(
            url=f"http://localhost:{app_port}",
            db=tmp / "e2e.sqlite3",
            log=tmp / "streamlit.log",
            secrets=(cookie_secret, client_secret),
        )
    finally:
        if app is not None:
            stop_app(app)
        idp.terminate()
        idp.wait(10)


def sign_in(browser, team: Team, who: str):  # type: ignore[no-untyped-def]
    """A browser context of its own, signed in as ``who`` through the identity provider's form."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(WAIT)
    page = context.new_page()
    page.goto(team.url)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name=who, exact=True).click()  # the provider's "predefined users"
    expect(page.get_by_test_id("stSidebar")).to_contain_text(f"Signed in as {PEOPLE[who]['name']}")
    page.get_by_label("Prompt", exact=True).wait_for()
    return page


def generate(page, prompt: str) -> None:
    idle(page)
    page.get_by_label("Prompt", exact=True).fill(prompt)
    page.get_by_role("button", name="Generate").click()
    page.locator(".st-key-clear_run").wait_for()  # "New run": the run has ended
    idle(page)


def run_of(team: Team, marker: str) -> str:
    """The id of the run whose prompt holds ``marker`` (the administrator's view: the database)."""
    with Store(team.db) as store:
        (found,) = store.list_runs(query=marker)
        return found.id


def runs_page(page, team: Team, rows: int) -> str:
    """The Runs page's table once it shows ``rows`` runs: the text of its cells (the grid's
    accessible table; the grid itself is drawn on a canvas)."""
    page.goto(f"{team.url}/runs")
    table = page.get_by_test_id("stDataFrame").locator("table[role=grid]")
    expect(table).to_have_attribute("aria-rowcount", str(rows + 1))
    drawn(page)
    return table.inner_text()


def owner_of(page, marker: str) -> str:
    """The Owner cell of the Runs table's row whose run holds ``marker`` (see :func:`runs_page`)."""
    table = page.get_by_test_id("stDataFrame").locator("table[role=grid]")
    header = table.locator("tr").first.locator("th, td").all_inner_texts()
    row = table.locator("tr", has_text=marker).locator("th, td").all_inner_texts()
    return row[header.index("Owner")].strip()


def shows_nothing_of(page, marker: str) -> None:
    idle(page)
    assert marker not in page.content()


def test_two_people_see_their_own_runs_and_the_shared_one_only(browser, team: Team) -> None:
    alice = sign_in(browser, team, "alice")
    shot(alice, "people-alice-signed-in", full_page=False)
    generate(alice, f"Write about 200 tokens on {ALICE_PRIVATE}.")
    alice.get_by_role("button", name="New run").click()
    generate(alice, f"Write about 200 tokens on {ALICE_SHARED}.")
    bob = sign_in(browser, team, "bob")
    generate(bob, f"Write about 200 tokens on {BOB_PRIVATE}.")
    private_a, shared_a, private_b = (run_of(team, m) for m in (ALICE_PRIVATE, ALICE_SHARED, BOB_PRIVATE))
    with Store(team.db) as store:  # a batch of Alice's, made as the Batch page makes one
        alice_person = store.summary(private_a).person
        assert alice_person and alice_person.endswith("|alice")
        batch_id = Batches(store.seen_by(alice_person)).create(
            [{"id": "1", "prompt": "p"}], settings={}, title=MARK
        )

    alice.goto(f"{team.url}/runs?id={shared_a}")  # Alice shares one run with the team
    toggle = alice.get_by_role("switch", name="Shared with the team")
    expect(toggle).not_to_be_checked()
    after_run(alice, lambda: alice.get_by_text("Shared with the team").click())
    expect(toggle).to_be_checked()
    shot(alice, "people-alice-shares", full_page=False)

    seen_by_alice = runs_page(alice, team, rows=2)
    assert (
        ALICE_PRIVATE in seen_by_alice and ALICE_SHARED in seen_by_alice and BOB_PRIVATE not in seen_by_alice
    )
    shot(alice, "people-alice-runs")
    seen_by_bob = runs_page(bob, team, rows=2)
    assert BOB_PRIVATE in seen_by_bob and ALICE_SHARED in seen_by_bob and ALICE_PRIVATE not in seen_by_bob
    owners = {marker: owner_of(bob, marker) for marker in (ALICE_SHARED, BOB_PRIVATE)}
    assert owners == {ALICE_SHARED: "Alice Martin", BOB_PRIVATE: "you"}  # the Owner column
    shot(bob, "people-bob-runs")

    bob.goto(f"{team.url}/runs?id={private_a}")  # by URL: not found, and none of its text
    expect(bob.get_by_text("That run is no longer in the history.")).to_be_visible()
    shows_nothing_of(bob, ALICE_PRIVATE)
    bob.goto(f"{team.url}/inspect?id={private_a}")
    bob.get_by_role("tab", name="Seams").wait_for()
    expect(bob.get_by_text("The run asked for is not in your history")).to_be_visible()  # said, not hidden
    shows_nothing_of(bob, ALICE_PRIVATE)
    bob.goto(f"{team.url}/runs?id={shared_a}")  # the shared run: Bob reads it, cannot change it
    expect(bob.get_by_test_id("stMain")).to_contain_text("Shared with the team by Alice Martin.")
    expect(bob.get_by_role("button", name="Delete")).to_be_disabled()
    shot(bob, "people-bob-reads-the-shared-run", full_page=False)
    alice.goto(f"{team.url}/runs?id={private_b}")
    expect(alice.get_by_text("That run is no longer in the history.")).to_be_visible()
    shows_nothing_of(alice, BOB_PRIVATE)

    bob.goto(f"{team.url}/batch?batch={batch_id}")  # Alice's batch: not Bob's, not even by URL
    bob.get_by_role("button", name="Start").wait_for()
    shows_nothing_of(bob, MARK)
    alice.goto(f"{team.url}/batch")
    alice.get_by_text("Earlier batches").click()
    expect(alice.get_by_role("button", name=MARK)).to_be_visible()

    alice.get_by_role("button", name="Sign out").click()  # Streamlit ends the session at the provider too
    alice.get_by_role("button", name="End session").click()  # the provider's page, back to the app
    expect(alice.get_by_role("button", name="Sign in")).to_be_visible()
    assert "Signed in as" not in alice.content()
    seen = [alice.content(), bob.content(), team.log.read_text(encoding="utf-8", errors="replace")]
    assert not [secret for secret in team.secrets for text in seen if secret in text]
    shot(alice, "people-alice-signed-out", full_page=False)
