"""One round's deltas become events: the engine's per-chunk path (used by core.continuation.rounds).

:class:`RoundReader` reads the batches of a :class:`~core.wire.stream.Stream` (one
list of deltas per network read) and turns each into one list of
:class:`~core.types.Delta` events, recording the text in :class:`Got`. A content
chunk costs one Delta and one list append; a batch costs one generator step
up the engine, however many chunks it holds. Only the first chunks of a round
take the general path: the time to the first token is taken there, and a reply
filter (an echo or overlap to drop) or a ``<think>`` splitter at the start of
an answer read the text until they are decided. API keys the server echoes
inside the text are replaced (:class:`~core.wire.redaction.StreamRedactor`) on
both paths, before any event or record sees them.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field

from core.continuation.reasoning import Piece, ThinkSplitter
from core.continuation.strategies import ReplyFilter, Think
from core.types import Delta, Round, StreamDelta, Usage
from core.wire.redaction import StreamRedactor
from core.wire.stream import Batch

__all__ = ["Got", "RoundReader"]


@dataclass
class Got:
    """What a round received."""

    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    chunks: int = 0  # chunks that carried text
    finish_reason: str | None = None
    usage: Usage | None = None
    think: Think = None  # where <think> reasoning in the content stood at the end
    redacted: int = 0  # API keys replaced in what the server sent


class RoundReader:
    """One request's deltas into ``got`` and Delta events for round ``rnd`` (started at ``start``)."""

    def __init__(
        self,
        rnd: Round,
        got: Got,
        *,
        start: float,
        reply_filter: ReplyFilter | None,
        splitter: ThinkSplitter | None,
        keep_reasoning: bool,
        secrets: tuple[str, ...],
    ) -> None:
        self.rnd = rnd
        self.got = got
        self.index = rnd.index
        self.start = start
        self.filter = reply_filter
        self.splitter = splitter
        self.keep_reasoning = keep_reasoning
        # a key echoed inside the text never reaches an event or the store
        self.red = (StreamRedactor(secrets), StreamRedactor(secrets)) if secrets else None
        self.first = True  # no text yet: the time to the first token is still to take
        self.slow = reply_filter is not None or splitter is not None  # still deciding the start

    def read(self, batches: Iterable[Batch]) -> Generator[list[Delta]]:
        """The events of each batch, as one list (batches that give no event give nothing)."""
        take = self.take
        for batch in batches:
            events = take(batch)
            if events:
                yield events

    def take(self, batch: Batch) -> list[Delta]:
        events: list[Delta] = []
        if self.first or self.slow:  # the general path, until the start of the round is decided
            for at, delta in enumerate(batch):
                self._delta(StreamDelta(delta) if isinstance(delta, str) else delta, events)
                if not (self.first or self.slow):
                    batch = batch[at + 1 :]
                    break
            else:
                return events
        add = events.append
        content_append = self.got.content.append
        index = self.index
        feed = self.red[0].feed if self.red is not None else None
        chunks = 0
        for delta in batch:
            if isinstance(delta, str):
                if feed is not None:
                    delta = feed(delta)
                    if not delta:
                        continue
                chunks += 1
                content_append(delta)
                add(Delta(delta, "content", index))
            else:
                self._delta(delta, events)
        self.got.chunks += chunks
        return events

    def _delta(self, delta: StreamDelta, events: list[Delta]) -> None:
        """Any delta, the general way."""
        got = self.got
        text, reasoning = delta.content, delta.reasoning
        if self.red is not None:
            text = self.red[0].feed(text) if text else text
            reasoning = self.red[1].feed(reasoning) if reasoning else reasoning
        if text:
            got.chunks += 1
            self._took_text()
            if self.slow:
                filt, split = self.filter, self.splitter
                self._route(filt.feed(text) if filt is not None else text, events)
                self.slow = (filt is not None and not filt.decided) or (
                    split is not None and not split.passthrough
                )
            else:
                got.content.append(text)
                events.append(Delta(text, "content", self.index))
        if reasoning:
            got.chunks += 1
            self._took_text()
            got.reasoning.append(reasoning)
            if self.keep_reasoning:
                events.append(Delta(reasoning, "reasoning", self.index))

    def _took_text(self) -> None:
        if self.first:
            self.first = False
            self.rnd.ttft_s = time.monotonic() - self.start

    def _route(self, text: str, events: list[Delta]) -> None:
        """Content through the <think> splitter (the start of an answer only)."""
        if not text:
            return
        split = self.splitter
        if split is None:
            self.got.content.append(text)
            events.append(Delta(text, "content", self.index))
            return
        self._pieces(split.feed(text), events)

    def _pieces(self, pieces: list[Piece], events: list[Delta]) -> None:
        for kind, piece in pieces:
            if kind == "content":
                self.got.content.append(piece)
                events.append(Delta(piece, "content", self.index))
            else:
                self.got.reasoning.append(piece)
                if self.keep_reasoning:
                    events.append(Delta(piece, "reasoning", self.index))

    def flush(self, *, cut: bool, broken: bool = False) -> list[Delta]:
        """End of the request: release whatever the redactors, the reply filter or the splitter hold.

        ``broken``: the stream failed. What an undecided filter holds may still be (the start
        of) an echo or an overlap, so it is dropped, not released: nothing is lost, since the
        next round continues from the answer without it.
        """
        events: list[Delta] = []
        got, filt = self.got, self.filter
        red = self.red
        if red is not None:
            held, held_reasoning = red[0].flush(), red[1].flush()
            got.redacted += red[0].count + red[1].count
            if held:
                self._route(filt.feed(held) if filt is not None else held, events)
            if held_reasoning:
                got.reasoning.append(held_reasoning)
                if self.keep_reasoning:
                    events.append(Delta(held_reasoning, "reasoning", self.index))
        text = filt.flush() if filt is not None and not (broken and not filt.decided) else ""
        self._route(text, events)
        split = self.splitter
        if split is not None:
            if split.opened:
                got.think = "closed" if split.closed else "open"
            self._pieces(split.finish(cut=cut), events)
        return events
