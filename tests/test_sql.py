"""`kextlog sql` is strictly read-only: every write, in every form, fails and
changes nothing, and no file is written anywhere; on PostgreSQL in a READ
ONLY transaction with a statement timeout."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from kextlog_store.errors import DatabaseError, KextlogError, ReadOnlyError, UsageError
from kextlog_store.sql import run_sql
from kextlog_store.store.location import database_url
from tests.conftest import PopulatedStore, content_checksum

TABLES = ("records", "instances", "losses", "levels")
BACKENDS = ("sqlite", "postgresql")
both = pytest.mark.parametrize("backend", BACKENDS, indirect=True)
postgresql = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def snapshot(path: Path) -> tuple[dict[str, int], str, str]:
    """Row counts, a checksum of the content, and the bytes of the file."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        counts = {
            table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in TABLES
        }
    finally:
        connection.close()
    return counts, content_checksum(path), hashlib.sha256(path.read_bytes()).hexdigest()


WRITES = [
    "INSERT INTO levels (level, name) VALUES (9, 'fatal')",
    "INSERT INTO records SELECT * FROM records",
    "UPDATE records SET message = 'x'",
    "UPDATE instances SET high_water = 0",
    "DELETE FROM records",
    "DELETE FROM instances",
    "DELETE FROM losses",
    "DELETE FROM records RETURNING seq",
    "REPLACE INTO levels (level, name) VALUES (1, 'noise')",
    "INSERT OR REPLACE INTO levels (level, name) VALUES (1, 'noise')",
    "WITH doomed AS (SELECT id FROM records) DELETE FROM records WHERE id IN doomed",
    "WITH x AS (SELECT 1) INSERT INTO levels SELECT 9, 'fatal' FROM x",
    "WITH x AS (SELECT 1) UPDATE records SET pid = 0",
    "DROP TABLE records",
    "DROP VIEW log",
    "DROP INDEX ix_records_time_ns",
    "CREATE TABLE t (x)",
    "CREATE INDEX ix_message ON records (message)",
    "CREATE VIEW v AS SELECT 1",
    "CREATE TRIGGER tr AFTER INSERT ON records BEGIN DELETE FROM records; END",
    "CREATE TEMP TABLE t (x)",
    "CREATE TEMPORARY TABLE t AS SELECT * FROM records",
    "CREATE TEMP VIEW v AS SELECT 1",
    "CREATE TEMP TRIGGER tr AFTER INSERT ON records BEGIN SELECT 1; END",
    "CREATE VIRTUAL TABLE f USING fts5(x)",
    "ALTER TABLE records ADD COLUMN extra TEXT",
    "ALTER TABLE records RENAME TO old_records",
    "UPDATE sqlite_master SET sql = '' WHERE name = 'records'",
    "ANALYZE",
    "REINDEX",
    "VACUUM",
    "BEGIN",
    "BEGIN IMMEDIATE",
    "SAVEPOINT s",
    "DETACH DATABASE main",
    "PRAGMA query_only = 0",
    "PRAGMA query_only = OFF",
    "PRAGMA journal_mode = delete",
    "PRAGMA user_version = 5",
    "PRAGMA main.user_version = 5",
    "PRAGMA writable_schema = 1",
    "PRAGMA auto_vacuum = 0",
    "PRAGMA incremental_vacuum",
    "PRAGMA wal_checkpoint(TRUNCATE)",
    "PRAGMA wal_checkpoint",
    "PRAGMA optimize",
    "SELECT load_extension('/tmp/nothing')",
    "SELECT load_extension('/tmp/nothing', 'sqlite3_extension_init')",
    "WITH x AS (SELECT load_extension('/tmp/nothing')) SELECT * FROM x",
    "SELECT count(*) FROM records WHERE load_extension('/tmp/nothing') IS NULL",
    "ATTACH ':memory:' AS scratch",
    "ATTACH DATABASE 'file::memory:?cache=shared' AS scratch",
    "PRAGMA temp_store_directory = '/tmp'",
    "PRAGMA mmap_size = 1048576",
    "PRAGMA locking_mode = EXCLUSIVE",
    "PRAGMA secure_delete = 1",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3)"
    " INSERT INTO levels SELECT 100 + i, 'x' || i FROM n",
    "WITH doomed AS (SELECT 1) REPLACE INTO levels (level, name) VALUES (1, 'noise')",
]


@pytest.mark.parametrize("sql", WRITES)
def test_writes_fail_and_change_nothing(populated: PopulatedStore, sql: str) -> None:
    before = snapshot(populated.path)
    with pytest.raises(ReadOnlyError) as caught:
        run_sql(populated.url, sql)
    message = str(caught.value)
    assert message.startswith("read-only: ")
    assert "\n" not in message
    assert snapshot(populated.path) == before
    assert before[0]["records"] == 300


