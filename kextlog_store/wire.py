"""Frames in and out, through the cffi module compiled from kextlog_wire.h.

Every frame passes the C check every receiver applies (kextlog_wire_scan does
it for a whole read at once); LOG frames, the hot path, are then unpacked in
bulk from the scan's fixed-size entries with a struct layout taken from the
compiled header, other frames through the C structs.  Encoding calls the C
encoders the kext uses.  A FrameReader accepts bytes however the transport cut
them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import NamedTuple

from ._native import ffi, lib
from .errors import ProtocolError
from .levels import Level
from .records import Record

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
    "message_length", "process", "level", "process_length",
)  # fmt: skip
if tuple(name for name, _ in ffi.typeof("struct kextlog_scan_entry").fields) != _SCAN_FIELDS:
    raise ImportError("struct kextlog_scan_entry changed: update kextlog_store.wire")

LOSS_REASONS = {
    lib.KEXTLOG_LOSS_RING_FULL: "ring-full",
    lib.KEXTLOG_LOSS_RELEASED: "released",
}

_STATUS = {
    lib.KEXTLOG_WIRE_BAD_MAGIC: "bad magic",
    lib.KEXTLOG_WIRE_BAD_VERSION: "unsupported protocol version",
    lib.KEXTLOG_WIRE_BAD_LENGTH: "bad frame length",
    lib.KEXTLOG_WIRE_BAD_FIELD: "field out of range",
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
    """A LOG frame's fields, in the order of the store's record columns."""

    seq: int
    time_ns: int
    mono_ns: int
    level: int
    flags: int
    pid: int
    tid: int
    process: str
    message: str

    def record(self, instance: str, source: str = "") -> Record:
        return Record(
            time_ns=self.time_ns,
            level=Level(self.level),
            pid=self.pid,
            tid=self.tid,
            process=self.process,
            message=self.message,
            seq=self.seq,
            instance=instance,
            source=source,
            flags=self.flags,
        )


@dataclass(frozen=True, slots=True)
class Loss:
    first_seq: int
    last_seq: int
    first_time_ns: int | None
    last_time_ns: int | None
    reason: str

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
    """Consecutive LOG frames of one read: plain tuples in LogFrame's field
    order (the hot path makes no object per record beyond its tuple)."""

    rows: list[tuple] = field(default_factory=list)
    contiguous: bool = True  # each seq is the one before it + 1

    @property
    def first_seq(self) -> int:
        return self.rows[0][0]

    @property
    def last_seq(self) -> int:
        return self.rows[-1][0]

    def frames(self) -> list[LogFrame]:
        return [LogFrame(*row[:9]) for row in self.rows]


Frame = Hello | LogRun | Loss | Status


def _text(raw: bytes) -> str:
    # Kernel strings are not guaranteed UTF-8; keep undecodable bytes visible.
    return raw.decode("utf-8", "backslashreplace")


def _decode(kind: int, pointer) -> Frame | None:
    """A frame other than LOG, checked already."""
    if kind == lib.KEXTLOG_FRAME_LOSS:
        loss = ffi.cast("struct kextlog_loss_frame *", pointer)
        return Loss(
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
    if kind == lib.KEXTLOG_FRAME_HELLO:
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
    return None  # a type for the other direction, or one this side does not know


class FrameReader:
    """Turns received bytes into frames.  Datagrams carry whole frames (one
    or several); a stream may cut a frame anywhere: the rest waits here."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self._entries = ffi.new("struct kextlog_scan_entry[]", SCAN_ENTRIES)
        self._consumed = ffi.new("size_t *")
        self._status = ffi.new("enum kextlog_wire_status *")
        self._table = ffi.new("struct kextlog_scan_names *")  # process names by number
        self._names: list[str] = []  # the same, decoded

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        buffer = self._pending
        buffer += data
        frames: list[Frame] = []
        offset = 0
        while True:
            base = ffi.from_buffer(buffer)
            try:
                count = lib.kextlog_wire_scan(
                    base + offset, len(buffer) - offset, self._table, self._entries,
                    SCAN_ENTRIES, self._consumed, self._status,
                )  # fmt: skip
                entries = ffi.buffer(self._entries, count * SCAN_ENTRY.size)
                self._describe(buffer, offset, SCAN_ENTRY.iter_unpack(entries), base, frames)
            finally:
                ffi.release(base)
            offset += self._consumed[0]
            status = self._status[0]
            if status != lib.KEXTLOG_WIRE_OK or count < SCAN_ENTRIES:
                break
        del buffer[:offset]
        if status not in (lib.KEXTLOG_WIRE_OK, lib.KEXTLOG_WIRE_SHORT):
            raise ProtocolError(f"{_STATUS[status]} at byte {offset} of a read")
        return frames

    def _describe(self, buffer: bytearray, start: int, entries, base, frames: list) -> None:
        run = frames[-1] if frames and isinstance(frames[-1], LogRun) else None
        names = self._names
        view = memoryview(buffer)
        for (
            seq, time_ns, mono_ns, tid, offset, pid, kind, flags, length, number, level, name_length
        ) in entries:  # fmt: skip
            at = start + offset
            if kind != lib.KEXTLOG_FRAME_LOG:
                frame = _decode(kind, base + at)
                if frame is not None:
                    frames.append(frame)
                run = None
                continue
            if run is None:
                run = LogRun()
                frames.append(run)
            elif seq != run.rows[-1][0] + 1:
                run.contiguous = False
            if number < len(names):
                process = names[number]
            else:
                name = at + PROCESS_OFFSET
                process = _text(bytes(view[name : name + name_length]))
                if number == len(names):  # numbered just now
                    names.append(process)
            message = str(view[at + MESSAGE_OFFSET : at + MESSAGE_OFFSET + length], "utf-8",
                          "backslashreplace")  # fmt: skip
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
