"""The fault campaign: 1,000+ runs through random faults, every answer exact.

The demo model runs in a separate process with its ``chaos`` behaviour (see
:mod:`core.demo.chaos`): each chat/completion request, drawn from a seed, the
run's own URL prefix and the request's number, gets no fault or one of: a
stream cut at a random byte (mid-event, mid-UTF-8 character, mid-chunk-frame),
429 with Retry-After, 429 without it, 500, 502 (nginx HTML), 503, a silent
stall longer than the client's idle timeout, keep-alive comments spanning
longer than the idle timeout (not a fault: comments are bytes), or a slow drip.

Runs go through the engine's public API (``core.run``) on worker threads, with
a mix of prompt sizes, per-round ``max_tokens`` small enough for several rounds,
and strategies (the default ``prefill``, ``vllm``, ``prefix`` against an echoing
server, ``completions`` with a ChatML template, a reasoning model). Every tenth
run is fault-free but paced, under a round ceiling shorter than its rounds, so
the ceiling ends rounds too. Every assembled answer is compared with
``core.demo.demo_document(prompt)`` character for character.

Checked at the end (exit status 1 if one fails): every answer exact (characters
lost = 0), every fault kind injected, every retry after a 429 with Retry-After
waited exactly what the server asked, every stall ended in an idle timeout, the
client hung up during a keep-alive span or a drip only where the server had
really been silent for the idle timeout (the server measures its own gaps), and
round ceilings were hit. On a loaded machine a starved server can be silent past the
idle timeout on its own: those extra idle timeouts are reported
(``idle_timeouts_beyond_stalls``); a fault drawn for a request the client had
already given up on is counted by the server but never seen by the engine.

    .venv/bin/python bench/bench_faults.py [--runs 1000] [--threads 16] [--seed 1]

Writes bench/results/faults.json and prints a summary. About 2-3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from demo_process import start_demo_process  # noqa: E402  (bench/ is on sys.path)

from core import Retrying, RetryPolicy, RunFinished, RunSpec, Timeouts, run  # noqa: E402
from core.demo import behaviour_url, demo_document, demo_reasoning  # noqa: E402
from core.demo.tokens import common_prefix_length  # noqa: E402

FAULT_KINDS = ("cut", "429", "429_bare", "500", "502", "503", "stall", "keepalive", "drip")
SIZES = (150, 400, 800, 1500, 3000)  # demo tokens per answer
SIZE_WEIGHTS = (3, 4, 3, 2, 1)
MAX_TOKENS = (64, 128, 192, 256)  # per round
# name -> (behaviours, spec fields, weight)
GROUPS: dict[str, tuple[dict[str, Any], dict[str, Any], int]] = {
    "default": ({}, {}, 45),
    "vllm": ({"vllm": "required"}, {"strategy": "vllm"}, 10),
    "prefix-echo": ({"prefill": "echo"}, {"strategy": "prefix"}, 10),
    "completions-chatml": ({}, {"strategy": "completions", "template": "chatml"}, 10),
    "reasoner": ({}, {"model": "demo-reasoner"}, 15),
}
CEILING_EVERY = 10  # every Nth run: no chaos, paced, under a round ceiling
CEILING_RATE = 1500.0  # tokens/s of those runs' streams
CEILING_ROUND = 0.25  # seconds: their round ceiling (a 400-token round needs ~0.27 s)
IDLE = 0.5
STALL = 0.8
RETRY_AFTER = 0.1
POLICY = RetryPolicy(max_attempts=10, base=0.05, cap=0.4, max_wait=2.0, max_recoveries=8)


@dataclass
class Tally:
    """Figures gathered from the runs' events (under a lock)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    runs: int = 0
    exact: int = 0
    rounds: int = 0
    recovery_rounds: int = 0
    retries: int = 0
    expected_chars: int = 0
    lost_chars: int = 0  # expected characters missing from the answer
    wrong_chars: int = 0  # characters of the answer past the common prefix
    causes: Counter[str] = field(default_factory=Counter)  # why a round was retried or recovered
    honoured: int = 0  # retries after a 429 with Retry-After that waited exactly that long
    not_honoured: int = 0
    stops: Counter[str] = field(default_factory=Counter)
    groups: Counter[str] = field(default_factory=Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)


