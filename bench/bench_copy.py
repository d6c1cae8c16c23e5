"""Copy speed: how long ``runs copy`` takes to move a history of 10,000 runs into PostgreSQL.

A SQLite history of ``--runs`` runs (each with ``--rounds`` finished rounds of ``--chars``
characters, and its totals) is built first: one run saved through the store, then its rows
repeated with new ids and texts by plain SQL (building 10,000 runs through the store would take
longer than the copy). Then :func:`core.services.store.copy.copy_history` copies it into a fresh
schema of a throwaway PostgreSQL cluster (``tests/pg.py``: loopback, ``fsync=off``, so the figure
is the copy's own cost, not a disk's) and, for comparison, into a new SQLite file. Each is checked
afterwards (the run and round counts, one run loaded back equal).

    .venv/bin/python bench/bench_copy.py [--runs 10000] [--rounds 3] [--chars 2000]

Writes bench/results/copy.json and prints the figures. About 30 s on 2 shared cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.services.store import Store  # noqa: E402
from core.services.store.copy import copy_history  # noqa: E402
from core.types import Round, RunResult, RunSpec  # noqa: E402
from tests.pg import fresh_pg_url, start_cluster  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "copy.json"


def build_source(path: Path, runs: int, rounds: int, chars: int) -> int:
    """A history of ``runs`` runs of ``rounds`` rounds; returns its size in bytes."""
    prose = ("The river keeps its own counsel, and the stones remember. " * (chars // 58 + 1))[:chars]
    template = RunResult(
        spec=RunSpec(messages=[{"role": "user", "content": "Write about rivers"}], provider="demo"),
        rounds=[Round(index=n, text=prose, finish_reason="length", cost=0.001) for n in range(1, rounds + 1)],
        stop_reason="finished",
        started_at=time.time(),
        finished_at=time.time(),
    )
    with Store(path) as store:
        first = store.save(template)
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    run = dict(conn.execute("SELECT * FROM runs WHERE id = ?", (first,)).fetchone())
    round_rows = [
        dict(r) for r in conn.execute("SELECT * FROM rounds WHERE run_id = ? ORDER BY idx", (first,))
    ]
    new_runs: list[dict[str, Any]] = []
    new_rounds: list[dict[str, Any]] = []
    for n in range(1, runs):
        run_id = str(uuid.uuid4())
        new_runs.append(
            {**run, "id": run_id, "created_at": run["created_at"] + n / 1000, "prompt": f"Run {n}"}
        )
        new_rounds += [{**r, "run_id": run_id, "text": f"{n}: " + r["text"][: chars - 8]} for r in round_rows]
    with conn:
        for table, rows in (("runs", new_runs), ("rounds", new_rounds)):
            columns = list(rows[0])
            conn.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})",
                rows,
            )
    conn.close()
    return path.stat().st_size + (Path(f"{path}-wal").stat().st_size if Path(f"{path}-wal").exists() else 0)


def timed_copy(source: Path, destination: str | Path, sample: str) -> dict[str, Any]:
    started = time.perf_counter()
    report = copy_history(source, destination)
    seconds = time.perf_counter() - started
    with Store(source) as src, Store(destination) as dst:
        same = src.load(sample).to_dict() == dst.load(sample).to_dict()
        counts = (dst.count_runs(), sum(s.rounds for s in dst.list_runs(limit=1_000_000)))
    rows = sum(t.copied for t in report.tables)
    return {
        "seconds": round(seconds, 2),
        "rows": rows,
        "rows_per_second": round(rows / seconds),
        "runs": counts[0],
        "rounds": counts[1],
        "sample_run_equal": same,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chars", type=int, default=2000, help="characters of text a round")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="continuum-copy-") as folder:
        source = Path(folder) / "laptop.sqlite3"
        started = time.perf_counter()
        size = build_source(source, args.runs, args.rounds, args.chars)
        built = time.perf_counter() - started
        with Store(source) as src:
            sample = src.list_runs(limit=1, offset=args.runs // 2)[0].id
        with start_cluster() as cluster:
            to_pg = timed_copy(source, fresh_pg_url(cluster), sample)
        to_sqlite = timed_copy(source, Path(folder) / "copy.sqlite3", sample)
    result = {
        "benchmark": "copy",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "history": {
            "runs": args.runs,
            "rounds_per_run": args.rounds,
            "chars_per_round": args.chars,
            "sqlite_bytes": size,
            "built_s": round(built, 2),
        },
        "sqlite_to_postgresql": to_pg,
        "sqlite_to_sqlite": to_sqlite,
        "load_average_at_end": os.getloadavg()[0],
        "note": "throwaway PostgreSQL on loopback with fsync=off (tests/pg.py); one transaction per copy",
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
