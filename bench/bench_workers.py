"""Batch workers: throughput of one batch with 1, 2 and 3 ``python -m core batch-worker`` processes.

The demo model runs in a process of its own (``python -m core demo --rate R``), so every stream
is paced like a real provider at R tokens/s: each worker, at concurrency C, can get at most
C × R tokens/s, and n workers n × C × R. With the demo's rate the bound, the aggregate should
scale with the workers. For each n (and each history: SQLite, and PostgreSQL when
``tests/pg.py`` can start a throwaway cluster), a fresh history gets one batch of ``--items``
prompts; n worker processes start, the batch is handed to them, and they are stopped (SIGTERM)
once it is done. Reported:

- span: from the first item's start to the last item's end (the runs' stored times); wall: from
  handing the batch over (once every worker has started and waits for work) until no item is left;
- tokens/s: output tokens (server usage) / span, and as a share of the ideal n × C × R;
- speed-up over one worker; exact: answers equal to the demo's single-shot document;
- items taken by each worker (no item twice: the runs number the items).

    .venv/bin/python bench/bench_workers.py [--items 48] [--rate 100] [--tokens 200] [--max-tokens 100]
        [--concurrency 4] [--db both|sqlite|postgresql]

Writes bench/results/workers.json and prints a markdown table. About 2 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from demo_process import start_demo_process  # noqa: E402  (bench/ is on sys.path)

from core.demo import demo_document  # noqa: E402  (after the path fix above)
from core.services.batch import BatchItem, create_batch  # noqa: E402
from core.services.batch.specs import settings_from_dict  # noqa: E402
from core.services.store import Store  # noqa: E402
from core.services.store.claims import Claims  # noqa: E402
from tests.pg import fresh_pg_url, pg_bindir, start_cluster  # noqa: E402


@contextlib.contextmanager
def demo_process(rate: float) -> Iterator[str]:
    proc, base = start_demo_process(rate)
    try:
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def new_batch(db: str, base: str, args: argparse.Namespace) -> str:
    """A batch of ``--items`` prompts in a fresh history, not handed to workers yet."""
    settings = settings_from_dict(
        {
            "provider": "demo",
            "base_url": base,
            "model": "demo-32k",
            "max_tokens": args.max_tokens,
            "max_rounds": 20,
        }
    )
    items = [
        BatchItem(id=f"p{i}", prompt=f"Write {args.tokens} tokens about thing {i}") for i in range(args.items)
    ]
    with Store(db) as store:
        return create_batch(store, items, settings, title="bench")


def measure(db: str, base: str, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    """Start ``workers`` workers, hand the batch over once every one is up, stop them when it is done."""
    batch_id = new_batch(db, base, args)
    env = {**os.environ, "CONTINUUM_DB": db}
    command = [sys.executable, "-m", "core", "batch-worker", "--provider", "demo", "--base-url", base]
    command += ["--concurrency", str(args.concurrency)]
    load = os.getloadavg()[0]
    procs = [
        subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]
    for proc in procs:
        assert proc.stderr is not None
        proc.stderr.readline()  # "batch worker host:pid: taking items": it is up (imports done)
    start = time.monotonic()
    with Store(db) as store:
        claims = Claims(store)
        claims.hand_over(batch_id)
        while claims.pending(batch_id):
            time.sleep(0.1)
        wall = time.monotonic() - start
        for proc in procs:
            proc.terminate()  # a clean stop: nothing is left to take
        codes = [proc.wait(timeout=120) for proc in procs]
        rows = store._read(  # the bench reads the history directly, like the tests' raw_rows
            "SELECT started_at, finished_at, completion_tokens, owner_pid, id FROM runs WHERE batch_id = ?",
            (batch_id,),
        )
        results = [store.load(row["id"]) for row in rows]
    exact = sum(r.text == demo_document(r.spec.messages[-1]["content"]) for r in results)
    span = max(r["finished_at"] for r in rows) - min(r["started_at"] for r in rows)
    tokens = sum(r["completion_tokens"] for r in rows)
    ideal = workers * args.concurrency * args.rate
    per_worker: dict[int, int] = {}
    for r in rows:
        per_worker[r["owner_pid"]] = per_worker.get(r["owner_pid"], 0) + 1
    return {
        "workers": workers,
        "exit_codes": codes,
        "items": args.items,
        "runs": len(rows),
        "exact": exact,
        "tokens": tokens,
        "span_s": round(span, 2),
        "wall_s": round(wall, 2),
        "tokens_per_s": round(tokens / span, 1),
        "items_per_s": round(len(rows) / span, 2),
        "ideal_tokens_per_s": ideal,
        "share_of_ideal": round(tokens / span / ideal, 3),
        "items_per_worker": sorted(per_worker.values(), reverse=True),
        "load_before": round(load, 2),
    }


def run_backend(name: str, args: argparse.Namespace, base: str) -> list[dict[str, Any]]:
    results = []
    with contextlib.ExitStack() as stack:
        if name == "postgresql":
            cluster = stack.enter_context(start_cluster())
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-workers-")))
        for n in (1, 2, 3):
            db = fresh_pg_url(cluster) if name == "postgresql" else str(folder / f"workers-{n}.sqlite3")
            figures = measure(db, base, n, args)
            print(f"{name}: {n} worker(s): {figures['tokens_per_s']} tokens/s", file=sys.stderr)
            results.append(figures)
    one = results[0]["tokens_per_s"]
    for figures in results:
        figures["speed_up"] = round(figures["tokens_per_s"] / one, 2)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=48)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--max-tokens", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--db", choices=("both", "sqlite", "postgresql"), default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    if "postgresql" in backends and pg_bindir() is None:
        print("PostgreSQL is not installed (make postgresql): SQLite only", file=sys.stderr)
        backends.remove("postgresql")
    with demo_process(args.rate) as base:
        results = {name: run_backend(name, args, base) for name in backends}
    report = {
        "benchmark": "bench/bench_workers.py",
        "date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "settings": {k: getattr(args, k) for k in ("items", "rate", "tokens", "max_tokens", "concurrency")},
        "results": results,
    }
    out = ROOT / "bench" / "results" / "workers.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print("| history | workers | tokens/s | share of ideal | speed-up | items/s | span | exact |")
    print("|---|---|---|---|---|---|---|---|")
    for name, rows in results.items():
        for f in rows:
            print(
                f"| {name} | {f['workers']} | {f['tokens_per_s']:,} | {f['share_of_ideal']:.0%} | "
                f"{f['speed_up']}× | {f['items_per_s']} | {f['span_s']} s | {f['exact']}/{f['items']} |"
            )


if __name__ == "__main__":
    main()
