"""The raw-server fault campaign: every case of issue 10 at many offsets, each ending classified.

Shared by ``tests/test_raw_campaign.py`` (a few offsets per case) and
``bench/bench_raw_faults.py`` (50+). A *case* turns an offset index ``i`` into a
server setup (faults, window, wording) and a run spec; offsets vary the request
the fault hits, the tokens or bytes before it, the per-round ``max_tokens``,
the window and, every fifth run, the strategy (``completions`` with ChatML).

Every ending is one of:

- ``exact``: the answer is the fault-free text D, character for character;
- ``kept``: the run stopped with a clear reason (``error``, ``context_exhausted``,
  ``repetition``…) and the answer is a beginning of D;
- ``WRONG``: the answer is not a beginning of D, or the run ended ``finished``,
  ``max_rounds`` or ``target_reached`` with less than D.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rawdocument import Document, DocumentHandler, Fault
from rawserver import RawServer

from core import RetryPolicy, RunFinished, RunSpec, Timeouts, run

DOC = Document(seed=11, words=1200)
OTHER = Document(seed=12, words=1200)  # what a server opening a new turn with other text writes
POLICY = RetryPolicy(base=0.01, cap=0.05, max_wait=0.05)
TIMEOUTS = Timeouts(connect=5, idle=5, round=30)
SILENT_ENDINGS = ("finished", "max_rounds", "target_reached")
AFTER_ALL = 10**9


@dataclass
class Setup:
    faults: list[Fault] = field(default_factory=list)
    handler: dict[str, Any] = field(default_factory=dict)  # DocumentHandler keywords
    spec: dict[str, Any] = field(default_factory=dict)  # RunSpec keywords


@dataclass
class Ending:
    case: str
    offset: int
    verdict: str  # exact | kept | WRONG
    stop_reason: str
    chars: int  # characters of the answer
    requests: int
    fired: int  # requests the fault was injected into
    mismatches: int  # requests whose prefill was not a beginning of D (an engine bug)
    seconds: float
    error: str = ""


def _max_tokens(i: int) -> int:
    return (64, 96, 128, 160, 200)[i % 5]


def _request(i: int) -> int:
    return 1 + (i * 7) % 5  # requests 1-5: the first round, or a continuation


def _strategy(i: int) -> dict[str, Any]:
    return {"strategy": "completions", "template": "chatml"} if i % 5 == 4 else {}


def _token_fault(kind: str, persistent: bool) -> Callable[[int], Setup]:
    def setup(i: int) -> Setup:
        after = (i * 13) % (_max_tokens(i) + 1)  # 0 .. max_tokens: before any text up to the finish
        on: Any = range(_request(i), AFTER_ALL) if persistent else _request(i)
        return Setup([Fault(kind, on=on, after=after)], spec={"max_tokens": _max_tokens(i), **_strategy(i)})

    return setup


def _byte_fault(kind: str) -> Callable[[int], Setup]:
    def setup(i: int) -> Setup:
        at_byte = (i * 7919) % (_max_tokens(i) * 150)  # a token is ~150 bytes of chunked SSE
        fault = Fault(kind, on=_request(i), at_byte=at_byte)
        return Setup([fault], spec={"max_tokens": _max_tokens(i), **_strategy(i)})

    return setup


def _restart(kind: str) -> Callable[[int], Setup]:
    def setup(i: int) -> Setup:
        fault = Fault(kind, on=range(2 + i % 4, AFTER_ALL))
        return Setup([fault], {"other": OTHER}, {"max_tokens": _max_tokens(i), **_strategy(i)})

    return setup


def _usage(kind: str) -> Callable[[int], Setup]:
    def setup(i: int) -> Setup:
        # with a known window: a count of 10**12 trusted would end the run at once
        return Setup(
            [Fault(kind)], spec={"max_tokens": _max_tokens(i), "context_window": 32_768, **_strategy(i)}
        )

    return setup


def _window(wording: str) -> Callable[[int], Setup]:
    def setup(i: int) -> Setup:
        window = 300 + (i * 173) % 800  # the overflow comes at a different round each time
        return Setup(
            handler={"window": window, "overflow": wording},
            spec={"max_tokens": _max_tokens(i), **_strategy(i)},
        )

    return setup


CASES: dict[str, Callable[[int], Setup]] = {
    **{
        f: _token_fault(f, False) for f in ("event_error", "openrouter_error", "finish_error", "openai_error")
    },
    "llamacpp_error_field": _token_fault("llamacpp_error_field", False),
    **{f"{f}_persistent": _token_fault(f, True) for f in ("event_error", "openrouter_error", "finish_error")},
    "restart_same": _restart("new_turn"),
    "restart_other": _restart("new_turn_other"),
    "usage_negative": _usage("usage_negative"),
    "usage_huge": _usage("usage_huge"),
    "usage_gateway": _usage("usage_gateway"),
    "empty_stream": _window("empty"),
    "empty_done": _window("empty_done"),
    "reset_at_byte": _byte_fault("reset_at"),
    "close_mid_chunk": _byte_fault("close_at"),
    **{
        f"overflow_{w}": _window(w)
        for w in ("deepinfra", "deepinfra500", "deepinfra_tokens", "vllm", "openrouter", "llamacpp")
    },
}


def classify(text: str, stop_reason: str, want: str = DOC.text) -> str:
    if not want.startswith(text):
        return "WRONG"
    if text == want:
        return "exact"
    return "WRONG" if stop_reason in SILENT_ENDINGS else "kept"


def run_case(case: str, offset: int) -> Ending:
    setup = CASES[case](offset)
    with RawServer(DocumentHandler(DOC, faults=setup.faults, **setup.handler)) as server:
        spec = RunSpec(
            messages=[{"role": "user", "content": "Write the document."}],
            provider="custom",
            base_url=server.base_url,
            model="raw-model",
            max_rounds=300,
            **setup.spec,
        )
        start = time.monotonic()
        events = list(run(spec, retry=POLICY, timeouts=TIMEOUTS))
        seconds = time.monotonic() - start
        requests = server.requests
    done = events[-1]
    assert isinstance(done, RunFinished)
    text = done.result.text
    return Ending(
        case=case,
        offset=offset,
        verdict=classify(text, done.stop_reason),
        stop_reason=done.stop_reason,
        chars=len(text),
        requests=len(requests),
        fired=sum(bool(set(r.notes) - {"mismatch"}) for r in requests),
        mismatches=sum("mismatch" in r.notes for r in requests),
        seconds=seconds,
        error=done.error.message[:200] if done.error else "",
    )
