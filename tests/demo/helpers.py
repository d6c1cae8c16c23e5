"""Test helpers: a minimal SSE reader and plain-httpx calls to the demo model."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class StreamResult:
    """What a streamed response held, read with plain httpx and a minimal SSE parser."""

    status: int
    headers: httpx.Headers
    content: str = ""
    reasoning: str = ""
    reasoning_fields: set[str] = field(default_factory=set)
    contents: list[str] = field(default_factory=list)  # one entry per content delta
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    usage_on_finish: bool = False
    usage_chunks: int = 0  # chunks with empty choices carrying usage
    comments: int = 0
    comments_before_data: int = 0
    done: bool = False
    broken: bool = False  # the connection ended before the response did
    malformed: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)  # data payloads in order
    body: bytes = b""


def parse_sse(raw: bytes, result: StreamResult) -> StreamResult:
    text = raw.decode("utf-8")
    seen_data = False
    for block in text.replace("\r\n", "\n").split("\n\n"):
        for line in block.split("\n"):
            if line.startswith(":"):
                result.comments += 1
                if not seen_data:
                    result.comments_before_data += 1
            elif line.startswith("data: "):
                seen_data = True
                data = line[6:]
                result.events.append(data)
                if data == "[DONE]":
                    result.done = True
                    continue
                try:
                    chunk = json.loads(data)
                except ValueError:
                    result.malformed.append(data)
                    continue
                choices = chunk.get("choices") or []
                if chunk.get("usage") is not None:
                    result.usage = chunk["usage"]
                    if not choices:
                        result.usage_chunks += 1
                    elif choices[0].get("finish_reason"):
                        result.usage_on_finish = True
                for choice in choices:
                    delta = choice.get("delta", {})
                    piece = delta.get("content") if "delta" in choice else choice.get("text")
                    if piece:
                        result.content += piece
                        result.contents.append(piece)
                    for name in ("reasoning_content", "reasoning"):
                        if delta.get(name):
                            result.reasoning += delta[name]
                            result.reasoning_fields.add(name)
                    if choice.get("finish_reason"):
                        result.finish_reason = choice["finish_reason"]
    return result


class DemoAPI:
    """Plain-httpx calls to the demo model (no engine exists for these tests)."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def post(
        self, base: str, body: dict[str, Any], path: str = "/chat/completions", **kw: Any
    ) -> httpx.Response:
        return self.client.post(base + path, json=body, **kw)

    def stream(
        self, base: str, body: dict[str, Any], path: str = "/chat/completions", **kw: Any
    ) -> StreamResult:
        body = {**body, "stream": True}
        parts: list[bytes] = []
        with self.client.stream("POST", base + path, json=body, **kw) as response:
            result = StreamResult(response.status_code, response.headers)
            try:
                for chunk in response.iter_raw():
                    parts.append(chunk)
            except httpx.RemoteProtocolError:
                result.broken = True
        result.body = b"".join(parts)
        if result.status != 200:
            return result
        return parse_sse(result.body, result)

    def rounds(
        self, base: str, prompt: str, max_tokens: int, model: str = "demo", limit: int = 5000
    ) -> tuple[str, list[StreamResult]]:
        """Prefill continuation driven by hand: append each round's content byte-exact."""
        answer = ""
        results: list[StreamResult] = []
        for _ in range(limit):
            messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
            if answer:
                messages.append({"role": "assistant", "content": answer})
            result = self.stream(base, {"model": model, "messages": messages, "max_tokens": max_tokens})
            assert result.status == 200, result.body
            results.append(result)
            answer += result.content
            if result.finish_reason != "length":
                break
        return answer, results


def chat(prompt: str, *, model: str = "demo", max_tokens: int | None = 4096, **extra: Any) -> dict[str, Any]:
    """A chat body with one user message."""
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": prompt}], **extra}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return body
