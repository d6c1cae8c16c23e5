"""Where a shared Continuum may send requests: the URL guard every client request passes.

Pure logic (no Streamlit): :mod:`core.wire.client` calls :func:`check_base_url` for
every base URL and installs :func:`event_hooks` on its HTTP client, so the app,
the command line and batches are all covered. Who may use a shared Continuum (the
password gate) is :mod:`core.services.access`.

The allow-list: ``CONTINUUM_ALLOWED_BASE_URLS``
-----------------------------------------------
URL prefixes and host patterns, comma-separated (:mod:`core.wire.allow_list`
parses them and says what each admits; unset or empty = no allow-list).
When it is set, a base URL outside it is refused with a :class:`ConfigError`
before any connection, and so is every redirect that leaves it. A malformed
entry refuses everything (with a message naming it) rather than allowing more.

Shared mode: internal addresses
-------------------------------
When the app listens beyond loopback (``app.py`` calls :func:`set_shared`), or
``CONTINUUM_SHARED=1`` is set (say, behind a reverse proxy on the same
machine), URLs that are not allow-listed may not reach internal addresses
(loopback, private, link-local, cloud metadata… and local names:
:mod:`core.wire.addresses` says which). Host names are resolved first and
refused if any address they resolve to is internal. Then the connection goes to
exactly the addresses that were checked: :mod:`core.wire.pinning` resolves each host once when it
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

This module is the guard's interface: it re-exports what callers use of
:mod:`core.wire.allow_list` and :mod:`core.wire.addresses`.
"""

from __future__ import annotations

import os
import threading
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from core.wire.addresses import (
    RefusedAddress,
    Resolver,
    as_ip,
    connect_addresses,
    internal_name,
    is_internal_ip,
    resolve_host,
)
from core.wire.allow_list import (
    ALLOWED_ENV,
    AllowEntry,
    allow_list,
    parse_allow_list,
    url_host,
    url_port,
)
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

SHARED_ENV = "CONTINUUM_SHARED"

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
    return (url.scheme, url_host(url), url_port(url))


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


# ------------------------------------------------------------------ checks


def _internal_reason(url: httpx.URL, resolve: Resolver) -> str | None:
    host = url_host(url)
    ip = as_ip(host)
    if ip is not None:
        return f"{host} is an internal address" if is_internal_ip(ip) else None
    if internal_name(host):
        return f"{host} names a machine on the local network"
    try:
        addresses = list(resolve(host, url_port(url)))
    except (OSError, UnicodeError):
        return None  # it cannot be reached either; the connection reports that
    for address in addresses:
        if is_internal_ip(address):
            return f"{host} resolves to the internal address {address}"
    return None


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
        reason = _internal_reason(parsed, resolve or resolve_host)
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
