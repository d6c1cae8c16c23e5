"""HTTP errors of the demo model, in the shapes real servers use."""

from __future__ import annotations

import json
from typing import Any


class DemoError(Exception):
    """An error response: OpenAI-style ``{"error": {...}}`` JSON (or an HTML page) with a status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",  # the "type" field
        code: str | int | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
        html: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.code = code
        self.param = param
        self.headers = headers or {}
        self.extra = extra or {}
        self.html = html

    def payload(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.kind, "param": self.param}
        error["code"] = self.code
        error.update(self.extra)
        return {"error": error}

    def content(self) -> tuple[str, bytes]:
        """``(content_type, body)`` of the response."""
        if self.html is not None:
            return "text/html; charset=utf-8", self.html.encode()
        return "application/json", json.dumps(self.payload()).encode()


def overflow_error(flavour: str, context: int, prompt: int, completion: int | None) -> DemoError:
    """A context-overflow 400 in the wording of ``flavour`` (vllm, deepinfra, openrouter, llamacpp)."""
    total = prompt + (completion or 0)
    if flavour == "deepinfra":
        return DemoError(400, f"Requested tokens ({total}) exceed context window of {context}")
    if flavour == "openrouter":
        message = (
            f"This endpoint's maximum context length is {context} tokens. However, you requested about "
            f"{total} tokens ({prompt} of text input, {completion or 0} in the output). Please reduce the "
            'length of either one, or use the "middle-out" transform to compress your prompt automatically.'
        )
        return DemoError(400, message, code=400)
    if flavour == "llamacpp":
        return DemoError(
            400,
            "the request exceeds the available context size, try increasing it",
            kind="exceed_context_size_error",
            code=400,
            extra={"n_prompt_tokens": prompt, "n_ctx": context},
        )
    if completion is None:
        message = (
            f"This model's maximum context length is {context} tokens. However, your messages resulted in "
            f"{prompt} tokens. Please reduce the length of the messages."
        )
    else:
        message = (
            f"This model's maximum context length is {context} tokens. However, you requested {total} "
            f"tokens ({prompt} in the messages, {completion} in the completion). Please reduce the length "
            "of the messages or completion."
        )
    return DemoError(400, message, kind="BadRequestError", code=400)
