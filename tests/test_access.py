"""Shared deployments: the base-URL allow-list, internal addresses, and the access password gate.

Real parts: small HTTP servers on loopback (counting the connections they accept),
the real client, command line and engine, and the real app under AppTest. Names
that resolve elsewhere come from a resolver the test gives the client's transport
and a fake internet (an httpcore network backend) that routes public addresses to
loopback servers, so nothing leaves the machine.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpcore
import httpx
import pytest
from streamlit.testing.v1 import AppTest

from core.cli import main as cli_main
from core.continuation import engine
from core.services.access import (
    GateThrottle,
    is_loopback_listener,
    needs_password,
    password_matches,
    server_key_configured,
    server_key_may_go_to,
)
from core.types import RunFinished, RunSpec
from core.wire import guard
from core.wire.client import Client
from core.wire.errors import ConfigError, ConnectError
from core.wire.guard import (
    ALLOWED_ENV,
    SHARED_ENV,
    check_base_url,
    check_response,
    check_url,
    connect_addresses,
    is_internal_ip,
    parse_allow_list,
)
from core.wire.pinning import CheckedTransport

ROOT = Path(__file__).resolve().parents[1]
DEEPINFRA = "https://api.deepinfra.com/v1/openai"


# ---------------------------------------------------------------- a counting loopback server


class Server:
    """An OpenAI-ish server on 127.0.0.1 that counts the connections it accepts.

    ``GET …/models`` lists one model; ``POST …/chat/completions`` answers "hi";
    ``…/redirect`` answers 307 to ``redirect_to``. ``hosts``: the Host header of each request.
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        owner = self
        self.connections = 0
        self.redirect_to = ""
        self.hosts: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def setup(self) -> None:
                owner.connections += 1
                super().setup()

            def do_POST(self) -> None:
                owner.hosts.append(self.headers.get("Host", ""))
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                message = {"role": "assistant", "content": "hi"}
                answer = {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                owner.hosts.append(self.headers.get("Host", ""))
                if "redirect" in self.path:
                    self.send_response(307)
                    self.send_header("Location", owner.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.stop()


@pytest.fixture
def other() -> Iterator[Server]:
    s = Server()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def no_policy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No allow-list and not shared unless a test says so (and shared mode off afterwards)."""
    monkeypatch.delenv(ALLOWED_ENV, raising=False)
    monkeypatch.delenv(SHARED_ENV, raising=False)
    yield
    guard.set_shared(False)


# ---------------------------------------------------------------- the allow-list


def test_url_prefixes_match_scheme_host_port_and_path_at_a_segment_boundary():
    (entry,) = parse_allow_list(DEEPINFRA)
    assert entry.matches(httpx.URL(DEEPINFRA + "/chat/completions"))
    assert entry.matches(httpx.URL("https://API.deepinfra.com:443/v1/openai/"))
    refused = [
        "http://api.deepinfra.com/v1/openai",  # another scheme
        "https://api.deepinfra.com:8443/v1/openai",  # another port
        "https://api.deepinfra.com/v1/openaix",  # not at a "/" boundary
        "https://api.deepinfra.com/v1",  # above the prefix
        "https://api.deepinfra.com.evil.test/v1/openai",  # a look-alike host
        "https://api.deepinfra.com@evil.test/v1/openai",  # user info: the host is evil.test
        "https://api.deepinfra.com/v1/openai/%2e%2e/%2e%2e/admin",  # dot segments
    ]
    assert [u for u in refused if entry.matches(httpx.URL(u))] == []


def test_host_patterns_match_any_path_and_wildcards_only_subdomains():
    entries = parse_allow_list(" api.openai.com , *.example.com,10.0.0.5:8000, [fd00::5]:9000 ,")
    allowed = [
        "https://api.openai.com/v1",
        "http://api.openai.com:8080/anything",
        "https://eu.example.com/v1",
        "https://a.b.example.com/v1",
        "http://10.0.0.5:8000/v1",
        "http://[fd00::5]:9000/v1",
    ]
    refused = [
        "https://example.com/v1",
        "https://badexample.com/v1",
        "http://10.0.0.5:8001/v1",
        "http://10.0.0.6:8000",
    ]
    assert all(any(e.matches(httpx.URL(u)) for e in entries) for u in allowed)
    assert [u for u in refused if any(e.matches(httpx.URL(u)) for e in entries)] == []


@pytest.mark.parametrize("bad", ["ftp://files.test/v1", "api.test/v1", "https://x.test/v1?key=1", "a*.test"])
def test_a_malformed_entry_refuses_everything_and_names_itself(monkeypatch, bad):
    monkeypatch.setenv(ALLOWED_ENV, f"{DEEPINFRA},{bad}")
    with pytest.raises(ConfigError) as info:
        check_base_url(DEEPINFRA)
    assert bad in str(info.value) and ALLOWED_ENV in str(info.value)


def test_a_url_outside_the_allow_list_is_refused_before_any_connection(monkeypatch, server):
    monkeypatch.setenv(ALLOWED_ENV, f"{DEEPINFRA}, api.openai.com")
    with pytest.raises(ConfigError) as info:
        Client(server.url)
    message = str(info.value)
    assert ALLOWED_ENV in message and f"127.0.0.1:{server.port}" in message and "api.openai.com" in message
    assert server.connections == 0


def test_an_allow_listed_url_works(monkeypatch, server):
    monkeypatch.setenv(ALLOWED_ENV, f"127.0.0.1:{server.port}")
    with Client(server.url) as client:
        assert [m.id for m in client.list_models(with_meta=False)] == ["m"]


def test_a_redirect_out_of_the_allow_list_is_refused_before_it_is_followed(monkeypatch, server, other):
    monkeypatch.setenv(ALLOWED_ENV, server.url)
    server.redirect_to = other.url + "/models"
    with Client(server.url + "/redirect") as client, pytest.raises(ConfigError) as info:
        client.list_models(with_meta=False)
    assert "redirects to" in str(info.value) and str(other.port) in str(info.value)
    assert server.connections == 1 and other.connections == 0


def test_the_command_line_and_the_engine_are_refused_too(monkeypatch, capsys, server, tmp_db):
    monkeypatch.setenv(ALLOWED_ENV, DEEPINFRA)
    args = ["run", "--provider", "custom", "--base-url", server.url, "--model", "m", "--prompt", "hi"]
    assert cli_main([*args, "--no-save"]) == 2
    assert ALLOWED_ENV in capsys.readouterr().err
    spec = RunSpec(
        messages=[{"role": "user", "content": "hi"}], provider="custom", base_url=server.url, model="m"
    )
    finished = [e for e in engine.run(spec) if isinstance(e, RunFinished)]
    assert finished[-1].stop_reason == "error" and ALLOWED_ENV in finished[-1].error.message
    assert server.connections == 0


def test_the_demo_model_started_in_this_process_stays_reachable(monkeypatch, demo_url):
    monkeypatch.setenv(ALLOWED_ENV, DEEPINFRA)
    monkeypatch.setenv(SHARED_ENV, "1")
    with Client(demo_url(auth="open")) as client:
        assert "demo" in [m.id for m in client.list_models()]


# ---------------------------------------------------------------- shared mode: internal addresses

INTERNAL = [
    "127.0.0.1",
    "127.8.9.10",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.100.100.200",  # carrier-grade NAT (Alibaba's metadata)
    "0.0.0.0",
    "224.0.0.1",
    "::1",
    "fd00::1",
    "fe80::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
]


@pytest.mark.parametrize("address", INTERNAL)
def test_internal_addresses_are_recognised(address):
    assert is_internal_ip(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.215.14", "2606:4700:4700::1111", "172.32.0.1"])
def test_public_addresses_are_not_internal(address):
    assert not is_internal_ip(address)


SHARED_REFUSED = [
    "http://127.0.0.1:8000/v1",
    "http://[::1]:8000/v1",
    "http://169.254.169.254/latest/meta-data",
    "http://[fd00::1]/v1",
    "http://2130706433/v1",  # 127.0.0.1 as one number
    "http://0x7f.1/v1",  # and in hex
    "http://localhost:11434/v1",
    "http://ollama.localhost/v1",
    "http://metadata.google.internal/computeMetadata/v1",
    "http://printer.local/v1",
    "http://vllm:8000/v1",  # a one-label intranet name
]


@pytest.mark.parametrize("url", SHARED_REFUSED)
def test_a_shared_server_refuses_internal_addresses(monkeypatch, url):
    check_url(url)  # not shared: allowed (a local model server is a normal thing to use)
    monkeypatch.setenv(SHARED_ENV, "1")
    with pytest.raises(ConfigError) as info:
        check_url(url)
    assert "not allowed on this shared server" in str(info.value) and ALLOWED_ENV in info.value.hint


def test_a_shared_server_refuses_names_that_resolve_to_internal_addresses(monkeypatch):
    monkeypatch.setenv(SHARED_ENV, "1")

    def resolve(host: str, port: int) -> list[str]:
        return {"api.public.test": ["93.184.215.14"], "sneaky.test": ["93.184.215.14", "10.0.0.7"]}[host]

    check_url("https://api.public.test/v1", resolve=resolve)
    with pytest.raises(ConfigError, match=r"sneaky\.test resolves to the internal address 10\.0\.0\.7"):
        check_url("https://sneaky.test/v1", resolve=resolve)


def test_the_allow_list_admits_an_internal_server_on_a_shared_server(monkeypatch, server):
    monkeypatch.setenv(SHARED_ENV, "1")
    with pytest.raises(ConfigError):
        Client(server.url)
    monkeypatch.setenv(ALLOWED_ENV, f"127.0.0.1:{server.port}")
    with Client(server.url) as client:
        assert [m.id for m in client.list_models(with_meta=False)] == ["m"]


def test_set_shared_turns_the_check_on_for_the_process(server):
    guard.set_shared(True)
    with pytest.raises(ConfigError):
        Client(server.url)
    guard.set_shared(False)
    Client(server.url).close()
    assert server.connections == 0


def test_the_address_connected_to_is_checked_after_connecting(monkeypatch, server):
    """DNS rebinding: a name that passed the check may still connect inside; its answer is not read."""
    monkeypatch.setenv(SHARED_ENV, "1")
    seen: list[int] = []
    with httpx.Client(event_hooks={"response": [check_response]}) as http:
        with pytest.raises(ConfigError, match=r"the connection went to the internal address 127\.0\.0\.1"):
            http.get(server.url + "/models").read()
        seen.append(server.connections)
    assert seen == [1]


# ---------------------------------------------------------------- connecting to the address checked

PUBLIC = "93.184.215.14"  # an address the checks allow; the fake internet routes it to a loopback server
REBOUND = "api.rebind.test"


class FakeInternet(httpcore.NetworkBackend):
    """The network under the client: ``routes`` maps an address to the loopback port that plays it.

    Records every address dialled; anything not routed is unreachable (nothing leaves the machine).
    """

    def __init__(self, routes: dict[str, int]) -> None:
        self.routes = routes
        self.dialled: list[str] = []
        self.real = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[object] | None = None,
    ) -> httpcore.NetworkStream:
        self.dialled.append(host)
        if host not in self.routes:
            raise httpcore.ConnectError(f"{host} is unreachable in this test")
        stream = self.real.connect_tcp("127.0.0.1", self.routes[host], timeout, local_address, socket_options)
        return Routed(stream, (host, port))

    def sleep(self, seconds: float) -> None:
        self.real.sleep(seconds)


class Routed(httpcore.NetworkStream):
    """A connection of the fake internet: its peer is the address dialled, not the loopback behind it."""

    def __init__(self, stream: httpcore.NetworkStream, peer: tuple[str, int]) -> None:
        self.stream, self.peer = stream, peer

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.stream.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.stream.write(buffer, timeout)

    def close(self) -> None:
        self.stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return Routed(self.stream.start_tls(ssl_context, server_hostname, timeout), self.peer)

    def get_extra_info(self, info: str) -> object:
        return self.peer if info == "server_addr" else self.stream.get_extra_info(info)


class RebindingDNS:
    """Answers ``first`` for the first ``honest`` questions about a name, then ``then`` (a TTL of 0)."""

    def __init__(self, first: str, then: str, honest: int = 1) -> None:
        self.first, self.then, self.honest = first, then, honest
        self.asked = 0

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked += 1
        return [self.first if self.asked <= self.honest else self.then]


def test_the_connection_goes_to_the_address_that_was_checked(monkeypatch, server, other):
    """Allowed at the check, 127.0.0.1 a moment later: the request reaches the checked address only."""
    monkeypatch.setenv(SHARED_ENV, "1")
    dns = RebindingDNS(PUBLIC, "127.0.0.1")
    internet = FakeInternet({PUBLIC: server.port, "127.0.0.1": other.port})
    transport = CheckedTransport(resolve=dns, network=internet)
    with Client(f"http://{REBOUND}:{server.port}/v1", transport=transport) as client:
        assert client.chat({"model": "m", "messages": []})["choices"][0]["message"]["content"] == "hi"
        with pytest.raises(
            ConfigError, match=r"api\.rebind\.test resolves to the internal address 127\.0\.0\.1"
        ):
            client.chat({"model": "m", "messages": []})  # a new connection asks again: now refused
    assert internet.dialled == [PUBLIC] and dns.asked == 2
    assert server.hosts == [f"{REBOUND}:{server.port}"]  # the Host header stays the name
    assert other.connections == 0


def test_a_name_rebound_to_an_internal_address_after_the_checks_receives_nothing(monkeypatch, server):
    """The machine's resolver answers a public address to the checks, then 127.0.0.1 (TTL 0)."""
    monkeypatch.setenv(SHARED_ENV, "1")
    dns = RebindingDNS(PUBLIC, "127.0.0.1", honest=2)  # the base URL check, the request hook's check
    system_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host != REBOUND:
            return system_getaddrinfo(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (dns(host, port)[0], port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with Client(f"http://{REBOUND}:{server.port}/v1") as client, pytest.raises(ConfigError) as info:
        client.chat({"model": "m", "messages": []})
    assert "internal address 127.0.0.1" in str(info.value)
    assert server.connections == 0  # before: the POST arrived, then the answer was refused


def test_a_name_that_does_not_resolve_is_a_connect_error(monkeypatch):
    monkeypatch.setenv(SHARED_ENV, "1")

    def nowhere(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    transport = CheckedTransport(resolve=nowhere, network=FakeInternet({}))
    with Client(f"http://{REBOUND}/v1", transport=transport) as client, pytest.raises(ConnectError):
        client.list_models(with_meta=False)


def test_every_address_of_a_name_is_checked_and_each_is_tried_in_turn(monkeypatch, server):
    monkeypatch.setenv(SHARED_ENV, "1")
    assert connect_addresses(REBOUND, 443, lambda h, p: [PUBLIC, PUBLIC, "8.8.8.8"]) == [PUBLIC, "8.8.8.8"]
    with pytest.raises(guard.RefusedAddress, match=r"internal address 10\.0\.0\.7"):
        connect_addresses(REBOUND, 443, lambda h, p: [PUBLIC, "10.0.0.7"])
    internet = FakeInternet({"8.8.8.8": server.port})  # the first address does not answer
    transport = CheckedTransport(resolve=lambda h, p: [PUBLIC, "8.8.8.8"], network=internet)
    with Client(f"http://{REBOUND}:{server.port}/v1", transport=transport) as client:
        assert [m.id for m in client.list_models(with_meta=False)] == ["m"]
    assert internet.dialled == [PUBLIC, "8.8.8.8"]


def test_a_shared_server_still_sends_through_the_proxy_of_its_environment(monkeypatch, server):
    """Through a proxy, the proxy resolves the name: the request goes to it, unpinned."""
    monkeypatch.setenv(SHARED_ENV, "1")
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")  # the server plays the proxy
    with Client(f"http://{REBOUND}/v1") as client:
        assert [m.id for m in client.list_models(with_meta=False)] == ["m"]
    assert server.hosts == [REBOUND]


def _certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """(certificate, key) for the DNS name ``name``, self-signed, made by the ``openssl`` command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-nodes", "-days", "1", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def test_tls_to_the_checked_address_sends_and_verifies_the_name(monkeypatch, tmp_path):
    """The connection dials the address, but SNI and the certificate check are on the name."""
    monkeypatch.setenv(SHARED_ENV, "1")
    cert, key = _certificate(tmp_path, REBOUND)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts this one certificate
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    names: list[str | None] = []
    tls.sni_callback = lambda sock, name, context: names.append(name)  # type: ignore[assignment,misc,return-value]
    server = Server(tls)
    try:
        internet = FakeInternet({PUBLIC: server.port})
        url = f"https://{REBOUND}:{server.port}/v1"
        with Client(
            url, transport=CheckedTransport(resolve=lambda h, p: [PUBLIC], network=internet)
        ) as client:
            assert [m.id for m in client.list_models(with_meta=False)] == ["m"]
        assert names == [REBOUND] and server.hosts == [f"{REBOUND}:{server.port}"]
        other_name = _certificate(tmp_path, "other.test")[0]
        monkeypatch.setenv("SSL_CERT_FILE", str(other_name))  # a certificate for another name only
        transport = CheckedTransport(resolve=lambda h, p: [PUBLIC], network=internet)
        with Client(url, transport=transport) as client, pytest.raises(ConnectError, match="certificate"):
            client.list_models(with_meta=False)
    finally:
        server.stop()


# ---------------------------------------------------------------- where a server key may go


def test_a_server_key_goes_only_to_its_providers_url_on_a_shared_server(monkeypatch):
    assert server_key_may_go_to(DEEPINFRA, "https://evil.test/v1")  # not shared: the user's own machine
    monkeypatch.setenv(SHARED_ENV, "1")
    assert server_key_may_go_to(DEEPINFRA, DEEPINFRA + "/")
    assert not server_key_may_go_to(DEEPINFRA, "https://evil.test/v1")
    assert not server_key_may_go_to(None, "https://evil.test/v1")
    monkeypatch.setenv(ALLOWED_ENV, "*.evil.test")
    assert server_key_may_go_to(DEEPINFRA, "https://eu.evil.test/v1")


# ---------------------------------------------------------------- when the app asks for a password


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2", "unix:///run/c.sock"]
)
def test_loopback_listeners(address):
    assert is_loopback_listener(address)


@pytest.mark.parametrize("address", [None, "", "0.0.0.0", "::", "192.168.1.5", "example.test"])
def test_listeners_beyond_loopback(address):
    assert not is_loopback_listener(address)


def test_a_server_key_is_one_in_the_secrets_or_the_environment():
    assert not server_key_configured({}, {})
    assert server_key_configured({"DEEPINFRA_API_KEY": "x"}, {})
    assert server_key_configured({"keys": {"ollama": "x"}}, {})
    assert server_key_configured({}, {"OPENAI_API_KEY": "x"})
    assert not server_key_configured({"access_password": "x"}, {"OPENAI_API_KEY": "  "})


def test_without_a_password_the_gate_stands_beyond_loopback_with_a_server_key_only():
    key = {"GROQ_API_KEY": "x"}
    assert needs_password("0.0.0.0", {}, key)
    assert needs_password(None, key, {})
    assert not needs_password("0.0.0.0", {}, {})  # no key to protect
    assert not needs_password("127.0.0.1", key, {})
    assert needs_password("127.0.0.1", key, {SHARED_ENV: "1"})  # behind a proxy on this machine


@pytest.mark.parametrize("address", ["0.0.0.0", None, "127.0.0.1"])
def test_a_set_password_is_asked_for_with_or_without_a_server_key(address):
    password = {"access_password": "open sesame"}
    assert needs_password(address, password, {})
    assert needs_password(address, {**password, "DEEPINFRA_API_KEY": "x"}, {})
    assert not needs_password("127.0.0.1", {"access_password": ""}, {})  # empty: not set


def test_wrong_passwords_wait_longer_and_longer_after_three():
    throttle = GateThrottle(free=3, cap=60.0)
    keys = ["session:a"]
    waits = [throttle.failed(keys, now=100.0) for _ in range(10)]
    assert waits == [0.0, 0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert throttle.wait(keys, now=130.0) == 30.0 and throttle.wait(["session:b"], now=130.0) == 0.0
    assert throttle.wait([*keys, "address:203.0.113.5"], now=160.0) == 0.0  # the wait is over
    throttle.passed(keys)
    assert throttle.failed(keys, now=200.0) == 0.0  # success starts the count again


def test_a_wait_on_any_key_holds_a_try_back():
    throttle = GateThrottle(free=1)
    throttle.failed(["session:a", "address:203.0.113.5"], now=0.0)
    assert throttle.wait(["session:new", "address:203.0.113.5"], now=0.5) == 0.5  # a new session, same client


def test_password_comparison():
    assert password_matches("correct horse", "correct horse")
    assert password_matches("pässwörd", "pässwörd")
    assert not password_matches("correct hors", "correct horse")
    assert not password_matches("", "")
    assert not password_matches(None, "x")
    assert not password_matches("x", None)


# ---------------------------------------------------------------- the gate in the app (AppTest)

SECRET_KEY = "sk-gate-test-0123456789abcdef"


def gated_app(monkeypatch: pytest.MonkeyPatch, tmp_db: Path, secrets: dict[str, object]) -> AppTest:
    monkeypatch.setenv(SHARED_ENV, "1")  # AppTest listens nowhere: force "shared"
    monkeypatch.setenv("CONTINUUM_DEMO_RATE", "0")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.secrets.update(secrets)
    # The first script run of a process may go through Streamlit's old ``pages/`` mode (see
    # pages/_routing.py), whose widget ids differ from every later run; start after it.
    at.run()
    return at


def shown(at: AppTest) -> str:
    return " ".join(
        str(e.value) for kind in ("markdown", "error", "title", "caption") for e in getattr(at, kind)
    )


def sent(at: AppTest) -> str:
    """Everything the elements on screen would send to the browser (their protobufs)."""
    out: list[str] = []

    def walk(node: object) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            out.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at.main)
    walk(at.sidebar)
    return "\n".join(out)


def test_the_gate_asks_for_the_password_before_anything_else(monkeypatch, clean_env, tmp_db):
    at = gated_app(monkeypatch, tmp_db, {"DEEPINFRA_API_KEY": SECRET_KEY, "access_password": "open sesame"})
    at.run()
    assert [t.label for t in at.text_input] == ["Access password"]
    assert not at.sidebar.markdown and "Prompt" not in sent(at) and "Studio" not in sent(at)
    at.text_input[0].input("open sesam")
    at.button[0].click().run()
    assert "not the access password" in shown(at) and [t.label for t in at.text_input] == ["Access password"]
    at.text_input[0].input("open sesame")
    at.button[0].click().run()
    assert "Access password" not in [t.label for t in at.text_input]
    assert any(t.label == "Prompt" for t in at.text_area)  # the Studio
    assert "Prompt" in sent(at) and SECRET_KEY not in sent(at) and "open sesame" not in sent(at)


def test_without_a_configured_password_the_app_refuses_to_serve(monkeypatch, clean_env, tmp_db):
    monkeypatch.setenv("DEEPINFRA_API_KEY", SECRET_KEY)
    at = gated_app(monkeypatch, tmp_db, {})
    at.run()
    assert "no access password is set" in shown(at) and not at.text_input and not at.text_area
    assert "access password" in sent(at) and SECRET_KEY not in sent(at)


def test_no_gate_without_a_password_or_a_server_key(monkeypatch, clean_env, tmp_db):
    at = gated_app(monkeypatch, tmp_db, {})
    at.run()
    assert any(t.label == "Prompt" for t in at.text_area)


def test_a_set_password_gates_the_app_without_a_server_key(monkeypatch, clean_env, tmp_db):
    at = gated_app(monkeypatch, tmp_db, {"access_password": "open sesame"})
    at.run()
    assert [t.label for t in at.text_input] == ["Access password"] and not at.text_area
    at.text_input[0].input("open sesame")
    at.button[0].click().run()
    assert any(t.label == "Prompt" for t in at.text_area)


def test_repeated_wrong_passwords_are_slowed_down(monkeypatch, clean_env, tmp_db):
    from pages import _gate as gate

    at = gated_app(monkeypatch, tmp_db, {"access_password": "open sesame"})
    at.run()
    clock = [1000.0]
    monkeypatch.setattr(gate.gate_throttle(), "clock", lambda: clock[0])  # the app's throttle, our time

    def give(password: str, at_time: float) -> str:
        clock[0] = at_time
        at.text_input[0].input(password)
        at.button[0].click().run()
        return " ".join(str(e.value) for e in at.error)

    assert [give("guess", 1000.0) for _ in range(2)] == ["That is not the access password."] * 2
    assert "wait 1 s before the next one" in give("guess", 1000.0)  # the third wrong password
    assert give("open sesame", 1000.5) == "Too many wrong passwords. Try again in 1 s."  # not even checked
    assert [t.label for t in at.text_input] == ["Access password"] and not at.text_area
    assert "wait 2 s before the next one" in give("guess", 1001.0)  # the wait is over: checked, wrong
    give("open sesame", 1003.0)
    assert any(t.label == "Prompt" for t in at.text_area)


def _key_sources() -> None:
    import streamlit as st

    from pages import _common as common

    for url in (None, "https://api.deepinfra.com/v1/openai", "https://collector.example/v1"):
        key, source = common.key_for("deepinfra", base_url=url)
        st.text(f"{url}: {source} {'key' if key else 'none'}")


def test_a_shared_server_withholds_its_key_from_other_urls_also_when_resuming(monkeypatch, clean_env):
    monkeypatch.setenv("DEEPINFRA_API_KEY", SECRET_KEY)
    at = AppTest.from_function(_key_sources, default_timeout=30).run()
    assert [t.value for t in at.text] == [
        "None: environment key",
        "https://api.deepinfra.com/v1/openai: environment key",
        "https://collector.example/v1: environment key",  # not shared: the user's own machine
    ]
    monkeypatch.setenv(SHARED_ENV, "1")
    at.run()
    assert [t.value for t in at.text][2] == "https://collector.example/v1: withheld none"
