"""The raw-server fault campaign at full size: every case of issue 10 at 50+ offsets.

The cases, the offsets and the classification are those of ``tests/rawcampaign.py``
(the default suite runs five offsets each, ``tests/test_raw_campaign.py``): a
raw-socket server (``tests/rawserver.py``) writes one known document and scripts
error events (``event: error``, OpenRouter's error chunk, ``finish_reason:
"error"``, OpenAI's error line, llama.cpp's ``error:`` field; once and from some
round on), restarts (the same text again, or other text), absurd usage, empty
streams to over-long requests, TCP resets and clean closes at byte offsets, and
six overflow wordings. Every ending is ``exact`` (the fault-free text),
``kept`` (a clear stop, the answer a beginning of the fault-free text) or
``WRONG``.

    .venv/bin/python bench/bench_raw_faults.py [--offsets 50] [--threads 4] [--case NAME ...]

Writes bench/results/raw_faults.json and prints a table; exit status 1 when a run was WRONG.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from rawcampaign import CASES, DOC, Ending, run_case  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "raw_faults.json"


def summarise(case: str, endings: list[Ending]) -> dict[str, Any]:
    verdicts = Counter(e.verdict for e in endings)
    return {
        "runs": len(endings),
        "exact": verdicts["exact"],
        "kept": verdicts["kept"],
        "wrong": verdicts["WRONG"],
        "fired": sum(e.fired > 0 for e in endings),
        "prefill_mismatches": sum(e.mismatches for e in endings),
        "stops": dict(Counter(e.stop_reason for e in endings)),
        "characters": sum(e.chars for e in endings),
        "requests": sum(e.requests for e in endings),
        "seconds": round(sum(e.seconds for e in endings), 3),
        "wrong_runs": [asdict(e) for e in endings if e.verdict == "WRONG"][:5],
    }


def table(summary: dict[str, dict[str, Any]]) -> str:
    head = f"{'case':<28}{'runs':>5}{'exact':>7}{'kept':>6}{'WRONG':>7}{'fired':>7}{'requests':>10}{'chars':>10}{'s':>7}  stops"
    lines = [head, "-" * len(head)]
    for case, s in summary.items():
        stops = " ".join(f"{k}:{v}" for k, v in sorted(s["stops"].items()))
        lines.append(
            f"{case:<28}{s['runs']:>5}{s['exact']:>7}{s['kept']:>6}{s['wrong']:>7}{s['fired']:>7}"
            f"{s['requests']:>10}{s['characters']:>10}{s['seconds']:>7.1f}  {stops}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--offsets", type=int, default=50, help="offsets per case (default 50)")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="only these cases")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    cases = args.case or list(CASES)
    jobs = [(case, i) for case in cases for i in range(args.offsets)]
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        endings = list(pool.map(lambda job: run_case(*job), jobs))
    wall = time.monotonic() - start
    summary = {case: summarise(case, [e for e in endings if e.case == case]) for case in cases}
    totals = Counter({k: sum(s[k] for s in summary.values()) for k in ("runs", "exact", "kept", "wrong")})
    report = {
        "benchmark": "raw_faults",
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "settings": {
            "offsets": args.offsets,
            "threads": args.threads,
            "document_chars": len(DOC.text),
            "document_tokens": len(DOC.tokens),
        },
        "wall_seconds": round(wall, 2),
        "totals": dict(totals),
        "cases": summary,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(table(summary))
    print(
        f"\n{totals['runs']} runs in {wall:.1f} s: {totals['exact']} exact, {totals['kept']} kept "
        f"(clear stop, good text), {totals['wrong']} WRONG -> {args.output}"
    )
    return 1 if totals["wrong"] else 0


if __name__ == "__main__":
    sys.exit(main())
