"""From shared settings and one item to the item's RunSpec; concurrency caps per provider."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from core.continuation.validation import spec_problems
from core.services.batch.inputs import BatchItem, RowError
from core.services.providers import get_provider
from core.services.specs import with_model
from core.types import RunSpec
from core.wire.errors import ConfigError

DEFAULT_CONCURRENCY = 8
HARD_MAX_CONCURRENCY = 256  # worker threads in one process


def concurrency_cap(provider: str) -> int:
    """The most requests in flight a batch may keep for ``provider`` (its ``max_concurrency``)."""
    try:
        limit = get_provider(provider).max_concurrency
    except ConfigError:  # a provider id this version does not know
        limit = None
    return min(limit or HARD_MAX_CONCURRENCY, HARD_MAX_CONCURRENCY)


def effective_concurrency(requested: int | None, provider: str) -> int:
    """``requested`` (default 8) clamped to 1 … the provider's cap."""
    value = DEFAULT_CONCURRENCY if requested is None else int(requested)
    return max(1, min(value, concurrency_cap(provider)))


def settings_dict(settings: RunSpec) -> dict[str, Any]:
    """The shared settings as stored with a batch (a RunSpec dict; messages hold only a system prompt)."""
    data = settings.to_dict()
    data["messages"] = [m for m in settings.messages if m.get("role") == "system"]
    return data


def settings_from_dict(data: Mapping[str, Any]) -> RunSpec:
    values = dict(data)
    values.setdefault("messages", [])
    return RunSpec.from_dict(values)


def default_system(settings: RunSpec) -> str | None:
    for message in settings.messages:
        if message.get("role") == "system" and str(message.get("content") or "").strip():
            return str(message["content"])
    return None


def item_spec(settings: RunSpec, item: BatchItem, models: Mapping[str, Any] | None = None) -> RunSpec:
    """The RunSpec answering ``item``: the shared settings, the item's prompt, system and overrides.

    A model override takes its context window, output cap and prices from
    ``models`` (id → ModelInfo) when known; prices of an unknown model are unknown.
    """
    system = item.system if item.system is not None else default_system(settings)
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": item.prompt})
    changes: dict[str, Any] = {
        "messages": messages,
        "title": item.id,
        "extra_body": dict(settings.extra_body),
    }
    changes.update(item.overrides)
    spec = dataclasses.replace(settings, **changes)
    model = item.overrides.get("model")
    if model and model != settings.model:  # another model's limits, by the spec factory's rule
        spec = with_model(spec, (models or {}).get(model), keep_window="context_window" in item.overrides)
    return spec


def check_items(
    items: list[BatchItem], settings: RunSpec, models: Mapping[str, Any] | None = None
) -> tuple[list[BatchItem], list[RowError]]:
    """The items that may run with ``settings``, and a row error for each problem of the others.

    The same checks as a single run (:func:`core.continuation.validation.spec_problems`): a
    prompt longer than the model's window, an override out of range… are found
    before the batch starts, named by line, and do not stop the good rows.
    """
    good: list[BatchItem] = []
    errors: list[RowError] = []
    for item in items:
        problems = spec_problems(item_spec(settings, item, models))
        if not problems:
            good.append(item)
            continue
        for problem in problems:
            column = problem.field if problem.field in item.overrides else "prompt"
            errors.append(RowError(item.line, column, str(problem)))
    return good, errors
