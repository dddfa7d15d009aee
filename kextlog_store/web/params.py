"""What the browser asks for, checked: the filters of a log view (the
query string), with the meanings of `kextlog query`'s options.

Nothing the browser sends is trusted: an unknown parameter, a repeated one
that may not be, a value too long or out of range is a UsageError with one
line saying which, that the page shows with HTTP 400.  The filter itself is
the read path's RecordFilter, built from the same parsers as the CLI's
options (levels, time specs, cursors), so a view shows what `kextlog query`
with the same options shows; View.command() is that command.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

from . import library
from .library import RecordFilter, UsageError, option

DEFAULT_LINES = 200  # records a log page shows
MAX_LINES = 10_000  # as kextlog sql's --max-rows
MAX_VALUE = 1_000  # characters of one value
MAX_REPEATS = 100  # values of one repeatable filter
# pids are C pid_t; anything out of SQLite's integers would not even bind.
_INTEGER = re.compile(r"-?[0-9]{1,19}")
_INT64 = range(-(2**63), 2**63)

# Filters, as `kextlog query`'s options: the parameter, the option, repeatable.
FILTERS: dict[str, tuple[str, bool]] = {
    "level": ("--level", False),
    "since": ("--since", False),
    "until": ("--until", False),
    "pid": ("--pid", True),
    "process": ("--process", True),
    "grep": ("--grep", False),
    "instance": ("--instance", False),
    "source": ("--source", True),
    "host": ("--host", True),
}
# Parameters of the page itself (not filters).
OPTIONS: dict[str, tuple[str, bool]] = {"n": ("--lines", False), "utc": ("--utc", False)}


def integer(name: str, text: str, lowest: int | None = None, highest: int | None = None) -> int:
    """A parameter's integer, written plainly, within [lowest, highest]."""
    value = int(text) if _INTEGER.fullmatch(text.strip()) else None
    if value is None or value not in _INT64:
        raise UsageError(f"{name}: {text[:40]!r} is not an integer")
    if (lowest is not None and value < lowest) or (highest is not None and value > highest):
        bounds = f"from {lowest:,} to {highest:,}" if highest is not None else f">= {lowest:,}"
        raise UsageError(f"{name}: {value} is out of range ({bounds})")
    return value


def collect(
    pairs: Sequence[tuple[str, str]],
    allowed: dict[str, tuple[str, bool]],
    max_length: int = MAX_VALUE,
) -> dict[str, list[str]]:
    """The parameters by name (allowed: name -> its option, repeatable);
    blank values count as not given (an empty field of the filter bar)."""
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        if name not in allowed:
            raise UsageError(f"unknown parameter {name[:40]!r}")
        if len(value) > max_length:
            raise UsageError(f"{name}: longer than {max_length:,} characters")
        if "\x00" in value:
            raise UsageError(f"{name}: contains a NUL character")
        if value.strip():
            values.setdefault(name, []).append(value)
    for name, given in values.items():
        repeatable = allowed[name][1]
        if not repeatable and len(given) > 1:
            raise UsageError(f"{name}: given {len(given)} times, once at most")
        if len(given) > MAX_REPEATS:
            raise UsageError(f"{name}: given {len(given)} times, {MAX_REPEATS} at most")
    return values


@dataclass(frozen=True)
class View:
    """A log view: the filters as given (text, for links and the command),
    the RecordFilter they mean, how many records, and the time zone."""

    given: dict[str, list[str]] = field(default_factory=dict)
    record_filter: RecordFilter = field(default_factory=RecordFilter)
    lines: int = DEFAULT_LINES
    utc: bool = False

    @classmethod
    def parse(cls, pairs: Sequence[tuple[str, str]]) -> View:
        values = collect(pairs, {**FILTERS, **OPTIONS})
        given = {name: values[name] for name in FILTERS if name in values}
        lines = DEFAULT_LINES
        if "n" in values:
            lines = integer("n", values["n"][0], 1, MAX_LINES)
        utc = False
        if "utc" in values:
            if values["utc"][0] not in ("0", "1"):
                raise UsageError("utc: 1 (times in UTC) or 0 (local time)")
            utc = values["utc"][0] == "1"
        return cls(given, record_filter(given), lines, utc)

    def first(self, name: str) -> str:
        return self.given.get(name, [""])[0]

    def query_string(self, *, lines: bool = True, **changes: Iterable[str] | None) -> str:
        """This view's parameters (with changes: a name to new values, or
        None to drop it), as a query string; '' for none."""
        given: dict[str, list[str]] = {name: list(values) for name, values in self.given.items()}
        for name, values in changes.items():
            if values is None:
                given.pop(name, None)
            else:
                given[name] = list(values)
        pairs = [(name, value) for name in FILTERS for value in given.get(name, [])]
        if lines and self.lines != DEFAULT_LINES:
            pairs.append(("n", str(self.lines)))
        if self.utc:
            pairs.append(("utc", "1"))
        return urlencode(pairs)

    def link(self, path: str = "/", **changes: Iterable[str] | None) -> str:
        text = self.query_string(**changes)
        return f"{path}?{text}" if text else path

    def command(self, *extra: str) -> str:
        """The `kextlog query` command that shows what this view shows."""
        words = ["kextlog", "query"]
        for name, (flag, _repeatable) in FILTERS.items():
            for value in self.given.get(name, []):
                words += [flag, value]
        words += ["-n", str(self.lines)]
        if self.utc:
            words.append("--utc")
        return shlex.join([*words, *extra])


def record_filter(given: dict[str, list[str]]) -> RecordFilter:
    """The filters as the read path takes them, parsed as the CLI parses
    its options (a UsageError names the parameter)."""

    def one(name: str) -> str | None:
        return given[name][0] if name in given else None

    since_ns = option("since", library.parse_time, one("since"))
    # As --until: the whole unit of its last digit (a displayed time selects its record).
    until_ns = option("until", library.parse_until, one("until"))
    if since_ns is not None and until_ns is not None and since_ns > until_ns:
        raise UsageError(f"since {one('since')!r} is later than until {one('until')!r}")
    return RecordFilter(
        levels=option("level", library.parse_level_range, one("level")),
        since_ns=since_ns,
        until_ns=until_ns,
        pids=tuple(integer("pid", value, -(2**31), 2**31 - 1) for value in given.get("pid", [])),
        processes=tuple(given.get("process", [])),
        grep=one("grep"),
        instance=one("instance"),
        sources=tuple(given.get("source", [])),
        hosts=tuple(given.get("host", [])),
    )


def exact_glob(name: str) -> str:
    """A process name as a --process glob that matches it alone: * ? [
    stand for themselves inside brackets."""
    return re.sub(r"([*?\[])", r"[\1]", name)
