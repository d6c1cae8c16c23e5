"""Batch input files: CSV and JSONL rows become items; bad rows are named by line and column."""

from __future__ import annotations

import json

import pytest

from core.services.batch import BatchItem, InputError, check_items, parse_items
from core.types import RunSpec


def jsonl(*rows: object) -> str:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n"


def where(errors: list) -> list[tuple[int, str | None]]:
    return [(e.line, e.column) for e in errors]


# ---------------------------------------------------------------- JSONL


def test_jsonl_rows_become_items_with_their_overrides() -> None:
    parsed = parse_items(
        jsonl(
            {
                "id": "a",
                "prompt": "Write about owls",
                "max_tokens": 300,
                "temperature": 0.2,
                "model": "demo-32k",
            }
        ),
        "p.jsonl",
    )
    item = parsed.items[0]
    assert (item.id, item.prompt, item.overrides) == (
        "a",
        "Write about owls",
        {"max_tokens": 300, "temperature": 0.2, "model": "demo-32k"},
    )


def test_jsonl_extra_keys_are_kept_as_meta() -> None:
    parsed = parse_items(jsonl({"id": "a", "prompt": "p", "category": "birds", "sku": 17}), "p.jsonl")
    assert parsed.items[0].meta == {"category": "birds", "sku": 17}


def test_jsonl_bad_rows_are_named_and_the_good_rows_kept() -> None:
    parsed = parse_items(
        jsonl(
            {"id": "ok1", "prompt": "first"},
            "{not json",
            {"id": "no-prompt"},
            {"id": "bad-tokens", "prompt": "p", "max_tokens": "lots"},
            {"id": "hot", "prompt": "p", "temperature": 3},
            {"id": "weird", "prompt": "p", "strategy": "telepathy"},
            ["a", "list"],
            {"id": "ok2", "prompt": "last"},
        ),
        "p.jsonl",
    )
    assert [i.id for i in parsed.items] == ["ok1", "ok2"]
    assert where(parsed.errors) == [
        (2, None),
        (3, "prompt"),
        (4, "max_tokens"),
        (5, "temperature"),
        (6, "strategy"),
        (7, None),
    ]


def test_a_row_error_reads_as_line_column_and_problem() -> None:
    parsed = parse_items(jsonl({"prompt": "p"}, {"prompt": "q", "max_rounds": 0}), "p.jsonl")
    assert str(parsed.errors[0]) == "line 2, column max_rounds: expected a whole number ≥ 1, got 0"


def test_a_duplicate_id_names_the_first_line_it_was_on() -> None:
    parsed = parse_items(jsonl({"id": "x", "prompt": "p"}, {"id": "x", "prompt": "q"}), "p.jsonl")
    assert (where(parsed.errors), "line 1" in parsed.errors[0].message) == ([(2, "id")], True)


def test_a_missing_id_is_the_line_number() -> None:
    parsed = parse_items(jsonl({"prompt": "p"}, "", {"prompt": "q"}), "p.jsonl")
    assert [i.id for i in parsed.items] == ["1", "3"]


def test_blank_override_values_mean_the_shared_setting() -> None:
    parsed = parse_items(jsonl({"id": "a", "prompt": "p", "max_tokens": None, "model": ""}), "p.jsonl")
    assert parsed.items[0].overrides == {}


# ---------------------------------------------------------------- CSV


def test_csv_rows_become_items() -> None:
    parsed = parse_items("id,prompt,system,max_rounds\nx,Write a poem,Be brief,3\n", "p.csv")
    item = parsed.items[0]
    assert (item.id, item.prompt, item.system, item.overrides) == (
        "x",
        "Write a poem",
        "Be brief",
        {"max_rounds": 3},
    )


def test_csv_line_numbers_count_multi_line_prompts() -> None:
    text = 'id,prompt,max_tokens\na,"line one\nline two\nline three",10\nb,short,many\n'
    parsed = parse_items(text, "p.csv")
    assert (parsed.items[0].prompt.count("\n"), where(parsed.errors)) == (2, [(5, "max_tokens")])


def test_csv_header_names_are_matched_without_case_or_spaces() -> None:
    parsed = parse_items(" ID , Prompt ,MAX_TOKENS\nq,hello,64\n", "p.csv")
    assert (parsed.items[0].id, parsed.items[0].overrides) == ("q", {"max_tokens": 64})


def test_csv_separated_by_semicolons_is_read() -> None:
    parsed = parse_items("id;prompt;temperature\na;Write, with commas, please;0.5\n", "p.csv")
    assert (parsed.items[0].prompt, parsed.items[0].overrides) == (
        "Write, with commas, please",
        {"temperature": 0.5},
    )


def test_csv_without_a_prompt_column_is_refused_naming_the_header() -> None:
    with pytest.raises(InputError, match="line 1") as info:
        parse_items("id,question\na,b\n", "p.csv")
    assert "question" in str(info.value)


def test_csv_row_with_more_cells_than_the_header_is_a_row_error() -> None:
    parsed = parse_items("id,prompt\na,ok\nb,too,many\n", "p.csv")
    assert ([i.id for i in parsed.items], [e.line for e in parsed.errors]) == (["a"], [3])


def test_csv_extra_columns_are_kept_as_meta() -> None:
    parsed = parse_items("id,prompt,language\na,Bonjour,fr\n", "p.csv")
    assert parsed.items[0].meta == {"language": "fr"}


def test_csv_with_a_byte_order_mark_is_read() -> None:
    parsed = parse_items("\ufeffid,prompt\na,b\n".encode(), "p.csv")
    assert parsed.items[0].id == "a"


# ---------------------------------------------------------------- files


def test_text_that_is_not_utf8_is_refused_naming_the_line() -> None:
    with pytest.raises(InputError, match="line 2"):
        parse_items(b"id,prompt\na,\xff\xfe broken\n", "p.csv")


def test_the_format_is_sniffed_without_an_extension() -> None:
    assert (parse_items(jsonl({"prompt": "p"})).format, parse_items("prompt\nhello\n").format) == (
        "jsonl",
        "csv",
    )


def test_items_survive_a_round_trip_through_a_dict() -> None:
    item = parse_items(
        jsonl({"id": "a", "prompt": "p", "system": "s", "max_tokens": 5, "x": 1}), "p.jsonl"
    ).items[0]
    assert type(item).from_dict(json.loads(json.dumps(item.to_dict()))) == item


def test_rows_that_cannot_run_with_the_settings_become_row_errors_and_the_others_stay() -> None:
    settings = RunSpec(messages=[], base_url="http://127.0.0.1:1/v1", model="demo", context_window=8192)
    items = [
        BatchItem(id="ok", prompt="Write 100 tokens about owls", line=2),
        BatchItem(id="huge", prompt="word " * 40_000, line=3),
        BatchItem(id="zero", prompt="hi", overrides={"max_tokens": 0}, line=4),
    ]
    good, errors = check_items(items, settings)
    assert [i.id for i in good] == ["ok"]
    assert [(e.line, e.column) for e in errors] == [(3, "prompt"), (4, "max_tokens")]
    assert "8,192" in errors[0].message and "window" in errors[0].message
