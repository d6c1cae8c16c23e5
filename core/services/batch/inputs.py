"""Batch input: CSV or JSONL rows → :class:`BatchItem` objects, bad rows → :class:`RowError`.

One item per row: ``id`` (optional: the row's line number when absent),
``prompt`` (required), ``system`` (optional), and per-item overrides of the
shared settings: ``max_tokens``, ``max_rounds``, ``target_tokens``, ``model``,
``temperature``, ``strategy``. Any other column or key is kept as ``meta`` and
travels to the results untouched.

A bad row never stops the good ones: :func:`parse_items` returns every good
item and one :class:`RowError` per problem, each naming the line and the column
(``line 7, column max_tokens: expected a whole number ≥ 1, got 'abc'``). Only a
file that cannot be read as a whole (not UTF-8, no ``prompt`` column) raises
:class:`InputError`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.types import STRATEGIES
from core.wire.errors import ConfigError

Format = Literal["csv", "jsonl"]

# Override fields an item may set, with their parser.
OVERRIDES: tuple[str, ...] = ("max_tokens", "max_rounds", "target_tokens", "model", "temperature", "strategy")
KNOWN_FIELDS: tuple[str, ...] = ("id", "prompt", "system", *OVERRIDES)
MAX_ID_CHARS = 200


class InputError(ConfigError):
    """The input file as a whole cannot be read (bad encoding, no prompt column, empty)."""


@dataclass(frozen=True)
class RowError:
    """One problem with one row: where it is and what is wrong."""

    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class BatchItem:
    """One prompt of a batch. ``overrides`` hold only the fields the row set."""

    id: str
    prompt: str
    system: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    line: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "prompt": self.prompt,
            "system": self.system,
            "overrides": dict(self.overrides),
            "meta": dict(self.meta),
            "line": self.line,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchItem:
        return cls(
            id=str(data["id"]),
            prompt=str(data["prompt"]),
            system=data.get("system"),
            overrides=dict(data.get("overrides") or {}),
            meta=dict(data.get("meta") or {}),
            line=int(data.get("line") or 0),
        )


@dataclass(frozen=True)
class ParsedInput:
    """The good items, in file order, and the problems found."""

    items: list[BatchItem]
    errors: list[RowError]
    format: Format


# ---------------------------------------------------------------- field parsers


class _Bad(ValueError):
    pass


def _whole(value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool):
        raise _Bad(f"expected a whole number ≥ {minimum}, got {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value.strip().replace("_", "").replace(",", ""))
        except ValueError:
            raise _Bad(f"expected a whole number ≥ {minimum}, got {value!r}") from None
    else:
        raise _Bad(f"expected a whole number ≥ {minimum}, got {value!r}")
    if number < minimum:
        raise _Bad(f"expected a whole number ≥ {minimum}, got {number}")
    return number


def _temperature(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Bad(f"expected a number between 0 and 2, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise _Bad(f"expected a number between 0 and 2, got {value!r}") from None
    if not 0.0 <= number <= 2.0:
        raise _Bad(f"expected a number between 0 and 2, got {number:g}")
    return number


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _Bad(f"expected text, got {type(value).__name__} {value!r}")
    if not value.strip():
        raise _Bad("is empty")
    return value.strip()


def _strategy(value: Any) -> str:
    text = _text(value).lower()
    if text not in STRATEGIES:
        raise _Bad(f"unknown strategy {value!r}; choose one of {', '.join(STRATEGIES)}")
    return text


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "max_tokens": _whole,
    "max_rounds": _whole,
    "target_tokens": _whole,
    "model": _text,
    "temperature": _temperature,
    "strategy": _strategy,
}


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _item_from_fields(
    values: dict[str, Any], line: int, seen: dict[str, int], errors: list[RowError]
) -> BatchItem | None:
    """One row's fields → an item, or None (with its errors appended)."""
    problems: list[RowError] = []
    prompt = values.get("prompt")
    if _blank(prompt):
        problems.append(RowError(line, "prompt", "the prompt is missing or empty"))
    elif not isinstance(prompt, str):
        problems.append(RowError(line, "prompt", f"expected text, got {type(prompt).__name__} {prompt!r}"))
    raw_id = values.get("id")
    item_id = str(line) if _blank(raw_id) else str(raw_id).strip()
    if isinstance(raw_id, dict | list | bool):
        problems.append(RowError(line, "id", f"expected text or a number, got {raw_id!r}"))
    elif len(item_id) > MAX_ID_CHARS:
        problems.append(RowError(line, "id", f"is longer than {MAX_ID_CHARS} characters"))
    elif item_id in seen:
        problems.append(RowError(line, "id", f"duplicate id {item_id!r} (first on line {seen[item_id]})"))
    system = values.get("system")
    if not _blank(system) and not isinstance(system, str):
        problems.append(RowError(line, "system", f"expected text, got {type(system).__name__} {system!r}"))
    overrides: dict[str, Any] = {}
    for name, parse in _PARSERS.items():
        value = values.get(name)
        if _blank(value):
            continue
        try:
            overrides[name] = parse(value)
        except _Bad as exc:
            problems.append(RowError(line, name, str(exc)))
    if problems:
        errors.extend(problems)
        return None
    seen[item_id] = line
    meta = {k: v for k, v in values.items() if k not in KNOWN_FIELDS}
    return BatchItem(
        id=item_id,
        prompt=str(prompt),
        system=None if _blank(system) else str(system),
        overrides=overrides,
        meta=meta,
        line=line,
    )