# Pragmas that act without a value have no table-valued form (SQLite gives
# one only to pragmas without side effects): "no such table".
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM pragma_wal_checkpoint",
        "SELECT * FROM pragma_incremental_vacuum",
        "SELECT * FROM pragma_optimize",
        "SELECT * FROM pragma_journal_mode('delete')",
        "SELECT * FROM pragma_user_version(5)",
    ],
)
def test_pragmas_with_effects_cannot_be_selected(populated: PopulatedStore, sql: str) -> None:
    before = snapshot(populated.path)
    with pytest.raises(KextlogError):
        run_sql(populated.url, sql)
    assert snapshot(populated.path) == before


def test_a_second_statement_never_runs(populated: PopulatedStore) -> None:
    before = snapshot(populated.path)
    with pytest.raises(UsageError, match="one statement"):
        run_sql(populated.url, "SELECT count(*) FROM records; DELETE FROM records")
    assert snapshot(populated.path) == before


@pytest.mark.parametrize(
    "sql",
    [
        "ATTACH DATABASE '{path}' AS other",
        "ATTACH '{path}' AS other",
        "VACUUM INTO '{path}'",
        "VACUUM main INTO '{path}'",
    ],
)
def test_no_file_is_written(populated: PopulatedStore, tmp_path: Path, sql: str) -> None:
    target = tmp_path / "elsewhere" / "copy.db"
    target.parent.mkdir()
    before = snapshot(populated.path)
    with pytest.raises(ReadOnlyError, match="attaching a database"):
        run_sql(populated.url, sql.format(path=target))
    assert list(target.parent.iterdir()) == []
    assert snapshot(populated.path) == before


def test_no_file_is_written_through_a_uri(populated: PopulatedStore, tmp_path: Path) -> None:
    target = tmp_path / "uri.db"
    with pytest.raises(ReadOnlyError):
        run_sql(populated.url, f"ATTACH 'file:{target}?mode=rwc' AS other")
    assert not target.exists()


@both
def test_reading(populated: PopulatedStore) -> None:
    columns, rows, _ = run_sql(
        populated.url,
        "SELECT level, count(*) AS n FROM log GROUP BY level, level_number ORDER BY level_number",
    )
    assert columns == ("level", "n")
    counts: dict[str, int] = {}
    for record in populated.records:
        counts[record.level.label] = counts.get(record.level.label, 0) + 1
    assert rows == [(name, counts[name]) for name in ("trace", "debug", "info", "warning", "error")]


@both
def test_the_log_view(populated: PopulatedStore) -> None:
    last = populated.records[-1]
    columns, rows, _ = run_sql(
        populated.url,
        "SELECT time, level, pid, tid, process, message, seq, instance, source, time_ns"
        " FROM log ORDER BY time_ns DESC, seq DESC LIMIT 1",
    )
    assert columns[:3] == ("time", "level", "pid")
    (row,) = rows
    assert row[1:] == (
        last.level.label,
        last.pid,
        last.tid,
        last.process,
        last.message,
        last.seq,
        last.instance,
        last.source,
        last.time_ns,
    )
    assert row[0].endswith("Z") and row[0].startswith("20")


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        ("SELECT count(*) FROM records WHERE pid = ?", (312,)),
        ("SELECT count(*) FROM records WHERE pid = :pid", {"pid": 312}),
    ],
)
def test_parameters(populated: PopulatedStore, sql: str, params: tuple | dict) -> None:
    _, rows, _ = run_sql(populated.url, sql, params)
    assert rows == [(len(populated.select(pids={312})),)]


@pytest.mark.parametrize(
    "sql",
    [
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5)"
        " SELECT sum(i) FROM n",
        "SELECT sum(value) FROM json_each('[1, 2, 3, 4, 5]')",
        "SELECT count(*) * 7 + 1 FROM pragma_table_info('levels')",
        "SELECT 15",
    ],
)
def test_queries_beyond_plain_select(populated: PopulatedStore, sql: str) -> None:
    assert run_sql(populated.url, sql).rows == [(15,)]


def test_introspection_pragmas(populated: PopulatedStore) -> None:
    columns, rows, _ = run_sql(populated.url, "PRAGMA table_xinfo(records)")
    assert "name" in columns
    assert [row[columns.index("name")] for row in rows][:3] == ["id", "instance_id", "seq"]
    columns, rows, _ = run_sql(populated.url, "PRAGMA table_info(records)")
    assert [row[columns.index("name")] for row in rows][:3] == ["id", "time_ns", "mono_ns"]
    assert run_sql(populated.url, "PRAGMA index_list(records)").rows
    assert run_sql(populated.url, "PRAGMA user_version").rows == [(0,)]
    assert run_sql(populated.url, "PRAGMA main.journal_mode").rows == [("wal",)]
    assert run_sql(populated.url, "PRAGMA auto_vacuum").rows == [(2,)]
    assert run_sql(populated.url, "PRAGMA query_only").rows == [(1,)]
    _, databases, _ = run_sql(populated.url, "PRAGMA database_list")
    assert [row[1] for row in databases] == ["main"]


