"""Chat templates for the ``completions`` strategy.

The completions strategy renders the conversation itself and appends the answer
so far, so the server sees exactly the text to continue. Built in: ``llama3``,
``chatml`` (alias ``qwen``), ``deepseek`` and ``mistral``. Anything else that
looks like Jinja (``{{`` or ``{%``) is a user template, rendered in a sandbox
with the Hugging Face variables (``messages``, ``add_generation_prompt``,
``bos_token``, ``eos_token``, ``raise_exception``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from core.wire.errors import ConfigError

Message = dict[str, Any]
Renderer = Callable[[Sequence[Message]], str]


def _text(message: Message) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):  # OpenAI content parts: keep the text ones
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


def _llama3(messages: Sequence[Message]) -> str:
    parts = ["<|begin_of_text|>"]
    for m in messages:
        parts.append(f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{_text(m).strip()}<|eot_id|>")
    parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(parts)


def _chatml(messages: Sequence[Message]) -> str:
    parts = [f"<|im_start|>{m['role']}\n{_text(m)}<|im_end|>\n" for m in messages]
    parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def _deepseek(messages: Sequence[Message]) -> str:
    system = "\n\n".join(_text(m) for m in messages if m["role"] == "system")
    parts = ["<｜begin▁of▁sentence｜>", system]
    for m in messages:
        if m["role"] == "user":
            parts.append(f"<｜User｜>{_text(m)}")
        elif m["role"] == "assistant":
            parts.append(f"<｜Assistant｜>{_text(m)}<｜end▁of▁sentence｜>")
    parts.append("<｜Assistant｜>")
    return "".join(parts)


def _mistral(messages: Sequence[Message]) -> str:
    system = "\n\n".join(_text(m) for m in messages if m["role"] == "system")
    turns = [m for m in messages if m["role"] in ("user", "assistant")]
    last_user = max((i for i, m in enumerate(turns) if m["role"] == "user"), default=-1)
    parts = ["<s>"]
    for i, m in enumerate(turns):
        if m["role"] == "user":
            text = f"{system}\n\n{_text(m)}" if system and i == last_user else _text(m)
            parts.append(f"[INST] {text}[/INST]")
        else:
            parts.append(f" {_text(m)}</s>")
    return "".join(parts)


BUILTIN: dict[str, Renderer] = {
    "llama3": _llama3,
    "chatml": _chatml,
    "qwen": _chatml,
    "deepseek": _deepseek,
    "mistral": _mistral,
}
TEMPLATE_NAMES: tuple[str, ...] = ("llama3", "chatml", "deepseek", "mistral")


def is_jinja(template: str) -> bool:
    return "{{" in template or "{%" in template


def guess_template(model: str) -> str:
    """A built-in template name for a model id (chatml when nothing matches)."""
    name = model.lower()
    if "llama-3" in name or "llama3" in name or "llama-4" in name:
        return "llama3"
    if "deepseek" in name:
        return "deepseek"
    if "mistral" in name or "mixtral" in name or "ministral" in name:
        return "mistral"
    return "chatml"


def _raise(message: str) -> None:
    raise ConfigError(f"The chat template refused the conversation: {message}", hint="check the template")


def render_jinja(source: str, messages: Sequence[Message], **variables: Any) -> str:
    """Render a user (Hugging Face style) template in a sandbox."""
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    context: dict[str, Any] = {
        "messages": [dict(m) for m in messages],
        "add_generation_prompt": True,
        "bos_token": "",
        "eos_token": "",
        "raise_exception": _raise,
    }
    context.update(variables)
    try:
        return env.from_string(source).render(**context)
    except TemplateError as exc:
        raise ConfigError(f"The chat template failed: {exc}", hint="fix the template text") from exc


def render(template: str | None, messages: Sequence[Message], *, model: str = "") -> str:
    """The prompt text up to the start of the assistant's answer.

    ``template``: a built-in name, Jinja text, or None to guess from ``model``.
    """
    name = template or guess_template(model)
    if is_jinja(name):
        return render_jinja(name, messages)
    renderer = BUILTIN.get(name.lower())
    if renderer is None:
        choices = ", ".join(TEMPLATE_NAMES)
        raise ConfigError(
            f"Unknown chat template {name!r}.", hint=f"choose one of {choices}, or paste a Jinja template"
        )
    return renderer(messages)
