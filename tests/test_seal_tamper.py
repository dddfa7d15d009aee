"""Sealing against an intruder: a real simulator and a real ingest seal a
store (through SIGKILLs, a reload and ring overflows), then each test
tampers with a copy as an intruder with root would, with the sqlite3 CLI
and with the current key stolen from the host, and `kextlog db verify`
must name what was done and where."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from kextlog_store.seal import chain, encoding, keys
from tests.conftest import unavailable, wait_until
from tests.processes import kextlog, start, wait_for_socket

COUNT = 40_000
SEQ_BITS = 44


def sealed_seals(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        return connection.execute("SELECT count(*) FROM seals").fetchone()[0]


def sealed_up_to_the_end(db: Path) -> bool:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        sealed, entries = connection.execute(
            "SELECT (SELECT max(position) FROM seals), (SELECT max(position) FROM seal_entries)"
        ).fetchone()
    return bool(sealed == entries)


def committed(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        row = connection.execute("SELECT max(high_water) FROM instances").fetchone()
    return row[0] or 0


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A store sealed every second while the simulator's 40,000 records go
    in: ingest is killed (SIGKILL) once and reloaded (SIGHUP) once, the
    ring overflows while no daemon reads; ingest stops cleanly at the end."""
    if shutil.which("sqlite3") is None:
        unavailable("the sqlite3 command (Debian's sqlite3; tests/install-packages.sh)")
    where = tmp_path_factory.mktemp("sealed")
    db, sock, log = where / "k.db", where / "sim.sock", where / "ingest.log"
    assert kextlog("db", "upgrade", "--db", str(db)).returncode == 0
    setup = kextlog("db", "seal-setup", "--db", str(db))
    assert setup.returncode == 0, setup.stderr
    assert "keep it OFF this host" in setup.stderr
    key = setup.stdout.strip()
    simulator = start(
        "simulate", "--socket", str(sock), "--rate", "8000", "--count", str(COUNT),
        "--ring", "4000", log=where / "sim.log",
    )  # fmt: skip
    daemons: list[subprocess.Popen[str]] = []
    try:
        wait_for_socket(sock)
        # 8,000 records a second offered to a ring of 4,000 no daemon reads.
        sim_log = where / "sim.log"
        wait_until(lambda: "lost seq" in sim_log.read_text(), "ring-full losses")
        run(db, sock, log, simulator, daemons)
    finally:
        for process in (simulator, *daemons):  # only left running by a failure
            if process.poll() is None:
                process.kill()
                process.wait()
    return db, key


def run(
    db: Path,
    sock: Path,
    log: Path,
    simulator: subprocess.Popen[str],
    daemons: list[subprocess.Popen[str]],
) -> None:
    daemon = ["ingest", "--source", f"unix:{sock}", "--db", str(db), "--seal-interval", "1s"]
    daemons.append(ingest := start(*daemon, log=log))
    wait_until(lambda: committed(db) > 12_000 and sealed_seals(db) >= 2, "seals of a first daemon")
    ingest.kill()  # SIGKILL: mid-batch, maybe between a seal and its key's evolution
    ingest.wait()
    killed_at = committed(db)
    daemons.append(ingest := start(*daemon, log=log))
    wait_until(
        lambda: log.read_text().count("connected to") >= 2 and committed(db) > killed_at,
        "a second daemon that commits",
    )
    ingest.send_signal(signal.SIGHUP)
    wait_until(lambda: "reloaded" in log.read_text(), "the reload")
    assert simulator.wait(timeout=300) == 0
    wait_until(lambda: committed(db) == COUNT, "every record")
    # The last batches get a seal of their own before the clean stop's.
    wait_until(lambda: sealed_up_to_the_end(db), "a seal of the last batch")
    ingest.send_signal(signal.SIGTERM)
    assert ingest.wait(timeout=60) == 0


def copy(sealed: tuple[Path, str], tmp_path: Path) -> Path:
    db, _ = sealed
    target = tmp_path / "copy.db"
    shutil.copyfile(db, target)
    if Path(f"{db}-wal").exists():  # what the last transactions wrote
        shutil.copyfile(f"{db}-wal", f"{target}-wal")
    return target


