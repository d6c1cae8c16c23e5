"""Where a shared Continuum may send requests, and who may use it.

Pure logic (no Streamlit): :mod:`core.client` calls :func:`check_base_url` for
every base URL and installs :func:`event_hooks` on its HTTP client, so the app,
the command line and batches are all covered; ``app.py`` uses
:func:`needs_password` and :func:`password_matches` for its access gate.

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
address they resolve to is internal; after connecting, the peer address is
checked again (a DNS answer that changed in between — rebinding — is caught
before the response is read). Requests that go through an HTTP proxy from the
environment skip that second check: the proxy resolves the name.

Demo models started in this process (:func:`trust_origin`) are always allowed:
the app's own demo model runs on loopback. In shared mode a key from the
secrets or the environment is also sent only to its provider's own base URL
or an allow-listed one (:func:`server_key_may_go_to`).

The access gate
---------------
:func:`needs_password`: exposed (:func:`is_exposed`) and a server-side key
configured (:func:`server_key_configured`). The app then asks for
``access_password`` from its secrets and compares it with
:func:`password_matches` (constant time).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import socket
import threading
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from core.errors import ConfigError

__all__ = [
    "ALLOWED_ENV",
    "SHARED_ENV",
    "AllowEntry",
    "check_base_url",
    "check_request",
    "check_response",
    "check_url",
    "event_hooks",
    "is_exposed",
    "is_internal_ip",
    "is_loopback_listener",
    "is_shared",
    "needs_password",
    "parse_allow_list",
    "password_matches",
    "server_key_configured",
    "server_key_may_go_to",
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


def _allow_list(environ: Mapping[str, str] | None) -> tuple[AllowEntry, ...]:
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


def _as_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return _legacy_ipv4(host)


def is_internal_ip(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for an address a shared server must not be pointed at (see the module docstring)."""
    ip = _as_ip(address) if isinstance(address, str) else address
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
    ip = _as_ip(host)
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


# ------------------------------------------------------------------ checks


def _refused_by_allow_list(shown: str, entries: tuple[AllowEntry, ...], redirect: bool) -> ConfigError:
    what = "redirects to" if redirect else "is"
    listed = ", ".join(e.text for e in entries)
    return ConfigError(
        f"Requests to {shown} are not allowed on this server: it {what} outside {ALLOWED_ENV} ({listed}).",
        "Use one of the allowed base URLs, or ask whoever runs this server to add yours.",
    )


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
    shown = str(parsed.copy_with(query=None, fragment=None, username=None, password=None))
    entries = _allow_list(environ)
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
    """The check :func:`core.client._normalise_base_url` makes before any connection."""
    check_url(base_url, environ=environ, resolve=resolve)


def check_request(request: httpx.Request) -> None:
    """httpx request hook: every request, redirects included, passes :func:`check_url`."""
    check_url(request.url, redirect=True)


def _proxied(url: httpx.URL) -> bool:
    proxies = urllib.request.getproxies()
    return bool(proxies.get(url.scheme) or proxies.get("all")) and not urllib.request.proxy_bypass(url.host)


def check_response(response: httpx.Response) -> None:
    """httpx response hook, shared mode only: the address actually connected to must not be internal."""
    url = response.request.url
    if not is_shared() or _is_trusted(url) or _proxied(url):
        return
    if any(entry.matches(url) for entry in _allow_list(None)):
        return
    stream: Any = response.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if isinstance(peer, tuple) and peer and is_internal_ip(str(peer[0])):
        response.close()
        shown = str(url.copy_with(query=None, fragment=None, username=None, password=None))
        raise _refused_as_internal(shown, f"the connection went to the internal address {peer[0]}")


def event_hooks() -> dict[str, list[Callable[[Any], Any]]]:
    """Hooks for ``httpx.Client(event_hooks=…)``: every hop is checked, before and after connecting."""
    return {"request": [check_request], "response": [check_response]}


# ------------------------------------------------------------------ the app's access gate

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]", "ip6-localhost"})


def is_loopback_listener(address: str | None) -> bool:
    """Whether a server bound to ``address`` is reachable from this machine only.

    Unset or empty means every interface (Streamlit's default), so it is not.
    """
    host = (address or "").strip().lower()
    if not host:
        return False
    if host.startswith("unix://"):
        return True  # a socket file: only a proxy on this machine reaches it (CONTINUUM_SHARED=1 then)
    if host in LOOPBACK_NAMES:
        return True
    ip = _as_ip(host.strip("[]"))
    return ip is not None and ip.is_loopback


def server_key_configured(
    secrets: Mapping[str, Any] | None, environ: Mapping[str, str] | None = None
) -> bool:
    """Whether any provider has a key in the secrets or the environment (not pasted in a session)."""
    from core.keys import find_api_key
    from core.providers import PROVIDERS

    env = os.environ if environ is None else environ
    for provider in PROVIDERS.values():
        if provider.is_demo:
            continue
        key, _ = find_api_key(provider.id, secrets=secrets or {}, environ=env)
        if key:
            return True
    return False


def is_exposed(address: str | None, environ: Mapping[str, str] | None = None) -> bool:
    """Reachable from other machines: listening beyond loopback, or ``CONTINUUM_SHARED=1``."""
    return not is_loopback_listener(address) or shared_by_env(environ)


def needs_password(
    address: str | None, secrets: Mapping[str, Any] | None, environ: Mapping[str, str] | None = None
) -> bool:
    """The app must ask for ``access_password``: exposed (see :func:`is_exposed`) with a server-side key."""
    return is_exposed(address, environ) and server_key_configured(secrets, environ)


def server_key_may_go_to(
    preset_base_url: str | None, base_url: str, environ: Mapping[str, str] | None = None
) -> bool:
    """On a shared server, a key from the secrets or environment goes only to the provider's own
    base URL or an allow-listed one, so a user cannot send it to a server of their choosing."""
    if not is_shared(environ):
        return True
    wanted = (base_url or "").strip().rstrip("/")
    if preset_base_url and wanted == preset_base_url.strip().rstrip("/"):
        return True
    try:
        url = httpx.URL(wanted)
        return any(entry.matches(url) for entry in _allow_list(environ))
    except (httpx.InvalidURL, ConfigError):
        return False


def password_matches(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; an unset or empty expected password never matches."""
    if not expected or given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
