"""Batch throughput: 200 concurrent multi-round runs at 50 tokens/s each, Continuum vs openai + threads.

The demo model runs in a separate process (``python -m core.demo --rate 50``),
so every stream is paced like a real provider at 50 tokens/s; 200 of them at
once make an ideal aggregate of 10,000 tokens/s. Each contender runs in a child
process of its own, so its CPU time and memory are its own:

- continuum: ``core.services.batch`` — a stored batch of 200 items, ``BatchRunner`` with
  concurrency 200 (worker threads, shared adaptive limit, paced reads, every run
  recorded in a temporary SQLite history, as ``python -m core batch`` does);
- openai:    the ``openai`` package, one shared client, a ``ThreadPoolExecutor``
  of 200 threads, each a naive continuation loop (send, append the answer as a
  trailing assistant message, repeat while ``finish_reason == "length"``);
  stopped after 75 s if it has not finished (its throughput is then the tokens
  received in that window / 75 s; "exact" counts only finished runs);
- ceiling:   what the demo server can deliver on this machine: one selector
  thread on raw sockets, one request per document (no continuation, no
  parsing) — the same 200 streams at the same rate.

Each item asks for a 1,500-token document with ``max_tokens`` 512, so every run
takes 3 rounds (about 30 s at 50 tokens/s). Reported per contender:

- throughput: output tokens (server usage) / wall time, as a share of the ideal
  10,000 tokens/s (target >= 90%) and of the ceiling;
- CPU: process CPU seconds (user + system, ``resource.getrusage``) / wall
  seconds, in cores (target <= 1 core for Continuum);
- memory: peak RSS during the batch minus RSS before it, / 200 runs;
- exact: answers equal to the single-shot document;
- for Continuum, the median time to first token and gap between rounds.

    .venv/bin/python bench/bench_batch.py [--runs 200] [--rate 50] [--tokens 1500] [--max-tokens 512]

Writes bench/results/batch.json and prints a markdown table. About 3 minutes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from demo_process import start_demo_process  # noqa: E402  (bench/ is on sys.path)

MODEL = "demo"
PAGE = os.sysconf("SC_PAGE_SIZE")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) another process has used so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def prompts(runs: int, tokens: int) -> list[str]:
    return [f"Write {tokens} tokens about subject number {i}" for i in range(runs)]


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


class Sampler:
    """Peak RSS, sampled every 0.2 s on a thread of its own."""

    def __init__(self) -> None:
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(work: Callable[[], tuple[int, int]], runs: int) -> dict[str, Any]:
    """Run ``work`` (returns output tokens and exact answers) and time it."""
    import gc

    gc.collect()
    before = rss_bytes()
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    with Sampler() as sampler:
        tokens, exact = work()
    wall = time.monotonic() - wall0
    cpu = cpu_seconds() - cpu0
    return {
        "wall_s": round(wall, 2),
        "output_tokens": tokens,
        "tokens_per_s": round(tokens / wall, 1),
        "cpu_s": round(cpu, 2),
        "cpu_cores": round(cpu / wall, 3),
        "rss_before_mb": round(before / 2**20, 1),
        "rss_peak_mb": round(sampler.peak / 2**20, 1),
        "memory_per_run_kb": round((sampler.peak - before) / runs / 1024, 1),
        "exact": exact,
        "runs": runs,
    }


# ---------------------------------------------------------------- contenders (child processes)


def run_continuum(base: str, texts: list[str], max_tokens: int) -> dict[str, Any]:
    from core.demo import demo_document
    from core.services.batch import BatchItem, BatchRunner, batch_results, create_batch
    from core.services.store import Store
    from core.types import RunSpec

    items = [BatchItem(id=str(i), prompt=p) for i, p in enumerate(texts)]
    settings = RunSpec(
        messages=[], base_url=base, model=MODEL, max_tokens=max_tokens, max_rounds=20, context_window=8192
    )
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "bench.sqlite3") as store:
        batch_id = create_batch(store, items, settings, concurrency=len(items))
        runner = BatchRunner(store, batch_id, concurrency=len(items))

        ended: list[float] = []

        def work() -> tuple[int, int]:
            progress = runner.run()
            ended.append(time.time())
            assert progress.finished == len(items), progress
            return progress.tokens, 0

        figures = measure(work, len(items))
        exact, ttfts, gaps, durations, rounds, last = 0, [], [], [], 0, 0.0
        starts: list[Any] = []
        for entry in batch_results(store, batch_id):
            result = entry.result
            assert result is not None
            last = max(last, result.finished_at or 0.0)
            exact += result.text == demo_document(entry.item.prompt)
            rs = result.rounds
            starts.append(rs[0])
            rounds += len(rs)
            ttfts += [r.ttft_s or 0.0 for r in rs]
            durations += [r.duration_s for r in rs]
            gaps += [b.started_at - (a.started_at + a.duration_s) for a, b in itertools.pairwise(rs)]
        figures.update(
            exact=exact,
            rounds=rounds,
            ttft_median_s=round(statistics.median(ttfts), 3),
            round_duration_median_s=round(statistics.median(durations), 2),
            round_duration_max_s=round(max(durations), 2),
            run_start_spread_s=round(
                max(r.started_at for r in starts) - min(r.started_at for r in starts), 2
            ),
            round_gap_median_s=round(statistics.median(gaps), 3) if gaps else None,
            peak_in_flight=runner.limiter.stats().peak_in_flight,
            store_lag_s=round(ended[0] - last, 2),  # last answer done → everything written
        )
    return figures


def run_openai(base: str, texts: list[str], max_tokens: int, budget: float = 75.0) -> dict[str, Any]:
    """Naive threads; stopped after ``budget`` seconds if not done (then tokens/s is over the window)."""
    import openai

    from core.demo import demo_document

    client = openai.OpenAI(base_url=base, api_key="demo", max_retries=5)
    rounds = [0]
    lock = threading.Lock()
    deadline = [0.0]

    def one(prompt: str) -> tuple[int, bool]:
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        answer = ""
        tokens = 0  # content chunks: one demo token each
        for _ in range(20):
            body = messages + ([{"role": "assistant", "content": answer}] if answer else [])
            stream = client.chat.completions.create(
                model=MODEL,
                messages=body,
                max_tokens=max_tokens,
                stream=True,  # type: ignore[arg-type]
            )
            finish = None
            parts: list[str] = []
            for chunk in stream:
                if chunk.choices:
                    choice = chunk.choices[0]
                    if choice.delta.content:
                        parts.append(choice.delta.content)
                        tokens += 1
                    if choice.finish_reason:
                        finish = choice.finish_reason
                if time.monotonic() > deadline[0]:
                    stream.close()
                    return tokens, False
            answer += "".join(parts)
            with lock:
                rounds[0] += 1
            if finish != "length":
                break
        return tokens, answer == demo_document(prompt)

    def work() -> tuple[int, int]:
        deadline[0] = time.monotonic() + budget
        with ThreadPoolExecutor(max_workers=len(texts)) as pool:
            results = list(pool.map(one, texts))
        return sum(t for t, _ in results), sum(ok for _, ok in results)

    figures = measure(work, len(texts))
    figures["rounds"] = rounds[0]
    figures["stopped_after_s"] = budget if figures["wall_s"] >= budget else None
    return figures


USAGE = re.compile(rb'"completion_tokens":\s*(\d+)')


def run_ceiling(base: str, texts: list[str], max_tokens: int) -> dict[str, Any]:
    """One selector thread, raw sockets, one request per document: what the server can send."""
    host, port = base.split("//", 1)[1].split("/", 1)[0].split(":")
    path = "/" + base.split("//", 1)[1].split("/", 1)[1] + "/chat/completions"

    def work() -> tuple[int, int]:
        sel = selectors.DefaultSelector()
        for prompt in texts:
            body = json.dumps(
                {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "stream": True}
            ).encode()
            sock = socket.create_connection((host, int(port)))
            head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ, bytearray())
        left, tokens = len(texts), 0
        while left:
            for key, _ in sel.select():
                sock, tail = key.fileobj, key.data
                data = sock.recv(65536)  # type: ignore[union-attr]
                tail += data
                del tail[:-2048]
                if b"data: [DONE]" in tail or not data:
                    found = USAGE.findall(bytes(tail))
                    tokens += int(found[-1]) if found else 0
                    sel.unregister(sock)
                    sock.close()  # type: ignore[union-attr]
                    left -= 1
        return tokens, 0

    figures = measure(work, len(texts))
    figures.update(rounds=len(texts), exact=None)
    return figures


CONTENDERS: dict[str, Callable[[str, list[str], int], dict[str, Any]]] = {
    "continuum": run_continuum,
    "openai": run_openai,
    "ceiling": run_ceiling,
}


def child(args: argparse.Namespace) -> None:
    figures = CONTENDERS[args.child](args.base, prompts(args.runs, args.tokens), args.max_tokens)
    print(json.dumps(figures))


def run_child(name: str, base: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", name, "--base", base]
    cmd += ["--runs", str(args.runs), "--tokens", str(args.tokens), "--max-tokens", str(args.max_tokens)]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0, help="tokens/s per stream")
    parser.add_argument("--tokens", type=int, default=1500, help="document length per run")
    parser.add_argument("--max-tokens", type=int, default=512, help="max tokens per round")
    parser.add_argument("--only", choices=sorted(CONTENDERS), action="append", help="run only these")
    parser.add_argument("--child", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    ideal = args.runs * args.rate
    results: dict[str, dict[str, Any]] = {}
    for name in args.only or list(CONTENDERS):
        proc, base = start_demo_process(args.rate)  # a fresh server each
        try:
            before, load = process_cpu(proc.pid), os.getloadavg()[0]
            results[name] = run_child(name, base, args)
            results[name]["server_cpu_cores"] = round(
                (process_cpu(proc.pid) - before) / results[name]["wall_s"], 3
            )  # the demo model's own CPU, over the contender's whole run (setup included)
            results[name]["load_before"] = round(load, 2)  # other work on the machine (1-min load)
        finally:
            proc.terminate()
            proc.wait(10)
    ceiling = results.get("ceiling", {}).get("tokens_per_s")
    for figures in results.values():
        figures["share_of_ideal"] = round(figures["tokens_per_s"] / ideal, 3)
        figures["share_of_ceiling"] = round(figures["tokens_per_s"] / ceiling, 3) if ceiling else None
    c = results.get("continuum")
    report = {
        "runs": args.runs,
        "rate_per_stream": args.rate,
        "tokens_per_run": args.tokens,
        "max_tokens_per_round": args.max_tokens,
        "ideal_tokens_per_s": ideal,
        "results": results,
        "targets": {"share_of_ideal_min": 0.9, "cpu_cores_max": 1.0},
        "pass": bool(c and c["share_of_ideal"] >= 0.9 and c["cpu_cores"] <= 1.0 and c["exact"] == args.runs),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }
    out = ROOT / "bench" / "results" / "batch.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"{args.runs} concurrent runs × {args.tokens} tokens, {args.max_tokens} per round, "
        f"at {args.rate:g} tokens/s (ideal {ideal:,.0f}/s), {os.cpu_count()} CPUs\n"
    )
    print(
        "| contender | tokens/s | of ideal | of ceiling | wall s | CPU cores | demo CPU | memory/run | rounds | exact |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, f in results.items():
        of_ceiling = f"{f['share_of_ceiling']:.0%}" if f["share_of_ceiling"] is not None else "-"
        exact = f"{f['exact']}/{f['runs']}" if f["exact"] is not None else "-"
        print(
            f"| {name} | {f['tokens_per_s']:,.0f} | {f['share_of_ideal']:.0%} | {of_ceiling} | {f['wall_s']:.1f} | "
            f"{f['cpu_cores']:.2f} | {f['server_cpu_cores']:.2f} | {f['memory_per_run_kb']:,.0f} KB | {f['rounds']} | {exact} |"
        )
    if c:
        print(
            f"\ncontinuum: per round (ideal {args.max_tokens / args.rate:.1f} s): median "
            f"{c['round_duration_median_s']} s, max {c['round_duration_max_s']} s; median time to first "
            f"token {c['ttft_median_s']} s; median gap between rounds {c['round_gap_median_s']} s; "
            f"runs started over {c['run_start_spread_s']} s"
        )
    print(f"pass: {report['pass']} (targets: >= 90% of ideal, <= 1 core) — {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
