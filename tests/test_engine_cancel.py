"""Cancel from another thread, and a consumer that stops iterating early."""

from __future__ import annotations

import threading
from typing import Any

import httpx
from test_engine_support import finish, spec_for

from core.continuation.engine import RetryPolicy, run
from core.demo import demo_document
from core.types import CancelToken, Delta, Event, RoundStarted, RunFinished, RunSpec
from core.wire.client import Client

PROMPT = "Write 2000 tokens about stopping"


class Consumer(threading.Thread):
    """Runs the engine in a thread and signals once ``ready(event)`` says so."""

    def __init__(self, spec: RunSpec, ready: Any, **kw: Any) -> None:
        super().__init__(daemon=True)
        self.spec, self.ready, self.kw = spec, ready, kw
        self.cancel = CancelToken()
        self.signal = threading.Event()
        self.events: list[Event] = []

    def run(self) -> None:
        for event in run(self.spec, cancel=self.cancel, **self.kw):
            self.events.append(event)
            if self.ready(event):
                self.signal.set()

    def cancel_when_ready(self) -> RunFinished:
        self.start()
        assert self.signal.wait(timeout=10)
        self.cancel.cancel()
        self.join(timeout=5)
        assert not self.is_alive(), "cancel did not end the run"
        return finish(self.events)


def test_cancel_ends_a_run_stalled_before_its_first_token(demo_url) -> None:
    spec = spec_for(demo_url(stall=60), PROMPT, max_tokens=500)
    done = Consumer(spec, lambda e: isinstance(e, RoundStarted)).cancel_when_ready()
    assert done.stop_reason == "cancelled"


def test_cancel_mid_stream_keeps_the_text_received(demo_url) -> None:
    spec = spec_for(demo_url(rate=400), PROMPT, max_tokens=4000)
    deltas: list[str] = []

    def ready(event: Event) -> bool:
        if isinstance(event, Delta):
            deltas.append(event.text)
        return len(deltas) >= 20

    done = Consumer(spec, ready).cancel_when_ready()
    assert done.stop_reason == "cancelled"
    assert done.result.text == "".join(deltas)
    assert len(deltas) >= 20 and demo_document(PROMPT).startswith(done.result.text)


def test_cancel_after_some_rounds_keeps_them_while_the_next_round_stalls(demo_url) -> None:
    first = finish(list(run(spec_for(demo_url(), PROMPT, max_tokens=200, max_rounds=2)))).result
    spec = spec_for(demo_url(stall=60), PROMPT, max_tokens=200)
    kept = first.text
    done = Consumer(spec, lambda e: isinstance(e, RoundStarted), resume=first).cancel_when_ready()
    assert done.stop_reason == "cancelled"
    assert done.result.text == kept


def test_cancel_interrupts_a_retry_wait(demo_url) -> None:
    policy = RetryPolicy(max_wait=60.0)
    spec = spec_for(demo_url(fail429=1, retry_after=60), PROMPT)
    done = Consumer(spec, lambda e: type(e).__name__ == "Retrying", retry=policy).cancel_when_ready()
    assert done.stop_reason == "cancelled"


class ClosingRecorder(httpx.BaseTransport):
    """A real HTTP transport that notes when each response body is closed."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.closed: list[bool] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        index = len(self.closed)
        self.closed.append(False)
        inner_stream = response.stream
        recorder = self

        class Body(httpx.SyncByteStream):
            def __iter__(self):  # type: ignore[no-untyped-def]
                yield from inner_stream  # type: ignore[misc]

            def close(self) -> None:
                recorder.closed[index] = True
                inner_stream.close()  # type: ignore[attr-defined]

        return httpx.Response(
            response.status_code, headers=response.headers, stream=Body(), extensions=response.extensions
        )


def test_closing_the_generator_early_closes_the_stream(demo_url) -> None:
    url = demo_url(rate=200)
    transport = ClosingRecorder()
    client = Client(url, transport=transport)
    events = run(spec_for(url, PROMPT, max_tokens=4000), client=client)
    for event in events:
        if isinstance(event, Delta):
            break
    assert transport.closed == [False]
    events.close()
    assert transport.closed == [True]
    client.close()
