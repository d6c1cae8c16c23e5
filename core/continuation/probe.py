"""Does this server continue a prefill? A structural check that needs no sensible model. DESIGN §3, §6.

At temperature 0 a server that truly continues is *self-consistent*: the text
``X`` of one request for k tokens equals a request for its first j tokens
(``X1``, cut at a word boundary) followed by a continuation from ``X1``. So the
probe sends two requests with the strategy under test::

    A:  the conversation, no prefill              -> X  = X1 + X2
    B:  the conversation + X1 as the partial turn  -> Y

and compares ``Y`` with ``X2``:

* **honoured** — ``Y`` starts with ``X2`` (all of it, or at least
  ``AGREE_CHARS`` characters before a later divergence, which is sampling noise
  of a batched server, not a new turn);
* **ignored** — ``Y`` diverges within the first ``SEAM_CHARS`` characters: the
  server opened a new turn instead of continuing (a random-weight model that
  cannot count gets the same verdict as a real one);
* **echoes** — with the ``prefix`` strategy, ``Y`` repeats ``X1`` first and
  then continues (the strategy strips it);
* **unclear** — anything between, or a model that only repeats itself (then a
  new turn could agree by chance), or an answer too short to cut. A second
  prompt is tried before settling on it.

Nothing here reads the *meaning* of the text. :func:`probe_all` runs the check
for every strategy that applies and recommends the first that continues.
Errors (a bad key, an unknown model, a refused prefill) are raised as
ContinuumError by :func:`probe`: they are not verdicts on continuation;
:func:`probe_all` records them per strategy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from core.continuation.strategies import STRATEGY_CLASSES, Strategy, get_strategy
from core.types import CancelToken, RunSpec
from core.types.pieces import Text
from core.wire.client import Client, Timeouts
from core.wire.errors import ContinuumError

PROBE_PROMPTS = (
    "Count from 1 to 20, separated by commas.",
    "Write a long story about a lighthouse keeper and the ships she saw.",
)
PROBE_PREFILL = "1, 2, 3, 4, 5,"  # kept for callers of the old counting probe
PROBE_MAX_TOKENS = 32
SEAM_CHARS = 4  # a continuation that differs this early is a new turn
AGREE_CHARS = 24  # agreement this long, then divergence: nondeterminism, not a new turn
MIN_CUT_CHARS = 6  # X1 and X2 must each have this much text

VERDICT_HEADLINES = {
    "honoured": "continues the text sent",
    "echoes": "repeats the text sent, then continues (stripped)",
    "ignored": "starts a new answer instead of continuing",
    "unclear": "inconclusive",
    "error": "refused or failed",
}


@dataclass(frozen=True)
class ProbeResult:
    verdict: str  # "honoured" | "echoes" | "ignored" | "unclear" | "error"
    sample: str  # the start of the continuation Y, as received
    advice: str
    recommended_strategy: str
    strategy: str = "prefill"  # the strategy probed
    first: str = ""  # X: request A's answer
    cut: int = 0  # len(X1)
    agreed: int = 0  # characters of Y that match X2
    compared: int = 0  # characters of Y and X2 compared

    @property
    def honoured(self) -> bool:
        return self.verdict in ("honoured", "echoes")


@dataclass(frozen=True)
class ProbeReport:
    """Every strategy probed on one server, and the one to use."""

    results: tuple[ProbeResult, ...]
    recommended: str | None  # None: no strategy continues on this server
    skipped: dict[str, str] = field(default_factory=dict)  # strategy -> why it was not probed

    @property
    def advice(self) -> str:
        works = [r.strategy for r in self.results if r.honoured]
        if self.recommended:
            others = [s for s in works if s != self.recommended]
            also = f" ({', '.join(others)} also continue{'s' if len(others) == 1 else ''})" if others else ""
            return f"Use the {self.recommended} strategy on this server{also}."
        return (
            "No strategy probed continues on this server. If it has a raw /completions endpoint, probe "
            "the completions strategy with the model's chat template (--template)."
        )


def cut_point(text: str) -> int:
    """Where to cut ``text`` in two: the end of a word near the middle (0 when it cannot be cut).

    The cut falls just before whitespace, so neither a chat template's trimming of the
    prefill nor a word split into odd tokens changes what the model sees.
    """
    middle = len(text) // 2
    for i in range(middle, MIN_CUT_CHARS - 1, -1):
        if text[i].isspace() and not text[i - 1].isspace():
            return i if len(text) - i >= MIN_CUT_CHARS else 0
    for i in range(middle + 1, len(text) - MIN_CUT_CHARS):
        if text[i].isspace() and not text[i - 1].isspace():
            return i
    return 0


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def judge(first: str, cut: int, reply: str, strategy: str = "prefill", raw: str | None = None) -> ProbeResult:
    """The verdict from request A's answer ``first``, the cut, and the continuation ``reply``.

    ``raw``: the reply before the strategy removed an echo (prefix) or an overlap (instruction).
    """
    expected = first[cut:]
    # the last characters of ``first`` may be a token cut short by max_tokens: not compared
    n = min(len(expected), len(reply))
    agreed = _common_prefix(expected, reply)
    sample = reply[:160]
    loop = expected[: min(n, 2 * MIN_CUT_CHARS)]
    repetitive = bool(loop.strip()) and loop in first[:cut]  # a loop: a new turn could agree by chance
    echoed = raw is not None and raw != reply and strategy == "prefix"

    def result(verdict: str, advice: str, recommended: str) -> ProbeResult:
        return ProbeResult(verdict, sample, advice, recommended, strategy, first, cut, agreed, n)

    if n >= MIN_CUT_CHARS and (agreed >= n - 1 or agreed >= AGREE_CHARS) and not repetitive:
        if echoed:
            return result(
                "echoes",
                "The server streams the text sent back before continuing; the prefix strategy strips it.",
                strategy,
            )
        return result(
            "honoured",
            f"At temperature 0 the continuation from the first {cut} characters reproduced the rest of "
            f"the one-request answer ({agreed} of {n} characters): the {strategy} strategy continues here.",
            strategy,
        )
    if n >= SEAM_CHARS and agreed < SEAM_CHARS:  # (a loop too: a continuation would match here)
        return result(
            "ignored",
            f"The reply diverged from the one-request answer right at the seam ({agreed} matching "
            f"characters): the server starts a new answer with the {strategy} strategy, so it does not "
            "continue here.",
            "instruction" if strategy != "instruction" else "completions",
        )
    why = "the model repeats itself, so agreement proves nothing" if repetitive else "too little text"
    if SEAM_CHARS <= agreed < n - 1:
        why = f"it agreed for {agreed} characters, then diverged"
    return result("unclear", f"Inconclusive ({why}).", strategy)


def _ask(client: Client, endpoint: str, body: dict[str, Any], *, cancel: CancelToken | None = None) -> str:
    stream = client.stream_completion(body) if endpoint == "completions" else client.stream_chat(body)
    unregister = cancel.register(stream.abort) if cancel is not None else None
    try:
        with stream:
            return "".join(delta.content for delta in stream)
    finally:
        if unregister is not None:
            unregister()


ECHO_CHECK = "Answer:"  # a prefill that is no beginning of the model's own answer


def _echoes(client: Client, request: tuple[str, dict[str, Any]], cancel: CancelToken | None) -> bool:
    """Does the server stream back a prefill the model would not have written itself?

    At temperature 0 a server that echoes and continues a prefix of the model's own answer,
    and one that ignores the prefill and restarts that answer, send the same text; only a
    foreign prefill tells them apart.
    """
    return _ask(client, *request, cancel=cancel).startswith(ECHO_CHECK)


def _restarted(result: ProbeResult) -> ProbeResult:
    return ProbeResult(
        "ignored",
        result.sample,
        "The server started the answer over instead of continuing it (a prefill it did not write "
        f"itself was not echoed): the {result.strategy} strategy does not continue here.",
        "instruction",
        result.strategy,
        result.first,
        result.cut,
        result.agreed,
        result.compared,
    )


# llama.cpp's servers penalise repeats among the tokens generated *in the request* (default 1.1):
# text moved from the output into the prefill stops being penalised, so the continuation differs
# at the seam although the server continues. A check that disagrees is asked again without it.
NO_REPEAT_PENALTY = {"repeat_penalty": 1.0}


def self_consistency(
    client: Client, strategy: Strategy, spec: RunSpec, answer: Text = "", cancel: CancelToken | None = None
) -> ProbeResult:
    """The check at one point of a conversation: ``spec`` (at temperature 0) with ``answer`` sent.

    Request A continues ``answer``, request B continues ``answer`` plus the first part of A's
    text. When they disagree, both are sent again with ``repeat_penalty`` 1: "ignored" stands only
    when both say so (a server that refuses the field keeps the first verdict). Errors are raised.
    """
    result = _check(client, strategy, spec, answer, cancel)
    if result.verdict in ("ignored", "unclear") and "repeat_penalty" not in spec.extra_body:
        plain = dataclasses.replace(spec, extra_body={**spec.extra_body, **NO_REPEAT_PENALTY})
        try:
            again = _check(client, strategy, plain, answer, cancel)
        except ContinuumError as exc:
            if exc.status in (400, 422):  # the server does not take the field: no second opinion
                return result
            raise
        if again.honoured:
            note = " (with repeat_penalty 1: this server penalises repeats within one request)"
            return dataclasses.replace(again, advice=again.advice + note)
        if again.verdict == "unclear":  # the second opinion does not confirm a new turn
            return again
    return result


def _check(
    client: Client, strategy: Strategy, spec: RunSpec, answer: Text, cancel: CancelToken | None
) -> ProbeResult:
    first = _ask(client, *strategy.build(spec, answer), cancel=cancel)
    cut = cut_point(first)
    if not cut:
        return judge(first, 0, "", strategy.name)
    sent = answer + first[:cut]
    raw = _ask(client, *strategy.build(spec, sent), cancel=cancel)
    verdict = judge(first, cut, strategy.interpret(sent, raw), strategy.name, raw)
    if verdict.verdict == "echoes" and not _echoes(client, strategy.build(spec, ECHO_CHECK), cancel):
        verdict = _restarted(verdict)
    return verdict


def probe(
    base_url: str,
    model: str,
    api_key: str | None = None,
    strategy: str = "prefill",
    *,
    client: Client | None = None,
    timeouts: Timeouts | None = None,
    template: str | None = None,
) -> ProbeResult:
    """Probe ``strategy`` with the self-consistency check (see the module docstring)."""
    chosen = get_strategy(strategy)
    own = client is None
    http = client or Client(base_url, api_key, timeouts=timeouts or Timeouts(idle=30.0, round=60.0))
    verdict: ProbeResult | None = None
    try:
        for prompt in PROBE_PROMPTS:
            spec = RunSpec(
                messages=[{"role": "user", "content": prompt}],
                base_url=base_url,
                model=model,
                max_tokens=PROBE_MAX_TOKENS,
                temperature=0.0,
                seed=0,
                strategy=strategy,
                template=template,
            )
            verdict = self_consistency(http, chosen, spec)
            if verdict.verdict != "unclear":
                return verdict
    finally:
        if own:
            http.close()
    assert verdict is not None
    return verdict


def probe_all(
    base_url: str,
    model: str,
    api_key: str | None = None,
    *,
    strategies: tuple[str, ...] | None = None,
    template: str | None = None,
    timeouts: Timeouts | None = None,
    client: Client | None = None,
) -> ProbeReport:
    """Probe each strategy (completions only with a ``template``); recommend the first that continues.

    The order is the order of preference: a plain prefill first, the instruction last (it relies
    on the model following an instruction, which no structural check can promise).
    """
    names = strategies or (*(s for s in STRATEGY_CLASSES if s != "instruction"), "instruction")
    own = client is None
    http = client or Client(base_url, api_key, timeouts=timeouts or Timeouts(idle=30.0, round=60.0))
    results: list[ProbeResult] = []
    skipped: dict[str, str] = {}
    try:
        for name in names:
            if name == "completions" and not template:
                skipped[name] = (
                    "needs the model's chat template (a name such as chatml, or a Jinja file: --template)"
                )
                continue
            try:
                results.append(probe(base_url, model, strategy=name, client=http, template=template))
            except ContinuumError as exc:
                if exc.status in (401, 402, 403):
                    raise  # a key problem is no verdict on any strategy
                results.append(ProbeResult("error", "", str(exc), name, name))
    finally:
        if own:
            http.close()
    recommended = next((r.strategy for r in results if r.honoured), None)
    return ProbeReport(tuple(results), recommended, skipped)
