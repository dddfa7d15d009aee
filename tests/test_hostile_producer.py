"""Hostile producers against the real ingest process: values a producer
controls (seqs, loss ranges and counts, its instance id) never reach another
producer's records, never push a count, a mark or an aggregate past what the
store holds, and every test ends with `kextlog db check` and `kextlog stats`
passing.  Also the loss reason `gap` and the ACK-after-COMMIT rule, with a
producer that records every ACK it gets."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from kextlog_store._native import lib
from kextlog_store.status import read_status
from kextlog_store.store.location import database_url
from tests.processes import kextlog, start, start_ingest
from tests.test_delivery import accounting, assert_each_seq_once
from tests.test_ingest_hostile import Producer, assert_store_clean, stop
from tests.test_wire import log_bytes, loss_bytes

SEQ_MAX = lib.KEXTLOG_SEQ_MAX  # the bound the header states
OUT_OF_RANGE = {"out of range": 1}  # what the daemon skipped, by problem


def ingest(tmp_path: Path, *producers: Path):
    sources = [argument for path in producers for argument in ("--source", f"unix:{path}")]
    db = tmp_path / "k.db"
    return start("ingest", *sources, "--db", str(db), log=tmp_path / "ingest.log"), db


def instance_ids(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as connection:
        return dict(connection.execute("SELECT uuid, id FROM instances"))


def messages(db: Path, instance: uuid.UUID) -> dict[int, str]:
    with sqlite3.connect(db) as connection:
        return dict(
            connection.execute(
                "SELECT r.seq, r.message FROM records r JOIN instances i ON i.id = r.instance_id"
                " WHERE i.uuid = ?",
                (instance.hex,),
            )
        )


def skipped(db: Path, source: Path, expected: dict[str, int]) -> dict[str, int]:
    """What the running daemon skipped from source, by problem, once it
    shows expected (status is published once a second)."""
    deadline = time.monotonic() + 30
    while True:
        status = read_status(database_url(str(db)))
        assert status is not None
        (state,) = (s for s in status.snapshot["sources"] if s["source"] == f"unix:{source}")
        problems = state["skipped"]["problems"]
        if problems == expected or time.monotonic() > deadline:
            return problems
        time.sleep(0.05)


def test_a_seq_past_the_bound_never_reaches_another_instances_records(tmp_path: Path) -> None:
    hostile_sock, victim_sock = tmp_path / "hostile.sock", tmp_path / "victim.sock"
    hostile, victim = Producer(hostile_sock), Producer(victim_sock)
    daemon, db = ingest(tmp_path, hostile_sock, victim_sock)
    try:
        # Instances 1 and 2 are the hostile producer's (it reconnects as a
        # new instance), 3 the victim's: 2 << 44 | seq, with seq carrying
        # bit 45, is 3 << 44 | seq's low bits (the key is instance << 44 | seq).
        for _ in range(2):
            hostile.accept(instance=uuid.uuid4())
            hostile.send(log_bytes(1))
            hostile.wait_for_ack(1)
        victim.accept()
        victim.send(log_bytes(1, b"victim 1"))
        victim.wait_for_ack(1)
        ids = instance_ids(db)
        hostile_id, victim_id = ids[hostile.instance.hex], ids[victim.instance.hex]
        assert hostile_id | victim_id == victim_id != hostile_id  # the aim is true
        # Aimed at the victim's seq 2, which it has not sent yet.
        hostile.send(log_bytes(victim_id << 44 | 2, b"forged"), log_bytes(2))
        hostile.wait_for_ack(2)
        victim.send(*(log_bytes(seq, b"victim %d" % seq) for seq in range(2, 11)))
        victim.wait_for_ack(10)
        assert skipped(db, hostile_sock, OUT_OF_RANGE) == OUT_OF_RANGE
    finally:
        stop(daemon)
        hostile.close()
        victim.close()

    assert messages(db, victim.instance) == {seq: f"victim {seq}" for seq in range(1, 11)}
    assert messages(db, hostile.instance) == {1: "hello", 2: "hello"}
    for instance in accounting(db).values():
        assert instance["losses"] == []
    assert_store_clean(db)


def test_loss_counts_past_the_bound_are_refused_and_sums_cannot_overflow(
    tmp_path: Path,
) -> None:
    socks = [tmp_path / "one.sock", tmp_path / "two.sock"]
    producers = [Producer(sock) for sock in socks]
    daemon, db = ingest(tmp_path, *socks)
    try:
        for producer in producers:
            producer.accept()
            # 2 * 2**62 lost records would overflow a 64-bit sum; one
            # instance's seqs stop at SEQ_MAX, and so does what it can lose.
            producer.send(log_bytes(1), loss_bytes(2, 2**62 + 1), loss_bytes(2, SEQ_MAX))
            producer.wait_for_ack(SEQ_MAX)
        assert [skipped(db, sock, OUT_OF_RANGE) for sock in socks] == [OUT_OF_RANGE] * 2
    finally:
        stop(daemon)
        for producer in producers:
            producer.close()

    for instance in accounting(db).values():
        assert instance["stored"] == [1]
        assert [loss[:3] + loss[-1:] for loss in instance["losses"]] == [
            (2, SEQ_MAX, SEQ_MAX - 1, "ring-full")
        ]
        assert_each_seq_once(instance, SEQ_MAX)
    stats = assert_store_clean(db)
    assert [(loss["reason"], loss["records"]) for loss in stats["losses"]] == [
        ("ring-full", 2 * (SEQ_MAX - 1))
    ]


def test_a_high_water_mark_cannot_cover_other_instances(tmp_path: Path) -> None:
    hostile_sock, victim_sock = tmp_path / "hostile.sock", tmp_path / "victim.sock"
    hostile, victim = Producer(hostile_sock), Producer(victim_sock)
    daemon, db = ingest(tmp_path, hostile_sock, victim_sock)
    try:
        hostile.accept()  # instance 1
        hostile.send(log_bytes(1))
        hostile.wait_for_ack(1)
        victim.accept()  # instance 2
        victim.send(*(log_bytes(seq, b"victim %d" % seq) for seq in range(1, 6)))
        victim.wait_for_ack(5)
        # A mark of 2**62 would cover the keys of instances 1 to 2**18;
        # SEQ_MAX, the highest there is, covers only the instance's own.
        hostile.send(log_bytes(2**62), log_bytes(SEQ_MAX, b"last"))
        hostile.wait_for_ack(SEQ_MAX)
        assert skipped(db, hostile_sock, OUT_OF_RANGE) == OUT_OF_RANGE
    finally:
        stop(daemon)
        hostile.close()
        victim.close()

    instances = accounting(db)
    mine, theirs = instances[hostile.instance.hex], instances[victim.instance.hex]
    assert mine["stored"] == [1, SEQ_MAX]
    # Its seq was not read from the skipped frame: the seqs before the next are malformed.
    assert [loss[:3] + loss[-1:] for loss in mine["losses"]] == [
        (2, SEQ_MAX - 1, SEQ_MAX - 2, "malformed")
    ]
    assert_each_seq_once(mine, SEQ_MAX)
    assert theirs["stored"] == [1, 2, 3, 4, 5] and theirs["losses"] == []
    stats = assert_store_clean(db)
    stored = {account["instance"]: account["stored"] for account in stats["instances"]}
    assert stored == {hostile.instance.hex: 2, victim.instance.hex: 5}


def test_a_loss_never_overlaps_what_is_stored_or_lost(tmp_path: Path) -> None:
    sock = tmp_path / "hostile.sock"
    producer = Producer(sock)
    daemon, db = ingest(tmp_path, sock)
    try:
        producer.accept()
        producer.send(
            *(log_bytes(seq) for seq in range(1, 11)),
            loss_bytes(5, 20),  # overlaps stored records: only 11..20 are news
            loss_bytes(1, 3),  # all stored already
            loss_bytes(15, 25),  # overlaps the loss before it
            log_bytes(26),
        )
        producer.wait_for_ack(26)
    finally:
        stop(daemon)
        producer.close()

    (instance,) = accounting(db).values()
    assert instance["stored"] == [*range(1, 11), 26]
    assert [loss[:3] for loss in instance["losses"]] == [(11, 20, 10), (21, 25, 5)]
    assert_each_seq_once(instance, 26)
    assert_store_clean(db)


def test_an_instance_id_belongs_to_one_source(tmp_path: Path) -> None:
    hostile_sock, victim_sock = tmp_path / "hostile.sock", tmp_path / "victim.sock"
    hostile, victim = Producer(hostile_sock), Producer(victim_sock)
    daemon, db = ingest(tmp_path, hostile_sock, victim_sock)
    try:
        victim.accept()
        victim.send(*(log_bytes(seq, b"victim %d" % seq) for seq in range(1, 6)))
        victim.wait_for_ack(5)
        # The victim's instance id, from another source, while the victim is
        # connected: were it believed, its forged seqs 6..8 would be stored
        # and the victim's own 6..8 skipped as replays, yet acknowledged.
        resumed = hostile.accept(instance=victim.instance)
        if resumed is not None:
            hostile.send(*(log_bytes(seq, b"forged") for seq in range(resumed, resumed + 3)))
            hostile.wait_for_ack(resumed + 2)
        victim.send(*(log_bytes(seq, b"victim %d" % seq) for seq in range(6, 11)))
        victim.wait_for_ack(10)
        # And while the victim is away: the id is still the victim's source's.
        victim.close()
        second = hostile.accept(instance=victim.instance)
        hostile.accept(instance=uuid.uuid4())  # its own instance is welcome
        hostile.send(log_bytes(1))
        hostile.wait_for_ack(1)
    finally:
        stop(daemon)
        hostile.close()
        victim.close()

    assert (resumed, second) == (None, None)
    assert messages(db, victim.instance) == {seq: f"victim {seq}" for seq in range(1, 11)}
    refusal = f"instance {victim.instance.hex} belongs to unix:{victim_sock}: refused"
    log = (tmp_path / "ingest.log").read_text()
    assert log.count(refusal) == 2, log
    assert_store_clean(db)


def test_an_all_zero_instance_id_is_refused(tmp_path: Path) -> None:
    sock = tmp_path / "hostile.sock"
    producer = Producer(sock)
    daemon, db = ingest(tmp_path, sock)
    try:
        # No RESUME: the HELLO is out of range, and no other comes in time.
        assert producer.accept(instance=uuid.UUID(int=0)) is None
        assert skipped(db, sock, OUT_OF_RANGE) == OUT_OF_RANGE
        assert producer.accept(instance=uuid.uuid4()) == 1
        producer.send(log_bytes(1))
        producer.wait_for_ack(1)
    finally:
        stop(daemon)
        producer.close()

    assert list(instance_ids(db)) == [producer.instance.hex]
    assert "no HELLO from the producer" in (tmp_path / "ingest.log").read_text()
    assert_store_clean(db)


def test_seqs_skipped_without_a_loss_frame_are_a_gap(tmp_path: Path) -> None:
    sock = tmp_path / "buggy.sock"
    producer = Producer(sock)
    daemon, db = ingest(tmp_path, sock)
    try:
        producer.accept()
        producer.send(*(log_bytes(seq) for seq in (1, 2, 3, 7, 8, 20)))
        producer.wait_for_ack(20)
    finally:
        stop(daemon)
        producer.close()

    (instance,) = accounting(db).values()
    assert instance["stored"] == [1, 2, 3, 7, 8, 20]
    assert instance["losses"] == [(4, 6, 3, None, None, "gap"), (9, 19, 11, None, None, "gap")]
    assert_each_seq_once(instance, 20)
    log = (tmp_path / "ingest.log").read_text()
    assert "3 records lost (seqs 4..6, gap)" in log and "11 records lost (seqs 9..19, gap)" in log
    assert_store_clean(db)


def test_no_ack_for_a_batch_whose_commit_failed(tmp_path: Path) -> None:
    sock = tmp_path / "producer.sock"
    producer = Producer(sock)
    daemon, db = ingest(tmp_path, sock)
    try:
        producer.accept()
        producer.send(*(log_bytes(seq) for seq in range(1, 5)))
        producer.wait_for_ack(4)
        # The next batch's records are written, then its transaction fails
        # at the instance's new high-water mark, its last statement.
        with sqlite3.connect(db, timeout=30) as connection:
            connection.execute(
                "CREATE TRIGGER fail_commit BEFORE UPDATE OF high_water ON instances"
                " WHEN NEW.high_water > 4 BEGIN SELECT RAISE(ABORT, 'commit refused'); END"
            )
        producer.send(*(log_bytes(seq) for seq in range(5, 9)))
        assert daemon.wait(timeout=60) == 1
    finally:
        if daemon.poll() is None:
            stop(daemon)
        producer.close()

    assert producer.acks and max(producer.acks) == 4, producer.acks  # nothing after 4
    log = (tmp_path / "ingest.log").read_text()
    assert "cannot write to the store" in log and "commit refused" in log
    assert "Traceback" not in log
    (instance,) = accounting(db).values()
    assert instance["stored"] == [1, 2, 3, 4] and instance["high_water"] == 4
    assert_store_clean(db)


def test_a_flag_no_postgresql_column_holds_is_refused(
    tmp_path: Path, postgres_database: Callable[[bool], str]
) -> None:
    url, sock = postgres_database(False), tmp_path / "hostile.sock"
    producer = Producer(sock)
    daemon = start_ingest(sock, url, log=tmp_path / "ingest.log")
    try:
        producer.accept()
        # flags is a signed 16-bit column: with bit 15 the binary COPY stores -32768.
        producer.send(log_bytes(1), log_bytes(2, flags=0x8000), log_bytes(3))
        producer.wait_for_ack(3)
        assert daemon.poll() is None
    finally:
        stop(daemon)
        producer.close()

    shown = kextlog("stats", "--db", url, "-o", "json")
    assert shown.returncode == 0, shown.stderr
    (instance,) = json.loads(shown.stdout)["instances"]
    assert (instance["stored"], instance["lost"], instance["high_water"]) == (2, 1, 3)


def test_bytes_that_are_not_text_are_told_apart_from_their_escapes(tmp_path: Path) -> None:
    """A message with the byte 0xff and one with the text \\xff (and NUL):
    stored apart, JSON gives the first as its bytes (as journalctl does),
    short and cat show a literal backslash doubled where it reads as an
    escape.  A producer cannot claim the store's own flag (bit 14)."""
    sock = tmp_path / "producer.sock"
    producer = Producer(sock)
    daemon, db = ingest(tmp_path, sock)
    sent = [b"byte \xff", b"text \\xff", b"nul \x00 and \\x00", b"path C:\\temp"]
    try:
        producer.accept()
        producer.send(*(log_bytes(seq, message) for seq, message in enumerate(sent, start=1)))
        producer.send(log_bytes(5, b"claims the flag", flags=lib.KEXTLOG_STORED_BYTES))
        producer.send(log_bytes(6, b"after"))
        producer.wait_for_ack(6)
    finally:
        stop(daemon)
        producer.close()

    result = kextlog("query", "--db", str(db), "-o", "json")
    assert result.returncode == 0, result.stderr
    shown = [json.loads(line)["message"] for line in result.stdout.splitlines()]
    assert shown == [list(b"byte \xff"), "text \\xff", list(b"nul \x00 and \\x00"),
                     "path C:\\temp", "after"]  # fmt: skip
    cat = kextlog("query", "--db", str(db), "-o", "cat").stdout.splitlines()
    assert [line for line in cat if not line.startswith("-- ")] == [
        "byte \\xff", "text \\\\xff", "nul \\x00 and \\\\x00", "path C:\\temp", "after"
    ]  # fmt: skip
    short = kextlog("query", "--db", str(db), "-o", "short").stdout.splitlines()
    short = [line for line in short if not line.startswith("-- ")]
    assert short[0].endswith(": byte \\xff") and short[1].endswith(": text \\\\xff")
    (instance,) = accounting(db).values()
    assert instance["losses"] == [(5, 5, 1, None, None, "malformed")]
    assert_store_clean(db)
