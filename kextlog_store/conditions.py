"""A RecordFilter in SQL: what it names looked up in the store (Scope), and
the WHERE terms that select its records.  One builder for both back ends:
SQL text and its parameters (Sql), with what differs in a Dialect, run by
the stdlib's sqlite3 on SQLite and through SQLAlchemy's connection on
PostgreSQL (store/engine.py's readers).  No SQLAlchemy here: it costs the
smallest query more than the query itself."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .levels import Level
from .records import INT64_MAX, SEQ_BITS, SEQ_MASK, record_id
from .regex import glob_regex, grep_pattern, postgresql_regex, required_literals

if TYPE_CHECKING:
    from .query import RecordFilter
    from .store.engine import Reading

_GLOB = re.compile(r"[*?\[]")
_OFFSET = re.compile(r"0|-[1-9][0-9]*")
_HEX = re.compile(r"[0-9a-f]+")
_LIKE_SPECIAL = re.compile(r"[\\%_]")


@dataclass(frozen=True)
class Dialect:
    """What the SQL of the read path writes differently per back end."""

    name: str
    placeholder: str  # a parameter: sqlite3's qmark, psycopg's format
    regexp: str  # value <regexp> pattern: SQLite's REGEXP (RE2's, callbacks.py), PostgreSQL's ~
    glob: str  # value <glob> pattern
    # instr/LIKE ahead of REGEXP: on SQLite REGEXP calls into Python for
    # every row; PostgreSQL's ~ runs in the server, a prefilter saves little.
    prefilter: bool

    def grep(self, pattern: str) -> str:
        return pattern if self.name == "sqlite" else postgresql_regex(pattern)

    def glob_pattern(self, glob: str) -> str:
        return glob if self.name == "sqlite" else glob_regex(glob)


SQLITE = Dialect("sqlite", "?", "REGEXP", "GLOB", prefilter=True)
POSTGRESQL = Dialect("postgresql", "%s", "~", "~", prefilter=False)
DIALECTS = {dialect.name: dialect for dialect in (SQLITE, POSTGRESQL)}


class Sql:
    """A statement's parameters, collected as its text is written."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.params: list[Any] = []

    @classmethod
    def on(cls, reading: Reading) -> Sql:
        """A statement for reading's back end."""
        return cls(DIALECTS[reading.name])

    def param(self, value: Any) -> str:
        self.params.append(value)
        return self.dialect.placeholder

    def among(self, values: Iterable[Any]) -> str:
        """(?, ?, ...) of distinct values, in order."""
        return "(" + ", ".join(self.param(value) for value in sorted(set(values))) + ")"


def first_id(instance_id: int) -> int:
    """The lowest record id of an instance: the key packs (instance, seq)
    (records.record_id), so an instance's records are one rowid range, in
    seq order, and (time_ns, id) is logged order."""
    return record_id(instance_id, 0)


def instance_bounds(ids: str, instance: str) -> str:
    """ids (an SQL expression) among the record ids of the instance whose
    row id is the SQL expression instance (a correlated column)."""
    return f"{ids} >= ({instance} << {SEQ_BITS}) AND {ids} < (({instance} + 1) << {SEQ_BITS})"


@dataclass(frozen=True)
class Scope:
    """What a filter names, looked up in the store.

    instance_id: the --instance row (None: all).  start: the cursor's place
    in logged order, (time_ns, record id), and whether it is included.
    unindexed: per instance, the record ids (low, high) past what ingest
    has merged into pid_index yet, which a pid search scans.  new_records /
    new_losses: the id windows (low, high] one poll of --follow reads.
    """

    instance_id: int | None = None
    start: tuple[int, int] | None = None
    start_included: bool = True
    unindexed: tuple[tuple[int, int], ...] = ()
    new_records: tuple[tuple[int, int], ...] | None = None
    new_losses: tuple[int, int] | None = None


