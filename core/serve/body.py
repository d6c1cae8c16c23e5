"""A client's request body, made into a RunSpec by the one spec factory (:mod:`core.services.specs`).

``POST /v1/chat/completions`` in the OpenAI shape, with two differences of meaning:

- ``max_tokens`` / ``max_completion_tokens`` is the budget for the **whole answer** (the run's
  ``target_tokens``); each round asks the upstream for its output cap (or
  ``continuum.round_tokens``).
- ``"continuum": {...}`` may carry ``target_tokens``, ``max_rounds``, ``strategy``,
  ``cost_limit`` and ``round_tokens``; anything else in it is refused.

Sampling fields the engine knows (``temperature``, ``top_p``, ``seed``) become spec fields; the
ones in :data:`PASSED_THROUGH` go to the upstream unchanged with every round. ``n`` above 1,
tools and function calling cannot be continued and are refused (400). Other fields are ignored,
as most OpenAI-compatible servers do. A conversation that ends with an assistant message (a
chat front end's "continue response") is answered from there: that message is the opening of
the answer (:func:`core.services.steering.opening`), and the response holds what follows it.
``POST /v1/completions`` (a raw ``prompt``) is a run with
the ``completions`` strategy whose template is the prompt itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.bounds import check
from core.continuation.validation import Checked, validate_spec
from core.services.providers import Provider
from core.services.specs import make_spec
from core.types import STRATEGIES, RunSpec
from core.wire.client import ModelInfo
from core.wire.errors import ConfigError

__all__ = [
    "PASSED_THROUGH",
    "RAW_PROMPT_TEMPLATE",
    "Ask",
    "BadRequest",
    "Defaults",
    "parse_chat",
    "parse_text",
]

PASSED_THROUGH = (
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "top_k",
    "min_p",
    "logit_bias",
    "reasoning_effort",
    "user",
)
REFUSED = {
    "tools": "tool calls cannot be continued across rounds",
    "tool_choice": "tool calls cannot be continued across rounds",
    "functions": "function calls cannot be continued across rounds",
    "function_call": "function calls cannot be continued across rounds",
    "response_format": "a structured response cannot be continued across rounds",
    "logprobs": "log probabilities are not assembled across rounds",
    "audio": "audio output is not supported",
}
CONTINUUM_FIELDS = ("target_tokens", "max_rounds", "strategy", "cost_limit", "round_tokens")
ROLES = ("system", "developer", "user", "assistant", "tool")
# /v1/completions: the client's prompt is the whole text before the answer.
RAW_PROMPT_TEMPLATE = "{{ messages[0]['content'] }}"


class BadRequest(Exception):
    """The request cannot be served: an OpenAI error with ``status``, ``param`` and ``code``."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None, status: int = 400):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status


@dataclass(frozen=True)
class Defaults:
    """What ``python -m core serve`` was started with: the upstream and the limits a request may narrow."""

    provider: Provider
    base_url: str
    model: str = ""
    api_key_env: str | None = None
    round_tokens: int | None = None  # per round (None: the model's output cap, else 4096)
    max_rounds: int | None = None
    target_tokens: int | None = None
    cost_limit: float | None = None
    context_window: int | None = None
    strategy: str | None = None
    template: str | None = None


@dataclass
class Ask:
    """One request, understood: the spec to run and how to answer."""

    spec: RunSpec
    stream: bool = False
    include_usage: bool = False
    kind: str = "chat"  # or "text" (/v1/completions)
    opening: str = ""  # a trailing assistant message: the answer goes on from it
    checked: Checked | None = None  # the spec's validation, handed to the engine (not repeated)