def sql(db: Path, statement: str) -> None:
    result = subprocess.run(["sqlite3", str(db), statement], capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def verify(db: Path, key: str | None) -> subprocess.CompletedProcess[str]:
    return kextlog("db", "verify", "--db", str(db), *(["--key", key] if key else []))


def broken(db: Path, key: str | None) -> str:
    result = verify(db, key)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr == "kextlog: error: verification failed\n"
    (line,) = [line for line in result.stdout.splitlines() if "BROKEN" in line]
    return line


def test_the_untampered_store_verifies_read_only(sealed: tuple[Path, str], tmp_path: Path) -> None:
    db = copy(sealed, tmp_path)
    files = [db, Path(f"{db}-wal")]
    before = [hashlib.sha256(file.read_bytes()).hexdigest() for file in files]
    result = verify(db, sealed[1])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "seals checked with the key" in result.stdout
    stored = sqlite3.connect(db).execute("SELECT count(*) FROM records").fetchone()[0]
    assert f"{stored:,} records" in result.stdout
    assert "ingest stopped cleanly after the last seal" in result.stdout
    after = [hashlib.sha256(file.read_bytes()).hexdigest() for file in files]
    assert after == before  # verify wrote nothing
    with sqlite3.connect(db) as connection:
        seals = connection.execute("SELECT epoch FROM seals ORDER BY epoch").fetchall()
        losses = connection.execute("SELECT count(*) FROM losses").fetchone()[0]
    assert [epoch for (epoch,) in seals] == list(range(len(seals))) and len(seals) >= 4
    assert losses > 0  # the ring overflowed: loss rows are in the chain too


def test_after_prunes_and_a_rewrite_of_every_page_the_store_still_verifies(
    sealed: tuple[Path, str], tmp_path: Path
) -> None:
    db = copy(sealed, tmp_path)
    by_level = kextlog("prune", "--db", str(db), "--older-than", "0s", "--level", "trace..debug")
    assert by_level.returncode == 0, by_level.stderr
    by_size = kextlog("prune", "--db", str(db), "--max-size", "2MB")
    assert by_size.returncode == 0, by_size.stderr
    sql(db, "VACUUM")  # every page written anew: the encoding is of values, not of storage
    result = verify(db, sealed[1])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("prune checkpoint") >= 2
    assert "not checked record by record" in result.stdout


def seq_of(db: Path, where: str) -> int:
    with sqlite3.connect(db) as connection:
        return connection.execute(f"SELECT seq FROM records WHERE {where}").fetchone()[0]


@pytest.mark.parametrize("key", [True, False], ids=["key", "no key"])
def test_a_changed_message_is_found(sealed: tuple[Path, str], tmp_path: Path, key: bool) -> None:
    db = copy(sealed, tmp_path)
    sql(db, "UPDATE records SET message = 'all quiet' WHERE seq = 1234")
    line = broken(db, sealed[1] if key else None)
    assert "BROKEN: changed: entry" in line and line.endswith(": message")
    assert "seqs" in line and "time 20" in line


def test_a_value_of_another_type_is_found(sealed: tuple[Path, str], tmp_path: Path) -> None:
    db = copy(sealed, tmp_path)
    sql(db, "UPDATE records SET time_ns = 'a while ago' WHERE seq = 1500")
    assert broken(db, sealed[1]).endswith("seq 1500: time_ns is not an integer")


def test_a_deleted_record_is_found(sealed: tuple[Path, str], tmp_path: Path) -> None:
    db = copy(sealed, tmp_path)
    sql(db, "DELETE FROM records WHERE seq = 2345")
    assert "BROKEN: removed: entry" in (line := broken(db, sealed[1]))
    assert line.endswith("1 records: seqs 2345")


def test_a_record_inserted_where_a_loss_was_is_found(
    sealed: tuple[Path, str], tmp_path: Path
) -> None:
    db = copy(sealed, tmp_path)
    with sqlite3.connect(db) as connection:
        instance, seq = connection.execute("SELECT instance_id, first_seq FROM losses").fetchone()
    sql(
        db,
        f"INSERT INTO records (id, time_ns, mono_ns, level, flags, pid, tid, process, message)"
        f" SELECT {(instance << SEQ_BITS) + seq}, time_ns, mono_ns, level, flags, pid, tid,"
        f" process, 'an alibi' FROM records LIMIT 1",
    )
    assert "BROKEN: inserted: entry" in (line := broken(db, sealed[1]))
    assert line.endswith(f"1 records: seqs {seq}")


def test_two_swapped_records_are_found_reordered(sealed: tuple[Path, str], tmp_path: Path) -> None:
    db = copy(sealed, tmp_path)
    columns = "time_ns, mono_ns, level, flags, pid, tid, process, message"
    sql(
        db,
        f"CREATE TEMP TABLE a AS SELECT {columns} FROM records WHERE seq = 3000;"
        f"CREATE TEMP TABLE b AS SELECT {columns} FROM records WHERE seq = 3001;"
        f"UPDATE records SET ({columns}) = (SELECT * FROM b) WHERE seq = 3000;"
        f"UPDATE records SET ({columns}) = (SELECT * FROM a) WHERE seq = 3001;",
    )
    assert "BROKEN: reordered: entry" in broken(db, sealed[1])


def test_two_swapped_batches_are_found_reordered(sealed: tuple[Path, str], tmp_path: Path) -> None:
    db = copy(sealed, tmp_path)
    sql(
        db,
        "UPDATE seal_entries SET position = -1 WHERE position = 5;"
        "UPDATE seal_entries SET position = 5 WHERE position = 6;"
        "UPDATE seal_entries SET position = 6 WHERE position = -1;",
    )
    line = broken(db, sealed[1])
    assert "BROKEN: reordered: entry 5" in line and "is at entry 6" in line


def test_a_changed_loss_row_is_found(sealed: tuple[Path, str], tmp_path: Path) -> None:
    db = copy(sealed, tmp_path)
    sql(db, "UPDATE losses SET count = count - 1, last_seq = last_seq - 1 WHERE id = 1")
    assert (line := broken(db, sealed[1])).endswith(": loss rows")
    assert "BROKEN: changed: entry" in line


def test_a_truncated_tail_is_found_while_its_seals_are_there(
    sealed: tuple[Path, str], tmp_path: Path
) -> None:
    db = copy(sealed, tmp_path)
    # The newest 500 stored (under load the ring loses more of the last seqs).
    sql(db, "DELETE FROM records WHERE id IN (SELECT id FROM records ORDER BY id DESC LIMIT 500)")
    assert "BROKEN: removed: entry" in broken(db, sealed[1])
    # The whole tail of the last three entries, what they cover and the
    # high-water marks too (where the cut falls depends on how ingest
    # batched, so it is read from the entries): the seals still name them.
    tail = tmp_path / "tail"
    tail.mkdir()
    db = copy(sealed, tail)
    with sqlite3.connect(db) as connection:
        (cut,) = connection.execute("SELECT max(position) - 3 FROM seal_entries").fetchone()
        first: dict[int, int] = {}
        for (entry,) in connection.execute(
            f"SELECT sections FROM seal_entries WHERE position > {cut}"
        ):
            for section in json.loads(entry):
                instance = section["instance"]
                first[instance] = min(first.get(instance, section["lo"]), section["lo"])
    statements = [f"DELETE FROM seal_entries WHERE position > {cut};"]
    for instance, lo in first.items():
        statements += [
            f"DELETE FROM records WHERE instance_id = {instance} AND seq >= {lo};",
            f"DELETE FROM losses WHERE instance_id = {instance} AND first_seq >= {lo};",
            f"UPDATE instances SET high_water = {lo - 1} WHERE id = {instance};",
        ]
    sql(db, "".join(statements))
    line = broken(db, sealed[1])
    assert "BROKEN: removed" in line and "its tail was cut" in line


def test_a_tail_cut_with_its_seals_shows_as_sealing_that_ended_early(
    sealed: tuple[Path, str], tmp_path: Path
) -> None:
    """What an intruder can do: remove the newest entries with their seals
    (and records). Verify cannot tell that from ingest killed at that point,
    but says where the seals end and that no clean stop follows."""
    db = copy(sealed, tmp_path)
    full = verify(db, sealed[1]).stdout
    with sqlite3.connect(db) as connection:
        (position,) = connection.execute(
            "SELECT position FROM seals WHERE epoch = (SELECT max(epoch) - 2 FROM seals)"
        ).fetchone()
        last = {
            instance: hi
            for (entry,) in connection.execute(
                f"SELECT sections FROM seal_entries WHERE position <= {position}"
            )
            for section in json.loads(entry)
            for instance, hi in [(section["instance"], section["hi"])]
        }
    statements = [
        f"DELETE FROM seal_entries WHERE position > {position}",
        f"DELETE FROM seals WHERE position > {position}",
    ]
    for instance, hi in last.items():
        base = instance << SEQ_BITS
        statements += [
            f"DELETE FROM records WHERE id > {base + hi} AND id < {base + (1 << SEQ_BITS)}",
            f"DELETE FROM losses WHERE instance_id = {instance} AND first_seq > {hi}",
            f"UPDATE instances SET high_water = {hi} WHERE id = {instance}",
        ]
    sql(db, ";".join(statements))
    result = verify(db, sealed[1])
    assert result.returncode == 0, result.stdout
    assert "ingest stopped cleanly" in full and "ingest stopped cleanly" not in result.stdout
    assert f"sealed: up to entry {position} " in result.stdout


def reseal(db: Path, stolen: keys.EpochKey) -> None:
    """The intruder's tool: every entry's digest and head recomputed from
    the rows as they are now (and its localisation data), and every seal
    the stolen key can make again made again."""
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as connection:
        head = encoding.ZERO_HEAD
        heads = {}
        for position, kind, committed_ns, sections, note in connection.execute(
            text(
                "SELECT position, kind, committed_ns, sections, note FROM seal_entries"
                " ORDER BY position"
            )
        ).all():
            stored, digests = [], []
            uuids = dict(connection.execute(text("SELECT id, uuid FROM instances")).all())
            for section in json.loads(sections):
                built = chain.read_section(
                    connection, section["instance"], uuids[section["instance"]],
                    section["lo"], section["hi"],
                )  # fmt: skip
                stored.append(built.stored(section["instance"]))
                digests.append(built.section.digest())
            digest = encoding.batch_digest(position, committed_ns, kind, note, digests)
            head = heads[position] = encoding.next_head(head, digest)
            connection.execute(
                text(
                    "UPDATE seal_entries SET sections = :s, digest = :d, head = :h"
                    " WHERE position = :p"
                ),
                {"s": json.dumps(stored), "d": digest, "h": head, "p": position},
            )
        for epoch, position, sealed_ns, flags in connection.execute(
            text("SELECT epoch, position, sealed_ns, flags FROM seals WHERE epoch >= :e"),
            {"e": stolen.epoch},
        ).all():
            key = encoding.key_at(stolen.key, epoch - stolen.epoch)
            mac = encoding.seal_mac(key, epoch, position, sealed_ns, flags, heads[position])
            connection.execute(
                text("UPDATE seals SET mac = :m WHERE epoch = :e"), {"m": mac, "e": epoch}
            )
    engine.dispose()


def stolen_at(db: Path, epoch: int) -> keys.EpochKey:
    """The key file as an intruder would have found it when the seal of
    epoch - 1 had just been made (derived here from the verification key,
    which only this test has)."""
    first = bytearray.fromhex(STATE["key"])
    return keys.EpochKey(encoding.key_id(first), epoch, encoding.key_at(first, epoch))


STATE: dict[str, str] = {}


def test_rewriting_what_was_sealed_before_the_key_was_stolen_is_found(
    sealed: tuple[Path, str], tmp_path: Path
) -> None:
    db = copy(sealed, tmp_path)
    STATE["key"] = sealed[1]
    with sqlite3.connect(db) as connection:
        epochs = connection.execute("SELECT max(epoch) FROM seals").fetchone()[0]
        (sealed_at,) = connection.execute("SELECT position FROM seals WHERE epoch = 1").fetchone()
        section = json.loads(
            connection.execute(
                "SELECT sections FROM seal_entries WHERE position = ?", (sealed_at,)
            ).fetchone()[0]
        )[0]
    # The key stolen after the seal of epoch 2; a record sealed by epoch 1 rewritten.
    sql(db, f"UPDATE records SET message = 'rewritten' WHERE seq = {section['hi']}")
    reseal(db, stolen_at(db, 3))
    assert verify(db, None).returncode == 0  # the chain alone is consistent again
    line = broken(db, sealed[1])
    assert "BROKEN: seal invalid: entry " in line and "epoch 1 " in line
    assert "changed after they were sealed" in line
    assert epochs >= 3


def test_what_comes_after_the_theft_the_stolen_key_can_forge(
    sealed: tuple[Path, str], tmp_path: Path
) -> None:
    """The limit of forward security: with the key of epoch n, an intruder
    rewrites what was sealed by epoch n or later, and verify cannot tell."""
    db = copy(sealed, tmp_path)
    STATE["key"] = sealed[1]
    with sqlite3.connect(db) as connection:
        # The newest seal that covers batches of its own, and its last batch.
        epoch, position = connection.execute(
            "SELECT s.epoch, s.position FROM seals s JOIN seals p ON p.epoch = s.epoch - 1"
            " WHERE s.position > p.position ORDER BY s.epoch DESC LIMIT 1"
        ).fetchone()
        (last,) = connection.execute(
            "SELECT sections FROM seal_entries WHERE position <= ? AND sections != '[]'"
            " ORDER BY position DESC LIMIT 1",
            (position,),
        ).fetchone()
    sections = json.loads(last)
    sql(db, f"UPDATE records SET message = 'forged' WHERE seq = {sections[0]['hi']}")
    reseal(db, stolen_at(db, epoch))
    assert verify(db, sealed[1]).returncode == 0


@pytest.mark.parametrize(
    "sections",
    [
        "not json",
        "{}",
        "[1, 2]",
        "[{}]",
        '[{"instance": "1", "lo": 1, "hi": 2}]',
        '[{"instance": 1, "lo": -5, "hi": 99999999999999999999999}]',
        '[{"instance": 99999999999999999999, "lo": 1, "hi": 2}]',
    ],
)
def test_sections_an_intruder_wrote_are_a_change_not_a_crash(
    sealed: tuple[Path, str], tmp_path: Path, sections: str
) -> None:
    """What verify reads of the chain is the intruder's text too: whatever
    an entry's sections hold, verify names the entry, and never fails in
    parsing them."""
    db = copy(sealed, tmp_path)
    with sqlite3.connect(db) as connection:
        connection.execute(
            "UPDATE seal_entries SET sections = ? WHERE position ="
            " (SELECT min(position) FROM seal_entries WHERE kind = 1)",
            (sections,),
        )
    line = broken(db, sealed[1])
    assert "BROKEN: changed" in line, line


@pytest.mark.parametrize(
    ("statement", "kind"),
    [
        ("UPDATE seals SET mac = 'text' WHERE epoch = 1", "seal invalid"),
        ("UPDATE seals SET epoch = 'a' WHERE epoch = 1", "seal missing"),  # sorts last
        ("UPDATE seal_entries SET committed_ns = 'x' WHERE position = 2", "changed"),
        ("UPDATE seal_entries SET note = x'ff' WHERE position = 2", "changed"),
        ("UPDATE seal_entries SET head = 7 WHERE position = 2", "changed"),
    ],
)
def test_values_of_another_type_are_a_change_not_a_crash(
    sealed: tuple[Path, str], tmp_path: Path, statement: str, kind: str
) -> None:
    """SQLite keeps a value of any type in any column: an intruder's text
    where a number or bytes belong is reported, with the key, not a crash."""
    db = copy(sealed, tmp_path)
    sql(db, statement)
    line = broken(db, sealed[1])
    assert f"BROKEN: {kind}" in line, line
