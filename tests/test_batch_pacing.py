"""Paced reads: a batch reads a trickling stream in gulps, and the bytes are the same."""

from __future__ import annotations

from collections.abc import Callable

import httpcore
import httpx

from core.demo import demo_document
from core.services.batch.pacing import paced_transport
from core.wire.client import Client

PROMPT = "Write 300 tokens about tides"


class CountingBackend(httpcore.SyncBackend):
    """The standard backend, counting the reads of its streams."""

    def __init__(self) -> None:
        self.reads = 0

    def connect_tcp(self, *args, **kwargs) -> httpcore.NetworkStream:  # type: ignore[no-untyped-def]
        stream = super().connect_tcp(*args, **kwargs)
        backend = self
        read = stream.read

        def counted(max_bytes: int, timeout: float | None = None) -> bytes:
            backend.reads += 1
            return read(max_bytes, timeout)

        stream.read = counted  # type: ignore[method-assign]
        return stream


def stream_text(base_url: str, interval: float) -> tuple[str, int]:
    counter = CountingBackend()
    transport = paced_transport(httpx.create_ssl_context(), interval, network=counter)
    with Client(base_url, transport=transport) as client:
        body = {"model": "demo", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 1000}
        text = "".join(d.content for d in client.stream_chat(body))
    return text, counter.reads


def test_a_trickling_stream_is_read_in_gulps_and_loses_nothing(demo_url: Callable[..., str]) -> None:
    text, reads = stream_text(demo_url(rate=300), interval=0.1)
    assert (text, reads < 300 / 5) == (demo_document(PROMPT), True)


def test_pacing_saves_reads_over_reading_as_bytes_come(demo_url: Callable[..., str]) -> None:
    _, paced = stream_text(demo_url(rate=300), interval=0.1)
    _, eager = stream_text(demo_url(rate=300), interval=0)
    assert eager > 2 * paced
