"""Holes between people on a team server, closed: a person never reads another person's private run
through the rounds a page follows (``rounds_from``) or through a Replay server another person's
session started (the servers are cached for the process). Store reads on SQLite and PostgreSQL; the
pages with Streamlit's AppTest, a signed-in person given by ``AppTest.user``."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.services.store import Store
from tests.test_people import PROVIDER, SHARED
from tests.test_store_owners import ALICE, BOB, finished

APP = str(Path(__file__).resolve().parents[1] / "app.py")
SECRET = "alice's secret plan"


@pytest.fixture
def store(store_db: str | Path) -> Store:
    with Store() as opened:
        yield opened


def test_the_rounds_of_a_followed_run_are_read_only_by_who_sees_it(store: Store) -> None:
    alice, bob = store.seen_by(ALICE), store.seen_by(BOB)
    a = alice.save(finished(SECRET))
    assert bob.rounds_from(a, 0) == [] and bob.stored_rounds(a) == []
    assert [r.text for r in alice.rounds_from(a, 1)] == [f"answer to {SECRET}"]
    assert [r.text for r in store.stored_rounds(a)] == [f"answer to {SECRET}"]  # the administrator
    alice.share(a, True)
    assert [r.text for r in bob.rounds_from(a, 0)] == [f"answer to {SECRET}"]


def signed_in(sub: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.secrets["auth"] = {**SHARED, **PROVIDER}
    at.user = {"is_logged_in": True, "iss": "http://idp.test", "sub": sub, "name": sub}
    return at.run()


def test_a_replay_server_of_a_private_run_is_not_served_to_another_person(
    clean_env: dict[str, str], tmp_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTINUUM_DEMO_RATE", "0")
    with Store(tmp_db) as admin:
        private = admin.seen_by(ALICE).save(finished(SECRET))
    choice = f"replay:run:{private}"
    alice = signed_in("alice")
    saved = [o for o in alice.selectbox(key="studio_model_demo").options if o.endswith("saved run")]
    assert saved and SECRET in saved[0]  # her own run is offered to her
    alice.session_state["cfg"].models["demo"] = choice  # her choice (set as the Model list's callback does)
    alice.run()  # her session starts the replay server of her run, cached for the process
    assert not alice.exception

    bob = signed_in("bob")
    assert not [o for o in bob.selectbox(key="studio_model_demo").options if o.endswith("saved run")]
    bob.session_state["cfg"].models["demo"] = choice  # typed in the Model list: the run id leaked somehow
    bob.text_area(key="prompt").input("Anything at all")
    bob.button[[b.label for b in bob.button].index("Generate")].click().run()
    assert not bob.exception
    with Store(tmp_db) as admin:
        texts = [admin.load(r.id).text for r in admin.list_runs() if r.id != private]
    assert not [t for t in texts if SECRET in t]


def test_a_shared_run_is_not_deleted_by_another_person_nor_said_to_be(
    clean_env: dict[str, str], tmp_db: Path
) -> None:
    with Store(tmp_db) as admin:
        shared = admin.seen_by(ALICE).save(finished(SECRET))
        admin.seen_by(ALICE).share(shared, True)
    bob = signed_in("bob")
    bob.switch_page("pages/runs.py")
    bob.query_params["id"] = shared
    bob.run()
    assert next(b for b in bob.button if b.label == "Delete").disabled  # not his to delete
    bob.session_state["runs_deleting"] = shared  # the confirmation asked for all the same
    bob.run()
    bob.button(key="delete_confirm").click().run()
    assert not [s.value for s in bob.success if "Deleted" in s.value]
    assert [e.value for e in bob.error] == ["Only the person who started this run can delete it."]
    with Store(tmp_db) as admin:
        assert admin.exists(shared)
