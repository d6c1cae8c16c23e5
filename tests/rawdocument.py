"""A document-writing model for the raw server (:mod:`rawserver`), and the faults that wrap it.

:class:`Document` is deterministic prose from a seed (ASCII, with headings and a
Markdown code block) cut into *tokens*: one word with the whitespace before it,
like the demo model. :class:`DocumentHandler` answers like a model that wrote
it: a chat request whose last message is an assistant prefill A (or a
``/v1/completions`` prompt in the ChatML template ending in A) continues D from
the end of A, ``max_tokens`` tokens at a time, finish ``length`` (``stop`` at the
end of D), with usage. A chat template that right-strips A is the default
(``template="trim"``). A prefill D does not start with gets a marker sentence,
never D, so an engine bug shows in the text.

:class:`Fault` scripts what goes wrong on request number ``on`` (an int, a
container of ints, or None for every request)::

    Fault("openrouter_error", on=2, after=5)    # 5 tokens, then OpenRouter's error chunk
    Fault("reset_at", on=3, at_byte=700)       # 700 bytes of the body, then a TCP reset
    Fault("new_turn", on=range(2, 10**9))      # ignore the prefill from request 2 on

``window``: a context window in tokens; a request with prompt + max_tokens over it
gets an overflow in the ``overflow`` wording (see :func:`rawserver.overflow_body`),
as a 400 (``deepinfra500``: a 500), or an empty 200 stream (``empty``: headers and
no events; ``empty_done``: only ``data: [DONE]``) while the same request unstreamed
gets llama.cpp's 400.
"""

from __future__ import annotations

import math
import random
import re
from bisect import bisect_right
from collections.abc import Container
from dataclasses import dataclass
from typing import Any

from rawserver import (
    CLOSE,
    DONE,
    RESET,
    Reply,
    Request,
    chat_chunk,
    completion_chunk,
    error_event,
    finish_error_chunk,
    framed,
    json_reply,
    llamacpp_error_field,
    openai_error,
    openrouter_error,
    overflow_body,
    rate_limited,
    sse_reply,
    usage_chunk,
    usage_obj,
)

TOKEN = re.compile(r"\s*\S+")
CHATML_ASSISTANT = "<|im_start|>assistant\n"
MISMATCH = " [the prefill is not the document]"
MESSAGE_OVERHEAD = 4  # tokens per message, as a template would add


def count_tokens(text: str) -> int:
    return len(TOKEN.findall(text))


# ---------------------------------------------------------------- the document


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_ADJ = _words(
    "quiet bright narrow ancient careful hollow steady restless silver patient distant gentle crooked"
)
_NOUN = _words(
    "river lantern garden engine harbor archive bridge meadow signal compass workshop orchard ledger"
)
_VERB = _words(
    "crossed guarded measured followed lifted mended painted carried counted watched opened copied"
)
_PREP = _words("across beneath beyond within toward beside through along around near")
_ADV = _words("Later Meanwhile Slowly Often Still Afterward Eventually Quietly")
_CODE = "```python\ndef total(values):\n    result = 0\n    for value in values:\n        result += value\n    return result\n```"


def _sentence(rng: random.Random) -> str:
    a, n, v, p = rng.choice, _NOUN, _VERB, _PREP
    forms = (
        f"The {a(_ADJ)} {a(n)} {a(v)} the {a(n)} {a(p)} the {a(_ADJ)} {a(n)}.",
        f"{a(_ADV)}, a {a(n)} {a(v)} every {a(_ADJ)} {a(n)}, and the {a(n)} {a(v)} it {a(p)} the {a(n)}.",
        f"Who {a(v)} the {a(_ADJ)} {a(n)} {a(p)} our {a(n)}?",
        f"Nobody {a(v)} the {a(n)} twice; {rng.randint(2, 99)} of them {a(v)} the {a(_ADJ)} {a(n)} instead.",
        f'"The {a(n)} {a(v)} the {a(n)}," said the {a(_ADJ)} keeper {a(p)} the {a(n)}.',
    )
    return rng.choice(forms)


class Document:
    """``words`` tokens of prose from ``seed``; ``text`` is their concatenation (no trailing space)."""

    def __init__(self, seed: int = 1, words: int = 3000, *, text: str | None = None) -> None:
        self.text = text if text is not None else _generate(seed, words)
        self.tokens = TOKEN.findall(self.text)
        self.starts = [0]
        for token in self.tokens:
            self.starts.append(self.starts[-1] + len(token))

    def position(self, prefill: str, *, trim: bool) -> int | None:
        """Where D continues after ``prefill`` (right-stripped when the template trims), else None."""
        seen = prefill.rstrip() if trim else prefill
        return len(seen) if self.text.startswith(seen) else None

    def pieces(self, position: int, max_tokens: int) -> tuple[list[str], str]:
        """Up to ``max_tokens`` pieces from ``position`` (the rest of a token cut in half first)."""
        end = len(self.text)
        i = bisect_right(self.starts, position) - 1
        out: list[str] = []
        while position < end and len(out) < max_tokens:
            stop = self.starts[i + 1]
            out.append(self.text[position:stop])
            position, i = stop, i + 1
        return out, "stop" if position >= end else "length"