def look_up(reading: Reading, record_filter: RecordFilter) -> Scope:
    """What record_filter names (its --instance, cursor, pids' unmerged
    records), looked up through reading; UsageError for what is not there."""
    instance_id = None
    if record_filter.instance is not None:
        instance_id = _resolve_instance(reading, record_filter.instance, record_filter)
    start, included = None, True
    cursor = record_filter.cursor or record_filter.after_cursor
    if cursor is not None:
        option = "--cursor" if record_filter.cursor is not None else "--after-cursor"
        sql = Sql.on(reading)
        rows = reading.execute(
            f"SELECT id FROM instances WHERE uuid = {sql.param(cursor.instance)}", sql.params
        )
        row_id = next((row[0] for row in rows), None)
        if row_id is None:
            raise UsageError(f"{option}: instance {cursor.instance} is not in this store")
        if not 0 <= cursor.seq <= SEQ_MASK or not -INT64_MAX - 1 <= cursor.time_ns <= INT64_MAX:
            raise UsageError(f"{option}: {cursor} is out of range: not a record's cursor")
        start = (cursor.time_ns, record_id(row_id, cursor.seq))
        included = record_filter.cursor is not None
    unindexed: tuple[tuple[int, int], ...] = ()
    if record_filter.pids:
        # pid_indexed_seq only grows, so a range read now may be wider than
        # it is by the time the records are read, never narrower: a record
        # in both is still matched once.
        rows = reading.execute("SELECT id, pid_indexed_seq FROM instances", [])
        unindexed = tuple(
            (record_id(row_id, indexed), first_id(row_id + 1)) for row_id, indexed in rows
        )
    return Scope(instance_id, start, included, unindexed)


def among(record_filter: RecordFilter, sql: Sql, instances: str = "i") -> list[str]:
    """The instances (the table as `instances`) a filter's --source and
    --host narrow to."""
    terms = []
    if record_filter.sources:
        terms.append(f"{instances}.source IN {sql.among(record_filter.sources)}")
    if record_filter.hosts:
        terms.append(f"{instances}.host IN {sql.among(record_filter.hosts)}")
    return terms


def _resolve_instance(reading: Reading, spec: str, record_filter: RecordFilter) -> int:
    text = spec.strip().lower()
    sql = Sql.on(reading)
    narrowed = among(record_filter, sql)
    where = f" WHERE {' AND '.join(narrowed)}" if narrowed else ""
    if _OFFSET.fullmatch(text):
        offset = -int(text)
        found = None
        if offset <= INT64_MAX:  # no store has more instances
            rows = reading.execute(
                f"SELECT i.id FROM instances AS i{where}"
                f" ORDER BY i.first_seen_ns DESC, i.id DESC LIMIT 1 OFFSET {offset}",
                sql.params,
            )
            found = next((row[0] for row in rows), None)
        if found is None:
            rows = reading.execute(f"SELECT count(*) FROM instances AS i{where}", sql.params)
            known = next(iter(rows))[0]
            among_them = " of those sources and hosts" if narrowed else ""
            raise UsageError(
                f"--instance {text}: the store has {known} instance{'s' * (known != 1)}{among_them}"
            )
        return int(found)
    digits = text.replace("-", "")
    if not _HEX.fullmatch(digits):
        raise UsageError(
            f"--instance: {spec!r} is not an instance id, a prefix of one, "
            "0 (the newest) or -N (the Nth before it)"
        )
    prefix = f"substr(i.uuid, 1, {len(digits)}) = {sql.param(digits)}"
    terms = " AND ".join([*narrowed, prefix])
    matches = list(
        reading.execute(f"SELECT i.id FROM instances AS i WHERE {terms} LIMIT 2", sql.params)
    )
    if not matches:
        raise UsageError(f"--instance: no instance {spec!r} in this store")
    if len(matches) > 1:
        raise UsageError(f"--instance: {spec!r} matches several instances; give more digits")
    return int(matches[0][0])


