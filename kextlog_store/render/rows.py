"""Rows: the results of `kextlog sql`, and records in the machine formats:
an aligned table, JSON objects, CSV that standard readers read back."""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TextIO

from .formats import SqlFormat
from .text import escape, json_text, paint


def truncation_note(written: int, limit: str, max_bytes: str) -> str:
    """What `kextlog sql` says on stderr when limit (--max-rows or
    --max-bytes, given as max_bytes) cut its output short."""
    if limit == "--max-rows":
        return f"kextlog: stopped after {written:,} rows: raise --max-rows (0 for all)"
    return (
        f"kextlog: stopped after {written:,} rows, at --max-bytes {max_bytes}: "
        "raise --max-bytes (0 for no limit)"
    )


def write_rows(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    output: SqlFormat,
    out: TextIO,
    *,
    header: bool = True,
    terminal: bool = False,
    max_bytes: int | None = None,
) -> int:
    """Rows of `kextlog sql`: an aligned table, JSON objects (one per line,
    or indented), or CSV with a header.  A repeated column name becomes
    name_2, ... as a JSON key; blobs are written as x'hex'.  terminal: out
    is one (CSV is escaped too, see write_records).

    max_bytes: the most that is written (UTF-8 bytes; None for no limit):
    the rows are written whole up to the first that would go past it.
    Returns how many rows were written."""
    if output is SqlFormat.TABLE:
        texts = _table_texts(columns, list(rows), header=header)
    elif output is SqlFormat.CSV:
        texts = csv_texts(columns, rows, header=header, terminal=terminal)
    else:
        indent = 2 if output is SqlFormat.JSON_PRETTY else None
        keys = _unique(columns)
        texts = (
            json_text(dict(zip(keys, map(_json_value, row), strict=True)), indent) + "\n"
            for row in rows
        )
    left = max_bytes
    written = 0
    for text in texts:
        if left is not None:
            left -= len(text) if text.isascii() else len(text.encode())
            if left < 0:
                break
        out.write(text)
        written += 1
    head = 2 if output is SqlFormat.TABLE else 1 if output is SqlFormat.CSV else 0
    return max(written - head * header, 0)


class _Row:
    """What csv.writer writes a row to (in one write): kept as it is."""

    text = ""

    def write(self, text: str) -> None:
        self.text = text


def csv_texts(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    header: bool = True,
    terminal: bool = False,
) -> Iterator[str]:
    """CSV, a line at a time (the header first), that standard readers (csv,
    sqlite-utils, spreadsheets) read back value for value: Python's writer
    quotes a field for the characters of its line terminator only, so a
    lone CR would end the row for them all; a row with one is quoted whole.
    On a terminal every value is escaped instead (nobody reads it back)."""
    target = _Row()
    plain = csv.writer(target, lineterminator="\n")
    quoted = csv.writer(target, lineterminator="\n", quoting=csv.QUOTE_ALL)

    def line(values: Iterable[Any]) -> str:
        cells = ["" if value is None else _json_value(value) for value in values]
        if terminal:
            cells = [escape(str(cell)) for cell in cells]
        carriage = any(isinstance(cell, str) and "\r" in cell for cell in cells)
        (quoted if carriage else plain).writerow(cells)
        return target.text

    if header:
        yield line(columns)
    for row in rows:
        yield line(row)


def write_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    out: TextIO,
    styles: Sequence[str | None] | None = None,
) -> None:
    lines = _table_texts(columns, rows)
    if styles is not None:
        painted = iter(styles)
        head = [next(lines), next(lines)]
        lines = itertools.chain(head, (paint(line, next(painted)) for line in lines))
    for line in lines:
        out.write(line)


def table_lines(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], *, header: bool = True
) -> list[str]:
    """Columns two spaces apart, numbers right-aligned, a rule under the header."""
    return [line.removesuffix("\n") for line in _table_texts(columns, rows, header=header)]


def _table_texts(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], *, header: bool = True
) -> Iterator[str]:
    """table_lines() one at a time, each with its newline: a wide column
    pads every row, so the table may be much larger than its values."""
    cells = [[_cell(value) for value in row] for row in rows]
    head = [escape(name, newlines=True) for name in columns]
    widths = [len(name) if header else 0 for name in head]
    for row in cells:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    numeric = [
        any(row[i] is not None for row in rows)
        and all(isinstance(row[i], (int, float)) or row[i] is None for row in rows)
        for i in range(len(columns))
    ]

    def line(values: Sequence[str], right: Sequence[bool]) -> str:
        padded = (
            value.rjust(width) if align else value.ljust(width)
            for value, width, align in zip(values, widths, right, strict=True)
        )
        return "  ".join(padded).rstrip() + "\n"

    if header:
        yield line(head, numeric)
        yield line(["-" * width for width in widths], [False] * len(head))
    for row in cells:
        yield line(row, numeric)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return "x'" + value.hex() + "'"
    return escape(str(value), newlines=True)


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return "x'" + value.hex() + "'"
    return value


def _unique(columns: Sequence[str]) -> list[str]:
    """Column names as JSON keys: a repeated name gets _2, _3, ... (one not taken)."""
    names = set(columns)
    keys: list[str] = []
    for name in columns:
        key, n = name, 1
        while key in keys or (key != name and key in names):
            n += 1
            key = f"{name}_{n}"
        keys.append(key)
    return keys
