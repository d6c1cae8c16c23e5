"""The OpenAI shapes the endpoint answers in: stream chunks, whole completions, usage, errors.

A chunk's bytes are built from a prefix made once per response plus the JSON string of its
text, so the per-token cost is one ``json.dumps`` of a short string.
"""

from __future__ import annotations

import json
import time
from typing import Any

from core.types import ErrorInfo, RunResult

__all__ = ["Shapes", "error_body", "finish_reason", "status_for", "usage"]

# How a run's stop reason reads to an OpenAI client: "length" when a limit ended the answer.
LIMITS = frozenset({"max_rounds", "target_reached", "context_exhausted", "cost_limit"})


def finish_reason(stop_reason: str | None) -> str:
    return "length" if stop_reason in LIMITS else "stop"


def usage(result: RunResult) -> dict[str, Any]:
    """The whole run's usage: prompt tokens billed across every round, plus a ``continuum`` object."""
    totals = result.totals()
    prompt, completion = int(totals["prompt_tokens_billed"]), int(totals["completion_tokens"])
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "completion_tokens_details": {"reasoning_tokens": sum(r.reasoning_tokens for r in result.rounds)},
        "prompt_tokens_details": {"cached_tokens": sum(r.cached_tokens for r in result.rounds)},
    }


def continuum_info(result: RunResult, run_id: str | None) -> dict[str, Any]:
    rounds = result.rounds
    return {
        "run_id": run_id,
        "rounds": len(rounds),
        "stop_reason": result.stop_reason,
        "prompt_tokens_billed": result.prompt_tokens_billed,
        "tokens_estimated": result.tokens_estimated,
        "prompt_estimated": any(r.prompt_estimated for r in rounds),
        "completion_estimated": any(r.completion_estimated for r in rounds),
        "cost": result.cost,
        "retries": sum(r.retries for r in rounds),
    }


# ------------------------------------------------------------------ errors

STATUS = {
    "ConfigError": 400,
    "Invalid": 400,
    "BadRequestError": 400,
    "ContextOverflowError": 400,
    "PrefillUnsupportedError": 502,
    "ValidationError": 400,
    "NotFoundError": 404,
    "RateLimitError": 429,
    "AuthenticationError": 502,  # the upstream refused the server's key: not the client's fault
    "PermissionDeniedError": 502,
    "PaymentRequiredError": 502,
    "ConnectTimeoutError": 504,
    "IdleTimeoutError": 504,
    "RoundTimeoutError": 504,
    "TransportTimeoutError": 504,
}
CODES = {"ContextOverflowError": "context_length_exceeded", "NotFoundError": "model_not_found"}
ERROR_TYPES = {
    400: "invalid_request_error",
    404: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
}


def status_for(info: ErrorInfo) -> int:
    """The HTTP status for a run's error: the upstream's failures are a bad gateway (502), its
    timeouts a gateway timeout (504), a bug of ours 500."""
    return STATUS.get(info.kind, 500 if info.kind == "InternalError" else 502)


def error_body(
    message: str, *, kind: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def run_error(info: ErrorInfo, run_id: str | None) -> dict[str, Any]:
    """A run's error as an OpenAI error object (the run id says where the partial answer is)."""
    kind = ERROR_TYPES.get(status_for(info), "upstream_error")
    message = info.message + (f" (run {run_id} in the history keeps what was written)" if run_id else "")
    body = error_body(message, kind=kind, code=CODES.get(info.kind) or info.kind)
    if info.request_id:
        body["error"]["upstream_request_id"] = info.request_id
    return body


# ------------------------------------------------------------------ one response


class Shapes:
    """The chunks and the completion of one response (``kind``: "chat" or "text")."""

    def __init__(self, response_id: str, model: str, kind: str = "chat") -> None:
        self.id = response_id
        self.model = model
        self.kind = kind
        self.created = int(time.time())
        head = json.dumps(
            {
                "id": response_id,
                "object": "chat.completion.chunk" if kind == "chat" else "text_completion",
                "created": self.created,
                "model": model,
            }
        )[:-1]
        self._head = head
        if kind == "chat":
            self._content = (f'data: {head}, "choices": [{{"index": 0, "delta": {{"content": ').encode()
            self._reasoning = (
                f'data: {head}, "choices": [{{"index": 0, "delta": {{"reasoning_content": '
            ).encode()
            self._tail = b'}, "finish_reason": null}]}\n\n'
        else:
            self._content = (f'data: {head}, "choices": [{{"index": 0, "text": ').encode()
            self._reasoning = self._content
            self._tail = b', "logprobs": null, "finish_reason": null}]}\n\n'

    def content(self, text: str) -> bytes:
        return self._content + json.dumps(text, ensure_ascii=False).encode() + self._tail

    def reasoning(self, text: str) -> bytes:
        return self._reasoning + json.dumps(text, ensure_ascii=False).encode() + self._tail

    def first(self) -> bytes:
        """The opening chunk: the assistant's role (chat), as OpenAI sends it."""
        if self.kind != "chat":
            return b""
        return self._event(
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
        )

    def last(self, result: RunResult, run_id: str | None, include_usage: bool) -> bytes:
        """The finish chunk with the whole answer's finish_reason; usage on it, or after it
        in a chunk with empty ``choices`` when the client asked with ``stream_options.include_usage``."""
        reason = finish_reason(result.stop_reason)
        choice: dict[str, Any] = {"index": 0, "finish_reason": reason}
        if self.kind == "chat":
            choice["delta"] = {}
        else:
            choice.update(text="", logprobs=None)
        tail = {"usage": usage(result), "continuum": continuum_info(result, run_id)}
        if include_usage:
            return (
                self._event({"choices": [choice]})
                + self._event({"choices": [], **tail})
                + b"data: [DONE]\n\n"
            )
        return self._event({"choices": [choice], **tail}) + b"data: [DONE]\n\n"

    def error(self, body: dict[str, Any]) -> bytes:
        """An error inside the stream, as OpenAI sends one: a ``data:`` line with an ``error`` object."""
        return b"data: " + json.dumps(body, ensure_ascii=False).encode() + b"\n\n"

    def _event(self, fields: dict[str, Any]) -> bytes:
        return (f"data: {self._head}, " + json.dumps(fields, ensure_ascii=False)[1:] + "\n\n").encode()

    def completion(self, result: RunResult, run_id: str | None, opening: str = "") -> dict[str, Any]:
        """The whole answer as one (non-streamed) completion (after ``opening``, the client's own start)."""
        reason = finish_reason(result.stop_reason)
        text = result.text[len(opening) :] if opening and result.text.startswith(opening) else result.text
        base = {"id": self.id, "created": self.created, "model": self.model}
        if self.kind == "chat":
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if result.reasoning:
                message["reasoning_content"] = result.reasoning
            choice: dict[str, Any] = {
                "index": 0,
                "message": message,
                "finish_reason": reason,
                "logprobs": None,
            }
            base["object"] = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "finish_reason": reason, "logprobs": None}
            base["object"] = "text_completion"
        return {
            **base,
            "choices": [choice],
            "usage": usage(result),
            "continuum": continuum_info(result, run_id),
        }