def cause(message: str) -> str:
    if "idle timeout" in message:
        return "idle_timeout"
    if "round timeout" in message:
        return "round_ceiling"
    if "Rate limited" in message:
        return "429_retry_after" if "asks to wait" in message else "429_bare"
    if "server failed" in message.lower():
        return "5xx"
    if "broke" in message or "without [DONE]" in message:
        return "cut"
    return "other: " + message[:80]


def plan_run(i: int, seed: int, base: str, chaos: float) -> tuple[str, RunSpec, Timeouts]:
    rng = random.Random(f"{seed}:{i}")
    ceiling = i % CEILING_EVERY == CEILING_EVERY - 1
    names = list(GROUPS)
    group = "ceiling" if ceiling else rng.choices(names, [GROUPS[n][2] for n in names])[0]
    tokens = rng.choices(SIZES, SIZE_WEIGHTS)[0]
    prompt = f"Write {tokens} tokens about fault campaign run {i}"
    if ceiling:
        behaviours: dict[str, Any] = {"rate": CEILING_RATE}
        fields: dict[str, Any] = {"max_tokens": 400}
        prompt = f"Write {min(tokens, 900)} tokens about fault campaign run {i}"
        timeouts = Timeouts(connect=5, idle=IDLE, round=CEILING_ROUND)
    else:
        behaviours = {
            **GROUPS[group][0],
            "chaos": chaos,
            "chaos_seed": seed,
            "chaos_stall": STALL,
            "retry_after": RETRY_AFTER,
        }
        fields = {**GROUPS[group][1], "max_tokens": rng.choice(MAX_TOKENS)}
        timeouts = Timeouts(connect=5, idle=IDLE, round=30)
    fields.setdefault("model", "demo-32k" if tokens > 1500 else "demo")
    url = behaviour_url(base, k=f"run-{seed}-{i}", **behaviours)
    spec = RunSpec(messages=[{"role": "user", "content": prompt}], base_url=url, max_rounds=1000, **fields)
    return group, spec, timeouts


def one_run(i: int, seed: int, base: str, chaos: float, tally: Tally) -> None:
    group, spec, timeouts = plan_run(i, seed, base, chaos)
    causes: Counter[str] = Counter()
    honoured = not_honoured = 0
    done: RunFinished | None = None
    for event in run(spec, timeouts=timeouts, retry=POLICY):
        if isinstance(event, Retrying):
            kind = cause(event.reason)
            causes[kind] += 1
            if kind == "429_retry_after":
                if event.wait == RETRY_AFTER:
                    honoured += 1
                else:
                    not_honoured += 1
        elif isinstance(event, RunFinished):
            done = event
    assert done is not None
    result = done.result
    want = demo_document(spec.prompt)
    got = result.text
    if spec.model == "demo-reasoner":  # the reasoning must be exact too
        want, got = want + demo_reasoning(spec.prompt), got + result.reasoning
    for rnd in result.rounds:
        if rnd.error:
            causes[cause(rnd.error)] += 1
    if group == "ceiling":  # kept apart: these runs have no chaos
        causes = Counter({f"ceiling_runs:{k}": v for k, v in causes.items()})
    same = common_prefix_length(got, want)
    with tally.lock:
        tally.runs += 1
        tally.groups[group] += 1
        tally.stops[done.stop_reason] += 1
        tally.rounds += len(result.rounds)
        tally.recovery_rounds += sum(r.recovery for r in result.rounds)
        tally.retries += sum(r.retries for r in result.rounds)
        tally.causes.update(causes)
        tally.honoured += honoured
        tally.not_honoured += not_honoured
        tally.expected_chars += len(want)
        tally.lost_chars += len(want) - same
        tally.wrong_chars += len(got) - same
        if got == want and done.stop_reason == "finished":
            tally.exact += 1
        elif len(tally.failures) < 20:
            tally.failures.append(
                {
                    "run": i,
                    "group": group,
                    "stop": done.stop_reason,
                    "error": done.error.message if done.error else None,
                    "at": same,
                    "got": got[same : same + 60],
                    "want": want[same : same + 60],
                }
            )


