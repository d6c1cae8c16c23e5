"""The next round's request: the answer so far as the strategy sends it, the tail held back, the
tokens asked for. DESIGN §4 (seams) and §5 (budget).

:func:`plan_round` gives a :class:`~core.continuation.rounds.Plan`, or the reason to send
nothing (the context or the cost limit is reached). Holding back is committed only when a
request goes out: the previous round gives its tail back, and the new round is to write it again.
"""

from __future__ import annotations

from core.continuation import budget, seams
from core.continuation.ledger import Ledger
from core.continuation.reasoning import ThinkSplitter
from core.continuation.rounds import Plan
from core.continuation.strategies import Strategy, Think, prefill_text
from core.types import TRUNCATED_FINISH_REASONS, Round, RunSpec
from core.types.pieces import Pieces
from core.wire.errors import ConfigError

__all__ = ["held_back_chars", "plan_round", "seam_check_due"]


def seam_check_due(spec: RunSpec, last: Round | None, strategy: Strategy, *, first_seam: bool) -> bool:
    """Whether the seam after ``last`` is checked: the first seam, at temperature 0, after a
    truncated round, with a strategy that holds back (whole words then come back to be compared)."""
    return (
        first_seam
        and spec.temperature == 0
        and last is not None
        and last.finish_reason in TRUNCATED_FINISH_REASONS
        and strategy.holds_back
    )


def held_back_chars(text: str, max_tokens: int, *, verify: bool) -> int:
    """How many characters at the end of ``text`` the next round (of ``max_tokens``) is sent without."""
    hold = seams.hold_back_to_verify if verify else seams.hold_back
    return hold(text, max_tokens)


def plan_round(
    spec: RunSpec,
    rounds: list[Round],
    strategy: Strategy,
    ledger: Ledger,
    *,
    parts: list[str],
    reasoning: str,
    think: Think,
    check_seam: bool,
) -> Plan | str:
    """The next request after ``rounds`` (whose text is ``parts`` joined), or a stop reason.

    The answer is sent as the rounds' texts themselves (:class:`~core.types.pieces.Pieces`,
    the last one without the tail held back), never joined: a long run holds the answer once,
    in its rounds (bench/bench_memory.py).

    ``reasoning`` and ``think``: the reasoning so far and where ``<think>`` stands, while the
    answer is empty. ``check_seam``: the first seam at temperature 0 is still to be checked
    (whole words are then held back, and ``Plan.verify`` says they were).
    """
    if spec.max_tokens < 1:
        raise ConfigError(f"max_tokens per round is {spec.max_tokens}.", "Set it to at least 1.")
    whole = Pieces(parts)
    context, chars = ledger.context_tokens(strategy.build(spec, whole, reasoning, think=think)[1])
    room = ledger.room(context)
    if room.exhausted:
        return "context_exhausted"
    last = rounds[-1] if rounds else None
    verify = seam_check_due(spec, last, strategy, first_seam=check_seam)
    held = 0
    if last and last.text and strategy.holds_back:
        held = held_back_chars(last.text, room.max_tokens, verify=verify)
    verify = verify and held > 0
    answer, kept = _without(whole, held)
    endpoint, body = strategy.build(spec, answer, reasoning, think=think)
    if held:
        context, chars = ledger.context_tokens(body)
        room = ledger.room(context)
    body["max_tokens"] = room.max_tokens
    spent = ledger.spent + budget.prompt_cost(spec.prices, context)
    if spec.cost_limit is not None and spec.prices is not None and spent > spec.cost_limit:
        return "cost_limit"
    held_text = ""
    if held and last is not None:  # committed: the previous round gives its tail back
        held_text = last.text[-held:]
        last.held_back = held_text + last.held_back
        last.text = kept  # the very string the request carries as its last piece
    prefill = prefill_text(answer, reasoning, think)
    splitter = None
    if not answer:
        splitter = ThinkSplitter(inside=think == "open", closed=think == "closed", empty=not reasoning)
    return Plan(
        endpoint=endpoint,
        body=body,
        held=held,
        answer=answer,
        prefill=prefill,
        prompt_estimate=context,
        sent_chars=chars,
        held_text=held_text,
        verify=verify,
        reply_filter=strategy.reply_filter(prefill),
        splitter=splitter,
    )


def _without(answer: Pieces, held: int) -> tuple[Pieces, str]:
    """``answer`` without its last ``held`` characters (the end of the last round: less than
    its last piece, :func:`~core.continuation.seams.hold_back`), and what that piece keeps."""
    if not held:
        return answer, ""
    sent = answer.head(len(answer) - held)
    return sent, sent.pieces[-1]
