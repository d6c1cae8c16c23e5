"""How a continuation request is built, one class per strategy. DESIGN §3.

Let P be the original messages, A the answer so far and R the reasoning so far.
Every provider difference in the wire format lives here; the engine only calls
:meth:`Strategy.build` for a request and :meth:`Strategy.reply_filter` (or
:meth:`Strategy.interpret` on a whole text) for the reply.

=============  ======================================================  ==========================
strategy       request                                                 reply
=============  ======================================================  ==========================
prefill        P + assistant(A)                                        appended as is
vllm           prefill + ``continue_final_message`` /                  appended as is
               ``add_generation_prompt: false``
prefix         assistant(A) carries ``"prefix": true``                 an echoed A is stripped
completions    ``/completions`` with the chat template rendered + A    appended as is
instruction    P + assistant(A) + user("continue exactly…")            the overlap is removed
=============  ======================================================  ==========================

When A is empty but R is not (a round cut inside the reasoning), the prefill is
``"<think>\\n" + R`` with no closing tag, so the model continues its reasoning.

The engine gives A as :class:`~core.types.pieces.Pieces` (the rounds' own texts) and it is
sent as given, never joined: the completions prompt is the rendered template followed by
those pieces (the template renders the conversation only, so nothing is spliced into it).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Protocol

from core.continuation import templates
from core.continuation.reasoning import CLOSE as THINK_CLOSE
from core.continuation.reasoning import reasoning_prefill
from core.continuation.seams import EchoFilter, OverlapFilter
from core.types import RunSpec
from core.types.pieces import Text
from core.wire.errors import ConfigError

Endpoint = Literal["chat", "completions"]

CONTINUE_INSTRUCTION = (
    "Continue exactly where you stopped, in the middle of a word or sentence if that is where it "
    "ended. Do not repeat anything already written, do not summarise, add no preamble: output only "
    "the continuation."
)


class ReplyFilter(Protocol):
    """Rewrites the start of a streamed reply (drops an echo or an overlap)."""

    decided: bool

    @property
    def dropped(self) -> Text: ...

    def feed(self, text: str) -> str: ...

    def flush(self) -> str: ...


Think = Literal["open", "closed"] | None


def prefill_text(answer: Text, reasoning: str, think: Think = None) -> Text:
    """What the request carries as the assistant's partial turn ("" for none).

    ``think``: where ``<think>`` reasoning in the content stands when the answer
    is still empty: "open" (cut inside it, even before its first word) or
    "closed" (cut between ``</think>`` and the answer). ``answer`` may be
    :class:`~core.types.pieces.Pieces` (the rounds' texts): it is sent as it is given.
    """
    if answer:
        return answer
    if think == "closed":
        return reasoning_prefill(reasoning) + "\n" + THINK_CLOSE + "\n\n"
    if reasoning or think == "open":
        return reasoning_prefill(reasoning)
    return ""


class Strategy:
    """Base: chat completions with the answer so far as a trailing assistant message."""

    name: ClassVar[str] = "prefill"
    endpoint: ClassVar[Endpoint] = "chat"
    label: ClassVar[str] = "Assistant prefill"
    # Hold the trailing partial word back for the model to rewrite (core.continuation.seams.hold_back): right
    # where the model continues the very text sent, whose end a chat template may trim.
    holds_back: ClassVar[bool] = True

    def build(
        self,
        spec: RunSpec,
        answer: Text,
        reasoning: str = "",
        *,
        max_tokens: int | None = None,
        think: Think = None,
    ) -> tuple[Endpoint, dict[str, Any]]:
        """The endpoint and JSON body of the next request (``think``: see :func:`prefill_text`)."""
        body = self._sampling(spec, max_tokens)
        body["messages"] = self.messages(spec, prefill_text(answer, reasoning, think))
        body.update(spec.extra_body)
        return self.endpoint, body

    def messages(self, spec: RunSpec, prefill: Text) -> list[dict[str, Any]]:
        messages = [dict(m) for m in spec.messages]
        if prefill:
            messages.append(self.assistant(prefill))
        return messages

    def assistant(self, prefill: Text) -> dict[str, Any]:
        return {"role": "assistant", "content": prefill}

    def reply_filter(self, sent: Text) -> ReplyFilter | None:
        """A filter for the reply to a request whose prefill was ``sent``, or None (as is)."""
        return None

    def interpret(self, sent: Text, reply: str) -> str:
        """The part of a whole ``reply`` that continues ``sent`` (tests and non-streaming use)."""
        filt = self.reply_filter(sent)
        if filt is None:
            return reply
        return filt.feed(reply) + filt.flush()

    @staticmethod
    def _sampling(spec: RunSpec, max_tokens: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": spec.model, "max_tokens": max_tokens or spec.max_tokens}
        if spec.temperature is not None:
            body["temperature"] = spec.temperature
        if spec.top_p is not None:
            body["top_p"] = spec.top_p
        if spec.seed is not None:
            body["seed"] = spec.seed
        return body


class PrefillStrategy(Strategy):
    pass


class VllmStrategy(Strategy):
    name = "vllm"
    label = "Prefill with vLLM flags"

    def build(
        self,
        spec: RunSpec,
        answer: Text,
        reasoning: str = "",
        *,
        max_tokens: int | None = None,
        think: Think = None,
    ) -> tuple[Endpoint, dict[str, Any]]:
        endpoint, body = super().build(spec, answer, reasoning, max_tokens=max_tokens, think=think)
        if prefill_text(answer, reasoning, think):
            body.setdefault("continue_final_message", True)
            body.setdefault("add_generation_prompt", False)
        return endpoint, body


class PrefixStrategy(Strategy):
    name = "prefix"
    label = 'Prefix flag ("prefix": true)'

    def assistant(self, prefill: Text) -> dict[str, Any]:
        return {"role": "assistant", "content": prefill, "prefix": True}

    def reply_filter(self, sent: Text) -> ReplyFilter | None:
        return EchoFilter(sent) if sent else None


class CompletionsStrategy(Strategy):
    name = "completions"
    endpoint = "completions"
    label = "Raw completions with a chat template"

    def build(
        self,
        spec: RunSpec,
        answer: Text,
        reasoning: str = "",
        *,
        max_tokens: int | None = None,
        think: Think = None,
    ) -> tuple[Endpoint, dict[str, Any]]:
        prompt = templates.render(spec.template, spec.messages, model=spec.model)
        body = self._sampling(spec, max_tokens)
        body["prompt"] = prompt + prefill_text(answer, reasoning, think)
        body.update(spec.extra_body)
        return self.endpoint, body


class InstructionStrategy(Strategy):
    name = "instruction"
    label = "Instruction to continue"
    # A new turn asked to go on need not rewrite a held-back tail, and often does not: the tail
    # would vanish from the answer. The whole answer is sent; the overlap filter removes repeats.
    holds_back = False

    def messages(self, spec: RunSpec, prefill: Text) -> list[dict[str, Any]]:
        messages = super().messages(spec, prefill)
        if prefill:
            messages.append({"role": "user", "content": CONTINUE_INSTRUCTION})
        return messages

    def reply_filter(self, sent: Text) -> ReplyFilter | None:
        return OverlapFilter(sent) if sent else None


STRATEGY_CLASSES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (PrefillStrategy, VllmStrategy, PrefixStrategy, CompletionsStrategy, InstructionStrategy)
}


def get_strategy(name: str) -> Strategy:
    """The strategy called ``name``; unknown names are a usage error with the choices named."""
    try:
        return STRATEGY_CLASSES[name]()
    except KeyError:
        choices = ", ".join(STRATEGY_CLASSES)
        raise ConfigError(f"Unknown strategy {name!r}.", hint=f"choose one of: {choices}") from None
