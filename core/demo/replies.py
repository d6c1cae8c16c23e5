"""From a request body to what the demo model answers. Pure: no I/O.

``plan_chat`` / ``plan_completion`` decide which document, from which offset,
in which fields (prefill, instruction, reasoning rules) and how many tokens
(context and output cap); ``render`` cuts the tokens that fit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from core.demo.behaviours import Behaviours
from core.demo.document import THINK_CLOSE, THINK_OPEN, document_for, reasoning_for, think_document_for
from core.demo.errors import DemoError, overflow_error
from core.demo.models import MODELS, DemoModel
from core.demo.templates import parse_prompt
from core.demo.tokens import Document, common_prefix_length, continue_at, count_tokens

TOKENS_PER_MESSAGE = 4  # added to each chat message's content tokens for prompt_tokens
FAST_COUNT_CHARS = 4096  # a prefill this long is counted off its document (see Document.prefix_tokens)
INSTRUCTION_OVERLAP = 5  # tokens of A the model repeats after a "continue" instruction
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


@dataclass
class Segment:
    """Part of a reply: ``doc`` from character ``start``, sent in the delta field ``field``."""

    field: str  # content | reasoning_content | reasoning | text
    doc: Document
    start: int = 0


@dataclass
class Plan:
    model: DemoModel
    segments: list[Segment]
    prompt_tokens: int
    max_tokens: int
    echo: str = ""  # streamed back before the continuation (prefill=echo); not billed


@dataclass
class Piece:
    field: str
    text: str
    tokens: list[bytes]  # JSON string literals, one per demo token


@dataclass
class Rendered:
    pieces: list[Piece] = field(default_factory=list)
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    finish_reason: str = "stop"

    def text(self, name: str) -> str:
        return "".join(p.text for p in self.pieces if p.field == name)


def message_text(content: Any) -> str:
    """The text of a message ``content``: a string, or the text parts of a list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "".join(parts)
    raise DemoError(422, f"message content must be a string or a list of parts, got {type(content).__name__}")


def find_model(body: dict[str, Any]) -> DemoModel:
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise DemoError(422, "`model` is required: one of " + ", ".join(MODELS), param="model")
    model = MODELS.get(name)
    if model is None:
        raise DemoError(404, f"The model `{name}` does not exist", code="model_not_found", param="model")
    return model


def requested_max_tokens(body: dict[str, Any]) -> int | None:
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise DemoError(400, f"max_tokens must be an integer, got {value!r}", param="max_tokens")
    if value < 1:
        raise DemoError(400, f"max_tokens must be at least 1, got {value}", param="max_tokens")
    return value


def resolve_max_tokens(requested: int | None, prompt: int, model: DemoModel, b: Behaviours) -> int:
    """Apply the output cap (silently) and the context check (400 or clamp)."""
    context = model.context_length
    if requested is None:
        if prompt >= context:
            raise overflow_error(b.overflow if b.overflow != "clamp" else "vllm", context, prompt, None)
        return min(b.cap, context - prompt)
    wanted = min(requested, b.cap)
    if prompt + wanted <= context:
        return wanted
    if b.overflow == "clamp" and prompt < context:
        return context - prompt
    flavour = b.overflow if b.overflow != "clamp" else "vllm"
    raise overflow_error(flavour, context, prompt, wanted)


def _fresh(model: DemoModel, key: str, b: Behaviours) -> list[Segment]:
    if not model.reasoner:
        return [Segment("content", document_for(key))]
    if b.reasoning == "think":
        return [Segment("content", think_document_for(key))]
    return [Segment(_reasoning_field(b), reasoning_for(key)), Segment("content", document_for(key))]


def _reasoning_field(b: Behaviours) -> str:
    return "reasoning" if b.reasoning == "reasoning" else "reasoning_content"


def _continued(model: DemoModel, key: str, answer: str, b: Behaviours) -> list[Segment]:
    """Segments continuing ``answer`` (already trimmed by the template behaviour)."""
    document = document_for(key)
    if model.reasoner and answer.startswith(THINK_OPEN):
        if b.reasoning == "think":
            return [Segment("content", think_document_for(key), _think_offset(key, answer))]
        if THINK_CLOSE in answer:
            after = answer.split(THINK_CLOSE, 1)[1].lstrip()
            return [Segment("content", document, continue_at(after, document.text))]
        reasoning = reasoning_for(key)
        rest = answer[len(THINK_OPEN) :].lstrip()
        start = continue_at(rest, reasoning.text)
        return [Segment(_reasoning_field(b), reasoning, start), Segment("content", document)]
    return [Segment("content", document, continue_at(answer, document.text))]


def _think_offset(key: str, answer: str) -> int:
    """Where ``answer`` (``<think>``…) stops in the think text; whitespace around the tags may differ."""
    think = think_document_for(key)
    matched = common_prefix_length(answer, think.text)
    if matched == len(answer) or not answer.startswith(THINK_OPEN):
        return matched
    if THINK_CLOSE in answer:
        document = document_for(key)
        after = answer.split(THINK_CLOSE, 1)[1].lstrip()
        return len(think.text) - len(document.text) + common_prefix_length(after, document.text)
    rest = answer[len(THINK_OPEN) :].lstrip()
    return len(THINK_OPEN) + 1 + common_prefix_length(rest, reasoning_for(key).text)


