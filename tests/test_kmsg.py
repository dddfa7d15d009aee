"""The kmsg source: records in /dev/kmsg's format from files and FIFOs, and
the machine's real /dev/kmsg when it can be read."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kextlog_store.errors import ProtocolError
from kextlog_store.kmsg import (
    NOT_A_RECORD,
    KmsgReader,
    KmsgRecord,
    parse_record,
    split_records,
    unescape,
)
from kextlog_store.records import STORED_BYTES, LossReason, message_bytes
from kextlog_store.wire import SEQ_MAX, LogRun, LossFrame, Skipped
from tests.conftest import unavailable, wait_until
from tests.processes import kextlog, start

BOOT_A = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
BOOT_B = "11111111-2222-3333-4444-555555555555"


def record(seq: int, text: str, prio: int = 6, usec: int = 0, fields: str = "") -> str:
    return f"{prio},{seq},{usec or seq * 1000},-;{text}\n{fields}"


def stored(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return connection.execute(
            "SELECT instance, seq, level, syslog_priority, facility, fields, message, process"
            " FROM log ORDER BY instance, seq"
        ).fetchall()


def losses(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return connection.execute(
            "SELECT instance, first_seq, last_seq, count, reason FROM lost ORDER BY first_seq"
        ).fetchall()


def ingest_once(path: Path, db: Path, boot: str = BOOT_A) -> subprocess.CompletedProcess[str]:
    result = kextlog(
        "ingest", "--source", "kmsg", "--kmsg-path", str(path), "--kmsg-boot-id", boot,
        "--once", "--db", str(db),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result


def test_every_field_form() -> None:
    assert parse_record(b"6,42,1234567,-;eth0: link up\n") == KmsgRecord(
        6, 0, 42, 1234567, 0, "eth0: link up", {}
    )
    # facility 3 (daemon), warning; a continuation flag; the caller field.
    assert parse_record(b"28,7,99,c,caller=T123;text\n") == KmsgRecord(4, 3, 7, 99, 123, "text", {})
    # Continuation lines, escapes (a newline, a backslash, a byte that is not UTF-8).
    parsed = parse_record(
        b"3,8,100,-;two\\x0alines \\x5c and \\xff\n SUBSYSTEM=usb\n DEVICE=c189:1\n"
    )
    assert parsed.priority == 3
    # Not UTF-8 text: kept as bytes that can be given back, a backslash doubled.
    assert (parsed.text, parsed.flags) == ("two\nlines \\\\ and \\xff", STORED_BYTES)
    assert message_bytes(parsed.text) == b"two\nlines \\ and \xff"
    assert parsed.fields == {"SUBSYSTEM": "usb", "DEVICE": "c189:1"}
    assert unescape(b"caf\\xc3\\xa9") == "café".encode()
    text = parse_record(b"6,9,1,-;caf\\xc3\\xa9 \\x5c\n")
    assert text == KmsgRecord(6, 0, 9, 1, 0, "café \\", {})


@pytest.mark.parametrize(
    "raw", [b"", b"no semicolon\n", b"6,1;too few\n", b"x,1,2,-;bad number\n", b"6,-1,2,-;neg\n"]
)
def test_malformed_records_are_refused(raw: bytes) -> None:
    with pytest.raises(ProtocolError, match="not a kmsg record"):
        parse_record(raw)


def test_a_stream_splits_into_whole_records_only() -> None:
    data = record(1, "a", fields=" K=v\n").encode() + record(2, "b").encode()
    for cut in range(len(data) + 1):
        first, rest = split_records(data[:cut])
        second, rest = split_records(rest + data[cut:])
        # The last record stays until another begins: its fields may follow.
        assert [r.split(b",")[1] for r in first + second] == [b"1"]
        assert rest == record(2, "b").encode()


def test_a_capture_stored_with_levels_priorities_and_fields(tmp_path: Path) -> None:
    capture, db = tmp_path / "kmsg", tmp_path / "k.db"
    capture.write_text(
        record(0, "Linux version 6.1", prio=5)
        + record(1, "oops", prio=2)
        + record(2, "disk warm", prio=4 + 8 * 3)  # facility daemon
        + record(3, "usb attached", fields=" SUBSYSTEM=usb\n DEVICE=c189:1\n")
        + record(4, "debugging", prio=7)
    )
    ingest_once(capture, db)
    instance = BOOT_A.replace("-", "")
    assert stored(db) == [
        (instance, 0, "info", 5, 0, None, "Linux version 6.1", "kernel"),
        (instance, 1, "error", 2, 0, None, "oops", "kernel"),
        (instance, 2, "warning", 4, 3, None, "disk warm", "kernel"),
        (instance, 3, "info", 6, 0, json.dumps({"SUBSYSTEM": "usb", "DEVICE": "c189:1"}),
         "usb attached", "kernel"),
        (instance, 4, "debug", 7, 0, None, "debugging", "kernel"),
    ]  # fmt: skip
    assert losses(db) == []
    # `kextlog query -o json` shows them as journalctl's JSON does.
    shown = kextlog("query", "--db", str(db), "-o", "json", "--source", "kmsg")
    assert shown.returncode == 0, shown.stderr
    assert [
        (item["seq"], item["level"], item["priority"], item["facility"], item["fields"])
        for item in map(json.loads, shown.stdout.splitlines())
    ] == [
        (0, "info", 5, 0, {}),
        (1, "error", 2, 0, {}),
        (2, "warning", 4, 3, {}),
        (3, "info", 6, 0, {"SUBSYSTEM": "usb", "DEVICE": "c189:1"}),
        (4, "debug", 7, 0, {}),
    ]
    with sqlite3.connect(db) as connection:
        # The raw monotonic time is kept; wall time is the boot's time + it.
        times = connection.execute("SELECT mono_ns, time_ns FROM records ORDER BY seq").fetchall()
        assert [mono for mono, _ in times] == [0, 1_000_000, 2_000_000, 3_000_000, 4_000_000]
        booted = time.clock_gettime_ns(time.CLOCK_REALTIME) - time.clock_gettime_ns(
            time.CLOCK_MONOTONIC
        )
        assert {wall - mono for mono, wall in times} == {times[0][1]}
        assert abs(times[0][1] - booted) < 5 * 10**9
        assert connection.execute("SELECT high_water FROM instances").fetchone() == (4,)


def test_echo_prints_kernel_records_as_they_are_stored(tmp_path: Path) -> None:
    """--echo with the kernel's own log: its rows carry the kmsg columns
    too, and each is printed as query's short line."""
    capture, db = tmp_path / "kmsg", tmp_path / "k.db"
    capture.write_text(record(0, "eth0: link up", fields=" SUBSYSTEM=net\n") + record(1, "oops", 2))
    result = kextlog(
        "ingest", "--source", "kmsg", "--kmsg-path", str(capture), "--kmsg-boot-id", BOOT_A,
        "--once", "--echo", "--db", str(db),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [line.split(" ", 3)[3] for line in result.stdout.splitlines()] == [
        "INFO    kernel[0:0]: eth0: link up",
        "ERROR   kernel[0:0]: oops",
    ]


def test_seq_jumps_are_losses_and_a_second_run_adds_nothing(tmp_path: Path) -> None:
    capture, db = tmp_path / "kmsg", tmp_path / "k.db"
    capture.write_text(record(5, "first held") + record(6, "b") + record(10, "after a jump"))
    ingest_once(capture, db)
    instance = BOOT_A.replace("-", "")
    assert [row[1] for row in stored(db)] == [5, 6, 10]
    # Seqs 0..4 were gone before ingest started; 7..9 were overwritten while it read.
    assert losses(db) == [
        (instance, 0, 4, 5, "overwritten"),
        (instance, 7, 9, 3, "overwritten"),
    ]
    ingest_once(capture, db)
    assert [row[1] for row in stored(db)] == [5, 6, 10]  # nothing twice
    # The kernel logged more: the next run takes only what is new.
    with capture.open("a") as file:
        file.write(record(11, "new"))
    ingest_once(capture, db)
    assert [row[1] for row in stored(db)] == [5, 6, 10, 11]
    assert len(losses(db)) == 2


def test_lines_that_are_not_records_are_skipped_counted_and_lost(tmp_path: Path) -> None:
    capture, db = tmp_path / "kmsg", tmp_path / "k.db"
    capture.write_bytes(
        record(0, "first").encode()
        + b"6,1,nonsense;this seq is unreadable\n"
        + b"\x00\xff garbage\n"
        + record(2, "after").encode()
    )
    result = ingest_once(capture, db)
    instance = BOOT_A.replace("-", "")
    assert [row[1] for row in stored(db)] == [0, 2]
    assert losses(db) == [(instance, 1, 1, 1, "malformed")]
    # One line for the burst, none for the loss it caused.
    (line,) = [line for line in result.stderr.splitlines() if "malformed input" in line]
    assert line.endswith("(2 not a kmsg record)")
    assert "records lost" not in result.stderr


def test_a_reboot_is_a_new_instance(tmp_path: Path) -> None:
    before, after, db = tmp_path / "before", tmp_path / "after", tmp_path / "k.db"
    before.write_text(record(0, "boot one") + record(1, "bye"))
    after.write_text(record(0, "boot two") + record(1, "hello again"))
    ingest_once(before, db, BOOT_A)
    ingest_once(after, db, BOOT_B)
    rows = stored(db)
    assert {row[0] for row in rows} == {BOOT_A.replace("-", ""), BOOT_B.replace("-", "")}
    assert [row[6] for row in rows if row[0] == BOOT_B.replace("-", "")] == [
        "boot two",
        "hello again",
    ]
    assert losses(db) == []  # seq 0 again is a new boot, not a loss


def test_follows_a_fifo_until_sigterm(tmp_path: Path) -> None:
    fifo, db, log = tmp_path / "kmsg", tmp_path / "k.db", tmp_path / "log"
    os.mkfifo(fifo)
    ingest = start(
        "ingest", "--source", "kmsg", "--kmsg-path", str(fifo), "--kmsg-boot-id", BOOT_A,
        "--db", str(db), log=log,
    )  # fmt: skip
    with fifo.open("w") as writer:  # blocks until ingest opens it
        writer.write(record(0, "live one", fields=" SUBSYSTEM=net\n"))
        writer.flush()
        writer.write(record(1, "live two"))
    # The writer closed: the last record is whole.  Ingest keeps following.
    wait_until(lambda: high_water(db) >= 1, "ingest to store both records")
    follow = kextlog("query", "--db", str(db), "-o", "cat", "-n", "5")
    assert follow.stdout.splitlines() == ["live one", "live two"]
    ingest.send_signal(signal.SIGTERM)
    assert ingest.wait(timeout=30) == 0
    assert stored(db)[0][5] == json.dumps({"SUBSYSTEM": "net"})


def test_without_permission_says_why(tmp_path: Path) -> None:
    """As a user without CAP_SYSLOG (dmesg_restrict): privileges dropped in a
    subprocess, after its imports (the interpreter lives in root's home)."""
    program = (
        "import os\n"
        "from kextlog_store.kmsg import KmsgSource\n"
        "from kextlog_store.errors import SourceError\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "try:\n"
        "    KmsgSource().connect()\n"
        "except SourceError as error:\n"
        "    print(error)\n"
    )
    if os.geteuid() != 0:
        unavailable("needs root to drop privileges")
    if Path("/proc/sys/kernel/dmesg_restrict").read_text().strip() != "1":
        unavailable("kernel.dmesg_restrict is 0: everyone may read /dev/kmsg")
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == (
        "kmsg: cannot read /dev/kmsg: permission denied (kernel.dmesg_restrict is set: "
        "run ingest as root or with CAP_SYSLOG)"
    )


# -- the machine's own kernel log, with util-linux's dmesg as the oracle --

DEVICE = "/dev/kmsg"
# util-linux's names (dmesg --decode), in the order of their syslog numbers.
FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "res0", "res1", "res2", "res3", *(f"local{n}" for n in range(8)),
)  # fmt: skip
PRIORITIES = ("emerg", "alert", "crit", "err", "warn", "notice", "info", "debug")
WRITES_PER_OPEN = 10  # the kernel lets one open of /dev/kmsg write 10 records at a burst
FLOOD_BYTES = 64 << 20  # written at most to make the kernel's ring go round


