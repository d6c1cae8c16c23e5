"""Outputs are checked before the first request; key and model options say what is missing.

A path that cannot be written (a missing folder, a directory) is refused with exit 2
before anything is sent: the demo model's request counter stays at 0, so nothing
would have been billed. Real processes against the demo model on loopback.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.services.store import Store
from tests.clirun import REPO, cli, requests_seen

PROMPT = "Write 600 tokens about tide tables"


@pytest.fixture
def env(tmp_db: Path, clean_env: dict[str, str]) -> dict[str, str]:
    return {**clean_env, "CONTINUUM_DB": str(tmp_db), "PYTHONPATH": str(REPO)}


def bad_paths(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "a-folder").mkdir()
    return {"missing folder": tmp_path / "no" / "such" / "x.md", "directory": tmp_path / "a-folder"}


def run_args(url: str, *more: str) -> list[str]:
    return ["run", "--provider", "custom", "--base-url", url, "--model", "demo", "--prompt", PROMPT, *more]


@pytest.mark.parametrize("option", ["--output", "--transcript"])
@pytest.mark.parametrize("case", ["missing folder", "directory"])
def test_run_refuses_an_unwritable_output_before_the_first_request(
    option: str, case: str, env: dict[str, str], tmp_path: Path, demo_url
) -> None:
    url, path = demo_url(), bad_paths(tmp_path)[case]
    done = cli(*run_args(url, option, str(path), "--quiet"), env=env)
    assert (done.returncode, str(path) in done.stderr, "Traceback" in done.stderr, requests_seen(url)) == (
        2,
        True,
        False,
        0,
    )


@pytest.mark.parametrize("case", ["missing folder", "directory"])
def test_resume_refuses_an_unwritable_output_before_the_first_request(
    case: str, env: dict[str, str], tmp_db: Path, tmp_path: Path, demo_url
) -> None:
    cli(*run_args(demo_url(), "--max-tokens", "200", "--max-rounds", "1", "--quiet"), env=env)
    with Store(tmp_db) as store:
        (run,) = store.list_runs()
    url, path = demo_url(phase="resume"), bad_paths(tmp_path)[case]
    done = cli("runs", "resume", run.id, "--base-url", url, "--transcript", str(path), "--quiet", env=env)
    assert (done.returncode, str(path) in done.stderr, "Traceback" in done.stderr, requests_seen(url)) == (
        2,
        True,
        False,
        0,
    )


@pytest.mark.parametrize("case", ["missing folder", "directory"])
def test_export_refuses_an_unwritable_output_with_one_line(
    case: str, env: dict[str, str], tmp_db: Path, tmp_path: Path, demo_url
) -> None:
    cli(*run_args(demo_url(), "--quiet"), env=env)
    with Store(tmp_db) as store:
        (run,) = store.list_runs()
    path = bad_paths(tmp_path)[case]
    done = cli("runs", "export", run.id, "--output", str(path), env=env)
    assert (done.returncode, str(path) in done.stderr, "Traceback" in done.stderr) == (2, True, False)


@pytest.mark.parametrize("option", ["--out", "--summary", "--zip"])
@pytest.mark.parametrize("case", ["missing folder", "directory"])
def test_batch_refuses_an_unwritable_output_before_the_first_request(
    option: str, case: str, env: dict[str, str], tmp_path: Path, demo_url
) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"id": "a", "prompt": PROMPT}) + "\n")
    url, path = demo_url(), bad_paths(tmp_path)[case]
    done = cli(
        "batch", str(prompts), "--provider", "custom", "--base-url", url, "--model", "demo",
        option, str(path), "--quiet", env=env,
    )  # fmt: skip
    assert (done.returncode, str(path) in done.stderr, "Traceback" in done.stderr, requests_seen(url)) == (
        2,
        True,
        False,
        0,
    )


def test_an_unset_key_variable_is_named_and_nothing_is_sent(env: dict[str, str], demo_url) -> None:
    url = demo_url()
    done = cli(*run_args(url, "--api-key-env", "NO_SUCH_KEY_VAR", "--quiet"), env=env)
    assert (done.returncode, "NO_SUCH_KEY_VAR" in done.stderr, requests_seen(url)) == (2, True, 0)


def test_models_lists_a_custom_server_without_a_model(env: dict[str, str], demo_url) -> None:
    done = cli("models", "--provider", "custom", "--base-url", demo_url(), env=env)
    assert (done.returncode, "demo-32k" in done.stdout) == (0, True), done.stderr
