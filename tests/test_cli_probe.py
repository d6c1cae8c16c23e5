"""``python -m core probe``: every strategy probed, a definite verdict each, one recommended."""

from __future__ import annotations

from pathlib import Path

import pytest
from clirun import cli


@pytest.fixture
def env(tmp_db: Path, clean_env: dict[str, str]) -> dict[str, str]:
    return {**clean_env, "CONTINUUM_DB": str(tmp_db)}


def verdicts(stdout: str) -> dict[str, str]:
    names = ("prefill", "vllm", "prefix", "completions", "instruction")
    return {
        line.split()[0]: line.split()[1]
        for line in stdout.splitlines()
        if line.split()[:1] in ([n] for n in names)
    }


def test_probe_recommends_completions_with_a_template_where_the_prefill_is_ignored(demo_url, env) -> None:
    url = demo_url(prefill="ignored")
    done = cli(
        "probe", "--provider", "custom", "--base-url", url, "--model", "demo", "--template", "llama3", env=env
    )
    assert done.returncode == 0, done.stderr
    assert verdicts(done.stdout) == {
        "prefill": "ignored",
        "vllm": "ignored",
        "prefix": "ignored",
        "completions": "honoured",
        "instruction": "honoured",
    }
    assert "recommended: completions" in done.stdout


def test_probe_without_a_template_says_completions_needs_one(demo_url, env) -> None:
    done = cli("probe", "--provider", "custom", "--base-url", demo_url(), "--model", "demo", env=env)
    assert "completions  skipped" in done.stdout and "recommended: prefill" in done.stdout