def _chat_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """Each message's tokens + TOKENS_PER_MESSAGE; a long assistant message that is the
    start of the document answering the user message before it is counted off that document."""
    total = 0
    key = ""
    for message in messages:
        text = message_text(message.get("content"))
        tokens = None
        if message["role"] == "assistant" and len(text) >= FAST_COUNT_CHARS:
            tokens = document_for(key).prefix_tokens(text)
        elif message["role"] == "user":
            key = text.strip()
        total += (count_tokens(text) if tokens is None else tokens) + TOKENS_PER_MESSAGE
    return total


def _completion_prompt_tokens(prompt: str, answer: str, doc: Document) -> int:
    """``count_tokens(prompt)``; ``prompt`` ends with ``answer`` (A, which starts with a non-space)."""
    head = prompt[: len(prompt) - len(answer)]
    if len(answer) >= FAST_COUNT_CHARS and head[-1:].isspace():
        tokens = doc.prefix_tokens(answer)
        if tokens is not None:  # the head's trailing whitespace token joins A's first token
            return count_tokens(head) - 1 + tokens
    return count_tokens(prompt)


def _last_user(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message["role"] == "user":
            return message_text(message.get("content")).strip()
    return ""


def _check_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DemoError(422, "`messages` must be a non-empty list of messages", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise DemoError(422, f"messages[{i}] needs a role among {', '.join(sorted(ROLES))}")
        message_text(message.get("content"))
    return messages


def _prefill_honoured(message: dict[str, Any], body: dict[str, Any], b: Behaviours) -> bool:
    if b.vllm == "required":
        cont = body.get("continue_final_message") is True
        if cont and body.get("add_generation_prompt", True) is not False:
            raise DemoError(
                400, "Cannot set both `continue_final_message` and `add_generation_prompt` to True."
            )
        if not cont:
            return False
    if b.prefill in ("prefix", "echo"):
        return message.get("prefix") is True
    return b.prefill == "continue"


def plan_chat(body: dict[str, Any], b: Behaviours) -> Plan:
    """What ``POST /chat/completions`` with ``body`` answers under behaviours ``b``."""
    model = find_model(body)
    messages = _check_messages(body)
    prompt_tokens = _chat_prompt_tokens(messages)
    max_tokens = resolve_max_tokens(requested_max_tokens(body), prompt_tokens, model, b)
    last = messages[-1]
    echo = ""
    if (
        last["role"] == "user"
        and len(messages) >= 2
        and messages[-2]["role"] == "assistant"
        and "continue" in message_text(last.get("content")).lower()
    ):
        # Instruction strategy: continue, but restart a few tokens early (an overlap to remove).
        key = _last_user(messages[:-2])
        answer = message_text(messages[-2].get("content"))
        if THINK_CLOSE in answer:
            answer = answer.split(THINK_CLOSE, 1)[1].lstrip()
        document = document_for(key)
        matched = continue_at(answer, document.text)
        segments = [Segment("content", document, document.restart_offset(matched, INSTRUCTION_OVERLAP))]
    elif last["role"] == "assistant":
        key = _last_user(messages)
        answer = message_text(last.get("content"))
        if _prefill_honoured(last, body, b) and answer.strip():
            if b.prefill == "echo":
                echo = answer
            segments = _continued(model, key, answer.rstrip() if b.template == "trim" else answer, b)
        else:
            segments = _fresh(model, key, b)
    else:
        segments = _fresh(model, _last_user(messages), b)
    return Plan(model, segments, prompt_tokens, max_tokens, echo)


def plan_completion(body: dict[str, Any], b: Behaviours) -> Plan:
    """What ``POST /completions`` with ``body`` answers (prompt = rendered template + A)."""
    model = find_model(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise DemoError(422, "`prompt` must be a string", param="prompt")
    parsed = parse_prompt(prompt)
    key, answer = parsed.user, parsed.answer
    think = model.reasoner and (not answer or answer.startswith(THINK_OPEN))
    document = think_document_for(key) if think else document_for(key)
    prompt_tokens = _completion_prompt_tokens(prompt, answer, document)
    max_tokens = resolve_max_tokens(requested_max_tokens(body), prompt_tokens, model, b)
    if think:
        segment = Segment("text", document, _think_offset(key, answer))
    else:
        segment = Segment("text", document, continue_at(answer, document.text))
    return Plan(model, [segment], prompt_tokens, max_tokens)


def render(plan: Plan) -> Rendered:
    """Cut the plan's segments to ``max_tokens`` tokens; finish "length" if anything is left."""
    out = Rendered()
    budget = plan.max_tokens
    left_over = False
    for segment in plan.segments:
        doc = segment.doc
        index, partial = doc.locate(segment.start)
        if budget <= 0:
            left_over = left_over or index < len(doc)
            continue
        tokens: list[bytes] = []
        if partial is not None:
            tokens.append(json.dumps(partial, ensure_ascii=False).encode())
            index += 1
        take = min(len(doc) - index, budget - len(tokens))
        tokens.extend(doc.encoded[index : index + take])
        end = index + take
        stop_at = doc.starts[end] if end < len(doc) else len(doc.text)
        if end < len(doc):
            left_over = True
        if tokens:
            out.pieces.append(Piece(segment.field, doc.text[segment.start : stop_at], tokens))
        budget -= len(tokens)
        out.completion_tokens += len(tokens)
        if segment.field in ("reasoning", "reasoning_content"):
            out.reasoning_tokens += len(tokens)
    out.finish_reason = "length" if left_over else "stop"
    return out
