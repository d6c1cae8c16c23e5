"""People in the history (migration 0008_owners): a view of the store for one person sees their own
runs, the runs shared with the team and the runs of nobody; it changes only its own. The
administrator's store (no viewer: the CLI) sees and changes everything. SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.services.store import Batches, Store, StoreError
from core.types import Round, RunResult, RunSpec

ALICE = "http://idp.test|alice"
BOB = "http://idp.test|bob"


def spec(prompt: str) -> RunSpec:
    return RunSpec(
        messages=[{"role": "user", "content": prompt}], base_url="http://127.0.0.1:9/v1", model="m"
    )


def finished(prompt: str, thread_id: str | None = None) -> RunResult:
    result = RunResult(spec=spec(prompt), rounds=[Round(1, text=f"answer to {prompt}", finish_reason="stop")])
    result.stop_reason, result.thread_id = "finished", thread_id
    return result


@pytest.fixture
def store(store_db: str | Path) -> Store:
    with Store() as opened:
        yield opened


def ids(runs: list) -> set[str]:
    return {r.id for r in runs}


def test_each_person_lists_only_their_own_runs(store: Store) -> None:
    alice, bob = store.seen_by(ALICE), store.seen_by(BOB)
    a, b = alice.save(finished("alice's secret")), bob.save(finished("bob's secret"))
    assert ids(alice.list_runs()) == {a} and alice.count_runs() == 1
    assert ids(bob.list_runs()) == {b} and bob.count_runs() == 1
    assert ids(store.list_runs()) == {a, b}  # the administrator: everything


def test_a_private_run_of_someone_else_is_not_found_by_id_or_search(store: Store) -> None:
    alice, bob = store.seen_by(ALICE), store.seen_by(BOB)
    a = alice.save(finished("alice's secret plan"))
    assert not bob.exists(a) and bob.summary(a) is None
    with pytest.raises(StoreError, match="no run"):
        bob.load(a)
    assert bob.list_runs(query=a) == [] and bob.list_runs(query="secret plan") == []
    assert bob.facets() == {"provider": [], "model": [], "status": []}
    assert alice.load(a).text == "answer to alice's secret plan"


def test_a_shared_run_is_seen_by_the_team_and_changed_by_its_person_only(store: Store) -> None:
    alice, bob = store.seen_by(ALICE), store.seen_by(BOB)
    a = alice.save(finished("for the team"))
    with pytest.raises(StoreError, match="of yours"):
        bob.share(a, True)
    alice.share(a, True)
    assert ids(bob.list_runs()) == {a} and bob.load(a).text == "answer to for the team"
    assert bob.summary(a).shared and bob.summary(a).person == ALICE
    assert not bob.may_change(a) and alice.may_change(a)
    assert not bob.delete(a)
    with pytest.raises(StoreError):
        bob.rename(a, "mine now")
    with pytest.raises(StoreError, match="not yours"):
        bob.begin_run(a, spec("resumed by bob"))
    alice.share(a, False)
    assert bob.list_runs() == [] and not bob.exists(a)


def test_runs_of_nobody_are_the_teams_and_only_the_administrator_changes_them(store: Store) -> None:
    anon = store.save(finished("from the command line"))
    alice = store.seen_by(ALICE)
    assert ids(alice.list_runs()) == {anon} and alice.summary(anon).person is None
    assert not alice.may_change(anon) and not alice.delete(anon)
    assert store.delete(anon)


def test_a_run_a_view_records_is_its_persons(store: Store) -> None:
    alice = store.seen_by(ALICE)
    run_id = alice.create_run(spec("recorded live"))
    assert store.summary(run_id).person == ALICE
    assert store.seen_by(BOB).summary(run_id) is None


def test_threads_and_edits_keep_to_what_the_viewer_sees(store: Store) -> None:
    alice, bob = store.seen_by(ALICE), store.seen_by(BOB)
    first = alice.save(finished("first", thread_id="t-1"))
    second = bob.save(finished("second", thread_id="t-1"))
    assert [r.id for r in alice.thread("t-1")] == [first]
    assert bob.threads(["t-1"]) == {"t-1": [second]}
    assert bob.thread_of(first) is None and alice.thread_of(first) == "t-1"
    assert [r.id for r in store.thread("t-1")] == [first, second]


def test_batches_and_their_runs_belong_to_the_person_who_made_them(store: Store) -> None:
    alice, bob = store.seen_by(ALICE), store.seen_by(BOB)
    batch_id = Batches(alice).create([{"id": "1", "prompt": "p"}], settings={}, title="alice's batch")
    run_id = store.create_run(spec("an item"), batch_id=batch_id)  # a worker with no viewer
    assert store.summary(run_id).person == ALICE
    assert [b.record.id for b in Batches(alice).list()] == [batch_id]
    assert Batches(bob).list() == [] and Batches(bob).items(batch_id) == []
    assert Batches(bob).latest_for_source("") is None
    with pytest.raises(StoreError, match="no batch"):
        Batches(bob).get(batch_id)
    assert not Batches(bob).delete(batch_id)
    assert len(Batches(alice).items(batch_id)) == 1
    assert Batches(alice).delete(batch_id)


def test_a_batch_of_nobody_is_the_administrators(store: Store) -> None:
    batch_id = Batches(store).create([{"id": "1", "prompt": "p"}], settings={}, title="from the CLI")
    run_id = store.create_run(spec("an item"), batch_id=batch_id)
    assert Batches(store.seen_by(ALICE)).list() == [] and [b.record.id for b in Batches(store).list()] == [
        batch_id
    ]
    assert store.seen_by(ALICE).exists(run_id)  # its runs are the team's


def test_a_view_of_a_view_sees_as_its_own_viewer(store: Store) -> None:
    alice = store.seen_by(ALICE)
    run_id = alice.save(finished("one connection"))
    assert store.seen_by(None).exists(run_id) and alice.seen_by(BOB).viewer == BOB


def test_a_persons_name_is_kept_with_the_runs_and_batches_they_start(store: Store) -> None:
    alice = store.seen_by(ALICE, name="Alice Martin")
    saved, live = alice.save(finished("named")), alice.create_run(spec("named live"))
    alice.share(saved, True)
    bob = store.seen_by(BOB, name="Bob Chen")
    assert {(r.id, r.person_name) for r in bob.list_runs()} == {(saved, "Alice Martin")}
    assert store.summary(live).person_name == "Alice Martin"
    batch_id = Batches(alice).create([{"id": "1", "prompt": "p"}], settings={}, title="named")
    item = store.create_run(spec("an item"), batch_id=batch_id)  # a worker with no viewer: the batch's
    assert store.summary(item).person_name == "Alice Martin"
    assert bob.summary(bob.create_run(spec("bob's"), batch_id=batch_id)).person_name == "Bob Chen"
    anon = store.seen_by(None, name="Alice Martin").save(finished("nobody's"))  # no person, no name
    assert store.summary(anon).person_name is None and store.seen_by(ALICE).viewer_name is None
