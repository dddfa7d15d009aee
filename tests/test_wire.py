"""Frames encoded by the C codec (the kext's) and decoded by kextlog_store.wire."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kextlog_store._native import ffi, lib
from kextlog_store.errors import ProtocolError
from kextlog_store.levels import Level
from kextlog_store.wire import (
    SCAN_ENTRIES,
    SCAN_ENTRY,
    FrameReader,
    Hello,
    LogFrame,
    LogRun,
    Loss,
    Status,
    encode_ack,
    encode_resume,
)

INSTANCE = bytes(range(16))
BOOT = bytes(range(16, 32))


def log_bytes(seq: int = 1, message: bytes = b"hello", level: int = 3, **fields: int) -> bytes:
    frame = ffi.new("char[]", lib.KEXTLOG_FRAME_MAX)
    log = ffi.cast("struct kextlog_log_frame *", frame)
    length = lib.kextlog_encode_log(
        log,
        seq,
        fields.get("time_ns", 1_700_000_000_123_456_789),
        fields.get("mono_ns", 42),
        fields.get("pid", 312),
        fields.get("tid", 4411),
        b"mds_stores",
        level,
        fields.get("flags", 0),
        message,
        len(message),
    )
    return bytes(ffi.buffer(frame, length))


def hello_bytes() -> bytes:
    frame = ffi.new("struct kextlog_hello_frame *")
    length = lib.kextlog_encode_hello(
        frame, INSTANCE, BOOT, 5, 17, 1000, 256000, 0x010203, b"com.example.kext"
    )
    return bytes(ffi.buffer(frame, length))


def loss_bytes(first: int, last: int, reason: int = 1) -> bytes:
    frame = ffi.new("struct kextlog_loss_frame *")
    length = lib.kextlog_encode_loss(frame, first, last, 1000, 2000, reason)
    return bytes(ffi.buffer(frame, length))


def flat(frames: list) -> list:
    """LOG runs opened up into LogFrames, other frames as they are."""
    return [
        one
        for frame in frames
        for one in (frame.frames() if isinstance(frame, LogRun) else [frame])
    ]


def feed(*chunks: bytes) -> list:
    reader = FrameReader()
    frames = [frame for chunk in chunks for frame in reader.feed(chunk)]
    assert reader.pending == 0
    return flat(frames)


def test_levels_match_the_wire_header() -> None:
    assert [level.value for level in Level] == [
        lib.KEXTLOG_LEVEL_TRACE,
        lib.KEXTLOG_LEVEL_DEBUG,
        lib.KEXTLOG_LEVEL_INFO,
        lib.KEXTLOG_LEVEL_WARNING,
        lib.KEXTLOG_LEVEL_ERROR,
    ]


def test_hello_round_trip() -> None:
    (hello,) = feed(hello_bytes())
    assert hello == Hello(
        instance=INSTANCE.hex(),
        instance_raw=INSTANCE,
        boot_id=BOOT.hex(),
        oldest_seq=5,
        next_seq=17,
        ring_records=1000,
        ring_bytes=256000,
        producer_version="1.2.3",
        name="com.example.kext",
    )


def test_log_round_trip_keeps_every_field() -> None:
    data = log_bytes(seq=9, message=b"vnode: open /etc/hosts", level=5, flags=1, pid=7, tid=2**40)
    assert len(data) % 8 == 0
    (frame,) = feed(data)
    assert frame == LogFrame(
        seq=9,
        time_ns=1_700_000_000_123_456_789,
        mono_ns=42,
        level=5,
        flags=1,
        pid=7,
        tid=2**40,
        process="mds_stores",
        message="vnode: open /etc/hosts",
    )


def test_loss_round_trip() -> None:
    (loss,) = feed(loss_bytes(10, 14, lib.KEXTLOG_LOSS_RELEASED))
    assert loss == Loss(10, 14, 1000, 2000, "released")
    assert loss.count == 5


def test_invalid_utf8_is_kept_visible() -> None:
    (frame,) = feed(log_bytes(message=b"bad \xff byte"))
    assert frame.message == "bad \\xff byte"


def test_frames_glued_in_one_read_and_split_across_reads() -> None:
    stream = hello_bytes() + b"".join(log_bytes(seq, b"m%d" % seq * seq) for seq in range(1, 40))
    stream += loss_bytes(40, 45)
    whole = feed(stream)
    assert len(whole) == 41
    # Every cut of the stream into two reads gives the same frames.
    for cut in range(0, len(stream), 7):
        reader = FrameReader()
        frames = flat(reader.feed(stream[:cut]) + reader.feed(stream[cut:]))
        assert frames == whole
        assert reader.pending == 0


def test_byte_by_byte() -> None:
    stream = log_bytes(1, b"x" * 300) + log_bytes(2, b"")
    reader = FrameReader()
    frames = flat([frame for byte in stream for frame in reader.feed(bytes([byte]))])
    assert [frame.seq for frame in frames] == [1, 2]
    assert frames[0].message == "x" * 300


def test_unknown_frame_types_are_skipped() -> None:
    unknown = bytearray(log_bytes(1))
    unknown[6:8] = (200).to_bytes(2, "little")
    frames = feed(bytes(unknown) + log_bytes(2))
    assert [frame.seq for frame in frames] == [2]


@pytest.mark.parametrize(
    ("offset", "value", "problem"),
    [
        (0, b"XXXX", "bad magic"),
        (4, (9).to_bytes(2, "little"), "unsupported protocol version"),
        (8, (12).to_bytes(4, "little"), "bad frame length"),
        (56, bytes([9]), "field out of range"),
    ],
)
def test_malformed_frames_are_refused(offset: int, value: bytes, problem: str) -> None:
    data = bytearray(log_bytes(1))
    data[offset : offset + len(value)] = value
    with pytest.raises(ProtocolError, match=problem):
        FrameReader().feed(bytes(data))


def test_ack_and_resume_come_from_the_c_encoders() -> None:
    ack = encode_ack(77)
    assert len(ack) == ffi.sizeof("struct kextlog_ack_frame")
    length = ffi.new("uint32_t *")
    assert lib.kextlog_wire_check(ack, len(ack), length) == lib.KEXTLOG_WIRE_OK
    assert ffi.cast("struct kextlog_ack_frame *", ffi.from_buffer(ack)).seq == 77
    resume = encode_resume(INSTANCE, 5)
    assert lib.kextlog_wire_check(resume, len(resume), length) == lib.KEXTLOG_WIRE_OK
    parsed = ffi.cast("struct kextlog_resume_frame *", ffi.from_buffer(resume))
    assert (bytes(parsed.instance_id), parsed.seq) == (INSTANCE, 5)


@given(
    seq=st.integers(1, 2**64 - 1),
    time_ns=st.integers(0, 2**64 - 1),
    pid=st.integers(0, 2**32 - 1),
    tid=st.integers(0, 2**64 - 1),
    level=st.integers(1, 5),
    message=st.binary(max_size=1024),
    cut=st.integers(0, 2000),
)
def test_any_log_frame_round_trips(
    seq: int, time_ns: int, pid: int, tid: int, level: int, message: bytes, cut: int
) -> None:
    data = log_bytes(seq, message, level, time_ns=time_ns, pid=pid, tid=tid)
    reader = FrameReader()
    (frame,) = flat(reader.feed(data[:cut]) + reader.feed(data[cut:]))
    assert (frame.seq, frame.time_ns, frame.pid, frame.tid, frame.level) == (
        seq,
        time_ns,
        pid,
        tid,
        level,
    )
    assert frame.message == message.decode("utf-8", "backslashreplace")


def test_status_round_trip() -> None:
    frame = ffi.new("struct kextlog_status_frame *")
    length = lib.kextlog_encode_status(frame, 100, 3, 555, 10, 64, 2048, 16384)
    (status,) = feed(bytes(ffi.buffer(frame, length)))
    assert status == Status(100, 3, 555, 10, 64, 2048, 16384)


def test_log_frames_come_in_runs_that_know_if_they_are_contiguous() -> None:
    frames = FrameReader().feed(
        log_bytes(1) + log_bytes(2) + loss_bytes(3, 4) + log_bytes(5) + log_bytes(7)
    )
    assert [type(frame) for frame in frames] == [LogRun, Loss, LogRun]
    first, _, second = frames
    assert (first.first_seq, first.last_seq, first.contiguous) == (1, 2, True)
    assert (second.first_seq, second.last_seq, second.contiguous) == (5, 7, False)


def test_a_run_longer_than_one_scan() -> None:
    count = SCAN_ENTRIES * 2 + 5  # three C scans
    (run,) = FrameReader().feed(b"".join(log_bytes(seq, b"m") for seq in range(1, count + 1)))
    assert run.contiguous and (run.first_seq, run.last_seq) == (1, count)
    assert len(run.rows) == count


def test_scan_entries_unpack_as_the_compiler_laid_them_out() -> None:
    entry = ffi.new("struct kextlog_scan_entry *")
    entry.seq, entry.pid, entry.level, entry.process_length = 2**63 + 5, 4242, 5, 31
    fields = SCAN_ENTRY.unpack(bytes(ffi.buffer(entry)))
    assert (fields[0], fields[5], fields[10], fields[11]) == (2**63 + 5, 4242, 5, 31)
