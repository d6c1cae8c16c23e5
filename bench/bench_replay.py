"""Replay pace: does a replayed run take as long, round by round, as the run it replays?

The demo model runs in a process of its own (``python -m core.demo --replay FILE
--speed S``) and the engine (``core.continuation.engine.run``) replays each shipped
transcript (``core/demo/transcripts/*.json``) through real HTTP on loopback. For
every round we compare what the engine measured (its ``ttft_s`` and ``duration_s``,
the same clock a live run is shown with) with the recorded values divided by the
speed. Target: every round's duration within 10 % of the recorded one, and the
text, round count and finish reasons identical.

    .venv/bin/python bench/bench_replay.py [--speeds 1,2] [--transcripts tool-library,water-leaks]

Writes bench/results/replay.json and prints a table. About 2 minutes (the samples
last 43 s and 45 s at speed 1).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from demo_process import start_demo_process  # noqa: E402  (bench/ is on sys.path)

from core.continuation.engine import run  # noqa: E402
from core.demo import TRANSCRIPTS  # noqa: E402
from core.types import RunFinished, RunSpec  # noqa: E402

TARGET = 0.10  # a round's measured duration within 10 % of the recorded one (at the speed)


def start_replay(path: Path, speed: float) -> tuple[subprocess.Popen[bytes], str]:
    return start_demo_process(0.0, "--replay", str(path), "--speed", f"{speed:g}")


def replay_once(name: str, speed: float) -> dict[str, Any]:
    path = TRANSCRIPTS / f"{name}.json"
    t = json.loads(path.read_text(encoding="utf-8"))
    proc, base = start_replay(path, speed)
    try:
        spec = RunSpec(
            messages=t["spec"]["messages"],
            provider="custom",
            base_url=base,
            model="replay",
            max_tokens=t["spec"]["max_tokens"],
        )
        started = time.monotonic()
        finished = next(e for e in run(spec) if isinstance(e, RunFinished))
        wall = time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    result = finished.result
    rounds = []
    for got, rec in zip(result.rounds, t["rounds"], strict=False):
        planned_ttft, planned = rec["ttft_s"] / speed, rec["duration_s"] / speed
        rounds.append(
            {
                "round": got.index,
                "tokens": got.completion_tokens,
                "recorded_ttft_s": rec["ttft_s"],
                "recorded_duration_s": rec["duration_s"],
                "planned_ttft_s": round(planned_ttft, 4),
                "planned_duration_s": round(planned, 4),
                "measured_ttft_s": round(got.ttft_s or 0.0, 4),
                "measured_duration_s": round(got.duration_s, 4),
                "duration_error": round((got.duration_s - planned) / planned, 4),
                "ttft_error_s": round((got.ttft_s or 0.0) - planned_ttft, 4),
            }
        )
    same = (
        result.text == t["text"]
        and len(result.rounds) == len(t["rounds"])
        and [r.finish_reason for r in result.rounds] == [r["finish_reason"] for r in t["rounds"]]
    )
    recorded_total = sum(r["duration_s"] for r in t["rounds"]) / speed
    return {
        "transcript": name,
        "speed": speed,
        "stop_reason": finished.stop_reason,
        "identical_rounds": same,
        "recorded_s": round(recorded_total, 3),
        "wall_s": round(wall, 3),
        "max_abs_duration_error": max(abs(r["duration_error"]) for r in rounds),
        "within_target": same and all(abs(r["duration_error"]) <= TARGET for r in rounds),
        "rounds": rounds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speeds", default="1,2", help="comma-separated speed factors")
    parser.add_argument("--transcripts", default="tool-library,water-leaks")
    args = parser.parse_args()
    runs = [
        replay_once(name, float(speed))
        for speed in args.speeds.split(",")
        for name in args.transcripts.split(",")
        if float(speed) == 1 or name == args.transcripts.split(",")[0]  # other speeds: the first sample
    ]
    print(f"{'transcript':<14} {'speed':>5} {'round':>5} {'planned s':>10} {'measured s':>11} {'error':>7}")
    for r in runs:
        for row in r["rounds"]:
            print(
                f"{r['transcript']:<14} {r['speed']:>5g} {row['round']:>5} {row['planned_duration_s']:>10.3f} "
                f"{row['measured_duration_s']:>11.3f} {row['duration_error']:>+7.1%}"
            )
    ok = all(r["within_target"] for r in runs)
    out = {
        "benchmark": "replay",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "target_duration_error": TARGET,
        "all_within_target": ok,
        "load_average_at_end": os.getloadavg()[0],
        "runs": runs,
    }
    path = ROOT / "bench" / "results" / "replay.json"
    path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"all rounds within {TARGET:.0%} of the recorded pace: {ok}; wrote {path.relative_to(ROOT)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