def parse_chat(body: Any, defaults: Defaults, info: ModelInfo | None) -> Ask:
    """``body`` (parsed JSON) of a chat completion request → an :class:`Ask`; :class:`BadRequest` if not."""
    body = _object(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list of messages", param="messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise BadRequest(
                f"messages[{i}] must be an object with a role ({', '.join(ROLES)})", param=f"messages[{i}]"
            )
    messages = [dict(m) for m in messages]
    opening = ""
    last = messages[-1]
    if last["role"] == "assistant" and isinstance(last.get("content"), str) and len(messages) > 1:
        opening = messages.pop()["content"]
    ask = _ask(body, messages, defaults, info, kind="chat")
    ask.opening = opening
    return ask


def parse_text(body: Any, defaults: Defaults, info: ModelInfo | None) -> Ask:
    """``body`` of a (legacy) completion request: one ``prompt`` string, continued raw."""
    body = _object(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise BadRequest("'prompt' must be one non-empty string", param="prompt")
    if body.get("echo") or body.get("suffix") or (body.get("best_of") or 1) > 1:
        raise BadRequest("echo, suffix and best_of are not supported", param="echo")
    return _ask(body, [{"role": "user", "content": prompt}], defaults, info, kind="text")


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    for name, why in REFUSED.items():
        if body.get(name) not in (None, [], False):
            raise BadRequest(f"'{name}' is not supported by Continuum: {why}", param=name)
    if (body.get("n") or 1) != 1:
        raise BadRequest("'n' must be 1: Continuum assembles one answer", param="n")
    return body


def _number(value: Any, name: str, param: str) -> Any:
    if value is None:
        return None
    problem = check(name, value)
    if problem:
        raise BadRequest(problem, param=param)
    return value


def _extension(body: dict[str, Any]) -> dict[str, Any]:
    ext = body.get("continuum") or {}
    if not isinstance(ext, dict):
        raise BadRequest("'continuum' must be an object", param="continuum")
    unknown = sorted(set(ext) - set(CONTINUUM_FIELDS))
    if unknown:
        raise BadRequest(
            f"unknown continuum field(s) {', '.join(unknown)}; known: {', '.join(CONTINUUM_FIELDS)}",
            param=f"continuum.{unknown[0]}",
        )
    strategy = ext.get("strategy")
    if strategy is not None and strategy not in STRATEGIES:
        raise BadRequest(
            f"continuum.strategy must be one of {', '.join(STRATEGIES)}", param="continuum.strategy"
        )
    return ext


def _budget(body: dict[str, Any], ext: dict[str, Any], defaults: Defaults) -> int | None:
    """The whole answer's budget: the smallest of max_tokens, continuum.target_tokens and the server's."""
    given = [
        _number(body.get("max_completion_tokens"), "target_tokens", "max_completion_tokens"),
        _number(body.get("max_tokens"), "target_tokens", "max_tokens"),
        _number(ext.get("target_tokens"), "target_tokens", "continuum.target_tokens"),
        defaults.target_tokens,
    ]
    values = [int(v) for v in given if v is not None]
    return min(values) if values else None


def _ask(
    body: dict[str, Any],
    messages: list[dict[str, Any]],
    defaults: Defaults,
    info: ModelInfo | None,
    kind: str,
) -> Ask:
    ext = _extension(body)
    model = body.get("model") or defaults.model
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required", param="model")
    max_rounds = _number(ext.get("max_rounds"), "max_rounds", "continuum.max_rounds")
    cost_limit = _number(ext.get("cost_limit"), "cost_limit", "continuum.cost_limit")
    if defaults.cost_limit is not None:
        cost_limit = defaults.cost_limit if cost_limit is None else min(cost_limit, defaults.cost_limit)
    if defaults.max_rounds is not None:
        max_rounds = defaults.max_rounds if max_rounds is None else min(max_rounds, defaults.max_rounds)
    round_tokens = _number(ext.get("round_tokens"), "max_tokens", "continuum.round_tokens")
    cap = (info.max_output if info else None) or defaults.provider.output_cap
    per_round = round_tokens or defaults.round_tokens or cap or 4096
    extra = {k: body[k] for k in PASSED_THROUGH if body.get(k) is not None}
    stream_options = body.get("stream_options") or {}
    try:
        spec = make_spec(
            defaults.provider,
            "",
            model=model,
            base_url=defaults.base_url,
            info=info,
            messages=messages,
            max_tokens=min(per_round, cap) if cap else per_round,
            max_rounds=max_rounds,
            target_tokens=_budget(body, ext, defaults),
            cost_limit=cost_limit,
            context_window=defaults.context_window,
            strategy="completions" if kind == "text" else ext.get("strategy") or defaults.strategy,
            template=RAW_PROMPT_TEMPLATE if kind == "text" else defaults.template,
            temperature=_number(body.get("temperature"), "temperature", "temperature"),
            top_p=_number(body.get("top_p"), "top_p", "top_p"),
            seed=body.get("seed") if isinstance(body.get("seed"), int) else None,
            api_key_env=defaults.api_key_env,
            extra_body=extra,
            title="",
        )
        checked = validate_spec(spec)  # a 400 before any run; the engine gets the proof
    except ConfigError as exc:
        raise BadRequest(str(exc)) from None
    return Ask(
        spec=spec,
        checked=checked,
        stream=body.get("stream") is True,
        include_usage=isinstance(stream_options, dict) and stream_options.get("include_usage") is True,
        kind=kind,
    )
