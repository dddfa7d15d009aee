"""Frames in and out, through the cffi module compiled from kextlog_wire.h.

Decoding reads fields through the C structs (the compiler placed them) after
the C check every receiver applies; encoding calls the C encoders the kext
uses.  A FrameReader accepts bytes however the transport cut them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from ._native import ffi, lib
from .errors import ProtocolError
from .levels import Level
from .records import Record

HEADER_SIZE = ffi.sizeof("struct kextlog_frame_header")
MESSAGE_OFFSET = ffi.offsetof("struct kextlog_log_frame", "message")
FRAME_MAX = lib.KEXTLOG_FRAME_MAX

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


Frame = Hello | LogFrame | Loss | Status


def _text(raw: bytes) -> str:
    # Kernel strings are not guaranteed UTF-8; keep undecodable bytes visible.
    return raw.decode("utf-8", "backslashreplace")


def _decode(kind: int, pointer) -> Frame | None:
    if kind == lib.KEXTLOG_FRAME_LOG:
        log = ffi.cast("struct kextlog_log_frame *", pointer)
        return LogFrame(
            log.seq,
            log.time_ns,
            log.mono_ns,
            log.level,
            log.flags,
            log.pid,
            log.tid,
            _text(ffi.string(log.process, lib.KEXTLOG_PROCESS_NAME_MAX)),
            _text(ffi.unpack(log.message, log.message_length)),
        )
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
        self._length = ffi.new("uint32_t *")

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        buffer = self._pending
        buffer += data
        frames: list[Frame] = []
        base = ffi.from_buffer(buffer)
        offset, end = 0, len(buffer)
        try:
            while offset < end:
                status = lib.kextlog_wire_check(base + offset, end - offset, self._length)
                length = self._length[0]
                if status == lib.KEXTLOG_WIRE_SHORT or (
                    status == lib.KEXTLOG_WIRE_UNKNOWN and offset + length > end
                ):
                    break  # the rest of the frame comes with the next read
                if status == lib.KEXTLOG_WIRE_OK:
                    kind = ffi.cast("struct kextlog_frame_header *", base + offset).type
                    frame = _decode(kind, base + offset)
                    if frame is not None:
                        frames.append(frame)
                elif status != lib.KEXTLOG_WIRE_UNKNOWN:  # unknown types are skipped
                    raise ProtocolError(f"{_STATUS[status]} at byte {offset} of a read")
                offset += length
        finally:
            ffi.release(base)
            del buffer[:offset]
        return frames

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
