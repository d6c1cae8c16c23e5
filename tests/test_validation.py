"""Every run parameter is checked once, in core.continuation.validation, and refused with a readable message.

The command line goes through ``core.cli.main`` in-process (argparse types and
``validate_spec`` before anything is sent); the pages' messages are in
tests/test_pages_studio.py; the engine's own check, and that each run is checked once, in
tests/test_validation_once.py.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.bounds import check, parse_number
from core.cli import main
from core.continuation import engine
from core.continuation.validation import MAX_PROMPT_CHARS, spec_problems, validate_spec
from core.services.jobs import JobManager
from core.types import RunFinished, RunSpec
from core.wire.client import Timeouts
from core.wire.errors import ConfigError
from tests.loopback import ScriptedServer, answer

TEN_MB = 10 * 1024 * 1024


def spec(prompt: str = "Write 200 tokens about tea", **fields: object) -> RunSpec:
    return RunSpec(messages=[{"role": "user", "content": prompt}], **fields)  # type: ignore[arg-type]


def messages(s: RunSpec) -> list[str]:
    return [str(p) for p in spec_problems(s)]


# ---------------------------------------------------------------- one parameter


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("max_tokens", 0, "Max tokens per round must be at least 1 (got 0)."),
        ("max_tokens", -5, "Max tokens per round must be at least 1 (got -5)."),
        ("max_tokens", 2.5, "Max tokens per round must be a whole number (got 2.5)."),
        ("max_rounds", 0, "Max rounds must be at least 1 (got 0)."),
        ("target_tokens", -1, "The target length must be at least 1 tokens (got -1)."),
        ("context_window", 0, "The context window must be at least 1 tokens (got 0)."),
        ("cost_limit", 0, "The cost limit must be more than $0 (got 0)."),
        ("temperature", 2.5, "Temperature must be between 0 and 2 (got 2.5)."),
        ("temperature", -0.1, "Temperature must be between 0 and 2 (got -0.1)."),
        ("top_p", 0, "top_p must be more than 0 (got 0)."),
        ("connect_timeout", 0, "The connect timeout must be more than 0 s (got 0)."),
        ("idle_timeout", -1, "The idle timeout must be more than 0 s (got -1)."),
        ("round_timeout", math.inf, "The round timeout must be a finite number (got inf)."),
        ("round_timeout", 100_000, "The round timeout must be at most 86,400 s (got 100,000)."),
        ("concurrency", 0, "Concurrency must be at least 1 (got 0)."),
        ("max_rounds", "ten", "Max rounds must be a whole number (got 'ten')."),
    ],
)
def test_a_bad_value_is_refused_with_its_name_its_limit_and_what_was_given(
    name: str, value: object, message: str
) -> None:
    assert check(name, value) == message


def test_values_inside_the_limits_pass() -> None:
    assert [check("max_tokens", 1), check("temperature", 0), check("idle_timeout", 0.05)] == [None] * 3


def test_text_that_is_not_a_number_is_named_in_the_message() -> None:
    with pytest.raises(ValueError, match=r"must be a number \(got 'soon'\)"):
        parse_number("idle_timeout", "soon")


@pytest.mark.parametrize("field", ["connect", "idle", "round"])
@pytest.mark.parametrize("value", [0, -2.0, math.nan])
def test_a_timeout_that_is_not_a_positive_number_is_a_config_error(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"The {field} timeout must be"):
        Timeouts(**{field: value})


# ---------------------------------------------------------------- the whole spec


@pytest.mark.parametrize("prompt", ["", "   \n\t "])
def test_an_empty_or_blank_prompt_is_refused(prompt: str) -> None:
    assert messages(spec(prompt)) == ["The prompt is empty. Write what the model should answer."]


def test_every_problem_of_a_spec_is_listed_at_once() -> None:
    bad = spec("", max_tokens=0, max_rounds=-1, target_tokens=0, temperature=3.0, strategy="telepathy")
    fields = [p.field for p in spec_problems(bad)]
    assert fields == ["max_tokens", "max_rounds", "target_tokens", "temperature", "strategy", "prompt"]
    with pytest.raises(ConfigError, match=r"^6 settings are not valid: Max tokens per round"):
        validate_spec(bad)


def test_a_prompt_longer_than_the_window_is_refused_with_the_numbers_and_what_to_do() -> None:
    (problem,) = messages(spec("x" * 30_000, model="demo", context_window=8192))
    assert problem.startswith(
        "The prompt is about 10,516 tokens (30,000 characters); demo's context window is 8,192"
    )
    assert "Shorten the prompt to under about 22,902 characters, or choose a model with a larger" in problem
    assert "Nothing was sent." in problem


def fitting_chars(problem: str) -> int:
    found = re.search(r"under about ([\d,]+) characters", problem)
    assert found is not None
    return int(found.group(1).replace(",", ""))


def test_the_window_check_refuses_exactly_what_the_engine_would_not_send(demo_server: str) -> None:
    """At the size the message advises the engine sends a round; a little more and the engine's own
    check refuses it with the same words, sending nothing (tests/test_validation_once.py counts)."""
    fit = fitting_chars(messages(spec("x" * 30_000, context_window=8192))[0])
    fits = spec("x" * fit, base_url=demo_server, context_window=8192, max_rounds=1)
    too_big = spec("x" * (fit + 40), base_url=demo_server, context_window=8192, max_rounds=1)
    assert (spec_problems(fits), len(spec_problems(too_big))) == ([], 1)
    ends = [e for s in (fits, too_big) for e in engine.run(s) if isinstance(e, RunFinished)]
    assert [(e.stop_reason, len(e.result.rounds)) for e in ends] == [("max_rounds", 1), ("error", 0)]
    assert ends[1].error is not None and ends[1].error.message == str(messages(too_big)[0])


def test_a_10_mb_prompt_is_refused_by_size_even_when_the_window_is_unknown() -> None:
    (problem,) = messages(spec("y" * TEN_MB, context_window=None))
    assert problem.startswith(
        f"The prompt is 10,485,760 characters (10.5 MB); Continuum sends at most {MAX_PROMPT_CHARS:,}"
    )


def test_a_character_that_cannot_be_encoded_is_refused_with_its_position() -> None:
    (problem,) = messages(spec("ok \ud800 not ok"))
    assert "cannot be sent (at position 3)" in problem


def test_the_job_manager_refuses_an_invalid_spec_before_starting_anything() -> None:
    manager = JobManager()
    with pytest.raises(ConfigError, match="Max rounds must be at least 1"):
        manager.start(spec(max_rounds=0))
    assert manager.running() == []


# ---------------------------------------------------------------- command line


def cli_error(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Exit status and stderr of ``python -m core …`` run in this process."""
    try:
        status = main(list(argv))
    except SystemExit as exc:  # argparse
        status = int(exc.code or 0)
    return status, capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["run", "--max-tokens", "0"],
            "argument --max-tokens: Max tokens per round must be at least 1 (got 0).",
        ),
        (["run", "--max-rounds", "-3"], "argument --max-rounds: Max rounds must be at least 1 (got -3)."),
        (["run", "--target-tokens", "0"], "argument --target-tokens: The target length must be at least 1"),
        (
            ["run", "--context-window", "-1"],
            "argument --context-window: The context window must be at least 1",
        ),
        (["run", "--cost-limit", "0"], "argument --cost-limit: The cost limit must be more than $0 (got 0)."),
        (
            ["run", "--temperature", "9"],
            "argument --temperature: Temperature must be between 0 and 2 (got 9).",
        ),
        (
            ["run", "--connect-timeout", "0"],
            "argument --connect-timeout: The connect timeout must be more than 0 s",
        ),
        (["run", "--idle-timeout", "-1"], "argument --idle-timeout: The idle timeout must be more than 0 s"),
        (["run", "--round-timeout", "soon"], "argument --round-timeout: The round timeout must be a number"),
        (
            ["runs", "resume", "abc", "--round-timeout", "0"],
            "argument --round-timeout: The round timeout must be",
        ),
        (
            ["batch", "in.csv", "--concurrency", "0"],
            "argument --concurrency: Concurrency must be at least 1 (got 0).",
        ),
        (
            ["batch", "in.csv", "--idle-timeout", "0"],
            "argument --idle-timeout: The idle timeout must be more",
        ),
        (
            ["models", "--connect-timeout", "-5"],
            "argument --connect-timeout: The connect timeout must be more",
        ),
    ],
)
def test_a_bad_flag_exits_2_with_the_rule_it_broke(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    if argv[0] == "run":
        argv = [*argv, "--prompt", "hi", "--provider", "demo"]
    status, err = cli_error(capsys, *argv)
    assert status == 2 and message in err and "Traceback" not in err


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    """A server that would answer; the tests check it was never asked."""
    with ScriptedServer(answer("never sent")) as server:
        yield server


def run_against(server: ScriptedServer, prompt_file: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--provider",
        "custom",
        "--base-url",
        server.base_url,
        "--model",
        "m",
        "--prompt-file",
        str(prompt_file),
        "--no-save",
        *extra,
    ]


def test_a_prompt_longer_than_the_window_is_refused_before_sending(
    capsys: pytest.CaptureFixture[str], scripted: ScriptedServer, tmp_path: Path, clean_env
) -> None:
    prompt = tmp_path / "long.txt"
    prompt.write_text("word " * 8000, encoding="utf-8")
    status, err = cli_error(capsys, *run_against(scripted, prompt, "--context-window", "8192"))
    assert status == 2 and scripted.requests == []
    assert "The prompt is about 14,016 tokens (40,000 characters); m's context window is 8,192 tokens" in err


def test_a_10_mb_prompt_file_is_refused_before_sending(
    capsys: pytest.CaptureFixture[str], scripted: ScriptedServer, tmp_path: Path, clean_env
) -> None:
    prompt = tmp_path / "huge.txt"
    prompt.write_bytes(b"z" * TEN_MB)
    status, err = cli_error(capsys, *run_against(scripted, prompt))
    assert status == 2 and scripted.requests == []
    assert "error: The prompt is 10,485,760 characters (10.5 MB)" in err


def test_a_prompt_file_that_is_not_utf8_is_named_with_the_offending_byte(
    capsys: pytest.CaptureFixture[str], scripted: ScriptedServer, tmp_path: Path, clean_env
) -> None:
    prompt = tmp_path / "latin1.txt"
    prompt.write_bytes("Résumé".encode("latin-1"))
    status, err = cli_error(capsys, *run_against(scripted, prompt))
    assert status == 2 and scripted.requests == []
    assert "is not UTF-8 text (byte 0xe9 at offset 1); save it as UTF-8" in err


def test_a_blank_prompt_file_is_refused(
    capsys: pytest.CaptureFixture[str], scripted: ScriptedServer, tmp_path: Path, clean_env
) -> None:
    prompt = tmp_path / "blank.txt"
    prompt.write_text(" \n\n\t", encoding="utf-8")
    status, err = cli_error(capsys, *run_against(scripted, prompt))
    assert status == 2 and scripted.requests == [] and "the prompt is empty" in err
