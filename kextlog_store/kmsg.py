"""The kmsg source: the Linux kernel's own log, read from /dev/kmsg.

Each record (Documentation/ABI/testing/dev-kmsg) is a line

    prio,seq,usec,flags[,key=value...];text

followed by continuation lines " KEY=value" (SUBSYSTEM=, DEVICE=...), with
unprintable bytes escaped as \\xNN (a NUL stays escaped when stored).  The
kernel's seq is the record's seq (it starts at 0), the boot is the instance,
and a jump in seqs (the kernel overwrote records before they were read:
EPIPE) is a loss row with its exact count, as the delivery contract wants.
Records become the same LogRun rows as the kext's LOG frames, with the syslog
priority, facility and fields added.  A line that is not such a record is
skipped and counted, as a malformed frame is.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import re
import select
import stat
import time
import uuid
from dataclasses import dataclass

from .errors import ProtocolError, SourceDone, SourceError
from .levels import SYSLOG_LEVELS
from .records import LossReason, message_text
from .wire import SEQ_MAX, Frame, Hello, LogRun, LossFrame, Skipped

DEVICE = "/dev/kmsg"
BOOT_ID = "/proc/sys/kernel/random/boot_id"
READ_BYTES = 16384  # more than a record can be (CONSOLE_EXT_LOG_MAX is 8192)
BATCH_RECORDS = 4096  # records handed to the writer at once
NOT_A_RECORD = "not a kmsg record"  # why a line was skipped (wire.Skipped)
# Bounds of what a record may say: the kernel's record keeps the facility in
# 8 bits; thread ids and times go to signed 64-bit store columns (2**62 ns
# since boot is 146 years); seqs are at most the wire's SEQ_MAX, as a kext's.
PRIORITY_MAX, VALUE_MAX, USEC_MAX = 255 * 8 + 7, 2**63 - 1, 2**62 // 1000

_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})")


def unescape(text: bytes) -> bytes:
    """The bytes the kernel wrote as \\xHH (those that are not printable
    ASCII, and the backslash)."""
    return _ESCAPE.sub(lambda match: bytes([int(match.group(1), 16)]), text)


def _field(text: bytes) -> str:
    # NUL stays escaped: it ends text in C and in SQL tools.
    return unescape(text).decode("utf-8", "backslashreplace").replace("\0", "\\x00")


@dataclass(frozen=True)
class KmsgRecord:
    priority: int  # syslog severity, 0 (emerg) .. 7 (debug)
    facility: int
    seq: int
    usec: int  # since boot, by the kernel's clock
    tid: int  # the caller=T<tid> field when the kernel has CONFIG_PRINTK_CALLER
    text: str  # as stored: records.message_text
    fields: dict[str, str]
    flags: int = 0  # records.STORED_BYTES when the text is not UTF-8 text


def parse_record(raw: bytes) -> KmsgRecord:
    """One record, its continuation lines included."""
    first, *continuation = raw.rstrip(b"\n").split(b"\n")
    prefix, separator, text = first.partition(b";")
    parts = prefix.split(b",")
    if not separator or len(parts) < 4 or not all(_number(part) for part in parts[:3]):
        raise _not_a_record(first)
    value, seq, usec = int(parts[0]), int(parts[1]), int(parts[2])
    if value > PRIORITY_MAX or seq > SEQ_MAX or usec > USEC_MAX:
        raise _not_a_record(first)
    tid = 0
    for extra in parts[4:]:
        key, _, caller = extra.partition(b"=")
        if key == b"caller" and caller[:1] == b"T" and _number(caller[1:]):
            tid = int(caller[1:]) if int(caller[1:]) <= VALUE_MAX else 0  # optional: unusable
    fields = {}
    for line in continuation:
        key, equals, field = line.strip().partition(b"=")
        if line.startswith(b" ") and equals:
            fields[_field(key)] = _field(field)
    message, flags = message_text(unescape(text))
    return KmsgRecord(value & 7, value >> 3, seq, usec, tid, message, fields, flags)


def _not_a_record(line: bytes) -> ProtocolError:
    return ProtocolError(f"{NOT_A_RECORD}: {line[:80]!r}")


def _number(text: bytes) -> bool:
    """Decimal digits only (int() also takes signs, spaces and underscores),
    few enough to convert at once."""
    return text.isdigit() and len(text) <= 20


def split_records(data: bytes) -> tuple[list[bytes], bytes]:
    """Whole records of a byte stream (a file or pipe of kmsg records) and the
    rest: a record is whole once the next one begins (its continuation lines
    may still be on their way)."""
    starts = [0] + [match.start() + 1 for match in re.finditer(rb"\n(?=[^ ])", data)]
    records = [data[a:b] for a, b in itertools.pairwise(starts) if a < b]
    return records, data[starts[-1] :]


class KmsgReader:
    """Records to frames.  Knows where the stored records end (RESUME), so
    it can skip what is stored and report what the kernel no longer holds."""

    def __init__(self, boot_time_ns: int) -> None:
        self.boot_time_ns = boot_time_ns  # wall clock at usec 0
        self.next_seq: int | None = None  # set by the resume point
        self._skipped = False  # a line was skipped since the last record

    def feed(self, records: list[bytes]) -> list[Frame]:
        frames: list[Frame] = []
        run: LogRun | None = None
        for raw in records:
            try:
                record = parse_record(raw)
            except ProtocolError:
                frames.append(Skipped(NOT_A_RECORD, len(raw)))
                self._skipped, run = True, None
                continue
            skipped, self._skipped = self._skipped, False
            if self.next_seq is not None and record.seq < self.next_seq:
                continue  # stored already
            if self.next_seq is not None and record.seq > self.next_seq:
                # The kernel overwrote them before they were read, or they
                # were in the lines skipped.
                reason = LossReason.MALFORMED if skipped else LossReason.OVERWRITTEN
                frames.append(LossFrame(self.next_seq, record.seq - 1, None, None, reason))
                run = None
            if run is None:
                run = LogRun()
                frames.append(run)
            time_ns = self.boot_time_ns + record.usec * 1000
            run.rows.append(
                (
                    record.seq, time_ns, record.usec * 1000, int(SYSLOG_LEVELS[record.priority]),
                    record.flags,
                    0, record.tid, "kernel", record.text,
                    record.priority, record.facility,
                    json.dumps(record.fields) if record.fields else None,
                )
            )  # fmt: skip
            self.next_seq = record.seq + 1
        return frames


def boot_time_ns() -> int:
    """The wall clock at the moment the kernel's timestamps started."""
    return time.clock_gettime_ns(time.CLOCK_REALTIME) - time.clock_gettime_ns(time.CLOCK_MONOTONIC)


