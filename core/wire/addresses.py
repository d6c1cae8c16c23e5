"""Internal addresses: which hosts and IP addresses a shared Continuum must not reach. Pure.

Part of the URL guard (:mod:`core.wire.guard`). Internal means loopback,
private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local and cloud metadata
(169.254/16, fe80::/10), carrier-grade NAT, multicast, reserved and unspecified
ranges, IPv4 written as one number (``2130706433``) or hex, IPv4-mapped/NAT64/6to4
forms of those, and names such as ``localhost``, ``*.localhost``, ``*.local``,
``*.internal``, ``*.home.arpa`` or one-label intranet names.
:func:`connect_addresses` resolves a host once and checks every address, for
:mod:`core.wire.pinning` to dial exactly those.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable

__all__ = [
    "RefusedAddress",
    "Resolver",
    "as_ip",
    "connect_addresses",
    "internal_name",
    "is_internal_ip",
    "resolve_host",
]

Resolver = Callable[[str, int], Iterable[str]]

_INTERNAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa", ".lan", ".intranet")
_INTERNAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")


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


def internal_name(host: str) -> bool:
    """A name for a machine on the local network (``localhost``, ``*.local``, one label…)."""
    return host in _INTERNAL_NAMES or host.endswith(_INTERNAL_SUFFIXES) or "." not in host


def resolve_host(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (the system resolver; the default :data:`Resolver`)."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


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
    if internal_name(name):
        raise RefusedAddress(f"{name} names a machine on the local network")
    try:
        addresses = list(dict.fromkeys((resolve or resolve_host)(name, port)))
    except UnicodeError as exc:
        raise OSError(f"{name} is not a valid host name ({exc})") from exc
    if not addresses:
        raise OSError(f"{name} has no address")
    for address in addresses:
        if is_internal_ip(address):
            raise RefusedAddress(f"{name} resolves to the internal address {address}")
    return addresses
