"""Migrations: one head, a full cycle with data in place, and the schema the
models describe; on SQLite and on PostgreSQL."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, exc, inspect, text

from kextlog_store.errors import DatabaseError
from kextlog_store.store import migrate, schema
from kextlog_store.store.engine import known_revisions, write_engine
from kextlog_store.store.location import database_url
from tests.processes import kextlog

BOTH_BACKENDS = True


@pytest.fixture
def fresh_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database that does not exist yet (SQLite) or is empty (PostgreSQL)."""
    if backend == "postgresql":
        new: Callable[[bool], str] = request.getfixturevalue("postgres_database")
        return new(False)
    return database_url(str(tmp_path / "k.db"))


@pytest.fixture
def engine(fresh_url: str) -> Iterator[Engine]:
    """A plain engine on fresh_url, for the tests' own SQL."""
    engine = write_engine(fresh_url)
    yield engine
    engine.dispose()


def execute(engine: Engine, sql: str) -> list[tuple]:
    with engine.begin() as connection:
        result = connection.execute(text(sql))
        return [tuple(row) for row in result] if result.returns_rows else []


def test_single_head() -> None:
    assert len(ScriptDirectory(str(migrate.MIGRATIONS)).get_heads()) == 1


@pytest.mark.sqlite_only
def test_new_database_is_wal_with_incremental_vacuum(tmp_path: Path) -> None:
    url = database_url(str(tmp_path / "k.db"))
    migrate.upgrade(url)
    with sqlite3.connect(tmp_path / "k.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert connection.execute("PRAGMA auto_vacuum").fetchone() == (2,)  # incremental
    assert migrate.current(url) == migrate.head()


def test_models_match_the_migrated_schema(fresh_url: str) -> None:
    engine = migrate.upgrade(fresh_url)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), schema.metadata) == []
    engine.dispose()


SAMPLE = [
    ("1970-01-01T00:00:01.000000Z", "info", 10, "launchd", "message 1", 1),
    ("1970-01-01T00:00:02.000000Z", "info", 10, "launchd", "message 2", 2),
    ("1970-01-01T00:00:03.000000Z", "info", 10, "launchd", "message 3", 3),
]


def _insert_sample_at_0001(engine: Engine) -> None:
    execute(
        engine,
        "INSERT INTO instances (uuid, source, name, boot_id, producer_version,"
        " first_seen_ns, last_seen_ns, high_water) VALUES ('ab', 'unix:/s', 'sim', '', '1',"
        " 1, 2, 3)",
    )
    for seq in (1, 2, 3):
        execute(
            engine,
            "INSERT INTO records (instance_id, seq, time_ns, mono_ns, level, flags, pid, tid,"
            f" process, message) VALUES (1, {seq}, {1_000_000_000 * seq}, 0, 3, 0, 10, 11,"
            f" 'launchd', 'message {seq}')",
        )


def _log(engine: Engine) -> list[tuple]:
    return execute(engine, "SELECT time, level, pid, process, message, seq FROM log ORDER BY seq")


def test_upgrade_downgrade_upgrade_with_data(fresh_url: str, engine: Engine) -> None:
    migrate.upgrade(fresh_url, "0001").dispose()
    _insert_sample_at_0001(engine)
    assert _log(engine) == SAMPLE
    migrate.upgrade(fresh_url).dispose()  # 0002 packs (instance, seq) into the key: the data moves
    assert _log(engine) == SAMPLE
    assert execute(engine, "SELECT id, instance_id, seq FROM records ORDER BY id") == [
        (schema.record_id(1, seq), 1, seq) for seq in (1, 2, 3)
    ]
    # Already in the pid index, as ingest would have left it.
    assert execute(engine, "SELECT count(*) FROM pid_index") == [(3,)]
    assert execute(engine, "SELECT pid_indexed_seq FROM instances") == [(3,)]
    # 0005: the store was this machine's.
    assert execute(engine, "SELECT host, instance FROM log WHERE seq = 1") == [
        (socket.gethostname(), "ab")
    ]
    migrate.downgrade(fresh_url, "0001")
    assert _log(engine) == SAMPLE
    migrate.downgrade(fresh_url, "base")
    assert migrate.current(fresh_url) is None
    with engine.connect() as connection:
        inspector = inspect(connection)
        assert inspector.get_table_names() == ["alembic_version"]
        assert inspector.get_view_names() == []
    migrate.upgrade(fresh_url).dispose()
    assert migrate.current(fresh_url) == migrate.head()
    assert _log(engine) == []


