"""Replay: the demo model serves a recorded run's rounds at the recorded pace, through real HTTP.

Servers run at speed 0 (no waiting) unless a test reads the pace they plan; no
test measures wall time (bench/bench_replay.py does, with recorded results).
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.continuation.engine import run
from core.continuation.probe import probe
from core.demo import TRANSCRIPTS, DemoServer, ReplayError, behaviour_url, demo_document, start_demo_server
from core.types import Round, RunFinished, RunResult, RunSpec
from tests.clirun import cli, command

from .helpers import DemoAPI

SAMPLES = ("tool-library", "water-leaks")


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((TRANSCRIPTS / f"{name}.json").read_text(encoding="utf-8"))
    return data


def replay_run(base_url: str, t: dict[str, Any], resume: RunResult | None = None, **spec: Any) -> RunResult:
    values = {"max_tokens": t["spec"]["max_tokens"], "strategy": "prefill", **spec}
    spec_ = RunSpec(
        messages=t["spec"]["messages"], provider="custom", base_url=base_url, model="replay", **values
    )
    return next(e for e in run(spec_, resume=resume) if isinstance(e, RunFinished)).result


def rows(rounds: list[Any]) -> list[tuple[Any, ...]]:
    keys = ("text", "reasoning", "held_back", "finish_reason", "prompt_tokens", "completion_tokens")
    return [tuple(r[k] if isinstance(r, dict) else getattr(r, k) for k in keys) for r in rounds]


def chat(prefill: str | None = None, **extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": "anything: the replay does not read the prompt"}]
    if prefill is not None:
        messages.append({"role": "assistant", "content": prefill})
    return {"model": "replay", "messages": messages, **extra}


def raw_transcript(texts: list[str], **round_fields: Any) -> dict[str, Any]:
    """A transcript by hand: rounds as streamed (no held_back), capped then stopped."""
    rounds = [
        {"text": text, "finish_reason": "length" if i < len(texts) - 1 else "stop", **round_fields}
        for i, text in enumerate(texts)
    ]
    return {"schema": "continuum.transcript/1", "spec": {"model": "acme/writer-70b"}, "rounds": rounds}


RAW = [
    "The harbour opened at dawn. Boats left in a quiet li",
    "ne, one after another, and the",
    " gulls followed.",
]
RAW_RUN = {"spec": {"messages": [{"role": "user", "content": "Write about the harbour"}], "max_tokens": 64}}


@pytest.fixture(scope="module")
def replays() -> Iterator[dict[str, DemoServer]]:
    with (
        start_demo_server(replay=sample("tool-library"), speed=0) as one,
        start_demo_server(replay=TRANSCRIPTS / "water-leaks.json", speed=0) as two,
    ):
        yield {"tool-library": one, "water-leaks": two}


@pytest.mark.parametrize("name", SAMPLES)
def test_the_engine_reproduces_a_shipped_transcript_round_for_round(name: str, replays: dict) -> None:
    t = sample(name)
    result = replay_run(replays[name].base_url, t)
    assert (result.stop_reason, rows(result.rounds)) == ("finished", rows(t["rounds"]))


@pytest.mark.parametrize("name", SAMPLES)
def test_a_sample_is_a_multi_round_run_at_a_realistic_pace(name: str) -> None:
    t = sample(name)
    finishes = [r["finish_reason"] for r in t["rounds"]]
    assert 3 <= len(finishes) <= 5 and finishes == ["length"] * (len(finishes) - 1) + ["stop"]
    assert 1500 <= t["totals"]["completion_tokens"] <= 3000
    assert all(0.3 <= r["ttft_s"] <= 0.9 and 40 <= r["tokens_per_s"] <= 80 for r in t["rounds"])


def test_one_sample_reasons_first_and_continues_its_reasoning_across_a_round(replays: dict) -> None:
    first, second = sample("water-leaks")["rounds"][:2]
    assert first["reasoning"] and not first["text"] and second["reasoning"] and second["text"]


def test_a_recording_without_held_back_text_replays_to_the_same_rounds() -> None:
    with start_demo_server(replay=raw_transcript(RAW), speed=0) as server:
        result = replay_run(server.base_url, RAW_RUN)
    assert [r.finish_reason for r in result.rounds] == ["length", "length", "stop"]
    assert result.text == "".join(RAW)


def test_the_cli_run_gets_the_whole_text(replays: dict, clean_env: dict[str, str]) -> None:
    t = sample("tool-library")
    base = replays["tool-library"].base_url
    args = ("run", "--provider", "custom", "--base-url", base, "--model", "replay", "--no-save", "--quiet")
    done = cli(*args, "--prompt", t["spec"]["messages"][0]["content"], env=clean_env)
    assert (done.returncode, done.stdout) == (0, t["text"] + "\n"), done.stderr


def test_speed_scales_the_planned_delays(http: httpx.Client) -> None:
    t = sample("water-leaks")
    with start_demo_server(replay=t, speed=1) as real, start_demo_server(replay=t, speed=4) as fast:
        plans = [http.get(s.base_url + "/models/replay").json()["metadata"]["replay"] for s in (real, fast)]
        reply = http.post(fast.base_url + "/chat/completions", json=chat(max_tokens=1))
    one, four = plans[0]["rounds"], plans[1]["rounds"]
    assert [r["duration_s"] for r in one] == pytest.approx([r["duration_s"] for r in t["rounds"]])
    assert [r["ttft_s"] for r in four] == pytest.approx([r["ttft_s"] / 4 for r in t["rounds"]])
    assert [r["interval_s"] for r in four] == pytest.approx([r["interval_s"] / 4 for r in one])
    assert f"first after {t['rounds'][0]['ttft_s'] / 4:.3f} s" in reply.headers["x-replay"]


def test_the_command_line_replays_a_file_at_a_speed(http: httpx.Client, clean_env: dict[str, str]) -> None:
    path = TRANSCRIPTS / "tool-library.json"
    proc = subprocess.Popen(
        command("demo", "--replay", str(path), "--speed", "2", "--port", "0"),
        cwd=Path(__file__).resolve().parents[2],
        env=clean_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().split(" on ")[1].strip()
        assert "replaying tool-library.json: 4 rounds" in proc.stdout.readline()
        plan = http.get(base + "/models/replay").json()["metadata"]["replay"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert (
        plan["speed"] == 2
        and plan["rounds"][0]["ttft_s"] == sample("tool-library")["rounds"][0]["ttft_s"] / 2
    )


def test_a_prefill_that_departs_gets_an_empty_stop_saying_where(api: DemoAPI, replays: dict) -> None:
    text = sample("tool-library")["text"]
    result = api.stream(replays["tool-library"].base_url, chat(text[:100] + " and zebras"))
    assert (result.content, result.finish_reason) == ("", "stop")
    assert "departed from the recording at character 100" in result.headers["x-replay"]


def test_the_engine_finishes_an_edited_answer_with_the_text_it_has(replays: dict) -> None:
    t = sample("tool-library")
    edited = RunResult(spec=RunSpec(messages=[]), rounds=[Round(1, text="# My own title\n\nI wrote this.")])
    edited.rounds[0].finish_reason = "length"
    result = replay_run(replays["tool-library"].base_url, t, resume=edited)
    assert (result.stop_reason, result.text) == ("finished", "# My own title\n\nI wrote this.")


def test_a_prefill_inside_a_round_gets_the_rest_of_that_round(api: DemoAPI, replays: dict) -> None:
    first = sample("tool-library")["rounds"][0]
    whole = first["text"] + first["held_back"]
    reply = api.post(replays["tool-library"].base_url, chat(whole[:50])).json()["choices"][0]
    assert (reply["message"]["content"], reply["finish_reason"]) == (whole[50:], "length")


def test_max_tokens_below_the_recording_cuts_rounds_but_the_text_stays_whole(replays: dict) -> None:
    t = sample("water-leaks")
    result = replay_run(replays["water-leaks"].base_url, t, max_tokens=150)
    assert len(result.rounds) > len(t["rounds"]) and (result.text, result.reasoning) == (
        t["text"],
        t["reasoning"],
    )


def test_the_probe_finds_that_the_replay_continues(replays: dict) -> None:
    assert probe(replays["tool-library"].base_url, "replay").verdict == "honoured"


def test_the_completions_strategy_replays_reasoning_in_think_tags(replays: dict) -> None:
    t = sample("water-leaks")
    result = replay_run(replays["water-leaks"].base_url, t, strategy="completions", template="chatml")
    assert (result.stop_reason, result.text, result.reasoning) == ("finished", t["text"], t["reasoning"])


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_is_served_in_the_field_asked_for(field: str, api: DemoAPI, replays: dict) -> None:
    base = replays["water-leaks"].base_url
    url = behaviour_url(base, reasoning=field) if field == "reasoning" else base
    result = api.stream(url, chat())
    first = sample("water-leaks")["rounds"][0]
    assert (result.reasoning, result.reasoning_fields, result.content) == (first["reasoning"], {field}, "")


def test_usage_is_served_as_recorded(api: DemoAPI, replays: dict) -> None:
    usage = api.post(replays["water-leaks"].base_url, chat()).json()["usage"]
    first = sample("water-leaks")["rounds"][0]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (first["prompt_tokens"], 480)
    assert usage["completion_tokens_details"] == {"reasoning_tokens": first["reasoning_tokens"]}


def test_a_round_recorded_without_usage_is_served_without_usage(api: DemoAPI) -> None:
    raw = raw_transcript(RAW, completion_tokens=9, completion_estimated=True)
    with start_demo_server(replay=raw, speed=0) as server:
        result = api.stream(server.base_url, chat())
    assert (result.content, result.usage) == (RAW[0], None)


def test_a_round_that_broke_off_breaks_off_again_and_the_engine_recovers(api: DemoAPI) -> None:
    raw = raw_transcript(RAW)
    raw["rounds"][0]["finish_reason"] = None
    with start_demo_server(replay=raw, speed=0) as server:
        broken = api.stream(server.base_url, chat())
        result = replay_run(server.base_url, RAW_RUN)
    assert (broken.content, broken.broken, result.text) == (RAW[0], True, "".join(RAW))


def test_the_run_s_own_model_name_and_the_demo_models_are_served_beside_it(api: DemoAPI) -> None:
    with start_demo_server(replay=raw_transcript(RAW), speed=0) as server:
        listed = [m["id"] for m in api.client.get(server.base_url + "/models").json()["data"]]
        own = api.post(server.base_url, {**chat(), "model": "acme/writer-70b"}).json()
        demo = api.post(server.base_url, {**chat(), "model": "demo"}).json()
    assert listed[:3] == ["replay", "acme/writer-70b", "demo"]
    assert own["choices"][0]["message"]["content"] == RAW[0]
    assert demo["choices"][0]["message"]["content"] == demo_document(chat()["messages"][0]["content"])


def _broken(t: dict[str, Any], change: Any) -> dict[str, Any]:
    t = copy.deepcopy(t)
    change(t)
    return t


MALFORMED = [
    ('{"rounds": [', "not valid JSON (line 1, column 13"),
    ("[1, 2]", "a transcript is a JSON object, got list"),
    ('{"schema": "continuum.transcript/1", "rounds": []}', "`rounds` must be a non-empty list of rounds, got no rounds"),
    ('{"schema": "something/else", "rounds": []}', "schema 'something/else' is not 'continuum.transcript/1'"),
    (_broken(raw_transcript(RAW), lambda t: t["rounds"][1].update(text=None)), "rounds[1].text must be a string, got null"),
    (_broken(raw_transcript(RAW), lambda t: t["rounds"][0].pop("text")), "rounds[0] has no `text` field"),
    (_broken(raw_transcript(RAW), lambda t: t["rounds"][2].update(duration_s=-1)), "rounds[2].duration_s must not be negative"),
    (_broken(raw_transcript(RAW), lambda t: t["rounds"][0].update(ttft_s=2, duration_s=1)), "ttft_s 2 is longer than duration_s 1"),
    (raw_transcript(["", ""]), "no round has any text or reasoning"),
]  # fmt: skip


@pytest.mark.parametrize(("content", "message"), MALFORMED)
def test_a_malformed_transcript_names_the_problem(content: Any, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    with pytest.raises(ReplayError) as caught:
        start_demo_server(replay=path)
    assert message in str(caught.value) and "bad.json" in str(caught.value)


def test_the_command_line_refuses_a_malformed_transcript_with_the_reason(
    tmp_path: Path, clean_env: dict
) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(_broken(raw_transcript(RAW), lambda t: t["rounds"][1].update(text=3))))
    done = cli("demo", "--replay", str(path), "--port", "0", env=clean_env)
    assert done.returncode == 2 and "run.json: rounds[1].text must be a string, got int '3'" in done.stderr


def test_replay_run_serves_a_run_from_the_history(tmp_path: Path, tmp_db: Path, clean_env: dict) -> None:
    env = {**clean_env, "CONTINUUM_DB": str(tmp_db)}
    saved = tmp_path / "saved.json"
    args = ("--model", "demo-reasoner", "--prompt", "Write 300 tokens about maps", "--max-tokens", "120")
    assert (
        cli("run", "--provider", "demo", *args, "--transcript", str(saved), "--quiet", env=env).returncode
        == 0
    )
    t = json.loads(saved.read_text(encoding="utf-8"))
    proc = subprocess.Popen(
        command("demo", "--replay-run", t["run_id"][:8], "--speed", "0", "--port", "0"),
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().split(" on ")[1].strip()
        result = replay_run(base, t)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert rows(result.rounds) == rows(t["rounds"])


def test_replay_run_of_an_unknown_run_says_so(tmp_db: Path, clean_env: dict) -> None:
    done = cli("demo", "--replay-run", "nope", "--port", "0", env={**clean_env, "CONTINUUM_DB": str(tmp_db)})
    assert done.returncode == 2 and "no run 'nope' in the history" in done.stderr


def test_replay_run_needs_the_history_of_the_full_command_line(clean_env: dict) -> None:
    done = subprocess.run(
        [*command("demo")[:2], "core.demo", "--replay-run", "abc", "--port", "0"],
        env={**clean_env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "use python -m core demo --replay-run" in done.stderr
