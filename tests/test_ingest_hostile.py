"""Hostile and broken producers against the real ingest process: a producer
on a real Unix socket (seqpacket and stream) sends valid frames among
malformed ones and garbage.  Every valid record is stored once, no malformed
one is, the seqs they held are loss rows, the daemon keeps running, reports
each burst once on stderr, and `kextlog status` counts what it skipped."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import sqlite3
import struct
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from kextlog_store._native import ffi, lib
from kextlog_store.status import read_status
from kextlog_store.store.location import database_url
from tests.processes import kextlog, start_ingest
from tests.test_delivery import accounting, assert_each_seq_once
from tests.test_wire import BROKEN, log_bytes

REPORT = "bytes of malformed input in the last"
ACK = struct.Struct("<IHHIIQ")  # struct kextlog_ack_frame
RESUME = struct.Struct("<IHHII16sQ")  # struct kextlog_resume_frame


class Producer:
    """Serves one connection at a time as a kext would: HELLO, then (after
    RESUME) whatever the test sends; it records every ACK the daemon sends
    on a thread.  Each accept() is a new connection (the daemon reconnects
    after the last one closed), for this producer's instance or another."""

    def __init__(self, path: Path, kind: int = socket.SOCK_SEQPACKET) -> None:
        self.kind = kind
        self.instance = uuid.uuid4()
        self.acks: list[int] = []  # of the current connection, in the order they came
        self._listener = socket.socket(socket.AF_UNIX, kind)
        self._listener.bind(str(path))
        self._listener.listen(1)
        self._listener.settimeout(30)
        self._connection: socket.socket | None = None

    @property
    def acked(self) -> int:
        return max(self.acks, default=0)

    def accept(
        self, before_hello: bytes = b"", instance: uuid.UUID | None = None, **hello: int
    ) -> int | None:
        """Greets the daemon's next connection as instance (this producer's
        own by default); hello overrides HELLO's seqs.  Returns the seq the
        daemon's RESUME asks for, or None when it hung up instead."""
        self._hang_up()
        self.instance = instance or self.instance
        self.acks = []
        connection = self._next_connection()
        if before_hello:
            connection.sendall(before_hello)
        frame = ffi.new("struct kextlog_hello_frame *")
        length = lib.kextlog_encode_hello(
            frame, self.instance.bytes, bytes(16), hello.get("oldest_seq", 1),
            hello.get("next_seq", 1), 1000, 1 << 20, 0x010000, b"hostile",
        )  # fmt: skip
        connection.sendall(bytes(ffi.buffer(frame, length)))
        resume = b""
        connection.settimeout(30)
        while len(resume) < RESUME.size:
            if not (data := connection.recv(64)):
                connection.close()
                return None
            resume += data
        self._connection = connection
        threading.Thread(target=self._read_acks, args=(connection,), daemon=True).start()
        return RESUME.unpack_from(resume)[-1]

    def _read_acks(self, connection: socket.socket) -> None:
        acks, pending = self.acks, b""
        with contextlib.suppress(OSError):
            while data := connection.recv(4096):
                pending += data
                while len(pending) >= ACK.size:
                    *_, seq = ACK.unpack_from(pending)
                    acks.append(seq)
                    pending = pending[ACK.size :]

    def send(self, *datagrams: bytes) -> None:
        """Each a datagram on seqpacket; one after the other on a stream."""
        assert self._connection is not None
        for datagram in datagrams:
            self._connection.sendall(datagram)

    def wait_for_ack(self, seq: int) -> None:
        deadline = time.monotonic() + 30
        while self.acked < seq:
            assert time.monotonic() < deadline, f"no ACK of seq {seq} (last {self.acked})"
            time.sleep(0.02)

    def _next_connection(self) -> socket.socket:
        """The daemon's next connection that is still open: one it gave up
        on (no HELLO in time) waits in the backlog, closed."""
        while True:
            connection, _ = self._listener.accept()
            readable, _, _ = select.select([connection], [], [], 0)
            if not readable or connection.recv(1, socket.MSG_PEEK):
                return connection
            connection.close()

    def _hang_up(self) -> None:
        # shutdown, not only close: the ACK reader's recv holds the socket open.
        if self._connection is not None:
            with contextlib.suppress(OSError):
                self._connection.shutdown(socket.SHUT_RDWR)
            self._connection.close()
            self._connection = None

    def close(self) -> None:
        self._hang_up()
        self._listener.close()


def broken_log(seq: int, offset: int, value: bytes) -> bytes:
    data = bytearray(log_bytes(seq))
    data[offset : offset + len(value)] = value
    return bytes(data)


def report_lines(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if REPORT in line]


def reported_bytes(log: Path) -> int:
    lines = report_lines(log)
    return sum(int(line.split("skipped ")[1].split(" ")[0].replace(",", "")) for line in lines)


def wait_for_reports(log: Path, count: int) -> list[str]:
    deadline = time.monotonic() + 30
    while len(lines := report_lines(log)) < count:
        assert time.monotonic() < deadline, f"{count} reports expected in {log.read_text()}"
        time.sleep(0.05)
    return lines


def assert_store_clean(db: Path) -> dict:
    """`kextlog db check` and `kextlog stats` pass; stats' figures."""
    checked = kextlog("db", "check", "--db", str(db))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    stats = kextlog("stats", "--db", str(db), "-o", "json")
    assert stats.returncode == 0, stats.stderr
    return json.loads(stats.stdout)


