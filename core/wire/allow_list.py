"""The allow-list ``CONTINUUM_ALLOWED_BASE_URLS``: its entries and which URLs they admit. Pure.

Part of the URL guard (:mod:`core.wire.guard`, which applies it to every request).
Comma-separated entries (read at call time; unset or empty = no allow-list):

- a **URL prefix** such as ``https://api.deepinfra.com/v1/openai``: same scheme,
  host and port, and a path equal to the prefix's or below it at a ``/``
  boundary (``…/v1`` does not admit ``…/v1beta``; ``..`` segments never match);
- a **host pattern** such as ``api.openai.com``, ``*.example.com`` (subdomains
  only), ``10.0.0.5:8000`` or ``[fd00::5]:8000``: any scheme and path on that
  host, on the given port only if one is given.

A malformed entry raises a :class:`ConfigError` naming it, so the guard refuses
everything rather than allowing more.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from core.wire.errors import ConfigError

__all__ = ["ALLOWED_ENV", "AllowEntry", "allow_list", "parse_allow_list", "url_host", "url_port"]

ALLOWED_ENV = "CONTINUUM_ALLOWED_BASE_URLS"


def url_host(url: httpx.URL) -> str:
    """The host of ``url`` as the guard compares it: lower case, without a trailing dot."""
    return url.host.lower().rstrip(".")


def url_port(url: httpx.URL) -> int:
    """The port of ``url``, the scheme's default when it names none."""
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
        if not _host_matches(self.host, url_host(url)):
            return False
        if self.port is not None and url_port(url) != self.port:
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
        return AllowEntry(entry, url_host(url), url.scheme, url_port(url), url.path.rstrip("/"))
    if "/" in entry or "@" in entry:
        raise _bad_entry(entry, "a host pattern has no path; write a URL prefix with its scheme instead")
    try:
        url = httpx.URL("http://" + entry.replace("*.", "wildcard--.", 1))
    except httpx.InvalidURL as exc:
        raise _bad_entry(entry, str(exc)) from exc
    host = url_host(url).replace("wildcard--.", "*.", 1)
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
