"""A history that cannot be used: one readable line on stderr and exit 1, never a traceback.

Real cases: a file of random bytes, a directory, a read-only folder, a lock held by
another process. A read-only history can still be read, and ``run`` still answers
(saying once that the run is not saved).

The read-only folder (see :func:`tests.clirun.read_only`): tests run as root, whom
permissions do not stop, so as root the command runs in its own mount namespace with
the folder bind-mounted read-only (EROFS, for root too); as another user the folder is
``chmod 555`` (EACCES). SQLite meets both the same way: it can neither write the file
nor create the ``-wal``/``-shm`` files beside it.

At the end, a usable one: ``runs show ID --round N [--curl]`` prints a stored round's
request as it was sent, and the curl command gets that round's text back from the demo.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.demo import demo_document
from core.services.round_requests import round_request
from core.services.store import Store
from core.types import RunResult, RunSpec
from tests import clirun
from tests.clirun import REPO, cli, hold_lock, requests_seen
from tests.test_round_requests import curl, streamed_text

PROMPT = "Write 300 tokens about harbour locks"


@pytest.fixture
def env(tmp_db: Path, clean_env: dict[str, str]) -> dict[str, str]:
    return {**clean_env, "CONTINUUM_DB": str(tmp_db), "PYTHONPATH": str(REPO)}


def run_args(url: str, *more: str) -> list[str]:
    return ["run", "--provider", "custom", "--base-url", url, "--model", "demo", "--prompt", PROMPT, *more]


def one_readable_line(stderr: str, path: Path) -> bool:
    lines = stderr.strip().splitlines()
    return len(lines) == 1 and str(path) in lines[0] and "Traceback" not in stderr


def saved_run(db: Path) -> str:
    with Store(db) as store:
        run_id = store.create_run(RunSpec(messages=[{"role": "user", "content": PROMPT}], title="Saved"))
        store.finish_run(
            run_id,
            spec=store.load(run_id).spec,
            status="finished",
            stop_reason="finished",
            error=None,
            finished_at=1.0,
        )
    return run_id


# ---------------------------------------------------------------- not a history


@pytest.fixture(params=["random bytes", "a directory"])
def unusable(request: pytest.FixtureRequest, tmp_db: Path, env: dict[str, str]) -> dict[str, str]:
    if request.param == "a directory":
        tmp_db.mkdir()
    else:
        tmp_db.write_bytes(os.urandom(8192))
    return env


def test_listing_an_unusable_history_is_one_line_and_exit_1(unusable: dict[str, str], tmp_db: Path) -> None:
    done = cli("runs", "list", env=unusable)
    assert (done.returncode, one_readable_line(done.stderr, tmp_db)) == (1, True), done.stderr


def test_a_run_with_an_unusable_history_stops_before_the_first_request(
    unusable: dict[str, str], tmp_db: Path, demo_url
) -> None:
    url = demo_url()
    done = cli(*run_args(url, "--quiet"), env=unusable)
    assert (done.returncode, one_readable_line(done.stderr, tmp_db), requests_seen(url)) == (1, True, 0), (
        done.stderr
    )


# ---------------------------------------------------------------- read-only


@pytest.fixture
def read_only(tmp_db: Path) -> Iterator[Callable[[], list[str]]]:
    """Call it to make the history's folder read-only (see tests.clirun.read_only)."""
    yield lambda: clirun.read_only(tmp_db.parent)
    tmp_db.parent.chmod(0o755)


def test_a_read_only_history_is_still_listed(env: dict[str, str], tmp_db: Path, read_only) -> None:
    saved_run(tmp_db)
    done = cli("runs", "list", env=env, prefix=read_only())
    assert (done.returncode, "Saved" in done.stdout) == (0, True), done.stderr


@pytest.mark.parametrize("history", ["saved runs", "no file yet"])
def test_a_run_with_a_read_only_history_answers_and_says_once_it_is_not_saved(
    history: str, env: dict[str, str], tmp_db: Path, tmp_path_factory, read_only, demo_url
) -> None:
    if history == "saved runs":
        saved_run(tmp_db)
    out = tmp_path_factory.mktemp("outputs") / "answer.md"  # outside the read-only folder
    done = cli(*run_args(demo_url(), "--output", str(out), "--quiet"), env=env, prefix=read_only())
    answer = out.read_text() if out.exists() else None
    assert (done.returncode, answer, done.stderr.count("not saved")) == (0, demo_document(PROMPT), 1), (
        done.stderr
    )


def test_deleting_from_a_read_only_history_is_one_line_and_exit_1(
    env: dict[str, str], tmp_db: Path, read_only
) -> None:
    run_id = saved_run(tmp_db)
    done = cli("runs", "delete", run_id, env=env, prefix=read_only())
    assert (done.returncode, one_readable_line(done.stderr, tmp_db)) == (1, True), done.stderr