@pytest.fixture
def kernel_log() -> Iterator[None]:
    """The kernel's log to this test alone among the test runs on this
    machine (several checkouts may run their suites at once): one flooding
    it would make another's exact counts wrong."""
    lock = os.open(
        Path(tempfile.gettempdir()) / "kextlog-tests-kernel-log.lock",
        os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW,
        0o600,
    )
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
    finally:
        os.close(lock)


def readable_kernel_log() -> None:
    if not os.access(DEVICE, os.R_OK):
        unavailable(f"{DEVICE} is not readable")
    if shutil.which("dmesg") is None:
        unavailable("dmesg (util-linux) is not installed: tests/install-packages.sh installs it")


def writable_kernel_log() -> None:
    readable_kernel_log()
    if not os.access(DEVICE, os.W_OK):
        unavailable(f"writing to {DEVICE} needs root")


Shown = tuple[int | None, int | None, int, str]


def dmesg() -> list[Shown]:
    """What util-linux's dmesg reads from the kernel now, oldest first:
    (facility, priority, microseconds since boot, text) per record; the
    facility and priority are None where dmesg cannot name them (2.38:
    facilities above 11, local0..local7)."""
    result = subprocess.run(
        ["dmesg", "--json", "--decode"], capture_output=True, text=True, timeout=60, check=True
    )
    # Times as text: exact microseconds, not a float.
    items = json.loads(result.stdout or "{}", parse_float=str).get("dmesg", [])
    return [
        (FACILITIES.index(item["fac"]) if "fac" in item else None,
         PRIORITIES.index(item["pri"]) if "pri" in item else None,
         int(item["time"].replace(".", "")), item["msg"])
        for item in items
    ]  # fmt: skip


