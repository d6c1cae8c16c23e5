"""Batch workers: three ``python -m core batch-worker`` processes share one history (PostgreSQL, and
SQLite); one is SIGKILLed mid-way; every item is answered exactly once, as a fault-free run would.

Real processes, real HTTP to a demo model on loopback; the waits poll the history, never the clock.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.demo import demo_document, start_demo_server
from core.services.store import Store
from tests.clirun import start, wait_for
from tests.pg import is_pg, raw_rows

N = 600  # prompts (on PostgreSQL; SQLite, the one-machine history, gets SQLITE_N to keep the suite quick)
SQLITE_N = 200
TOKENS = 120  # each answer: two rounds of 60 tokens
RATE = 1500.0  # demo tokens per second per stream: an item takes ~0.1 s, so the kill lands mid-item


@pytest.fixture(scope="module")
def paced_demo() -> Iterator[str]:
    with start_demo_server(rate=RATE) as server:
        yield server.base_url


def write_prompts(path: Path, n: int) -> Path:
    rows = [json.dumps({"id": f"p{i}", "prompt": f"Write {TOKENS} tokens about thing {i}"}) for i in range(n)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def count(db: str | Path, sql: str, *params: object) -> int:
    return int(raw_rows(db, sql, params)[0][0])


def held_with_text(db: str | Path, pid: int) -> list[tuple[int, str]]:
    """(position, run id) of the items ``pid`` holds whose run has text saved already."""
    rows = raw_rows(
        db,
        "SELECT i.position, i.run_id FROM batch_items i JOIN runs r ON r.id = i.run_id"
        " WHERE i.claim_pid = ? AND r.status = 'running' AND r.characters > 0",
        (pid,),
    )
    return [(int(position), str(run_id)) for position, run_id in rows]


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """The test's processes, killed if the test ends before they do."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def test_three_workers_one_killed_every_item_done_once(
    store_db: str | Path, paced_demo: str, tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    Store().close()  # the history, created and migrated
    n = SQLITE_N if not is_pg(store_db) else N
    env = {**os.environ, "CONTINUUM_DB": str(store_db)}
    prompts, out = write_prompts(tmp_path / "prompts.jsonl", n), tmp_path / "results.jsonl"
    target = ("--provider", "demo", "--base-url", paced_demo)
    follower = start(
        "batch", str(prompts), "--workers", *target, "--max-tokens", "60", "--out", str(out), env=env
    )
    processes.append(follower)
    wait_for(
        lambda: count(store_db, "SELECT count(*) FROM batches WHERE workers = 1") == 1, "the batch", follower
    )
    workers = [
        start("batch-worker", *target, "--until-done", "--concurrency", "8", "--quiet", env=env)
        for _ in range(3)
    ]
    processes.extend(workers)
    victim = workers[0]
    done = "SELECT count(*) FROM runs WHERE status = 'finished'"
    wait_for(
        lambda: count(store_db, done) >= n // 4 and held_with_text(store_db, victim.pid), "mid-way", victim
    )
    held = held_with_text(store_db, victim.pid)  # its items in flight, with their text so far
    victim.kill()
    victim.wait(timeout=30)

    assert [finish(w)[0] for w in workers[1:]] == [0, 0]
    code, err = finish(follower)
    assert code == 0, err
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["item_id"] for r in rows) == sorted(f"p{i}" for i in range(n))  # each item once
    assert all(r["status"] == "finished" for r in rows)
    assert all(r["text"] == demo_document(r["spec"]["messages"][-1]["content"]) for r in rows)
    assert count(store_db, "SELECT count(*) FROM runs") == n  # no item was started over as a second run
    by_position = {r["position"]: r["run_id"] for r in rows}
    assert held and all(by_position[position] == run_id for position, run_id in held)  # resumed, same run
    assert count(store_db, "SELECT count(*) FROM batch_items WHERE claim_host IS NOT NULL") == 0