def test_a_batch_with_a_read_only_history_stops_before_the_first_request(
    env: dict[str, str], tmp_db: Path, tmp_path_factory, read_only, demo_url
) -> None:
    saved_run(tmp_db)
    prompts = tmp_path_factory.mktemp("inputs") / "p.jsonl"
    prompts.write_text(json.dumps({"id": "a", "prompt": PROMPT}) + "\n")
    url = demo_url()
    done = cli(
        "batch", str(prompts), "--provider", "custom", "--base-url", url, "--model", "demo", "--quiet",
        env=env, prefix=read_only(),
    )  # fmt: skip
    assert (done.returncode, one_readable_line(done.stderr, tmp_db), requests_seen(url)) == (1, True, 0), (
        done.stderr
    )


# ---------------------------------------------------------------- locked by another process


def test_a_history_locked_by_another_process_is_still_listed(env: dict[str, str], tmp_db: Path) -> None:
    saved_run(tmp_db)
    with hold_lock(tmp_db):
        done = cli("runs", "list", env=env)
    assert (done.returncode, "Saved" in done.stdout) == (0, True), done.stderr


def test_a_run_with_a_locked_history_stops_before_the_first_request(
    env: dict[str, str], tmp_db: Path, demo_url
) -> None:
    saved_run(tmp_db)
    url = demo_url()
    with hold_lock(tmp_db):
        done = cli(*run_args(url, "--quiet"), env=env)
    assert (done.returncode, one_readable_line(done.stderr, tmp_db), requests_seen(url)) == (1, True, 0), (
        done.stderr
    )


def test_a_history_locked_in_rollback_journal_mode_is_one_line_and_exit_1(
    env: dict[str, str], tmp_db: Path
) -> None:
    saved_run(tmp_db)
    with hold_lock(tmp_db, journal_mode="delete"):
        done = cli("runs", "list", env=env)
    assert (done.returncode, one_readable_line(done.stderr, tmp_db)) == (1, True), done.stderr


# ---------------------------------------------------------------- a round's request


def stored_demo_run(env: dict[str, str], url: str) -> tuple[str, RunResult]:
    done = cli(*run_args(url, "--max-tokens", "100", "--quiet"), env=env)
    assert done.returncode == 0, done.stderr
    with Store(Path(env["CONTINUUM_DB"])) as store:
        run_id = store.list_runs()[0].id
        return run_id, store.load(run_id)


def test_runs_show_round_prints_the_body_as_sent(env: dict[str, str], demo_url) -> None:
    url = demo_url()
    run_id, result = stored_demo_run(env, url)
    done = cli("runs", "show", run_id[:8], "--round", "3", env=env)
    request = round_request(result, 3)
    assert done.returncode == 0, done.stderr
    assert done.stdout.encode() == request.data + b"\n" and json.loads(done.stdout) == request.body
    assert f"round 3: POST {url}/chat/completions" in done.stderr


def test_runs_show_round_curl_gets_the_rounds_text_back(env: dict[str, str], demo_url) -> None:
    run_id, result = stored_demo_run(env, demo_url())
    done = cli("runs", "show", run_id, "--round", "2", "--curl", env=env)
    second = result.rounds[1]
    assert done.returncode == 0 and '-H "Authorization: Bearer $API_KEY"' in done.stdout, done.stderr
    assert streamed_text(curl(done.stdout, "bash")) == second.text + second.held_back


def test_runs_show_curl_needs_a_round_in_the_run(env: dict[str, str], demo_url) -> None:
    run_id, result = stored_demo_run(env, demo_url())
    alone = cli("runs", "show", run_id, "--curl", env=env)
    beyond = cli("runs", "show", run_id, "--round", "99", env=env)
    assert (alone.returncode, "--round N" in alone.stderr) == (2, True), alone.stderr
    assert (beyond.returncode, f"rounds 1 to {len(result.rounds)}" in beyond.stderr) == (2, True)


def test_runs_resume_from_an_edited_file_goes_on_from_that_text_and_records_the_edit(
    env: dict[str, str], demo_url, tmp_path: Path
) -> None:
    url = demo_url()
    done = cli(*run_args(url, "--max-tokens", "100", "--max-rounds", "2", "--quiet"), env=env)
    assert done.returncode == 0, done.stderr
    with Store(Path(env["CONTINUUM_DB"])) as store:
        run_id = store.list_runs()[0].id
        before = store.load(run_id)
    assert before.stop_reason == "max_rounds"
    cut = before.text[: len(before.text) - 40]  # the user cut the end: a prefix of the demo's document
    edited_file = tmp_path / "edited.md"
    edited_file.write_text(cut, encoding="utf-8")
    resumed = cli("runs", "resume", run_id, "--from-file", str(edited_file), "--quiet", env=env)
    assert resumed.returncode == 0, resumed.stderr
    with Store(Path(env["CONTINUUM_DB"])) as store:
        after = store.load(run_id)
    assert after.text.startswith(cut) and len(after.text) > len(before.text)
    assert demo_document(PROMPT).startswith(after.text)  # the demo continued exactly from the cut
    assert len(after.edits) == 1 and after.edits[0].text_before == before.text


def test_runs_resume_from_a_missing_file_is_a_usage_error_before_anything_is_sent(
    env: dict[str, str], demo_url, tmp_path: Path
) -> None:
    run_id, _ = stored_demo_run(env, demo_url())
    done = cli("runs", "resume", run_id, "--from-file", str(tmp_path / "nope.md"), env=env)
    assert done.returncode == 2 and "cannot read --from-file" in done.stderr, done.stderr
