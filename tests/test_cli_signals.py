"""Every polite stop signal ends the command line like Ctrl+C.

``timeout`` and ``docker stop``/systemd send SIGTERM, a closed terminal SIGHUP: each
must stop the run as cancelled, write ``--output`` and ``--transcript``, record the
run as cancelled, and exit with Ctrl+C's code. Real processes, a throttled demo model.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
from pathlib import Path

import pytest

from core.demo import demo_document
from core.services.store import Store
from tests.clirun import REPO, cli, start, wait_for

POLITE = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
PROMPT = "Write 6000 tokens about harbour pilots"


@pytest.fixture
def env(tmp_db: Path, clean_env: dict[str, str]) -> dict[str, str]:
    Store(tmp_db).close()  # the schema exists before the test reads what the child writes
    return {**clean_env, "CONTINUUM_DB": str(tmp_db), "PYTHONPATH": str(REPO)}


def rows(db: Path, sql: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


def text_in_round(db: Path, index: int) -> bool:
    return bool(rows(db, f"SELECT 1 FROM rounds WHERE idx = {index} AND characters > 0"))


def statuses(db: Path) -> list[str]:
    return [status for (status,) in rows(db, "SELECT status FROM runs ORDER BY created_at")]


def ended(proc, sig: signal.Signals) -> int:
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    return int(proc.returncode)


@pytest.mark.parametrize("sig", POLITE, ids=lambda s: s.name)
def test_a_polite_signal_ends_a_run_like_ctrl_c(
    sig: signal.Signals, env: dict[str, str], tmp_db: Path, tmp_path: Path, demo_url
) -> None:
    out, transcript = tmp_path / "out.md", tmp_path / "run.json"
    proc = start(
        "run", "--provider", "custom", "--base-url", demo_url(rate=400), "--model", "demo",
        "--prompt", PROMPT, "--max-tokens", "600", "--output", str(out), "--transcript", str(transcript),
        "--quiet", env=env,
    )  # fmt: skip
    wait_for(lambda: text_in_round(tmp_db, 1), "text of the first round in the history", proc)
    code = ended(proc, sig)
    saved = json.loads(transcript.read_text()) if transcript.exists() else {}
    answer = out.read_text() if out.exists() else None
    assert (code, saved.get("stop_reason"), answer == saved.get("text"), statuses(tmp_db)) == (
        1,
        "cancelled",
        True,
        ["cancelled"],
    )
    assert answer and demo_document(PROMPT).startswith(answer)


@pytest.mark.parametrize("sig", POLITE, ids=lambda s: s.name)
def test_a_polite_signal_ends_a_resumed_run_like_ctrl_c(
    sig: signal.Signals, env: dict[str, str], tmp_db: Path, tmp_path: Path, demo_url
) -> None:
    first = cli(
        "run", "--provider", "custom", "--base-url", demo_url(), "--model", "demo", "--prompt", PROMPT,
        "--max-tokens", "300", "--max-rounds", "1", "--quiet", env=env,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    (run_id,) = [row[0] for row in rows(tmp_db, "SELECT id FROM runs")]
    out, transcript = tmp_path / "out.md", tmp_path / "run.json"
    proc = start(
        "runs", "resume", run_id, "--base-url", demo_url(rate=400), "--output", str(out),
        "--transcript", str(transcript), "--quiet", env=env,
    )  # fmt: skip
    wait_for(lambda: text_in_round(tmp_db, 2), "text of the resumed round in the history", proc)
    code = ended(proc, sig)
    saved = json.loads(transcript.read_text()) if transcript.exists() else {}
    answer = out.read_text() if out.exists() else None
    assert (code, saved.get("stop_reason"), answer == saved.get("text"), statuses(tmp_db)) == (
        1,
        "cancelled",
        True,
        ["cancelled"],
    )


@pytest.mark.parametrize("sig", POLITE, ids=lambda s: s.name)
def test_a_polite_signal_stops_a_batch_like_ctrl_c(
    sig: signal.Signals, env: dict[str, str], tmp_db: Path, tmp_path: Path
) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(
        "".join(
            json.dumps({"id": f"p{i}", "prompt": f"Write 400 tokens about thing {i}"}) + "\n"
            for i in range(8)
        )
    )
    out = tmp_path / "results.jsonl"
    proc = start(
        "batch", str(prompts), "--provider", "demo", "--demo-rate", "400", "--max-tokens", "150",
        "--concurrency", "2", "--quiet", "--out", str(out), env=env,
    )  # fmt: skip
    wait_for(lambda: "finished" in statuses(tmp_db), "a finished item in the history", proc)
    code = ended(proc, sig)
    written = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    assert (code, len(written), "running" in statuses(tmp_db)) == (130, 8, False)
