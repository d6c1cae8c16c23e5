"""Steering a run: start the answer with an opening, edit it between rounds, follow it up.

What the Studio and the command line share when a person drafts with the model:

- :func:`opening` — a new run whose answer must begin with the given text: an
  :class:`~core.types.Edit` before the first round, so the first request already carries
  it as the partial assistant turn (with the ``instruction`` strategy, as the turn the
  model is asked to continue; with ``completions``, after the rendered template).
- :func:`edited` — a stored run with its answer replaced by the user's text, ready for
  ``engine.run(spec, resume=result)``: the engine continues from exactly that text.
- :func:`follow_up` — a new run in the same thread whose conversation holds the earlier
  prompt and answer, then the new message.

Each returns the :class:`~core.types.RunResult` to hand to the engine (or to
``JobManager.start``) as ``resume``; a store Recorder saves its edits and thread.
Pure functions: no I/O.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from core.types import RunResult, RunSpec

__all__ = ["conversation_turns", "edited", "follow_up", "follow_up_messages", "opening", "opening_of"]


def opening(spec: RunSpec, text: str) -> RunResult:
    """A new run of ``spec`` whose answer begins with ``text`` (nothing when ``text`` is empty)."""
    result = RunResult(spec=spec)
    if text:
        result.edit(text)
    return result


def opening_of(result: RunResult) -> str:
    """The opening ``result`` was started with ("" for none)."""
    first = result.edits[0] if result.edits else None
    if first is None or first.after_round or first.text_before:
        return ""
    return first.inserted


def edited(result: RunResult, text: str) -> RunResult:
    """``result`` (a stored run) with its answer so far replaced by ``text``: the edit is
    recorded (:meth:`RunResult.edit`) and resuming continues from ``text`` exactly."""
    result.edit(text)
    return result


def follow_up_messages(result: RunResult, message: str) -> list[dict[str, Any]]:
    """The conversation of a follow-up: the run's messages, its answer, the new message."""
    messages = [dict(m) for m in result.spec.messages]
    messages.append({"role": "assistant", "content": result.text})
    messages.append({"role": "user", "content": message})
    return messages


def follow_up(result: RunResult, message: str, *, max_rounds: int | None = None) -> RunResult:
    """A new run asking ``message`` after ``result`` (a revision, the next part), in its thread.

    Same provider, model and settings, ``max_rounds`` when given (a continued run's limit
    counts its earlier rounds); a fresh title (the new message names it). The thread is
    ``result``'s, or starts at ``result`` when it had none.
    """
    spec = dataclasses.replace(
        result.spec,
        messages=follow_up_messages(result, message),
        title="",
        max_rounds=max_rounds or result.spec.max_rounds,
    )
    return RunResult(spec=spec, thread_id=result.thread_id or result.run_id, parent_id=result.run_id)


def conversation_turns(spec: RunSpec) -> int:
    """Earlier user turns in ``spec``'s conversation (0 for a run that is not a follow-up)."""
    return max(0, sum(1 for m in spec.messages if m.get("role") == "user") - 1)
