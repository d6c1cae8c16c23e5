"""A closed round's seam, checked: the text checks of :mod:`core.continuation.seams` applied to a
round, and the check at temperature 0 of a round that did not write the held-back tail again.

Every finding is a flag in ``Round.seam_flags``; a round that started a new answer instead of
continuing (``restart``) loses its text. What the run does about a flag is the engine's call.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from core.continuation import budget, seams
from core.continuation.probe import self_consistency
from core.continuation.rounds import Plan
from core.continuation.strategies import Strategy
from core.types import CancelToken, Round, RunSpec
from core.wire.client import Client
from core.wire.errors import ContinuumError

__all__ = ["VERIFY_TOKENS", "check_content", "check_reasoning", "judge", "self_consistent", "to_verify"]

VERIFY_TOKENS = 24  # per request of a seam check


def check_content(rnd: Round, plan: Plan, content: str, strategy: str, fences: seams.FenceTracker) -> None:
    """Flag what the round's ``content`` does at its seam with the answer sent (``strategy``: its name)."""
    answer, flags = plan.answer, rnd.seam_flags
    dropped = plan.reply_filter.dropped if plan.reply_filter is not None else ""
    restart = seams.check_restart(answer, content)
    if restart is not None:
        restart["discarded_chars"] = len(content)
        flags.append(restart)
        rnd.text = ""
        return
    check_tail = seams.check_rewritten if plan.verify else seams.check_held_back
    dropped_tail = check_tail(plan.held_text, content, rnd.index - 1)
    if dropped_tail is not None:
        flags.append(dropped_tail)
    if dropped and strategy == "instruction":
        flags.append(
            {
                "kind": "overlap",
                "message": f"removed {len(dropped)} repeated characters at the start of the round",
                "chars": len(dropped),
                "removed": True,
                "excerpt": dropped[:80],
            }
        )
    else:
        overlap = seams.check_overlap(answer, content)
        if overlap is not None:
            flags.append(overlap)
    flags.extend(seams.check_structure(answer, fences))
    tail = answer[-seams.LOOP_WINDOW :]
    loop = seams.check_repetition(tail + content) or seams.check_repeated_round(tail, content)
    if loop is not None:
        flags.append(loop)


def check_reasoning(rnd: Round, before: str, reasoning: str) -> None:
    """A round continuing the reasoning ``before`` it: does it restart or loop?"""
    flag = seams.check_restart(before, reasoning) or seams.check_repetition(
        before[-seams.LOOP_WINDOW :] + reasoning
    )
    if flag is not None:
        flag["in_reasoning"] = True
        rnd.seam_flags.append(flag)


def to_verify(rnd: Round) -> dict[str, Any] | None:
    """The ``dropped`` flag of a round with text that did not write the held-back tail again."""
    if not rnd.text:
        return None
    return next((f for f in rnd.seam_flags if f["kind"] == "dropped"), None)


def self_consistent(
    client: Client, strategy: Strategy, spec: RunSpec, plan: Plan, window: int | None, cancel: CancelToken
) -> str:
    """Two short requests at temperature 0 from the answer before the round (DESIGN §6: a server
    that continues is self-consistent, :func:`core.continuation.probe.judge`): the verdict for
    this run's own conversation at this seam ("unclear" on any error)."""
    room = budget.round_budget(spec, context_tokens=plan.prompt_estimate, produced_tokens=0, window=window)
    if room.max_tokens < 2 * VERIFY_TOKENS:
        return "unclear"
    spec = dataclasses.replace(spec, temperature=0.0, seed=0, max_tokens=VERIFY_TOKENS)
    try:
        return self_consistency(client, strategy, spec, plan.answer, cancel).verdict
    except ContinuumError:
        return "unclear"


def judge(rnd: Round, dropped: dict[str, Any], verdict: str) -> None:
    """Record the ``verdict`` on the ``dropped`` flag; a new turn's text is discarded, flagged ``restart``."""
    dropped["verified"] = verdict
    if verdict == "ignored":
        rnd.seam_flags.append(
            {
                "kind": "restart",
                "message": "the new round did not continue the text sent: at temperature 0 the server "
                "is not self-consistent across a seam, so it starts a new turn",
                "structural": True,
                "discarded_chars": len(rnd.text),
                "excerpt": rnd.text[:80],
            }
        )
        rnd.text = ""