def where(
    record_filter: RecordFilter, scope: Scope, sql: Sql, *, indexed: bool = True
) -> list[str]:
    """The WHERE terms of a filter on the records as `r`: the records table,
    or (indexed False: --follow) a few new rows of it, which no index needs
    to find.  Levels and record ids are
    integers written into the text (SQLite then sees that a query fits the
    partial level index); everything else is a parameter."""
    dialect = sql.dialect
    terms: list[str] = []
    if record_filter.levels is not None:
        low, high = record_filter.levels
        if (low, high) != (min(Level), max(Level)):  # all levels: no term
            wanted = [int(level) for level in Level if low <= level <= high]
            listed = ", ".join(map(str, wanted))
            terms.append(f"r.level = {wanted[0]}" if len(wanted) == 1 else f"r.level IN ({listed})")
            if indexed and low >= Level.WARNING:
                # The level index holds only these levels (level >= 4); SQLite
                # uses a partial index only for a query that says so itself.
                terms.append(f"r.level >= {int(Level.WARNING)}")
    if record_filter.since_ns is not None:
        terms.append(f"r.time_ns >= {sql.param(record_filter.since_ns)}")
    if record_filter.until_ns is not None:
        terms.append(f"r.time_ns <= {sql.param(record_filter.until_ns)}")
    if record_filter.pids:
        terms.append(f"r.pid IN {sql.among(record_filter.pids)}")
        if indexed:
            # Where to look: pid_index (bounded by the window, as its key is
            # pid, time_ns, id), and the records ingest has not merged yet.
            window = [f"p.pid IN {sql.among(record_filter.pids)}"]
            if record_filter.since_ns is not None:
                window.append(f"p.time_ns >= {sql.param(record_filter.since_ns)}")
            if record_filter.until_ns is not None:
                window.append(f"p.time_ns <= {sql.param(record_filter.until_ns)}")
            places = [f"r.id IN (SELECT p.id FROM pid_index AS p WHERE {' AND '.join(window)})"]
            places += [f"(r.id > {low} AND r.id < {high})" for low, high in scope.unindexed]
            terms.append(f"({' OR '.join(places)})")
    if record_filter.processes:
        exact = {name for name in record_filter.processes if not _GLOB.search(name)}
        globs = sorted({name for name in record_filter.processes if _GLOB.search(name)})
        alternatives = [
            f"r.process {dialect.glob} {sql.param(dialect.glob_pattern(glob))}" for glob in globs
        ]
        if exact:
            alternatives.append(f"r.process IN {sql.among(exact)}")
        terms.append(f"({' OR '.join(alternatives)})")
    if record_filter.grep is not None:
        pattern = grep_pattern(record_filter.grep)
        if dialect.prefilter:
            terms.extend(prefilter("r.message", pattern, sql))
        terms.append(f"r.message {dialect.regexp} {sql.param(dialect.grep(pattern))}")
    if scope.instance_id is not None:
        low, high = first_id(scope.instance_id), first_id(scope.instance_id + 1)
        terms.append(f"r.id >= {low} AND r.id < {high}")
    narrowed = among(record_filter, sql)
    if narrowed:
        found = f"SELECT i.id FROM instances AS i WHERE {' AND '.join(narrowed)}"
        terms.append(f"r.instance_id IN ({found})")
    if scope.start is not None:
        time_ns, start_id = scope.start
        # The first term alone lets SQLite search the time index.
        terms.append(f"r.time_ns >= {sql.param(time_ns)}")
        at = ">=" if scope.start_included else ">"
        terms.append(f"(r.time_ns > {sql.param(time_ns)} OR r.id {at} {start_id})")
    return terms


# Of a pattern's required literals, how many the prefilter checks: the
# longest select best; each one more costs a scan of every message.
PREFILTER_LITERALS = 2


def prefilter(value: str, pattern: str, sql: Sql) -> list[str]:
    """Terms that every text pattern matches passes, cheap to test ahead of
    the regex: instr() for the pattern's required literals, LIKE (ASCII's
    case folding, which regex.required_literals allows for) where case is
    ignored.  No term when the pattern requires no literal of two characters
    or more: one letter passes nearly every message."""
    literals, insensitive = required_literals(pattern)
    longest = sorted((text for text in literals if len(text) >= 2), key=len, reverse=True)
    terms = []
    for literal in longest[:PREFILTER_LITERALS]:
        if insensitive:
            like = "%" + _LIKE_SPECIAL.sub(lambda match: "\\" + match[0], literal) + "%"
            terms.append(f"{value} LIKE {sql.param(like)} ESCAPE '\\'")
        else:
            terms.append(f"instr({value}, {sql.param(literal)}) > 0")
    return terms
