"""A RecordFilter in SQL: what it names looked up in the store (Scope), and
the WHERE terms that select its records, for both back ends."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, ColumnElement, Connection, and_, func, literal, or_, select
from sqlalchemy.ext.compiler import compiles

from .errors import UsageError
from .levels import Level
from .records import INT64_MAX
from .regex import glob_regex, grep_pattern, postgresql_regex
from .store import schema

if TYPE_CHECKING:
    from .query import RecordFilter

_records = schema.records
_instances = schema.instances
_pid_index = schema.pid_index
_GLOB = re.compile(r"[*?\[]")
_OFFSET = re.compile(r"0|-[1-9][0-9]*")
_HEX = re.compile(r"[0-9a-f]+")


class _Match(ColumnElement[bool]):
    """value matches a pattern, written for each back end: SQLite's GLOB or
    REGEXP (RE2's, see callbacks.py) with the pattern as it is; PostgreSQL's
    ~ with the same pattern as a POSIX regular expression."""

    type = Boolean()
    inherit_cache = False  # the SQL depends on the patterns, not only on the structure

    def __init__(
        self, value: ColumnElement[Any], operator: str, pattern: str, postgresql_pattern: str
    ) -> None:
        self.value = value
        self.operator = operator
        self.pattern = pattern
        self.postgresql_pattern = postgresql_pattern


@compiles(_Match)
def _match_sql(element: _Match, compiler: Any, **kw: Any) -> str:
    value, pattern = element.value, literal(element.pattern)
    return f"{compiler.process(value, **kw)} {element.operator} {compiler.process(pattern, **kw)}"


@compiles(_Match, "postgresql")
def _match_postgresql(element: _Match, compiler: Any, **kw: Any) -> str:
    value, pattern = element.value, literal(element.postgresql_pattern)
    return f"{compiler.process(value, **kw)} ~ {compiler.process(pattern, **kw)}"


def _glob(value: ColumnElement[Any], glob: str) -> _Match:
    """value GLOB glob, as SQLite matches it: case-sensitive, * ? [...] [^...]."""
    return _Match(value, "GLOB", glob, glob_regex(glob))


def _grep(value: ColumnElement[Any], pattern: str) -> _Match:
    """value REGEXP pattern (RE2's syntax: a search)."""
    return _Match(value, "REGEXP", pattern, postgresql_regex(pattern))


def first_id(instance_id: int) -> int:
    """The lowest record id of an instance: the key packs (instance, seq)
    (schema.record_id), so an instance's records are one rowid range, in
    seq order, and (time_ns, id) is logged order."""
    return schema.record_id(instance_id, 0)


def _of_instance(ids: ColumnElement[Any], instance_id: int) -> ColumnElement[bool]:
    return and_(ids >= first_id(instance_id), ids < first_id(instance_id + 1))


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


def look_up(connection: Connection, record_filter: RecordFilter) -> Scope:
    """What record_filter names (its --instance, cursor, pids' unmerged
    records), looked up on connection; UsageError for what is not there."""
    instance_id = None
    if record_filter.instance is not None:
        instance_id = _resolve_instance(connection, record_filter.instance, record_filter)
    start, included = None, True
    cursor = record_filter.cursor or record_filter.after_cursor
    if cursor is not None:
        option = "--cursor" if record_filter.cursor is not None else "--after-cursor"
        row_id = connection.execute(
            select(_instances.c.id).where(_instances.c.uuid == cursor.instance)
        ).scalar()
        if row_id is None:
            raise UsageError(f"{option}: instance {cursor.instance} is not in this store")
        if (
            not 0 <= cursor.seq <= schema.SEQ_MASK
            or not -INT64_MAX - 1 <= cursor.time_ns <= INT64_MAX
        ):
            raise UsageError(f"{option}: {cursor} is out of range: not a record's cursor")
        start = (cursor.time_ns, schema.record_id(row_id, cursor.seq))
        included = record_filter.cursor is not None
    unindexed: tuple[tuple[int, int], ...] = ()
    if record_filter.pids:
        # pid_indexed_seq only grows, so a range read now may be wider than
        # it is by the time the records are read, never narrower: a record
        # in both is still matched once.
        rows = connection.execute(select(_instances.c.id, _instances.c.pid_indexed_seq))
        unindexed = tuple(
            (schema.record_id(row_id, indexed), first_id(row_id + 1)) for row_id, indexed in rows
        )
    return Scope(instance_id, start, included, unindexed)


def _among(record_filter: RecordFilter) -> list[ColumnElement[bool]]:
    """The instances a filter's --source and --host narrow to."""
    terms = []
    if record_filter.sources:
        terms.append(_instances.c.source.in_(sorted(set(record_filter.sources))))
    if record_filter.hosts:
        terms.append(_instances.c.host.in_(sorted(set(record_filter.hosts))))
    return terms


def _resolve_instance(connection: Connection, spec: str, record_filter: RecordFilter) -> int:
    text = spec.strip().lower()
    among = _among(record_filter)
    if _OFFSET.fullmatch(text):
        ordered = (
            select(_instances.c.id)
            .where(*among)
            .order_by(_instances.c.first_seen_ns.desc(), _instances.c.id.desc())
        )
        offset = -int(text)
        found = None
        if offset <= INT64_MAX:  # no store has more instances
            found = connection.execute(ordered.offset(offset).limit(1)).scalar()
        if found is None:
            known = connection.execute(
                select(func.count()).select_from(ordered.subquery())
            ).scalar_one()
            narrowed = " of those sources and hosts" if among else ""
            raise UsageError(
                f"--instance {text}: the store has {known} instance{'s' * (known != 1)}{narrowed}"
            )
        return int(found)
    digits = text.replace("-", "")
    if not _HEX.fullmatch(digits):
        raise UsageError(
            f"--instance: {spec!r} is not an instance id, a prefix of one, "
            "0 (the newest) or -N (the Nth before it)"
        )
    matches = connection.execute(
        select(_instances.c.id)
        .where(func.substr(_instances.c.uuid, 1, len(digits)) == digits, *among)
        .limit(2)
    ).all()
    if not matches:
        raise UsageError(f"--instance: no instance {spec!r} in this store")
    if len(matches) > 1:
        raise UsageError(f"--instance: {spec!r} matches several instances; give more digits")
    return int(matches[0][0])


def where(
    record_filter: RecordFilter, scope: Scope, rows: Any = _records
) -> list[ColumnElement[bool]]:
    """The WHERE terms of a filter on rows: the records table, or (--follow)
    a few new rows of it, which no index needs to find."""
    c = rows.c
    indexed = rows is _records
    terms: list[ColumnElement[bool]] = []
    if record_filter.levels is not None:
        low, high = record_filter.levels
        if (low, high) != (min(Level), max(Level)):  # all levels: no term
            wanted = [int(level) for level in Level if low <= level <= high]
            terms.append(c.level == wanted[0] if len(wanted) == 1 else c.level.in_(wanted))
            if indexed and low >= Level.WARNING:
                # The level index holds only these levels (level >= 4); SQLite
                # uses a partial index only for a query that says so itself.
                terms.append(c.level >= int(Level.WARNING))
    if record_filter.since_ns is not None:
        terms.append(c.time_ns >= record_filter.since_ns)
    if record_filter.until_ns is not None:
        terms.append(c.time_ns <= record_filter.until_ns)
    if record_filter.pids:
        pids = sorted(set(record_filter.pids))
        terms.append(c.pid.in_(pids))
        if indexed:
            # Where to look: pid_index (bounded by the window, as its key is
            # pid, time_ns, id), and the records ingest has not merged yet.
            window: list[ColumnElement[bool]] = [_pid_index.c.pid.in_(pids)]
            if record_filter.since_ns is not None:
                window.append(_pid_index.c.time_ns >= record_filter.since_ns)
            if record_filter.until_ns is not None:
                window.append(_pid_index.c.time_ns <= record_filter.until_ns)
            terms.append(
                or_(
                    c.id.in_(select(_pid_index.c.id).where(*window)),
                    *(and_(c.id > low, c.id < high) for low, high in scope.unindexed),
                )
            )
    if record_filter.processes:
        exact = sorted({name for name in record_filter.processes if not _GLOB.search(name)})
        globs = sorted({name for name in record_filter.processes if _GLOB.search(name)})
        alternatives: list[ColumnElement[bool]] = [_glob(c.process, glob) for glob in globs]
        if exact:
            alternatives.append(c.process.in_(exact))
        terms.append(or_(*alternatives))
    if record_filter.grep is not None:
        terms.append(_grep(c.message, grep_pattern(record_filter.grep)))
    if scope.instance_id is not None:
        terms.append(_of_instance(c.id, scope.instance_id))
    terms.extend(_among(record_filter))
    if scope.start is not None:
        time_ns, record_id = scope.start
        at = c.id >= record_id if scope.start_included else c.id > record_id
        # The first term alone lets SQLite search the time index.
        terms.append(c.time_ns >= time_ns)
        terms.append(or_(c.time_ns > time_ns, at))
    return terms
