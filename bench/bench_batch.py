"""Batch throughput: 200 concurrent multi-round runs at 50 tokens/s each, Continuum vs openai + threads.

The demo model runs in a separate process (``python -m core.demo --rate 50``),
so every stream is paced like a real provider at 50 tokens/s; 200 of them at
once make an ideal aggregate of 10,000 tokens/s. Each contender runs in its own
child process, so its CPU time and memory are its own:

- continuum: ``core.batch`` — a stored batch of 200 items, ``BatchRunner`` with
  concurrency 200 (worker threads, shared adaptive limit, every run recorded in
  a temporary SQLite history, exactly as ``python -m core batch`` does);
- openai:    the ``openai`` package, one shared client, a ``ThreadPoolExecutor``
  of 200 threads, each a naive continuation loop (send, append the answer as a
  trailing assistant message, repeat while ``finish_reason == "length"``).

Each item asks for a 1,500-token document with ``max_tokens`` 512, so every run
takes 3 rounds (about 30 s at 50 tokens/s). Reported per contender:

- throughput: output tokens (server usage) / wall time, and as a share of the
  ideal 10,000 tokens/s (target >= 90%);
- CPU: process CPU seconds (user + system, ``resource.getrusage``) / wall
  seconds, in cores (target <= 1 core for Continuum);
- memory: peak RSS during the batch minus RSS before it, / 200 runs;
- exact: answers equal to the single-shot document.

    .venv/bin/python bench/bench_batch.py [--runs 200] [--rate 50] [--tokens 1500] [--max-tokens 512]

Writes bench/results/batch.json and prints a markdown table. About 80 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
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

MODEL = "demo"
KEPT: list[Any] = []
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


BACKLOG_PATCH = (
    "import sys; from core.demo.handler import DemoHTTPServer; DemoHTTPServer.request_queue_size = 1024; "
    "from core.demo.server import main; sys.exit(main(sys.argv[1:]))"
)


def start_server(rate: float, patch_backlog: bool = False) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    launch = ["-c", BACKLOG_PATCH] if patch_backlog else ["-m", "core.demo"]
    cmd = [sys.executable, *launch, "--port", str(port), "--rate", f"{rate:g}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{base}/models", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("the demo server did not start")
        time.sleep(0.05)


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
    from core.batch import BatchItem, BatchRunner, create_batch
    from core.demo import demo_document
    from core.store import Store
    from core.types import RunSpec

    items = [BatchItem(id=str(i), prompt=p) for i, p in enumerate(texts)]
    settings = RunSpec(
        messages=[], base_url=base, model=MODEL, max_tokens=max_tokens, max_rounds=20, context_window=8192
    )
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "bench.sqlite3") as store:
        batch_id = create_batch(store, items, settings, concurrency=len(items))
        runner = BatchRunner(store, batch_id, concurrency=len(items))

        def work() -> tuple[int, int]:
            progress = runner.run()
            assert progress.finished == len(items), progress
            return progress.tokens, -1

        figures = measure(work, len(items))
        exact = 0
        from core.batch import batch_results

        for entry in batch_results(store, batch_id):
            exact += entry.result is not None and entry.result.text == demo_document(entry.item.prompt)
        figures["exact"] = exact
        figures["rounds"] = sum(i.rounds for i in runner.progress().items)
        figures["peak_in_flight"] = runner.limiter.stats().peak_in_flight
        if os.environ.get("DIAG_ROUNDS"):
            import statistics

            durs, ttfts, gaps = [], [], []
            results = KEPT or [e.result for e in batch_results(store, batch_id)]
            for result in results:
                assert result is not None
                rs = result.rounds
                durs += [r.duration_s for r in rs]
                ttfts += [r.ttft_s or 0 for r in rs]
                gaps += [b.started_at - (a.started_at + a.duration_s) for a, b in zip(rs, rs[1:], strict=False)]
            for name, xs in (("duration", durs), ("ttft", ttfts), ("gap", gaps)):
                q = statistics.quantiles(xs, n=10)
                print(name, "median", round(statistics.median(xs), 3), "p10", round(q[0], 3), "p90", round(q[-1], 3), "max", round(max(xs), 3), file=sys.stderr)
    return figures


def run_openai(base: str, texts: list[str], max_tokens: int) -> dict[str, Any]:
    import openai

    from core.demo import demo_document

    client = openai.OpenAI(base_url=base, api_key="demo", max_retries=5)
    rounds = [0]
    lock = threading.Lock()

    def one(prompt: str) -> tuple[int, bool]:
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        answer = ""
        tokens = 0
        for _ in range(20):
            body = messages + ([{"role": "assistant", "content": answer}] if answer else [])
            stream = client.chat.completions.create(
                model=MODEL,
                messages=body,  # type: ignore[arg-type]
                max_tokens=max_tokens,
                stream=True,
                stream_options={"include_usage": True},
            )
            finish = None
            parts: list[str] = []
            for chunk in stream:
                if chunk.usage is not None:
                    tokens += chunk.usage.completion_tokens
                if chunk.choices:
                    choice = chunk.choices[0]
                    if choice.delta.content:
                        parts.append(choice.delta.content)
                    if choice.finish_reason:
                        finish = choice.finish_reason
            answer += "".join(parts)
            with lock:
                rounds[0] += 1
            if finish != "length":
                break
        return tokens, answer == demo_document(prompt)

    def work() -> tuple[int, int]:
        with ThreadPoolExecutor(max_workers=len(texts)) as pool:
            results = list(pool.map(one, texts))
        return sum(t for t, _ in results), sum(ok for _, ok in results)

    figures = measure(work, len(texts))
    figures["rounds"] = rounds[0]
    return figures


CONTENDERS: dict[str, Callable[[str, list[str], int], dict[str, Any]]] = {
    "continuum": run_continuum,
    "openai": run_openai,
}


def child(args: argparse.Namespace) -> None:
    if os.environ.get("DIAG_NOSTORE"):
        from core.store.recorder import Recorder

        from core.types import RunFinished

        def keep(self, event):  # type: ignore[no-untyped-def]
            if isinstance(event, RunFinished):
                KEPT.append(event.result)

        Recorder.handle = keep  # type: ignore[method-assign]
    if os.environ.get("DIAG_STORETIME"):
        import atexit
        import contextlib

        from core.store.runs import Store

        spent = [0.0, 0]
        orig = Store._write

        @contextlib.contextmanager
        def timed(self):  # type: ignore[no-untyped-def]
            t = time.monotonic()
            with orig(self) as conn:
                yield conn
            spent[0] += time.monotonic() - t
            spent[1] += 1

        Store._write = timed  # type: ignore[method-assign]
        atexit.register(lambda: print("store write s", spent, file=sys.stderr))
    figures = CONTENDERS[args.child](args.base, prompts(args.runs, args.tokens), args.max_tokens)
    print(json.dumps(figures))


def run_child(name: str, base: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        name,
        "--base",
        base,
        "--runs",
        str(args.runs),
        "--tokens",
        str(args.tokens),
        "--max-tokens",
        str(args.max_tokens),
    ]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0, help="tokens/s per stream")
    parser.add_argument("--tokens", type=int, default=1500, help="document length per run")
    parser.add_argument("--max-tokens", type=int, default=512, help="max tokens per round")
    parser.add_argument(
        "--patch-demo-backlog",
        action="store_true",
        help="start the demo with a listen backlog of 1024 (socketserver's default of 5 drops "
        "connections when 200 clients connect at once)",
    )
    parser.add_argument("--child", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    ideal = args.runs * args.rate
    proc, base = start_server(args.rate, args.patch_demo_backlog)
    try:
        results = {name: run_child(name, base, args) for name in CONTENDERS}
    finally:
        proc.terminate()
        proc.wait(10)
    for figures in results.values():
        figures["share_of_ideal"] = round(figures["tokens_per_s"] / ideal, 3)
    c = results["continuum"]
    report = {
        "runs": args.runs,
        "rate_per_stream": args.rate,
        "tokens_per_run": args.tokens,
        "max_tokens_per_round": args.max_tokens,
        "ideal_tokens_per_s": ideal,
        "results": results,
        "demo_backlog_patched": args.patch_demo_backlog,
        "targets": {"share_of_ideal_min": 0.9, "cpu_cores_max": 1.0},
        "pass": c["share_of_ideal"] >= 0.9 and c["cpu_cores"] <= 1.0 and c["exact"] == args.runs,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }
    out = ROOT / "bench" / "results" / "batch.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{args.runs} concurrent runs × {args.tokens} tokens at {args.rate:g} tokens/s (ideal {ideal:,.0f}/s)\n")
    print("| contender | tokens/s | of ideal | wall s | CPU cores | memory/run | rounds | exact |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, f in results.items():
        print(
            f"| {name} | {f['tokens_per_s']:,.0f} | {f['share_of_ideal']:.1%} | {f['wall_s']:.1f} | "
            f"{f['cpu_cores']:.2f} | {f['memory_per_run_kb']:,.0f} KB | {f['rounds']} | {f['exact']}/{f['runs']} |"
        )
    print(f"\npass: {report['pass']} (targets: >= 90% of ideal, <= 1 core) — {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
