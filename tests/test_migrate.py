"""Migrations: one head, a full cycle with data in place, and the schema the
models describe."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from kextlog_store import migrate, store
from kextlog_store.errors import DatabaseError


def test_single_head() -> None:
    assert len(ScriptDirectory(str(migrate.MIGRATIONS)).get_heads()) == 1


def test_new_database_is_wal_with_incremental_vacuum(tmp_path: Path) -> None:
    url = store.database_url(str(tmp_path / "k.db"))
    migrate.upgrade(url)
    with sqlite3.connect(tmp_path / "k.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert connection.execute("PRAGMA auto_vacuum").fetchone() == (2,)  # incremental
    assert migrate.current(url) == migrate.head()


def test_models_match_the_migrated_schema(tmp_path: Path) -> None:
    engine = migrate.upgrade(store.database_url(str(tmp_path / "k.db")))
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), store.metadata) == []


SAMPLE = [
    ("1970-01-01T00:00:01.000000Z", "info", 10, "launchd", "message 1", 1),
    ("1970-01-01T00:00:02.000000Z", "info", 10, "launchd", "message 2", 2),
    ("1970-01-01T00:00:03.000000Z", "info", 10, "launchd", "message 3", 3),
]


def _insert_sample_at_0001(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute(
            "INSERT INTO instances (uuid, source, name, boot_id, producer_version,"
            " first_seen_ns, last_seen_ns, high_water) VALUES ('ab', 'unix:/s', 'sim', '', '1',"
            " 1, 2, 3)"
        )
        connection.executemany(
            "INSERT INTO records (instance_id, seq, time_ns, mono_ns, level, flags, pid, tid,"
            " process, message) VALUES (1, ?, ?, 0, 3, 0, 10, 11, 'launchd', ?)",
            [(seq, 1_000_000_000 * seq, f"message {seq}") for seq in (1, 2, 3)],
        )


def _log(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as connection:
        return connection.execute(
            "SELECT time, level, pid, process, message, seq FROM log ORDER BY seq"
        ).fetchall()


def test_upgrade_downgrade_upgrade_with_data(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    url = store.database_url(str(path))
    migrate.upgrade(url, "0001")
    _insert_sample_at_0001(path)
    assert _log(path) == SAMPLE
    migrate.upgrade(url)  # 0002 packs (instance, seq) into the key: the data moves
    assert _log(path) == SAMPLE
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT id, instance_id, seq FROM records").fetchall() == [
            (store.record_id(1, seq), 1, seq) for seq in (1, 2, 3)
        ]
        # Already in the pid index, as ingest would have left it.
        assert connection.execute("SELECT count(*) FROM pid_index").fetchone() == (3,)
        assert connection.execute("SELECT pid_indexed_seq FROM instances").fetchone() == (3,)
    migrate.downgrade(url, "0001")
    assert _log(path) == SAMPLE
    migrate.downgrade(url, "base")
    assert migrate.current(url) is None
    with sqlite3.connect(path) as connection:
        tables = connection.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"
        ).fetchall()
    assert tables == [("alembic_version",)]
    migrate.upgrade(url)
    assert migrate.current(url) == migrate.head()
    assert _log(path) == []


def test_unknown_newer_revision_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    url = store.database_url(str(path))
    migrate.upgrade(url)
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")
    before = path.read_bytes()
    with pytest.raises(DatabaseError, match="newer than this kextlog knows"):
        migrate.upgrade(url)
    with pytest.raises(DatabaseError, match="newer than this kextlog knows"):
        migrate.current(url)
    assert path.read_bytes() == before


def test_foreign_database_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as connection:  # another program's, in rollback-journal mode
        connection.execute("CREATE TABLE notes (body TEXT)")
    before = path.read_bytes()
    with pytest.raises(DatabaseError, match="not a kextlog database"):
        migrate.upgrade(store.database_url(str(path)))
    assert path.read_bytes() == before  # not even switched to WAL


def test_revision_files_are_named_after_their_revisions() -> None:
    """What store.known_revisions() relies on to know them without Alembic."""
    scripts = list(ScriptDirectory(str(migrate.MIGRATIONS)).walk_revisions())
    for script in scripts:
        assert Path(script.path).name.startswith(f"{script.revision}_")
    assert store.known_revisions() == {script.revision for script in scripts}
    assert max(store.known_revisions()) == migrate.head()  # what `kextlog db check` calls newest


def test_summary_views_account_for_every_seq(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    migrate.upgrade(store.database_url(str(path)))
    with sqlite3.connect(path) as connection:
        connection.execute(
            "INSERT INTO instances (id, uuid, source, name, boot_id, producer_version,"
            " first_seen_ns, last_seen_ns, first_seq, high_water, filtered)"
            " VALUES (1, 'ab', 'unix:/s', 'sim', '', '1', 1, 2, 1, 10, 2),"
            "        (2, 'cd', 'kmsg', 'linux', '', '6', 3, 4, 0, 0, 0)"
        )
        rows = [
            (1, seq, 3 if seq < 5 else 5, "launchd" if seq % 2 else "sshd")
            for seq in (1, 2, 3, 4, 5)
        ]
        rows.append((2, 0, 4, "kernel"))  # the kernel's log starts at seq 0
        connection.executemany(
            "INSERT INTO records (id, time_ns, mono_ns, level, flags, pid, tid, process, message)"
            " VALUES ((? << 44) | ?, 1000000000, 0, ?, 0, 1, 1, ?, 'm')",
            rows,
        )
        connection.execute(
            "INSERT INTO losses (instance_id, first_seq, last_seq, count, reason, recorded_ns)"
            " VALUES (1, 6, 7, 2, 'ring-full', 0)"
        )
        accounting = connection.execute(
            "SELECT instance, high_water, stored, lost, filtered, pruned, ahead"
            " FROM instance_accounting"
        ).fetchall()
        levels = connection.execute(
            "SELECT level, records FROM level_counts WHERE records > 0"
        ).fetchall()
        processes = connection.execute(
            "SELECT process, records, errors, warnings FROM process_counts ORDER BY process"
        ).fetchall()
    # 10 = 5 stored + 2 lost + 2 filtered + 1 pruned; the kernel's 0 = its one record.
    assert accounting == [("ab", 10, 5, 2, 2, 1, 0), ("cd", 0, 1, 0, 0, 0, 0)]
    assert levels == [("info", 4), ("warning", 1), ("error", 1)]
    assert processes == [("kernel", 1, 0, 1), ("launchd", 3, 1, 0), ("sshd", 2, 0, 0)]