def _generate(seed: int, words: int) -> str:
    rng = random.Random(seed)
    parts: list[str] = []
    count, section, coded = 0, 0, False
    while count < words:
        if count >= words // 3 and not coded:
            block, coded = _CODE, True
        elif rng.random() < 0.12:
            section += 1
            block = f"## Part {section}: the {rng.choice(_ADJ)} {rng.choice(_NOUN)}"
        else:
            block = " ".join(_sentence(rng) for _ in range(rng.randint(2, 6)))
        parts.append(block)
        count += count_tokens(block)
    return "\n\n".join(parts)


MISMATCH_DOC = Document(text=MISMATCH)


# ---------------------------------------------------------------- faults

TOKEN_FAULTS = {"event_error", "openai_error", "openrouter_error", "finish_error", "llamacpp_error_field"}
BYTE_FAULTS = {"reset_at", "close_at"}
USAGE_FAULTS = {"usage_negative", "usage_huge", "usage_gateway"}
KINDS = (
    TOKEN_FAULTS
    | BYTE_FAULTS
    | USAGE_FAULTS
    | {"new_turn", "new_turn_other", "rate_limit", "empty", "empty_done"}
)


@dataclass(frozen=True)
class Fault:
    kind: str
    on: int | Container[int] | None = None  # request number(s); None: every request
    after: int = 0  # token faults: content tokens streamed before the fault
    at_byte: int = 0  # byte faults: bytes of the response body sent before it
    headers: tuple[tuple[str, str], ...] = ()  # rate_limit: the retry headers

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault {self.kind!r}")

    def applies(self, number: int) -> bool:
        if self.on is None:
            return True
        return number == self.on if isinstance(self.on, int) else number in self.on


def _error_frames(kind: str, model: str) -> list[bytes]:
    if kind == "event_error":
        return [error_event()]
    if kind == "openai_error":
        return [openai_error()]
    if kind == "openrouter_error":
        return [openrouter_error(model=model), DONE]
    if kind == "finish_error":
        return [finish_error_chunk(model=model), DONE]
    # a server failure in llama.cpp's error field (its context-size wording is an overflow: not retried)
    return [llamacpp_error_field("Internal server error: slot failed to decode", 500), DONE]


def _usage(kind: str | None, prompt: int, completion: int) -> dict[str, int]:
    if kind == "usage_negative":
        return usage_obj(prompt, -completion - 1)
    if kind == "usage_huge":
        return usage_obj(prompt, 10**12)
    if kind == "usage_gateway":  # a gateway's own tokenizer: 247 for 200
        return usage_obj(prompt, math.ceil(completion * 1.235))
    return usage_obj(prompt, completion)


# ---------------------------------------------------------------- the handler


