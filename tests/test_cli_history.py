"""A history that cannot be used: one readable line on stderr and exit 1, never a traceback.

Real cases: a file of random bytes, a directory, a read-only folder, a lock held by
another process. A read-only history can still be read, and ``run`` still answers
(saying once that the run is not saved).

The read-only folder (see :func:`tests.clirun.read_only`): tests run as root, whom
permissions do not stop, so as root the command runs in its own mount namespace with
the folder bind-mounted read-only (EROFS, for root too); as another user the folder is
``chmod 555`` (EACCES). SQLite meets both the same way: it can neither write the file
nor create the ``-wal``/``-shm`` files beside it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.demo import demo_document
from core.services.store import Store
from core.types import RunSpec
from tests import clirun
from tests.clirun import REPO, cli, hold_lock, requests_seen

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
