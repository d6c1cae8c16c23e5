"""Streaming throughput: Continuum vs the openai package vs a bare httpx loop.

An unthrottled demo model runs in a separate process; each contender streams
the same long answers from it and we count chunks (one demo token each) per
second of wall time:

- engine:  ``core.continuation.engine.run`` — whole continuation runs (prefill rounds of 4096
           tokens until the document is finished), events consumed;
- client:  ``core.wire.client.Client.stream_chat`` — single requests of 4096 tokens;
- openai:  ``openai.OpenAI(...).chat.completions.create(stream=True)``, same requests;
- bare:    ``for line in response.iter_lines(): if line.startswith("data: "):
           json.loads(line[6:])`` over httpx, same requests.

Contenders are interleaved and the whole set repeated; medians are reported.
Targets: engine >= 5x openai and >= 0.8x bare.

    .venv/bin/python bench/bench_stream.py [--chunks 200000] [--repeats 3]

Writes bench/results/stream.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from demo_process import start_demo_process  # noqa: E402  (bench/ is on sys.path)

from core.types import Delta, RunSpec  # noqa: E402
from core.wire.client import Client  # noqa: E402

MODEL = "demo-32k"
PER_REQUEST = 4096  # the demo's output cap
REQUEST_PROMPT = "Write 30000 tokens about the sea"
RUN_TOKENS = 28000  # per engine run: about 7 rounds, within demo-32k's window
RUN_PROMPT = f"Write {RUN_TOKENS} tokens about the sea"


def request_body() -> dict[str, Any]:
    messages = [{"role": "user", "content": REQUEST_PROMPT}]
    return {"model": MODEL, "messages": messages, "max_tokens": PER_REQUEST}


def bench_client(base: str, requests: int) -> int:
    chunks = 0
    with Client(base) as client:
        for _ in range(requests):
            for delta in client.stream_chat(request_body()):
                if delta.content:
                    chunks += 1
    return chunks


def bench_engine(base: str, runs: int) -> int:
    from core.continuation.engine import run

    chunks = 0
    for _ in range(runs):
        spec = RunSpec(
            messages=[{"role": "user", "content": RUN_PROMPT}],
            base_url=base,
            model=MODEL,
            max_tokens=PER_REQUEST,
            max_rounds=50,
            context_window=32768,
            output_cap=PER_REQUEST,
        )
        for event in run(spec):
            if type(event) is Delta:
                chunks += 1
    return chunks


def bench_openai(base: str, requests: int) -> int:
    import openai

    chunks = 0
    client = openai.OpenAI(base_url=base, api_key="x")
    body = request_body()
    for _ in range(requests):
        stream = client.chat.completions.create(
            model=body["model"], messages=body["messages"], max_tokens=body["max_tokens"], stream=True
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                chunks += 1
    client.close()
    return chunks


def bench_bare(base: str, requests: int) -> int:
    chunks = 0
    body = {**request_body(), "stream": True}
    with httpx.Client(timeout=60) as http:
        for _ in range(requests):
            with http.stream("POST", f"{base}/chat/completions", json=body) as response:
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        if line == "data: [DONE]":
                            break
                        json.loads(line[6:])
                        chunks += 1
    return chunks


def measure(fn: Callable[[str, int], int], base: str, count: int) -> dict[str, float]:
    """Wall-clock throughput, and throughput per CPU-second of this (the consuming) process."""
    cpu = time.process_time()
    start = time.perf_counter()
    chunks = fn(base, count)
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    return {
        "chunks": chunks,
        "seconds": round(seconds, 4),
        "cpu_seconds": round(cpu, 4),
        "chunks_per_s": round(chunks / seconds, 1),
        "chunks_per_cpu_s": round(chunks / cpu, 1),
    }


def interleaved(
    contenders: dict[str, tuple[Callable[[str, int], int], int]], repeats: int
) -> dict[str, list[dict[str, float]]]:
    """Each contender ``repeats`` times against one demo process, in a rotating order."""
    proc, base = start_demo_process()
    results: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    try:
        names = list(contenders)
        for name in names:  # warm-up: imports, connection, the demo's document cache
            fn, _ = contenders[name]
            fn(base, 1)
        for repeat in range(repeats):
            order = names[repeat % len(names) :] + names[: repeat % len(names)]
            for name in order:
                fn, count = contenders[name]
                result = measure(fn, base, count)
                results[name].append(result)
                rate = result["chunks_per_s"]
                print(f"repeat {repeat + 1} {name:7s} {rate:>12,.0f} chunks/s", file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=200_000, help="chunks per contender per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "stream.json")
    parser.add_argument("--skip", action="append", default=[], help="contender to leave out (repeatable)")
    args = parser.parse_args(argv)

    requests = math.ceil(args.chunks / PER_REQUEST)
    runs = math.ceil(args.chunks / RUN_TOKENS)
    contenders: dict[str, tuple[Callable[[str, int], int], int]] = {
        "engine": (bench_engine, runs),
        "client": (bench_client, requests),
        "openai": (bench_openai, requests),
        "bare": (bench_bare, requests),
    }
    for name in args.skip:
        contenders.pop(name, None)

    results = interleaved(contenders, args.repeats)
    medians = {name: statistics.median(r["chunks_per_s"] for r in runs_) for name, runs_ in results.items()}
    cpu_medians = {
        name: statistics.median(r["chunks_per_cpu_s"] for r in runs_) for name, runs_ in results.items()
    }

    def ratio(a: str, b: str) -> float | None:
        return round(medians[a] / medians[b], 2) if a in medians and b in medians else None

    ratios = {
        "engine/openai": ratio("engine", "openai"),
        "engine/bare": ratio("engine", "bare"),
        "client/openai": ratio("client", "openai"),
        "client/bare": ratio("client", "bare"),
    }
    report = {
        "benchmark": "stream",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "httpx": httpx.__version__,
        "model": MODEL,
        "chunks_per_contender": args.chunks,
        "requests_of_4096": requests,
        "engine_runs": runs,
        "repeats": args.repeats,
        "load_average_at_end": os.getloadavg()[0],
        "median_chunks_per_s": medians,
        "median_chunks_per_cpu_s": cpu_medians,
        "ratios": ratios,
        "targets": {"engine/openai": 5.0, "engine/bare": 0.8},
        "runs": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    print("| contender | median chunks/s | vs openai | vs bare | chunks per CPU-s (client side) |")
    print("|---|---:|---:|---:|---:|")
    for name, value in medians.items():
        vs_openai = f"{value / medians['openai']:.2f}x" if "openai" in medians else "-"
        vs_bare = f"{value / medians['bare']:.2f}x" if "bare" in medians else "-"
        print(f"| {name} | {value:,.0f} | {vs_openai} | {vs_bare} | {cpu_medians[name]:,.0f} |")
    print(f"\nwritten to {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
