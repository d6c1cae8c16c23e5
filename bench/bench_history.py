"""History writes and live updates across app servers: SQLite against PostgreSQL.

Three measures, each on a fresh SQLite file and on a fresh schema of a throwaway PostgreSQL
cluster (``tests/pg.py``: Debian's ``postgresql``, loopback, fsync off as in the tests — so
PostgreSQL's figures leave out the disk's flush, SQLite's WAL file is on tmpfs or disk as
``tempfile`` gives it):

- **write throughput** — the store's :class:`Recorder` fed the events of a run (no model):
  rounds of 4 text flushes of 1 KB each (a round start, 4 ``append_live``, the finished round:
  6 writes), counted in rounds per second; and text flushes (``Delta`` + ``flush()``: one
  ``append_live``) per second, in rounds of 32 flushes (a 32 KB round: each flush appends to a
  longer row), the flushes alone timed. One writer, and 4 writer processes at once (each its
  own run and connection), as several app servers or batch workers write one history.
- **store latency** — a writer appends a marker and flushes (as the app's recorder does once
  a second); a reader in another process (another app server) polls the run's row every 2 ms:
  from the start of the flush to the reader seeing it.
- **page latency** — the same writer, and the real app (``streamlit run app.py``) with the run
  open on its Runs page in headless Chromium: from the start of the flush to the marker on
  screen (a ``MutationObserver`` stamps it). The page reads the store once a second
  (``pages/_history_view.py``, ``POLL_EVERY``), so about half a second of it is the poll.

Run: ``.venv/bin/python bench/bench_history.py [--quick]``. Writes ``bench/results/history.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.services.store import Recorder, Store  # noqa: E402
from core.types import Delta, Round, RoundFinished, RoundStarted, RunSpec, RunStarted  # noqa: E402
from pages._history_view import POLL_EVERY  # noqa: E402
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, start_app, stop_app  # noqa: E402
from tests.pg import fresh_pg_url, start_cluster  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "history.json"
CHUNK = ("The keeper climbed the stair at dusk and lit the lamp. " * 19)[:1024]  # 1 KB a flush
FLUSHES_PER_ROUND = 4
FLUSHES_PER_LONG_ROUND = 32
WRITERS = 4
POLL_S = 0.002  # the store reader's poll


def spec(title: str) -> RunSpec:
    return RunSpec(messages=[{"role": "user", "content": f"bench {title}"}], provider="demo", title=title)


def started(store: Store, title: str) -> Recorder:
    recorder = Recorder(store)
    recorder.handle(RunStarted(spec(title)))
    assert recorder.run_id is not None and recorder.last_error is None
    return recorder


def write_rounds(target: str, rounds: int, title: str = "rounds") -> float:
    """Seconds to record ``rounds`` rounds of FLUSHES_PER_ROUND text flushes each."""
    with Store(target) as store:
        recorder = started(store, title)
        begin = time.perf_counter()
        for index in range(1, rounds + 1):
            recorder.handle(RoundStarted(index=index, max_tokens=1024, strategy="prefill"))
            for _ in range(FLUSHES_PER_ROUND):
                recorder.handle(Delta(CHUNK, round_index=index))
                recorder.flush()
            done = Round(
                index=index, text=CHUNK * FLUSHES_PER_ROUND, finish_reason="length", completion_tokens=1024
            )
            recorder.handle(RoundFinished(done))
        elapsed = time.perf_counter() - begin
        assert recorder.last_error is None, recorder.last_error
        recorder.close()
    return elapsed


def write_flushes(target: str, rounds: int) -> float:
    """Flushes per second: ``rounds`` rounds of FLUSHES_PER_LONG_ROUND text flushes (a 32 KB round,
    about 8,000 tokens, as a long round is at one flush a second), the flushes alone timed."""
    spent = 0.0
    with Store(target) as store:
        recorder = started(store, "flushes")
        for index in range(1, rounds + 1):
            recorder.handle(RoundStarted(index=index, max_tokens=8192, strategy="prefill"))
            for _ in range(FLUSHES_PER_LONG_ROUND):
                recorder.handle(Delta(CHUNK, round_index=index))
                begin = time.perf_counter()
                recorder.flush()
                spent += time.perf_counter() - begin
            text = CHUNK * FLUSHES_PER_LONG_ROUND
            recorder.handle(RoundFinished(Round(index=index, text=text, finish_reason="length")))
        assert recorder.last_error is None, recorder.last_error
        recorder.close()
    return rounds * FLUSHES_PER_LONG_ROUND / spent


def parallel_rounds(target: str, rounds: int) -> float:
    """Aggregate rounds/s of WRITERS processes each recording ``rounds`` rounds of its own run at once."""
    command = [sys.executable, __file__, "--writer", target, str(rounds)]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(WRITERS)]
    outs = [json.loads(p.communicate(timeout=600)[0]) for p in procs]
    span = max(o["end"] for o in outs) - min(o["begin"] for o in outs)
    return WRITERS * rounds / span


def writer_main(target: str, rounds: int) -> None:
    elapsed = write_rounds(target, rounds, f"writer {os.getpid()}")
    end = time.time()
    print(json.dumps({"begin": end - elapsed, "end": end}))  # the writes only, not the start-up


def reader_main(target: str, run_id: str, final: int) -> None:
    """Poll the run's row every POLL_S; print when each new total of characters was first seen,
    until it reaches ``final`` (two flushes between two polls: the first is not counted)."""
    with Store(target) as store:
        last = store.summary(run_id).characters  # type: ignore[union-attr]
        print(json.dumps({"ready": last}), flush=True)
        while last < final:
            summary = store.summary(run_id)
            assert summary is not None
            if summary.characters != last:
                last = summary.characters
                print(json.dumps({"characters": last, "at": time.time()}), flush=True)
            time.sleep(POLL_S)


def marker(n: int) -> str:
    return f"\n\nqmark{n:04d}q the lamp turned through the night.\n\n"


def flush_markers(recorder: Recorder, samples: int, gap: Callable[[], float]) -> list[tuple[int, float]]:
    """Append ``samples`` markers to the live round, one flush each; (characters after, flush start)."""
    stamps = []
    total = len(recorder.store.load(recorder.run_id or "").text)
    for n in range(samples):
        time.sleep(gap())
        text = marker(n)
        total += len(text)
        recorder.handle(Delta(text, round_index=1))
        stamps.append((total, time.time()))
        recorder.flush()
    return stamps


def store_latency(target: str, samples: int) -> list[float]:
    with Store(target) as store:
        recorder = started(store, "store latency")
        recorder.handle(RoundStarted(index=1, max_tokens=1024, strategy="prefill"))
        final = samples * len(marker(0))
        reader = subprocess.Popen(
            [sys.executable, __file__, "--reader", target, recorder.run_id or "", str(final)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert reader.stdout is not None
        json.loads(reader.stdout.readline())  # ready
        stamps = flush_markers(recorder, samples, lambda: random.uniform(0.05, 0.15))
        seen = {o["characters"]: o["at"] for o in map(json.loads, reader.stdout)}
        reader.wait(60)
        recorder.close()
    return [seen[chars] - at for chars, at in stamps if chars in seen]


WATCH = """() => {
    window.__seen = {};
    const look = () => {
        const panel = document.querySelector('[role=tabpanel]');
        if (!panel) return;
        for (const m of panel.innerText.matchAll(/qmark(\\d{4})q/g))
            if (!(m[1] in window.__seen)) window.__seen[m[1]] = Date.now();
    };
    new MutationObserver(look).observe(document.body, {subtree: true, childList: true, characterData: true});
    look();
}"""


def page_latency(target: str, samples: int, tmp: Path) -> list[float]:
    from playwright.sync_api import sync_playwright  # the browser half only

    proc, url = start_app(tmp, "0", env={"CONTINUUM_DB": target})
    try:
        with Store(target) as store, sync_playwright() as pw:
            recorder = started(store, "page latency")
            recorder.handle(RoundStarted(index=1, max_tokens=1024, strategy="prefill"))
            recorder.handle(Delta("The first words.\n\n", round_index=1))
            recorder.flush()
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.get_by_label("Prompt", exact=True).wait_for(timeout=120_000)
            page.goto(f"{url}/runs?id={recorder.run_id}")
            page.get_by_text("The first words.").wait_for(timeout=120_000)
            page.evaluate(WATCH)
            stamps = flush_markers(recorder, samples, lambda: random.uniform(0.6, 1.6))
            page.wait_for_function(f"() => '{samples - 1:04d}' in window.__seen", timeout=60_000)
            seen = page.evaluate("() => window.__seen")
            browser.close()
            recorder.close()
    finally:
        stop_app(proc)
    return [seen[f"{n:04d}"] / 1000 - at for n, (_, at) in enumerate(stamps)]


def summary(values: list[float], scale: float = 1000.0) -> dict[str, Any]:
    ordered = sorted(values)
    pick = lambda q: round(scale * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)  # noqa: E731
    return {
        "n": len(values),
        "median_ms": round(scale * statistics.median(values), 2),
        "p90_ms": pick(0.9),
        "max_ms": pick(1.0),
    }


def measure(name: str, target: str, tmp: Path, quick: bool) -> dict[str, Any]:
    rounds, long_rounds = (100, 10) if quick else (300, 40)
    write_rounds(target, 20, "warm-up")
    out: dict[str, Any] = {"backend": name}
    out["rounds_per_s"] = round(rounds / write_rounds(target, rounds), 1)
    out["text_flushes_per_s"] = round(write_flushes(target, long_rounds), 1)
    out[f"rounds_per_s_{WRITERS}_writer_processes"] = round(parallel_rounds(target, rounds // 2), 1)
    out["store_latency"] = summary(store_latency(target, 40 if quick else 150))
    out["page_latency"] = summary(page_latency(target, 10 if quick else 30, tmp))
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and samples")
    parser.add_argument("--writer", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--reader", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writer:
        writer_main(args.writer[0], int(args.writer[1]))
        return
    if args.reader:
        reader_main(args.reader[0], args.reader[1], int(args.reader[2]))
        return
    load_before = os.getloadavg()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-history-") as folder, start_cluster() as cluster:
        tmp = Path(folder)
        for name in ("sqlite", "postgresql"):
            (tmp / name).mkdir()
            target = str(tmp / "history.sqlite3") if name == "sqlite" else fresh_pg_url(cluster)
            results.append(measure(name, target, tmp / name, args.quick))
    report = {
        "benchmark": "history",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "flush_bytes": len(CHUNK),
        "flushes_per_round": FLUSHES_PER_ROUND,
        "flushes_per_long_round": FLUSHES_PER_LONG_ROUND,
        "page_poll_s": POLL_EVERY,
        "store_reader_poll_ms": POLL_S * 1000,
        "results": results,
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
