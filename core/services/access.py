"""Who may use a shared Continuum: the app's access gate.

The access gate
---------------
:func:`needs_password`: an ``access_password`` is set (on any listener, with or
without a server-side key), or the server is exposed (:func:`is_exposed`) with a
server-side key (:func:`server_key_configured`) and no sign-in
(:mod:`core.services.people`: then each person signs in), when, without a password, the
app refuses to serve. The app compares what a session gives with
:func:`password_matches` (constant time); :class:`GateThrottle` slows repeated
wrong passwords down (no wait for the first ``FREE_TRIES``, then 1, 2, 4… seconds,
at most ``MAX_WAIT_S``).

Where requests may go (the allow-list, shared mode, internal addresses) is
:mod:`core.wire.guard`; this module only reads it.
"""

from __future__ import annotations

import hmac
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx

from core.services.keys import find_api_key
from core.services.people import sign_in_configured
from core.services.providers import PROVIDERS
from core.wire.errors import ConfigError
from core.wire.guard import allow_list, as_ip, is_shared, shared_by_env

__all__ = [
    "FREE_TRIES",
    "MAX_WAIT_S",
    "GateThrottle",
    "is_exposed",
    "is_loopback_listener",
    "needs_password",
    "password_matches",
    "password_set",
    "server_key_configured",
    "server_key_may_go_to",
]

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
    ip = as_ip(host.strip("[]"))
    return ip is not None and ip.is_loopback


def server_key_configured(
    secrets: Mapping[str, Any] | None, environ: Mapping[str, str] | None = None
) -> bool:
    """Whether any provider has a key in the secrets or the environment (not pasted in a session)."""
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


def password_set(secrets: Mapping[str, Any] | None) -> bool:
    """Whether the secrets hold a non-empty ``access_password``."""
    expected = (secrets or {}).get("access_password")
    return isinstance(expected, str) and bool(expected)


def needs_password(
    address: str | None, secrets: Mapping[str, Any] | None, environ: Mapping[str, str] | None = None
) -> bool:
    """The app must ask for ``access_password`` (see the module docstring): one is set, or the
    server is exposed (see :func:`is_exposed`) with a server-side key and nobody signs in (with
    sign-in configured, :mod:`core.services.people`, each person's sign-in is the gate)."""
    if password_set(secrets):
        return True
    if sign_in_configured(secrets):
        return False
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
        return any(entry.matches(url) for entry in allow_list(environ))
    except (httpx.InvalidURL, ConfigError):
        return False


def password_matches(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; an unset or empty expected password never matches."""
    if not expected or given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


FREE_TRIES = 3  # wrong passwords before the gate starts to wait
MAX_WAIT_S = 60.0  # the longest wait between two tries


class GateThrottle:
    """Slows repeated wrong access passwords down, per key (a session, a client address).

    After ``free`` failures in a row a key waits 1 s before its next try, then 2, 4…
    (at most ``cap``); a try during the wait is not checked. Success forgets the key.
    ``now``: seconds on ``clock`` (default ``time.monotonic``; tests give their own).
    """

    def __init__(
        self,
        free: int = FREE_TRIES,
        cap: float = MAX_WAIT_S,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free = free
        self.cap = cap
        self.max_keys = max_keys
        self.clock = clock
        self._failures: dict[str, tuple[int, float]] = {}  # key -> (failures in a row, until)
        self._lock = threading.Lock()

    def delay(self, failures: int) -> float:
        """The wait after ``failures`` wrong passwords in a row."""
        if failures < self.free:
            return 0.0
        return float(min(self.cap, 2 ** min(failures - self.free, 30)))

    def wait(self, keys: Iterable[str], now: float | None = None) -> float:
        """Seconds before any of ``keys`` may try again (0: now)."""
        now = self.clock() if now is None else now
        with self._lock:
            return max([0.0] + [self._failures.get(key, (0, 0.0))[1] - now for key in keys])

    def failed(self, keys: Iterable[str], now: float | None = None) -> float:
        """Record a wrong password for ``keys``; returns the wait before the next try."""
        now = self.clock() if now is None else now
        waits = [0.0]
        with self._lock:
            if len(self._failures) >= self.max_keys:  # forget the keys whose wait is over
                self._failures = {k: v for k, v in self._failures.items() if v[1] > now}
            for key in keys:
                failures = self._failures.get(key, (0, 0.0))[0] + 1
                delay = self.delay(failures)
                self._failures[key] = (failures, now + delay)
                waits.append(delay)
        return max(waits)

    def passed(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
