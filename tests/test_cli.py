"""The CLI as a user runs it: real subprocesses, exact output checked against
the stored data, and one-line errors."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from kextlog_store import __version__
from kextlog_store.levels import Level
from kextlog_store.records import Entry, Loss, Record
from kextlog_store.render.formats import RecordFormat
from kextlog_store.store import migrate
from tests.conftest import NS, ROOT, Kextlog, PopulatedStore, content_checksum
from tests.processes import kextlog as run_kextlog

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MINUTE = 60 * NS


def wall(time_ns: int, offset: timedelta) -> tuple[datetime, int]:
    """Wall-clock time at offset and the microseconds, by integer arithmetic."""
    seconds, nanos = divmod(time_ns, NS)
    return datetime(1970, 1, 1) + timedelta(seconds=seconds) + offset, nanos // 1000


def short(record: Record, offset: timedelta = timedelta(0)) -> str:
    moment, micros = wall(record.time_ns, offset)
    return (
        f"{MONTHS[moment.month - 1]} {moment.day:02d} {moment.hour:02d}:{moment.minute:02d}:"
        f"{moment.second:02d}.{micros:06d} {record.level.name:<7} "
        f"{record.process}[{record.pid}:{record.tid}]: {record.message}"
    )


REASONS = {"ring-full": "ring full", "released": "no longer held", "gap": "never sent"}


def marker(loss: Loss) -> str:
    """The line `kextlog query` shows where records are missing."""
    if loss.count == 1:
        what = f"1 record lost (seq {loss.first_seq}"
    else:
        what = f"{loss.count} records lost (seqs {loss.first_seq}..{loss.last_seq}"
    return f"-- {what} of instance {loss.instance[:8]}, {REASONS[loss.reason]}) --"


def as_text(entries: list[Entry]) -> list[str]:
    """The short format of entries: records as `short`, losses as `marker`."""
    return [marker(entry) if isinstance(entry, Loss) else short(entry) for entry in entries]


def as_json(record: Record, offset: timedelta = timedelta(0)) -> dict[str, object]:
    moment, micros = wall(record.time_ns, offset)
    minutes = int(offset.total_seconds()) // 60
    zone = f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return {
        "time": f"{moment:%Y-%m-%dT%H:%M:%S}.{micros:06d}{zone}",
        "level": record.level.name.lower(),
        "pid": record.pid,
        "tid": record.tid,
        "process": record.process,
        "message": record.message,
        "seq": record.seq,
        "instance": record.instance,
        "host": record.host,
        "cursor": f"i={record.instance},s={record.seq},t={record.time_ns}",
    }


def lines_of(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout.splitlines()


def assert_one_line_error(result: subprocess.CompletedProcess[str], fragment: str = "") -> None:
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.endswith("\n")
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("kextlog: error: "), lines[0]
    assert "Traceback" not in result.stderr
    assert fragment in lines[0]


# --- query ------------------------------------------------------------------


def test_query_prints_everything_in_logged_order(
    kextlog: Kextlog, populated: PopulatedStore
) -> None:
    assert lines_of(kextlog("query")) == [short(record) for record in populated.records]


@pytest.mark.parametrize(
    ("spec", "levels"),
    [
        ("warning", {Level.WARNING, Level.ERROR}),
        ("WARN", {Level.WARNING, Level.ERROR}),
        ("err", {Level.ERROR}),
        ("debug..info", {Level.DEBUG, Level.INFO}),
        ("trace", set(Level)),
        # syslog priorities, as journalctl -p: 3 = err; 0..3 are errors, 7 debug
        ("3", {Level.ERROR}),
        ("4", {Level.WARNING, Level.ERROR}),
        ("6", {Level.INFO, Level.WARNING, Level.ERROR}),
        ("7", set(Level) - {Level.TRACE}),
        ("0..4", {Level.WARNING, Level.ERROR}),
        ("5..7", {Level.DEBUG, Level.INFO}),
        ("notice", {Level.INFO, Level.WARNING, Level.ERROR}),
    ],
)
def test_query_level(
    kextlog: Kextlog, populated: PopulatedStore, spec: str, levels: set[Level]
) -> None:
    expected = populated.select(levels=levels)
    assert expected
    assert lines_of(kextlog("query", "--level", spec)) == [short(record) for record in expected]
    assert lines_of(kextlog("query", "-p", spec)) == [short(record) for record in expected]


def test_level_warning_is_all_warnings_and_errors_and_nothing_else(
    kextlog: Kextlog, populated: PopulatedStore
) -> None:
    got = [
        json.loads(line) for line in lines_of(kextlog("query", "--level", "warning", "-o", "json"))
    ]
    assert {item["level"] for item in got} == {"warning", "error"}
    wanted = [record for record in populated.records if record.level >= Level.WARNING]
    assert [(item["instance"], item["seq"]) for item in got] == [
        (record.instance, record.seq) for record in wanted
    ]


@pytest.mark.parametrize("pids", [["312"], ["1", "4242"]])
def test_query_pid(kextlog: Kextlog, populated: PopulatedStore, pids: list[str]) -> None:
    expected = populated.select(pids={int(pid) for pid in pids})
    assert expected
    args = [arg for pid in pids for arg in ("--pid", pid)]
    assert lines_of(kextlog("query", *args)) == [short(record) for record in expected]


def test_query_since_10m_shows_nothing_older(kextlog: Kextlog, populated: PopulatedStore) -> None:
    started = time.time_ns()
    got = [json.loads(line) for line in lines_of(kextlog("query", "--since", "10m", "-o", "json"))]
    # No record lies within a minute of the boundary (see conftest), so the
    # moment the command ran does not matter.
    expected = populated.select(since_ns=populated.now_ns - 10 * MINUTE)
    assert expected
    assert got == [as_json(record) for record in expected]
    assert all(record.time_ns >= started - 10 * MINUTE - 60 * NS for record in expected)
    older = [r for r in populated.records if r.time_ns < populated.now_ns - 10 * MINUTE]
    assert older and not {(r.instance, r.seq) for r in older} & {
        (item["instance"], item["seq"]) for item in got
    }


@pytest.mark.parametrize("spec", ["1h ago", "-1h", "60m", "3600s", "1 hour"])
def test_query_relative_forms(kextlog: Kextlog, populated: PopulatedStore, spec: str) -> None:
    expected = populated.select(since_ns=populated.now_ns - 60 * MINUTE)
    assert lines_of(kextlog("query", "--since", spec)) == [short(record) for record in expected]


def test_query_until_and_absolute_times(kextlog: Kextlog, populated: PopulatedStore) -> None:
    first, last = populated.records[50], populated.records[120]
    since = datetime.fromtimestamp(first.time_ns // NS, timezone.utc)
    since_text = since.strftime("%Y-%m-%dT%H:%M:%S") + f".{first.time_ns % NS:09d}Z"
    until_text = f"@{last.time_ns // NS}.{last.time_ns % NS:09d}"
    expected = populated.select(since_ns=first.time_ns, until_ns=last.time_ns)
    assert expected[0] == first and expected[-1] == last
    got = lines_of(kextlog("query", "-S", since_text, "-U", until_text))
    assert got == [short(record) for record in expected]
    # The same bound as local time without a zone (the tests run with TZ=UTC).
    local = since.strftime("%Y-%m-%d %H:%M:%S") + f".{first.time_ns % NS:09d}"
    assert lines_of(kextlog("query", "--since", local, "--until", until_text)) == got


def displayed_times(kextlog: Kextlog, record: Record) -> dict[str, str]:
    """The time each output format shows for record, taken from kextlog's own output."""
    window = ("--since", f"@{record.time_ns // NS}", "--until", f"@{record.time_ns // NS + 1}")
    chosen = ("--pid", str(record.pid), *window, "--grep", re.escape(record.message))

    def shown(output: str) -> list[str]:
        lines = lines_of(kextlog("query", "-o", output, *chosen))
        assert lines, output
        return lines

    table = shown("table")
    return {
        "short": shown("short")[0][:22],  # Nov 27 10:22:36.123456
        "short-iso": shown("short-iso")[0].split(" ")[0],
        "json": json.loads(shown("json")[0])["time"],
        "csv": next(csv.DictReader(io.StringIO("\n".join(shown("csv")))))["time"],
        "table": table[2].split("  ")[0],
    }


