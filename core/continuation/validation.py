"""Every run parameter checked in one place, with messages a person can act on.

:func:`core.continuation.engine.run` checks its spec with :func:`validate_spec` before the
first request and ends a refused run with the problems as its error (``ConfigError``); the
text so far is kept. A front end that must refuse before it creates a run (the command
line exits 2, the Studio answers next to the form, the endpoint answers 400) calls the same
:func:`validate_spec` first and hands its :class:`Checked` to the engine, which does not
check that spec again. The argument types and the pages' fields use :func:`core.bounds.check`,
so a value is refused with the same words everywhere::

    check("max_tokens", 0)        -> "Max tokens per round must be at least 1 (got 0)."
    spec_problems(spec)           -> [Problem(field, message, hint), ...]  (empty: fine)
    validate_spec(spec)           -> Checked, or raises Invalid (a ConfigError) naming every problem
    validate_spec(spec, checked)  -> checked at once, when it covers spec unchanged

A prompt is refused before anything is sent when it is empty, larger than
:data:`MAX_PROMPT_CHARS`, or does not leave room for an answer in the model's
context window. The window check uses the engine's own first-round estimate
(:mod:`core.continuation.budget`), so a prompt refused here is one the engine could not
send; the message gives the numbers. Nothing here does I/O; each check is logged at
DEBUG (``core.continuation.validation``).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

from core.bounds import BOUNDS, check
from core.continuation import budget
from core.types import STRATEGIES, ErrorInfo, RunSpec
from core.wire.errors import ConfigError

__all__ = [
    "MAX_PROMPT_CHARS",
    "Checked",
    "Invalid",
    "Problem",
    "prompt_size",
    "spec_problems",
    "validate_spec",
]

# About 1.5 million tokens of English: beyond the largest context window served today.
# A larger prompt is a mistake (a wrong file) and would only be refused by the server
# after a long upload.
MAX_PROMPT_CHARS = 5_000_000

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """One invalid parameter: which, what is wrong, what to do."""

    field: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()


def prompt_size(spec: RunSpec) -> tuple[int, int]:
    """(characters, estimated tokens) of the first request of ``spec``: :func:`core.continuation.budget.first_prompt`."""
    return budget.first_prompt(spec)


def _prompt_problems(spec: RunSpec) -> list[Problem]:
    prompt = spec.prompt
    if not prompt.strip():
        return [Problem("prompt", "The prompt is empty.", "Write what the model should answer.")]
    total = sum(len(str(m.get("content") or "")) for m in spec.messages)
    if total > MAX_PROMPT_CHARS:
        mb = sum(len(str(m.get("content") or "").encode("utf-8", "replace")) for m in spec.messages) / 1e6
        return [
            Problem(
                "prompt",
                f"The prompt is {total:,} characters ({mb:.1f} MB); Continuum sends at most "
                f"{MAX_PROMPT_CHARS:,} characters (about 1.5 million tokens, more than any model's window).",
                "Send a shorter excerpt, or split the material over several runs (a batch).",
            )
        ]
    for message in spec.messages:
        content = message.get("content")
        if isinstance(content, str):
            try:
                content.encode("utf-8")
            except UnicodeEncodeError as exc:
                return [
                    Problem(
                        "prompt",
                        f"The prompt contains a character that cannot be sent (at position {exc.start:,}).",
                        "Remove it, or save the prompt file as UTF-8 text.",
                    )
                ]
    window = spec.context_window
    if not window or check("context_window", window):
        return []
    chars, tokens = prompt_size(spec)
    margin = budget.context_margin(window)
    if window - tokens - margin >= budget.MIN_ROUND_TOKENS:
        return []
    overhead = tokens - budget.Calibration().estimate(chars)
    room = window - margin - budget.MIN_ROUND_TOKENS - overhead
    fit = int(room / (budget.DEFAULT_TOKENS_PER_CHAR * 1.05)) if room > 0 else 0
    larger = "a model with a larger context window"
    what = (
        f"Shorten the prompt to under about {fit:,} characters, or choose {larger}"
        if fit > 0
        else f"Choose {larger}"
    )
    return [
        Problem(
            "prompt",
            f"The prompt is about {tokens:,} tokens ({chars:,} characters); {spec.model}'s context window "
            f"is {window:,} tokens, which leaves no room for an answer.",
            f"{what}. Nothing was sent.",
        )
    ]


def spec_problems(spec: RunSpec) -> list[Problem]:
    """Everything wrong with ``spec`` before it is sent; an empty list when it may run."""
    problems: list[Problem] = []
    for name in ("max_tokens", "max_rounds", "target_tokens", "context_window", "output_cap", "cost_limit"):
        value = getattr(spec, name)
        if value is None and name not in ("max_tokens", "max_rounds"):
            continue
        message = check(name, value)
        if message:
            problems.append(Problem(name, message, BOUNDS[name].hint))
    for name in ("temperature", "top_p"):
        value = getattr(spec, name)
        message = check(name, value) if value is not None else None
        if message:
            problems.append(Problem(name, message))
    if spec.seed is not None and (isinstance(spec.seed, bool) or not isinstance(spec.seed, int)):
        problems.append(Problem("seed", f"The seed must be a whole number (got {spec.seed!r})."))
    if spec.strategy not in STRATEGIES:
        problems.append(
            Problem(
                "strategy", f"Unknown strategy {spec.strategy!r}.", f"Choose one of: {', '.join(STRATEGIES)}."
            )
        )
    if not str(spec.model or "").strip():
        problems.append(Problem("model", "No model is chosen.", "Pick or type a model id."))
    problems.extend(_prompt_problems(spec))
    log.debug("checked the settings of a run on %s: %d problems", spec.model, len(problems))
    return problems


class Invalid(ConfigError):
    """A spec :func:`validate_spec` refused: a ConfigError whose ``problems`` list every one."""

    def __init__(self, message: str, hint: str | None, problems: list[Problem]) -> None:
        super().__init__(message, hint)
        self.problems = problems

    def to_info(self) -> ErrorInfo:
        """A run the engine refused ends with a ConfigError, as the pages and the endpoint name it."""
        info = super().to_info()
        info.kind = "ConfigError"
        return info


@dataclass(frozen=True, eq=False)
class Checked:
    """Proof that :func:`validate_spec` passed a spec: hand it to the engine (``checked=``).

    It holds a copy of the spec's values as checked (the texts are shared, not copied), so it
    covers that spec only while it is unchanged: a spec edited after the check is checked again.
    """

    seen: RunSpec

    def covers(self, spec: RunSpec) -> bool:
        return self.seen == spec


def validate_spec(spec: RunSpec, checked: Checked | None = None) -> Checked:
    """The proof that ``spec`` may run, or :class:`Invalid` (a ConfigError) naming every problem.

    ``checked``: what an earlier call returned; when it covers ``spec``, nothing is checked again.
    """
    if checked is not None and checked.covers(spec):
        return checked
    problems = spec_problems(spec)
    if not problems:
        return Checked(copy.deepcopy(spec))
    if len(problems) == 1:
        raise Invalid(problems[0].message, problems[0].hint or None, problems)
    listed = " ".join(p.message for p in problems)
    hints = " ".join(dict.fromkeys(p.hint for p in problems if p.hint))
    raise Invalid(f"{len(problems)} settings are not valid: {listed}", hints or None, problems)
