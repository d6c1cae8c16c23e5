"""Replaying a recorded run: real text at the recorded pace, through the demo model's HTTP path.

A demo server started with a transcript (``start_demo_server(replay=…)``,
``python -m core demo --replay FILE``) serves one more model, ``replay`` (and the
run's own model name when it is not a demo model's), on ``/v1/chat/completions``
and ``/v1/completions``, streamed or not. The Studio, the CLI and the probe see a
live run; the demo models keep working beside it.

What a request gets (:meth:`core.demo.recording.Recording.cue` decides the round):

- no prefill: round 1; a prefill equal to the text before round k: round k, whole,
  with its recorded ``finish_reason`` ("length" for capped rounds, so a client
  continues), usage (``prompt_tokens``, ``completion_tokens``, ``reasoning_tokens``;
  none when the recorded counts were estimates) and pace;
- a prefill that agrees with the recording but ends elsewhere: the text from there
  to the end of the nearest round, with that round's finish reason and pace;
- a prefill that departs from the recording (an edited answer, another document):
  an empty answer with ``finish_reason: "stop"`` — nothing recorded continues it —
  and a header ``x-replay`` saying at which character it departed. The run ends
  cleanly, as "finished", with the text the client had.

Every reply carries ``x-replay`` (the round, and the planned pace or the departure).
``max_tokens`` below the round's recorded tokens cuts the reply there ("length").
Reasoning goes in ``reasoning_content`` (``reasoning=reasoning``: ``reasoning``;
``reasoning=think`` and ``/completions``: ``<think>`` tags in the text). The prompt
itself is not checked: any conversation replays the recording.

Pace: a round's chunks (one per recorded token) are spread evenly between its
recorded time to first token and its recorded duration, both divided by
``speed`` (2 = twice as fast; 0 = no waiting at all). The server's ``rate``
does not apply to the replay model; ``usage``, ``auth``, faults, ``stall`` and
``silent`` do (``silent`` adds to the time to first token); ``prefill``,
``vllm``, ``template``, ``overflow`` and ``cap`` do not. A recorded round that
broke off without a finish reason breaks off again (streamed) after its text.
``GET /v1/models/replay`` lists the planned pace per round under ``metadata.replay``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.demo.behaviours import Behaviours
from core.demo.errors import DemoError
from core.demo.models import CREATED, MODELS, DemoModel
from core.demo.recording import THINK_CLOSE, THINK_OPEN, Cue, Recording, ReplayError, Take, load_transcript
from core.demo.replies import TOKENS_PER_MESSAGE, Piece, Plan, Rendered, message_text, requested_max_tokens
from core.demo.templates import parse_prompt
from core.demo.tokens import count_tokens

MODEL = "replay"
DEFAULT_CONTEXT = 131_072  # when the transcript does not name the window


@dataclass(frozen=True)
class Pace:
    """When a reply's chunks leave: the first after ``ttft_s``, then one every ``interval_s``."""

    ttft_s: float
    interval_s: float

    @classmethod
    def of(cls, take: Take, speed: float) -> Pace:
        if speed <= 0:
            return cls(0.0, 0.0)
        gap = (take.duration_s - take.ttft_s) / (take.chunks - 1) if take.chunks > 1 else 0.0
        return cls(take.ttft_s / speed, max(gap, 0.0) / speed)

    def duration(self, chunks: int) -> float:
        return self.ttft_s + self.interval_s * max(chunks - 1, 0)


