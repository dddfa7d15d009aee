"""Sealing (kextlog_store.seal): the canonical encoding, the keys and their
file, setup over a store that holds data, the chain a writer extends, seals,
prune's checkpoints and verify, on both back ends.  The intruder's side,
against a real ingest, is tests/test_seal_tamper.py."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import stat
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import delete, select, text, update

from kextlog_store.errors import DatabaseError
from kextlog_store.seal import _columns, chain, encoding, keys, verify
from kextlog_store.store import migrate, schema
from kextlog_store.store.engine import read_engine, write_engine
from kextlog_store.store.location import database_url
from kextlog_store.store.writer import InstanceState, Writer
from tests.conftest import HOST, Kextlog, PopulatedStore, wait_until
from tests.processes import kextlog as run_cli
from tests.processes import start, start_simulator

BOTH_BACKENDS = True

ROW = (7, 1_700_000_000_000_000_000, 5_000, 3, 0, 42, 43, "kernel_task", "vnode denied")


def section_digest(rows: list[tuple], losses: list[tuple] = ()) -> bytes:  # type: ignore[assignment]
    return chain.build("u", 1, 100, rows, list(losses)).section.digest()


# -- the encoding ------------------------------------------------------------


def test_a_kext_record_read_back_with_its_null_columns_encodes_the_same() -> None:
    # Ingest hands over 9 columns, verify reads 12 (kmsg's NULL): one digest.
    assert section_digest([ROW]) == section_digest([(*ROW, None, None, None)])


@pytest.mark.parametrize(
    "changed",
    [
        [(*ROW[:7], "kernel_tas", "kvnode denied")],  # a byte moved from one text to the next
        [(*ROW[:8], "vnode denied\x00")],
        [(*ROW[:8], "vnode dénied")],
        [(*ROW, None, None, "")],  # an empty text is not NULL
        [(*ROW, 0, None, None)],  # nor is 0
        [(*ROW[:5], 42 + (1 << 32), *ROW[6:])],  # a value past the column's type
        [ROW, ROW[:1] + ROW[1:]],  # the same record twice
    ],
)
def test_every_change_of_a_value_changes_the_digest(changed: list[tuple]) -> None:
    assert section_digest(changed) != section_digest([ROW])


def test_bytes_moved_from_one_record_to_the_next_change_the_digest() -> None:
    # Within one column: the lengths, not only the bytes, are hashed.
    two = [(*ROW[:8], "ab"), (ROW[0] + 1, *ROW[1:8], "c")]
    moved = [(*ROW[:8], "a"), (ROW[0] + 1, *ROW[1:8], "bc")]
    assert section_digest(two) != section_digest(moved)


def test_a_loss_row_is_part_of_the_digest() -> None:
    loss = (3, 4, 2, None, None, "ring-full", 99)
    assert section_digest([ROW], [loss]) != section_digest([ROW])
    assert section_digest([ROW], [loss]) != section_digest(
        [ROW], [(3, 4, 2, 0, None, "ring-full", 99)]
    )


@pytest.mark.parametrize(
    "row",
    [(ROW[0], 1.5, *ROW[2:]), (*ROW[:8], b"bytes"), (ROW[0], 1 << 63, *ROW[2:]), (*ROW, "x", 1, 2)],
)
def test_a_value_ingest_never_writes_is_refused_by_both_encoders(row: tuple) -> None:
    with pytest.raises(ValueError):
        section_digest([row])
    with pytest.raises(ValueError):
        encoding.record_columns(list(zip(*[row], strict=True)), 1)


TEXT = st.text(st.characters(codec="utf-8"), max_size=20)
INT64 = st.integers(-(1 << 63), (1 << 63) - 1)
RECORD = st.tuples(*[INT64] * 7, TEXT, TEXT) | st.tuples(
    *[INT64] * 7, TEXT, TEXT, st.none() | INT64, st.none() | INT64, st.none() | TEXT
)


@given(st.lists(RECORD, max_size=6))
def test_the_c_encoder_packs_as_the_reference(rows: list[tuple]) -> None:
    """encoding.record_columns is the reference (docs/sealing.md); the C
    encoder that ingest and verify use must give the same bytes."""
    padded = [row + (None,) * (12 - len(row)) for row in rows]
    columns = list(zip(*padded, strict=True)) if rows else [()] * 12
    assert _columns.pack_rows(rows)[0] == encoding.record_columns(columns, len(rows))


def test_the_c_reader_reads_what_the_c_encoder_packs(tmp_path: Path) -> None:
    url = database_url(str(tmp_path / "k.db"))
    engine = migrate.upgrade(url)
    rows = [
        (1, *ROW[1:]),
        (2, *ROW[1:7], "", "dé\x00jà"),
        (4, *ROW[1:], 3, None, '{"A": "b"}'),
        (5, *ROW[1:], None, 7, None),
    ]
    base = schema.record_id(3, 0)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            f"INSERT INTO records (id, {', '.join(encoding.RECORD_COLUMNS[1:])})"
            f" VALUES ({base} + ?, {', '.join('?' * 11)})",
            [row + (None,) * (12 - len(row)) for row in rows],
        )
    engine.dispose()
    reader = _columns.Reader(f"file:{tmp_path / 'k.db'}?mode=ro")
    try:
        assert reader.read(base, 1, 5) == _columns.pack_rows(rows)
        assert reader.read(base, 1, 5)[1:5] == (4, 1, 5, 0)  # count, first, last, not dense
    finally:
        reader.close()


def test_the_chain_binds_each_entry_to_its_position_and_the_one_before() -> None:
    digest = encoding.batch_digest(1, 10, chain.BATCH, "", [b"s" * 32])
    assert digest != encoding.batch_digest(2, 10, chain.BATCH, "", [b"s" * 32])
    assert encoding.next_head(encoding.ZERO_HEAD, digest) != encoding.next_head(b"x" * 32, digest)


# -- the keys ----------------------------------------------------------------


def test_keys_evolve_one_way_in_place() -> None:
    first = bytearray(os.urandom(32))
    key = keys.EpochKey(encoding.key_id(first), 0, bytearray(first))
    storage = key.key
    key.advance(3)
    assert key.key is storage  # the same buffer: no copy of an old key is left behind by us
    assert key.key == encoding.key_at(first, 3) != first
    assert (
        key.key == hashlib.sha256(b"kextlog-seal-1 evolve\0" + encoding.key_at(first, 2)).digest()
    )
    with pytest.raises(ValueError):
        key.advance(2)
    key.erase()
    assert key.key == bytes(32)


def test_the_key_file_is_private_replaced_whole_and_refused_when_others_can_read_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "seal.key"
    first = bytearray(os.urandom(32))
    key = keys.EpochKey(encoding.key_id(first), 1, encoding.key_at(first, 1))
    keys.create(path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(DatabaseError, match="exists already"):
        keys.create(path, key)
    old = path.read_bytes()
    key.advance(2)
    keys.replace(path, key)
    assert keys.load(path) == key
    assert bytes(encoding.key_at(first, 1)) not in path.read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["seal.key"]
    assert old != path.read_bytes()
    path.chmod(0o640)
    with pytest.raises(DatabaseError, match="others may read it"):
        keys.load(path)


def test_a_link_planted_at_the_key_path_is_never_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"precious")
    (tmp_path / "seal.key").symlink_to(target)
    first = bytearray(os.urandom(32))
    with pytest.raises(DatabaseError, match="exists already"):
        keys.create(tmp_path / "seal.key", keys.EpochKey(encoding.key_id(first), 1, first))
    assert target.read_bytes() == b"precious"


# -- setup, the writer's chain, seals, prune and verify ----------------------


def _verify(url: str, key: bytearray | None) -> verify.ChainReport:
    engine = read_engine(url)
    try:
        with engine.connect() as connection:
            [report] = verify.verify(connection, key)
    finally:
        engine.dispose()
    return report


@pytest.fixture
def sealed(
    lossy: PopulatedStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[PopulatedStore, bytearray]:
    monkeypatch.setenv(keys.ENVIRONMENT, str(tmp_path / "seal.key"))
    engine = write_engine(lossy.url)
    key = chain.setup(engine, HOST, tmp_path / "seal.key")
    engine.dispose()
    return lossy, bytearray(key)


def test_the_migration_brings_sealing_to_a_store_that_holds_data(
    lossy: PopulatedStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate.downgrade(lossy.url, "0006")
    assert migrate.current(lossy.url) == "0006"
    engine = migrate.upgrade(lossy.url)
    key = chain.setup(engine, HOST, tmp_path / "seal.key")
    engine.dispose()
    report = _verify(lossy.url, key)
    assert report.broken is None and report.records == len(lossy.records)
    migrate.upgrade(lossy.url).dispose()  # at head already: nothing changes
    assert _verify(lossy.url, key).broken is None


def test_setup_covers_what_is_stored_and_verify_finds_it_whole(
    sealed: tuple[PopulatedStore, bytearray],
) -> None:
    lossy, key = sealed
    report = _verify(lossy.url, key)
    assert report.broken is None
    assert report.records == len(lossy.records)
    assert report.losses == len(lossy.losses)
    assert report.sealed.epoch == 0 and report.sealed.flags == chain.SETUP


@pytest.mark.parametrize(
    ("change", "kind", "detail"),
    [
        ("UPDATE records SET message = 'nothing happened' WHERE id = (SELECT min(id) FROM records)",
         "changed", "message"),
        ("DELETE FROM records WHERE id = (SELECT max(id) FROM records WHERE id < 35184372088832)",
         "removed", "1 records"),
        ("UPDATE losses SET reason = 'released' WHERE reason = 'gap'", "changed", "loss rows"),
        ("DELETE FROM losses WHERE reason = 'gap'", "removed", "loss rows"),
        ("UPDATE instances SET high_water = high_water + 5", "changed", "high-water"),
    ],
)  # fmt: skip
def test_a_change_to_the_rows_breaks_the_chain_where_it_was_made(
    sealed: tuple[PopulatedStore, bytearray], change: str, kind: str, detail: str
) -> None:
    lossy, key = sealed
    engine = write_engine(lossy.url)
    with engine.begin() as connection:
        connection.execute(text(change))
    engine.dispose()
    for secret in (key, None):
        broken = _verify(lossy.url, secret).broken
        assert broken is not None and broken.kind == kind and detail in broken.detail


def test_batches_a_sealed_writer_commits_verify_and_prune_leaves_a_checkpoint(
    sealed: tuple[PopulatedStore, bytearray], kextlog: Kextlog, tmp_path: Path
) -> None:
    lossy, key = sealed
    engine = write_engine(lossy.url)
    writer = Writer(engine, HOST)
    writer.sealer = chain.Sealer.open(engine, HOST)
    assert writer.sealer is not None and writer.sealer.key is not None
    assert writer.sealer.key.epoch == 1
    with engine.connect() as connection:
        [row] = connection.execute(
            select(schema.instances.c.id, schema.instances.c.high_water)
            .order_by(schema.instances.c.id)
            .limit(1)
        ).all()
    state = InstanceState(row.id, "", row.high_water, 0, 0, 0)
    now = time.time_ns()
    for batch in range(3):
        first = state.high_water + 1
        rows = [
            (seq, now + seq, seq, 5, 0, 7, 8, "p", f"m{seq}") for seq in range(first, first + 4)
        ]
        loss = {
            "instance_id": state.id, "first_seq": first + 4, "last_seq": first + 4, "count": 1,
            "first_time_ns": None, "last_time_ns": None, "reason": "gap", "recorded_ns": now,
        }  # fmt: skip
        state.high_water = first + 4
        writer.commit({state.id: rows}, [loss], [state], now)
        assert writer.sealer.seal(stopping=batch == 2)
    assert writer.sealer.key is None  # erased at the clean stop
    engine.dispose()
    report = _verify(lossy.url, key)
    assert report.broken is None, report.broken
    assert report.sealed.epoch == 3 and report.sealed.flags == chain.STOPPED
    assert report.records == len(lossy.records) + 12
    # Prune removes old records of sealed batches: a checkpoint says so.
    result = kextlog("prune", "--older-than", "1h")
    assert result.returncode == 0, result.stderr
    report = _verify(lossy.url, key)
    assert report.broken is None, report.broken
    assert report.checkpoints and report.checkpoints[0]["pruned"] == "records"
    assert 0 < report.records < len(lossy.records) + 12
    out = kextlog("db", "verify", "--key", key.hex())
    assert out.returncode == 0, out.stderr
    assert "prune checkpoint" in out.stdout and "records removed" in out.stdout


@pytest.mark.sqlite_only  # PostgreSQL's COPY refuses the whole batch instead
def test_the_chain_covers_what_a_batch_committed_not_what_it_offered(
    sealed: tuple[PopulatedStore, bytearray],
) -> None:
    lossy, key = sealed
    engine = write_engine(lossy.url)
    with engine.connect() as connection:
        row = connection.execute(
            select(schema.instances.c.id, schema.instances.c.high_water).limit(1)
        ).one()
    # A row already stored above the high-water mark (none should be):
    # INSERT OR IGNORE keeps it, and the batch's own row for that seq is dropped.
    planted = (row.high_water + 2, 1, 1, 5, 0, 1, 1, "planted", "already there")
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO records (id, time_ns, mono_ns, level, flags, pid, tid, process, message)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (schema.record_id(row.id, planted[0]), *planted[1:]),
        )
    writer = Writer(engine, HOST)
    writer.sealer = chain.Sealer.open(engine, HOST)
    state = InstanceState(row.id, "", row.high_water + 3, 0, 0, 0)
    offered = [
        (seq, 2, 2, 3, 0, 2, 2, "p", "offered")
        for seq in range(row.high_water + 1, row.high_water + 4)
    ]
    writer.commit({row.id: offered}, [], [state], time.time_ns())
    engine.dispose()
    report = _verify(lossy.url, key)
    assert report.broken is None, report.broken
    assert report.records == len(lossy.records) + 3


def test_a_key_of_another_chain_and_a_malformed_key_are_refused(
    sealed: tuple[PopulatedStore, bytearray], kextlog: Kextlog
) -> None:
    result = kextlog("db", "verify", "--key", os.urandom(32).hex())
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "kextlog: error: the verification key belongs to no chain in this store"
    )
    result = kextlog("db", "verify", "--key", "0123")
    assert result.returncode == 2 and "expected 64 hex digits" in result.stderr
    assert "Traceback" not in result.stderr
    # The right key, from stdin (not on a command line others can read in ps):
    result = kextlog("db", "verify", "--key", "-", input=sealed[1].hex() + "\n")
    assert result.returncode == 0, result.stderr
    assert "seals checked with the key" in result.stdout


def test_an_unsealed_store_says_so(store_url: str, kextlog: Kextlog) -> None:
    result = kextlog("db", "verify")
    assert result.returncode == 1
    assert "the store is not sealed" in result.stderr


def test_setup_twice_is_refused_and_leaves_the_key_as_it_was(
    sealed: tuple[PopulatedStore, bytearray], tmp_path: Path
) -> None:
    lossy, _ = sealed
    before = (tmp_path / "seal.key").read_bytes()
    engine = write_engine(lossy.url)
    with pytest.raises(DatabaseError, match="exists already"):
        chain.setup(engine, HOST, tmp_path / "seal.key")
    with pytest.raises(DatabaseError, match="set up already"):
        chain.setup(engine, HOST, tmp_path / "other.key")
    engine.dispose()
    assert (tmp_path / "seal.key").read_bytes() == before
    assert not (tmp_path / "other.key").exists()


def test_entries_removed_from_the_chain_itself_are_found(
    sealed: tuple[PopulatedStore, bytearray],
) -> None:
    lossy, key = sealed
    engine = write_engine(lossy.url)
    with engine.begin() as connection:
        connection.execute(delete(schema.seal_entries).where(schema.seal_entries.c.position == 1))
    engine.dispose()
    broken = _verify(lossy.url, key).broken
    assert broken is not None and broken.kind == "removed" and broken.position == 1


def test_a_forged_seal_is_invalid_with_the_key_and_unseen_without(
    sealed: tuple[PopulatedStore, bytearray],
) -> None:
    lossy, key = sealed
    engine = write_engine(lossy.url)
    with engine.begin() as connection:
        connection.execute(update(schema.seals).values(mac=b"\x00" * 32))
    engine.dispose()
    broken = _verify(lossy.url, key).broken
    assert broken is not None and broken.kind == "seal invalid"
    assert _verify(lossy.url, None).broken is None  # without the key, seals are not checked


def test_a_reload_to_another_store_seals_what_it_leaves(tmp_path: Path) -> None:
    """SIGHUP moves ingest to another store: the one it leaves is sealed up
    to its last batch first, not left with an unsealed tail."""
    sock, config, log = tmp_path / "sim.sock", tmp_path / "kextlog.toml", tmp_path / "ingest.log"
    first, second = tmp_path / "a" / "k.db", tmp_path / "b" / "k.db"
    for db in (first, second):
        db.parent.mkdir()
        assert run_cli("db", "upgrade", "--db", str(db)).returncode == 0
    setup = run_cli("db", "seal-setup", "--db", str(first))
    assert setup.returncode == 0, setup.stderr

    def use(db: Path) -> None:  # sealed once an hour: only a stop or a reload seals here
        config.write_text(
            f'sources = ["unix:{sock}"]\ndatabase = "{db}"\n[seal]\ninterval = "1h"\n'
        )

    use(first)
    simulator = start_simulator(sock, "--rate", "2000", "--count", "0")
    ingest = start("ingest", "--config", str(config), log=log)
    try:
        wait_until(lambda: stored_in(first) > 1000, "records in the first store")
        use(second)
        ingest.send_signal(signal.SIGHUP)
        wait_until(lambda: "reloaded" in log.read_text(), "the reload")
        wait_until(lambda: stored_in(second) > 0, "records in the second store")
    finally:
        simulator.send_signal(signal.SIGINT)
        simulator.wait(timeout=60)
        ingest.send_signal(signal.SIGTERM)
        assert ingest.wait(timeout=60) == 0
    result = run_cli("db", "verify", "--db", str(first), "--key", setup.stdout.strip())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "unsealed tail" not in result.stdout
    assert result.stdout.rstrip().endswith("OK"), result.stdout


def stored_in(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        return connection.execute("SELECT count(*) FROM records").fetchone()[0]
