"""Does this server continue a prefill? DESIGN §3.

The probe asks the model to count from 1 to 20 and prefills the answer with
``"1, 2, 3, 4, 5,"`` at temperature 0. A server that honours the prefill
answers `` 6, 7, …``; one that streams the prefill back first *echoes* it (the
``prefix`` strategy strips that); one that starts over with ``1, …`` *ignores*
it (only the ``instruction`` strategy works there).

An ignoring server and an echoing one write the same text (both start with the
prefill, as counting from 1 again reproduces it), so with any strategy but
``prefix`` such a reply counts as ignored: the strategy probed does not work
on that server either way.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.client import Client, Timeouts
from core.strategies import get_strategy
from core.types import RunSpec

PROBE_PROMPT = "Count from 1 to 20, separated by commas."
PROBE_PREFILL = "1, 2, 3, 4, 5,"
PROBE_MAX_TOKENS = 24


@dataclass(frozen=True)
class ProbeResult:
    verdict: str  # "honoured" | "echoes" | "ignored" | "unclear"
    sample: str  # the start of the reply, as received
    advice: str
    recommended_strategy: str
    strategy: str = "prefill"  # the strategy probed

    @property
    def honoured(self) -> bool:
        return self.verdict == "honoured"


def classify(reply: str, strategy: str = "prefill") -> ProbeResult:
    """The verdict for a reply to the probe request."""
    sample = reply[:120]
    start = reply.lstrip()
    if start.startswith("6"):
        return ProbeResult(
            "honoured",
            sample,
            f"The server continued the prefill: the {strategy} strategy works here.",
            strategy,
            strategy,
        )
    if start.startswith(PROBE_PREFILL) and strategy == "prefix":
        return ProbeResult(
            "echoes",
            sample,
            "The server streams the prefill back before continuing; the prefix strategy strips the echo.",
            "prefix",
            strategy,
        )
    if start.startswith("1"):
        return ProbeResult(
            "ignored",
            sample,
            f"The server started the answer over instead of continuing it: the {strategy} strategy does "
            "not work here. Use the instruction strategy (or try prefix if this is a Mistral-style API "
            "that echoes the prefill).",
            "instruction",
            strategy,
        )
    return ProbeResult(
        "unclear",
        sample,
        "The reply neither continued nor restarted the count; the instruction strategy is the safe choice.",
        "instruction",
        strategy,
    )


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
    """Send the probe with ``strategy`` and classify the reply.

    Errors (a bad key, an unknown model, a refused prefill) are raised as
    ContinuumError: they are not verdicts on continuation.
    """
    spec = RunSpec(
        messages=[{"role": "user", "content": PROBE_PROMPT}],
        base_url=base_url,
        model=model,
        max_tokens=PROBE_MAX_TOKENS,
        temperature=0.0,
        strategy=strategy,
        template=template,
    )
    chosen = get_strategy(strategy)
    endpoint, body = chosen.build(spec, PROBE_PREFILL, "")
    own = client is None
    http = client or Client(base_url, api_key, timeouts=timeouts or Timeouts(idle=30.0, round=60.0))
    try:
        stream = http.stream_completion(body) if endpoint == "completions" else http.stream_chat(body)
        parts: list[str] = []
        with stream:
            for delta in stream:
                parts.append(delta.content)
                if sum(map(len, parts)) >= 120:
                    break
    finally:
        if own:
            http.close()
    reply = "".join(parts)
    if strategy == "instruction":  # a restart a few words back is how this strategy works
        reply = chosen.interpret(PROBE_PREFILL, reply)
    return classify(reply, strategy)