@dataclass(frozen=True)
class KmsgSource:
    """/dev/kmsg, or a file or FIFO of records in its format (a capture)."""

    spec: str = "kmsg"
    path: str = DEVICE
    boot_id: str | None = None  # the boot the records belong to; None: this one's
    once: bool = False  # hand over what is there now, then finish

    def connect(self) -> KmsgConnection:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as error:
            raise SourceError(f"{self.spec}: {_explain(self.path, error)}") from None
        boot_id = self.boot_id or _read_boot_id()
        return KmsgConnection(self, fd, boot_id)


def _read_boot_id() -> str:
    try:
        with open(BOOT_ID) as file:
            return uuid.UUID(file.read().strip()).hex
    except (OSError, ValueError) as error:
        raise SourceError(f"kmsg: cannot read the boot id from {BOOT_ID}: {error}") from None


def _explain(path: str, error: OSError) -> str:
    if error.errno in (errno.EPERM, errno.EACCES):
        return (
            f"cannot read {path}: permission denied (kernel.dmesg_restrict is set: "
            "run ingest as root or with CAP_SYSLOG)"
        )
    return f"cannot read {path}: {error.strerror}"


class KmsgConnection:
    """The Connection of the kmsg source (see sources.Connection)."""

    def __init__(self, source: KmsgSource, fd: int, boot_id: str) -> None:
        self.source = source
        self._fd = fd
        self._device = stat.S_ISCHR(os.fstat(fd).st_mode)  # one record per read
        self._rest = b""
        self.reader = KmsgReader(boot_time_ns())
        release = os.uname().release
        self._hello = Hello(
            instance=boot_id,
            instance_raw=bytes.fromhex(boot_id),
            boot_id=boot_id,
            oldest_seq=0,
            next_seq=0,
            ring_records=0,
            ring_bytes=0,
            producer_version=release,
            name="linux",
            first_seq=0,
        )

    def read(self, timeout: float) -> list[Frame]:
        """The greeting: kmsg has no HELLO of its own."""
        return [self._hello]

    def resume(self, instance_raw: bytes, seq: int) -> None:
        self.reader.next_seq = seq

    def ack(self, seq: int) -> None:
        """The kernel keeps its ring whatever we store."""

    def decode(self, received: list[bytes] | None) -> list[Frame]:
        """The frames of what receive() returned (None: nothing is left over)."""
        return self.reader.feed(received or [])

    def receive(self, timeout: float) -> list[bytes]:
        """The records that arrived within timeout seconds (maybe none)."""
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if not ready:
            if self.source.once:  # the device has nothing left
                raise SourceDone(f"{self.source.spec}: all read")
            return []
        records: list[bytes] = []
        while len(records) < BATCH_RECORDS:
            try:
                data = os.read(self._fd, READ_BYTES)
            except BlockingIOError:
                break  # all read, for now
            except BrokenPipeError:
                continue  # EPIPE: records were overwritten; the next read has the oldest
            except OSError as error:
                message = _explain(self.source.path, error)
                raise SourceError(f"{self.source.spec}: {message}") from None
            if not data:  # the end of a file, or a pipe's writer went away
                records.extend(self._flush())
                if records:
                    break
                if self.source.once:
                    raise SourceDone(f"{self.source.spec}: all read")
                raise SourceError(f"{self.source.spec}: the end of {self.source.path}")
            if self._device:
                records.append(data)
            else:
                whole, self._rest = split_records(self._rest + data)
                records.extend(whole)
        return records

    def _flush(self) -> list[bytes]:
        rest, self._rest = self._rest, b""
        return [rest] if rest.strip() else []

    def close(self) -> None:
        os.close(self._fd)
