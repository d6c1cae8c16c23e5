"""The allowed range of every number a person can set, and the words when one is out of it.

The bottom of core (with :mod:`core.types`): the client's timeouts, the command
line's argument types, the Studio and :mod:`core.continuation.validation` all check a
value here, so it is refused with the same words everywhere::

    check("max_tokens", 0)     -> "Max tokens per round must be at least 1 (got 0)."
    parse_number("max_tokens", "12_000") -> 12000
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["BOUNDS", "Bound", "check", "parse_number"]


@dataclass(frozen=True)
class Bound:
    """The allowed range of one number; ``above``: the minimum itself is excluded."""

    label: str
    minimum: float
    maximum: float
    integer: bool = False
    above: bool = False
    unit: str = ""
    hint: str = ""


BOUNDS: dict[str, Bound] = {
    "max_tokens": Bound("Max tokens per round", 1, 10_000_000, integer=True),
    "max_rounds": Bound("Max rounds", 1, 10_000, integer=True),
    "target_tokens": Bound(
        "The target length", 1, 100_000_000, integer=True, unit="tokens", hint="Leave it empty for no target."
    ),
    "context_window": Bound("The context window", 1, 100_000_000, integer=True, unit="tokens"),
    "output_cap": Bound("The output cap", 1, 100_000_000, integer=True, unit="tokens"),
    "cost_limit": Bound(
        "The cost limit", 0, 1_000_000, above=True, unit="USD", hint="Leave it empty for none."
    ),
    "temperature": Bound("Temperature", 0, 2),
    "top_p": Bound("top_p", 0, 1, above=True),
    "connect_timeout": Bound("The connect timeout", 0, 86_400, above=True, unit="s"),
    "idle_timeout": Bound("The idle timeout", 0, 86_400, above=True, unit="s"),
    "round_timeout": Bound("The round timeout", 0, 86_400, above=True, unit="s"),
    "concurrency": Bound("Concurrency", 1, 10_000, integer=True),
}


def _show(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def _with_unit(value: float, unit: str) -> str:
    if unit == "USD":
        return f"${_show(value)}"
    return f"{_show(value)} {unit}" if unit else _show(value)


def check(name: str, value: Any) -> str | None:
    """Why ``value`` is not allowed for parameter ``name`` (see :data:`BOUNDS`), or None."""
    bound = BOUNDS[name]
    got = f"(got {value!r})" if not isinstance(value, int | float) else f"(got {_show(value)})"
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "a whole number" if bound.integer else "a number"
        return f"{bound.label} must be {kind} {got}."
    if not math.isfinite(value):
        return f"{bound.label} must be a finite number {got}."
    if bound.integer and value != int(value):
        return f"{bound.label} must be a whole number {got}."
    low, high = _with_unit(bound.minimum, bound.unit), _with_unit(bound.maximum, bound.unit)
    if bound.above and value <= bound.minimum:
        return f"{bound.label} must be more than {low} {got}."
    if value < bound.minimum:
        if bound.maximum <= 100:  # a short range: name both ends
            return f"{bound.label} must be between {low} and {high} {got}."
        return f"{bound.label} must be at least {low} {got}."
    if value > bound.maximum:
        if bound.maximum <= 100:
            return f"{bound.label} must be between {low} and {high} {got}."
        return f"{bound.label} must be at most {high} {got}."
    return None


def parse_number(name: str, text: str) -> int | float:
    """``text`` as parameter ``name``: a number in range, else ValueError with the reason."""
    bound = BOUNDS[name]
    raw = text.strip().replace("_", "")
    try:
        value: int | float = int(raw) if bound.integer else float(raw)
    except ValueError:
        kind = "a whole number" if bound.integer else "a number"
        raise ValueError(f"{bound.label} must be {kind} (got {text!r}).") from None
    problem = check(name, value)
    if problem:
        raise ValueError(problem)
    return value