def split(text: str, n: int) -> list[str]:
    """``text`` in ``n`` pieces of (nearly) equal length, joined back exactly ([] for none)."""
    if n <= 0 or not text:
        return []
    n = min(n, len(text))
    return [text[len(text) * i // n : len(text) * (i + 1) // n] for i in range(n)]


def _share(served: str, chunks: int, whole: str) -> int:
    """Chunks for ``served`` at the density of a recorded text ``whole`` of ``chunks`` chunks."""
    if not served:
        return 0
    return min(len(served), max(1, round(len(served) * chunks / max(len(whole), 1))))


def _spec_int(spec: dict[str, Any], name: str) -> int:
    value = spec.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _price(value: Any) -> float:
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0 else 0.0
    )


class Replay:
    """A recording served as a model. ``speed``: pace factor (0 = no waiting)."""

    def __init__(self, recording: Recording, speed: float = 1.0) -> None:
        if not (isinstance(speed, int | float) and math.isfinite(speed) and speed >= 0):
            raise ReplayError(
                f"speed must be a number ≥ 0 (1 = as recorded, 2 = twice as fast), got {speed!r}"
            )
        self.recording = recording
        self.speed = float(speed)
        own = recording.model
        alias = own if own and own != MODEL and own not in MODELS else ""
        self.model_ids: tuple[str, ...] = (MODEL, alias) if alias else (MODEL,)
        spec = recording.spec
        prices = spec.get("prices")
        prices = prices if isinstance(prices, dict) else {}
        self.model = DemoModel(
            MODEL,
            _spec_int(spec, "context_window") or DEFAULT_CONTEXT,
            _price(prices.get("input_per_mtok")),
            _price(prices.get("output_per_mtok")),
            reasoner=bool(recording.reasoning),
        )
        chunks = [t.chunks for t in recording.takes]
        self.cap = max([*chunks, _spec_int(spec, "max_tokens"), _spec_int(spec, "output_cap"), 1])

    @classmethod
    def of(cls, source: Replay | Recording | dict[str, Any] | str | Path, speed: float = 1.0) -> Replay:
        """A replay of a transcript dict, a transcript file, a :class:`Recording` or a Replay (as is)."""
        if isinstance(source, Replay):
            return source
        if isinstance(source, Recording):
            return cls(source, speed)
        if isinstance(source, dict):
            return cls(Recording.from_transcript(source), speed)
        return cls(load_transcript(source), speed)

    def describe(self) -> str:
        r = self.recording
        names = " and ".join(f"`{m}`" for m in self.model_ids)
        pace = "no waiting" if not self.speed else f"speed {self.speed:g}×"
        return f"replaying {r.source}: {len(r.takes)} rounds, {r.tokens:,} tokens, as model {names} ({pace})"

    # ------------------------------------------------------------ models and schedule

    def schedule(self) -> list[dict[str, Any]]:
        """The planned pace of every recorded round at this speed (what ``/v1/models/replay`` lists)."""
        rows = []
        for take in self.recording.takes:
            pace = Pace.of(take, self.speed)
            rows.append(
                {
                    "round": take.index,
                    "finish_reason": take.finish_reason,
                    "chunks": take.chunks,
                    "ttft_s": pace.ttft_s,
                    "interval_s": pace.interval_s,
                    "duration_s": pace.duration(take.chunks),
                    "recorded_ttft_s": take.ttft_s,
                    "recorded_duration_s": take.duration_s,
                }
            )
        return rows

    def entries(self, with_meta: bool) -> list[dict[str, Any]]:
        """The ``/v1/models`` entries of the replay model (and its alias)."""
        out = []
        for name in self.model_ids:
            entry: dict[str, Any] = {
                "id": name,
                "object": "model",
                "created": CREATED,
                "owned_by": "continuum-demo",
            }
            if with_meta:
                entry["metadata"] = {
                    "description": "Demo replay of a recorded run: recorded text at the recorded pace.",
                    "context_length": self.model.context_length,
                    "max_tokens": self.cap,
                    "pricing": {
                        "input_tokens": self.model.input_price,
                        "output_tokens": self.model.output_price,
                    },
                    "tags": ["demo", "replay", "reasoning"] if self.model.reasoner else ["demo", "replay"],
                    "replay": {
                        "source": self.recording.source,
                        "speed": self.speed,
                        "rounds": self.schedule(),
                    },
                }
            out.append(entry)
        return out

    # ------------------------------------------------------------ answering

    def serves(self, body: dict[str, Any]) -> bool:
        return body.get("model") in self.model_ids

    def answer(
        self, kind: str, body: dict[str, Any], b: Behaviours, headers: dict[str, str]
    ) -> tuple[Plan, Rendered, Behaviours]:
        """What a chat (``kind`` "chat") or text completion request gets; notes it in ``headers``."""
        model = dataclasses.replace(self.model, id=str(body["model"]))
        answer, prompt_tokens = _read_request(kind, body)
        limit = requested_max_tokens(body)
        cue = self.recording.cue(answer)
        take = cue.take
        if take is None:
            if cue.departed is not None:
                headers["x-replay"] = (
                    f"departed from the recording at character {cue.departed} of its {cue.track}: "
                    "nothing recorded continues this text, so the answer is empty (finish_reason stop)"
                )
            else:
                headers["x-replay"] = "the end of the recording: nothing more was written"
            return Plan(model, [], prompt_tokens, 0), Rendered(finish_reason="stop"), b
        think = kind == "text" or b.reasoning == "think"
        out, cut = self._render(kind, cue, take, limit, think, b)
        if take.prompt_tokens:  # as recorded, give or take the characters the client has more or less
            text = take.reasoning if cue.track == "reasoning" else take.content
            chunks = take.reasoning_chunks if cue.track == "reasoning" else take.content_chunks
            prompt_tokens = max(1, take.prompt_tokens + round(cue.shift * chunks / max(len(text), 1)))
        pace = Pace.of(take, self.speed)
        where = "whole" if cue.whole else "from the client's text"
        headers["x-replay"] = (
            f"round {take.index} ({where}): {out.completion_tokens} chunks, first after "
            f"{pace.ttft_s:.3f} s, then every {pace.interval_s:.4f} s; finish_reason {out.finish_reason}"
        )
        changes: dict[str, Any] = {}
        if self.speed > 0:
            changes = {
                "rate": 1 / pace.interval_s if pace.interval_s > 0 else 0.0,
                "silent": b.silent + pace.ttft_s,
            }
        if not take.usage:
            changes["usage"] = "absent"
        if take.finish_reason is None and not cut and out.completion_tokens and body.get("stream") is True:
            changes["drop"] = out.completion_tokens  # it broke off when recorded: it breaks off again
        return Plan(model, [], prompt_tokens, limit or self.cap), out, dataclasses.replace(b, **changes)

    def _render(
        self, kind: str, cue: Cue, take: Take, limit: int | None, think: bool, b: Behaviours
    ) -> tuple[Rendered, bool]:
        """The reply's chunks, reasoning then content, and whether ``limit`` cut them."""
        r_chunks = split(cue.reasoning, _share(cue.reasoning, take.reasoning_chunks, take.reasoning))
        c_chunks = split(cue.content, _share(cue.content, take.content_chunks, take.content))
        cut = limit is not None and len(r_chunks) + len(c_chunks) > limit
        if limit is not None:
            r_chunks = r_chunks[:limit]
            c_chunks = c_chunks[: limit - len(r_chunks)]
        out = Rendered(reasoning_tokens=len(r_chunks), completion_tokens=len(r_chunks) + len(c_chunks))
        if think and (r_chunks or cue.inside):
            served = "".join(r_chunks)
            if r_chunks and cue.rfrom == 0 and not cue.inside:  # the client has no <think> yet
                r_chunks[0] = THINK_OPEN + "\n" + r_chunks[0]
            if cue.rfrom + len(served) == len(self.recording.reasoning) and (c_chunks or not cut):
                closing = "\n" + THINK_CLOSE + "\n\n"
                if r_chunks:
                    r_chunks[-1] += closing
                elif c_chunks:
                    c_chunks[0] = closing.lstrip("\n") + c_chunks[0]
        content_field = "text" if kind == "text" else "content"
        reasoning_field = (
            content_field if think else ("reasoning" if b.reasoning == "reasoning" else "reasoning_content")
        )
        for name, chunks in ((reasoning_field, r_chunks), (content_field, c_chunks)):
            if chunks:
                tokens = [json.dumps(c, ensure_ascii=False).encode() for c in chunks]
                out.pieces.append(Piece(name, "".join(chunks), tokens))
        if cut:
            out.finish_reason = "length"
        elif take.finish_reason is not None:
            out.finish_reason = take.finish_reason
        else:  # the recorded stream broke off: more was to come unless it was the last round
            out.finish_reason = "length" if take.index < len(self.recording.takes) else "stop"
        return out, cut


def _read_request(kind: str, body: dict[str, Any]) -> tuple[str, int]:
    """The answer so far (the assistant prefill) and the request's prompt tokens (demo count)."""
    if kind == "text":
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise DemoError(422, "`prompt` must be a string", param="prompt")
        return parse_prompt(prompt).answer, count_tokens(prompt)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise DemoError(422, "`messages` must be a non-empty list of messages", param="messages")
    texts = [message_text(m.get("content")) for m in messages]
    prompt_tokens = sum(count_tokens(t) + TOKENS_PER_MESSAGE for t in texts)
    roles = [m.get("role") for m in messages]
    if roles[-1] == "assistant":
        return texts[-1], prompt_tokens
    if (
        roles[-1] == "user"
        and len(roles) >= 2
        and roles[-2] == "assistant"
        and "continue" in texts[-1].lower()
    ):
        return texts[-2], prompt_tokens  # the instruction strategy: continue the answer before it
    return "", prompt_tokens
