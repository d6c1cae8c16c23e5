"""``python -m core serve``: what the endpoint costs a client against reading the upstream directly.

The demo model (unthrottled) and ``serve`` each run in a process of their own; the client is
the same bare loop for both (httpx ``iter_lines`` + ``json.loads``, every chunk parsed), in
this process. Interleaved repeats; medians.

- **Throughput**: content delivered per second. Direct: one 4,096-token request (the demo's
  output cap). Through serve: the same 4,096 tokens (one round), and a 20,000-token answer
  (5 rounds, each re-sending the answer so far, saved in a history as it streams). Reported in
  tokens/s (the demo sends one token per chunk, so this is the upstream's chunks/s) and in SSE
  events/s (serve joins the text of one batch of upstream chunks into one chunk: a client that
  reads slower than the upstream writes gets fewer, larger chunks).
- **Cadence** with a paced upstream (a second demo process at 2,000 tokens/s per stream): SSE
  events per answer and per second, direct vs through serve (one event per upstream chunk when
  the client keeps up, bar the few words held back at each seam).
- **Time to first token**: request sent → first non-empty content, small answers, direct vs
  through serve; the extra is serve's.

Targets (issue 13): at least 0.5× the direct rate, at most 20 ms extra time to first token.

    .venv/bin/python bench/bench_serve.py [--repeats 7] [--ttft 40]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.demo_process import ROOT, free_port, start_demo_process, start_process

RESULTS = ROOT / "bench" / "results" / "serve.json"


def start_serve_process(upstream: str, history: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "core",
        "serve",
        "--provider",
        "demo",
        "--base-url",
        upstream,
        "--port",
        str(port),
    ]
    proc = start_process(
        cmd, f"http://127.0.0.1:{port}/health", "serve", env={"CONTINUUM_DB": str(history)}, quiet=True
    )
    return proc, f"http://127.0.0.1:{port}/v1"


def read(client: httpx.Client, base: str, prompt: str, max_tokens: int) -> dict[str, Any]:
    """One streamed request read by the bare loop: events, content characters, timings."""
    body = {
        "model": "demo-32k",
        "stream": True,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": prompt}],
    }
    events = chars = 0
    first = None
    usage: dict[str, Any] = {}
    start = time.perf_counter()
    with client.stream("POST", base + "/chat/completions", json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            events += 1
            for choice in chunk.get("choices") or ():
                text = (choice.get("delta") or {}).get("content")
                if text:
                    chars += len(text)
                    if first is None:
                        first = time.perf_counter() - start
            usage = chunk.get("usage") or usage
    elapsed = time.perf_counter() - start
    return {
        "events": events,
        "chars": chars,
        "ttft_s": first,
        "elapsed_s": elapsed,
        "tokens": usage.get("completion_tokens"),
    }


def throughput(client: httpx.Client, direct: str, serve: str, repeats: int) -> dict[str, Any]:
    cases = {
        "direct 4096": (direct, "Write 4096 tokens about bench direct", 4096),
        "serve 4096 (1 round)": (serve, "Write 4096 tokens about bench direct", 4096),
        "serve 20000 (5 rounds)": (serve, "Write 20000 tokens about bench long", 20000),
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in cases}
    for base, prompt, n in cases.values():  # warm-up
        read(client, base, prompt, n)
    for _ in range(repeats):
        for name, (base, prompt, n) in cases.items():
            runs[name].append(read(client, base, prompt, n))
    out = {}
    for name, rs in runs.items():
        tokens = statistics.median(r["tokens"] / r["elapsed_s"] for r in rs)
        events = statistics.median(r["events"] / r["elapsed_s"] for r in rs)
        out[name] = {
            "tokens_per_s": round(tokens),
            "sse_events_per_s": round(events),
            "events_per_answer": statistics.median(r["events"] for r in rs),
            "tokens": rs[0]["tokens"],
            "elapsed_s_median": round(statistics.median(r["elapsed_s"] for r in rs), 4),
        }
    direct_rate = out["direct 4096"]["tokens_per_s"]
    for row in out.values():
        row["vs_direct"] = round(row["tokens_per_s"] / direct_rate, 2)
    return out


def cadence(client: httpx.Client, direct: str, serve: str, repeats: int) -> dict[str, Any]:
    out = {}
    for name, base in (("direct", direct), ("serve", serve)):
        rs = [read(client, base, "Write 2000 tokens about cadence", 2000) for _ in range(repeats)]
        out[name] = {
            "events_per_answer": statistics.median(r["events"] for r in rs),
            "sse_events_per_s": round(statistics.median(r["events"] / r["elapsed_s"] for r in rs)),
            "tokens_per_s": round(statistics.median(r["tokens"] / r["elapsed_s"] for r in rs)),
        }
    out["serve_vs_direct_events_per_s"] = round(
        out["serve"]["sse_events_per_s"] / out["direct"]["sse_events_per_s"], 2
    )
    return out


def first_tokens(client: httpx.Client, direct: str, serve: str, n: int) -> dict[str, Any]:
    direct_t, serve_t = [], []
    for i in range(n + 3):
        prompt = f"Write 40 tokens about first token {i}"
        d = read(client, direct, prompt, 40)["ttft_s"]
        s = read(client, serve, prompt, 40)["ttft_s"]
        if i >= 3:  # warm-up
            direct_t.append(d)
            serve_t.append(s)
    extra = sorted(s - d for s, d in zip(serve_t, direct_t, strict=True))
    ms = lambda v: round(v * 1000, 2)  # noqa: E731
    return {
        "n": n,
        "direct_ms_median": ms(statistics.median(direct_t)),
        "serve_ms_median": ms(statistics.median(serve_t)),
        "extra_ms_median": ms(statistics.median(extra)),
        "extra_ms_p90": ms(extra[int(0.9 * (len(extra) - 1))]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--ttft", type=int, default=40, help="time-to-first-token pairs")
    args = parser.parse_args()
    demo, direct = start_demo_process(0.0)
    paced_demo, paced = start_demo_process(2000.0)
    procs = [demo, paced_demo]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            serve_proc, serve = start_serve_process(direct, Path(tmp) / "history.sqlite3")
            procs.append(serve_proc)
            paced_proc, paced_serve = start_serve_process(paced, Path(tmp) / "paced.sqlite3")
            procs.append(paced_proc)
            with httpx.Client(timeout=120) as client:
                load_before = os.getloadavg()
                rates = throughput(client, direct, serve, args.repeats)
                ttft = first_tokens(client, direct, serve, args.ttft)
                paced_rates = cadence(client, paced, paced_serve, 3)
                load_after = os.getloadavg()
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(10)
    met = {
        "rate_at_least_half_direct": rates["serve 20000 (5 rounds)"]["vs_direct"] >= 0.5
        and rates["serve 4096 (1 round)"]["vs_direct"] >= 0.5,
        "extra_ttft_at_most_20ms": ttft["extra_ms_median"] <= 20,
    }
    result = {
        "bench": "serve",
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_average": {
            "before": [round(x, 2) for x in load_before],
            "after": [round(x, 2) for x in load_after],
        },
        "throughput": rates,
        "cadence_paced_2000_tokens_per_s": paced_rates,
        "time_to_first_token": ttft,
        "targets_met": met,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0 if all(met.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
