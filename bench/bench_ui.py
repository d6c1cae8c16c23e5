"""What streaming a long answer costs in a real browser: websocket bytes, frames and wall time.

Every update of a Streamlit element re-sends the whole element, so a naive UI
pays the square of the answer's length on the wire. This benchmark drives the
real app (``streamlit run app.py``) in Debian's headless Chromium through two runs:

- ``ordinary``: 12,000 tokens on ``demo-32k`` with the Studio's defaults (1,024
  tokens a round) at the app's default demo pace (400 tokens/s);
- ``long``: 50,000 tokens at 2,000 tokens/s in rounds of 4,096. The demo models'
  largest everyday window is 32k, so this one serves the demo with one extra model,
  ``demo-256k`` (bench only), in this script, and points the app's "Custom" provider
  at it through the Settings page.

For each it measures the websocket bytes and frames the browser received during the
run (Playwright's ``framereceived``), against the size of the final text (target:
at most 1.5x), and the run's wall time in the browser (Generate click → the finished
status on screen) against the engine's own time for the same run (the run's
``totals.duration_s`` in the history; target: within 5 %). The frames are decoded
(Streamlit's ``ForwardMsg`` protobuf, bench only) to say what the bytes were: per
element kind, and the elements sent most often.

Run: ``.venv/bin/python bench/bench_ui.py [--only ordinary|long]``.
Writes ``bench/results/browser.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.demo import demo_document, start_demo_server  # noqa: E402
from core.demo.models import MODELS, DemoModel  # noqa: E402
from core.services.store import Store  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BIG_MODEL = "demo-256k"
RESULTS = ROOT / "bench" / "results" / "browser.json"
KEY_VARS = ("DEEPINFRA_API_KEY", "DEEPINFRA_TOKEN", "OPENAI_API_KEY", "OPENROUTER_API_KEY")
IDLE = """() => document.querySelector('[data-testid=stApp]')?.getAttribute('data-test-script-state')
    === 'notRunning'"""
TARGET_RATIO = 1.5
TARGET_SLOWER = 0.05


@dataclass
class Scenario:
    name: str
    tokens: int
    model: str
    rate: float | None  # tokens/s of this script's demo server; None: the app's own demo model
    max_tokens: int | None  # per round; None: the Studio's default
    prompt: str = ""
    frames: list[bytes] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_app(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS and k != "CONTINUUM_DEMO_RATE"}
    env.update(CONTINUUM_DB=str(tmp / "bench.sqlite3"), PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
    command += ["--server.port", str(port), "--server.address", "127.0.0.1"]
    command += ["--browser.gatherUsageStats", "false"]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=(tmp / "streamlit.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the app did not start")


def use_custom_server(page: Any, demo_url: str) -> None:
    """Settings: the Custom provider, pointed at this script's demo server."""
    page.get_by_label("Provider").click()
    page.get_by_role("option", name="Custom (OpenAI-compatible)").click()
    base = page.get_by_role("textbox", name="Base URL")
    base.fill(demo_url)
    base.press("Enter")
    page.get_by_role("button", name="Fetch models").click()
    page.get_by_test_id("stDataFrame").wait_for()


def browser_run(app_url: str, scenario: Scenario, demo_url: str | None) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    counting = {"on": False}

    def on_frame(payload: bytes | str) -> None:
        if counting["on"]:
            scenario.frames.append(payload if isinstance(payload, bytes) else payload.encode("utf-8"))

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
        context.set_default_timeout(60_000)
        page = context.new_page()
        page.on("websocket", lambda ws: ws.on("framereceived", on_frame))
        page.goto(f"{app_url}/settings")
        if demo_url is not None:
            use_custom_server(page, demo_url)
        page.get_by_role("link", name="Studio").click()
        page.get_by_label("Prompt", exact=True).wait_for()
        model = page.get_by_role("combobox", name="Model")
        model.click()
        model.fill(scenario.model)
        page.get_by_role("option", name=scenario.model, exact=True).click()
        page.get_by_text(scenario.model).first.wait_for()
        if scenario.max_tokens is not None:
            page.get_by_role("spinbutton", name="Max tokens per round").fill(str(scenario.max_tokens))
        page.get_by_role("spinbutton", name="Max rounds").fill("100")
        page.get_by_label("Prompt", exact=True).fill(scenario.prompt)
        page.wait_for_function(IDLE, polling=100, timeout=120_000)  # the form's own reruns are not counted
        time.sleep(1.0)
        counting["on"] = True
        started = time.perf_counter()
        page.get_by_role("button", name="Generate").click()
        # CSS locators (the widgets' key classes): a text locator would re-scan the whole
        # document on every DOM change and slow the very page being measured.
        page.locator(".st-key-clear_run").wait_for(timeout=600_000)
        elapsed = time.perf_counter() - started
        # the rest of the final render (downloads, Continue…): until the script run has ended
        page.wait_for_function(IDLE, polling=100, timeout=120_000)
        time.sleep(1.0)
        counting["on"] = False
        status = page.locator(".st-key-run_head").inner_text()
        browser.close()
    return {"seconds": elapsed, "status": " ".join(status.split())}