def stored_records(db: Path) -> list[Shown]:
    """The stored records in seq order, as dmesg() shows records."""
    with sqlite3.connect(db) as connection:
        return connection.execute(
            "SELECT facility, syslog_priority, mono_ns / 1000, message FROM records ORDER BY seq"
        ).fetchall()


def as_shown(stored: list[Shown], shown: list[Shown]) -> list[Shown]:
    """stored, without the fields dmesg could not name in shown."""
    return [
        (mine[0] if theirs[0] is not None else None, mine[1] if theirs[1] is not None else None,
         *mine[2:])
        for mine, theirs in zip(stored, shown, strict=True)
    ]  # fmt: skip


def held() -> list[tuple[int, bytes]]:
    """The seq and line of every record the kernel holds now, oldest first,
    read from the device by the test itself."""
    lines = []
    fd = os.open(DEVICE, os.O_RDONLY | os.O_NONBLOCK)
    try:
        while True:
            try:
                line = os.read(fd, 16384)
            except BlockingIOError:
                return lines
            except BrokenPipeError:  # overwritten as we read: on from the oldest
                continue
            lines.append((int(line.split(b",", 2)[1]), line))
    finally:
        os.close(fd)


def log_to_kernel(lines: list[str]) -> list[int]:
    """Writes lines to the kernel's log (each may start with <N>, its syslog
    priority value); returns their seqs."""
    for first in range(0, len(lines), WRITES_PER_OPEN):
        fd = os.open(DEVICE, os.O_WRONLY)
        try:
            for line in lines[first : first + WRITES_PER_OPEN]:
                # The newline ends the record: without it the kernel keeps
                # the record open for more text, and no reader sees it yet.
                os.write(fd, line.encode() + b"\n")
        finally:
            os.close(fd)
    # As the device shows them: without the priority, escaped.
    shown = [b";" + kernel_escape(re.sub(r"^<\d+>", "", line).encode()) + b"\n" for line in lines]
    seqs = {text: seq for seq, line in held() for text in shown if line.endswith(text)}
    return [seqs[text] for text in shown]