def test_times_read_the_same_on_every_back_end(fresh_url: str, engine: Engine) -> None:
    migrate.upgrade(fresh_url).dispose()
    execute(
        engine,
        "INSERT INTO instances (id, host, uuid, source, name, boot_id, producer_version,"
        " first_seen_ns, last_seen_ns) VALUES (1, 'h', 'ab', 'unix:/s', 'sim', '', '1', 0,"
        " 1700000000123456789)",
    )
    for seq, time_ns in ((1, 1_700_000_000_123_456_789), (2, 0), (3, 951_782_400_000_001_000)):
        execute(
            engine,
            "INSERT INTO records (id, time_ns, mono_ns, level, flags, pid, tid, process, message)"
            f" VALUES ({schema.record_id(1, seq)}, {time_ns}, 0, 3, 0, 1, 1, 'p', 'm')",
        )
    assert execute(engine, "SELECT seq, time FROM log ORDER BY seq") == [
        (1, "2023-11-14T22:13:20.123456Z"),
        (2, "1970-01-01T00:00:00.000000Z"),
        (3, "2000-02-29T00:00:00.000001Z"),
    ]
    assert execute(engine, "SELECT first_seen, last_seen FROM instance_accounting") == [
        ("1970-01-01T00:00:00.000000Z", "2023-11-14T22:13:20.123456Z")
    ]


def test_instances_are_unique_per_host(fresh_url: str, engine: Engine) -> None:
    migrate.upgrade(fresh_url).dispose()
    insert = (
        "INSERT INTO instances (host, uuid, source, name, boot_id, producer_version,"
        " first_seen_ns, last_seen_ns) VALUES ('{host}', 'ab', 'unix:/s', 'sim', '', '1', 0, 0)"
    )
    execute(engine, insert.format(host="alpha"))
    execute(engine, insert.format(host="beta"))  # the same kext instance id on another host
    with pytest.raises(exc.IntegrityError):
        execute(engine, insert.format(host="alpha"))
    assert execute(engine, "SELECT host, instance FROM instance_accounting ORDER BY host") == [
        ("alpha", "ab"),
        ("beta", "ab"),
    ]


@pytest.mark.sqlite_only
def test_unknown_newer_revision_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    url = database_url(str(path))
    migrate.upgrade(url)
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")
    before = path.read_bytes()
    with pytest.raises(DatabaseError, match="newer than this kextlog knows"):
        migrate.upgrade(url)
    with pytest.raises(DatabaseError, match="newer than this kextlog knows"):
        migrate.current(url)
    assert path.read_bytes() == before


def test_foreign_database_is_refused(fresh_url: str, engine: Engine) -> None:
    execute(engine, "CREATE TABLE notes (body TEXT)")
    with pytest.raises(DatabaseError, match="not a kextlog database"):
        migrate.upgrade(fresh_url)


def test_foreign_database_file_is_kept_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as connection:  # another program's, in rollback-journal mode
        connection.execute("CREATE TABLE notes (body TEXT)")
    before = path.read_bytes()
    with pytest.raises(DatabaseError, match="not a kextlog database"):
        migrate.upgrade(database_url(str(path)))
    assert path.read_bytes() == before  # not even switched to WAL


def test_revision_files_are_named_after_their_revisions() -> None:
    """What known_revisions() relies on to know them without Alembic."""
    scripts = list(ScriptDirectory(str(migrate.MIGRATIONS)).walk_revisions())
    for script in scripts:
        assert Path(script.path).name.startswith(f"{script.revision}_")
    assert known_revisions() == {script.revision for script in scripts}
    assert max(known_revisions()) == migrate.head()  # what `kextlog db check` calls newest


def test_summary_views_account_for_every_seq(fresh_url: str, engine: Engine) -> None:
    # Records written before 0008, whose counters it makes from them.
    migrate.upgrade(fresh_url, "0006").dispose()
    execute(
        engine,
        "INSERT INTO instances (id, host, uuid, source, name, boot_id, producer_version,"
        " first_seen_ns, last_seen_ns, first_seq, high_water, filtered, pruned_records)"
        " VALUES (1, 'h', 'ab', 'unix:/s', 'sim', '', '1', 1, 2, 1, 10, 2, 1),"
        "        (2, 'h', 'cd', 'kmsg', 'linux', '', '6', 3, 4, 0, 0, 0, 0)",
    )
    rows = [
        (1, seq, 3 if seq < 5 else 5, "launchd" if seq % 2 else "sshd") for seq in (1, 2, 3, 4, 5)
    ]
    rows.append((2, 0, 4, "kernel"))  # the kernel's log starts at seq 0
    for instance, seq, level, process in rows:
        execute(
            engine,
            "INSERT INTO records (id, time_ns, mono_ns, level, flags, pid, tid, process, message)"
            f" VALUES ({schema.record_id(instance, seq)}, 1000000000, 0, {level}, 0, 1, 1,"
            f" '{process}', 'm')",
        )
    execute(
        engine,
        "INSERT INTO losses (instance_id, first_seq, last_seq, count, reason, recorded_ns)"
        " VALUES (1, 6, 7, 2, 'ring-full', 0)",
    )
    migrate.upgrade(fresh_url).dispose()
    accounting = execute(
        engine,
        "SELECT instance, high_water, stored, lost, filtered, pruned, discrepancy, ahead"
        " FROM instance_accounting",
    )
    levels = execute(
        engine, "SELECT level, records FROM level_counts WHERE records > 0 ORDER BY level_number"
    )
    processes = execute(
        engine,
        "SELECT process, records, errors, warnings FROM process_counts ORDER BY process",
    )
    # 10 = 5 stored + 2 lost + 2 filtered + 1 pruned (as prune counts it);
    # the kernel's 0 = its one record.
    assert accounting == [("ab", 10, 5, 2, 2, 1, 0, 0), ("cd", 0, 1, 0, 0, 0, 0, 0)]
    # A record and a loss row gone without prune: 1 + 2 seqs no count covers.
    execute(engine, f"DELETE FROM records WHERE id = {schema.record_id(1, 3)}")
    execute(engine, "DELETE FROM losses")
    accounting = execute(
        engine, "SELECT instance, stored, lost, pruned, discrepancy FROM instance_accounting"
    )
    assert accounting == [("ab", 4, 0, 1, 3), ("cd", 1, 0, 0, 0)]
    assert levels == [("info", 4), ("warning", 1), ("error", 1)]
    assert processes == [("kernel", 1, 0, 1), ("launchd", 3, 1, 0), ("sshd", 2, 0, 0)]
    # Records and pids come from the counters, which still hold the record
    # deleted behind kextlog's back (`db check` says so); errors, warnings
    # and times count the records.
    processes = execute(
        engine,
        "SELECT process, records, pids, errors, warnings, first_time, last_time"
        " FROM process_counts ORDER BY process",
    )
    assert [row[:5] for row in processes] == [
        ("kernel", 1, 1, 0, 1), ("launchd", 3, 1, 1, 0), ("sshd", 2, 1, 0, 0)
    ]  # fmt: skip
    assert {row[5:] for row in processes} == {("1970-01-01T00:00:01.000000Z",) * 2}


