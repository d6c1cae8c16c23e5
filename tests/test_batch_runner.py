"""The batch runner on the real demo model: faults, stop and resume, shared rate limits."""

from __future__ import annotations

import inspect
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from test_access import PUBLIC, REBOUND, Server
from test_batch_support import make_items, new_batch, prompt, runner

from core.demo import demo_document
from core.services.batch import BatchItem, ItemProgress, batch_results
from core.services.store import Store, StoreError
from core.wire.errors import ConfigError
from core.wire.guard import SHARED_ENV


def texts_are_exact(store: Store, batch_id: str) -> list[str]:
    """Ids of the items whose answer is not the fault-free document (empty when all are exact)."""
    wrong = []
    for entry in batch_results(store, batch_id):
        if entry.result is None or entry.result.text != demo_document(entry.item.prompt):
            wrong.append(entry.item.id)
    return wrong


def test_a_faulty_batch_of_500_finishes_with_every_answer_exact(
    tmp_db: Path, demo_url: Callable[..., str]
) -> None:
    url = demo_url(drop="random", fail429=20, fail5xx=20, seed=5)
    with Store() as store:
        batch_id = new_batch(store, url, make_items(500), concurrency=32)
        progress = runner(store, batch_id).run()
        assert (progress.finished, progress.failed, texts_are_exact(store, batch_id)) == (500, 0, [])


def test_the_faulty_batch_really_met_faults(tmp_db: Path, demo_url: Callable[..., str]) -> None:
    url = demo_url(drop="random", fail429=5, fail5xx=5, seed=5)
    with Store() as store:
        batch_id = new_batch(store, url, make_items(30), concurrency=8)
        progress = runner(store, batch_id).run()
        recoveries = sum(
            r.recovery for e in batch_results(store, batch_id) if e.result for r in e.result.rounds
        )
    assert (progress.rate_limits, sum(i.retries for i in progress.items) >= 10, recoveries > 0) == (
        5,
        True,
        True,
    )


def stop_after(n: int) -> tuple[list[str], Callable[[ItemProgress], None], list]:
    """An on_item callback that stops the runner (put in holder[0]) once n items finished."""
    finished: list[str] = []
    holder: list = []
    lock = threading.Lock()

    def on_item(item: ItemProgress) -> None:
        with lock:
            if item.status == "finished":
                finished.append(item.id)
            if len(finished) >= n:
                holder[0].stop()

    return finished, on_item, holder


def test_stopping_and_resuming_redoes_no_finished_item(tmp_db: Path, demo_server: str) -> None:
    with Store() as store:
        batch_id = new_batch(store, demo_server, make_items(60, tokens=600), concurrency=8)
        _, on_item, holder = stop_after(20)
        first = runner(store, batch_id, on_item=on_item)
        holder.append(first)
        stopped = first.run()
        done_before = {i.id: store.summary(i.run_id or "") for i in stopped.items if i.status == "finished"}
        ran_again: list[str] = []
        resumed = runner(store, batch_id, on_item=lambda item: ran_again.append(item.id)).run()
        unchanged = all(store.summary(s.id) == s for s in done_before.values() if s is not None)
        exact = texts_are_exact(store, batch_id)
    assert stopped.state == "stopped" and stopped.finished < 60
    assert (set(ran_again) & set(done_before), unchanged) == (set(), True)
    assert (resumed.finished, exact) == (60, [])


def test_a_stopped_item_resumes_its_own_run(tmp_db: Path, demo_server: str) -> None:
    with Store() as store:
        batch_id = new_batch(store, demo_server, make_items(24, tokens=1500), concurrency=8)
        _, on_item, holder = stop_after(4)
        first = runner(store, batch_id, on_item=on_item)
        holder.append(first)
        stopped = first.run()
        cut = {i.id: i.run_id for i in stopped.items if i.status == "stopped"}
        resumed = runner(store, batch_id).run()
        after = {i.id: i.run_id for i in resumed.items}
        runs = store.count_runs(batch_id=batch_id)
    assert cut and all(after[k] == v for k, v in cut.items())
    assert runs == 24


def test_a_finished_batch_runs_nothing_when_resumed(tmp_db: Path, demo_server: str) -> None:
    with Store() as store:
        batch_id = new_batch(store, demo_server, make_items(5))
        runner(store, batch_id).run()
        ran: list[str] = []
        progress = runner(store, batch_id, on_item=lambda item: ran.append(item.id)).run()
    assert (ran, progress.finished, progress.state) == ([], 5, "done")


