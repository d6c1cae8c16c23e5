"""Where a shared Continuum may send requests: the URL guard every client request passes.

Pure logic (no Streamlit): :mod:`core.wire.client` calls :func:`check_base_url` for
every base URL and installs :func:`event_hooks` on its HTTP client, so the app,
the command line and batches are all covered. Who may use a shared Continuum (the
password gate) is :mod:`core.services.access`.

The allow-list: ``CONTINUUM_ALLOWED_BASE_URLS``
-----------------------------------------------
Comma-separated entries (read at call time; unset or empty = no allow-list):

- a **URL prefix** such as ``https://api.deepinfra.com/v1/openai``: same scheme,
  host and port, and a path equal to the prefix's or below it at a ``/``
  boundary (``…/v1`` does not admit ``…/v1beta``; ``..`` segments never match);
- a **host pattern** such as ``api.openai.com``, ``*.example.com`` (subdomains
  only), ``10.0.0.5:8000`` or ``[fd00::5]:8000``: any scheme and path on that
  host, on the given port only if one is given.

When it is set, a base URL outside it is refused with a :class:`ConfigError`
before any connection, and so is every redirect that leaves it. A malformed
entry refuses everything (with a message naming it) rather than allowing more.

Shared mode: internal addresses
-------------------------------
When the app listens beyond loopback (``app.py`` calls :func:`set_shared`), or
``CONTINUUM_SHARED=1`` is set (say, behind a reverse proxy on the same
machine), URLs that are not allow-listed may not reach internal addresses: loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7),
link-local and cloud metadata (169.254/16, fe80::/10), carrier-grade NAT,
multicast, reserved and unspecified ranges, IPv4 written as one number
(``2130706433``) or hex, IPv4-mapped/NAT64/6to4 forms of those, and names such as
``localhost``, ``*.localhost``, ``*.local``, ``*.internal``, ``*.home.arpa`` or
one-label intranet names. Host names are resolved first and refused if any
address they resolve to is internal. Then the connection goes to exactly the
addresses that were checked: :mod:`core.wire.pinning` resolves each host once when it
connects, checks the answer with :func:`connect_addresses` and dials those
addresses (the Host header and TLS stay on the name), so a DNS answer that
changes between the check and the connection (rebinding) reaches nothing. After
connecting, the peer address is checked once more (:func:`check_response`).
Requests that go through an HTTP proxy from the environment skip the last two:
the proxy resolves the name.

Demo models started in this process (:func:`trust_origin`) are always allowed:
the app's own demo model runs on loopback. In shared mode a key from the
secrets or the environment is also sent only to its provider's own base URL
or an allow-listed one (:func:`server_key_may_go_to`).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from core.wire.errors import ConfigError

__all__ = [
    "ALLOWED_ENV",
    "SHARED_ENV",
    "AllowEntry",
    "RefusedAddress",
    "Resolver",
    "allow_list",
    "as_ip",
    "check_base_url",
    "check_request",
    "check_response",
    "check_url",
    "connect_addresses",
    "event_hooks",
    "is_internal_ip",
    "is_shared",
    "needs_pinning",
    "parse_allow_list",
    "proxy_for",
    "refused_as_internal",
    "set_shared",
    "shared_by_env",
    "trust_origin",
    "untrust_origin",
]

ALLOWED_ENV = "CONTINUUM_ALLOWED_BASE_URLS"
SHARED_ENV = "CONTINUUM_SHARED"

Resolver = Callable[[str, int], Iterable[str]]

_INTERNAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa", ".lan", ".intranet")
_INTERNAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")

_lock = threading.Lock()
_shared = False
_trusted: set[tuple[str, str, int]] = set()


# ------------------------------------------------------------------ process-wide state


def set_shared(shared: bool) -> None:
    """Turn shared mode on or off for this process (the app does, from its listen address)."""
    global _shared
    _shared = bool(shared)


def shared_by_env(environ: Mapping[str, str] | None = None) -> bool:
    """``CONTINUUM_SHARED=1`` (or true/yes/on): the deployment is shared whatever it listens on."""
    env = os.environ if environ is None else environ
    return env.get(SHARED_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def is_shared(environ: Mapping[str, str] | None = None) -> bool:
    """Shared mode: set by :func:`set_shared`, or forced by ``CONTINUUM_SHARED=1``."""
    return _shared or shared_by_env(environ)


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    return (url.scheme, _host(url), _port(url))


def trust_origin(url: str) -> None:
    """Always allow requests to this origin (a demo model started in this process)."""
    with _lock:
        _trusted.add(_origin(httpx.URL(url)))


def untrust_origin(url: str) -> None:
    with _lock:
        _trusted.discard(_origin(httpx.URL(url)))


def _is_trusted(url: httpx.URL) -> bool:
    with _lock:
        return _origin(url) in _trusted


# ------------------------------------------------------------------ the allow-list


def _host(url: httpx.URL) -> str:
    return url.host.lower().rstrip(".")


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


@dataclass(frozen=True)
class AllowEntry:
    """One entry of ``CONTINUUM_ALLOWED_BASE_URLS`` (see the module docstring)."""

    text: str
    host: str  # lower case; "*.example.com" for subdomains
    scheme: str | None = None  # None: a host pattern (any scheme)
    port: int | None = None  # None: any port (host patterns only)
    path: str = ""  # URL prefixes: the path, without a trailing "/"

    def matches(self, url: httpx.URL) -> bool:
        if self.scheme is not None and url.scheme != self.scheme:
            return False
        if not _host_matches(self.host, _host(url)):
            return False
        if self.port is not None and _port(url) != self.port:
            return False
        if self.scheme is None:
            return True
        path = url.path
        if ".." in path.split("/"):
            return False
        return not self.path or path == self.path or path.startswith(self.path + "/")


def _host_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def _bad_entry(entry: str, why: str) -> ConfigError:
    return ConfigError(
        f"{ALLOWED_ENV} has an entry that is not a URL prefix or host[:port]: '{entry}' ({why}).",
        "Fix the entry, e.g. https://api.deepinfra.com/v1/openai or api.openai.com or 10.0.0.5:8000. "
        "Until then every base URL is refused.",
    )


def _parse_entry(entry: str) -> AllowEntry:
    if "://" in entry:
        try:
            url = httpx.URL(entry)
        except httpx.InvalidURL as exc:
            raise _bad_entry(entry, str(exc)) from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise _bad_entry(entry, "use http:// or https:// and a host name")
        if url.query or url.fragment or url.userinfo:
            raise _bad_entry(entry, "no query, fragment or user name")
        return AllowEntry(entry, _host(url), url.scheme, _port(url), url.path.rstrip("/"))
    if "/" in entry or "@" in entry:
        raise _bad_entry(entry, "a host pattern has no path; write a URL prefix with its scheme instead")
    try:
        url = httpx.URL("http://" + entry.replace("*.", "wildcard--.", 1))
    except httpx.InvalidURL as exc:
        raise _bad_entry(entry, str(exc)) from exc
    host = _host(url).replace("wildcard--.", "*.", 1)
    if not host or "*" in host[1:]:
        raise _bad_entry(entry, "a host name, '*.' only at the start")
    return AllowEntry(entry, host, None, url.port, "")


def parse_allow_list(text: str | None) -> tuple[AllowEntry, ...]:
    """The entries of a ``CONTINUUM_ALLOWED_BASE_URLS`` value (empty: no allow-list)."""
    entries = [part.strip() for part in (text or "").split(",")]
    return tuple(_parse_entry(entry) for entry in entries if entry)


def allow_list(environ: Mapping[str, str] | None) -> tuple[AllowEntry, ...]:
    env = os.environ if environ is None else environ
    return parse_allow_list(env.get(ALLOWED_ENV))


# ------------------------------------------------------------------ internal addresses


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """``2130706433``, ``0x7f.1``, ``127.1``: forms ``inet_aton`` (and so connect) accepts."""
    if not host or not all(c in "0123456789abcdefx." for c in host) or not host[0].isdigit():
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def as_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return _legacy_ipv4(host)


def is_internal_ip(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for an address a shared server must not be pointed at (see the module docstring)."""
    ip = as_ip(address) if isinstance(address, str) else address
    if ip is None:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and is_internal_ip(embedded):
            return True
    elif ip in _CGNAT:
        return True
    return not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_link_local


