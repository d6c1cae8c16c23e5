"""One request's answer, as an ASGI response: a run's events → one SSE stream, or one completion.

Streamed: the status line waits for the first text (or the run's end), so an error before any
text is an ordinary OpenAI error with its status; once the upstream retries, the 200 goes out
with ``: keep-alive`` comments (also every ``keepalive_s`` of silence). Then text chunks, and
at the end one finish chunk with the whole answer's ``finish_reason`` and usage, and ``[DONE]``.
Nothing marks the seams between rounds (:class:`~core.serve.tracker.AnswerTracker` keeps back
what a next round may still regenerate). An error after text ends the stream with an error
event; the partial answer is in the history.

A client that disconnects stops the run at once (the upstream request is aborted): the watcher
task sees ``http.disconnect``. Non-streamed requests are watched the same way.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from core.serve.bridge import ServeRun
from core.serve.shapes import Shapes, run_error, status_for
from core.serve.tracker import AnswerTracker, Diverged
from core.types import Delta, ErrorInfo, Retrying, RoundFinished, RoundStarted, RunFinished

__all__ = ["RunAnswer"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx: pass every chunk on at once
]


class ClientGone(Exception):
    """Sending failed: the client closed the connection."""


class Batch:
    """The chunks of one batch of events (those of one upstream read, or more when the client
    is slower): the content deltas in a row go through the tracker at once, and the text of one
    kind in a row goes out as one chunk."""

    def __init__(self, shapes: Shapes, tracker: AnswerTracker) -> None:
        self._shapes = shapes
        self._tracker = tracker
        self._out: list[bytes] = []
        self._raw: list[str] = []  # upstream content not yet through the tracker
        self._texts: list[str] = []  # text of one kind, not yet a chunk
        self._kind = "content"

    def delta(self, event: Delta) -> None:
        if event.kind == "content":
            self._raw.append(event.text)
        elif event.text:
            self._settle()
            self._text("reasoning", event.text)

    def round_started(self) -> None:
        self._settle()
        self._text("content", self._tracker.round_started())

    def round_finished(self, event: RoundFinished) -> None:
        self._settle()
        self._tracker.round_finished(event.round)

    def comment(self, text: str) -> None:
        self._settle()
        self._flush()
        self._out.append(f": {text}\n\n".encode())

    def close(self) -> list[bytes]:
        self._settle()
        self._flush()
        return self._out

    def _settle(self) -> None:
        if self._raw:
            raw = self._raw[0] if len(self._raw) == 1 else "".join(self._raw)
            self._raw = []
            self._text("content", self._tracker.delta(raw))

    def _text(self, kind: str, text: str) -> None:
        if not text:
            return
        if kind != self._kind:
            self._flush()
            self._kind = kind
        self._texts.append(text)

    def _flush(self) -> None:
        if self._texts:
            text = "".join(self._texts)
            self._texts = []
            shapes = self._shapes
            self._out.append(shapes.content(text) if self._kind == "content" else shapes.reasoning(text))


class RunAnswer:
    """The ASGI response of one completion request; ``release`` is called when it ends, however."""

    def __init__(
        self,
        run: ServeRun,
        shapes: Shapes,
        *,
        stream: bool,
        include_usage: bool,
        keepalive_s: float,
        release: Callable[[], None],
        opening: str = "",
    ) -> None:
        self.run = run
        self.shapes = shapes
        self.stream = stream
        self.include_usage = include_usage
        self.keepalive_s = keepalive_s
        self.release = release
        self.started = False  # the status line went out
        self._send: Send | None = None
        self._first = shapes.first()  # the role chunk: no answer yet
        self.opening = opening  # the client's own start of the answer: not sent back

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._send = send
        watcher = asyncio.create_task(self._watch(receive))
        try:
            self.run.start()
            await (self._streamed() if self.stream else self._whole())
        except ClientGone:
            self.run.stop(client_left=True)
        finally:
            watcher.cancel()
            self.run.stop()  # ended early (an error, the client left): the upstream request is aborted
            self.release()

    async def _watch(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.run.stop(client_left=True)
                return

    # ------------------------------------------------------------ sending

    async def _out(self, body: bytes, *, more: bool = True) -> None:
        assert self._send is not None
        try:
            await self._send({"type": "http.response.body", "body": body, "more_body": more})
        except OSError as exc:  # uvicorn's ClientDisconnected is an OSError
            raise ClientGone from exc

    async def _start(self, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        assert self._send is not None
        self.started = True
        run_header = [(b"x-continuum-run-id", self.run.run_id.encode())] if self.run.saved else []
        try:
            await self._send(
                {"type": "http.response.start", "status": status, "headers": [*(headers or []), *run_header]}
            )
        except OSError as exc:
            raise ClientGone from exc

    async def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        await self._start(
            status, [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        )
        await self._out(data, more=False)

    # ------------------------------------------------------------ streamed

    async def _streamed(self) -> None:
        tracker = AnswerTracker(self.opening)
        shapes = self.shapes
        pending: list[bytes] = [self._first]
        while True:
            events = await self.run.pipe.get(self.keepalive_s)
            if self.run.client_left:
                return
            if events is None:  # the worker ended without a RunFinished (it always sends one)
                return
            if not events:
                await self._keepalive(pending)
                continue
            out = Batch(shapes, tracker)
            try:
                for event in events:
                    kind = type(event)
                    if kind is Delta:
                        assert isinstance(event, Delta)
                        out.delta(event)
                    elif kind is RoundStarted:
                        out.round_started()
                    elif kind is RoundFinished:
                        assert isinstance(event, RoundFinished)
                        out.round_finished(event)
                    elif kind is Retrying:
                        assert isinstance(event, Retrying)
                        out.comment(f"upstream retry in {event.wait:.1f} s")
                    elif kind is RunFinished:
                        assert isinstance(event, RunFinished)
                        await self._finish(event, tracker, pending + out.close())
                        return
                chunks = out.close()
            except Diverged as exc:
                await self._diverged(exc, pending)
                return
            if chunks:
                if not self.started:
                    await self._start(headers=SSE_HEADERS)
                await self._out(b"".join(pending + chunks))
                pending = []

    async def _keepalive(self, pending: list[bytes]) -> None:
        if not self.started:
            await self._start(headers=SSE_HEADERS)
        await self._out(b"".join(pending) + b": keep-alive\n\n")
        pending.clear()

    async def _finish(self, event: RunFinished, tracker: AnswerTracker, out: list[bytes]) -> None:
        result = event.result
        run_id = self.run.run_id if self.run.saved else None
        rest = tracker.run_finished()
        if rest:
            out.append(self.shapes.content(rest))
        error = event.error or result.error
        if event.stop_reason in ("error", "cancelled"):
            info = error or ErrorInfo(kind="CancelledError", message="The run was stopped on the server.")
            nothing = not any(b.startswith(b"data: ") and b is not self._first for b in out)
            if not self.started and not tracker.sent and nothing:  # an ordinary error response
                await self._json(
                    status_for(info) if event.stop_reason == "error" else 503, run_error(info, run_id)
                )
                return
            out.append(self.shapes.error(run_error(info, run_id)))
        else:
            out.append(self.shapes.last(result, run_id, self.include_usage))
        if not self.started:
            await self._start(headers=SSE_HEADERS)
        await self._out(b"".join(out), more=False)

    async def _diverged(self, exc: Diverged, out: list[bytes]) -> None:
        self.run.stop()
        info = ErrorInfo(
            kind="ProtocolError",
            message=f"The upstream's answer changed after part of it was sent ({exc}); the stream "
            "ends here. The run's text is in the history.",
        )
        out.append(self.shapes.error(run_error(info, self.run.run_id if self.run.saved else None)))
        if not self.started:
            await self._start(headers=SSE_HEADERS)
        await self._out(b"".join(out), more=False)

    # ------------------------------------------------------------ whole

    async def _whole(self) -> None:
        while True:
            events = await self.run.pipe.get(3600.0)
            if self.run.client_left or events is None:
                return
            for event in events:
                if isinstance(event, RunFinished):
                    await self._completed(event)
                    return

    async def _completed(self, event: RunFinished) -> None:
        result = event.result
        run_id = self.run.run_id if self.run.saved else None
        if event.stop_reason in ("error", "cancelled"):
            info = (
                event.error
                or result.error
                or ErrorInfo(kind="CancelledError", message="The run was stopped.")
            )
            await self._json(
                status_for(info) if event.stop_reason == "error" else 503, run_error(info, run_id)
            )
            return
        await self._json(200, self.shapes.completion(result, run_id, self.opening))
