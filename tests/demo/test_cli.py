"""The demo model's command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from core.demo import demo_document
from core.demo.server import build_parser, main

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("entry", [["core.demo"], ["core", "demo"]], ids=["core.demo", "core demo"])
def test_the_command_line_serves_with_behaviour_flags_until_stopped(entry: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", *entry, "--port", "0", "--rate", "0", "--prefill", "ignored"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("Demo model listening on http://127.0.0.1:") and line.rstrip().endswith("/v1")
        base = line.split(" on ")[1].strip()
        messages = [{"role": "user", "content": "Write about maps"}, {"role": "assistant", "content": "# "}]
        reply = httpx.post(
            base + "/chat/completions", json={"model": "demo", "messages": messages}, timeout=10
        )
        assert reply.json()["choices"][0]["message"]["content"] == demo_document("Write about maps")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_every_behaviour_has_a_flag() -> None:
    args = build_parser().parse_args(["--drop-p", "0.5", "--usage", "absent", "--fail429", "2"])
    assert (args.drop_p, args.usage, args.fail429, args.rate, args.port) == ("0.5", "absent", "2", 40.0, 8765)


def test_a_bad_behaviour_value_stops_the_command_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--port", "0", "--prefill", "sometimes"]) == 2
    assert "prefill" in capsys.readouterr().err
