"""A small fault campaign (the full one is bench/bench_faults.py): every answer exact through every fault.

48 runs on 8 threads against a demo model whose every other request, on
average, gets a random fault: cuts at random bytes, 429s with and without
Retry-After, 500/502/503, stalls past the idle timeout, keep-alive spans past
it, slow drips.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from core import Retrying, RetryPolicy, RunFinished, RunSpec, Timeouts, run
from core.demo import DemoServer, behaviour_url, demo_document, start_demo_server

RUNS = 48
KINDS = ("cut", "429", "429_bare", "500", "502", "503", "stall", "keepalive", "drip")
POLICY = RetryPolicy(max_attempts=6, base=0.02, cap=0.2, max_wait=1.0)
TIMEOUTS = Timeouts(connect=5, idle=0.5, round=30)
STALL = 0.8  # chaos stalls and keep-alive spans: longer than the idle timeout
RETRY_AFTER = 0.15
# (behaviours, spec fields): mostly the default prefill, some echoing prefix servers and a reasoner
FLAVOURS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({}, {}),
    ({}, {}),
    ({"prefill": "echo"}, {"strategy": "prefix"}),
    ({}, {"model": "demo-reasoner"}),
]


@pytest.fixture(scope="module")
def campaign() -> Iterator[tuple[DemoServer, list[tuple[RunSpec, RunFinished, list[Retrying]]]]]:
    with start_demo_server(rate=0) as server:

        def one(i: int) -> tuple[RunSpec, RunFinished, list[Retrying]]:
            behaviours, fields = FLAVOURS[i % len(FLAVOURS)]
            url = behaviour_url(
                server.base_url,
                k=f"campaign-{i}",
                chaos=0.5,
                chaos_seed=7,
                chaos_stall=STALL,
                retry_after=RETRY_AFTER,
                **behaviours,
            )
            prompt = f"Write {(150, 400, 700)[i % 3]} tokens about campaign run {i}"
            spec = RunSpec(
                messages=[{"role": "user", "content": prompt}],
                base_url=url,
                max_tokens=(64, 128)[i % 2],
                max_rounds=500,
                **fields,
            )
            events = list(run(spec, timeouts=TIMEOUTS, retry=POLICY))
            done = events[-1]
            assert isinstance(done, RunFinished)
            return spec, done, [e for e in events if isinstance(e, Retrying)]

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(one, range(RUNS)))
        yield server, results


def test_every_answer_is_exact_character_for_character(campaign) -> None:
    _, results = campaign
    wrong = []
    for spec, done, _ in results:
        want = demo_document(spec.prompt)
        if (done.stop_reason, done.result.text) != ("finished", want):
            wrong.append((spec.base_url, done.stop_reason, done.error, len(done.result.text), len(want)))
    assert not wrong


def test_every_fault_kind_was_injected(campaign) -> None:
    server, _ = campaign
    faults = server.fault_counts()["faults"]
    assert {kind: faults.get(kind, 0) > 0 for kind in KINDS} == dict.fromkeys(KINDS, True), faults


def test_faults_were_survived_by_retries_and_recovery_rounds(campaign) -> None:
    server, results = campaign
    faults = server.fault_counts()["faults"]
    retries = sum(r.retries for _, done, _ in results for r in done.result.rounds)
    recoveries = sum(r.recovery for _, done, _ in results for r in done.result.rounds)
    status_faults = sum(faults.get(kind, 0) for kind in ("429", "429_bare", "500", "502", "503"))
    assert retries >= status_faults > 0  # every status fault was retried (and cuts before text too)
    assert recoveries > 0


def test_every_retry_after_was_honoured_exactly(campaign) -> None:
    _, results = campaign
    waits = Counter(e.wait for _, _, retrying in results for e in retrying if "asks to wait" in e.reason)
    assert waits and set(waits) == {RETRY_AFTER}


def test_every_stall_ended_in_an_idle_timeout_and_a_retry_or_recovery(campaign) -> None:
    server, results = campaign
    idle = sum(
        "idle timeout" in message
        for _, done, retrying in results
        for message in [e.reason for e in retrying] + [r.error or "" for r in done.result.rounds]
    )
    # not == : on a loaded machine a starved server thread can make a real idle timeout of its own
    assert idle >= server.fault_counts()["faults"]["stall"] > 0
