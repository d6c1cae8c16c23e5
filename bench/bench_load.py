"""Load: 20 browser sessions at once, each streaming its own run: pages open fast, runs finish, nothing leaks.

Drives the real app (``streamlit run app.py``, one process, its own database)
from one headless Chromium with one browser context (one Streamlit session)
per user (bench/load_session.py). Each session sets its own server in
Settings (the "Custom" provider pointed at the demo model, in its own process,
through a key-recording relay under the path prefix ``k=<session>``), pastes
its own fake API key, picks a model and a round size, and starts its own
prompt; the demo model streams every run at ``--rate`` tokens/s in several
rounds. While all the runs stream, the script measures:

- page opens as the server serves them (bench/load_wsclient.py: the page, its
  files, a websocket session whose first script run sends the Prompt box), one
  after another for as long as the runs stream; idle ones are the baseline
  (target: < 2 s);
- page opens in the browser: in every session's own tab Studio → Settings →
  Studio, and in a few sessions a new tab of the Studio and a reload of the
  run. On a 2-core machine these mostly measure the one Chromium that draws
  all 20 streaming tabs; each part is recorded (files, server, the rest);
- completion: every run finishes, its download equals ``demo_document(prompt)``
  and its JSON transcript holds the session's own base URL, model and round size;
- isolation: a watcher in every tab records, at each change of the page, any
  other session's prompt, run id, server, key or document text (and any key,
  its own included) in the page's text or URL; the script also searches every
  page's HTML during and after the runs, and the relay checks that every
  request under a session's prefix carried that session's key.

Run: ``.venv/bin/python bench/bench_load.py [--sessions 20] [--rate 50] [--tokens 3000]``
(about 5 minutes on 2 cores). Writes ``bench/results/load.json`` and prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from core.demo import demo_document  # noqa: E402
from core.services.store import Store  # noqa: E402
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, free_port, start_app, stop_app  # noqa: E402
from tests.e2e.relay import KeyRelay  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from load_session import (  # noqa: E402
    CONTROL,
    PROMPT_BOX,
    WATCH_JS,
    Session,
    check_end,
    finish,
    forbidden,
    html_leaks,
    open_studio,
    probe_navigate,
    probe_new_tab,
    probe_reload,
    set_up,
    start_run,
    streaming,
    watched,
)
from load_wsclient import server_open  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "load.json"
TARGET_OPEN_S = 2.0
T0 = time.perf_counter()


def log(message: str) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"[{time.perf_counter() - T0:6.1f} s, load {load}] {message}", file=sys.stderr, flush=True)


TOPICS = (
    "lighthouses", "ropewalks", "salt marshes", "slate quarries", "tide mills", "canal locks",
    "windmills", "hill forts", "chalk figures", "dew ponds", "holloways", "sea caves",
    "stone circles", "drove roads", "packhorse bridges", "ice houses", "follies", "lime kilns",
    "martello towers", "signal stations", "shot towers", "pill boxes", "beacon hills", "fish weirs",
)  # fmt: skip


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "median": None, "p95": None, "max": None}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "n": len(values),
        "median": round(statistics.median(values), 3),
        "p95": round(p95, 3),
        "max": round(ordered[-1], 3),
    }


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# ---------------------------------------------------------------- the benchmark


async def server_opens(app_url: str, http: Any, running: list[Session]) -> list[dict[str, float]]:
    """Page opens as the server sees them (bench/load_wsclient.py), one after another while runs stream."""
    out = []
    while streaming(running):
        before = streaming(running)
        try:
            parts, kind = await server_open(app_url, http), "server_open"
        except Exception as exc:  # noqa: BLE001 - a failed open is a figure too
            log(f"server open failed: {type(exc).__name__}: {exc}")
            parts, kind = {}, "server_open_failed"
        out.append({"kind": kind, "streaming": min(before, streaming(running)), **parts})
    return out


def page_opens(
    cold: float, idle: list[dict[str, Any]], probes: list[dict[str, Any]], server: list[dict], runs: int
) -> dict[str, Any]:
    """Median / p95 / max of every kind of page open: idle, and while all ``runs`` streamed."""

    def stats(rows: list[dict[str, Any]], kind: str, key: str = "s") -> dict[str, Any]:
        return percentiles([r[key] for r in rows if r["kind"] == kind and key in r])

    busy = [r for r in probes + server if r.get("streaming") == runs]
    late = [r for r in probes + server if r.get("streaming") != runs]
    return {
        "idle": {
            "browser_first_open_cold": round(cold, 3),
            "browser_new_tab": stats(idle, "new_tab"),
            "browser_new_tab_server_part": stats(idle, "new_tab", "server"),
            "server_open_first_visit": stats(idle, "server_open", "total"),
            "server_open_returning": stats(idle, "server_open", "returning"),
            "server_open_script_part": stats(idle, "server_open", "script"),
        },
        f"while_all_{runs}_runs_streamed": {
            "server_open_first_visit": stats(busy, "server_open", "total"),
            "server_open_returning": stats(busy, "server_open", "returning"),
            "server_open_script_part": stats(busy, "server_open", "script"),
            "browser_new_tab": stats(busy, "new_tab"),
            "browser_new_tab_assets_part": stats(busy, "new_tab", "assets"),
            "browser_new_tab_server_part": stats(busy, "new_tab", "server"),
            "browser_reload_run": stats(busy, "reload_run"),
            "browser_studio_to_settings": stats(busy, "studio_to_settings"),
            "browser_settings_to_studio": stats(busy, "settings_to_studio"),
        },
        "server_opens_failed": sum(1 for r in server if r["kind"] == "server_open_failed"),
        "measured_after_some_runs_ended": {
            kind: sum(1 for r in late if r["kind"] == kind)
            for kind in ("server_open", "new_tab", "reload_run", "studio_to_settings", "settings_to_studio")
        },
    }


async def gathered(sessions: list[Session], step: Any, what: str, limit: int | None = None) -> None:
    """Run ``step(s)`` for every session at once (at most ``limit`` at a time); failures are noted."""
    gate = asyncio.Semaphore(limit or len(sessions))

    async def one(s: Session) -> None:
        async with gate:
            try:
                await step(s)
            except Exception as exc:  # noqa: BLE001 - noted; the other sessions go on
                message = f"{what}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                for other in sessions:  # never a key in the results, not even a fake one
                    message = message.replace(other.key, "[key]") if other.key else message
                s.errors.append(message)

    await asyncio.gather(*(one(s) for s in sessions))


async def bench(args: argparse.Namespace, app_url: str, relay: KeyRelay, db: Path, app_pid: int) -> dict:
    from playwright.async_api import async_playwright

    tag = secrets.token_hex(3)
    sessions = [
        Session(
            index=i,
            name=f"ld{tag}-{i:02d}",
            prompt=f"Write about {args.tokens} tokens on {TOPICS[i % len(TOPICS)]}, for reader {i:02d}.",
            model=("demo", "demo-32k")[i % 2],
            max_tokens=args.round_tokens + 7 * i,
            key=f"sk-LOADSENTINEL-{i:02d}-{secrets.token_hex(12)}",
            base_url=f"{relay.base_url.removesuffix('/v1')}/x/k=ld{tag}-{i:02d}/v1",
        )
        for i in range(args.sessions)
    ]
    idle: list[dict[str, float]] = []
    async with (
        async_playwright() as pw,
        httpx.AsyncClient(limits=httpx.Limits(max_connections=6), timeout=None) as http,
    ):
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        warm = await browser.new_context()
        cold, page, _ = await open_studio(warm, app_url, PROMPT_BOX)  # app.py runs first (see tests/e2e)
        await page.close()
        for _ in range(args.baseline):
            seconds, page, parts = await open_studio(warm, app_url, PROMPT_BOX)
            idle.append({"kind": "new_tab", "s": seconds, **parts})
            await page.close()
        await warm.close()
        for _ in range(args.baseline):
            idle.append({"kind": "server_open", **await server_open(app_url, http)})
        log(f"idle: first open {cold:.1f} s, then {[round(x['s'], 2) for x in idle if 's' in x]}")

        for s in sessions:
            s.context = await browser.new_context(
                viewport={"width": 1280, "height": 900}, accept_downloads=True
            )
            s.context.set_default_timeout(args.timeout * 1000)
            await s.context.add_init_script(WATCH_JS % json.dumps(forbidden(s, sessions, runs=False)))
        await gathered(sessions, lambda s: set_up(s, app_url), "setup", args.setup_concurrency)
        ready = [s for s in sessions if not s.errors]
        log(f"{len(ready)} of {len(sessions)} sessions set up")
        chrome = [p for p in descendants(os.getpid()) if "chrom" in _comm(p)]
        before = (time.perf_counter(), cpu_seconds([app_pid]), cpu_seconds(chrome), os.getloadavg())
        await gathered(ready, start_run, "start")
        started = time.perf_counter()
        running = [s for s in ready if s.run]
        log(f"{len(running)} runs started")
        watchers = asyncio.gather(*(finish(s) for s in running), return_exceptions=True)

        async def watch_run_ids(s: Session) -> None:  # every tab, and every tab opened later
            ids = [{"what": f"run id of {o.name}", "value": o.run} for o in running if o is not s]
            await s.context.add_init_script(f"window.__forbid.push(...{json.dumps(ids)});")
            for page in s.context.pages:
                await page.evaluate("(ids) => window.__forbid.push(...ids)", ids)

        await gathered(running, watch_run_ids, "watch run ids")
        opens = asyncio.create_task(server_opens(app_url, http, running))
        await asyncio.sleep(args.settle)
        log("probing: Studio → Settings → Studio in every session's tab, searching the pages")
        await gathered(running, lambda s: probe_navigate(s, sessions), "navigate", args.concurrency)
        some = running[: args.browser_probes]
        log(f"probing: new tabs and reloads in {len(some)} sessions")
        await gathered(some, lambda s: probe_new_tab(s, app_url, sessions), "new tab", args.concurrency)
        await gathered(some, lambda s: probe_reload(s, app_url, sessions), "reload", args.concurrency)
        log(f"browser probes done, {streaming(running)} runs still streaming")
        await watchers
        server = await opens
        after = (time.perf_counter(), cpu_seconds([app_pid]), cpu_seconds(chrome), os.getloadavg())
        app_rss = rss_mb(app_pid)
        log(f"{sum(1 for s in running if s.done)} runs ended")
        ends: dict[str, dict[str, Any]] = {}

        async def end(s: Session) -> None:
            ends[s.name] = await check_end(s, sessions)

        await gathered(running, end, "end", args.concurrency)
        end_leaks = {s.name: await html_leaks(s, sessions) for s in running}
        page_leaks = {s.name: await watched(s) for s in running}
        await browser.close()

    with Store(db) as store:
        texts = {s.name: [store.load(r.id).text for r in store.list_runs(query=s.prompt)] for s in sessions}
    wire = {s.name: relay.keys_by_prefix(f"k={s.name}/") for s in sessions}
    wall = after[0] - before[0]
    times = {k: [t for s in sessions for t in s.timings.get(k, [])] for k in sessions[0].timings}
    log(f"server opens while streaming: {len(server)}")
    return {
        "sessions": args.sessions,
        "rate_tokens_per_s": args.rate,
        "tokens_per_run": args.tokens,
        "round_tokens": f"{sessions[0].max_tokens}..{sessions[-1].max_tokens} (7 apart)",
        "probe_concurrency": args.concurrency,
        "page_open_s": page_opens(cold, idle, [x for s in sessions for x in s.probes], server, len(running)),
        "setup_per_session_s": percentiles(times.get("setup", [])),
        "target_s": TARGET_OPEN_S,
        "runs": {
            "started": len(running),
            "finished": sum(1 for e in ends.values() if e["finished"]),
            "exact_downloads": sum(1 for e in ends.values() if e["exact"]),
            "exact_in_database": sum(1 for s in sessions if texts[s.name] == [demo_document(s.prompt)]),
            "own_settings_in_transcript": sum(1 for e in ends.values() if e["own_settings"]),
            "keys_in_transcripts": sum(1 for e in ends.values() if e["key_in_transcript"]),
            "rounds": percentiles([e["rounds"] for e in ends.values()]),
            "seconds_from_generate": percentiles([s.done - started for s in running if s.done]),
            "ideal_seconds_per_run": round(args.tokens / args.rate, 1),
        },
        "isolation": {
            "leaks_seen_by_page_watchers": {
                k: [x for x in v if x != CONTROL] for k, v in page_leaks.items() if set(v) - {CONTROL}
            },
            "watchers_that_saw_their_own_text": sum(1 for v in page_leaks.values() if CONTROL in v),
            "leaks_in_html_mid_run": {s.name: s.mid_leaks for s in sessions if s.mid_leaks},
            "leaks_in_html_at_end": {k: v for k, v in end_leaks.items() if v},
            "sessions_whose_requests_carried_only_their_key": sum(
                1 for s in sessions if wire[s.name] == {s.key}
            ),
            "requests_seen_by_relay": len(relay.seen),
            "forbidden_strings_per_page": len(forbidden(sessions[0], sessions, runs=True)) - 1,
        },
        "resources_during_runs": {
            "wall_s": round(wall, 1),
            "app_cpu_cores": round((after[1] - before[1]) / wall, 2),
            "chromium_cpu_cores": round((after[2] - before[2]) / wall, 2),
            "app_rss_mb": round(app_rss, 1),
            "load_average_before": [round(x, 2) for x in before[3]],
            "load_average_after": [round(x, 2) for x in after[3]],
        },
        "errors": {s.name: s.errors for s in sessions if s.errors},
    }


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def start_demo(rate: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.demo", "--port", str(port), "--rate", str(rate)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the demo model did not start")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--rate", type=float, default=50.0, help="demo tokens/s per stream")
    parser.add_argument("--tokens", type=int, default=3000, help="per run")
    parser.add_argument("--round-tokens", type=int, default=600, help="max tokens per round (+7 per session)")
    parser.add_argument("--concurrency", type=int, default=4, help="sessions probing at once")
    parser.add_argument("--setup-concurrency", type=int, default=5, help="sessions setting up at once")
    parser.add_argument("--browser-probes", type=int, default=4, help="sessions that open new tabs")
    parser.add_argument("--baseline", type=int, default=5, help="page opens on the idle server")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds of streaming before probing")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds any one browser step may take")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        demo, demo_url = start_demo(args.rate)
        app, app_url = start_app(Path(tmp))
        try:
            with KeyRelay(demo_url) as relay:
                results = asyncio.run(bench(args, app_url, relay, Path(tmp) / "e2e.sqlite3", app.pid))
        finally:
            stop_app(app)
            demo.terminate()
            demo.wait(10)
    results.update(
        total_seconds=round(time.perf_counter() - started, 1),
        cpus=os.cpu_count(),
        python=platform.python_version(),
        date=time.strftime("%Y-%m-%d"),
    )
    runs, iso, opens = results["runs"], results["isolation"], results["page_open_s"]
    results["all_runs_exact_and_isolated"] = bool(
        runs["exact_downloads"]
        == runs["exact_in_database"]
        == runs["own_settings_in_transcript"]
        == args.sessions
        and not (
            iso["leaks_seen_by_page_watchers"] or iso["leaks_in_html_mid_run"] or iso["leaks_in_html_at_end"]
        )
        and iso["watchers_that_saw_their_own_text"] == args.sessions
        and iso["sessions_whose_requests_carried_only_their_key"] == args.sessions
        and runs["keys_in_transcripts"] == 0
        and not results["errors"]
    )
    busy = opens[f"while_all_{args.sessions}_runs_streamed"]
    for name in ("server_open_first_visit", "server_open_returning", "browser_new_tab"):
        p95 = busy[name]["p95"]
        results[f"{name}_p95_under_target"] = p95 is not None and p95 < TARGET_OPEN_S
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
