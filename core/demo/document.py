"""The deterministic texts the demo model writes.

``demo_document(prompt)`` is a readable placeholder document (title, headings,
paragraphs, lists, a table, code blocks) drawn from a random generator seeded
with a SHA-256 of the prompt, so the same prompt always gives the same text in
every process. Only the stripped prompt matters; the model does not.

Length: the first "<number> tokens" / "<number> words" in the prompt ("Write
20000 tokens about X", "about 2k tokens", "a 300-word note", "1,500 words") sets
the length in demo tokens, exactly (words count as tokens); otherwise 1500.
Lengths are capped at 1,000,000 tokens. "Count from A to B" / "count to B"
(also "the numbers from A to B") answers "A, A+1, …, B." instead. A prompt
starting with "Echo:" answers the rest of it verbatim (leading whitespace
removed), so tests can make the model write any given text.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
from collections import OrderedDict
from functools import lru_cache

from core.demo.models import MODELS
from core.demo.tokens import Document, count_tokens

DEFAULT_LENGTH = 1500
MAX_LENGTH = 1_000_000
MAX_COUNT = 1_000_000
ECHO_PREFIX = "Echo:"

LENGTH_RE = re.compile(
    r"(\d[\d,_]*(?:\.\d+)?)\s*(k|thousand)?\s*-?\s*(?:demo\s+)?(?:tokens?|words?)\b", re.IGNORECASE
)
COUNT_RE = re.compile(
    r"\b(?:count(?:ing)?|numbers?)\b(?:\s+(?:from\s+)?(\d[\d,]*))?\s+(?:to|up\s+to|until|through)\s+(\d[\d,]*)",
    re.IGNORECASE,
)

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

_DET = ("the", "a", "each", "every", "this", "that", "one", "our")
_ADJ = (
    "quiet", "patient", "bright", "early", "careful", "open", "steady", "narrow", "broad", "simple",
    "hidden", "gentle", "modern", "ancient", "useful", "plain", "clear", "small", "large", "distant",
    "naïve", "curious", "honest", "rapid", "shared", "local", "formal", "subtle", "stable", "wooden",
)  # fmt: skip
_NOUN = (
    "river", "harbour", "valley", "library", "garden", "signal", "method", "system", "village", "market",
    "lantern", "bridge", "archive", "reader", "engine", "pattern", "journey", "teacher", "window", "map",
    "café", "façade", "season", "ledger", "question", "station", "forest", "council", "record", "draft",
)  # fmt: skip
_VERB = (
    "shapes", "carries", "follows", "builds", "measures", "explains", "records", "guides", "protects",
    "connects", "reveals", "gathers", "supports", "changes", "crosses", "reaches", "balances", "tests",
)  # fmt: skip
_PREP = ("across", "beneath", "beyond", "within", "toward", "beside", "through", "along", "around", "near")
_CONJ = ("and", "while", "because", "although", "so", "—", "but", "until")
_PATTERN = (_DET, _ADJ, _NOUN, _VERB, _DET, _NOUN, _PREP, _DET, _ADJ, _NOUN, _CONJ)

_CODE = (
    "```python\ndef {f}_{n}(items):\n    total = 0\n    for item in items:\n"
    "        total += item.{a}\n    return total / max(len(items), 1)\n```",
    "```python\nclass {N}{M}:\n    def __init__(self, {a}):\n        self.{a} = {a}\n\n"
    '    def describe(self):\n        return f"{{self.{a}}} near the {n}"\n```',
    '```json\n{{\n  "{n}": "{a}",\n  "count": {k},\n  "{m}": ["{a}", "{f}"]\n}}\n```',
    "```bash\nmkdir -p ./{n}/{m}\ncp notes.txt ./{n}/{m}/\nls -la ./{n}\n```",
)


def _seeded(kind: str, key: str) -> random.Random:
    digest = hashlib.sha256(f"{kind}\0{key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _words(rng: random.Random, count: int, start: int = 0) -> list[str]:
    return [rng.choice(_PATTERN[(start + i) % len(_PATTERN)]) for i in range(count)]


_VOWEL_SOUND = ("a", "e", "i", "o", "honest")  # "an ancient", "an honest"; but "a useful"


def _articles(words: list[str]) -> list[str]:
    """ "a" before a vowel sound becomes "an" (one word, one token, either way)."""
    return [
        "an" if word == "a" and i + 1 < len(words) and words[i + 1].startswith(_VOWEL_SOUND) else word
        for i, word in enumerate(words)
    ]


_OBJECT = ("it", "us", "them")  # an object in place of a determiner left without its noun
_AFTER = ("again", "today", "too", "still")  # a closing word in place of a conjunction or preposition
_RESTS = ("changes", "waits", "grows", "rests")  # a verb that needs no object, ending a clause
_AGAIN = (["again", "and", "again"], ["day", "after", "day"])  # a closing in place of a clause's start


def _close(rng: random.Random, words: list[str], last: int) -> None:
    """End a sentence whose last word stands at ``last`` in the pattern so that it reads as one,
    with the same number of words: a noun or a verb may end it; a determiner becomes an object
    ("measures it"); a preposition or a conjunction after a noun becomes a closing word ("the
    market again"); a conjunction with its determiner becomes "as well"; an adjective becomes
    a noun ("every ledger", never "harbour harbour" nor "harbour — harbour"); a clause after a
    conjunction ends on its verb ("while that café waits") or becomes "again and again"."""
    after_conjunction = len(words) > len(_PATTERN)  # the last clause began with "while", "so"…
    # (Each branch draws from ``rng`` exactly what the code before it did, so the document around
    # the sentence — its tables, code and seams — stays the same.)
    if after_conjunction and last == 1:  # "… while that", never "… while that café."
        rng.choice([noun for noun in _NOUN if noun not in words[-3:-1]])  # the draw the noun took
        words[-3:] = _AGAIN[len(words[-2]) % len(_AGAIN)]
    elif after_conjunction and last == 2:  # its noun needs a verb: "… while that café waits."
        words[-2:] = [words[-1], _RESTS[len(words[-2]) % len(_RESTS)]]
    elif last in (2, 3, 5, 9):
        return
    elif last in (4, 7):
        words[-1] = rng.choice(_OBJECT)
    elif last in (6, 10):
        words[-1] = rng.choice(_AFTER)
    elif last == 0:
        words[-2:] = ["as", "well"]
    else:
        words[-1] = rng.choice([noun for noun in _NOUN if noun not in words[-3:-1]])


def _sentence(rng: random.Random, count: int) -> str:
    """A sentence of exactly ``count`` demo tokens (every word is one token)."""
    words = _words(rng, count)
    if count > 1:
        _close(rng, words, (count - 1) % len(_PATTERN))
    words = _articles(words)
    words[0] = words[0].capitalize()
    if count > 7 and rng.random() < 0.3:
        words[5] += ","  # after the second noun of the pattern
    return " ".join(words) + "."


def _paragraph(rng: random.Random, count: int) -> str:
    """Sentences totalling exactly ``count`` demo tokens."""
    sentences = []
    while count > 0:
        size = rng.randint(7, 16)
        if count - size < 4:
            size = count
        sentences.append(_sentence(rng, size))
        count -= size
    return " ".join(sentences)


def _heading(rng: random.Random, level: int) -> str:
    words = [rng.choice(_ADJ), rng.choice(_NOUN), rng.choice(_PREP), "the", rng.choice(_NOUN)]
    words = words if rng.random() < 0.5 else words[:2]
    return "#" * level + " " + " ".join(w.capitalize() if w != "the" else w for w in words)


def _block(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.55:
        return _paragraph(rng, rng.randint(40, 110))
    if roll < 0.7:
        return "\n".join("- " + _sentence(rng, rng.randint(4, 10)) for _ in range(rng.randint(3, 5)))
    if roll < 0.78:
        items = (f"{i}. " + _sentence(rng, rng.randint(4, 9)) for i in range(1, rng.randint(3, 5) + 1))
        return "\n".join(items)
    if roll < 0.86:
        names = {
            "f": rng.choice(_VERB).rstrip("s"),
            "n": rng.choice(_NOUN).replace("ç", "c").replace("é", "e"),
            "m": rng.choice(_NOUN).replace("ç", "c").replace("é", "e"),
            "a": rng.choice(("depth", "weight", "width", "label", "score")),
            "k": str(rng.randint(2, 99)),
        }
        names["N"] = names["n"].capitalize()
        names["M"] = names["m"].capitalize()
        return rng.choice(_CODE).format(**names)
    if roll < 0.93:
        rows = ["| Item | Measure | Note |", "| --- | --- | --- |"]
        for _ in range(rng.randint(2, 4)):
            rows.append(f"| {rng.choice(_NOUN)} | {rng.randint(1, 999)} | {rng.choice(_ADJ)} |")
        return "\n".join(rows)
    return "> " + _sentence(rng, rng.randint(10, 20))


def _generated(key: str, length: int) -> str:
    rng = _seeded("document", key)
    if length < 80:
        return _paragraph(rng, length)
    blocks = [_heading(rng, 1), _paragraph(rng, rng.randint(30, 60))]
    used = sum(count_tokens(b) for b in blocks)
    reserve = 12  # the closing paragraph always gets at least this many tokens
    while True:
        group = [_heading(rng, 2)] if rng.random() < 0.25 or len(blocks) == 2 else []
        group.append(_block(rng))
        size = sum(count_tokens(b) for b in group)
        if used + size > length - reserve:
            break
        blocks.extend(group)
        used += size
    # Blocks start and end with a non-space character, so "\n\n" joins add no tokens.
    remaining = length - used
    while remaining > 0:
        size = remaining if remaining < 150 else rng.randint(60, 110)
        blocks.append(_paragraph(rng, size))
        remaining -= size
    return "\n\n".join(blocks)


def _counting(first: int, last: int) -> str:
    step = 1 if last >= first else -1
    last = first + step * min(abs(last - first), MAX_COUNT - 1)
    return ", ".join(str(i) for i in range(first, last + step, step)) + "."


def requested_length(prompt: str) -> int:
    """The document length in demo tokens that ``prompt`` asks for (DEFAULT_LENGTH if none)."""
    match = LENGTH_RE.search(prompt)
    if not match:
        return DEFAULT_LENGTH
    number = float(match.group(1).replace(",", "").replace("_", ""))
    if match.group(2):
        number *= 1000
    return max(1, min(MAX_LENGTH, round(number)))


def _parse_int(text: str) -> int:
    return int(text.replace(",", ""))


# Documents kept for reuse, least recently used first; bounded by their total tokens
# (a batch of hundreds of distinct prompts asks again for each one every round).
_DOCUMENTS: OrderedDict[str, Document] = OrderedDict()
_DOCUMENTS_LOCK = threading.Lock()
CACHE_TOKENS = 2_000_000
_cached_tokens = 0


def document_for(prompt: str) -> Document:
    """The tokenized document answering ``prompt`` (cached, up to ``CACHE_TOKENS`` tokens in all)."""
    global _cached_tokens
    with _DOCUMENTS_LOCK:
        doc = _DOCUMENTS.get(prompt)
        if doc is not None:
            _DOCUMENTS.move_to_end(prompt)
            return doc
    doc = _build_document(prompt)
    with _DOCUMENTS_LOCK:
        if prompt not in _DOCUMENTS:
            _DOCUMENTS[prompt] = doc
            _cached_tokens += len(doc)
            while _cached_tokens > CACHE_TOKENS and len(_DOCUMENTS) > 1:
                _cached_tokens -= len(_DOCUMENTS.popitem(last=False)[1])
    return doc


def _build_document(prompt: str) -> Document:
    key = prompt.strip()
    if key[: len(ECHO_PREFIX)].lower() == ECHO_PREFIX.lower():  # for tests of how output is shown
        return Document(key[len(ECHO_PREFIX) :].lstrip() or "(nothing to echo)")
    count = COUNT_RE.search(key)
    if count:
        first = _parse_int(count.group(1)) if count.group(1) else 1
        return Document(_counting(first, _parse_int(count.group(2))))
    return Document(_generated(key, requested_length(key)))


_REASONING_OPENERS = (
    "Okay, the user wants a document on this topic, so let me plan before writing.",
    "Let me think about what this request needs before I start.",
    "Alright, this asks for a structured piece of writing; I should outline it first.",
)
_REASONING_STEPS = (
    "I will open with a short overview of the {adj} {noun}.",
    "Then a section on how the {noun} {verb} the {noun2}, with a concrete example.",
    "A bulleted list would help the reader compare the main points.",
    "Maybe a small code block or a table, since the reader likes something concrete.",
    "I should keep paragraphs short and the tone plain.",
    "Wait, the {noun} matters more than the {noun2} here, so it goes first.",
    "Each heading should say what the section is about.",
    "The length requested is fine; I just need to keep the structure steady.",
)
_REASONING_CLOSERS = ("Good, I have a plan. Writing it now.", "That should work. Let me write the answer.")


@lru_cache(maxsize=64)
def reasoning_for(prompt: str) -> Document:
    """The tokenized reasoning demo-reasoner emits before answering ``prompt`` (cached)."""
    rng = _seeded("reasoning", prompt.strip())
    steps = rng.sample(_REASONING_STEPS, rng.randint(4, 6))
    parts = [rng.choice(_REASONING_OPENERS)]
    for step in steps:
        parts.append(
            step.format(
                adj=rng.choice(_ADJ), noun=rng.choice(_NOUN), noun2=rng.choice(_NOUN), verb=rng.choice(_VERB)
            )
        )
    parts.append(rng.choice(_REASONING_CLOSERS))
    return Document(" ".join(parts[:-1]) + "\n\n" + parts[-1])


def think_text(prompt: str) -> str:
    """The content stream of demo-reasoner with ``reasoning=think``: reasoning in tags, then the answer."""
    return f"{THINK_OPEN}\n{reasoning_for(prompt).text}\n{THINK_CLOSE}\n\n{document_for(prompt).text}"


@lru_cache(maxsize=64)
def think_document_for(prompt: str) -> Document:
    """:func:`think_text` tokenized (cached)."""
    return Document(think_text(prompt))


def demo_document(prompt: str, model: str = "demo") -> str:
    """The exact content a single request with enough ``max_tokens`` answers to ``prompt``.

    Every demo model writes the same document for the same prompt (demo-reasoner
    adds its reasoning before it, see :func:`demo_reasoning`); only the
    stripped ``prompt`` (the last user message) matters. ``model`` is checked
    against the demo models and otherwise ignored.
    """
    if model not in MODELS:
        raise ValueError(f"unknown demo model {model!r}; choose one of {', '.join(MODELS)}")
    return document_for(prompt).text


def demo_reasoning(prompt: str) -> str:
    """The exact reasoning demo-reasoner emits before the answer to ``prompt``."""
    return reasoning_for(prompt).text