def test_pruned_counts_start_from_what_was_pruned_before(fresh_url: str, engine: Engine) -> None:
    """0006 counts pruned records from then on; what an older store had
    pruned is the remainder at the upgrade, once (never below 0)."""
    migrate.upgrade(fresh_url, "0005").dispose()
    execute(
        engine,
        "INSERT INTO instances (id, host, uuid, source, name, boot_id, producer_version,"
        " first_seen_ns, last_seen_ns, first_seq, high_water, filtered)"
        " VALUES (1, 'h', 'ab', 'unix:/s', 'sim', '', '1', 1, 2, 1, 10, 1),"
        "        (2, 'h', 'cd', 'kmsg', 'linux', '', '6', 3, 4, 0, -1, 0),"
        "        (3, 'h', 'ef', 'unix:/s', 'sim', '', '1', 5, 6, 1, 3, 0)",
    )
    # ab: 1..3 pruned, 4 lost, 5..9 stored, 10 filtered.  ef: 1..3 stored and
    # a loss over 2..3 (made up: counted twice).
    stored = [(1, seq) for seq in range(5, 10)] + [(3, seq) for seq in (1, 2, 3)]
    for instance, seq in stored:
        execute(
            engine,
            "INSERT INTO records (id, time_ns, mono_ns, level, flags, pid, tid, process, message)"
            f" VALUES ({schema.record_id(instance, seq)}, 1, 0, 3, 0, 1, 1, 'p', 'm')",
        )
    execute(
        engine,
        "INSERT INTO losses (instance_id, first_seq, last_seq, count, reason, recorded_ns)"
        " VALUES (1, 4, 4, 1, 'gap', 0), (3, 2, 3, 2, 'gap', 0)",
    )
    before = "SELECT instance, pruned FROM instance_accounting ORDER BY instance"
    assert execute(engine, before) == [("ab", 3), ("cd", 0), ("ef", -2)]
    for _ in range(2):  # again after a downgrade: initialised once per upgrade
        migrate.upgrade(fresh_url).dispose()
        assert execute(
            engine, "SELECT id, pruned_records, pruned_lost FROM instances ORDER BY id"
        ) == [(1, 3, 0), (2, 0, 0), (3, 0, 0)]
        assert execute(
            engine,
            "SELECT instance, pruned, discrepancy FROM instance_accounting ORDER BY instance",
        ) == [("ab", 3, 0), ("cd", 0, 0), ("ef", 0, -2)]
        migrate.downgrade(fresh_url, "0005")
        assert execute(engine, before) == [("ab", 3), ("cd", 0), ("ef", -2)]
        with engine.connect() as connection:
            columns = {column["name"] for column in inspect(connection).get_columns("instances")}
        assert not columns & {"pruned_records", "pruned_lost"}


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_db_commands_on_postgresql(fresh_url: str, tmp_path: Path) -> None:
    assert kextlog("db", "current", "--db", fresh_url).stdout == "none\n"
    upgraded = kextlog("db", "upgrade", "--db", fresh_url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert kextlog("db", "current", "--db", fresh_url).stdout == f"{migrate.head()}\n"
    # A plain postgresql:// URL means psycopg; a server that is not there is one line.
    gone = kextlog("db", "upgrade", "--db", f"postgresql://nobody@/kextlog?host={tmp_path}")
    assert gone.returncode == 1 and gone.stdout == ""
    assert gone.stderr.startswith("kextlog: error: PostgreSQL: connection is bad: ")
    assert gone.stderr.count("\n") == 1
