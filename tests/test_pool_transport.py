"""PoolTransport: httpx's transport API over an httpcore pool with the network backend given."""

from __future__ import annotations

from typing import Any

import httpcore
import httpx
import pytest

from core.wire.pool_transport import PoolTransport

URL = "http://model.test/v1/models"


def client(backend: httpcore.NetworkBackend) -> httpx.Client:
    return httpx.Client(transport=PoolTransport(backend))


class Unreachable(httpcore.SyncBackend):
    def __init__(self, error: Exception) -> None:
        self.error = error

    def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        raise self.error


def test_the_bytes_come_from_the_backend_given() -> None:
    backend = httpcore.MockBackend([b"HTTP/1.1 200 OK\r\n", b"Content-Length: 5\r\n\r\n", b"hello"])
    with client(backend) as http:
        assert http.get(URL).text == "hello"


@pytest.mark.parametrize(
    ("raised", "seen"),
    [
        (httpcore.ConnectTimeout("slow"), httpx.ConnectTimeout),
        (httpcore.ConnectError("refused"), httpx.ConnectError),
        (httpcore.UnsupportedProtocol("gopher"), httpx.UnsupportedProtocol),
    ],
)
def test_httpcore_errors_become_the_httpx_errors_of_the_same_name(raised: Exception, seen: type) -> None:
    with client(Unreachable(raised)) as http, pytest.raises(seen) as info:
        http.get(URL)
    assert (type(info.value), info.value.__cause__) == (seen, raised)


def test_an_error_while_the_body_streams_is_httpx_too() -> None:
    backend = httpcore.MockBackend([b"HTTP/1.1 200 OK\r\n", b"Content-Length: 50\r\n\r\n", b"cut short"])
    with client(backend) as http, pytest.raises(httpx.RemoteProtocolError):
        http.get(URL)


def test_other_errors_pass_through_unchanged() -> None:
    refused = LookupError("not ours to translate")
    with client(Unreachable(refused)) as http, pytest.raises(LookupError) as info:
        http.get(URL)
    assert info.value is refused
