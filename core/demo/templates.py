"""Reading a rendered chat template back, for ``POST /completions``.

The prompt of a raw completion is a chat template rendered by the client plus
the answer so far (A). The demo model recognises the assistant-start markers of
five template families; the text after the LAST assistant marker is A (leading
whitespace removed), and the last user message is the text after the last user
marker before it, up to that turn's end marker. An unknown format keys the
document on the whole (stripped) prompt and starts from the beginning.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TemplateFamily:
    name: str
    assistant: str  # assistant-start marker (without trailing whitespace)
    user: str  # user-start marker
    ends: tuple[str, ...]  # what ends a user turn


FAMILIES: tuple[TemplateFamily, ...] = (
    TemplateFamily(
        "llama3",
        "<|start_header_id|>assistant<|end_header_id|>",
        "<|start_header_id|>user<|end_header_id|>",
        ("<|eot_id|>", "<|start_header_id|>"),
    ),
    TemplateFamily("chatml", "<|im_start|>assistant", "<|im_start|>user", ("<|im_end|>", "<|im_start|>")),
    TemplateFamily("deepseek", "<｜Assistant｜>", "<｜User｜>", ("<｜end▁of▁sentence｜>", "<｜Assistant｜>")),
    TemplateFamily("mistral", "[/INST]", "[INST]", ("[/INST]",)),
    TemplateFamily("generic", "### Assistant:", "### User:", ("\n###", "### Assistant:")),
)


@dataclass(frozen=True)
class ParsedPrompt:
    family: str | None  # None: unknown format
    user: str  # the document key
    answer: str  # A, the answer so far


def parse_prompt(prompt: str) -> ParsedPrompt:
    """Split a rendered completion prompt into the last user message and the answer so far."""
    best: tuple[int, TemplateFamily] | None = None
    for family in FAMILIES:
        at = prompt.rfind(family.assistant)
        if at >= 0 and (best is None or at > best[0]):
            best = (at, family)
    if best is None:
        return ParsedPrompt(None, prompt.strip(), "")
    at, family = best
    answer = prompt[at + len(family.assistant) :].lstrip()
    head = prompt[:at]
    user_at = head.rfind(family.user)
    if user_at < 0:
        return ParsedPrompt(family.name, "", answer)
    user = head[user_at + len(family.user) :]
    cut = min((i for i in (user.find(end) for end in family.ends) if i >= 0), default=len(user))
    return ParsedPrompt(family.name, user[:cut].strip(), answer)
