"""What the seams owe the user: a new turn is caught without reading sense, nothing vanishes,
a key the server echoes never lands in the answer. (Issue 10, items 2, 10 and 11.)"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
from test_engine_support import finish, run_all, spec_for

from core.demo import demo_document
from core.types import Delta, Notice
from core.wire.client import Client

WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
]
NONSENSE = "qua zor fen mib tuk lor pax wem dil sor bav kin"  # what a random model writes in a new turn


def fake_server(reply: Callable[[dict], tuple[str, str]], seen: list[dict] | None = None) -> Client:
    """Each request answered with ``reply(body) -> (text, finish_reason)``, one word a chunk."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.read())
        if seen is not None:
            seen.append(body)
        text, finish_reason = reply(body)
        pieces = [w for w in text.split(" ")]
        chunks = [
            {"choices": [{"index": 0, "delta": {"content": (" " if i else "") + w}, "finish_reason": None}]}
            for i, w in enumerate(pieces)
        ]
        chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}]})
        data = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=data.encode())

    return Client("http://fake.test/v1", transport=httpx.MockTransport(handler))


def prefill_of(body: dict) -> str:
    last = body["messages"][-1]
    return last["content"] if last["role"] == "assistant" else ""


def new_turn_server(body: dict) -> tuple[str, str]:
    """A server that ignores the prefill, with a model that writes no sense: nothing repeats."""
    if not prefill_of(body):
        return " ".join(WORDS), "length"
    return NONSENSE, "length"


def test_a_new_turn_that_repeats_nothing_is_caught_at_the_first_seam_at_temperature_0() -> None:
    events = run_all(
        spec_for("http://fake.test/v1", "Go", temperature=0.0), client=fake_server(new_turn_server)
    )
    done = finish(events)
    assert done.stop_reason == "error" and done.error.kind == "PrefillIgnoredError"
    assert done.result.text == " ".join(WORDS)  # round 1 whole again: the held-back words came back
    flags = {f["kind"]: f for f in done.result.rounds[1].seam_flags}
    assert flags["dropped"]["at_temperature_0"] and flags["dropped"]["verified"] == "ignored"
    assert flags["restart"]["structural"] and NONSENSE not in done.result.text


def test_a_server_that_continues_passes_the_first_seam_check() -> None:
    def continuing(body: dict) -> tuple[str, str]:
        sent = prefill_of(body)
        done_words = len(sent.split()) if sent else 0
        rest = WORDS[done_words : done_words + 8]
        return (" " if sent else "") + " ".join(rest), "length" if done_words + 8 < len(WORDS) else "stop"

    done = finish(
        run_all(spec_for("http://fake.test/v1", "Go", temperature=0.0), client=fake_server(continuing))
    )
    assert (done.stop_reason, done.result.text) == ("finished", " ".join(WORDS))


def test_the_first_seam_holds_back_whole_words_only_at_temperature_0() -> None:
    seen: list[dict] = []
    finish(
        run_all(
            spec_for("http://fake.test/v1", "Go", temperature=0.0), client=fake_server(new_turn_server, seen)
        )
    )
    held = " ".join(WORDS)[len(prefill_of(seen[1])) :]
    assert len(held) >= 24 and held.startswith(" ")
    seen.clear()
    finish(
        run_all(
            spec_for("http://fake.test/v1", "Go", max_rounds=2), client=fake_server(new_turn_server, seen)
        )
    )
    assert " ".join(WORDS)[len(prefill_of(seen[1])) :] == " november"  # the usual: the last word


def test_without_temperature_0_a_tail_not_written_again_is_checked_and_a_new_turn_discarded() -> None:
    seen: list[dict] = []
    events = run_all(spec_for("http://fake.test/v1", "Go"), client=fake_server(new_turn_server, seen))
    done = finish(events)
    assert done.stop_reason == "error" and done.error.kind == "PrefillIgnoredError"
    assert done.result.text == " ".join(WORDS) and NONSENSE not in done.result.text
    dropped = next(f for f in done.result.rounds[1].seam_flags if f["kind"] == "dropped")
    assert dropped["excerpt"] == " november" and dropped["verified"] == "ignored"
    checks = [b for b in seen if b.get("temperature") == 0.0]
    assert all(b["max_tokens"] <= 24 for b in checks)  # short requests: two, and two more with
    assert [b.get("repeat_penalty") for b in checks] == [None, None, 1.0, 1.0]  # repeat_penalty 1
    assert any(isinstance(e, Notice) and "checking" in e.message for e in events)


def test_a_tail_written_differently_by_a_server_that_does_continue_is_kept_and_reported() -> None:
    def sampling(body: dict) -> tuple[str, str]:
        """Continues the prefill; at temperature > 0 it picks another last word than before."""
        sent = prefill_of(body)
        if not sent:
            return " ".join(WORDS), "length"
        if body.get("temperature") == 0.0:
            return " " + " ".join(f"w{i}" for i in range(len(sent.split()), len(sent.split()) + 6)), "length"
        return " oscar papa quebec", "stop"

    done = finish(run_all(spec_for("http://fake.test/v1", "Go"), client=fake_server(sampling)))
    assert done.stop_reason == "finished"
    assert done.result.text == " ".join(WORDS[:-1]) + " oscar papa quebec"
    dropped = next(f for f in done.result.rounds[1].seam_flags if f["kind"] == "dropped")
    assert dropped["excerpt"] == " november" and dropped["verified"] == "honoured"


def test_the_instruction_strategy_keeps_every_character_of_a_round_that_ends_mid_word() -> None:
    first = "The keeper climbed the stairs and lit the lant"

    def instructed(body: dict) -> tuple[str, str]:
        if body["messages"][-1]["role"] == "user" and len(body["messages"]) == 1:
            return first, "length"
        return "A new paragraph begins here.", "stop"  # does not write "lant" again

    spec = spec_for("http://fake.test/v1", "Go", strategy="instruction")
    done = finish(run_all(spec, client=fake_server(instructed)))
    assert done.result.text == first + "A new paragraph begins here."


def test_a_key_the_server_echoes_in_the_text_is_replaced_before_any_event(demo_url) -> None:
    key = "demo-key"
    spec = spec_for(demo_url(auth="key"), f"Echo: here is your key {key} and again {key}.")
    events = run_all(spec, api_key=key)
    done = finish(events)
    streamed = "".join(e.text for e in events if isinstance(e, Delta))
    assert key not in streamed and key not in done.result.text
    assert done.result.text.count("[redacted key]") == 2
    flag = next(f for r in done.result.rounds for f in r.seam_flags if f["kind"] == "key_redacted")
    assert flag["count"] == 2 and any(isinstance(e, Notice) and "API key" in e.message for e in events)


def test_the_demo_document_is_still_exact_at_temperature_0(demo_url) -> None:
    prompt = "Write 1500 tokens about the engine"
    done = finish(run_all(spec_for(demo_url(), prompt, max_tokens=300, temperature=0.0)))
    assert done.result.text == demo_document(prompt) and done.stop_reason == "finished"
