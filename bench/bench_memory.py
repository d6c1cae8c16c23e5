"""Memory of a 1M-token answer: peak memory above idle against the size of the text.

The demo model runs unthrottled in a process of its own (``demo-1m``, a 1,048,576-token
window, 4,096 tokens per request: ~245 continuation rounds, each re-sending the whole
answer so far). Each measurement runs in a fresh child process of this script, which:

1. imports core, starts a client (``core.wire.client.Client``), lists the models and
   runs one short warm-up run (so lazy imports and the connection are in place);
   that state is *idle* (its RSS, and ``ru_maxrss`` so far);
2. runs ``core.continuation.engine.run`` for the 1M-token answer, consuming the events
   as the command line does (each Delta written to a file: /dev/null here), keeping the
   final ``RunResult`` and writing its answer at the end as the command line prints or
   saves it (``RunResult.text_parts()``, piece by piece: ``core/cli/run.py``'s ``report``);
3. reports its peak memory above idle; then, as a what-if, the peak once the answer is
   also joined into one ``str`` (``RunResult.text``) beside the rounds' own texts.

Four children, one after the other:

- ``rss`` (the figure that counts): no tracing; peak RSS above idle = ``ru_maxrss`` at
  the end minus ``ru_maxrss`` at idle (every allocator and fragmentation cost included).
- ``collected`` (a what-if, to tell garbage from live data): the same, but the consumer
  calls ``gc.collect()`` after each RoundFinished, so objects that only reference cycles
  keep alive are freed every round instead of at the collector's next full pass.
- ``history``: the same, the run recorded in a history on a temporary SQLite file as the
  command line records it (``core.services.store.Recorder``, the default; ``--no-save`` is
  the ``rss`` child).
- ``trace``: ``tracemalloc`` started at idle (12 frames), so every figure is above idle,
  and a full collection at each RoundFinished (as ``collected``): the peak of each phase
  of a round (``plan``: from the previous round's end to RoundStarted, the engine building
  the next request; ``send``: RoundStarted to the round's first Delta, the client encoding
  and sending it; ``stream``: first Delta to RoundFinished), what the most the collection
  freed in one round, and snapshots grouped by traceback: the live set at the first Delta
  of the round where the most was alive, what the collection freed (snapshots before and
  after it), and what is left at the end (RunFinished, the answer written out).

Target: peak above idle <= 3x the text's size in UTF-8 bytes. The answer is checked
against ``core.demo.demo_document`` (SHA-256), after the measurements.

    .venv/bin/python bench/bench_memory.py [--tokens 1000000] [--skip-trace]

Writes bench/results/memory.json and prints a markdown table. About 5-8 minutes on 2 cores,
most of it the traced child (tracemalloc slows every allocation); ``--only-rss``: under a minute.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import linecache
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from demo_process import start_demo_process  # noqa: E402  (bench/ is on sys.path)

from core.continuation.engine import run  # noqa: E402
from core.services.store import Recorder, Store  # noqa: E402
from core.types import Delta, RoundFinished, RoundStarted, RunFinished, RunResult, RunSpec  # noqa: E402
from core.wire.client import Client  # noqa: E402

MODEL = "demo-1m"
WINDOW = 1_048_576
PER_ROUND = 4096  # the demo's output cap
TARGET_RATIO = 3.0
PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1024 * 1024
TRACE_FRAMES = 12  # enough to reach the engine from httpx's encoder; more slows every allocation


def prompt_for(tokens: int) -> str:
    return f"Write {tokens} tokens about the sea"


def spec_for(base: str, prompt: str, max_tokens: int = PER_ROUND) -> RunSpec:
    return RunSpec(
        messages=[{"role": "user", "content": prompt}],
        base_url=base,
        model=MODEL,
        max_tokens=max_tokens,
        max_rounds=10_000,
        context_window=WINDOW,
        output_cap=PER_ROUND,
    )


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


# ------------------------------------------------------------------ the child


class Tracer:
    """trace mode: tracemalloc peaks per phase, garbage collected at each round's end.

    At each RoundFinished a full collection frees what only reference cycles kept alive
    (how much, and, for the biggest rounds, which allocations by traceback); so the
    phase peaks are what the engine needs at least, garbage aside. At the first Delta of
    the biggest rounds the live set is kept, grouped by traceback.
    """

    def __init__(self) -> None:
        self.phase = "plan"
        self.phase_peaks: dict[str, dict[str, int]] = {}
        self.round = 0
        self.alive_max = 0
        self.alive_round = 0
        self.alive_top: list[dict[str, Any]] = []
        self.garbage_max = 0
        self.garbage_round = 0
        self.garbage_top: list[dict[str, Any]] = []
        self.garbage_top_round = 0
        self._snap_garbage_at = 0.0

    def boundary(self, next_phase: str) -> None:
        current, peak = tracemalloc.get_traced_memory()
        best = self.phase_peaks.get(self.phase)
        if best is None or peak > best["peak"]:
            self.phase_peaks[self.phase] = {"peak": peak, "round": self.round, "current_at_end": current}
        # at the first Delta the request is on the wire and its reply arriving
        if next_phase == "stream" and current > self.alive_max * 1.02:
            self.alive_max, self.alive_round = current, self.round
            self.alive_top = top_stats(tracemalloc.take_snapshot())
        if next_phase == "plan":  # the round ended
            self._collect(current)
        tracemalloc.reset_peak()
        self.phase = next_phase

    def _collect(self, current: int) -> None:
        before = None
        if current > self._snap_garbage_at:
            self._snap_garbage_at = current * 1.02
            before = tracemalloc.take_snapshot()
        gc.collect()
        freed = current - tracemalloc.get_traced_memory()[0]
        if freed > self.garbage_max:
            self.garbage_max, self.garbage_round = freed, self.round
        if before is not None:
            diff = tracemalloc.take_snapshot().compare_to(before, "traceback")
            diff.sort(key=lambda d: d.size_diff)
            self.garbage_top = [
                {"bytes": -d.size_diff, "blocks": -d.count_diff, "where": frames(d.traceback)}
                for d in diff[:8]
                if d.size_diff < 0
            ]
            self.garbage_top_round = self.round


def consume(
    spec: RunSpec,
    client: Client,
    out: Any,
    tracer: Tracer | None,
    collect: bool = False,
    store: Store | None = None,
) -> RunResult:
    """Events as the command line consumes them: deltas written out, the result kept
    (``collect``: plus a full garbage collection after each round, the what-if; ``store``:
    recorded in that history, as the command line does unless told not to)."""
    result: RunResult | None = None
    first = False
    events = run(spec, client=client)
    if store is not None:
        events = Recorder(store, autoflush=True).record(events)
    for event in events:
        kind = type(event)
        if kind is Delta:
            if first and tracer is not None:
                tracer.boundary("stream")
            first = False
            out.write(event.text)  # type: ignore[union-attr]
        elif kind is RoundStarted:
            first = True
            if tracer is not None:
                tracer.round = event.index  # type: ignore[union-attr]
                tracer.boundary("send")
        elif kind is RoundFinished:
            if collect:
                gc.collect()
            if tracer is not None:
                tracer.boundary("plan")
        elif kind is RunFinished:
            result = event.result  # type: ignore[union-attr]
    assert result is not None
    return result


def frames(traceback: tracemalloc.Traceback) -> list[str]:
    """The project and httpx frames of ``traceback`` (else its innermost two), innermost last."""
    picked = [f for f in traceback if "/core/" in f.filename or "/httpx/" in f.filename]
    return [
        f"{where(f.filename)}:{f.lineno}  {linecache.getline(f.filename, f.lineno).strip()}"
        for f in (picked or list(traceback)[-2:])
    ][-8:]


def top_stats(snapshot: tracemalloc.Snapshot, limit: int = 8) -> list[dict[str, Any]]:
    """The biggest allocations alive in ``snapshot``, grouped by traceback."""
    snapshot = snapshot.filter_traces(  # not the measurement's own allocations
        [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, linecache.__file__)]
    )
    return [
        {"bytes": stat.size, "blocks": stat.count, "where": frames(stat.traceback)}
        for stat in snapshot.statistics("traceback")[:limit]
    ]


def where(filename: str) -> str:
    path = Path(filename)
    if path.is_relative_to(ROOT / ".venv"):
        return "/".join(path.parts[-2:])  # httpx/_content.py
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def child(mode: str, base: str, tokens: int) -> dict[str, Any]:
    client = Client(base)
    client.list_models()
    store = Store(Path(tempfile.mkdtemp()) / "history.db") if mode == "history" else None
    with open(os.devnull, "w", encoding="utf-8") as out:
        warm_up = spec_for(base, "Write 3000 tokens about rivers", 512)
        consume(warm_up, client, out, None, store=store)
        gc.collect()
        idle_rss, idle_max = rss_bytes(), max_rss_bytes()
        tracer = None
        if mode == "trace":
            tracemalloc.start(TRACE_FRAMES)
            tracer = Tracer()
        start = time.perf_counter()
        spec = spec_for(base, prompt_for(tokens))
        result = consume(spec, client, out, tracer, mode == "collected", store)
        run_max = max_rss_bytes()
        out.writelines(result.text_parts())  # the answer at the end, as the CLI prints or saves it
        seconds = time.perf_counter() - start
        peak_max = max_rss_bytes()
        report: dict[str, Any] = {"mode": mode, "idle_rss": idle_rss, "idle_max_rss": idle_max}
        report["peak_rss_above_idle"] = peak_max - idle_max
        report["peak_rss_of_the_run_above_idle"] = run_max - idle_max
        report["rss_at_end_above_idle"] = rss_bytes() - idle_rss
        if tracer is not None:
            end_top = top_stats(tracemalloc.take_snapshot())
            current = tracemalloc.get_traced_memory()[0]
            tracer.boundary("done")
            tracemalloc.stop()
            report["traced_peak"] = max(p["peak"] for p in tracer.phase_peaks.values())
            report["traced_at_end"] = current
            report["phase_peaks"] = tracer.phase_peaks
            report["alive_round"] = tracer.alive_round
            report["alive_at_first_delta"] = tracer.alive_max
            report["top_alive_at_first_delta"] = tracer.alive_top
            report["garbage_freed_max"] = tracer.garbage_max
            report["garbage_freed_max_round"] = tracer.garbage_round
            report["top_garbage"] = tracer.garbage_top
            report["top_garbage_round"] = tracer.garbage_top_round
            report["top_alive_at_end"] = end_top
        text = result.text  # the what-if: the answer joined into one str, beside the rounds' texts
        report["peak_rss_with_joined_text_above_idle"] = max_rss_bytes() - idle_max
    client.close()
    if store is not None:
        store.close()
    report.update(
        seconds=round(seconds, 2),
        stop_reason=result.stop_reason,
        rounds=len(result.rounds),
        completion_tokens=result.completion_tokens,
        text_chars=len(text),
        text_bytes=len(text.encode("utf-8")),
        text_str_bytes=sys.getsizeof(text),  # CPython: 2 bytes a character once one is above U+00FF
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )
    return report


# ------------------------------------------------------------------ the parent


def run_child(mode: str, base: str, tokens: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", mode, "--base", base, "--tokens", str(tokens)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"the {mode} child failed ({done.returncode})")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def mib(n: float) -> str:
    return f"{n / MB:,.1f} MiB"


def print_table(report: dict[str, Any]) -> None:
    text_bytes = report["text_bytes"]
    print(f"| measure ({report['tokens']:,} tokens, {report['rounds']} rounds) | value | x text bytes |")
    print("|---|---:|---:|")
    print(f"| text (UTF-8) | {mib(text_bytes)} | 1.00 |")
    rows = [("text as a Python str", report["rss"]["text_str_bytes"])]
    rows.append(("**peak RSS above idle**", report["rss"]["peak_rss_above_idle"]))
    if "peak_rss_with_joined_text_above_idle" in report["rss"]:
        joined = report["rss"]["peak_rss_with_joined_text_above_idle"]
        rows.append(("  what-if: then `RunResult.text` joined as well", joined))
    if "with_history" in report:
        recorded = report["with_history"]["peak_rss_above_idle"]
        rows.append(("  recorded in a history (SQLite), as the CLI does by default", recorded))
    if "collected_each_round" in report:
        collected = report["collected_each_round"]["peak_rss_above_idle"]
        rows.append(("  what-if: gc.collect() after each round", collected))
    if "trace" in report:
        trace = report["trace"]
        rows.append(("tracemalloc peak, garbage collected each round", trace["traced_peak"]))
        for phase in ("plan", "send", "stream"):
            if phase in trace["phase_peaks"]:
                rows.append((f"  peak while `{phase}`", trace["phase_peaks"][phase]["peak"]))
        rows.append(("  alive at a round's first Delta (max)", trace["alive_at_first_delta"]))
        rows.append(("  traced at the end (the RunResult, its answer written out)", trace["traced_at_end"]))
        rows.append(
            ("  garbage one round's end leaves (max, freed by gc.collect())", trace["garbage_freed_max"])
        )
    for name, value in rows:
        print(f"| {name} | {mib(value)} | {value / text_bytes:.2f} |")
    print(f"| wall time of the run (rss child) | {report['rss']['seconds']:.1f} s | |")
    verdict = "met" if report["ratio"] <= TARGET_RATIO else "MISSED"
    print(
        f"\npeak RSS above idle / text bytes = {report['ratio']:.2f} (target <= {TARGET_RATIO:g}: {verdict})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--only-rss", action="store_true", help="only the rss child (the headline)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "memory.json")
    parser.add_argument("--child", choices=("rss", "collected", "history", "trace"), help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.base, args.tokens)))
        return 0

    proc, base = start_demo_process()
    try:
        print("rss child…", file=sys.stderr)
        rss = run_child("rss", base, args.tokens)
        collected = history = trace = None
        if not args.only_rss:
            print("collected child…", file=sys.stderr)
            collected = run_child("collected", base, args.tokens)
            print("history child…", file=sys.stderr)
            history = run_child("history", base, args.tokens)
            print("trace child…", file=sys.stderr)
            trace = run_child("trace", base, args.tokens)
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    from core.demo import count_tokens, demo_document  # after the runs: the parent is not measured

    expected = demo_document(prompt_for(args.tokens), MODEL)
    digest = hashlib.sha256(expected.encode("utf-8")).hexdigest()
    exact = all(r["sha256"] == digest for r in (rss, collected, history, trace) if r is not None)
    report: dict[str, Any] = {
        "benchmark": "memory",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg()[0],
        "model": MODEL,
        "context_window": WINDOW,
        "tokens": count_tokens(expected),
        "rounds": rss["rounds"],
        "text_chars": rss["text_chars"],
        "text_bytes": rss["text_bytes"],
        "answer_exact": exact,
        "wall_seconds": rss["seconds"],
        "peak_rss_above_idle": rss["peak_rss_above_idle"],
        "ratio": round(rss["peak_rss_above_idle"] / rss["text_bytes"], 2),
        "target_ratio": TARGET_RATIO,
        "rss": rss,
    }
    if collected is not None:
        report["collected_each_round"] = collected
    if history is not None:
        report["with_history"] = history
    if trace is not None:
        report["tracemalloc_peak"] = trace["traced_peak"]
        report["tracemalloc_ratio"] = round(trace["traced_peak"] / trace["text_bytes"], 2)
        report["trace"] = trace
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print_table(report)
    if not exact:
        print("\nthe answer differs from demo_document(prompt)!")
    print(f"\nwritten to {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0 if exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
