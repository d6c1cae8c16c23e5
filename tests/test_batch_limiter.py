"""The batch's shared concurrency: AIMD limiter, and the transport hook that holds its slots."""

from __future__ import annotations

import threading

import httpx

from core.services.batch import AdaptiveLimiter, LimitedTransport
from core.types import CancelToken


def fill(limiter: AdaptiveLimiter, n: int) -> list:
    slots = [limiter.acquire(timeout=0) for _ in range(n)]
    assert all(slots)
    return slots


# ---------------------------------------------------------------- limiter


def test_no_slot_beyond_the_limit() -> None:
    limiter = AdaptiveLimiter(3)
    fill(limiter, 3)
    assert limiter.acquire(timeout=0) is None


def test_a_released_slot_can_be_taken_again() -> None:
    limiter = AdaptiveLimiter(1)
    (slot,) = fill(limiter, 1)
    limiter.release(slot)
    assert limiter.acquire(timeout=0) is not None


def test_a_rate_limit_halves_the_limit_for_every_caller() -> None:
    limiter = AdaptiveLimiter(8)
    slots = fill(limiter, 4)
    limiter.rate_limited(slots[0])
    assert (limiter.limit, limiter.acquire(timeout=0)) == (4, None)  # 4 in flight: nobody else gets one


def test_a_burst_of_rate_limits_halves_only_once() -> None:
    limiter = AdaptiveLimiter(16)
    slots = fill(limiter, 10)
    for slot in slots:
        limiter.rate_limited(slot)
    assert (limiter.limit, limiter.stats().rate_limits) == (8, 10)


def test_a_rate_limit_after_the_decrease_halves_again() -> None:
    limiter = AdaptiveLimiter(16)
    (first,) = fill(limiter, 1)
    limiter.rate_limited(first)
    limiter.release(first, ok=False)
    (second,) = fill(limiter, 1)
    limiter.rate_limited(second)
    assert limiter.limit == 4


def test_the_limit_never_falls_below_one() -> None:
    limiter = AdaptiveLimiter(2)
    for _ in range(5):
        (slot,) = fill(limiter, 1)
        limiter.rate_limited(slot)
        limiter.release(slot, ok=False)
    assert limiter.limit == 1


def test_successes_grow_the_limit_back_by_one() -> None:
    limiter = AdaptiveLimiter(8, increase_after=3)
    (slot,) = fill(limiter, 1)
    limiter.rate_limited(slot)
    limiter.release(slot, ok=False)
    for _ in range(3):
        (slot,) = fill(limiter, 1)
        limiter.release(slot)
    assert limiter.limit == 5


def test_the_limit_never_grows_past_the_ceiling() -> None:
    limiter = AdaptiveLimiter(2, increase_after=1)
    for _ in range(10):
        (slot,) = fill(limiter, 1)
        limiter.release(slot)
    assert limiter.limit == 2


def test_successes_from_before_a_decrease_do_not_count() -> None:
    limiter = AdaptiveLimiter(8, increase_after=1)
    old, new = fill(limiter, 2)
    limiter.rate_limited(new)
    limiter.release(old)  # granted before the 429: says nothing about the new limit
    assert limiter.limit == 4


def test_cancelling_wakes_a_caller_waiting_for_a_slot() -> None:
    limiter = AdaptiveLimiter(1)
    fill(limiter, 1)
    cancel = CancelToken()
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(limiter.acquire(cancel)))
    waiter.start()
    cancel.cancel()
    waiter.join(10)
    assert (waiter.is_alive(), got) == (False, [None])


def test_a_waiting_caller_gets_the_slot_that_is_released() -> None:
    limiter = AdaptiveLimiter(1)
    (slot,) = fill(limiter, 1)
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(limiter.acquire()))
    waiter.start()
    limiter.release(slot)
    waiter.join(10)
    assert got and got[0] is not None


# ---------------------------------------------------------------- transport


class Chunks(httpx.SyncByteStream):
    """A body that arrives in pieces, like a stream from a server."""

    def __iter__(self):
        yield b"data: {}\n\n"
        yield b"data: [DONE]\n\n"


def answer(status: int):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, stream=Chunks())

    return handler


def test_a_request_holds_a_slot_until_its_response_is_closed() -> None:
    limiter = AdaptiveLimiter(4)
    with httpx.Client(transport=LimitedTransport(limiter, httpx.MockTransport(answer(200)))) as client:
        with client.stream("GET", "http://test/v1/models"):
            during = limiter.stats().in_flight
        after = limiter.stats().in_flight
    assert (during, after) == (1, 0)


def test_a_429_response_lowers_the_batch_limit() -> None:
    limiter = AdaptiveLimiter(8)
    with httpx.Client(transport=LimitedTransport(limiter, httpx.MockTransport(answer(429)))) as client:
        client.get("http://test/v1/chat/completions")
    assert (limiter.limit, limiter.stats().rate_limits, limiter.stats().in_flight) == (4, 1, 0)


def test_a_server_error_does_not_lower_the_limit() -> None:
    limiter = AdaptiveLimiter(8)
    with httpx.Client(transport=LimitedTransport(limiter, httpx.MockTransport(answer(503)))) as client:
        client.get("http://test/v1/chat/completions")
    assert limiter.limit == 8


def test_a_request_that_fails_to_connect_gives_its_slot_back() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    limiter = AdaptiveLimiter(2)
    with httpx.Client(transport=LimitedTransport(limiter, httpx.MockTransport(refuse))) as client:
        try:
            client.get("http://test/v1/models")
        except httpx.ConnectError:
            pass
    assert limiter.stats().in_flight == 0


def test_a_stopped_batch_sends_no_request_while_waiting_for_a_slot() -> None:
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    limiter = AdaptiveLimiter(1)
    fill(limiter, 1)
    transport = LimitedTransport(limiter, httpx.MockTransport(record))
    transport.cancel = CancelToken()
    transport.cancel.cancel()
    with httpx.Client(transport=transport) as client:
        try:
            client.get("http://test/v1/models")
        except httpx.ConnectError:
            pass
    assert sent == []
