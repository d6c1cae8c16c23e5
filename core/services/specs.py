"""The one spec factory: what a front end knows, made into a RunSpec. DESIGN §2.

The Studio, the command line, batch items and resume all build their RunSpec here,
so a model's limits are resolved by one rule: what the user set explicitly, else
the server's model list (:class:`~core.types.ModelInfo`), else the provider's
preset. A spec never holds a key, only the *name* of the variable holding one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from core.services.providers import Provider, get_provider
from core.types import Prices, RunSpec
from core.wire.client import ModelInfo
from core.wire.errors import ConfigError

__all__ = ["make_spec", "model_limits", "with_model"]


def model_limits(provider: Provider, info: ModelInfo | None) -> tuple[int | None, int | None, Prices | None]:
    """(context window, output cap, prices) of a model: its list entry first, then the preset."""
    return (
        (info.context_length if info else None) or provider.context_window,
        (info.max_output if info else None) or provider.output_cap,
        (info.prices if info else None) or provider.prices,
    )


def make_spec(
    provider: Provider | str,
    prompt: str,
    *,
    system: str | None = None,
    model: str | None = None,
    base_url: str | None = None,
    info: ModelInfo | None = None,
    **fields: Any,
) -> RunSpec:
    """A RunSpec for ``prompt`` on ``provider``; ``fields`` are RunSpec fields the user set.

    A field given as None counts as not set (the preset or the model list decides).
    """
    p = get_provider(provider) if isinstance(provider, str) else provider
    messages: list[dict[str, Any]] = []
    if system and system.strip():
        messages.append({"role": "system", "content": system.strip()})
    messages.append({"role": "user", "content": prompt})
    window, cap, prices = model_limits(p, info)
    values: dict[str, Any] = {
        "messages": messages,
        "provider": p.id,
        "base_url": base_url or p.base_url,
        "model": model or p.default_model,
        "context_window": window,
        "output_cap": cap,
        "prices": prices,
        "strategy": p.strategy,
    }
    values.update({k: v for k, v in fields.items() if v is not None})
    return RunSpec(**values)


def with_model(spec: RunSpec, info: ModelInfo | None, *, keep_window: bool = False) -> RunSpec:
    """``spec`` with its model's limits from ``info`` (the model list), by :func:`model_limits`'s rule.

    ``keep_window``: the user set the context window explicitly; it stays.
    """
    try:
        p = get_provider(spec.provider)
    except ConfigError:  # a provider this version does not know: only ``info`` counts
        p = Provider(id=spec.provider, label=spec.provider, base_url=spec.base_url)
    window, cap, prices = model_limits(p, info)
    return dataclasses.replace(
        spec,
        context_window=spec.context_window if keep_window else window,
        output_cap=cap,
        prices=prices,
    )
