"""Seam overhead: from a round's last byte on the wire to the next request's first byte.

Between two continuation rounds the engine reads the end of one reply, closes the
round (usage, seam checks), plans the next (the answer so far, hold-back, budget),
builds and sends the next request. That gap is measured from outside the engine,
on the wire: a small TCP proxy in a process of its own sits on loopback between
the engine and the demo model (unthrottled, a third process). One thread per
direction reads, frames HTTP/1.1 messages (Content-Length and chunked bodies) and
forwards; it stamps ``time.perf_counter_ns()`` (CLOCK_MONOTONIC, shared by every
process on the machine):

- ``response_end``: right before it forwards the bytes that end a reply (the chunked
  body's terminating chunk, which the engine reads before it ends the round);
- ``request_start``: right after ``recv`` returned the first byte of a request.

Both stamps err on the long side (the engine cannot have a reply's end before the proxy
sends it, and the proxy sees a request only after it was sent), so a seam is never
under-measured; a preempted proxy thread can only lengthen it.

seam = next ``request_start`` - ``response_end``, within one run (runs are sequential;
each run is many short rounds: ``max_tokens`` 32, an 8,000-token answer on ``demo-32k``).

Breakdown, from the engine's public events (stamped in this process on the same
clock): ``finish`` = response_end -> RoundFinished (the end of the stream read, the
round closed), ``plan`` = RoundFinished -> next RoundStarted (the next request planned),
``send`` = RoundStarted -> request_start on the wire (the client encoding and sending
it); they add up to the seam. ``observer delay``: a calibration of the proxy's own
lag, from a ``sendall`` in this process to the proxy's ``recv`` stamp (part of every
seam measured; not subtracted).

    .venv/bin/python bench/bench_seam.py [--runs 8] [--tokens 8000] [--max-tokens 32]

Writes bench/results/seam.json and prints a markdown table. Target: median <= 5 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from demo_process import start_demo_process  # noqa: E402  (bench/ is on sys.path)

from core.continuation.engine import run  # noqa: E402
from core.types import RoundFinished, RoundStarted, RunFinished, RunSpec  # noqa: E402
from core.wire.client import Client  # noqa: E402

MODEL = "demo-32k"
TARGET_MS = 5.0
CALIBRATION = 300  # requests for the observer delay

# ------------------------------------------------------------------ the proxy (its own process)

IDLE, HEAD, BODY, SIZE, DATA, TRAILER, UNTIL_CLOSE = range(7)


class Framer:
    """Where HTTP/1.1 messages start and end in one direction of a connection."""

    def __init__(self, response: bool) -> None:
        self.response = response
        self.state = IDLE
        self.pending = b""  # an incomplete head or chunk-size line
        self.remaining = 0

    def feed(self, data: bytes) -> tuple[int, int]:
        """(messages started, messages ended) in ``data``."""
        data, self.pending = self.pending + data, b""
        started = ended = i = 0
        while i < len(data):
            state = self.state
            if state == IDLE:
                started += 1
                self.state = HEAD
            elif state in (HEAD, SIZE, TRAILER):
                marker = b"\r\n\r\n" if state == HEAD else b"\r\n"
                k = data.find(marker, i)
                if k < 0:
                    self.pending = data[i:]
                    break
                piece, i = data[i:k], k + len(marker)
                if state == HEAD:
                    ended += self._head(piece)
                elif state == SIZE:
                    size = int(piece.split(b";")[0].strip() or b"0", 16)
                    self.state, self.remaining = (DATA, size + 2) if size else (TRAILER, 0)
                elif not piece:  # the empty line after the last chunk
                    self.state = IDLE
                    ended += 1
            elif state in (BODY, DATA):
                take = min(self.remaining, len(data) - i)
                i += take
                self.remaining -= take
                if not self.remaining:
                    self.state = SIZE if state == DATA else IDLE
                    ended += state == BODY
            else:  # UNTIL_CLOSE: the body ends with the connection
                break
        return started, ended

    def _head(self, head: bytes) -> int:
        """Set the body state from a message head; 1 if the message has no body (it ended)."""
        lines = head.split(b"\r\n")
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip().lower()
        status = lines[0].split(b" ")[1] if self.response else b""
        if status[:1] == b"1" or status in (b"204", b"304"):
            self.state = IDLE
            return 1
        if b"chunked" in fields.get(b"transfer-encoding", b""):
            self.state = SIZE
            return 0
        if b"content-length" in fields:
            self.remaining = int(fields[b"content-length"])
            self.state = BODY if self.remaining else IDLE
            return 0 if self.remaining else 1
        self.state = UNTIL_CLOSE if self.response else IDLE
        return 0 if self.response else 1


def pump(src: socket.socket, dst: socket.socket, response: bool, conn: int, events: list[Any]) -> None:
    framer = Framer(response)
    start, end = ("response_start", "response_end") if response else ("request_start", "request_end")
    try:
        while True:
            data = src.recv(1 << 18)
            stamp = time.perf_counter_ns()
            if not data:
                if framer.state == UNTIL_CLOSE:
                    events.append((end, stamp, conn))
                break
            started, ended = framer.feed(data)
            if started:
                events.append((start, stamp, conn))
            if ended:  # stamped before forwarding: the engine cannot have these bytes any sooner
                events.append((end, time.perf_counter_ns(), conn))
            dst.sendall(data)
    except OSError:
        pass
    for sock, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
        try:
            sock.shutdown(how)
        except OSError:
            pass


def serve_proxy(upstream: int) -> None:
    """Proxy mode: print the port, forward to ``upstream``; stdin ``dump`` prints the events as JSON."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    events: list[Any] = []

    def accept() -> None:
        for conn in range(1, 1 << 30):
            client, _ = listener.accept()
            server = socket.create_connection(("127.0.0.1", upstream))
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            events.append(("connect", time.perf_counter_ns(), conn))
            for src, dst, response in ((client, server, False), (server, client, True)):
                threading.Thread(target=pump, args=(src, dst, response, conn, events), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    print(listener.getsockname()[1], flush=True)
    for line in sys.stdin:
        if line.strip() == "dump":
            taken, events[:] = list(events), []
            print(json.dumps(taken), flush=True)
        else:
            break


class Proxy:
    """The proxy process, seen from the engine's side."""

    def __init__(self, upstream_base: str) -> None:
        upstream = int(upstream_base.split(":")[2].split("/")[0])
        cmd = [sys.executable, __file__, "--proxy", str(upstream)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.port = int(self.proc.stdout.readline())
        self.base = f"http://127.0.0.1:{self.port}/v1"

    def dump(self) -> list[tuple[str, int, int]]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("dump\n")
        self.proc.stdin.flush()
        return [tuple(e) for e in json.loads(self.proc.stdout.readline())]  # type: ignore[misc]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


# ------------------------------------------------------------------ the engine side


def calibrate(proxy: Proxy) -> list[float]:
    """Observer delay (µs): this process's ``sendall`` of a request -> the proxy's ``recv`` stamp."""
    proxy.dump()
    sent = []
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        framer = Framer(response=True)
        for _ in range(CALIBRATION):
            sent.append(time.perf_counter_ns())
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n")
            while framer.feed(sock.recv(65536))[1] == 0:
                pass
            time.sleep(0.002)
    starts = [t for kind, t, _ in proxy.dump() if kind == "request_start"]
    return [(seen - at) / 1000 for at, seen in zip(sent, starts, strict=True)]


def engine_run(client: Client, base: str, tokens: int, max_tokens: int, topic: str) -> dict[str, Any]:
    """One run; the event stamps of each round (ns, this process)."""
    spec = RunSpec(
        messages=[{"role": "user", "content": f"Write {tokens} tokens about {topic}"}],
        base_url=base,
        model=MODEL,
        max_tokens=max_tokens,
        max_rounds=10_000,  # the most a run may have (core.bounds)
        context_window=32768,
        output_cap=4096,
    )
    rounds: list[dict[str, int]] = []
    begin = time.perf_counter_ns()
    stop = ""
    for event in run(spec, client=client):
        now = time.perf_counter_ns()
        kind = type(event)
        if kind is RoundStarted:
            rounds.append({"started": now})
        elif kind is RoundFinished:
            rounds[-1]["finished"] = now
        elif kind is RunFinished:
            stop = event.stop_reason  # type: ignore[union-attr]
    return {"begin": begin, "end": time.perf_counter_ns(), "rounds": rounds, "stop": stop}


def seams_of(
    runs: list[dict[str, Any]], events: list[tuple[str, int, int]]
) -> tuple[dict[str, list[float]], int]:
    """Seams (µs) and their breakdown, pairing the proxy's stamps with each run's rounds;
    and how many runs could not be paired (a retry: more requests than rounds)."""
    out: dict[str, list[float]] = {"seam": [], "finish": [], "plan": [], "send": []}
    unpaired = 0
    for r in runs:
        window = [(k, t) for k, t, _ in events if r["begin"] <= t <= r["end"]]
        starts = sorted(t for k, t in window if k == "request_start")
        ends = sorted(t for k, t in window if k == "response_end")
        rounds = r["rounds"]
        if not (len(starts) == len(ends) == len(rounds)):
            unpaired += 1
            continue
        for i in range(len(rounds) - 1):
            out["seam"].append((starts[i + 1] - ends[i]) / 1000)
            out["finish"].append((rounds[i]["finished"] - ends[i]) / 1000)
            out["plan"].append((rounds[i + 1]["started"] - rounds[i]["finished"]) / 1000)
            out["send"].append((starts[i + 1] - rounds[i + 1]["started"]) / 1000)
    return out, unpaired


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] / 1000, 3)

    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered) / 1000, 3),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "mean_ms": round(statistics.fmean(ordered) / 1000, 3),
        "min_ms": round(ordered[0] / 1000, 3),
        "max_ms": round(ordered[-1] / 1000, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=8000, help="answer length per run")
    parser.add_argument("--max-tokens", type=int, default=32, help="per round")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "seam.json")
    parser.add_argument("--proxy", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.proxy:
        serve_proxy(args.proxy)
        return 0

    load_before = os.getloadavg()
    demo, upstream = start_demo_process()
    proxy = Proxy(upstream)
    try:
        observer = calibrate(proxy)
        with Client(proxy.base) as client:
            engine_run(client, proxy.base, args.tokens, args.max_tokens, "warm-up")  # imports, doc cache
            proxy.dump()
            runs = []
            for i in range(args.runs):
                runs.append(engine_run(client, proxy.base, args.tokens, args.max_tokens, f"topic {i}"))
                print(f"run {i + 1}: {len(runs[-1]['rounds'])} rounds, {runs[-1]['stop']}", file=sys.stderr)
        events = proxy.dump()
    finally:
        proxy.close()
        demo.terminate()
        demo.wait(timeout=10)

    found, unpaired = seams_of(runs, events)
    stats = {name: summary(values) for name, values in found.items()}
    stats["observer_delay"] = summary(observer)
    connections = len({conn for kind, _, conn in events if kind == "request_start"})
    report = {
        "benchmark": "seam",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "model": MODEL,
        "runs": args.runs,
        "tokens_per_run": args.tokens,
        "max_tokens_per_round": args.max_tokens,
        "rounds": sum(len(r["rounds"]) for r in runs),
        "runs_not_paired": unpaired,
        "connections_used_by_the_runs": connections,
        "target_median_ms": TARGET_MS,
        "seam": stats.pop("seam"),
        "breakdown": stats,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    print("| interval | n | median ms | p90 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|---:|")
    rows = [("**seam** (last byte of a reply -> first byte of the next request)", report["seam"])]
    rows += [
        ("  finish: reply's last byte -> RoundFinished", stats["finish"]),
        ("  plan: RoundFinished -> next RoundStarted", stats["plan"]),
        ("  send: RoundStarted -> request's first byte", stats["send"]),
        ("observer delay (sendall -> proxy's recv stamp)", stats["observer_delay"]),
    ]
    for name, s in rows:
        print(f"| {name} | {s['n']} | {s['median_ms']} | {s['p90_ms']} | {s['p99_ms']} | {s['max_ms']} |")
    seam = report["seam"]
    verdict = "met" if seam["median_ms"] <= TARGET_MS else "MISSED"
    print(f"\nmedian seam {seam['median_ms']} ms (target <= {TARGET_MS:g} ms: {verdict}); ", end="")
    print(f"{os.cpu_count()} CPUs, Python {platform.python_version()}, load {report['load_average_at_end']}")
    print(f"\nwritten to {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
