"""The record and the loss as the read path, the renderers and the
simulator's --record file see them, the cursor that names a record, and the
row a record travels in from the scanner to the store.  Cheap to import: no
SQLAlchemy, no cffi."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .errors import DatabaseError, UsageError
from .levels import Level

INT64_MAX = 2**63 - 1  # SQLite's integers, PostgreSQL's bigint: the store's columns and counts
PID_MAX = 2**31 - 1  # pid_t
NS_PER_SECOND = 1_000_000_000  # a record's times are nanoseconds

# A record's key is (instance, seq), packed into one 64-bit rowid: one B-tree
# to write per record instead of a rowid plus a unique index (see migration
# 0002).  The bounds are the wire header's (KEXTLOG_SEQ_BITS): the reader
# refuses a seq past SEQ_MASK, so one instance's records never take another's
# keys, and with at most INSTANCES_MAX instances no sum of counts or marks
# overflows.  Written as a number so that reading the store loads no cffi;
# ingest, the one writer, checks it against the compiled header at import.
SEQ_BITS = 44
SEQ_MASK = (1 << SEQ_BITS) - 1
INSTANCES_MAX = (1 << (63 - SEQ_BITS)) - 1


def record_id(instance_id: int, seq: int) -> int:
    """The records table's key of an instance's seq."""
    return instance_id << SEQ_BITS | seq


# A record as ingest carries it, from the scanner (wire, kmsg) through the
# accounting to the store's writer: a plain tuple, so that the hot path
# makes no object per record.  Its fields, in this order, are the records
# table's columns; a row of the kernel's own log (kmsg) has KMSG_FIELDS
# after them, a kext's row ends at MESSAGE.
ROW_FIELDS = ("seq", "time_ns", "mono_ns", "level", "flags", "pid", "tid", "process", "message")
KMSG_FIELDS = ("syslog_priority", "facility", "fields")
SEQ, TIME_NS, MONO_NS, LEVEL, FLAGS, PID, TID, PROCESS, MESSAGE = range(len(ROW_FIELDS))
PRIORITY, FACILITY, FIELDS = range(len(ROW_FIELDS), len(ROW_FIELDS) + len(KMSG_FIELDS))

# A record's flag, set by ingest (kextlog_wire.h's KEXTLOG_STORED_BYTES, above
# every flag a producer may send): its message held bytes that are not UTF-8
# text, or NUL.  Its stored text has them as \xHH escapes and each literal
# backslash doubled, so message_bytes() gives back the bytes exactly (a
# literal "\xff" in a text message is not taken for the byte 0xff).
STORED_BYTES = 0x4000
_NOT_TEXT = re.compile("[\\\\\x00\udc80-\udcff]")  # a backslash, NUL, an undecodable byte
_ESCAPE = re.compile(rb"\\(\\|x([0-9a-f]{2}))")


def message_text(raw: bytes | memoryview) -> tuple[str, int]:
    """The text to store of a message's bytes, and the flag it takes:
    (the text, 0) for UTF-8 text without NUL, else (escaped, STORED_BYTES)."""
    try:
        text = str(raw, "utf-8")
    except UnicodeDecodeError:
        return escaped(bytes(raw)), STORED_BYTES
    return (escaped(bytes(raw)), STORED_BYTES) if "\0" in text else (text, 0)


def escaped(raw: bytes) -> str:
    """raw as STORED_BYTES text: bytes that are not UTF-8 text, and NUL, as
    \\xHH; a backslash doubled."""
    return _NOT_TEXT.sub(_escape, raw.decode("utf-8", "surrogateescape"))


def _escape(match: re.Match[str]) -> str:
    code = ord(match[0])
    if code == 0x5C:
        return "\\\\"
    return f"\\x{code - 0xDC00 if code >= 0xDC80 else code:02x}"


def message_bytes(text: str) -> bytes:
    """The bytes of a STORED_BYTES message's text (escaped's inverse)."""
    return _ESCAPE.sub(
        lambda match: b"\\" if match[2] is None else bytes([int(match[2], 16)]), text.encode()
    )


_LEVELS = {level.value: level for level in Level}
# Each instance's id (HELLO's), source and host, by its row id: what a row
# of the read path's columns names by its record key.
Instances = Mapping[int, tuple[str, str, str]]


@dataclass(frozen=True, slots=True)
class Record:
    """One stored log record with the identity of the kext instance that sent it."""

    time_ns: int  # wall-clock time, nanoseconds since the epoch (UTC)
    level: Level
    pid: int
    tid: int
    process: str
    message: str
    seq: int  # dense per instance, from 1
    instance: str  # the instance id of HELLO, 32 hex digits
    source: str = ""  # where ingest read it, e.g. unix:/run/kextlog-sim.sock
    flags: int = 0  # the wire's record flags (truncated etc.)
    # The kernel's own log (kmsg) only: syslog priority (0 emerg .. 7 debug),
    # facility, and its KEY=value lines as a JSON object.
    priority: int | None = None
    facility: int | None = None
    fields: str | None = None
    host: str = ""  # the host its instance is stored under (ingest --host)

    @property
    def message_raw(self) -> bytes | None:
        """The message's bytes when they are not UTF-8 text (STORED_BYTES), else None."""
        return message_bytes(self.message) if self.flags & STORED_BYTES else None

    @property
    def shown(self) -> str:
        """The message for text outputs: bytes that are not UTF-8 text as
        undecodable characters, which render.text.escape shows as \\xHH."""
        if self.flags & STORED_BYTES:
            return message_bytes(self.message).decode("utf-8", "surrogateescape")
        return self.message

    @classmethod
    def of_columns(cls, row: Sequence[Any], instances: Instances) -> Record:
        """The Record of a row of the read path's columns (query.COLUMNS:
        Record's own, the record key in place of seq and the instance,
        whose id, source and host instances has by row id); DatabaseError
        for a level no Level has."""
        time_ns, level, pid, tid, process, message, key, *rest = row
        instance, source, host = instances[key >> SEQ_BITS]
        seq = key & SEQ_MASK
        try:
            known = _LEVELS[level]
        except KeyError:
            raise DatabaseError(f"record {instance}:{seq} has an unknown level {level!r}") from None
        return cls(time_ns, known, pid, tid, process, message, seq, instance, source, *rest, host)

    @classmethod
    def of_row(cls, row: tuple, instance: str, source: str = "") -> Record:
        """The record of a row as ingest carries it (ROW_FIELDS, and
        KMSG_FIELDS for the kernel's own log)."""
        priority, facility, fields = row[PRIORITY:] or (None, None, None)
        return cls(
            row[TIME_NS], Level(row[LEVEL]), row[PID], row[TID], row[PROCESS], row[MESSAGE],
            row[SEQ], instance, source, row[FLAGS], priority, facility, fields,
        )  # fmt: skip


