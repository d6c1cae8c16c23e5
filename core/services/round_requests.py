"""The request behind every round, rebuilt from a stored run, and the same request as a curl command.

A run stores no request bodies: each round re-sends the conversation and the whole answer so
far, so storing them would grow with the square of the answer. Each body can be rebuilt
instead, because everything the engine builds it from is stored: the spec, the round's
strategy (``Round.strategy``), the ``max_tokens`` it sent (``Round.max_tokens``) and the text
before the round. :func:`round_request` calls the code the engine calls
(:meth:`Strategy.build <core.continuation.strategies.Strategy.build>`, then the client's
stream payload) on the answer the engine sent:

- The answer sent for round *n* is the stored text of rounds 1..n-1. A round's stored text
  is already without the tail the next round was sent to rewrite (``Round.held_back``), so
  hold-back (also the longer one that checks the first seam at temperature 0) needs no
  replay; resumed runs, recovery rounds and rounds the engine discarded (their text is
  stored empty) read the same way.
- The user's edits (:class:`~core.types.Edit`): the answer before a round starts with the
  text of the latest edit made before it. An edit takes over the text of the rounds before
  it and keeps it as one piece, so a round followed by a later edit, with rounds between
  it and the edit before, cannot be rebuilt (:class:`RequestUnavailable` says so).
- One exception: when the last round of a session kept no text, the engine gives the
  previous round its held-back tail again (``Round.held_back`` is then empty). That tail
  was not in the request; it is recomputed with :mod:`core.continuation.seams`' hold-back
  rule and the request says so in its notes.
- The reasoning so far is sent (as a ``<think>`` prefill) while the answer is empty: the
  stored reasoning of the rounds before.

What a stored run cannot tell, so the rebuilt body may differ there:

- ``reasoning: "drop"`` runs do not keep reasoning, so a request that carried it as a
  prefill cannot be rebuilt (noted on the request).
- A round cut right after ``</think>`` with no answer yet was continued with the closing tag
  in the prefill; the store does not say where the tag stood (rebuilt as still open).
- A retry after a context overflow sent a lower ``max_tokens`` than the attempts before
  it (``Round.max_tokens`` is the last one sent); a retry after an empty stream was sent
  once more with ``"stream": false``.
- Secret-looking fields of ``extra_body`` and credentials in the base URL are removed
  before a spec is stored (:mod:`core.services.store.sanitize`).
- A resumed run keeps one base URL, the latest: a demo run resumed after the app
  restarted went to another port before.

The client adds ``stream`` and ``stream_options`` to every body by one rule
(:func:`core.wire.client.stream_payload`), called here too. The API key is never part of a :class:`RoundRequest`; :func:`curl_command` writes
``$API_KEY`` where the client sends it.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

import httpx

from core.continuation import planning
from core.continuation.strategies import Endpoint, Strategy, get_strategy
from core.services.providers import PROVIDERS
from core.types import Round, RunResult, RunSpec
from core.wire.client import stream_payload

__all__ = [
    "CURL_BODY_END",
    "RequestUnavailable",
    "RoundRequest",
    "answer_before",
    "curl_command",
    "encode_body",
    "round_request",
    "shortened_json",
]

PATHS: dict[Endpoint, str] = {"chat": "/chat/completions", "completions": "/completions"}
CURL_BODY_END = "CONTINUUM_BODY"  # the heredoc's delimiter: a JSON body on one line never equals it
_ENCODE_URL = "http://body.invalid/"  # httpx needs a URL to build a request; the body does not depend on it


def encode_body(body: dict[str, Any]) -> bytes:
    """``body`` as the bytes the client sends (httpx's own JSON encoding, as ``json=`` uses it)."""
    return httpx.Request("POST", _ENCODE_URL, json=body).content


@dataclass(frozen=True)
class RoundRequest:
    """Round ``index``'s request as it was sent: where, and the JSON body (never the key)."""

    index: int
    url: str
    body: dict[str, Any]  # as the client sent it: ``stream`` and ``stream_options`` included
    keyed: bool  # the client sends ``Authorization: Bearer <key>`` (not to the demo model)
    strategy: str
    answer_chars: int  # characters of the answer so far that the request carried
    held_back: str  # the end of the previous round, not sent: this round was to rewrite it
    attempts: int  # times this body was sent (1 + the round's retries)
    notes: tuple[str, ...] = ()  # where the rebuilt request may differ from what went out

    @property
    def data(self) -> bytes:
        """The body's bytes on the wire."""
        return encode_body(self.body)


def endpoint_url(base_url: str, endpoint: Endpoint) -> str:
    """The URL the client posts to: the base URL without a trailing slash, plus the endpoint's path."""
    base = base_url.strip().rstrip("/")
    for suffix in PATHS.values():  # a base URL pasted with the path on, as the client accepts it
        base = base.removesuffix(suffix)
    return base + PATHS[endpoint]


def sends_key(spec: RunSpec) -> bool:
    """Whether requests of ``spec`` carry an API key: every provider's do but the demo model's."""
    provider = PROVIDERS.get(spec.provider)
    return not (provider is not None and provider.is_demo)


def _given_back(spec: RunSpec, rounds: list[Round], index: int, strategy: Strategy) -> str:
    """The previous round's tail this round was sent without, when the engine gave it back after.

    Only a round that kept no text after a round whose ``held_back`` is empty qualifies: the
    engine restores a held-back tail when the last round of a session writes nothing of it
    again. The tail is recomputed by the engine's rule (:mod:`core.continuation.seams`): the
    first seam at temperature 0 holds back whole words to check them.
    """
    if index < 2 or not strategy.holds_back:
        return ""
    prev, rnd = rounds[index - 2], rounds[index - 1]
    if rnd.text or prev.held_back or not prev.text:
        return ""
    first_seam = not any(r.held_back for r in rounds[: index - 2])
    verify = planning.seam_check_due(spec, prev, strategy, first_seam=first_seam)
    held = planning.held_back_chars(prev.text, rnd.max_tokens, verify=verify)
    return prev.text[len(prev.text) - held :] if held else ""


class RequestUnavailable(LookupError):
    """The run does not keep what the request was built from (the message says what and why)."""


def answer_before(result: RunResult, index: int) -> str:
    """The answer as it stood when round ``index`` was planned, before any hold-back.

    The latest edit made before the round (:class:`~core.types.Edit`), then the text of
    the rounds between it and this one: :attr:`RunResult.text` as it was then.
    """
    made = [e for e in result.edits if e.after_round <= index - 1]
    start, base = (made[-1].after_round, made[-1].text) if made else (0, "")
    between = result.rounds[start : index - 1]
    later = next((e for e in result.edits if e.after_round >= index), None)
    if between and later is not None:
        raise RequestUnavailable(
            f"The request of round {index} cannot be rebuilt: the edit made after round {later.after_round} "
            f"took over the text of the rounds before it, and the run keeps that text only as one piece, "
            f"not where round {index} began."
        )
    return base + "".join(r.text for r in between)


def round_request(result: RunResult, index: int) -> RoundRequest:
    """Round ``index`` (1-based) of ``result`` as sent; see the module docstring for the limits.

    Raises IndexError for a round the run does not have, RequestUnavailable for a round
    whose text before was replaced by a later edit, and ConfigError for a strategy this
    version does not know.
    """
    rounds, spec = result.rounds, result.spec
    if not 1 <= index <= len(rounds):
        raise IndexError(f"round {index} is not in this run (it has {len(rounds)} rounds)")
    rnd = rounds[index - 1]
    strategy = get_strategy(rnd.strategy or spec.strategy)
    full = answer_before(result, index)
    held = _given_back(spec, rounds, index, strategy)
    answer = full[: len(full) - len(held)]
    reasoning = "".join(r.reasoning for r in rounds[: index - 1]) if not full else ""
    endpoint, body = strategy.build(spec, answer, reasoning)
    body["max_tokens"] = rnd.max_tokens  # after extra_body, as the engine sets it
    notes: list[str] = []
    if held:
        notes.append(
            f"Round {index - 1} got back the {len(held)} characters held back for this round (this round "
            "kept none of them); the request went without them, as recomputed by the engine's hold-back rule."
        )
    if spec.reasoning == "drop" and not full and index > 1:
        notes.append(
            "This run does not keep reasoning (reasoning: drop): if the rounds before reasoned, this "
            "request carried that reasoning as a prefill, which cannot be shown."
        )
    return RoundRequest(
        index=index,
        url=endpoint_url(spec.base_url, endpoint),
        body=stream_payload(body, True),
        keyed=sends_key(spec),
        strategy=strategy.name,
        answer_chars=len(answer),
        held_back=rounds[index - 2].held_back if index > 1 and not held else held,
        attempts=1 + rnd.retries,
        notes=tuple(notes),
    )


def curl_command(request: RoundRequest, *, body_file: str | None = None) -> str:
    """A shell command (sh, bash, zsh) that sends ``request`` again: ``$API_KEY`` stands for the key.

    The body follows in a quoted heredoc, so no character in it means anything to the shell
    (quotes, ``$``, backticks, backslashes, any Unicode). The JSON is one line, so it can
    never be the delimiter line; ``--data @-`` drops the line break the heredoc adds (curl
    strips CR and LF from such data, and a JSON body has none: they are escaped inside
    strings), so the bytes sent are exactly the client's. ``body_file``: read the body from
    that file instead (``--data-binary``, sent as is), for a body too long to paste.
    """
    parts = ["curl -sS -N " + shlex.quote(request.url)]
    if request.keyed:
        parts.append('-H "Authorization: Bearer $API_KEY"')
    parts.append("-H 'Content-Type: application/json'")
    if body_file is not None:
        parts.append("--data-binary @" + shlex.quote(body_file))
        return " \\\n  ".join(parts)
    parts.append(f"--data @- <<'{CURL_BODY_END}'")
    return " \\\n  ".join(parts) + "\n" + request.data.decode("utf-8") + "\n" + CURL_BODY_END


def _shorten(value: Any, head: int, tail: int) -> tuple[Any, int]:
    if isinstance(value, str) and len(value) > head + tail + 80:
        cut = len(value) - head - tail
        return f"{value[:head]} ⟪… {cut:,} characters not shown …⟫ {value[len(value) - tail :]}", cut
    if isinstance(value, dict):
        items = {k: _shorten(v, head, tail) for k, v in value.items()}
        return {k: v for k, (v, _) in items.items()}, sum(n for _, n in items.values())
    if isinstance(value, list):
        pairs = [_shorten(v, head, tail) for v in value]
        return [v for v, _ in pairs], sum(n for _, n in pairs)
    return value, 0


def shortened_json(body: dict[str, Any], head: int = 400, tail: int = 1200) -> tuple[str, int]:
    """``body`` as indented JSON for reading, long strings cut in the middle; and the characters cut.

    A string longer than about ``head + tail`` keeps its first ``head`` and last ``tail``
    characters (the end of the answer so far, where the model goes on, stays long). For
    display only: the exact body is :attr:`RoundRequest.data`.
    """
    short, cut = _shorten(body, head, tail)
    return json.dumps(short, ensure_ascii=False, indent=2), cut