def test_a_statement_without_rows(populated: PopulatedStore) -> None:
    assert run_sql(populated.url, "SELECT 1 WHERE 0") == (("1",), [], None)


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("SELEC 1", 'near "SELEC": syntax error'),
        ("SELECT nope FROM records", "no such column: nope"),
        ("SELECT * FROM nowhere", "no such table: nowhere"),
        ("SELECT ?", "bindings"),
        ("", "no SQL statement"),
        ("  \n ", "no SQL statement"),
    ],
)
def test_bad_sql_is_a_one_line_usage_error(
    populated: PopulatedStore, sql: str, fragment: str
) -> None:
    with pytest.raises(UsageError) as caught:
        run_sql(populated.url, sql)
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_time_limit(populated: PopulatedStore) -> None:
    endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT max(i) FROM n"
    with pytest.raises(DatabaseError, match=r"time limit of 0\.2 s"):
        run_sql(populated.url, endless, time_limit=0.2)
    assert run_sql(populated.url, "SELECT 1", time_limit=5).rows == [(1,)]


def test_missing_database_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"
    with pytest.raises(DatabaseError, match="no kextlog database"):
        run_sql(database_url(str(path)), "SELECT 1")
    assert not path.exists()


def test_an_unreachable_server_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError) as caught:
        run_sql(f"postgresql://nobody@/kextlog?host={tmp_path}", "SELECT 1")
    assert "\n" not in str(caught.value) and str(tmp_path) in str(caught.value)


def count_records(url: str) -> int:
    return run_sql(url, "SELECT count(*) FROM records").rows[0][0]


@postgresql
@pytest.mark.parametrize(
    ("sql", "error", "fragment"),
    [
        ("DELETE FROM records", ReadOnlyError, "read-only: cannot execute DELETE"),
        ("UPDATE instances SET high_water = 0", ReadOnlyError, "cannot execute UPDATE"),
        ("INSERT INTO levels VALUES (9, 'x')", ReadOnlyError, "cannot execute INSERT"),
        ("CREATE TABLE t (x int)", ReadOnlyError, "cannot execute CREATE TABLE"),
        ("DROP VIEW log", ReadOnlyError, "cannot execute DROP VIEW"),
        ("SELECT nextval('instances_id_seq')", ReadOnlyError, "nextval()"),
        ("SELECT 1; DELETE FROM records", UsageError, "multiple commands"),
        ("COMMIT; DELETE FROM records", UsageError, "multiple commands"),
        ("SET TRANSACTION READ WRITE", DatabaseError, "before any query"),
    ],
)
def test_postgresql_writes_fail_and_change_nothing(
    populated: PopulatedStore, sql: str, error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error) as caught:
        run_sql(populated.url, sql)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)
    assert count_records(populated.url) == len(populated.records)
    assert run_sql(populated.url, "SELECT count(*) FROM levels").rows == [(5,)]


@postgresql
def test_postgresql_time_limit(populated: PopulatedStore) -> None:
    with pytest.raises(DatabaseError, match=r"time limit of 0\.2 s"):
        run_sql(populated.url, "SELECT pg_sleep(5)", time_limit=0.2)
    assert run_sql(populated.url, "SELECT 1", time_limit=5).rows == [(1,)]


@postgresql
def test_postgresql_parameters_rows_and_values(populated: PopulatedStore) -> None:
    _, rows, _ = run_sql(
        populated.url, "SELECT count(*) FROM log WHERE pid = :pid AND '%' = '%'", {"pid": 312}
    )
    assert rows == [(len(populated.select(pids={312})),)]
    with pytest.raises(UsageError, match="pid"):
        run_sql(populated.url, "SELECT count(*) FROM log WHERE pid = :pid", {"other": 1})
    with pytest.raises(UsageError, match="syntax error"):
        run_sql(populated.url, "SELECT count(*) FROM log WHERE pid = :pid")
    result = run_sql(populated.url, "SELECT seq FROM log ORDER BY seq", max_rows=7)
    assert result.truncated and len(result.rows) == 7
    # Numerics, times and the like come as the plain values every format writes.
    _, rows, _ = run_sql(
        populated.url,
        "SELECT sum(pid), 1.5::numeric, to_timestamp(0) AT TIME ZONE 'UTC', true, NULL"
        " FROM records",
    )
    assert rows == [(sum(r.pid for r in populated.records), 1.5, "1970-01-01T00:00:00", True, None)]


@postgresql
@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("SELEC 1", 'syntax error at or near "SELEC"'),
        ("SELECT nope FROM records", 'column "nope" does not exist'),
        ("SELECT * FROM nowhere", 'relation "nowhere" does not exist'),
    ],
)
def test_postgresql_bad_sql_is_a_one_line_usage_error(
    populated: PopulatedStore, sql: str, fragment: str
) -> None:
    with pytest.raises(UsageError) as caught:
        run_sql(populated.url, sql)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"junk" * 1000)
    with pytest.raises(KextlogError) as caught:
        run_sql(database_url(str(path)), "SELECT 1 FROM records")
    assert "not a database" in str(caught.value)
    assert path.read_bytes() == b"junk" * 1000
