"""Downloads of a run (core/services/export.py)."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest

from core.services import export
from core.services.plain import plain_text
from core.types import ErrorInfo, Prices, Round, RunResult, RunSpec


def make_result(prompt: str = "Write a history of Rome in 5000 tokens", **spec_fields: object) -> RunResult:
    spec = RunSpec(messages=[{"role": "user", "content": prompt}], prices=Prices(1.0, 2.0), **spec_fields)
    rounds = [
        Round(1, text="# Rome\n\nIt began ", finish_reason="length", prompt_tokens=10, completion_tokens=6),
        Round(
            2,
            text="on seven hills — ünïcode.",
            finish_reason="stop",
            prompt_tokens=16,
            completion_tokens=7,
            prompt_estimated=True,
            seam_flags=[{"kind": "overlap", "message": "x"}],
        ),
    ]
    started = time.mktime((2025, 11, 26, 9, 30, 0, 0, 0, -1))
    return RunResult(
        spec=spec, rounds=rounds, stop_reason="finished", started_at=started, finished_at=started + 3
    )


def test_markdown_holds_exactly_the_assembled_answer_and_text_its_words_without_the_syntax():
    result = make_result()
    assert export.to_markdown(result).decode("utf-8") == "# Rome\n\nIt began on seven hills — ünïcode."
    assert export.to_text(result).decode("utf-8") == "Rome\n\nIt began on seven hills — ünïcode."


PLAIN_CASES = [
    ("# Title #\n\n## Sub", "Title\n\nSub"),
    ("Some **bold**, __strong__, *it*, _em_ and ~~gone~~.", "Some bold, strong, it, em and gone."),
    ("snake_case_name and 2*3*4 stay", "snake_case_name and 2*3*4 stay"),
    ("`code **x**` and ``a ` b``", "code **x** and a ` b"),
    ("[a link](https://x.y) and [https://x.y](https://x.y)", "a link (https://x.y) and https://x.y"),
    ("![a chart](c.png)", "a chart"),
    ("> quoted\n>> deeper", "quoted\ndeeper"),
    ("- item\n1. first\n| a | b |", "- item\n1. first\n| a | b |"),
    ("```python\nx = **1**  # kept\n```\nafter", "x = **1**  # kept\nafter"),
    ("~~~\n```\n~~~", "```"),
    ("above\n---\nbelow", "above\n\nbelow"),
    ("a <!-- note --> b", "a  b"),
]


@pytest.mark.parametrize(("markdown", "text"), PLAIN_CASES)
def test_plain_text_drops_the_markdown_syntax_and_keeps_every_word(markdown: str, text: str):
    assert plain_text(markdown) == text


def test_json_is_the_transcript():
    result = make_result()
    result.error = ErrorInfo(kind="StreamInterrupted", message="gone")
    assert json.loads(export.to_json(result)) == json.loads(json.dumps(result.to_dict()))


def test_json_keeps_non_ascii_readable():
    assert "ünïcode" in export.to_json(make_result()).decode("utf-8")


def test_csv_has_a_header_and_one_row_per_round():
    rows = list(csv.DictReader(io.StringIO(export.to_csv(make_result()).decode("utf-8"))))
    assert [r["round"] for r in rows] == ["1", "2"]
    assert rows[1]["input_estimated"] == "True" and rows[1]["seam_flags"] == "overlap"


def test_csv_columns_are_the_round_table_columns():
    header = export.to_csv(make_result()).decode("utf-8").splitlines()[0]
    assert header.split(",") == list(export.ROUND_COLUMNS)


def test_round_rows_mark_estimates():
    rows = export.round_rows(make_result())
    assert [(r["input_estimated"], r["output_estimated"]) for r in rows] == [(False, False), (True, False)]


def test_round_rows_say_where_the_counts_came_from():
    refused = Round(
        3,
        completion_estimated=True,
        prompt_estimated=True,
        seam_flags=[{"kind": "usage_ignored", "message": "247 completion tokens for max_tokens 200"}],
    )
    result = make_result()
    result.rounds.append(refused)
    assert [r["token_source"] for r in export.round_rows(result)] == [
        "server",
        "partly estimated",
        "estimated: server's refused",
    ]


def test_download_name_is_the_prompt_slug_and_the_date():
    name = export.download_name(make_result(), "md")
    assert name == "write-a-history-of-rome-in-5000-tokens-20251126-0930.md"


def test_download_name_prefers_the_title():
    name = export.download_name(make_result(title="Roma: a draft"), "json")
    assert name.startswith("roma-a-draft-") and name.endswith(".json")


def test_download_name_survives_a_prompt_without_letters():
    assert export.download_name(make_result(prompt="¿¡…!?"), "txt").startswith("continuum-run-")


def test_long_prompts_give_short_slugs():
    assert len(export.slugify("word " * 100)) <= 48


def test_unknown_formats_are_refused_with_the_choices():
    with pytest.raises(ValueError, match="md, txt, json, csv"):
        export.export(make_result(), "pdf")
