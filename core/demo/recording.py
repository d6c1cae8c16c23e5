"""A recorded run, as the demo model replays it: the JSON transcript read, checked and indexed.

The transcript is the JSON download of a run (``RunResult.to_dict``, schema
``continuum.transcript/1``): ``rounds`` with ``text``, ``reasoning``,
``held_back``, ``finish_reason``, token counts and ``ttft_s`` / ``duration_s``.
This module only reads plain dicts and files (the demo model knows nothing of
the continuation or the store); :class:`ReplayError` names what is wrong and where.

Round k streamed ``reasoning_k`` then ``text_k + held_back_k`` (the engine
gives a round's held-back tail to the next round, which writes it again). The
answer so far when round k was asked for is ``text_1 + … + text_(k-1)``: that is
round k's *content boundary*. :meth:`Recording.cue` finds which round answers
a prefill, see its docstring.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.demo.tokens import common_prefix_length, count_tokens

SCHEMA = "continuum.transcript/1"
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


class ReplayError(ValueError):
    """A transcript the demo model cannot replay; the message names the file, the field and the fix."""


@dataclass(frozen=True)
class Take:
    """One recorded round, placed on the run's reasoning and content tracks."""

    index: int  # 1-based, as recorded
    reasoning: str
    content: str  # what the round streamed: text + held_back
    rstart: int  # where its reasoning starts in the run's whole reasoning
    cstart: int  # its content boundary: where its content starts in the run's assembled text
    finish_reason: str | None
    reasoning_chunks: int  # SSE chunks the replay sends for the reasoning (its recorded tokens)
    content_chunks: int
    prompt_tokens: int
    usage: bool  # the counts came from the server's usage (else the replay sends none)
    ttft_s: float
    duration_s: float

    @property
    def chunks(self) -> int:
        return self.reasoning_chunks + self.content_chunks

    @property
    def rend(self) -> int:
        return self.rstart + len(self.reasoning)

    @property
    def cend(self) -> int:
        return self.cstart + len(self.content)


@dataclass(frozen=True)
class Cue:
    """Where a request lands: what to serve, and from which round's record."""

    take: Take | None  # None: nothing recorded continues this text (``departed`` says why)
    reasoning: str = ""  # reasoning to serve
    content: str = ""  # content to serve
    whole: bool = False  # the whole recorded round, from its start
    rfrom: int = 0  # where the reasoning served starts in the run's whole reasoning
    inside: bool = False  # the prefill ends inside the reasoning (an open ``<think>``)
    departed: int | None = None  # the character where the prefill left the recording
    track: str = "content"  # the track the prefill ends in: content or reasoning
    shift: int = 0  # characters the prefill ends past (+) or short of (-) the round's start on it


@dataclass
class Recording:
    """A transcript ready to replay. Build it with :meth:`from_transcript` or :func:`load_transcript`."""

    takes: list[Take]
    text: str  # the assembled answer: every round's text
    reasoning: str
    spec: dict[str, Any] = field(default_factory=dict)
    source: str = "transcript"

    @property
    def model(self) -> str:
        return str(self.spec.get("model") or "")

    @property
    def tokens(self) -> int:
        return sum(t.chunks for t in self.takes)

    @classmethod
    def from_transcript(cls, data: Any, source: str = "transcript") -> Recording:
        """Check a transcript dict and index its rounds (:class:`ReplayError` on the first problem)."""
        if not isinstance(data, dict):
            raise ReplayError(f"{source}: a transcript is a JSON object, got {_kind(data)}")
        schema = data.get("schema", SCHEMA)
        if schema != SCHEMA:
            raise ReplayError(
                f"{source}: schema {schema!r} is not {SCHEMA!r}: replay reads the JSON download of a "
                "Continuum run (Studio → Download → JSON, or python -m core runs export --format json)"
            )
        rounds = data.get("rounds")
        if not isinstance(rounds, list) or not rounds:
            got = "no rounds" if rounds in (None, []) else _kind(rounds)
            raise ReplayError(f"{source}: `rounds` must be a non-empty list of rounds, got {got}")
        spec = data.get("spec", {})
        if not isinstance(spec, dict):
            raise ReplayError(f"{source}: `spec` must be an object, got {_kind(spec)}")
        takes: list[Take] = []
        text = reasoning = ""
        for i, raw in enumerate(rounds):
            take = _take(raw, f"{source}: rounds[{i}]", i + 1, len(reasoning), len(text))
            takes.append(take)
            text += raw["text"]  # checked by _take
            reasoning += take.reasoning
        if not text and not reasoning:
            raise ReplayError(f"{source}: no round has any text or reasoning: there is nothing to replay")
        return cls(takes, text, reasoning, spec, source)

    # ------------------------------------------------------------ which round answers

    def cue(self, answer: str) -> Cue:
        """What to serve after the assistant prefill ``answer`` ("" for a fresh request).

        No prefill: round 1, whole. A prefill that agrees with the recording (the
        content, or ``<think>`` + the reasoning) up to its end continues from there, in
        the round whose boundary is the *nearest* (ties: the later round): right on a
        boundary, that round whole; a few characters before it (a client that held
        back more than the recorded run did), those characters then that round; past
        a boundary (a broken stream, a short ``max_tokens``), the rest of that round.
        The engine never holds back more than half a round, so a continuation client
        meets the recorded rounds one for one. A prefill that departs from the
        recording gets ``take=None`` and the character where it left.
        """
        if not answer:
            first = self.takes[0]
            return Cue(first, first.reasoning, first.content, whole=True, rfrom=first.rstart)
        head = answer.lstrip()
        if head.startswith(THINK_OPEN):
            rest = head[len(THINK_OPEN) :]
            rest = rest[1:] if rest.startswith("\n") else rest
            if THINK_CLOSE not in rest:
                return self._in_reasoning(rest)
            thought, answer = rest.split(THINK_CLOSE, 1)
            thought = thought.rstrip()
            if not self.reasoning.startswith(thought) or self.reasoning[len(thought) :].strip():
                return Cue(None, departed=common_prefix_length(thought, self.reasoning), track="reasoning")
            answer = answer.lstrip()
            if not answer:
                return self._first_content(inside=False)
        return self._in_content(answer)

    def _in_content(self, answer: str) -> Cue:
        agreed = common_prefix_length(answer, self.text)
        if agreed < len(answer):
            return Cue(None, departed=agreed)
        p = len(answer)
        takes = [t for t in self.takes if t.content and t.cend > p]
        if not takes:
            return Cue(None)  # the end of the recording: nothing more was written
        take = min(takes, key=lambda t: (abs(t.cstart - p), -t.index))
        if p == take.cstart:
            return Cue(take, take.reasoning, take.content, whole=True, rfrom=take.rstart)
        if p < take.cstart:
            return Cue(take, "", self.text[p : take.cstart] + take.content, shift=p - take.cstart)
        return Cue(take, "", take.content[p - take.cstart :], shift=p - take.cstart)

    def _in_reasoning(self, thought: str) -> Cue:
        agreed = common_prefix_length(thought, self.reasoning)
        if agreed < len(thought):
            return Cue(None, departed=agreed, track="reasoning")
        q = len(thought)
        takes = [t for t in self.takes if t.reasoning and t.rend > q]
        if not takes:
            return self._first_content(inside=True)
        take = min(takes, key=lambda t: (abs(t.rstart - q), -t.index))
        gap = self.reasoning[q : take.rstart]  # reasoning the client held back (or never got)
        served = gap + take.reasoning[max(q - take.rstart, 0) :]
        whole = q == take.rstart and not take.cstart
        return Cue(take, served, take.content, whole, q, True, track="reasoning", shift=q - take.rstart)

    def _first_content(self, *, inside: bool) -> Cue:
        """The reasoning is all written and the answer not begun: the first round's content."""
        take = next((t for t in self.takes if t.content), None)
        if take is None:
            return Cue(None)
        return Cue(take, "", take.content, rfrom=len(self.reasoning), inside=inside)


