"""Does an error say the request does not fit the context window? Pure.

Knows the context-overflow wordings of vLLM, OpenAI, OpenRouter, DeepInfra,
llama.cpp and Anthropic, and takes the numbers they give (prompt tokens,
max_tokens, the window, the tokens requested) into a
:class:`~core.wire.errors.ContextOverflowError`.
"""

from __future__ import annotations

import re
from typing import Any

from core.wire.error_body import clip, error_codes, error_object
from core.wire.errors import ContextOverflowError

__all__ = ["parse_context_overflow"]

_INT = r"(\d[\d,_]*)"


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text.replace(",", "").replace("_", ""))
    except ValueError:
        return None


# (pattern, group names) tried in order; every match contributes the numbers it names.
_OVERFLOW_PATTERNS: list[tuple[re.Pattern[str], tuple[str, ...]]] = [
    # vLLM / OpenAI / OpenRouter: "maximum context length is 8192 tokens. However, you requested
    # (about) 9000 tokens (5000 in the messages|of text input, 4000 in the completion|output)"
    (
        re.compile(
            rf"maximum context length is {_INT} tokens.*?requested (?:about )?{_INT} tokens"
            rf"(?: \({_INT} (?:in the messages|of text input)[^,]*, {_INT} in the (?:completion|output))?",
            re.I | re.S,
        ),
        ("context_length", "requested_tokens", "prompt_tokens", "max_tokens"),
    ),
    # OpenAI: "... However, your messages resulted in 9000 tokens"
    (re.compile(rf"maximum context length is {_INT} tokens.*?resulted in {_INT} tokens", re.I | re.S),
     ("context_length", "prompt_tokens")),
    # newer vLLM: "'max_tokens' ... is too large: 4000. This model's maximum context length is 8192
    # tokens and your request has 5000 input tokens"
    (re.compile(rf"too large: {_INT}", re.I), ("max_tokens",)),
    (re.compile(rf"maximum context length is {_INT}", re.I), ("context_length",)),
    (re.compile(rf"request has {_INT} input tokens", re.I), ("prompt_tokens",)),
    # DeepInfra: "Requested tokens (9000) exceed context window of 8192"
    # DeepInfra (400, seen in the wild also as 500): "Requested input length 9000 exceeds maximum
    # input length 8192" -- the input alone is over the window, so no max_tokens fits
    (re.compile(rf"requested input length {_INT} exceeds? (?:the )?maximum input length {_INT}", re.I),
     ("prompt_tokens", "context_length")),
    (re.compile(rf"requested tokens \({_INT}\) exceed context window of {_INT}", re.I),
     ("requested_tokens", "context_length")),
    # Anthropic-style: "prompt is too long: 210000 tokens > 200000 maximum"
    (re.compile(rf"prompt is too long: {_INT} tokens > {_INT}", re.I), ("prompt_tokens", "context_length")),
]  # fmt: skip

_OVERFLOW_WORDS = re.compile(
    r"context[ _]length|context window|context size|maximum context|exceeds? the (?:model'?s? )?"
    r"(?:context|maximum)|prompt is too long|input is too long|context_length_exceeded"
    r"|exceed_context_size|exceeds? (?:the )?maximum input length",
    re.I,
)
_OVERFLOW_CODES = frozenset({"context_length_exceeded", "exceed_context_size_error", "context_too_long"})


def parse_context_overflow(
    message: str, body: Any = None, *, status: int = 400, request_id: str | None = None
) -> ContextOverflowError | None:
    """A ContextOverflowError if ``message``/``body`` say the request does not fit, else None.

    Knows the vLLM, OpenAI, OpenRouter, DeepInfra, llama.cpp and Anthropic wordings
    and takes the numbers they give.
    """
    if not (error_codes(body) & _OVERFLOW_CODES or _OVERFLOW_WORDS.search(message)):
        return None
    numbers = _numbers(message, body)
    exc = ContextOverflowError(
        "",
        status=status,
        request_id=request_id,
        provider_message=message,
        body=body,
        prompt_tokens=numbers.get("prompt_tokens"),
        max_tokens=numbers.get("max_tokens"),
        context_length=numbers.get("context_length"),
        requested_tokens=numbers.get("requested_tokens"),
    )
    exc.message, exc.hint = _overflow_text(exc)
    exc.args = (str(exc),)
    return exc


def _numbers(message: str, body: Any) -> dict[str, int | None]:
    """The token counts the wording (or llama.cpp's error object) gives, by name."""
    numbers: dict[str, int | None] = {}
    for pattern, names in _OVERFLOW_PATTERNS:
        match = pattern.search(message)
        if match:
            for name, value in zip(names, match.groups(), strict=True):
                if value is not None and numbers.get(name) is None:
                    numbers[name] = _int(value)
    err = error_object(body)  # llama.cpp: {"n_prompt_tokens": 9000, "n_ctx": 8192}
    if numbers.get("prompt_tokens") is None and isinstance(err.get("n_prompt_tokens"), int):
        numbers["prompt_tokens"] = err["n_prompt_tokens"]
    if numbers.get("context_length") is None and isinstance(err.get("n_ctx"), int):
        numbers["context_length"] = err["n_ctx"]
    return numbers


def _overflow_text(exc: ContextOverflowError) -> tuple[str, str]:
    parts = []
    if exc.prompt_tokens is not None:
        parts.append(f"prompt {exc.prompt_tokens}")
    if exc.max_tokens is not None:
        parts.append(f"max_tokens {exc.max_tokens}")
    if not parts and exc.requested_tokens is not None:
        parts.append(f"{exc.requested_tokens} tokens requested")
    numbers = " + ".join(parts)
    if exc.context_length is not None:
        numbers = f"{numbers} > window {exc.context_length}" if numbers else f"window {exc.context_length}"
    detail = f" ({numbers})" if numbers else ""
    message = f"The request does not fit the model's context window{detail}: {clip(exc.provider_message)}"
    hint = "Lower max_tokens, shorten the prompt, or start a new run with a model that has a larger window."
    return message, hint