def test_a_rate_limit_lowers_the_whole_batch_concurrency(tmp_db: Path, demo_url: Callable[..., str]) -> None:
    with Store() as store:
        batch_id = new_batch(store, demo_url(fail429=1), make_items(16), concurrency=8)
        batch = runner(store, batch_id)
        batch.run()
    stats = batch.limiter.stats()
    assert (stats.rate_limits, stats.lowest_limit) == (1, 4)


def test_a_failing_item_does_not_stop_the_others(tmp_db: Path, demo_server: str) -> None:
    items = [*make_items(4), BatchItem(id="bad", prompt=prompt(99), overrides={"model": "no-such-model"})]
    with Store() as store:
        batch_id = new_batch(store, demo_server, items, concurrency=2)
        progress = runner(store, batch_id).run()
    bad = next(i for i in progress.items if i.id == "bad")
    assert (progress.finished, progress.failed, bad.status, "does not exist" in (bad.error or "")) == (
        4,
        1,
        "failed",
        True,
    )


def test_item_overrides_change_only_their_item(tmp_db: Path, demo_server: str) -> None:
    items = [*make_items(2), BatchItem(id="short", prompt=prompt(7), overrides={"max_rounds": 1})]
    with Store() as store:
        batch_id = new_batch(store, demo_server, items)
        progress = runner(store, batch_id).run()
    assert [(i.id, i.stop_reason) for i in progress.items] == [
        ("item-0", "finished"),
        ("item-1", "finished"),
        ("short", "max_rounds"),
    ]


def test_a_batch_is_recorded_without_a_single_failed_write(tmp_db: Path, demo_server: str) -> None:
    with Store() as store:
        batch = runner(store, new_batch(store, demo_server, make_items(20)))
        batch.run()
    assert batch.store_errors == 0


def test_every_item_is_a_run_of_the_batch_titled_by_its_id(tmp_db: Path, demo_server: str) -> None:
    with Store() as store:
        batch_id = new_batch(store, demo_server, make_items(6))
        runner(store, batch_id).run()
        runs = store.list_runs(batch_id=batch_id)
    assert sorted(r.title for r in runs) == [f"item-{i}" for i in range(6)]


def test_progress_adds_up_tokens_and_cost(tmp_db: Path, demo_server: str) -> None:
    with Store() as store:
        batch_id = new_batch(store, demo_server, make_items(6))
        progress = runner(store, batch_id).run()
        results = [e.result for e in batch_results(store, batch_id) if e.result]
    assert progress.tokens == sum(r.completion_tokens for r in results)
    assert progress.cost == pytest.approx(sum(r.cost or 0 for r in results))


def test_concurrency_is_capped_at_the_provider_limit(tmp_db: Path) -> None:
    with Store() as store:
        batch_id = new_batch(
            store, "https://api.deepinfra.com/v1/openai", make_items(1), provider="deepinfra"
        )
        assert runner(store, batch_id, concurrency=1000).concurrency == 200


def test_a_batch_running_in_this_process_cannot_be_started_twice(
    tmp_db: Path, demo_url: Callable[..., str]
) -> None:
    with Store() as store:
        batch_id = new_batch(store, demo_url(stall=30), make_items(2), concurrency=2)
        first = runner(store, batch_id)
        first.start()
        try:
            while not all(i.run_id and store.is_active(i.run_id) for i in first.progress().items):
                first.wait(0.01)  # until both items are being recorded
            with pytest.raises(StoreError, match="still running"):
                runner(store, batch_id)
        finally:
            first.stop()
            first.wait(10)


def test_a_base_url_that_cannot_work_is_refused_at_start(tmp_db: Path) -> None:
    with Store() as store:
        batch = runner(store, new_batch(store, "ftp://example.invalid", make_items(2)))
        with pytest.raises(ConfigError, match="http"):
            batch.start()
    assert batch.progress().state == "ready"


def test_a_batch_on_a_shared_server_connects_only_to_the_checked_addresses(
    tmp_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name resolves to a public address for every check and to 127.0.0.1 when a
    connection is opened. The batch's workers refuse it there, before a byte is sent."""
    server = Server()
    monkeypatch.setenv(SHARED_ENV, "1")
    system_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host != REBOUND:
            return system_getaddrinfo(host, port, *args, **kwargs)
        connecting = any(frame.function == "connect_tcp" for frame in inspect.stack())
        address = "127.0.0.1" if connecting else PUBLIC  # PUBLIC is never dialled: the checks only read it
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    try:
        with Store() as store:
            batch_id = new_batch(store, f"http://{REBOUND}:{server.port}/v1", make_items(2), concurrency=2)
            progress = runner(store, batch_id).run()
    finally:
        server.stop()
    assert server.connections == 0
    assert progress.failed == 2
    assert all("internal address 127.0.0.1" in (item.error or "") for item in progress.items)