def campaign(runs: int, threads: int, seed: int, chaos: float, base: str) -> tuple[Tally, float]:
    tally = Tally()
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(one_run, i, seed, base, chaos, tally) for i in range(runs)]
        for n, future in enumerate(futures, 1):
            future.result()
            if n % 100 == 0:
                print(f"  {n} runs, {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
    return tally, time.monotonic() - start


def checks(tally: Tally, stats: dict[str, Any]) -> dict[str, bool]:
    faults = stats["faults"]
    return {
        "every answer exact": tally.exact == tally.runs,
        "no character lost": tally.lost_chars == 0 and tally.wrong_chars == 0,
        "every fault kind injected": all(faults.get(kind, 0) > 0 for kind in FAULT_KINDS),
        "Retry-After honoured": tally.honoured > 0 and tally.not_honoured == 0,
        "every stall ended in an idle timeout": tally.causes["idle_timeout"] >= faults.get("stall", 0),
        # the client may leave a keep-alive span or a drip only if the server really went silent
        # (starved on a loaded machine) for the idle timeout; comments and slow bytes are activity
        "keep-alives and drips never taken for silence": all(
            stats["abandoned_silence_s"].get(kind, IDLE) >= 0.9 * IDLE for kind in ("keepalive", "drip")
        ),
        "round ceilings hit": tally.causes["ceiling_runs:round_ceiling"] > 0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chaos", type=float, default=0.5, help="probability of a fault per request")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "faults.json")
    args = parser.parse_args(argv)
    proc, base = start_demo_process()
    try:
        tally, wall = campaign(args.runs, args.threads, args.seed, args.chaos, base)
        stats = httpx.get(base.rsplit("/v1", 1)[0] + "/stats", timeout=5).json()
    finally:
        proc.terminate()
        proc.wait(10)
    ok = checks(tally, stats)
    report = {
        "runs": tally.runs,
        "exact": tally.exact,
        "rounds": tally.rounds,
        "requests": stats["requests"],
        "faults_injected": sum(stats["faults"].values()),
        "faults_by_kind": stats["faults"],
        "cuts_by_place": stats["cuts"],
        "client_hung_up_during": stats["abandoned"],
        "server_silence_before_those_s": stats["abandoned_silence_s"],
        "idle_timeouts_beyond_stalls": tally.causes["idle_timeout"] - stats["faults"].get("stall", 0),
        "retries": tally.retries,
        "recovery_rounds": tally.recovery_rounds,
        "errors_seen_by_the_engine": dict(sorted(tally.causes.items())),
        "retry_after_honoured": tally.honoured,
        "retry_after_not_honoured": tally.not_honoured,
        "characters_expected": tally.expected_chars,
        "characters_lost": tally.lost_chars,
        "characters_wrong": tally.wrong_chars,
        "stop_reasons": dict(tally.stops),
        "runs_by_group": dict(sorted(tally.groups.items())),
        "wall_s": round(wall, 1),
        "checks": ok,
        "failures": tally.failures,
        "settings": {
            "chaos": args.chaos,
            "seed": args.seed,
            "threads": args.threads,
            "idle_timeout_s": IDLE,
            "stall_s": STALL,
            "retry_after_s": RETRY_AFTER,
            "round_ceiling_s": CEILING_ROUND,
            "ceiling_rate": CEILING_RATE,
            "retry_policy": asdict(POLICY),
            "sizes": SIZES,
            "max_tokens": MAX_TOKENS,
        },
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("settings", "failures")}, indent=2))
    for name, passed in ok.items():
        print(f"{'PASS' if passed else 'FAIL'}  {name}")
    return 0 if all(ok.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
