"""The command line, run as a real process against the demo model on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.demo import demo_document
from core.services.plain import plain_text
from core.services.store import Store

REPO = Path(__file__).resolve().parents[1]
PROMPT = "Write 2500 tokens about tide tables"


def cli(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core", *args],
        cwd=REPO,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def env(tmp_db: Path, clean_env: dict[str, str]) -> dict[str, str]:
    return {**clean_env, "CONTINUUM_DB": str(tmp_db), "PYTHONPATH": str(REPO)}


def test_a_demo_run_prints_the_single_shot_answer_and_writes_a_transcript(
    env: dict[str, str], tmp_path: Path
) -> None:
    transcript = tmp_path / "run.json"
    done = cli(
        "run",
        "--provider",
        "demo",
        "--prompt",
        PROMPT,
        "--max-tokens",
        "700",
        "--transcript",
        str(transcript),
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip("\n") == demo_document(PROMPT).rstrip("\n")
    data = json.loads(transcript.read_text())
    assert data["stop_reason"] == "finished" and data["text"] == demo_document(PROMPT)
    assert len(data["rounds"]) == 4
    for key in (
        "index",
        "text",
        "reasoning",
        "finish_reason",
        "max_tokens",
        "prompt_tokens",
        "completion_tokens",
        "tokens_estimated",
        "ttft_s",
        "duration_s",
    ):
        assert key in data["rounds"][0], key
    assert data["totals"]["completion_tokens"] == sum(r["completion_tokens"] for r in data["rounds"])


def test_the_progress_display_goes_to_stderr_round_by_round(env: dict[str, str]) -> None:
    done = cli("run", "--provider", "demo", "--prompt", PROMPT, "--max-tokens", "1000", env=env)
    assert [line.split(":")[0] for line in done.stderr.splitlines() if line.startswith("round ")] == [
        "round 1",
        "round 2",
        "round 3",
    ]
    assert "stopped: finished after 3 rounds" in done.stderr


def test_a_limit_is_a_normal_end(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out.md"
    done = cli(
        "run",
        "--provider",
        "demo",
        "--prompt",
        PROMPT,
        "--max-tokens",
        "500",
        "--max-rounds",
        "2",
        "--output",
        str(out),
        env=env,
    )
    assert done.returncode == 0
    assert "stopped: max_rounds after 2 rounds" in done.stderr
    assert demo_document(PROMPT).startswith(out.read_text())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--max-tokens", "0"], "must be at least 1"),
        (["--max-rounds", "-3"], "must be at least 1"),
        (["--temperature", "9"], "between 0 and 2"),
        (["--strategy", "telepathy"], "invalid choice"),
    ],
)
def test_bad_usage_exits_2_with_a_readable_message(
    env: dict[str, str], args: list[str], message: str
) -> None:
    done = cli("run", "--provider", "demo", "--prompt", PROMPT, *args, env=env)
    assert done.returncode == 2 and message in done.stderr


def test_an_empty_prompt_is_refused(env: dict[str, str]) -> None:
    done = cli("run", "--provider", "demo", "--prompt-file", "-", env=env, stdin="   \n")
    assert done.returncode == 2 and "the prompt is empty" in done.stderr


def test_a_missing_key_names_the_variable_to_set(env: dict[str, str]) -> None:
    done = cli("run", "--provider", "deepinfra", "--prompt", "hi", env=env)
    assert done.returncode == 2
    assert "DEEPINFRA_API_KEY" in done.stderr and "Traceback" not in done.stderr


def test_a_rejected_key_is_an_error_exit_with_advice(env: dict[str, str], demo_url) -> None:
    url = demo_url(auth="key")
    done = cli(
        "run",
        "--provider",
        "custom",
        "--base-url",
        url,
        "--model",
        "demo",
        "--prompt",
        PROMPT,
        "--api-key-env",
        "MY_KEY",
        env={**env, "MY_KEY": "wrong-key-1234"},
    )
    assert done.returncode == 1
    assert "error:" in done.stderr and "Traceback" not in done.stderr
    assert "wrong-key-1234" not in done.stderr + done.stdout


def test_runs_are_listed_shown_and_exported(env: dict[str, str]) -> None:
    cli("run", "--provider", "demo", "--prompt", PROMPT, "--max-tokens", "1000", "--title", "Tides", env=env)
    listing = cli("runs", "list", env=env)
    assert "Tides" in listing.stdout
    run_id = listing.stdout.splitlines()[1].split()[0]
    show = cli("runs", "show", run_id, env=env)
    assert "totals: 3 rounds" in show.stdout
    exported = cli("runs", "export", run_id, "--format", "json", env=env)
    assert json.loads(exported.stdout)["text"] == demo_document(PROMPT)
    assert cli("runs", "export", run_id, "--format", "txt", env=env).stdout == plain_text(
        demo_document(PROMPT)
    )


def _wait_for_live_text(db: Path, deadline: float) -> str:
    while time.monotonic() < deadline:
        if db.exists():
            with Store(db) as store:
                runs = store.list_runs()
                if runs:
                    result = store.load(runs[0].id)
                    if len(result.rounds) >= 2 and result.rounds[-1].text:
                        return runs[0].id
        time.sleep(0.2)
    raise AssertionError("the run never saved text of its second round")


def test_a_run_killed_mid_round_resumes_to_the_uninterrupted_answer(
    env: dict[str, str], tmp_db: Path, demo_url
) -> None:
    url = demo_url(rate=400)  # slow enough to kill mid-round
    prompt = "Write 2000 tokens about harbour pilots"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "core",
            "run",
            "--provider",
            "custom",
            "--base-url",
            url,
            "--model",
            "demo",
            "--prompt",
            prompt,
            "--max-tokens",
            "600",
            "--quiet",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        run_id = _wait_for_live_text(tmp_db, time.monotonic() + 60)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    with Store(tmp_db) as store:
        assert store.mark_interrupted() == [run_id]
        saved = store.load(run_id)
    assert saved.text and demo_document(prompt).startswith(saved.text)
    assert saved.rounds[-1].finish_reason is None

    done = cli("runs", "resume", run_id[:8], "--quiet", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip("\n") == demo_document(prompt).rstrip("\n")
    with Store(tmp_db) as store:
        runs = store.list_runs()
        resumed = store.load(run_id)
    assert [r.id for r in runs] == [run_id]  # one run with more rounds, not a second run
    assert resumed.text == demo_document(prompt)
    assert resumed.stop_reason == "finished"
    assert resumed.totals()["completion_tokens"] == sum(r.completion_tokens for r in resumed.rounds)