def stop(ingest) -> None:
    ingest.send_signal(signal.SIGTERM)
    assert ingest.wait(timeout=30) == 0


SOCKET_TYPES = {"seqpacket": socket.SOCK_SEQPACKET, "stream": socket.SOCK_STREAM}
TEXT = b"bad \xff and nul \x00 end"


@pytest.mark.parametrize("socket_type", SOCKET_TYPES)
def test_malformed_frames_among_valid_ones(tmp_path: Path, socket_type: str) -> None:
    sock, db, log = tmp_path / "hostile.sock", tmp_path / "k.db", tmp_path / "ingest.log"
    producer = Producer(sock, SOCKET_TYPES[socket_type])
    ingest = start_ingest(sock, db, log=log)
    try:
        producer.accept(before_hello=b"not a HELLO")
        # Burst one: each kind of malformed frame in place of a record,
        # between valid ones; then garbage; then a frame cut short.
        seq, malformed, problems = 1, [], Counter({"bad magic": 1})
        for offset, value, problem in BROKEN:
            producer.send(log_bytes(seq) + broken_log(seq + 1, offset, value) + log_bytes(seq + 2))
            malformed.append(seq + 1)
            problems[problem] += 1
            seq += 3
        producer.send(log_bytes(seq, TEXT) + b"\x00not a frame, KXL \xff" + log_bytes(seq + 1))
        problems["bad magic"] += 1
        cut = log_bytes(seq + 2, b"x" * 40)[:100]
        if socket_type == "seqpacket":  # cut by the end of its datagram
            producer.send(cut, log_bytes(seq + 3))
        else:  # cut, and the next frame sent after it
            producer.send(cut + log_bytes(seq + 3))
        problems["truncated"] += 1
        malformed.append(seq + 2)
        last = seq + 3
        producer.wait_for_ack(last)
        (first_report,) = wait_for_reports(log, 1)
        # Burst two: a hundred runs of garbage between records.
        for seq in range(last + 1, last + 101):
            producer.send(log_bytes(seq) + b"garbage" * (1 + seq % 5))
        producer.send(log_bytes(last + 101))
        problems["bad magic"] += 100
        last += 101
        producer.wait_for_ack(last)
        second_report = wait_for_reports(log, 2)[1]
        assert ingest.poll() is None  # it never stopped
        status = read_status(database_url(str(db)))
        assert status is not None and status.alive
        (source,) = status.snapshot["sources"]
        assert source["connected"] and source["skipped"]["problems"] == dict(problems)
        shown = kextlog("status", "--db", str(db))
        assert shown.returncode == 0, shown.stderr
        assert f"skipped {source['skipped']['bytes']:,} bytes of malformed input" in shown.stdout
    finally:
        stop(ingest)
        producer.close()

    # One line a burst, naming each kind with its count; never a line a frame.
    for problem, count in (problems - Counter({"bad magic": 100})).items():
        assert f"{count:,} {problem}" in first_report
    assert "100 bad magic" in second_report
    assert len(report_lines(log)) == 2
    assert "records lost" not in log.read_text()  # malformed losses come with their burst
    # Every seq stored or lost exactly once; the malformed ones are loss rows.
    (instance,) = accounting(db).values()
    assert_each_seq_once(instance, last)
    assert [loss[0] for loss in instance["losses"]] == malformed
    assert {loss[-1] for loss in instance["losses"]} == {"malformed"}
    with sqlite3.connect(db) as connection:
        (message,) = connection.execute(
            "SELECT message FROM records WHERE message LIKE 'bad %'"
        ).fetchone()
        assert message == "bad \\xff and nul \\x00 end"  # visible, not cut
    assert_store_clean(db)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("socket_type", SOCKET_TYPES)
def test_endless_garbage(tmp_path: Path, socket_type: str) -> None:
    sock, db, log = tmp_path / "hostile.sock", tmp_path / "k.db", tmp_path / "ingest.log"
    producer = Producer(sock, SOCKET_TYPES[socket_type])
    ingest = start_ingest(sock, db, log=log)
    try:
        producer.accept()
        sent, rss = 0, []
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < 7:
            chunk = os.urandom(65536)
            producer.send(chunk)
            sent += len(chunk)
            if (not rss and elapsed > 1.5) or (len(rss) == 1 and elapsed > 6.5):
                rss.append(rss_kib(ingest.pid))
            time.sleep(0.004)
        producer.send(*(log_bytes(seq) for seq in range(1, 101)))
        producer.wait_for_ack(100)
        # Until the last burst's report: every byte reported once.
        deadline = time.monotonic() + 60
        while reported_bytes(log) < sent:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        reporting = time.monotonic() - started
        assert ingest.poll() is None
        (source,) = read_status(database_url(str(db))).snapshot["sources"]
    finally:
        stop(ingest)
        producer.close()

    assert sent > 10 * 2**20
    assert rss[1] - rss[0] < 16 * 1024, rss  # flat: garbage is not kept
    # Reported while it lasts (every 5 s), not only at its end; and never
    # more than once a second (a burst ends after a quiet second), however
    # a loaded machine spaces the sends.
    assert 2 <= len(report_lines(log)) <= 1 + reporting
    assert reported_bytes(log) == source["skipped"]["bytes"] == sent
    (instance,) = accounting(db).values()
    assert instance["stored"] == list(range(1, 101)) and instance["losses"] == []
    assert_store_clean(db)