def breakdown(frames: list[bytes]) -> dict[str, Any]:
    """What the bytes were: per message or element kind, and the slots updated most (bench only)."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    kinds: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    slots: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    samples: dict[str, str] = {}
    for frame in frames:
        msg = ForwardMsg()
        try:
            msg.ParseFromString(frame)
        except Exception:  # noqa: BLE001 - not a ForwardMsg: count it as such
            kinds["undecoded"] += len(frame)
            counts["undecoded"] += 1
            continue
        kind = msg.WhichOneof("type") or "?"
        if kind == "delta":
            delta = kind = msg.delta.WhichOneof("type") or "?"
            if delta == "new_element":
                element = msg.delta.new_element
                kind = element.WhichOneof("type") or "?"
                path = ".".join(str(i) for i in msg.metadata.delta_path)
                slots[path][0] += 1
                slots[path][1] += len(frame)
                body = getattr(element, kind)
                text = getattr(body, "body", "") or getattr(body, "label", "") or ""
                samples[path] = f"{kind}: {str(text)[:60]!r}"  # the last value sent there
            elif delta == "add_block":
                kind = "block"
        kinds[kind] += len(frame)
        counts[kind] += 1
    top = sorted(slots.items(), key=lambda kv: -kv[1][1])[:12]
    return {
        "by_kind_bytes": dict(kinds.most_common()),
        "by_kind_frames": dict(counts.most_common()),
        "top_slots": [
            {"path": path, "updates": n, "bytes": size, "sample": samples[path]} for path, (n, size) in top
        ],
    }


def latest_run(db: Path) -> dict[str, Any]:
    store = Store(str(db))
    summary = store.list_runs(limit=1)[0]
    result = store.load(summary.id)
    data = result.to_dict()
    return {
        "text": data["text"],
        "rounds": len(data["rounds"]),
        "engine_seconds": data["totals"]["duration_s"],
    }


def measure(scenario: Scenario) -> dict[str, Any]:
    scenario.prompt = f"Write {scenario.tokens} tokens about the history of maps"
    document = demo_document(scenario.prompt, model=scenario.model)
    text_bytes = len(document.encode("utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        server = start_demo_server(rate=scenario.rate) if scenario.rate is not None else None
        proc, app_url = start_app(Path(tmp))
        try:
            ui = browser_run(app_url, scenario, server.base_url if server else None)
        finally:
            proc.terminate()
            proc.wait(10)
            if server is not None:
                server.stop()
        run = latest_run(Path(tmp) / "bench.sqlite3")
    assert run["text"] == document, "the run did not write the demo document"
    sent = sum(len(f) for f in scenario.frames)
    ratio = sent / text_bytes
    slower = ui["seconds"] / run["engine_seconds"] - 1
    return {
        "tokens": scenario.tokens,
        "model": scenario.model,
        "rate_tokens_per_s": scenario.rate or 400.0,
        "max_tokens_per_round": scenario.max_tokens or 1024,
        "rounds": run["rounds"],
        "final_text_bytes": text_bytes,
        "websocket_bytes": sent,
        "websocket_frames": len(scenario.frames),
        "bytes_ratio": round(ratio, 3),
        "browser_seconds": round(ui["seconds"], 2),
        "engine_seconds": round(run["engine_seconds"], 2),
        "browser_vs_engine": round(slower, 4),
        "pass": ratio <= TARGET_RATIO and slower <= TARGET_SLOWER,
        "status_on_screen": ui["status"],
        "breakdown": breakdown(scenario.frames),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("ordinary", "long"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--frames", type=Path, help="also save each run's frames here (NAME.frames)")
    args = parser.parse_args(argv)

    MODELS[BIG_MODEL] = DemoModel(BIG_MODEL, 262_144, 0.10, 0.40)  # bench only: a window for 50k+
    scenarios = [
        Scenario("ordinary", 12_000, "demo-32k", None, None),
        Scenario("long", 50_000, BIG_MODEL, 2000.0, 4096),
    ]
    results: dict[str, Any] = {
        "targets": {"bytes_ratio_max": TARGET_RATIO, "browser_vs_engine_max": TARGET_SLOWER},
        "load_average_before": os.getloadavg()[0],
    }
    for scenario in scenarios:
        if args.only and scenario.name != args.only:
            continue
        results[scenario.name] = r = measure(scenario)
        if args.frames:
            args.frames.mkdir(parents=True, exist_ok=True)
            blob = b"".join(len(f).to_bytes(4, "big") + f for f in scenario.frames)
            (args.frames / f"{scenario.name}.frames").write_bytes(blob)
        print(
            f"{scenario.name:<9} {r['tokens']:,} tokens, {r['rounds']} rounds, "
            f"{r['final_text_bytes'] / 1024:,.0f} KiB of text: {r['websocket_bytes'] / 1024:,.0f} KiB "
            f"in {r['websocket_frames']:,} frames = {r['bytes_ratio']:.2f}x (target <= {TARGET_RATIO}x); "
            f"browser {r['browser_seconds']:.1f} s vs engine {r['engine_seconds']:.1f} s "
            f"({r['browser_vs_engine']:+.1%}, target <= +{TARGET_SLOWER:.0%}): "
            f"{'PASS' if r['pass'] else 'FAIL'}"
        )
        print("   by kind:", r["breakdown"]["by_kind_bytes"])
        for slot in r["breakdown"]["top_slots"][:6]:
            print(f"   {slot['updates']:>5} updates {slot['bytes'] / 1024:>8,.1f} KiB  {slot['sample']}")
    results["load_average_after"] = os.getloadavg()[0]
    results["python"] = platform.python_version()
    results["date"] = time.strftime("%Y-%m-%d")
    results["pass"] = all(results[s.name]["pass"] for s in scenarios if s.name in results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0 if results["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
