"""``python -m core batch``: bad rows reported, results written, resume after a stop or a crash."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.cli.batch import add_batch_parser, cmd_batch
from core.cli.common import UsageError
from core.demo import demo_document
from core.services.store import Store

ROOT = Path(__file__).resolve().parent.parent
# The parser as core.cli builds it (the batch subcommand is one of its subparsers).
CLI = """
import argparse, sys
from core.cli.batch import add_batch_parser, cmd_batch
parser = argparse.ArgumentParser(prog="python -m core")
add_batch_parser(parser.add_subparsers(dest="command", required=True))
sys.exit(cmd_batch(parser.parse_args(sys.argv[1:])))
"""


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="python -m core")
    add_batch_parser(parser.add_subparsers(dest="command", required=True))
    return cmd_batch(parser.parse_args(["batch", *argv]))


def write_prompts(path: Path, n: int, tokens: int = 300, bad: bool = False) -> Path:
    rows = [json.dumps({"id": f"p{i}", "prompt": f"Write {tokens} tokens about thing {i}"}) for i in range(n)]
    if bad:
        rows.insert(1, json.dumps({"id": "oops", "prompt": "x", "max_tokens": "plenty"}))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def results(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def exact(rows: list[dict]) -> bool:
    return all(r["text"] == demo_document(r["spec"]["messages"][-1]["content"]) for r in rows)


def run_rows(db: Path) -> dict[str, tuple[str, float]]:
    with sqlite3.connect(db) as conn:
        return {row[0]: (row[1], row[2]) for row in conn.execute("SELECT id, status, updated_at FROM runs")}


def test_bad_rows_are_named_and_the_good_rows_answered(
    tmp_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = write_prompts(tmp_path / "p.jsonl", 4, bad=True)
    code = cli(str(prompts), "--provider", "demo", "--max-tokens", "128", "--out", str(tmp_path / "r.jsonl"))
    rows = results(tmp_path / "r.jsonl")
    assert "p.jsonl: line 2, column max_tokens" in capsys.readouterr().err
    assert (code, [r["item_id"] for r in rows], exact(rows)) == (1, ["p0", "p1", "p2", "p3"], True)


def test_a_clean_batch_exits_0_and_writes_summary_and_zip(tmp_db: Path, tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "p.jsonl", 3)
    out = tmp_path / "out"
    code = cli(
        str(prompts), "--provider", "demo", "--concurrency", "2", "--max-tokens", "128",
        "--out", f"{out}.jsonl", "--summary", f"{out}.csv", "--zip", f"{out}.zip",
    )  # fmt: skip
    csv_lines = Path(f"{out}.csv").read_text().splitlines()
    assert (code, len(csv_lines), Path(f"{out}.zip").stat().st_size > 0) == (0, 4, True)


def test_resuming_a_finished_batch_redoes_nothing(tmp_db: Path, tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "p.jsonl", 4)
    cli(str(prompts), "--provider", "demo", "--max-tokens", "128", "--out", str(tmp_path / "a.jsonl"))
    before = run_rows(tmp_db)
    code = cli(str(prompts), "--resume", "--out", str(tmp_path / "b.jsonl"))
    assert (code, run_rows(tmp_db)) == (0, before)
    assert results(tmp_path / "a.jsonl") == results(tmp_path / "b.jsonl")


def test_resuming_after_the_file_changed_is_refused(tmp_db: Path, tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "p.jsonl", 2)
    cli(str(prompts), "--provider", "demo", "--max-tokens", "128", "--out", str(tmp_path / "a.jsonl"))
    write_prompts(prompts, 3)
    with pytest.raises(UsageError, match="changed since batch"):
        cli(str(prompts), "--resume", "--out", str(tmp_path / "b.jsonl"))


def test_resuming_without_an_earlier_batch_is_refused(tmp_db: Path, tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "p.jsonl", 2)
    with pytest.raises(UsageError, match="without --resume first"):
        cli(str(prompts), "--resume")


def test_a_killed_batch_resumes_without_redoing_finished_items(tmp_db: Path, tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "p.jsonl", 24, tokens=400)
    Store(tmp_db).close()  # the schema exists before the child writes to it
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CONTINUUM_DB": str(tmp_db)}
    argv = ["batch", str(prompts), "--provider", "demo", "--demo-rate", "400", "--max-tokens", "150"]
    argv += ["--concurrency", "6", "--quiet", "--out", str(tmp_path / "never.jsonl")]
    proc = subprocess.Popen([sys.executable, "-c", CLI, *argv], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while sum(status == "finished" for status, _ in run_rows(tmp_db).values()) < 6:
            assert proc.poll() is None and time.monotonic() < deadline, "the batch ended before it was killed"
            time.sleep(0.05)  # polling the database, not waiting for a result
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = run_rows(tmp_db)
    finished_before = {k: v for k, v in before.items() if v[0] == "finished"}
    code = cli(str(prompts), "--resume", "--quiet", "--out", str(tmp_path / "r.jsonl"))
    after = run_rows(tmp_db)
    rows = results(tmp_path / "r.jsonl")
    assert any(status == "running" for status, _ in before.values())  # it really died mid-batch
    assert (code, {k: after[k] for k in finished_before}, len(after)) == (0, finished_before, 24)
    assert exact(rows) and len(rows) == 24


def test_progress_is_shown_on_stderr(
    tmp_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = write_prompts(tmp_path / "p.jsonl", 2)
    cli(str(prompts), "--provider", "demo", "--max-tokens", "128", "--out", str(tmp_path / "r.jsonl"))
    err = capsys.readouterr().err
    assert "2/2" in err and "2 finished, 0 failed" in err