def test_a_displayed_time_given_back_selects_its_record(
    kextlog: Kextlog, populated: PopulatedStore
) -> None:
    """As in journalctl: a time copied from the output, at the precision shown
    (microseconds, or cut to the second), includes its record as --since and
    as --until, though the store keeps nanoseconds."""
    seconds = Counter(r.time_ns // NS for r in populated.records)
    record = next(r for r in populated.records[100:] if seconds[r.time_ns // NS] == 1)
    assert record.time_ns % 1000 and record.time_ns % NS // 1000 % 1000  # below the shown unit
    for output, stamp in displayed_times(kextlog, record).items():
        to_second = re.sub(r"\.\d+", "", stamp)
        for given in (stamp, to_second):
            selected = kextlog("query", "-o", "json", "--since", given, "--until", given)
            assert selected.returncode == 0, selected.stderr
            keys = [(line["instance"], line["seq"]) for line in map(json.loads, lines_of(selected))]
            assert (record.instance, record.seq) in keys, (output, given)
            assert len(keys) == 1, (output, given)  # the only record of that second
    # The shown unit, not more: the microseconds either side leave it out.
    micro = record.time_ns // 1000 * 1000
    for since, until in ((iso(micro + 1000), None), (None, iso(micro - 1000))):
        bound = ("--since", since) if since else ("--until", str(until))
        assert record.message not in kextlog("query", "-o", "cat", *bound).stdout


def test_query_lines(kextlog: Kextlog, populated: PopulatedStore) -> None:
    assert lines_of(kextlog("query", "-n", "5")) == [short(r) for r in populated.records[-5:]]
    assert lines_of(kextlog("query", "--lines", "0")) == []
    errors = populated.select(levels={Level.ERROR})
    assert lines_of(kextlog("query", "-n", "3", "-p", "error")) == [short(r) for r in errors[-3:]]


def test_query_filters_combine(kextlog: Kextlog, populated: PopulatedStore) -> None:
    expected = populated.select(
        levels={Level.WARNING, Level.ERROR},
        since_ns=populated.now_ns - 60 * MINUTE,
        until_ns=populated.now_ns - 10 * MINUTE,
        pids={312, 88, 1},
    )
    args = ["-p", "warning", "-S", "1h", "-U", "10m", "--pid", "312", "--pid", "88", "--pid", "1"]
    assert lines_of(kextlog("query", *args)) == [short(record) for record in expected]


def test_query_json(kextlog: Kextlog, populated: PopulatedStore) -> None:
    lines = lines_of(kextlog("query", "-o", "json"))
    assert [json.loads(line) for line in lines] == [as_json(r) for r in populated.records]
    assert list(json.loads(lines[0])) == [
        "time",
        "level",
        "pid",
        "tid",
        "process",
        "message",
        "seq",
        "instance",
        "host",
        "cursor",
    ]
    assert json.loads(lines[0])["host"] == "test-host"
    # A record's cursor is the one --after-cursor takes, as journalctl's __CURSOR.
    cursor = json.loads(lines[99])["cursor"]
    after = lines_of(kextlog("query", "-o", "json", "--after-cursor", cursor))
    assert after == lines[100:]


def test_query_marks_where_records_are_lost(kextlog: Kextlog, lossy: PopulatedStore) -> None:
    got = lines_of(kextlog("query"))
    assert got == as_text(lossy.entries())
    markers = [line for line in got if line.startswith("-- ")]
    assert markers == [
        "-- 3 records lost (seqs 1..3 of instance f13c513a, no longer held) --",
        "-- 2 records lost (seqs 24..25 of instance 05abd89b, ring full) --",
        "-- 3 records lost (seqs 50..52 of instance f13c513a, ring full) --",
        "-- 6 records lost (seqs 55..60 of instance 05abd89b, no longer held) --",
        "-- 2 records lost (seqs 150..151 of instance f13c513a, ring full) --",
        "-- 2 records lost (seqs 110..111 of instance 05abd89b, never sent) --",
        "-- 1 record lost (seq 181 of instance f13c513a, ring full) --",
        "-- 5 records lost (seqs 121..125 of instance 05abd89b, never sent) --",
    ]
    # In place: before the next stored record, before records of the same time.
    at = got.index(markers[3])
    assert got[at + 1 : at + 3] == [short(lossy.record(1, 101)), short(lossy.record(2, 61))]
    assert got.index(markers[0]) + 1 == got.index(short(lossy.record(1, 7)))
    assert got[-3:] == [short(lossy.records[-1]), markers[6], markers[7]]


def test_query_markers_with_filters_and_lines(kextlog: Kextlog, lossy: PopulatedStore) -> None:
    since = lossy.now_ns - 60 * MINUTE
    got = lines_of(kextlog("query", "-p", "error", "--pid", "312", "-S", "1h"))
    assert got == as_text(lossy.entries(levels={Level.ERROR}, pids={312}, since_ns=since))
    assert [line for line in got if line.startswith("-- ")] == [
        marker(lossy.loss(1, 150)),
        marker(lossy.loss(2, 110)),
        marker(lossy.loss(1, 181)),
        marker(lossy.loss(2, 121)),
    ]
    assert lines_of(kextlog("query", "-n", "2")) == [
        short(lossy.records[-2]),
        short(lossy.records[-1]),
        marker(lossy.loss(1, 181)),
        marker(lossy.loss(2, 121)),
    ]
    # Up to --until only; a marker among the records shown is in place.
    got = lines_of(kextlog("query", "-n", "12", "-U", "10m"))
    assert got == as_text(lossy.entries(until_ns=lossy.now_ns - 10 * MINUTE, lines=12))
    assert [line for line in got if line.startswith("-- ")] == [marker(lossy.loss(1, 150))]
    assert len(got) == 13


def test_query_json_has_no_markers(kextlog: Kextlog, lossy: PopulatedStore) -> None:
    lines = lines_of(kextlog("query", "-o", "json"))
    assert [json.loads(line) for line in lines] == [as_json(r) for r in lossy.records]
    assert not [line for line in lines if "lost" in line or not line.startswith("{")]
    assert lines_of(kextlog("query", "-o", "json", "-S", "@" + str(lossy.now_ns // NS - 4))) == []


def test_query_local_time_and_utc(kextlog: Kextlog, populated: PopulatedStore) -> None:
    kolkata = {"TZ": "Asia/Kolkata"}
    offset = timedelta(hours=5, minutes=30)
    local = lines_of(kextlog("query", "-n", "20", "-o", "json", env=kolkata))
    assert [json.loads(line) for line in local] == [
        as_json(record, offset) for record in populated.records[-20:]
    ]
    utc = lines_of(kextlog("query", "-n", "20", "-o", "json", "--utc", env=kolkata))
    assert [json.loads(line) for line in utc] == [as_json(r) for r in populated.records[-20:]]
    assert lines_of(kextlog("query", "-n", "20", env=kolkata)) == [
        short(record, offset) for record in populated.records[-20:]
    ]
    assert lines_of(kextlog("query", "-n", "20", "--utc", env=kolkata)) == [
        short(record) for record in populated.records[-20:]
    ]


def test_query_db_option_wins_over_the_environment(
    kextlog: Kextlog, populated: PopulatedStore, tmp_path: Path
) -> None:
    result = kextlog("query", "--db", str(populated.path), "-n", "2", env={"KEXTLOG_DB": "/nope"})
    assert lines_of(result) == [short(record) for record in populated.records[-2:]]
    result = kextlog("query", "--db", populated.url, "-n", "2", env={"KEXTLOG_DB": "/nope"})
    assert lines_of(result) == [short(record) for record in populated.records[-2:]]


@pytest.mark.parametrize(
    "command",
    [
        ["query"], ["stats"], ["status"], ["prune", "--older-than", "1d"], ["sql", "SELECT 1"],
        ["db", "upgrade"], ["db", "current"], ["ingest", "--source", "unix:/nonexistent.sock"],
    ],
)  # fmt: skip
def test_a_directory_as_the_database_is_a_usage_error(tmp_path: Path, command: list[str]) -> None:
    for given in (str(tmp_path), f"sqlite:///{tmp_path}"):
        result = run_kextlog(*command, "--db", given)
        assert_one_line_error(result, f"{tmp_path} is a directory: name the database file")
        assert result.returncode == 2
        assert list(tmp_path.iterdir()) == []


def test_query_on_an_empty_store(kextlog: Kextlog, empty_store: Path) -> None:
    assert lines_of(kextlog("query")) == []


def test_query_on_a_missing_database_does_not_create_it(kextlog: Kextlog, tmp_path: Path) -> None:
    path = tmp_path / "absent" / "kextlog.db"
    result = kextlog("query", env={"KEXTLOG_DB": str(path)})
    assert_one_line_error(result, f"no kextlog database at {path}")
    assert result.returncode == 1
    assert not path.parent.exists()
    assert_one_line_error(kextlog("query", "--db", str(path)), "no kextlog database")
    assert not path.parent.exists()


@pytest.mark.parametrize(
    ("args", "fragment", "code"),
    [
        (["query", "--level", "bogus"], "--level: unknown level 'bogus'", 2),
        (["query", "--level", "error..info"], "empty level range", 2),
        (["query", "--since", "yesterdayish"], "--since: invalid time 'yesterdayish'", 2),
        (["query", "--until", "2026-13-01"], "--until: invalid time '2026-13-01'", 2),
        (["query", "--since", "1h", "--until", "2h"], "is later than --until", 2),
        (["query", "--bogus"], "No such option: --bogus", 2),
        (["query", "--lines", "x"], "Invalid value for '--lines'", 2),
        (["query", "--lines", "-1"], "Invalid value for '--lines'", 2),
        (["query", "--pid", "abc"], "Invalid value for '--pid'", 2),
        (["query", "-o", "xml"], "'xml' is not one of", 2),
        (["query", "--since"], "requires an argument", 2),
        (["bogus"], "No such command 'bogus'", 2),
        (["sql"], "Missing argument 'SQL'", 2),
        (["sql", "SELEC 1"], 'near "SELEC": syntax error', 2),
        (["sql", "SELECT * FROM nowhere"], "no such table: nowhere", 2),
        (["sql", "-o", "xml", "SELECT 1"], "'xml' is not one of", 2),
    ],
)
def test_bad_input_is_one_line(
    kextlog: Kextlog, populated: PopulatedStore, args: list[str], fragment: str, code: int
) -> None:
    result = kextlog(*args)
    assert_one_line_error(result, fragment)
    assert result.returncode == code


def test_query_streams_into_a_closed_pipe_quietly(populated: PopulatedStore) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), KEXTLOG_DB=str(populated.path))
    process = subprocess.Popen(
        [sys.executable, "-m", "kextlog_store.cli", "query"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    error = process.stderr.read()
    process.wait(timeout=60)
    assert error == ""
    assert process.returncode == 1


def test_query_does_not_load_alembic_or_cffi(populated: PopulatedStore) -> None:
    """Nor the renderers of other commands (the CLI declares their formats
    from render/formats.py)."""
    probe = (
        "import sys\n"
        "from kextlog_store import cli\n"
        "sys.argv = ['kextlog', 'query', '-n', '1', '-p', 'error', '-S', '1d']\n"
        "try:\n"
        "    cli.main()\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        "heavy = {'alembic', 'cffi', '_cffi_backend', 'rich', 'mako', 'sqlalchemy', 're2'}\n"
        "others = {'kextlog_store.render.figures', 'kextlog_store.render.rows'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in others\n"
        "             or m.startswith('kextlog_store._native')), file=sys.stderr)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), KEXTLOG_DB=str(populated.path))
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "[]"
    assert len(result.stdout.splitlines()) == 1


# --- sql --------------------------------------------------------------------


def test_sql_delete_fails_and_deletes_nothing(kextlog: Kextlog, populated: PopulatedStore) -> None:
    before = content_checksum(populated.path)
    for table in ("records", "instances", "losses", "levels"):
        result = kextlog("sql", f"DELETE FROM {table}")
        assert_one_line_error(result, f"read-only: DELETE on table {table}")
        assert result.returncode == 1
    assert content_checksum(populated.path) == before
    with sqlite3.connect(f"file:{populated.path}?mode=ro", uri=True) as connection:
        assert connection.execute("SELECT count(*) FROM records").fetchone() == (300,)
    connection.close()


def test_sql_table(kextlog: Kextlog, populated: PopulatedStore) -> None:
    counts = {level: len(populated.select(levels={level})) for level in Level}
    result = kextlog(
        "sql", "SELECT level, count(*) AS n FROM log GROUP BY level ORDER BY level_number"
    )
    width = max(len(str(n)) for n in counts.values())
    assert lines_of(result) == [
        "level    " + "n".rjust(width),
        "-------  " + "-" * width,
        *(f"{level.label:<7}  {counts[level]:>{width}}" for level in Level),
    ]


def test_sql_json_and_stdin(kextlog: Kextlog, populated: PopulatedStore) -> None:
    sql = "SELECT seq, process, message FROM log WHERE pid = 312 ORDER BY time_ns, seq LIMIT 5"
    expected = [
        {"seq": r.seq, "process": r.process, "message": r.message}
        for r in sorted(populated.select(pids={312}), key=lambda r: (r.time_ns, r.seq))[:5]
    ]
    got = lines_of(kextlog("sql", "-o", "json", sql))
    assert [json.loads(line) for line in got] == expected
    assert lines_of(kextlog("sql", "--output", "json", "-", input=sql + "\n")) == got


def test_sql_attach_writes_no_file(
    kextlog: Kextlog, populated: PopulatedStore, tmp_path: Path
) -> None:
    target = tmp_path / "stolen.db"
    assert_one_line_error(kextlog("sql", f"VACUUM INTO '{target}'"), "read-only")
    assert_one_line_error(kextlog("sql", f"ATTACH '{target}' AS x"), "read-only")
    assert not target.exists()


def test_sql_on_a_missing_database(kextlog: Kextlog, db_path: Path) -> None:
    assert_one_line_error(kextlog("sql", "SELECT 1"), "no kextlog database")
    assert not db_path.exists()


def test_sql_is_interrupted_by_ctrl_c(populated: PopulatedStore) -> None:
    assert populated.path is not None
    endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT max(i) FROM n"
    process = kextlog_process(str(populated.path), "sql", "--timeout", "600", endless)
    wait_until_reading(process, populated.path)  # into the statement
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert (process.returncode, out, err) == (130, "", "")


# --- db, version, help ------------------------------------------------------


def test_db_upgrade_and_current(kextlog: Kextlog, db_path: Path) -> None:
    assert_one_line_error(kextlog("db", "current"), "no kextlog database")
    assert not db_path.exists()
    assert lines_of(kextlog("db", "upgrade")) == [migrate.head()]
    assert db_path.exists()
    assert lines_of(kextlog("db", "current")) == [migrate.head()]
    assert lines_of(kextlog("db", "upgrade")) == [migrate.head()]  # idempotent
    assert lines_of(kextlog("query")) == []


def test_db_current_of_an_empty_database(kextlog: Kextlog, db_path: Path) -> None:
    sqlite3.connect(db_path).close()
    assert lines_of(kextlog("db", "current")) == ["none"]


def test_db_upgrade_refuses_a_foreign_database(kextlog: Kextlog, db_path: Path) -> None:
    connection = sqlite3.connect(db_path)
    connection.execute("CREATE TABLE t (x)")
    connection.close()
    assert_one_line_error(kextlog("db", "upgrade"), "not a kextlog database")


def test_version(kextlog: Kextlog) -> None:
    assert lines_of(kextlog("--version")) == [f"kextlog {__version__}"]


def test_help(kextlog: Kextlog) -> None:
    text = "\n".join(lines_of(kextlog("query", "--help")))
    for option in ("--level", "--since", "--until", "--pid", "--lines", "--output", "--utc"):
        assert option in text
    assert "kextlog query --level error --since 1h" in text
    assert "-- 120 records lost (seqs 5001..5120 of instance 0690a5df, ring full) --" in text
    words = " ".join(text.split())
    assert "no markers" in words and 'kextlog sql -o json "SELECT * FROM lost"' in words
    assert "sql" in "\n".join(lines_of(kextlog("--help")))


# --- main() in-process: the error paths a subprocess cannot easily provoke ----


def run_main(args: list[str]) -> int:
    from kextlog_store import cli

    with pytest.raises(SystemExit) as caught:
        cli.main(args)
    return int(caught.value.code or 0)


def test_an_unexpected_failure_is_still_one_line(
    populated: PopulatedStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kextlog_store import query

    def broken(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(query, "found", broken)
    monkeypatch.delenv("KEXTLOG_DEBUG", raising=False)
    assert run_main(["query", "--db", str(populated.path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "kextlog: error: OSError: [Errno 28] No space left on device"
        " (KEXTLOG_DEBUG=1 shows the traceback)\n"
    )
    monkeypatch.setenv("KEXTLOG_DEBUG", "1")
    assert run_main(["query", "--db", str(populated.path)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("Traceback (most recent call last):\n")
    assert err.endswith("OSError: [Errno 28] No space left on device\n")


def test_ctrl_c_exits_130_quietly(
    populated: PopulatedStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kextlog_store import query

    def interrupted(*_args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(query, "found", interrupted)
    assert run_main(["query", "--db", str(populated.path)]) == 130
    assert capsys.readouterr() == ("", "")


# --- query: every filter, exactly ---------------------------------------------


@pytest.mark.parametrize(
    ("args", "selection"),
    [
        (["--process", "mds*"], {"processes": lambda name: name == "mds_stores"}),
        (
            ["--process", "Finder", "--process", "s?nt*"],
            {"processes": lambda name: name in ("Finder", "santad")},
        ),
        (["-g", "denied"], {"messages": lambda message: "denied" in message.lower()}),
        (["--grep", "DENIED"], {"messages": lambda message: "DENIED" in message}),
        (["-g", "café|#1[0-9]$"], {"messages": re.compile("café|#1[0-9]$", re.I).search}),
        (["--instance", "-1"], {"instances": {1}}),
        (["--instance", "05ab"], {"instances": {2}}),
        (["--source", "unix:/run/sim-b.sock"], {"instances": {2}}),
        (["--instance", "0", "--source", "unix:/run/sim-a.sock"], {"instances": {1}}),
        (
            ["-p", "info..warning", "--pid", "312", "--pid", "4242", "-g", "o", "-S", "2h"],
            {
                "levels": {Level.INFO, Level.WARNING},
                "pids": {312, 4242},
                "messages": lambda message: "o" in message.lower(),
                "since_ns": -120,
            },
        ),
    ],
)
def test_query_filters(
    kextlog: Kextlog, lossy: PopulatedStore, args: list[str], selection: dict[str, object]
) -> None:
    if selection.get("since_ns") == -120:
        selection["since_ns"] = lossy.now_ns - 120 * MINUTE
    expected = as_text(lossy.entries(**selection))
    assert lines_of(kextlog("query", *args)) == expected
    assert [line for line in expected if not line.startswith("-- ")] or args[1] == "DENIED"


def test_query_reverse(kextlog: Kextlog, lossy: PopulatedStore) -> None:
    assert lines_of(kextlog("query", "-r")) == as_text(lossy.entries(reverse=True))
    assert lines_of(kextlog("query", "--reverse", "-n", "3", "-p", "err")) == as_text(
        lossy.entries(reverse=True, lines=3, levels={Level.ERROR})
    )


def test_query_cursors(kextlog: Kextlog, lossy: PopulatedStore) -> None:
    got = lines_of(kextlog("query", "-n", "5", "--show-cursor"))
    assert got[:-1] == as_text(lossy.entries(lines=5))
    newest = lossy.records[-1]
    cursor = f"i={newest.instance},s={newest.seq},t={newest.time_ns}"
    assert got[-1] == f"-- cursor: {cursor}"
    assert lines_of(kextlog("query", "--cursor", cursor)) == as_text(lossy.entries(lines=1))
    # Nothing after it but the losses placed later; the cursor stays where it was.
    got = lines_of(kextlog("query", "--after-cursor", cursor, "--show-cursor"))
    assert got == [marker(lossy.loss(1, 181)), marker(lossy.loss(2, 121)), f"-- cursor: {cursor}"]
    # Newest first: the cursor is still the newest record's, to continue from.
    got = lines_of(kextlog("query", "-r", "-n", "2", "-o", "cat", "--show-cursor"))
    assert got[-1] == f"-- cursor: {cursor}"
    middle = lossy.records[150]
    after = f"i={middle.instance},s={middle.seq},t={middle.time_ns}"
    ids = {instance.uuid: instance.id for instance in lossy.instances}
    assert lines_of(kextlog("query", "--after-cursor", after, "-p", "warn")) == as_text(
        lossy.entries(
            after=(middle.time_ns, ids[middle.instance], middle.seq),
            levels={Level.WARNING, Level.ERROR},
        )
    )


# --- query: every format, exactly ---------------------------------------------


def iso(time_ns: int, offset: timedelta = timedelta(0)) -> str:
    return str(as_json(Record(time_ns, Level.INFO, 0, 0, "", "", 0, ""), offset)["time"])


def short_iso(record: Record) -> str:
    return f"{iso(record.time_ns)} {short(record).split(' ', 3)[3]}"


def test_query_short_iso(kextlog: Kextlog, lossy: PopulatedStore) -> None:
    assert lines_of(kextlog("query", "-o", "short-iso")) == [
        marker(entry) if isinstance(entry, Loss) else short_iso(entry) for entry in lossy.entries()
    ]
    assert short_iso(lossy.records[0]).startswith(iso(lossy.records[0].time_ns) + " ")


def test_query_cat(kextlog: Kextlog, lossy: PopulatedStore) -> None:
    assert lines_of(kextlog("query", "-o", "cat", "-n", "30")) == [
        marker(entry) if isinstance(entry, Loss) else entry.message
        for entry in lossy.entries(lines=30)
    ]


def test_query_json_pretty(kextlog: Kextlog, lossy: PopulatedStore) -> None:
    out = kextlog("query", "-o", "json-pretty", "-n", "3").stdout
    chunks = out.split("}\n")
    assert chunks[-1] == ""
    assert [json.loads(chunk + "}") for chunk in chunks[:-1]] == [
        as_json(record) for record in lossy.records[-3:]
    ]
    assert chunks[0].startswith('{\n  "time": ')


def test_query_csv(kextlog: Kextlog, lossy: PopulatedStore) -> None:
    result = kextlog("query", "-o", "csv")
    assert result.returncode == 0 and result.stderr == ""
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == [*as_json(lossy.records[0]), "priority", "facility", "fields"]
    assert rows[1:] == [
        [*(str(value) for value in as_json(r).values()), "", "", ""] for r in lossy.records
    ]
    assert '"denied ""' in result.stdout  # quotes doubled, as CSV does


def expected_table(entries: list[Entry]) -> list[str]:
    """-o table: ISO times; pid and tid right-aligned; a marker in the message column."""
    rows = [
        [iso(entry.time_ns), "", "", "", "", marker(entry)]
        if isinstance(entry, Loss)
        else [
            iso(entry.time_ns),
            entry.level.label,
            str(entry.pid),
            str(entry.tid),
            entry.process,
            entry.message,
        ]
        for entry in entries
    ]
    head = ["time", "level", "pid", "tid", "process", "message"]
    widths = [max(len(cell) for cell in column) for column in zip(head, *rows, strict=True)]
    right = [False, False, True, True, False, False]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.rjust(width) if align else cell.ljust(width)
            for cell, width, align in zip(cells, widths, right, strict=True)
        ).rstrip()

    return [line(head), line(["-" * width for width in widths])] + [line(row) for row in rows]


def test_query_table(kextlog: Kextlog, lossy: PopulatedStore) -> None:
    entries_ = lossy.entries(lines=12)
    assert any(isinstance(entry, Loss) for entry in entries_)
    assert lines_of(kextlog("query", "-o", "table", "-n", "12")) == expected_table(entries_)


# --- colour and the pager, on a terminal ----------------------------------------


def on_terminal(db: Path, *args: str, **env: str | None) -> tuple[int, str]:
    """Run kextlog with its stdout on a pseudo-terminal (TERM=xterm unless
    env says, None: unset); its exit status and what the terminal got
    (without the terminal's own \\r)."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "KEXTLOG_DB": str(db), "TZ": "UTC"}
    environment.pop("NO_COLOR", None)
    environment["TERM"] = "xterm"
    environment.update({name: value for name, value in env.items() if value is not None})
    for name in [name for name, value in env.items() if value is None]:
        environment.pop(name, None)
    main, child = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "kextlog_store.cli", *args],
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=child,
        stderr=subprocess.PIPE,
    )
    os.close(child)
    received = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal's other side closed
            break
        if not chunk:
            break
        received += chunk
    os.close(main)
    assert process.stderr is not None
    assert process.stderr.read() == b""
    return process.wait(timeout=30), received.decode().replace("\r\n", "\n")


RED, YELLOW, DIM, BOLD, RESET = "\x1b[1;31m", "\x1b[1;33m", "\x1b[2m", "\x1b[1m", "\x1b[0m"
STYLES = {Level.ERROR: RED, Level.WARNING: YELLOW, Level.DEBUG: DIM, Level.TRACE: DIM}


def coloured(entry: Entry) -> str:
    if isinstance(entry, Loss):
        return f"{BOLD}{marker(entry)}{RESET}"
    style = STYLES.get(entry.level)
    return f"{style}{short(entry)}{RESET}" if style else short(entry)


def test_colour_by_level_on_a_terminal(lossy: PopulatedStore) -> None:
    code, text = on_terminal(lossy.path, "query", "-n", "40", "--no-pager")
    assert code == 0
    assert text.splitlines() == [coloured(entry) for entry in lossy.entries(lines=40)]
    assert {RED, YELLOW, DIM, BOLD} <= {style for style in STYLES.values()} | {BOLD}
    assert all(style in text for style in (RED, YELLOW, DIM, BOLD))


@pytest.mark.parametrize("env", [{"NO_COLOR": "1"}, {"TERM": "dumb"}])
def test_no_colour_when_asked(lossy: PopulatedStore, env: dict[str, str]) -> None:
    code, text = on_terminal(lossy.path, "query", "-n", "40", "--no-pager", **env)
    assert code == 0
    assert text.splitlines() == as_text(lossy.entries(lines=40))


def test_no_colour_into_a_pipe(kextlog: Kextlog, lossy: PopulatedStore) -> None:
    result = kextlog("query", env={"NO_COLOR": ""})  # set but empty: no-color.org says colour
    assert "\x1b" not in result.stdout and lines_of(result) == as_text(lossy.entries())


def test_the_pager_on_a_terminal(lossy: PopulatedStore) -> None:
    pager = {"KEXTLOG_PAGER": "sed s/^/paged:/"}
    code, text = on_terminal(lossy.path, "query", "-n", "5", "-p", "err", **pager)
    assert code == 0
    expected = [coloured(entry) for entry in lossy.entries(lines=5, levels={Level.ERROR})]
    assert text.splitlines() == [f"paged:{line}" for line in expected]
    code, text = on_terminal(lossy.path, "sql", "SELECT 1 AS one", **pager)
    assert (code, text) == (0, "paged:one\npaged:---\npaged:  1\n")


@pytest.mark.parametrize("term", ["dumb", None])
def test_no_pager_on_a_terminal_that_cannot_run_one(
    lossy: PopulatedStore, term: str | None
) -> None:
    """As journalctl: with TERM dumb or unset, less would wait for RETURN."""
    pager = {"KEXTLOG_PAGER": "sed s/^/paged:/", "TERM": term, "NO_COLOR": "1"}
    code, text = on_terminal(lossy.path, "query", "-n", "5", "-p", "err", **pager)
    assert code == 0
    assert text.splitlines() == as_text(lossy.entries(lines=5, levels={Level.ERROR}))
    code, text = on_terminal(lossy.path, "sql", "SELECT 1 AS one", **pager)
    assert (code, text) == (0, "one\n---\n  1\n")


@pytest.mark.parametrize("output", [output.value for output in RecordFormat])
def test_no_entries_on_a_terminal(populated: PopulatedStore, output: str) -> None:
    """As journalctl: a query that shows no record says so on a terminal
    (after the header of csv), and into a pipe prints nothing of it."""
    for selection in (["-g", "no such message"], ["-n", "0"]):
        args = ("query", "-o", output, *selection, "--no-pager")
        code, text = on_terminal(populated.path, *args)
        assert code == 0
        assert text.endswith("\n-- No entries --\n") or text == "-- No entries --\n"
        assert text.count("\n") <= {"csv": 2, "table": 3}.get(output, 1)  # and a header
        assert "No entries" not in run_kextlog(*args, "--db", str(populated.path)).stdout


def test_the_pager_gets_less_options_unless_less_has_its_own(populated: PopulatedStore) -> None:
    pager = {"PAGER": "sh -c 'echo LESS=$LESS; cat >/dev/null'"}
    assert on_terminal(populated.path, "query", **pager) == (0, "LESS=FRSXMK\n")
    assert on_terminal(populated.path, "query", **pager, LESS="R") == (0, "LESS=R\n")
    # KEXTLOG_PAGER wins over PAGER; '' and cat mean no pager.
    last = populated.records[-1].message + "\n"
    for no_pager in ("", "cat"):
        args = ("query", "-n", "1", "-o", "cat")
        assert on_terminal(populated.path, *args, **pager, KEXTLOG_PAGER=no_pager) == (0, last)


@pytest.mark.parametrize("args", [["--no-pager"], ["-f", "-n", "0"]], ids=["no-pager", "follow"])
def test_no_pager_when_asked_or_following(lossy: PopulatedStore, args: list[str]) -> None:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "KEXTLOG_DB": str(lossy.path)}
    environment["KEXTLOG_PAGER"] = "sed s/^/paged:/"
    main, child = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "kextlog_store.cli", "query", "-n", "1", "-o", "cat", *args[:1]],
        env=environment,
        stdout=child,
        stderr=subprocess.PIPE,
    )
    os.close(child)
    line = b""
    while not line.endswith(b"\n"):
        line += os.read(main, 1)
    if args[0] == "-f":
        process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == (130 if args[0] == "-f" else 0)  # Ctrl-C ends -f
    os.close(main)
    assert line.decode().rstrip("\r\n") == lossy.records[-1].message


def test_quitting_the_pager_early_is_quiet(lossy: PopulatedStore) -> None:
    code, text = on_terminal(lossy.path, "query", KEXTLOG_PAGER="head -n 1")
    assert (code, text) == (0, coloured(lossy.entries()[0]) + "\n")


# --- query: errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["-g", "a("], "--grep: invalid regular expression 'a(' (missing ): a()"),
        (["--cursor", "nope"], "--cursor: invalid cursor 'nope': expected what --show-cursor"),
        (["--after-cursor", "i=1,s=2,t=3"], "--after-cursor: invalid cursor"),
        (
            ["--after-cursor", "i=" + "0" * 32 + ",s=2,t=3"],
            "--after-cursor: instance 00000000000000000000000000000000 is not in this store",
        ),
        (["--instance", "beef"], "--instance: no instance 'beef' in this store"),
        (["--instance", "-5"], "--instance -5: the store has 2 instances"),
        (
            [
                "--cursor",
                "i=" + "0" * 32 + ",s=2,t=3",
                "--after-cursor",
                "i=" + "0" * 32 + ",s=2,t=3",
            ],
            "give --cursor or --after-cursor, not both",
        ),
    ],
)
def test_query_errors_are_one_line(
    kextlog: Kextlog, populated: PopulatedStore, args: list[str], fragment: str
) -> None:
    result = kextlog("query", *args)
    assert_one_line_error(result, fragment)
    assert result.returncode == 2


# --- sql: parameters, formats, limits ------------------------------------------------


def test_sql_parameters(kextlog: Kextlog, populated: PopulatedStore) -> None:
    pid_312 = len(populated.select(pids={312}))
    sql = "SELECT count(*) AS n FROM log WHERE pid = :pid AND process = :name"
    assert lines_of(
        kextlog("sql", "-o", "csv", "-p", "pid", "312", "-p", "name", "mds_stores", sql)
    ) == [
        "n",
        str(pid_312),
    ]
    # Integers are numbers: a comparison with an expression works, and LIMIT.
    sql = "SELECT count(*) > :n AS more, :n + 1 AS next FROM log"
    assert lines_of(kextlog("sql", "-o", "json", "--param", "n", "299", sql)) == [
        '{"more": 1, "next": 300}'
    ]
    sql = "SELECT :a AS a, typeof(:a) AS t, :b AS b, typeof(:b) AS u"
    assert lines_of(kextlog("sql", "-o", "json", "-p", "a", "0012", "-p", ":b", "-7", sql)) == [
        '{"a": "0012", "t": "text", "b": -7, "u": "integer"}'
    ]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["SELECT :a", "-p", "a"], "Option '-p' requires 2 arguments"),
        (["-p", "a", "1", "-p", "a", "2", "SELECT :a"], "-p: parameter 'a' is given twice"),
        (["-p", "a b", "1", "SELECT 1"], "-p: 'a b' is not a parameter name"),
        (["SELECT :missing"], "SQL: You did not supply a value for binding"),  # 3.10 says less
        (
            ["SELECT ?"],
            "Binding 1 has no name, but you supplied a dictionary (which has only names)."
            " (use :NAME in the SQL and -p NAME VALUE)",
        ),
        (
            ["SELECT 1 WHERE 'x' REGEXP '('"],
            "SQL: REGEXP: invalid regular expression '(' (missing ): ()",
        ),
        (["--timeout", "0", "SELECT 1"], "Invalid value for '--timeout'"),
        (["--max-rows", "-1", "SELECT 1"], "Invalid value for '--max-rows'"),
    ],
)
def test_sql_usage_errors(
    kextlog: Kextlog, populated: PopulatedStore, args: list[str], fragment: str
) -> None:
    result = kextlog("sql", *args)
    assert_one_line_error(result, fragment)
    assert result.returncode == 2


def test_sql_regexp(kextlog: Kextlog, populated: PopulatedStore) -> None:
    got = lines_of(
        kextlog("sql", "-o", "csv", "SELECT count(*) FROM log WHERE message REGEXP 'den?ied'")
    )
    assert got == ["count(*)", str(len(populated.select(messages=lambda m: "denied" in m)))]


def test_sql_json_pretty_and_csv(kextlog: Kextlog, populated: PopulatedStore) -> None:
    sql = "SELECT 1 AS a, 'x,\"y\"' AS b, NULL AS c, x'00ff' AS d UNION ALL SELECT 2, 'z', 3, 4"
    assert kextlog("sql", "-o", "json-pretty", sql).stdout == (
        '{\n  "a": 1,\n  "b": "x,\\"y\\"",\n  "c": null,\n  "d": "x\'00ff\'"\n}\n'
        '{\n  "a": 2,\n  "b": "z",\n  "c": 3,\n  "d": 4\n}\n'
    )
    assert kextlog("sql", "-o", "csv", sql).stdout == ('a,b,c,d\n1,"x,""y""",,x\'00ff\'\n2,z,3,4\n')


COUNTING = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {}) SELECT i FROM n"
)


def test_sql_row_cap(kextlog: Kextlog, populated: PopulatedStore) -> None:
    result = kextlog("sql", "-o", "csv", "--max-rows", "5", COUNTING.format(1000))
    assert result.returncode == 3
    assert result.stdout == "i\n1\n2\n3\n4\n5\n"
    assert result.stderr == "kextlog: stopped after 5 rows: raise --max-rows (0 for all)\n"
    # Exactly the cap is not cut; 0 is no cap.
    assert lines_of(kextlog("sql", "-o", "csv", "--max-rows", "5", COUNTING.format(5)))[-1] == "5"
    assert (
        len(lines_of(kextlog("sql", "-o", "csv", "--max-rows", "0", COUNTING.format(20000))))
        == 20001
    )
    # The default cap is 10,000 rows.
    result = kextlog("sql", "-o", "csv", COUNTING.format(10001))
    assert (result.returncode, len(result.stdout.splitlines())) == (3, 10001)
    assert result.stderr == "kextlog: stopped after 10,000 rows: raise --max-rows (0 for all)\n"


def test_sql_time_limit(kextlog: Kextlog, populated: PopulatedStore) -> None:
    endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT max(i) FROM n"
    started = time.monotonic()
    result = kextlog("sql", "--timeout", "0.5", endless)
    assert_one_line_error(result, "SQL stopped after the time limit of 0.5 s: raise --timeout")
    assert result.returncode == 1
    assert time.monotonic() - started < 30  # it ends (a loaded machine starts Python slowly)


# --- help and completion -----------------------------------------------------------------


COMMANDS = [
    ["query"],
    ["sql"],
    ["stats"],
    ["prune"],
    ["ingest"],
    ["status"],
    ["simulate"],
    ["db", "upgrade"],
    ["db", "current"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_examples(kextlog: Kextlog, command: list[str]) -> None:
    text = kextlog(*command, "--help").stdout
    examples = text[text.index("Examples:") :].splitlines()[1:]
    assert [line for line in examples if line.strip().startswith(f"kextlog {command[0]}")]


def test_show_completion_prints_a_script(kextlog: Kextlog) -> None:
    result = kextlog("--show-completion", "bash", env={"SHELL": "/bin/bash"})
    assert result.returncode == 0
    assert "_KEXTLOG_COMPLETE=complete_bash" in result.stdout
    assert "complete -o default -F _kextlog_completion kextlog" in result.stdout


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("kextlog qu", ["query"]),
        ("kextlog st", ["stats", "status"]),
        ("kextlog query --level w", ["warning"]),
        (
            "kextlog query -p info..",
            ["info..trace", "info..debug", "info..info", "info..warning", "info..error"],
        ),
        ("kextlog query -o short", ["short", "short-iso"]),
        ("kextlog prune --level e", ["error"]),
    ],
)
def test_completion(kextlog: Kextlog, words: str, expected: list[str]) -> None:
    env = {
        "_KEXTLOG_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - 1),
    }
    result = kextlog(env=env)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split()) == sorted(expected)


# --- terminal safety: hostile producer text ------------------------------------------

UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
HOSTILE = (
    "esc \x1b[31mred\x1b[0m \x1b]0;title\x07",
    "csi \x9b31m 8-bit \x9bm, nel \x85 osc \x9d0;t\x9c, del \x7f",
    "cr\rover",
    "crlf\r\nnext",
    'quote " comma , newline\nline two',
    "bidi \u202eevil\u202c \u2066iso\u2069",
    "nul became \ufffd, tab\tand é ✓",
)


@pytest.fixture
def hostile(empty_store: Path, db_url: str) -> list[Record]:
    """A store whose records carry every kind of hostile text, in message and process."""
    from tests.conftest import Instance, insert_records

    instance = Instance(1, "0690a5df1c2e4b7a9d3f0a1b2c3d4e5f", "unix:/run/\x9bx.sock", 7, 0)
    now = time.time_ns()
    records = [
        Record(now - (10 - seq) * NS, Level.INFO, 100, 1, f"p{seq}\x9b1m\x1b", text, seq,
               instance.uuid, instance.source)
        for seq, text in enumerate(HOSTILE, 1)
    ]  # fmt: skip
    insert_records(db_url, [instance], records)
    return records


@pytest.mark.parametrize("output", ["short", "short-iso", "cat", "table", "json", "json-pretty"])
def test_query_never_writes_a_control_character(
    kextlog: Kextlog, hostile: list[Record], output: str
) -> None:
    result = kextlog("query", "-o", output)
    assert result.returncode == 0 and result.stderr == ""
    assert not UNSAFE.search(result.stdout)


def test_sql_never_writes_a_control_character(kextlog: Kextlog, hostile: list[Record]) -> None:
    for output in ("table", "json", "json-pretty"):
        result = kextlog("sql", "-o", output, "SELECT process AS 'p\x9b', message FROM log")
        assert result.returncode == 0 and not UNSAFE.search(result.stdout), output
    rows = [
        json.loads(line) for line in lines_of(kextlog("sql", "-o", "json", "SELECT * FROM log"))
    ]
    assert [row["message"] for row in rows] == list(HOSTILE)


def test_query_csv_round_trips_through_csv_and_sqlite_utils(
    hostile: list[Record], db_path: Path, tmp_path: Path
) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), KEXTLOG_DB=str(db_path), TZ="UTC")
    for args in (["query", "-o", "csv"], ["sql", "-o", "csv", "SELECT * FROM log"]):
        # Bytes, as a file gets them: text mode would read a CR as a newline.
        result = subprocess.run(
            [sys.executable, "-m", "kextlog_store.cli", *args],
            env=env, capture_output=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0 and result.stderr == b""
        exported = tmp_path / "export.csv"
        exported.write_bytes(result.stdout)
        with exported.open(newline="", encoding="utf-8") as file:
            rows = list(csv.DictReader(file))
        assert [(row["process"], row["message"]) for row in rows] == [
            (record.process, record.message) for record in hostile
        ]
        copy = tmp_path / "copy.db"
        loaded = subprocess.run(
            [str(Path(sys.executable).with_name("sqlite-utils")), "insert", str(copy), "log",
             str(exported), "--csv"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert loaded.returncode == 0, loaded.stderr
        with sqlite3.connect(copy) as connection:
            back = connection.execute("SELECT process, message FROM log").fetchall()
        copy.unlink()
        # sqlite-utils reads the file with universal newlines, which turn
        # every CR into a newline, also inside quotes: the one difference.
        assert back == [
            (record.process, record.message.replace("\r\n", "\n").replace("\r", "\n"))
            for record in hostile
        ]


def test_csv_on_a_terminal_is_escaped(hostile: list[Record], db_path: Path) -> None:
    for args in (["query", "-o", "csv"], ["sql", "-o", "csv", "SELECT message FROM log"]):
        code, text = on_terminal(db_path, *args, "--no-pager")
        assert code == 0
        assert not UNSAFE.search(text.replace("\r", "")), args
        assert "esc \\x1b[31mred" in text


# --- bounded reading: hostile regexes and SQL --------------------------------------------

# An RE2 pattern as slow as RE2 gets (a large program, no DFA on random
# text): about a second a kilobyte of random a and b.
SLOW_PATTERN = "|".join(f"(a|b)*{'ab'[i % 2]}(a|b){{{1000 - i % 500}}}c" for i in range(150))


@pytest.fixture
def ab_store(empty_store: Path, db_url: str) -> Path:
    """Fifty records whose messages are a kilobyte of random a and b."""
    import random

    from tests.conftest import Instance, insert_records

    rng = random.Random(13)
    instance = Instance(1, "0690a5df1c2e4b7a9d3f0a1b2c3d4e5f", "unix:/run/x.sock", 50, 0)
    now = time.time_ns()
    records = [
        Record(now - seq * NS, Level.INFO, 1, 1, "p", "".join(rng.choices("ab", k=1000)), seq,
               instance.uuid)
        for seq in range(1, 51)
    ]  # fmt: skip
    insert_records(db_url, [instance], records)
    return empty_store


def kextlog_process(db: str, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), KEXTLOG_DB=db, TZ="UTC")
    return subprocess.Popen(
        [sys.executable, "-m", "kextlog_store.cli", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def cpu_seconds(pid: int) -> float:
    """The CPU time process pid has used, user and system."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_reading(process: subprocess.Popen[str], db: Path, timeout: float = 60) -> None:
    """Until the process has mapped the store's -shm (it reads the store)
    and then spent half a second of CPU: it is in its statement."""
    deadline = time.monotonic() + timeout
    maps = Path(f"/proc/{process.pid}/maps")
    while f"{db}-shm" not in maps.read_text():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    start = cpu_seconds(process.pid)
    while cpu_seconds(process.pid) < start + 0.5:
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)


@pytest.mark.parametrize(
    "args",
    [
        ["query", "--grep", SLOW_PATTERN],
        [
            "sql",
            "--timeout",
            "600",
            f"SELECT count(*) FROM log WHERE message REGEXP '{SLOW_PATTERN}'",
        ],
    ],
    ids=["query --grep", "sql REGEXP"],
)
def test_ctrl_c_in_a_long_search_exits_130_quietly(ab_store: Path, args: list[str]) -> None:
    process = kextlog_process(str(ab_store), *args)
    wait_until_reading(process, ab_store)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert (process.returncode, out, err) == (130, "", "")


def has_open(process: subprocess.Popen[str], path: Path) -> bool:
    """Whether process has path open: it has loaded and reached the store."""
    fds = Path(f"/proc/{process.pid}/fd")
    return any(os.path.realpath(fd) == str(path) for fd in fds.iterdir() if fd.exists())


@pytest.mark.parametrize(
    "args",
    [
        ["query"],
        ["query", "--follow"],
        ["sql", "SELECT count(*) FROM log"],
        ["stats"],
        ["prune", "--older-than", "1s"],
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_ctrl_c_in_any_command_exits_130_quietly(
    populated: PopulatedStore, args: list[str]
) -> None:
    """Each command, stopped while it works: here waiting for the store,
    which another process holds locked (ingest while it commits, a backup)."""
    assert populated.path is not None
    holder = sqlite3.connect(populated.path, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")  # readers too must wait: a WAL store lets them
    try:
        process = kextlog_process(str(populated.path), *args)
        deadline = time.monotonic() + 60
        while not has_open(process, populated.path):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        holder.rollback()
        holder.close()
    assert (process.returncode, out, err) == (130, "", "")
    if args[0] == "prune":  # nothing was removed half-way
        assert run_kextlog("sql", "--db", str(populated.path), "-o", "json",
                           "SELECT count(*) AS n FROM records").stdout == (
            f'{{"n": {len(populated.records)}}}\n'
        )  # fmt: skip


def test_ctrl_c_while_the_command_loads_exits_130_quietly(populated: PopulatedStore) -> None:
    """Ctrl-C as soon as the command runs: kextlog's modules still loading
    (Python reports each import as it ends, -X importtime)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), KEXTLOG_DB=str(populated.path))
    command = [sys.executable, "-X", "importtime", "-m", "kextlog_store.cli", "query"]
    for _ in range(3):
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert process.stderr is not None
        while not process.stderr.readline().rstrip().endswith(" typer._click.exceptions"):
            assert process.poll() is None
        process.send_signal(signal.SIGINT)  # while the rest of typer and kextlog load
        out, err = process.communicate(timeout=60)
        assert (process.returncode, out) == (130, "")
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_ctrl_c_in_a_long_postgresql_statement_exits_130_quietly(
    populated: PopulatedStore,
) -> None:
    from sqlalchemy import create_engine, text

    process = kextlog_process(populated.url, "sql", "--timeout", "600", "SELECT pg_sleep(300)")
    watcher = create_engine(populated.url)
    running = text("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(300)'")
    deadline = time.monotonic() + 60
    while True:  # a transaction sees one snapshot of pg_stat_activity: one each
        with watcher.connect() as connection:
            if connection.execute(running).scalar():
                break
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    watcher.dispose()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert (process.returncode, out, err) == (130, "", "")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_grep_of_hostile_messages_ends(kextlog: Kextlog, store_url: str) -> None:
    """Messages a producer wrote to make a backtracking search run for ever."""
    from tests.conftest import Instance, insert_records

    instance = Instance(1, "0690a5df1c2e4b7a9d3f0a1b2c3d4e5f", "unix:/run/x.sock", 50, 0)
    now = time.time_ns()
    texts = ["a" * 1000 + "b", "x" * 1000, "ab" * 500]
    records = [
        Record(now - seq * NS, Level.INFO, 1, 1, "p", texts[seq % 3], seq, instance.uuid)
        for seq in range(1, 51)
    ]
    insert_records(store_url, [instance], records)
    started = time.monotonic()
    for pattern in ("(a+)+$", "(x+x+)+y", "(a|aa)*c", "(.*a){20}c"):
        result = kextlog("query", "--grep", pattern, "-o", "cat")
        assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), pattern
    assert time.monotonic() - started < 120


# Statements that run past the time limit: between SQLite's instructions
# (the progress handler stops them), and inside one call of a function,
# which nothing inside the process can interrupt (the process ends).
ENDLESS = {
    "REGEXP on every row": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n)"
    " SELECT count(*) FROM n WHERE printf('%.3000c', 'a') || i REGEXP '(a+)+$'",
    "REGEXP on every message": f"SELECT count(*) FROM log WHERE message REGEXP '{SLOW_PATTERN}'",
    "one long REGEXP": f"SELECT group_concat(message, '') REGEXP '{SLOW_PATTERN}' FROM log",
    "one long instr": "SELECT instr(printf('%.4000000c', 'a'), printf('%.2000000c', 'a') || 'b')",
    "a value doubling": "WITH RECURSIVE c(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM c)"
    " SELECT length(s) FROM c",
}


@pytest.mark.parametrize("sql", ENDLESS.values(), ids=ENDLESS.keys())
def test_sql_time_limit_covers_every_statement(kextlog: Kextlog, ab_store: Path, sql: str) -> None:
    started = time.monotonic()
    result = kextlog("sql", "--timeout", "1", "--max-bytes", "0", sql)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        "kextlog: error: SQL stopped after the time limit of 1 s: raise --timeout\n"
    )
    assert time.monotonic() - started < 50


def test_sql_bounds_memory_and_output(populated: PopulatedStore, tmp_path: Path) -> None:
    assert populated.path is not None
    env = dict(os.environ, PYTHONPATH=str(ROOT), KEXTLOG_DB=str(populated.path))

    def run(*args: str) -> tuple[int, bytes, str, float]:
        """Exit status, stdout (in a file), stderr, and peak RSS in MB."""
        out = tmp_path / "out"
        with out.open("wb") as stdout:
            process = subprocess.Popen(
                [sys.executable, "-m", "kextlog_store.cli", "sql", *args],
                env=env, stdout=stdout, stderr=subprocess.PIPE,
            )  # fmt: skip
            assert process.stderr is not None
            err = process.stderr.read().decode()
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
        return process.returncode, out.read_bytes(), err, usage.ru_maxrss / 1024

    too_big = (
        "kextlog: error: SQL: the statement needs more than --max-bytes (67,108,864 bytes)"
        " for a value or its work: raise --max-bytes (0 for no limit)\n"
    )
    for sql in (
        "SELECT zeroblob(500000000)",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400)"
        " SELECT length(group_concat(zeroblob(1000000))) FROM n",
        "SELECT length(replace(printf('%.1000000c', 'a'), 'a', printf('%.1000c', 'y')))",
        "SELECT " + ", ".join(["zeroblob(60000000)"] * 6),  # each fits, not all: the heap
    ):
        code, out, err, rss = run(sql)
        assert (code, out, err) == (1, b"", too_big), sql
        assert rss < 600, (sql, rss)
    # What is printed stops at --max-bytes: a whole row at a time.
    rows = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)"
    for output in ("table", "csv", "json"):
        code, out, err, _ = run(
            "-o", output, "--max-bytes", "1MB",
            f"{rows} SELECT i, printf('%.10000c', 'z') AS wide FROM n",
        )  # fmt: skip
        assert code == 3 and 900_000 < len(out) <= 1 << 20, output
        assert err.startswith("kextlog: stopped after ") and err.endswith(
            " rows, at --max-bytes 1MB: raise --max-bytes (0 for no limit)\n"
        )
    # A wide value pads every other row of a table: the padding counts too.
    code, out, err, rss = run(
        "--max-bytes", "2MB", f"{rows} SELECT CASE i WHEN 1 THEN printf('%.100000c', 'w')"
        " ELSE 'x' END AS wide, i FROM n",
    )  # fmt: skip
    assert code == 3 and len(out) <= 2 << 20


# --- every number and value a reader types is checked ----------------------------------

OUT_OF_RANGE = ["9223372036854775808", "-9223372036854775809", "1" + "0" * 30, "nan", "inf", "-inf"]
# What each command needs besides the option tried, so that it would run.
BASE_ARGS = {
    "query": [],
    "sql": ["SELECT :n"],
    "stats": [],
    "prune": [],
    "ingest": ["--source", "kmsg", "--check-config"],
    "simulate": ["--socket", "/nonexistent/kextlog.sock"],
    "status": [],
    "web": ["--port", "0"],  # were a value taken, it would serve until stopped
}
# Options that take text holding a number.
NUMBER_TEXT = {
    ("query", "--since"): ["@{}", "{}s", "{}"],
    ("query", "--until"): ["@{}", "{}d"],
    ("query", "--instance"): ["-{}", "{}"],
    ("query", "--cursor"): ["i=INSTANCE,s={},t=1", "i=INSTANCE,s=1,t={}"],
    ("query", "--after-cursor"): ["i=INSTANCE,s=17592186044416,t=1"],
    ("stats", "--bucket"): ["{}s", "1ns"],
    ("prune", "--older-than"): ["{}w"],
    ("prune", "--max-size"): ["{}GB"],
    ("sql", "--max-bytes"): ["{}", "{}GB"],
    ("sql", "--param"): ["n {}"],
    ("ingest", "--retain"): ["info={}d"],
    ("ingest", "--max-size"): ["{}"],
}  # fmt: skip


def number_cases() -> list[tuple[str, str, list[str]]]:
    """(command, option, arguments) for every numeric option and every
    option of NUMBER_TEXT, with each out-of-range value."""
    import typer

    from kextlog_store import cli

    group = typer.main.get_command(cli.app)
    cases = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        for parameter in command.params:
            option = max(parameter.opts, key=len)
            numeric = parameter.type.name.split()[0] in ("integer", "int", "float")
            if numeric and parameter.name != "version":
                cases += [(name, option, [option, value]) for value in OUT_OF_RANGE]
            for template in NUMBER_TEXT.get((name, option), []):
                for value in OUT_OF_RANGE[:3] if "{}" in template else [""]:
                    cases.append((name, option, [option, *template.format(value).split(" ")]))
    return cases


@pytest.fixture
def keep_signals() -> Iterator[None]:
    """ingest sets handlers of its own: back to pytest's afterwards."""
    saved = {
        number: signal.getsignal(number)
        for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


def test_every_out_of_range_number_is_a_usage_error(
    populated: PopulatedStore,
    capsys: pytest.CaptureFixture[str],
    keep_signals: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KEXTLOG_DEBUG", raising=False)
    cases = number_cases()
    assert len(cases) > 120 and {name for name, _, _ in cases} >= set(BASE_ARGS) - {"status"}
    wrong = []
    for command, option, arguments in cases:
        db = ["--db", str(populated.path)] if command != "simulate" else []
        arguments = [
            argument.replace("INSTANCE", populated.instances[0].uuid) for argument in arguments
        ]
        code = run_main([command, *BASE_ARGS[command], *arguments, *db])
        out, err = capsys.readouterr()
        short = option.lstrip("-")[:1] if option == "--param" else option
        if (
            code != 2
            or not err.startswith("kextlog: error: ")
            or err.count("\n") != 1
            or (option not in err and f"-{short}" not in err)
        ):
            wrong.append((arguments, code, err or out[:200]))
    assert wrong == [], "\n".join(map(repr, wrong))


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("postgresql://kextlog:s3cret@[::1", "invalid database URL"),
        ("postgresql://kextlog:s3cret@host:99999999999999999999/db", "invalid database URL"),
        ("foo://kextlog:s3cret@x/y", "unknown database URL scheme 'foo'"),
        ("mysql://kextlog:s3cret@x/y", "unknown database URL scheme 'mysql'"),
        ("sqlite://", "kextlog needs a database file"),
        ("/tmp/with\x00nul.db", "NUL"),
    ],
)
def test_a_bad_database_url_is_a_usage_error(
    url: str, fragment: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KEXTLOG_DEBUG", raising=False)
    for args in (["query", "--db", url], ["sql", "--db", url, "SELECT 1"], ["status", "--db", url]):
        assert run_main(args) == 2, args
        _, err = capsys.readouterr()
        assert err.startswith("kextlog: error: ") and err.count("\n") == 1, err
        assert fragment in err and "s3cret" not in err, err