# ---------------------------------------------------------------- formats


def _jsonl_rows(text: str, errors: list[RowError]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            errors.append(RowError(number, None, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        if not isinstance(value, dict):
            errors.append(RowError(number, None, f"expected a JSON object, got {type(value).__name__}"))
            continue
        yield number, {str(k).strip().lower(): v for k, v in value.items()}


def _csv_rows(text: str, errors: list[RowError]) -> Iterator[tuple[int, dict[str, Any]]]:
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count)  # the header's separator (ties: the comma)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise InputError(f"The CSV header on line 1 cannot be read: {exc}.") from None
    names = [h.strip().lower() for h in header]
    if "prompt" not in names:
        raise InputError(
            f"The CSV has no 'prompt' column (line 1 has: {', '.join(repr(h) for h in header) or 'nothing'}).",
            "Name the columns on the first line: id, prompt, and optionally system, max_tokens, max_rounds, "
            "target_tokens, model, temperature, strategy.",
        )
    end = reader.line_num
    while True:
        start = end + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            errors.append(RowError(start, None, f"cannot be read as CSV: {exc}"))
            end = reader.line_num
            continue
        end = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(names):
            extra = row[len(names) :]
            if any(cell.strip() for cell in extra):
                errors.append(
                    RowError(
                        start, f"{len(names) + 1}", f"has {len(row)} cells but the header names {len(names)}"
                    )
                )
                continue
        yield start, {name: cell for name, cell in zip(names, row, strict=False) if name}


def detect_format(text: str, name: str | None = None) -> Format:
    """By the file name's extension, else by the first character (``{`` → JSONL)."""
    suffix = Path(name).suffix.lower() if name else ""
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".tsv", ".txt") and suffix:
        return "csv"
    return "jsonl" if text.lstrip().startswith("{") else "csv"


def decode(data: bytes | str, name: str | None = None) -> str:
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{name or 'The input'} is not UTF-8 text (line {line}, byte {exc.start}).",
            "Save the file as UTF-8 (CSV UTF-8 in spreadsheet programs).",
        ) from None


def parse_items(data: bytes | str, name: str | None = None, fmt: Format | None = None) -> ParsedInput:
    """Parse a CSV or JSONL batch file (format from ``fmt``, else the name, else sniffed)."""
    text = decode(data, name)
    chosen = fmt or detect_format(text, name)
    errors: list[RowError] = []
    items: list[BatchItem] = []
    seen: dict[str, int] = {}
    rows = _jsonl_rows(text, errors) if chosen == "jsonl" else _csv_rows(text, errors)
    for line, values in rows:
        item = _item_from_fields(values, line, seen, errors)
        if item is not None:
            items.append(item)
    errors.sort(key=lambda e: e.line)
    return ParsedInput(items=items, errors=errors, format=chosen)


def read_items(path: str | Path) -> ParsedInput:
    """:func:`parse_items` on a file."""
    target = Path(path)
    try:
        data = target.read_bytes()
    except OSError as exc:
        raise InputError(f"Cannot read {target}: {exc.strerror or exc}.", "Check the path.") from None
    return parse_items(data, target.name)