class LossReason(str, Enum):
    """Why seqs are missing, as the losses table stores it (and equal to
    that text): a producer's LOSS frame says ring-full or released; ingest
    finds a gap, malformed input, or the kernel's own log overwritten."""

    RING_FULL = "ring-full"  # the kext's ring was full: they went to the kernel's printf
    RELEASED = "released"  # acknowledged to an earlier client, then released
    GAP = "gap"  # seqs the producer skipped without a LOSS
    MALFORMED = "malformed"  # in frames ingest skipped as malformed
    OVERWRITTEN = "overwritten"  # the kernel's log went round before ingest read them

    def __str__(self) -> str:
        return self.value

    @classmethod
    def of(cls, text: str) -> LossReason | str:
        """The reason a stored text names; a text no reason has (a newer
        producer's reason-N) as it is."""
        try:
            return cls(text)
        except ValueError:
            return text


@dataclass(frozen=True, slots=True)
class Loss:
    """Seqs first_seq..last_seq of one instance that the store will never
    have (one row of the losses table), placed in the log at time_ns.

    time_ns is where the loss belongs among the records: the time of its
    first missing record (first_time_ns) when known, else the time of the
    instance's first stored record after last_seq (the loss comes just
    before it), else recorded_ns.  A loss comes before records of the same
    time.
    """

    time_ns: int  # where it is placed in logged order (see above)
    instance: str  # the instance id of HELLO, 32 hex digits
    first_seq: int
    last_seq: int
    count: int  # last_seq - first_seq + 1
    reason: LossReason | str  # a text no LossReason has: a reason this kextlog does not know
    first_time_ns: int | None  # wall clock of the first missing record, None if unknown
    last_time_ns: int | None  # wall clock of the last missing record, None if unknown
    recorded_ns: int  # when ingest stored the loss
    source: str = ""  # where ingest read the instance


class Records:
    """Records in logged order as the read path fetched them: rows of its
    columns and their instances (Record.of_columns), a Record made of a row
    only where one is needed, so that a renderer writes a whole batch with
    no Python object or call per record (render/entries.py).  Iterating
    gives the Records."""

    __slots__ = ("instances", "rows")

    def __init__(self, rows: Sequence[Sequence[Any]], instances: Instances) -> None:
        self.rows = rows
        self.instances = instances

    def __iter__(self) -> Iterator[Record]:
        return (Record.of_columns(row, self.instances) for row in self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"Records({len(self.rows)} rows)"


# What the read path finds, in logged order: records one by one or in
# batches, and losses where records are missing.
Entry = Record | Loss
Found = Entry | Records


def one_by_one(found: Iterable[Found]) -> Iterator[Entry]:
    """Entries with each batch of records (Records) as its records."""
    for entry in found:
        if isinstance(entry, Records):
            yield from entry
        else:
            yield entry


_CURSOR = re.compile(r"i=(?P<instance>[0-9a-f]{32}),s=(?P<seq>\d+),t=(?P<time>-?\d+)")


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a record stands in the log, as `--show-cursor` prints it and
    `--cursor` / `--after-cursor` take it back:

        i=0690a5df1c2e4b7a9d3f0a1b2c3d4e5f,s=5001,t=1795774956123456789

    The instance and seq name the record for good (the store's UNIQUE key);
    the time places it in logged order, so a cursor still works after its
    record was pruned.  Only characters a shell leaves alone.
    """

    instance: str  # 32 hex digits
    seq: int
    time_ns: int

    @classmethod
    def of(cls, record: Record) -> Cursor:
        return cls(record.instance, record.seq, record.time_ns)

    @classmethod
    def parse(cls, text: str) -> Cursor:
        match = _CURSOR.fullmatch(text.strip().lower())
        if match is None:
            raise UsageError(
                f"invalid cursor {text!r}: expected what --show-cursor prints, "
                "e.g. i=0690a5df1c2e4b7a9d3f0a1b2c3d4e5f,s=5001,t=1795774956123456789"
            )
        return cls(match["instance"], int(match["seq"]), int(match["time"]))

    def __str__(self) -> str:
        return f"i={self.instance},s={self.seq},t={self.time_ns}"
