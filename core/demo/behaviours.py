"""Behaviours: how the demo model imitates the servers in the wild.

Set per server (``start_demo_server(**defaults)``, CLI flags) and overridden per
request by a path prefix ``/x/<k>=<v>,<k>=<v>/v1/...`` (see :func:`behaviour_url`).
Unknown keys in a prefix are ignored, but the whole prefix string keys the fault
counters, so ``k=<anything>`` gives a test its own counters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from core.demo.models import OUTPUT_CAP

CHOICES: dict[str, tuple[str, ...]] = {
    "prefill": ("continue", "ignored", "prefix", "echo"),
    "vllm": ("off", "required"),
    "usage": ("final", "separate", "absent"),
    "overflow": ("vllm", "deepinfra", "openrouter", "llamacpp", "clamp"),
    "template": ("trim", "keep"),
    "reasoning": ("field", "reasoning", "think"),
    "auth": ("open", "key"),
}

CHAOS_KINDS: tuple[str, ...] = ("cut", "429", "429_bare", "500", "502", "503", "stall", "keepalive", "drip")


class BehaviourError(ValueError):
    """A behaviour key has a value the demo model does not know."""


@dataclass(frozen=True)
class Behaviours:
    """One value per behaviour key; the defaults are the first choice of each."""

    prefill: str = "continue"
    vllm: str = "off"
    usage: str = "final"
    overflow: str = "vllm"
    template: str = "trim"
    reasoning: str = "field"
    auth: str = "open"
    drop: int | str = 0  # 0 = never, N = after N tokens, "random"
    drop_p: float = 0.3
    fail429: int = 0
    fail5xx: int = 0
    malformed: int = 0
    stall: float = 0.0  # seconds of ": keep-alive" comments before the first token
    silent: float = 0.0  # seconds of silence (no bytes at all) before the first token
    seed: int = 0
    rate: float = 0.0  # tokens per second per stream, 0 = unthrottled
    retry_after: float = 0.1  # seconds announced by the 429 fault
    cap: int = OUTPUT_CAP  # output cap per request
    chaos: float = 0.0  # probability that a request gets a random fault (core.demo.chaos)
    chaos_seed: int = 0
    chaos_kinds: str = "all"  # "all" or kinds joined by "+", e.g. "cut+429+stall"
    chaos_stall: float = 0.5  # seconds of a chaos stall or keep-alive span
    chaos_drip: float = 0.002  # seconds between the pieces of a chaos drip
    chaos_max: int = 3  # faulty requests in a row on one prefix before a clean one

    def with_values(self, values: Mapping[str, Any]) -> Behaviours:
        """A copy with ``values`` applied (strings or typed); unknown keys are ignored."""
        changes: dict[str, Any] = {}
        for key, raw in values.items():
            if key in KEYS:
                changes[key] = convert(key, raw)
        return replace(self, **changes) if changes else self


KEYS: tuple[str, ...] = tuple(f.name for f in fields(Behaviours))


def _number(key: str, raw: Any, kind: type, minimum: float | None = 0, maximum: float | None = None) -> Any:
    try:
        if isinstance(raw, bool):
            raise ValueError
        value = kind(raw)
    except (TypeError, ValueError):
        raise BehaviourError(f"behaviour {key}={raw!r}: expected a {kind.__name__}") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise BehaviourError(f"behaviour {key}={raw!r}: must be {bounds}")
    return value


def parse_kinds(raw: Any) -> str:
    """``"cut+429"`` (or ``"all"``) checked and normalised for ``chaos_kinds``."""
    text = str(raw).strip().lower()
    if text in ("", "all"):
        return "all"
    names = [name.strip() for name in text.split("+")]
    unknown = [name for name in names if name not in CHAOS_KINDS]
    if unknown:
        raise ValueError(
            f"unknown chaos kind(s) {', '.join(unknown)}; choose from all, {', '.join(CHAOS_KINDS)}"
        )
    return "+".join(dict.fromkeys(names))


def convert(key: str, raw: Any) -> Any:
    """Check and convert one behaviour value (``raw`` may be a string from a URL)."""
    if key in CHOICES:
        value = str(raw).strip().lower()
        if value not in CHOICES[key]:
            raise BehaviourError(f"behaviour {key}={raw!r}: choose one of {', '.join(CHOICES[key])}")
        return value
    if key == "drop":
        if str(raw).strip().lower() == "random":
            return "random"
        return _number(key, raw, int)
    if key in ("fail429", "fail5xx", "malformed", "chaos_max"):
        return _number(key, raw, int)
    if key == "chaos_kinds":
        try:
            return parse_kinds(raw)
        except ValueError as exc:
            raise BehaviourError(f"behaviour {key}={raw!r}: {exc}") from None
    if key == "cap":
        return _number(key, raw, int, minimum=1)
    if key in ("seed", "chaos_seed"):
        return _number(key, raw, int, minimum=None)
    if key in ("drop_p", "chaos"):
        return _number(key, raw, float, maximum=1)
    if key in ("stall", "silent", "rate", "retry_after", "chaos_stall", "chaos_drip"):
        return _number(key, raw, float)
    raise BehaviourError(f"unknown behaviour {key!r}; known: {', '.join(KEYS)}")


def parse_segment(segment: str) -> dict[str, str]:
    """``"prefill=ignored,usage=absent"`` -> ``{"prefill": "ignored", "usage": "absent"}``."""
    values: dict[str, str] = {}
    for item in segment.split(","):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise BehaviourError(f"behaviour {unquote(item)!r} has no value; write key=value")
        values[unquote(key).strip()] = unquote(value)
    return values


def split_path(path: str) -> tuple[str, str]:
    """``"/x/a=1/v1/models"`` -> ``("a=1", "/v1/models")``; no prefix gives ``("", path)``."""
    if path.startswith("/x/"):
        segment, sep, rest = path[3:].partition("/")
        return segment, "/" + rest if sep else "/"
    return "", path


def _format(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def behaviour_url(base_url: str, **behaviours: object) -> str:
    """The base URL with a behaviour prefix, e.g. ``http://h:p/x/prefill=ignored/v1``.

    A prefix already present in ``base_url`` is kept and merged (new values win).
    Keys are checked when they are behaviour keys; other keys (like ``k``) pass
    through and only separate fault counters.
    """
    parts = urlsplit(base_url)
    segment, rest = split_path(parts.path or "/")
    values: dict[str, str] = parse_segment(segment)
    for key, value in behaviours.items():
        if key in KEYS:
            convert(key, value)
        values[key] = _format(value)
    if not values:
        return urlunsplit(parts._replace(path=rest))
    encoded = ",".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in values.items())
    return urlunsplit(parts._replace(path=f"/x/{encoded}{rest}"))