def load_transcript(path: str | Path) -> Recording:
    """Read a transcript file (the JSON download of a run); :class:`ReplayError` names what is wrong."""
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ReplayError(f"cannot read the transcript {name}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReplayError(
            f"{name}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start:,})"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReplayError(
            f"{name}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "replay reads the JSON download of a run"
        ) from None
    return Recording.from_transcript(data, source=Path(path).name)


# ---------------------------------------------------------------- checking one round


_MISSING: Any = object()


def _kind(value: Any) -> str:
    return "null" if value is None else f"{type(value).__name__} {str(value)[:40]!r}"


def _field(
    raw: dict[str, Any], name: str, kind: type, where: str, default: Any = _MISSING, nullable: bool = False
) -> Any:
    value = raw.get(name, default)
    if value is _MISSING:
        raise ReplayError(f"{where} has no `{name}` field")
    if value is None and nullable:
        return None
    if kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    else:
        ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if not ok:
        names = {str: "a string", int: "a whole number", float: "a number", bool: "true or false"}
        raise ReplayError(f"{where}.{name} must be {names[kind]}, got {_kind(value)}")
    if kind in (int, float) and value < 0:
        raise ReplayError(f"{where}.{name} must not be negative, got {value}")
    return value


def _take(raw: Any, where: str, index: int, rstart: int, cstart: int) -> Take:
    if not isinstance(raw, dict):
        raise ReplayError(f"{where} must be an object with text, finish_reason and timings, got {_kind(raw)}")
    text = _field(raw, "text", str, where)
    reasoning = _field(raw, "reasoning", str, where, "")
    held = _field(raw, "held_back", str, where, "")
    finish = _field(raw, "finish_reason", str, where, None, nullable=True)
    completion = _field(raw, "completion_tokens", int, where, 0)
    reasoning_tokens = _field(raw, "reasoning_tokens", int, where, 0)
    prompt = _field(raw, "prompt_tokens", int, where, 0)
    ttft = _field(raw, "ttft_s", float, where, None, nullable=True)
    duration = _field(raw, "duration_s", float, where, 0.0)
    estimated = _field(raw, "completion_estimated", bool, where, False)
    if ttft is not None and ttft > duration:
        raise ReplayError(f"{where}: ttft_s {ttft} is longer than duration_s {duration}")
    content = text + held
    total = completion or count_tokens(reasoning + content)
    if reasoning and content:
        share = (
            reasoning_tokens
            if 0 < reasoning_tokens < total
            else round(total * len(reasoning) / len(reasoning + content))
        )
        r_chunks = min(max(share, 1), total - 1) if total > 1 else 1
    else:
        r_chunks = total if reasoning else 0
    return Take(
        index=index,
        reasoning=reasoning,
        content=content,
        rstart=rstart,
        cstart=cstart,
        finish_reason=finish,
        reasoning_chunks=min(r_chunks, len(reasoning)) if reasoning else 0,
        content_chunks=min(max(total - r_chunks, 1), len(content)) if content else 0,
        prompt_tokens=prompt,
        usage=bool(completion) and not estimated,
        ttft_s=float(ttft or 0.0),
        duration_s=float(duration),
    )