class DocumentHandler:
    """``RawServer(DocumentHandler(Document(), faults=[...]))``; see the module docstring."""

    def __init__(
        self,
        doc: Document,
        *,
        faults: list[Fault] | tuple[Fault, ...] = (),
        window: int | None = None,
        overflow: str = "vllm",
        usage: str = "separate",  # "separate" (OpenAI) | "final" (on the finish chunk) | "absent"
        template: str = "trim",  # "trim" | "keep": what the chat template does to the prefill
        framing: str = "chunked",
        other: Document | None = None,  # what a server opening a new turn writes (default: D again)
        model: str = "raw-model",
    ) -> None:
        self.doc, self.faults, self.window, self.overflow = doc, list(faults), window, overflow
        self.usage, self.trim, self.framing, self.model = usage, template == "trim", framing, model
        self.other = other or doc
        self.reached = 0  # the end (in characters of D) of the furthest continuation sent whole

    def __call__(self, request: Request) -> Reply:
        if request.method == "GET" and request.path.split("?")[0].endswith("/models"):
            meta = {"context_length": self.window} if self.window else {}
            return json_reply(
                200, {"object": "list", "data": [{"id": self.model, "object": "model", **meta}]}
            )
        body = request.body if isinstance(request.body, dict) else {}
        completions = request.path.rstrip("/").endswith("/completions") and "/chat/" not in request.path
        faults = {f.kind: f for f in self.faults if f.applies(request.number)}
        streamed = bool(body.get("stream"))
        if "rate_limit" in faults:
            request.notes.append("rate_limit")
            return rate_limited(faults["rate_limit"].headers)
        prompt, prefill = _prompt_and_prefill(body, completions)
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
        if self.window and prompt + max_tokens > self.window:
            request.notes.append("overflow")
            return self._overflow(prompt, max_tokens, streamed)
        if "empty" in faults or "empty_done" in faults:
            request.notes.append("empty")
            return sse_reply([DONE] if "empty_done" in faults else [], framing=self.framing)
        doc, position = self.doc, 0
        if prefill and ("new_turn" in faults or "new_turn_other" in faults):
            doc = self.other if "new_turn_other" in faults else self.doc
            request.notes.append("new_turn")
        elif prefill:
            found = self.doc.position(prefill, trim=self.trim)
            if found is None:
                request.notes.append("mismatch")
                doc = MISMATCH_DOC
            else:
                position = found
        pieces, finish = doc.pieces(position, max_tokens)
        if streamed:
            reply, whole = self._streamed(request, pieces, finish, prompt, faults, completions)
        else:
            reply, whole = self._unstreamed(request, pieces, finish, prompt, faults, completions), True
        if doc is self.doc and whole:
            self.reached = max(self.reached, position + sum(map(len, pieces)))
        return reply

    def _overflow(self, prompt: int, max_tokens: int, streamed: bool) -> Reply:
        wording = self.overflow
        if wording in ("empty", "empty_done"):
            if streamed:
                return sse_reply([DONE] if wording == "empty_done" else [], framing=self.framing)
            wording = "llamacpp"  # the same request unstreamed says why
        status = 500 if wording == "deepinfra500" else 400
        wording = "deepinfra" if wording == "deepinfra500" else wording
        body = overflow_body(wording, prompt=prompt, max_tokens=max_tokens, window=self.window or 0)
        return json_reply(status, body)

    def _usage(
        self, request: Request, faults: dict[str, Fault], prompt: int, completion: int
    ) -> dict[str, int]:
        kind = next((k for k in faults if k in USAGE_FAULTS), None)
        if kind is not None:
            request.notes.append(kind)
        return _usage(kind, prompt, completion)

    def _unstreamed(
        self,
        request: Request,
        pieces: list[str],
        finish: str,
        prompt: int,
        faults: dict[str, Fault],
        completions: bool,
    ) -> Reply:
        text, usage = "".join(pieces), self._usage(request, faults, prompt, len(pieces))
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
        choice.update({"text": text} if completions else {"message": {"role": "assistant", "content": text}})
        kind = "text_completion" if completions else "chat.completion"
        return json_reply(
            200, {"id": "raw-1", "object": kind, "model": self.model, "choices": [choice], "usage": usage}
        )

    def _streamed(
        self,
        request: Request,
        pieces: list[str],
        finish: str,
        prompt: int,
        faults: dict[str, Fault],
        completions: bool,
    ) -> tuple[Reply, bool]:
        """The answer as SSE, with a token or byte fault in it; and whether its text went out whole."""
        model = self.model
        usage = self._usage(request, faults, prompt, len(pieces))
        final = {"usage": usage} if self.usage == "final" else {}
        if completions:
            frames = [completion_chunk(p, model=model) for p in pieces]
            frames.append(completion_chunk("", finish, model=model, **final))
        else:
            frames = [chat_chunk(role=True, model=model), *(chat_chunk(p, model=model) for p in pieces)]
            frames.append(chat_chunk(None, finish, model=model, **final))
        if self.usage == "separate":
            frames.append(usage_chunk(usage["prompt_tokens"], usage["completion_tokens"], model=model))
        frames.append(DONE)
        error = next((f for k, f in faults.items() if k in TOKEN_FAULTS), None)
        if error is not None and error.after <= len(pieces):
            request.notes.append(error.kind)
            keep = error.after + (0 if completions else 1)  # the role chunk is not a token
            return sse_reply(frames[:keep] + _error_frames(error.kind, model), framing=self.framing), False
        cut = next((f for k, f in faults.items() if k in BYTE_FAULTS), None)
        if cut is None or cut.at_byte >= len(framed(frames, self.framing)[1]):
            return sse_reply(frames, framing=self.framing), True
        request.notes.append(cut.kind)
        end = RESET if cut.kind == "reset_at" else CLOSE
        return sse_reply(frames, framing=self.framing, cut_at=cut.at_byte, cut_with=end), False


def _prompt_and_prefill(body: dict[str, Any], completions: bool) -> tuple[int, str]:
    """(prompt tokens, the assistant's partial answer A)."""
    if completions:
        prompt = str(body.get("prompt") or "")
        _, found, prefill = prompt.rpartition(CHATML_ASSISTANT)
        return count_tokens(prompt), prefill if found else ""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    tokens = sum(count_tokens(str(m.get("content") or "")) + MESSAGE_OVERHEAD for m in messages)
    last = messages[-1] if messages else {}
    return tokens, str(last.get("content") or "") if last.get("role") == "assistant" else ""
