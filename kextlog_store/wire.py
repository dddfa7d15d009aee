"""Frames in and out, through the cffi module compiled from kextlog_wire.h.

Every frame passes the C check every receiver applies (kextlog_wire_scan does
it for a whole read at once); LOG frames, the hot path, are then unpacked in
bulk from the scan's fixed-size entries with a struct layout taken from the
compiled header, other frames through the C structs.  Encoding calls the C
encoders the kext uses.  A FrameReader accepts bytes however the transport cut
them.  What is not a usable frame it skips and reports as Skipped, never as
an error (docs/protocol.md, "Malformed input").
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass, field
from typing import NamedTuple

from ._native import ffi, lib
from .records import ROW_FIELDS, SEQ, STORED_BYTES, LossReason, escaped

# The highest seq a record may have (kextlog_wire.h's field bounds): past it,
# its key (store.schema.record_id) would be another instance's.
SEQ_MAX = lib.KEXTLOG_SEQ_MAX
TIME_MAX = lib.KEXTLOG_TIME_MAX  # and the latest time, in ns
MESSAGE_OFFSET = ffi.offsetof("struct kextlog_log_frame", "message")
PROCESS_OFFSET = ffi.offsetof("struct kextlog_log_frame", "process")
SCAN_ENTRIES = 4096  # frames described per C call


def struct_of(ctype_name: str) -> struct.Struct:
    """Reads a C struct of fixed-width integers as the compiler laid it out."""
    ctype = ffi.typeof(ctype_name)
    codes = {"uint8_t": "B", "uint16_t": "H", "uint32_t": "I", "uint64_t": "Q"}
    layout, at = "<", 0
    for _, member in ctype.fields:
        layout += "x" * (member.offset - at) + codes[member.type.cname]
        at = member.offset + ffi.sizeof(member.type)
    return struct.Struct(layout + "x" * (ffi.sizeof(ctype) - at))


SCAN_ENTRY = struct_of("struct kextlog_scan_entry")
# The loop in FrameReader.feed unpacks entries in this order.
_SCAN_FIELDS = (
    "seq", "time_ns", "mono_ns", "tid", "offset", "pid", "type", "flags",
    "message_length", "process", "level", "process_length", "message_nul", "problem", "skipped",
)  # fmt: skip
if tuple(name for name, _ in ffi.typeof("struct kextlog_scan_entry").fields) != _SCAN_FIELDS:
    raise ImportError("struct kextlog_scan_entry changed: update kextlog_store.wire")

LOSS_REASONS = {
    lib.KEXTLOG_LOSS_RING_FULL: LossReason.RING_FULL,
    lib.KEXTLOG_LOSS_RELEASED: LossReason.RELEASED,
}

# Why the reader skipped bytes (kextlog_scan.h), as Skipped.problem says it.
PROBLEMS = {
    lib.KEXTLOG_WIRE_BAD_MAGIC: "bad magic",
    lib.KEXTLOG_WIRE_BAD_VERSION: "unsupported version",
    lib.KEXTLOG_WIRE_BAD_LENGTH: "bad length",
    lib.KEXTLOG_WIRE_BAD_FIELD: "invalid field",
    lib.KEXTLOG_WIRE_UNKNOWN: "unknown type",
    lib.KEXTLOG_SCAN_TRUNCATED: "truncated",
    lib.KEXTLOG_SCAN_OUT_OF_RANGE: "out of range",
}


def id_hex(raw: bytes) -> str:
    return raw.hex()


@dataclass(frozen=True, slots=True)
class Hello:
    instance: str  # 32 hex digits
    instance_raw: bytes
    boot_id: str
    oldest_seq: int
    next_seq: int
    ring_records: int
    ring_bytes: int
    producer_version: str
    name: str
    first_seq: int = 1  # a kext's seqs start at 1 (the kernel's own log: 0)


class LogFrame(NamedTuple):
    """A LOG frame's fields, named: a LogRun row opened up (LogRun.frames),
    for tests and tools; the hot path keeps plain tuples (records.ROW_FIELDS)."""

    seq: int
    time_ns: int
    mono_ns: int
    level: int
    flags: int
    pid: int
    tid: int
    process: str
    message: str


if LogFrame._fields != ROW_FIELDS:
    raise ImportError("records.ROW_FIELDS changed: update kextlog_store.wire.LogFrame")
if lib.KEXTLOG_STORED_BYTES != STORED_BYTES or STORED_BYTES <= lib.KEXTLOG_FLAGS_MAX:
    raise ImportError("KEXTLOG_STORED_BYTES changed in kextlog_wire.h: update records.STORED_BYTES")


@dataclass(frozen=True, slots=True)
class LossFrame:
    """A LOSS frame: seqs first_seq..last_seq the producer no longer has
    (also what kmsg makes of a jump in the kernel's seqs)."""

    first_seq: int
    last_seq: int
    first_time_ns: int | None
    last_time_ns: int | None
    reason: LossReason | str  # a reason this kextlog does not know: reason-N

    @property
    def count(self) -> int:
        return self.last_seq - self.first_seq + 1


@dataclass(frozen=True, slots=True)
class Status:
    """The producer's periodic report: what `kextlog status` shows of it."""

    next_seq: int
    lost: int
    time_ns: int
    ring_records: int
    ring_capacity: int
    ring_bytes_used: int
    ring_bytes: int


@dataclass(slots=True)
class LogRun:
    """Consecutive LOG frames of one read: each a plain tuple of
    records.ROW_FIELDS (the hot path makes no object per record beyond its
    tuple; read a field as row[records.SEQ] and the like)."""

    rows: list[tuple] = field(default_factory=list)
    contiguous: bool = True  # each seq is the one before it + 1

    @property
    def first_seq(self) -> int:
        return self.rows[0][SEQ]

    @property
    def last_seq(self) -> int:
        return self.rows[-1][SEQ]

    def frames(self) -> list[LogFrame]:
        return [LogFrame(*row[: len(ROW_FIELDS)]) for row in self.rows]


@dataclass(frozen=True, slots=True)
class Skipped:
    """Bytes the reader skipped: garbage, a malformed frame, or one it cannot
    use.  Whatever records they held are missing from the seqs that follow."""

    problem: str  # a value of PROBLEMS
    size: int  # bytes


Frame = Hello | LogRun | LossFrame | Status | Skipped


def _text(raw: bytes) -> str:
    # Kernel strings are not guaranteed UTF-8; keep undecodable bytes visible.
    return raw.decode("utf-8", "backslashreplace")


def _decode(kind: int, pointer) -> Frame:
    """A HELLO, LOSS or STATUS frame, checked already."""
    if kind == lib.KEXTLOG_FRAME_LOSS:
        loss = ffi.cast("struct kextlog_loss_frame *", pointer)
        return LossFrame(
            loss.first_seq,
            loss.last_seq,
            loss.first_time_ns or None,
            loss.last_time_ns or None,
            LOSS_REASONS.get(loss.reason, f"reason-{loss.reason}"),
        )
    if kind == lib.KEXTLOG_FRAME_STATUS:
        status = ffi.cast("struct kextlog_status_frame *", pointer)
        return Status(
            status.next_seq,
            status.lost,
            status.time_ns,
            status.ring_records,
            status.ring_capacity,
            status.ring_bytes_used,
            status.ring_bytes,
        )
    assert kind == lib.KEXTLOG_FRAME_HELLO, kind  # the scan describes no other type
    hello = ffi.cast("struct kextlog_hello_frame *", pointer)
    instance = bytes(ffi.buffer(hello.instance_id))
    version = hello.producer_version
    return Hello(
        instance=id_hex(instance),
        instance_raw=instance,
        boot_id=id_hex(bytes(ffi.buffer(hello.boot_id))),
        oldest_seq=hello.oldest_seq,
        next_seq=hello.next_seq,
        ring_records=hello.ring_records,
        ring_bytes=hello.ring_bytes,
        producer_version=f"{version >> 16}.{(version >> 8) & 0xFF}.{version & 0xFF}",
        name=_text(ffi.string(hello.name, lib.KEXTLOG_NAME_MAX)),
    )


class FrameReader:
    """Turns received bytes into frames: a stream's, cut anywhere (the rest
    of a frame waits here), or whole datagrams, one or several frames each."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self._entries = ffi.new("struct kextlog_scan_entry[]", SCAN_ENTRIES)
        self._offset = ffi.new("size_t *")
        self._table = ffi.new("struct kextlog_scan_names *")  # process names by number
        self._names: list[str] = []  # the same, decoded

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """A stream's next bytes."""
        buffer = self._pending
        buffer += data
        frames = self._scan(buffer, None)
        del buffer[: self._offset[0]]
        return frames

    def feed_datagrams(self, datagrams: list[bytes]) -> list[Frame]:
        """Whole datagrams: a frame never spans two, and one cut by its
        datagram's end is skipped as truncated."""
        ends = list(itertools.accumulate(map(len, datagrams)))
        return self._scan(b"".join(datagrams), ends) if ends else []

    def finish(self) -> list[Frame]:
        """The stream ended: what waits for more is read as one last datagram,
        in which a frame cut short is truncated (and frames after it whole)."""
        pending, self._pending = self._pending, bytearray()
        return self._scan(pending, [len(pending)]) if pending else []

    def _scan(self, buffer: bytes | bytearray, ends: list[int] | None) -> list[Frame]:
        frames: list[Frame] = []
        limits = ffi.NULL if ends is None else ffi.new("uint32_t[]", ends)
        self._offset[0] = 0
        base = ffi.from_buffer(buffer)
        try:
            while True:
                count = lib.kextlog_wire_scan(
                    base, len(buffer), limits, len(ends or ()), self._offset, self._table,
                    self._entries, SCAN_ENTRIES,
                )  # fmt: skip
                entries = ffi.buffer(self._entries, count * SCAN_ENTRY.size)
                self._describe(buffer, SCAN_ENTRY.iter_unpack(entries), base, frames)
                if count < SCAN_ENTRIES:
                    return frames
        finally:
            ffi.release(base)

    def _describe(self, buffer: bytes | bytearray, entries, base, frames: list) -> None:
        run = frames[-1] if frames and isinstance(frames[-1], LogRun) else None
        names = self._names
        view = memoryview(buffer)
        for (
            seq, time_ns, mono_ns, tid, at, pid, kind, flags, length, number, level, name_length,
            nul, problem, skipped,
        ) in entries:  # fmt: skip
            if kind != lib.KEXTLOG_FRAME_LOG:
                if kind == lib.KEXTLOG_SCAN_SKIPPED:
                    frames.append(Skipped(PROBLEMS[problem], skipped))
                else:
                    frames.append(_decode(kind, base + at))
                run = None
                continue
            if run is None:
                run = LogRun()
                frames.append(run)
            elif seq != run.rows[-1][SEQ] + 1:
                run.contiguous = False
            if number < len(names):
                process = names[number]
            else:
                name = at + PROCESS_OFFSET
                process = _text(bytes(view[name : name + name_length]))
                if number == len(names):  # numbered just now
                    names.append(process)
            raw = view[at + MESSAGE_OFFSET : at + MESSAGE_OFFSET + length]
            try:
                message = str(raw, "utf-8")
                not_text = nul  # NUL ends text in C and SQL tools
            except UnicodeDecodeError:
                not_text = True
            if not_text:  # kept as bytes that can be given back (records.STORED_BYTES)
                message, flags = escaped(bytes(raw)), flags | STORED_BYTES
            run.rows.append((seq, time_ns, mono_ns, level, flags, pid, tid, process, message))
        view.release()

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame waiting for the rest."""
        return len(self._pending)


def encode_ack(seq: int) -> bytes:
    frame = ffi.new("struct kextlog_ack_frame *")
    return bytes(ffi.buffer(frame, lib.kextlog_encode_ack(frame, seq)))


def encode_resume(instance_raw: bytes, seq: int) -> bytes:
    frame = ffi.new("struct kextlog_resume_frame *")
    return bytes(ffi.buffer(frame, lib.kextlog_encode_resume(frame, instance_raw, seq)))
