"""The raw-server fault campaign at a few offsets per case (the full one: bench/bench_raw_faults.py).

Every case of issue 10 (error events in three forms and two more, restarts,
absurd usage, empty streams, resets and clean closes at byte offsets, six
overflow wordings) at five offsets each: no run ends ``finished``/``max_rounds``
with text a fault put there; every one ends with the fault-free text or a clear
stop with the good text kept.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from rawcampaign import CASES, Ending, run_case

OFFSETS = 5


@pytest.fixture(scope="module")
def endings() -> list[Ending]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda job: run_case(*job), [(c, i) for c in CASES for i in range(OFFSETS)]))


def test_no_run_ends_with_text_a_fault_put_there(endings: list[Ending]) -> None:
    wrong = [
        (e.case, e.offset, e.stop_reason, e.chars, e.error[:80]) for e in endings if e.verdict == "WRONG"
    ]
    assert not wrong


def test_every_prefill_sent_was_a_beginning_of_the_document(endings: list[Ending]) -> None:
    # (a run already WRONG sends its wrong text back as the prefill: counted there)
    assert [(e.case, e.offset) for e in endings if e.mismatches and e.verdict != "WRONG"] == []


def test_every_case_injected_its_fault(endings: list[Ending]) -> None:
    fired = Counter(e.case for e in endings if e.fired)
    assert {case: fired[case] > 0 for case in CASES} == dict.fromkeys(CASES, True), fired


def test_faults_a_run_can_recover_from_end_with_the_exact_text(endings: list[Ending]) -> None:
    recoverable = (
        *("event_error", "openrouter_error", "finish_error", "openai_error"),  # once
        *("usage_negative", "usage_huge", "usage_gateway", "reset_at_byte", "close_mid_chunk"),
    )
    exact = Counter(e.case for e in endings if e.case in recoverable and e.verdict == "exact")
    assert exact == dict.fromkeys(recoverable, OFFSETS), exact
