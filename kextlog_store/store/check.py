"""`kextlog db check`: is the store whole, and does its accounting hold?

SQLite's own checks (every page with integrity_check, or the cheaper
quick_check; foreign keys), then kextlog's invariants: the schema
revision is one this kextlog knows, every instance's high-water mark
covers its stored records, no loss overlaps a stored record or another
loss (an index search per instance or per loss), and each instance's seqs
up to its high-water mark add up: stored, lost, filtered and pruned, each
counted on its own (a pass over its records' key), and the counters
(record_counts, pid_counts) equal a count of the records (a pass over the
records for each).  The file is
opened read-only: checking never changes it, also when it is damaged.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ..errors import DatabaseError, one_line
from .engine import known_revisions, sqlite_path
from .location import check_private
from .schema import SEQ_BITS, SEQ_MASK, minute_sql

SHOWN_PROBLEMS = 10  # of each check, at most; the count says how many more


@dataclass(frozen=True)
class Finding:
    check: str  # what was checked, e.g. "integrity_check"
    problems: tuple[str, ...]  # empty when it passed
    note: str = ""  # what it covered, or why it did not run
    skipped: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class CheckReport:
    path: Path
    findings: tuple[Finding, ...]

    @property
    def failed(self) -> tuple[Finding, ...]:
        return tuple(finding for finding in self.findings if not finding.ok)


def check(url: str, *, quick: bool = False) -> CheckReport:
    """Every check of the SQLite store at url (quick: quick_check instead of
    integrity_check, which leaves out the indexes' agreement with their
    tables)."""
    path = sqlite_path(url)
    if path is None:
        raise DatabaseError("kextlog db check supports SQLite stores only, for now")
    if not path.is_file():
        raise DatabaseError(f"no kextlog database at {path}")
    check_private(path)  # SQLite opens its -wal and -shm by name beside it
    connection = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=10)
    try:
        findings = [_pragma(connection, "quick_check" if quick else "integrity_check")]
        findings.append(_pragma(connection, "foreign_key_check"))
        revision = _revision(connection)
        findings.append(revision)
        if revision.ok and not revision.skipped:
            findings += [
                _high_water(connection),
                _losses(connection),
                _accounting(connection),
                _counters(connection),
            ]
        else:
            reason = "skipped: the schema is not one this kextlog knows"
            findings += [
                Finding(name, (), reason, skipped=True)
                for name in ("high-water marks", "losses", "accounting", "counters")
            ]
    finally:
        connection.close()
    return CheckReport(path, tuple(findings))


def _run(connection: sqlite3.Connection, sql: str) -> list[tuple]:
    return connection.execute(sql).fetchall()


def _failure(name: str, error: sqlite3.Error) -> Finding:
    return Finding(name, (one_line(error),))


def _pragma(connection: sqlite3.Connection, name: str) -> Finding:
    try:
        rows = _run(connection, f"PRAGMA {name}")
    except sqlite3.Error as error:
        return _failure(name, error)
    problems = [" ".join(str(value) for value in row) for row in rows if row != ("ok",)]
    return _finding(name, problems)


def _finding(name: str, problems: list[str], note: str = "") -> Finding:
    if len(problems) > SHOWN_PROBLEMS:
        more = len(problems) - SHOWN_PROBLEMS
        problems = [*problems[:SHOWN_PROBLEMS], f"... and {more:,} more"]
    return Finding(name, tuple(problems), note)


def _revision(connection: sqlite3.Connection) -> Finding:
    name = "schema revision"
    try:
        tables = {row[0] for row in _run(connection, "SELECT name FROM sqlite_master")}
        if "alembic_version" not in tables:
            if tables:
                return Finding(name, ("not a kextlog database: tables but no schema revision",))
            return Finding(name, (), "an empty database: no schema yet", skipped=True)
        revisions = {row[0] for row in _run(connection, "SELECT version_num FROM alembic_version")}
    except sqlite3.Error as error:
        return _failure(name, error)
    known = known_revisions()
    unknown = sorted(revisions - known)
    if unknown:
        return Finding(name, (f"{', '.join(unknown)} is newer than this kextlog knows",))
    if not revisions:
        return Finding(name, (), "no revision recorded: no schema yet", skipped=True)
    (revision,) = revisions
    newest = max(known)
    if revision != newest:
        return Finding(name, (), f"{revision}, older than {newest}: `kextlog db upgrade`")
    return Finding(name, (), f"{revision}, the newest")


def _high_water(connection: sqlite3.Connection) -> Finding:
    """Every stored seq of an instance is at most its high-water mark (one
    search of the records' key per instance), which is at most SEQ_MASK."""
    name = "high-water marks"
    try:
        rows = _run(
            connection,
            f"SELECT i.uuid, i.high_water,"
            f" (SELECT max(r.id) FROM records r WHERE r.id >= i.id << {SEQ_BITS}"
            f"  AND r.id < (i.id + 1) << {SEQ_BITS}) & {SEQ_MASK}"
            f" FROM instances i",
        )
    except sqlite3.Error as error:
        return _failure(name, error)
    problems = []
    for uuid, high_water, newest in rows:
        if high_water > SEQ_MASK:  # it would cover other instances' keys
            problems.append(f"instance {uuid}: high-water mark {high_water} past seq {SEQ_MASK}")
        if newest is not None and newest > high_water:
            problems.append(
                f"instance {uuid}: a record with seq {newest} above its high-water mark"
                f" {high_water}"
            )
    return _finding(name, problems, f"{len(rows):,} instances")


def _losses(connection: sqlite3.Connection) -> Finding:
    """Each loss is a sane range within its instance's high-water mark, holds
    no stored record (one search of the key per loss), and overlaps no
    other loss."""
    name = "losses"
    try:
        rows = _run(
            connection,
            f"SELECT i.uuid, l.first_seq, l.last_seq, l.count, i.high_water,"
            f" EXISTS (SELECT 1 FROM records r WHERE r.id >= (l.instance_id << {SEQ_BITS})"
            f"  | l.first_seq AND r.id <= (l.instance_id << {SEQ_BITS}) | l.last_seq),"
            f" lag(l.last_seq) OVER (PARTITION BY l.instance_id ORDER BY l.first_seq)"
            f" FROM losses l JOIN instances i ON i.id = l.instance_id",
        )
    except sqlite3.Error as error:
        return _failure(name, error)
    problems = []
    for uuid, first, last, count, high_water, stored, previous_last in rows:
        where = f"instance {uuid}: loss of seqs {first}..{last}"
        if first > last or count != last - first + 1:
            problems.append(f"{where} counts {count}")
        if last > high_water:
            problems.append(f"{where} is above its high-water mark {high_water}")
        if stored:
            problems.append(f"{where} overlaps stored records")
        if previous_last is not None and previous_last >= first:
            problems.append(f"{where} overlaps the loss before it")
    return _finding(name, problems, f"{len(rows):,} losses")


def _accounting(connection: sqlite3.Connection) -> Finding:
    """Each instance's seqs first_seq..high_water are each stored, lost,
    filtered or pruned: the four counts add up to their number (the
    delivery contract; prune counts what it removes as it removes it)."""
    name = "accounting"
    try:
        columns = {row[1] for row in _run(connection, "PRAGMA table_info(instances)")}
        if "pruned_records" not in columns:
            note = "skipped: this revision does not count pruned rows: `kextlog db upgrade`"
            return Finding(name, (), note, skipped=True)
        rows = _run(
            connection,
            f"SELECT i.uuid, i.first_seq, i.high_water,"
            f" (SELECT count(*) FROM records r WHERE r.id >= (i.id << {SEQ_BITS}) + i.first_seq"
            f"  AND r.id <= (i.id << {SEQ_BITS}) + i.high_water),"
            f" (SELECT coalesce(sum(l.count), 0) FROM losses l WHERE l.instance_id = i.id),"
            f" i.filtered, i.pruned_records + i.pruned_lost"
            f" FROM instances i",
        )
    except sqlite3.Error as error:
        return _failure(name, error)
    problems = []
    for uuid, first, high_water, stored, lost, filtered, pruned in rows:
        seqs = high_water - first + 1
        counted = stored + lost + filtered + pruned
        if counted != seqs:
            missing = seqs - counted
            off = f"{missing:,} not accounted for" if missing > 0 else f"{-missing:,} counted twice"
            problems.append(
                f"instance {uuid}: {seqs:,} seqs ({first}..{high_water}), but stored {stored:,}"
                f" + lost {lost:,} + filtered {filtered:,} + pruned {pruned:,} = {counted:,}"
                f" ({off})"
            )
    return _finding(name, problems, f"{len(rows):,} instances")


def _counters(connection: sqlite3.Connection) -> Finding:
    """The counters hold, for each of their buckets, the number of records
    stored there: record_counts per (minute, level, instance), pid_counts
    per (pid, process, instance), each against the records counted afresh
    by the same buckets."""
    name = "counters"
    try:
        tables = {row[0] for row in _run(connection, "SELECT name FROM sqlite_master")}
        if "record_counts" not in tables:
            note = "skipped: this revision has no record counters: `kextlog db upgrade`"
            return Finding(name, (), note, skipped=True)
        uuids = dict(_run(connection, "SELECT id, uuid FROM instances"))
        problems, notes = [], []
        for table, keys, of_records, label in _COUNTERS:
            if table not in tables:  # before 0009
                continue
            kept = _buckets(connection, f"SELECT {keys}, count FROM {table}")
            counted = _buckets(
                connection, f"SELECT {of_records}, count(*) FROM records GROUP BY 1, 2, 3"
            )
            for key in sorted(kept.keys() | counted.keys()):
                if kept.get(key, 0) != counted.get(key, 0):
                    instance = uuids.get(key[-1], f"#{key[-1]}")
                    problems.append(
                        f"instance {instance}, {label(*key[:-1])}:"
                        f" counted {kept.get(key, 0):,}, stored {counted.get(key, 0):,}"
                    )
            notes.append(f"{len(counted):,} {keys.split(',')[0]} buckets")
    except sqlite3.Error as error:
        return _failure(name, error)
    return _finding(name, problems, ", ".join(notes))


def _buckets(connection: sqlite3.Connection, sql: str) -> dict[tuple, int]:
    return {tuple(row[:-1]): row[-1] for row in _run(connection, sql)}


def _minute(minute: int, level: int) -> str:
    return f"level {level}, minute {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(minute * 60))}"


def _pid(pid: int, process: str) -> str:
    return f"pid {pid} ({process})"


# Each table of counters: its key (instance_id last), the same key of a
# record, and how a bucket is named.
_COUNTERS: tuple[tuple[str, str, str, Callable[..., str]], ...] = (
    (
        "record_counts",
        "minute, level, instance_id",
        f"{minute_sql('time_ns')}, level, id >> {SEQ_BITS}",
        _minute,
    ),
    ("pid_counts", "pid, process, instance_id", f"pid, process, id >> {SEQ_BITS}", _pid),
)
