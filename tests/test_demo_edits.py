"""The demo model after an edit that departs from its document, over loopback HTTP (issue 12).

The demo goes on from where the answer departs; the next request sends the answer back
with what the demo wrote after it, and the demo goes on after that: round after round,
like any continuation, until the document ends (before, every round after the first
wrote the same text again and the engine stopped the run for repetition).
"""

from __future__ import annotations

from typing import Any

import httpx
from test_engine_support import finish, run_all, spec_for

from core.demo import demo_document
from core.demo.tokens import common_prefix_length

PROMPT = "Write 1500 tokens about the engine"
MINE = "\n\nMY OWN SENTENCE, written by hand and"


def reply(base_url: str, answer: str, max_tokens: int) -> dict[str, Any]:
    body = {
        "model": "demo",
        "messages": [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": answer}],
        "max_tokens": max_tokens,
    }
    response = httpx.post(f"{base_url}/chat/completions", json=body, timeout=20)
    response.raise_for_status()
    choice = response.json()["choices"][0]
    return {"text": choice["message"]["content"], "finish_reason": choice["finish_reason"]}


def test_rounds_after_a_departing_edit_go_on_to_the_end_of_the_document(demo_server: str) -> None:
    document = demo_document(PROMPT)
    edited = document[:400] + MINE
    answer, rounds = edited, 0
    while rounds < 100:
        got = reply(demo_server, answer, max_tokens=60)
        answer, rounds = answer + got["text"], rounds + 1
        if got["finish_reason"] != "length":
            break
    assert answer == edited + document[400:] and rounds > 2


def test_a_round_whose_tail_was_held_back_writes_that_tail_again(demo_server: str) -> None:
    document = demo_document(PROMPT)
    edited = document[:400] + MINE
    first = reply(demo_server, edited, max_tokens=60)["text"]
    again = reply(demo_server, edited + first[:-9], max_tokens=60)["text"]  # the engine holds back a tail
    written = first[:-9] + again
    assert again.startswith(first[-9:]) and written == document[400 : 400 + len(written)]


def test_a_run_edited_away_from_the_document_goes_on_until_it_finishes(demo_server: str) -> None:
    part = finish(run_all(spec_for(demo_server, PROMPT, max_tokens=200, max_rounds=2))).result
    mine = part.text[: part.text.rstrip().rfind("\n\n")] + MINE
    part.edit(mine)
    part.spec.max_rounds = 40
    done = finish(run_all(part.spec, resume=part))
    departs = common_prefix_length(mine, demo_document(PROMPT))
    assert done.stop_reason == "finished" and len(done.result.rounds) > 4
    assert done.result.text == mine + demo_document(PROMPT)[departs:]
