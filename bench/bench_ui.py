"""What streaming a long answer costs in a real browser: websocket bytes and wall time.

Every update of a Streamlit element re-sends the whole element, so a naive UI
pays the square of the answer's length on the wire. This benchmark drives the
real app (``streamlit run app.py``) in Debian's headless Chromium through a run
of at least 50k tokens from the demo model at 2,000 tokens/s and measures:

- the websocket bytes the browser received during the run (Playwright's
  ``framereceived`` events), against the size of the final text
  (target: at most 3x);
- the run's wall time in the browser (Generate click → the finished status on
  screen) against the engine's own time for the same run, run headless
  (target: within 10 %).

The demo models' largest window is 32k tokens, too small for a 50k-token run,
so this script serves the demo with one extra model, ``demo-256k`` (bench only),
and points the app's "Custom" provider at it through the Settings page.

Run: ``.venv/bin/python bench/bench_ui.py [--tokens 50000] [--rate 2000]``.
Writes ``bench/results/ui.json`` and prints a table.
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.continuation import engine  # noqa: E402
from core.demo import demo_document, start_demo_server  # noqa: E402
from core.demo.models import MODELS, DemoModel  # noqa: E402
from core.types import RunSpec  # noqa: E402

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
RESULTS = ROOT / "bench" / "results" / "ui.json"
KEY_VARS = ("DEEPINFRA_API_KEY", "DEEPINFRA_TOKEN", "OPENAI_API_KEY", "OPENROUTER_API_KEY")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_app(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    env.update(CONTINUUM_DB=str(tmp / "bench.sqlite3"), PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
    command += ["--server.port", str(port), "--server.address", "127.0.0.1"]
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


def engine_time(base_url: str, prompt: str, max_tokens: int) -> tuple[float, int, int]:
    """Wall time, rounds and characters of the same run, headless."""
    spec = RunSpec(
        messages=[{"role": "user", "content": prompt}],
        provider="custom",
        base_url=base_url,
        model=BIG_MODEL,
        max_tokens=max_tokens,
        max_rounds=100,
        temperature=0.7,
    )
    started = time.perf_counter()
    result = None
    for event in engine.run(spec):
        result = getattr(event, "result", result)
    elapsed = time.perf_counter() - started
    assert result is not None and result.stop_reason == "finished", result and result.stop_reason
    return elapsed, len(result.rounds), len(result.text)


def browser_run(app_url: str, demo_url: str, prompt: str, max_tokens: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    received: list[int] = []
    counting = {"on": False}

    def on_frame(payload: bytes | str) -> None:
        if counting["on"]:
            received.append(len(payload) if isinstance(payload, bytes) else len(payload.encode("utf-8")))

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
        context.set_default_timeout(60_000)
        page = context.new_page()
        page.on("websocket", lambda ws: ws.on("framereceived", on_frame))
        # Settings: the Custom provider, pointed at this script's demo server.
        page.goto(f"{app_url}/settings")
        page.get_by_label("Provider").click()
        page.get_by_role("option", name="Custom (OpenAI-compatible)").click()
        base = page.get_by_role("textbox", name="Base URL")
        base.fill(demo_url)
        base.press("Enter")
        page.get_by_role("button", name="Fetch models").click()
        page.get_by_test_id("stDataFrame").wait_for()
        # Studio: model, per-round tokens, prompt.
        page.get_by_role("link", name="Studio").click()
        page.get_by_label("Prompt", exact=True).wait_for()
        page.get_by_role("combobox", name="Model").click()
        page.get_by_role("option", name=BIG_MODEL, exact=True).click()
        page.get_by_text(f"{BIG_MODEL}").first.wait_for()
        tokens = page.get_by_role("spinbutton", name="Max tokens per round")
        tokens.fill(str(max_tokens))
        page.get_by_role("spinbutton", name="Max rounds").fill("100")
        page.get_by_label("Prompt", exact=True).fill(prompt)
        time.sleep(1.0)  # let the page settle so its own frames are not counted
        counting["on"] = True
        started = time.perf_counter()
        page.get_by_role("button", name="Generate").click()
        # CSS locators (the widgets' key classes): a text locator would re-scan the whole
        # document on every DOM change and slow the very page being measured.
        page.locator(".st-key-clear_run").wait_for(timeout=600_000)
        elapsed = time.perf_counter() - started
        time.sleep(1.0)  # the last frames of the final render
        counting["on"] = False
        status = page.get_by_text("rounds ·").first.inner_text()
        browser.close()
    return {"seconds": elapsed, "bytes": sum(received), "frames": len(received), "status": status}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=50_000)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--max-tokens", type=int, default=4096, help="per round")
    args = parser.parse_args(argv)

    MODELS[BIG_MODEL] = DemoModel(BIG_MODEL, 262_144, 0.10, 0.40)  # bench only: a window for 50k+
    prompt = f"Write {args.tokens} tokens about the history of maps"
    document = demo_document(prompt, model=BIG_MODEL)
    text_bytes = len(document.encode("utf-8"))

    with tempfile.TemporaryDirectory() as tmp, start_demo_server(rate=args.rate) as demo:
        engine_s, rounds, chars = engine_time(demo.base_url, prompt, args.max_tokens)
        assert chars == len(document), "the engine did not reproduce the demo document"
        proc, app_url = start_app(Path(tmp))
        try:
            ui = browser_run(app_url, demo.base_url, prompt, args.max_tokens)
        finally:
            proc.terminate()
            proc.wait(10)

    ratio = ui["bytes"] / text_bytes
    slower = ui["seconds"] / engine_s - 1
    results = {
        "tokens": args.tokens,
        "rate_tokens_per_s": args.rate,
        "rounds": rounds,
        "final_text_bytes": text_bytes,
        "websocket_bytes": ui["bytes"],
        "websocket_frames": ui["frames"],
        "bytes_ratio": round(ratio, 3),
        "browser_seconds": round(ui["seconds"], 2),
        "engine_seconds": round(engine_s, 2),
        "browser_vs_engine": round(slower, 4),
        "targets": {"bytes_ratio_max": 3.0, "browser_vs_engine_max": 0.10},
        "pass": ratio <= 3.0 and slower <= 0.10,
        "status_on_screen": ui["status"],
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    rows = [
        ("answer", f"{args.tokens:,} tokens, {rounds} rounds, {text_bytes / 1024:,.0f} KiB"),
        ("websocket bytes", f"{ui['bytes'] / 1024:,.0f} KiB in {ui['frames']:,} frames"),
        ("bytes / text", f"{ratio:.2f}x   (target <= 3x)"),
        ("browser time", f"{ui['seconds']:.2f} s"),
        ("engine time", f"{engine_s:.2f} s"),
        ("browser vs engine", f"{slower:+.1%}   (target <= +10%)"),
        ("result", "PASS" if results["pass"] else "FAIL"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0 if results["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