def go_round(tag: str) -> int:
    """Writes records tagged tag until the kernel's ring no longer holds the
    first of them (bounded: FLOOD_BYTES); returns that first one's seq."""
    pad = "x" * 900
    (first,) = log_to_kernel([f"<7>{tag} flood 0 {pad}"])
    written = 1
    while held()[0][0] <= first:
        assert written * len(pad) < FLOOD_BYTES, f"the kernel's ring holds more than {FLOOD_BYTES}"
        batch = range(written, written + 50)
        log_to_kernel([f"<7>{tag} flood {n} {pad}" for n in batch])
        written += len(batch)
    return first


def high_water(db: Path) -> int:
    """The kernel log's high-water mark in db; -1 before ingest made it."""
    try:
        connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            (value,) = connection.execute("SELECT max(high_water) FROM instances").fetchone()
        finally:
            connection.close()
    except sqlite3.OperationalError:  # no file or no schema yet
        return -1
    return -1 if value is None else value


def kmsg_losses(db: Path) -> list[tuple[int, int, int, str]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(
            "SELECT first_seq, last_seq, count, reason FROM losses ORDER BY first_seq"
        ).fetchall()


def stored_seqs(db: Path) -> list[int]:
    with sqlite3.connect(db) as connection:
        return [seq for (seq,) in connection.execute("SELECT seq FROM records ORDER BY seq")]


def test_the_real_kernel_log_as_dmesg_reads_it(tmp_path: Path, kernel_log: None) -> None:
    """Every record dmesg reads, stored with the same facility, priority,
    time and text, in the same order."""
    readable_kernel_log()
    if os.access(DEVICE, os.W_OK):  # records of other facilities, priorities and texts too
        tag = f"kextlog-test-{os.getpid()}-{time.time_ns()}"
        log_to_kernel([
            f"<30>{tag} daemon info", f"<11>{tag} user err", f"<191>{tag} local7 debug",
            f"<13>{tag} tab\there, café and a backslash \\",
        ])  # fmt: skip
    db = tmp_path / "k.db"
    before = dmesg()
    result = kextlog("ingest", "--source", "kmsg", "--once", "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert before, "the kernel holds no records"
    first = stored_records(db)[: len(before)]  # more may have been logged since
    assert as_shown(first, before) == before
    second = kextlog("ingest", "--source", "kmsg", "--once", "--db", str(db))
    assert second.returncode == 0
    seqs = stored_seqs(db)
    assert len(seqs) == len(set(seqs))  # nothing twice


def oldest() -> int:
    return held()[0][0]


def stopped(pid: int) -> bool:
    """Whether every thread of process pid is stopped (SIGSTOP)."""
    states = [
        stat.read_text().rpartition(")")[2].split()[0]
        for stat in Path(f"/proc/{pid}/task").glob("*/stat")
    ]
    return bool(states) and all(state == "T" for state in states)


def test_records_the_kernel_overwrote_are_overwritten_losses(
    tmp_path: Path, kernel_log: None
) -> None:
    """The kernel's ring goes round while ingest is stopped: once while it
    follows (SIGSTOP: its next read fails with EPIPE), once while it is not
    running; each time the seqs from the first it had not read to the one
    before the oldest the kernel held when it read again are one
    "overwritten" loss, and the rest is stored as dmesg reads it.  (The
    oldest is measured before and after that read: anything else logging
    meanwhile moves it; on a quiet machine the two are the same.)"""
    writable_kernel_log()
    db, log = tmp_path / "k.db", tmp_path / "ingest.log"
    tag = f"kextlog-overwrite-test-{os.getpid()}-{time.time_ns()}"
    oldest_before: list[int] = []  # the kernel's oldest seq before and after each read
    oldest_after: list[int] = []
    oldest_before.append(oldest())
    ingest = start("ingest", "--source", "kmsg", "--db", str(db), log=log)
    try:
        (started,) = log_to_kernel([f"<7>{tag} start"])
        wait_until(lambda: high_water(db) >= started, "ingest to store the start record")
        oldest_after.append(oldest())
        ingest.send_signal(signal.SIGSTOP)
        try:
            # Every thread stopped before the first record of the flood: a
            # thread running when the signal came may read one more first.
            wait_until(lambda: stopped(ingest.pid), "ingest to stop")
            first_overwritten = go_round(tag)
            oldest_before.append(oldest())
            newest = held()[-1][0]
        finally:
            ingest.send_signal(signal.SIGCONT)
        wait_until(lambda: high_water(db) >= newest, "ingest to read on after EPIPE")
        oldest_after.append(oldest())
    finally:
        ingest.send_signal(signal.SIGTERM)
        assert ingest.wait(timeout=120) == 0, log.read_text()
    last_stored = high_water(db)
    go_round(tag)  # while no ingest runs
    oldest_before.append(oldest())
    assert kextlog("ingest", "--source", "kmsg", "--once", "--db", str(db)).returncode == 0
    oldest_after.append(oldest())
    losses = kmsg_losses(db)
    assert len(losses) == 3, losses
    for (first, last, count, reason), low, high in zip(
        losses, oldest_before, oldest_after, strict=True
    ):
        assert low <= last + 1 <= high, (losses, oldest_before, oldest_after)
        assert (count, reason) == (last - first + 1, "overwritten")
    # Where each began: at the start of the boot's seqs; at the first seq
    # ingest had not read when it stopped (after the start record, at most
    # the first one written while it was stopped); after the last stored.
    assert [first for first, _, _, _ in losses][::2] == [0, last_stored + 1]
    assert started < losses[1][0] <= first_overwritten
    # Each seq once, stored or lost; what the kernel still holds is stored
    # as dmesg reads it.
    lost = [seq for first, last, _, _ in losses for seq in range(first, last + 1)]
    assert sorted(stored_seqs(db) + lost) == list(range(high_water(db) + 1))
    stored = stored_records(db)
    now = [shown for shown in dmesg() if shown[2] <= stored[-1][2]]  # not what came since
    assert as_shown(stored[-len(now) :], now) == now


# -- properties --


def kernel_escape(text: bytes) -> bytes:
    """As the kernel writes text to /dev/kmsg: control bytes, bytes from 127
    and the backslash as \\xNN."""
    return b"".join(
        b"\\x%02x" % byte if byte < 32 or byte >= 127 or byte == 0x5C else bytes([byte])
        for byte in text
    )


records = st.builds(
    lambda prio, facility, seq, usec, tid, text: (prio, facility, seq, usec, tid, text),
    st.integers(0, 7),
    st.integers(0, 255),
    st.integers(0, SEQ_MAX),
    st.integers(0, 2**62 // 1000),
    st.integers(0, 2**63 - 1),
    st.binary(max_size=200),
)


def line(prio: int, facility: int, seq: int, usec: int, tid: int, text: bytes) -> bytes:
    value = facility * 8 + prio
    return b"%d,%d,%d,-,caller=T%d;%s\n" % (value, seq, usec, tid, kernel_escape(text))


def is_text(raw: bytes) -> bool:
    """UTF-8 without NUL: stored as it is."""
    try:
        return "\0" not in raw.decode("utf-8")
    except UnicodeDecodeError:
        return False


@given(records)
def test_any_record_round_trips(fields: tuple) -> None:
    """Its bytes come back exactly: as the text when they are UTF-8 text,
    else from the escaped text its flag marks."""
    text = fields[-1]
    parsed = parse_record(line(*fields))
    assert (parsed.priority, parsed.facility, parsed.seq, parsed.usec, parsed.tid) == fields[:5]
    assert parsed.fields == {}
    if is_text(text):
        assert (parsed.text, parsed.flags) == (text.decode(), 0)
    else:
        assert (message_bytes(parsed.text), parsed.flags) == (text, STORED_BYTES)


def test_a_seq_past_the_wire_bound_is_not_a_record() -> None:
    # Its key would be another instance's record (kextlog_wire.h's field bounds).
    assert parse_record(b"6,%d,1,-;at the bound\n" % SEQ_MAX).seq == SEQ_MAX
    with pytest.raises(ProtocolError, match="not a kmsg record"):
        parse_record(b"6,%d,1,-;past it\n" % (SEQ_MAX + 1))


@given(st.binary(max_size=300))
def test_any_bytes_are_a_record_in_range_or_refused(raw: bytes) -> None:
    try:
        parsed = parse_record(raw)
    except ProtocolError as error:
        assert str(error).startswith("not a kmsg record")
    else:
        assert 0 <= parsed.seq <= SEQ_MAX and 0 <= parsed.usec <= 2**62 // 1000
        assert "\0" not in parsed.text


@given(st.lists(st.tuples(records, st.booleans()), max_size=12), st.binary(max_size=40))
def test_lines_that_are_not_records_are_skipped_and_their_seqs_lost(
    sent: list[tuple[tuple, bool]], junk: bytes
) -> None:
    """Records with consecutive seqs, some of them replaced by garbage: the
    rest come out in order, each garbage line is Skipped, and the seqs it
    replaced are a loss with reason malformed once a later record shows them."""
    garbage = b"<garbage " + junk.replace(b"\n", b" ").replace(b";", b" ") + b">\n"
    stream, kept_seqs, broken_seqs = b"", [], []
    for seq, (fields, broken) in enumerate(sent):
        stream += garbage if broken else line(*fields[:2], seq, *fields[3:])
        (broken_seqs if broken else kept_seqs).append(seq)
    reader = KmsgReader(boot_time_ns=0)
    reader.next_seq = 0
    whole, rest = split_records(stream)
    frames = reader.feed([*whole, rest] if rest else whole)
    rows = [row for frame in frames if isinstance(frame, LogRun) for row in frame.rows]
    assert [row[0] for row in rows] == kept_seqs
    assert [f for f in frames if isinstance(f, Skipped)] == [
        Skipped(NOT_A_RECORD, len(garbage))
    ] * len(broken_seqs)
    lost = [
        seq
        for f in frames
        if isinstance(f, LossFrame)
        for seq in range(f.first_seq, f.last_seq + 1)
    ]
    assert lost == [seq for seq in broken_seqs if kept_seqs and seq < kept_seqs[-1]]
    assert {f.reason for f in frames if isinstance(f, LossFrame)} <= {LossReason.MALFORMED}