def _internal_name(host: str) -> bool:
    return host in _INTERNAL_NAMES or host.endswith(_INTERNAL_SUFFIXES) or "." not in host


def _resolve(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def _internal_reason(url: httpx.URL, resolve: Resolver) -> str | None:
    host = _host(url)
    ip = as_ip(host)
    if ip is not None:
        return f"{host} is an internal address" if is_internal_ip(ip) else None
    if _internal_name(host):
        return f"{host} names a machine on the local network"
    try:
        addresses = list(resolve(host, _port(url)))
    except (OSError, UnicodeError):
        return None  # it cannot be reached either; the connection reports that
    for address in addresses:
        if is_internal_ip(address):
            return f"{host} resolves to the internal address {address}"
    return None


class RefusedAddress(Exception):
    """Raised by :func:`connect_addresses`: ``reason`` says why the host may not be reached."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def connect_addresses(host: str, port: int, resolve: Resolver | None = None) -> list[str]:
    """The addresses to connect to for ``host`` on a shared server: resolved once, all checked.

    Raises :class:`RefusedAddress` for an internal name or address (any one of them),
    and ``OSError`` when the name does not resolve.
    """
    name = host.lower().rstrip(".").strip("[]")
    ip = as_ip(name)
    if ip is not None:
        if is_internal_ip(ip):
            raise RefusedAddress(f"{name} is an internal address")
        return [str(ip)]
    if _internal_name(name):
        raise RefusedAddress(f"{name} names a machine on the local network")
    try:
        addresses = list(dict.fromkeys((resolve or _resolve)(name, port)))
    except UnicodeError as exc:
        raise OSError(f"{name} is not a valid host name ({exc})") from exc
    if not addresses:
        raise OSError(f"{name} has no address")
    for address in addresses:
        if is_internal_ip(address):
            raise RefusedAddress(f"{name} resolves to the internal address {address}")
    return addresses


# ------------------------------------------------------------------ checks


def _refused_by_allow_list(shown: str, entries: tuple[AllowEntry, ...], redirect: bool) -> ConfigError:
    what = "redirects to" if redirect else "is"
    listed = ", ".join(e.text for e in entries)
    return ConfigError(
        f"Requests to {shown} are not allowed on this server: it {what} outside {ALLOWED_ENV} ({listed}).",
        "Use one of the allowed base URLs, or ask whoever runs this server to add yours.",
    )


def _shown(url: httpx.URL) -> str:
    return str(url.copy_with(query=None, fragment=None, username=None, password=None))


def refused_as_internal(url: httpx.URL, reason: str) -> ConfigError:
    """The refusal for a request to ``url`` that would reach an internal address."""
    return _refused_as_internal(_shown(url), reason)


def _refused_as_internal(shown: str, reason: str) -> ConfigError:
    return ConfigError(
        f"Requests to {shown} are not allowed on this shared server: {reason}.",
        f"Use a public provider URL, or ask whoever runs this server to add it to {ALLOWED_ENV}.",
    )


def check_url(
    url: str | httpx.URL,
    *,
    environ: Mapping[str, str] | None = None,
    resolve: Resolver | None = None,
    redirect: bool = False,
) -> None:
    """Raise :class:`ConfigError` when ``url`` may not be requested (see the module docstring)."""
    parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    if _is_trusted(parsed):
        return
    shown = _shown(parsed)
    entries = allow_list(environ)
    if entries:
        if any(entry.matches(parsed) for entry in entries):
            return
        raise _refused_by_allow_list(shown, entries, redirect)
    if is_shared(environ):
        reason = _internal_reason(parsed, resolve or _resolve)
        if reason:
            raise _refused_as_internal(shown, reason)


def check_base_url(
    base_url: str, *, environ: Mapping[str, str] | None = None, resolve: Resolver | None = None
) -> None:
    """The check :func:`core.wire.client._normalise_base_url` makes before any connection."""
    check_url(base_url, environ=environ, resolve=resolve)


def check_request(request: httpx.Request) -> None:
    """httpx request hook: every request, redirects included, passes :func:`check_url`."""
    check_url(request.url, redirect=True)


def proxy_for(url: httpx.URL) -> str | None:
    """The proxy from the environment a request to ``url`` goes through (None: it connects directly)."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    return None if not proxy or urllib.request.proxy_bypass(url.host) else proxy


def _proxied(url: httpx.URL) -> bool:
    return proxy_for(url) is not None


def needs_pinning(url: httpx.URL, environ: Mapping[str, str] | None = None) -> bool:
    """Whether a connection for ``url`` must go only to addresses checked with :func:`connect_addresses`:
    shared mode, no allow-list (with one, every URL is allow-listed or refused before connecting),
    not this process's demo model, not through a proxy."""
    if not is_shared(environ) or _is_trusted(url) or allow_list(environ):
        return False
    return not _proxied(url)


def check_response(response: httpx.Response) -> None:
    """httpx response hook, shared mode only: the address actually connected to must not be internal."""
    url = response.request.url
    if not is_shared() or _is_trusted(url) or _proxied(url):
        return
    if any(entry.matches(url) for entry in allow_list(None)):
        return
    stream: Any = response.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if isinstance(peer, tuple) and peer and is_internal_ip(str(peer[0])):
        response.close()
        raise refused_as_internal(url, f"the connection went to the internal address {peer[0]}")


def event_hooks() -> dict[str, list[Callable[[Any], Any]]]:
    """Hooks for ``httpx.Client(event_hooks=…)``: every hop is checked, before and after connecting."""
    return {"request": [check_request], "response": [check_response]}
