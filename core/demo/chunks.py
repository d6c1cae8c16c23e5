"""Response bodies and pre-encoded SSE events of the demo model.

Token events are built by splicing each token's JSON string literal (encoded
once per document, see ``Document.encoded``) between a constant prefix and
suffix, so a stream costs one bytes concatenation per token.
"""

from __future__ import annotations

import json
import time
from typing import Any

from core.demo.replies import Plan, Rendered

DONE = b"data: [DONE]\n\n"
KEEP_ALIVE = b": keep-alive\n\n"


def usage_of(plan: Plan, out: Rendered) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": plan.prompt_tokens,
        "completion_tokens": out.completion_tokens,
        "total_tokens": plan.prompt_tokens + out.completion_tokens,
    }
    if plan.model.reasoner:
        usage["completion_tokens_details"] = {"reasoning_tokens": out.reasoning_tokens}
    return usage


class ChunkFormat:
    """The SSE events of one streamed response (``chat`` or ``text`` completion)."""

    def __init__(self, kind: str, response_id: str, model: str) -> None:
        self.kind = kind
        self.base: dict[str, Any] = {
            "id": response_id,
            "object": "chat.completion.chunk" if kind == "chat" else "text_completion",
            "created": int(time.time()),
            "model": model,
        }
        head = json.dumps(self.base)[:-1].encode()  # without the closing brace
        if kind == "chat":
            self._open = head + b', "choices": [{"index": 0, "delta": {"'
            self._suffix = b'}, "logprobs": null, "finish_reason": null}]}\n\n'
        else:
            self._open = head + b', "choices": [{"index": 0, "text": '
            self._suffix = b', "logprobs": null, "finish_reason": null}]}\n\n'

    def _event(self, extra: dict[str, Any]) -> bytes:
        return b"data: " + json.dumps({**self.base, **extra}, ensure_ascii=False).encode() + b"\n\n"

    def token_events(self, field: str, tokens: list[bytes]) -> list[bytes]:
        """One event per token; ``field`` is the chat delta field (ignored for text completions)."""
        prefix = b"data: " + (self._open + field.encode() + b'": ' if self.kind == "chat" else self._open)
        suffix = self._suffix
        return [prefix + token + suffix for token in tokens]

    def role_event(self) -> bytes:
        delta = {"role": "assistant", "content": ""}
        return self._event(
            {"choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]}
        )

    def finish_event(self, finish_reason: str, usage: dict[str, Any] | None) -> bytes:
        if self.kind == "chat":
            choice: dict[str, Any] = {
                "index": 0,
                "delta": {},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        else:
            choice = {"index": 0, "text": "", "logprobs": None, "finish_reason": finish_reason}
        extra: dict[str, Any] = {"choices": [choice]}
        if usage is not None:
            extra["usage"] = usage
        return self._event(extra)

    def usage_event(self, usage: dict[str, Any]) -> bytes:
        return self._event({"choices": [], "usage": usage})

    def malformed_event(self) -> bytes:
        """A data line that is not valid JSON (cut inside a string)."""
        return (
            b"data: "
            + json.dumps(self.base)[:-1].encode()
            + b', "choices": [{"index": 0, "delta": {"cont\n\n'
        )


def completion_body(kind: str, response_id: str, plan: Plan, out: Rendered, usage: bool) -> dict[str, Any]:
    """A non-streamed ``chat.completion`` or ``text_completion`` object."""
    body: dict[str, Any] = {
        "id": response_id,
        "object": "chat.completion" if kind == "chat" else "text_completion",
        "created": int(time.time()),
        "model": plan.model.id,
    }
    if kind == "chat":
        message: dict[str, Any] = {"role": "assistant", "content": plan.echo + out.text("content")}
        for name in ("reasoning_content", "reasoning"):
            if any(p.field == name for p in out.pieces):
                message[name] = out.text(name)
        choice: dict[str, Any] = {"index": 0, "message": message}
    else:
        choice = {"index": 0, "text": out.text("text")}
    choice.update({"logprobs": None, "finish_reason": out.finish_reason})
    body["choices"] = [choice]
    if usage:
        body["usage"] = usage_of(plan, out)
    return body
