"""Frames encoded by the C codec (the kext's) and decoded by kextlog_store.wire,
also among garbage, malformed and truncated frames, on streams and datagrams."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kextlog_store._native import ffi, lib
from kextlog_store.levels import Level
from kextlog_store.records import STORED_BYTES, message_bytes
from kextlog_store.wire import (
    SCAN_ENTRIES,
    SCAN_ENTRY,
    FrameReader,
    Hello,
    LogFrame,
    LogRun,
    LossFrame,
    Skipped,
    Status,
    encode_ack,
    encode_resume,
)

INSTANCE = bytes(range(16))
# The field bounds, from the header (kextlog_wire.h).
SEQ_MAX, TIME_MAX, TID_MAX = lib.KEXTLOG_SEQ_MAX, lib.KEXTLOG_TIME_MAX, lib.KEXTLOG_TID_MAX
PID_MAX, FLAGS_MAX = lib.KEXTLOG_PID_MAX, lib.KEXTLOG_FLAGS_MAX
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


def hello_bytes(instance: bytes = INSTANCE, oldest_seq: int = 5, next_seq: int = 17) -> bytes:
    frame = ffi.new("struct kextlog_hello_frame *")
    length = lib.kextlog_encode_hello(
        frame, instance, BOOT, oldest_seq, next_seq, 1000, 256000, 0x010203, b"com.example.kext"
    )
    return bytes(ffi.buffer(frame, length))


def loss_bytes(first: int, last: int, reason: int = 1, last_time_ns: int = 2000) -> bytes:
    frame = ffi.new("struct kextlog_loss_frame *")
    length = lib.kextlog_encode_loss(frame, first, last, 1000, last_time_ns, reason)
    return bytes(ffi.buffer(frame, length))


def status_bytes(
    next_seq: int = 100,
    lost: int = 3,
    ring_records: int = 10,
    ring_bytes_used: int = 2048,
    time_ns: int = 555,
) -> bytes:
    frame = ffi.new("struct kextlog_status_frame *")
    length = lib.kextlog_encode_status(
        frame, next_seq, lost, time_ns, ring_records, 64, ring_bytes_used, 16384
    )
    return bytes(ffi.buffer(frame, length))


def flat(frames: list) -> list:
    """LOG runs opened up into LogFrames, other frames as they are."""
    return [
        one
        for frame in frames
        for one in (frame.frames() if isinstance(frame, LogRun) else [frame])
    ]


def split(frames: list) -> tuple[list, list[Skipped]]:
    """The frames (LOG runs opened up), and what was skipped."""
    every = flat(frames)
    return [f for f in every if not isinstance(f, Skipped)], [
        f for f in every if isinstance(f, Skipped)
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
    assert loss == LossFrame(10, 14, 1000, 2000, "released")
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
    assert frames[0] == Skipped("unknown type", len(unknown))  # counted: a newer producer?
    assert [frame.seq for frame in frames[1:]] == [2]


# A LOG frame broken in one field each: what the reader calls it.
BROKEN = [
    (0, b"XXXX", "bad magic"),
    (4, (9).to_bytes(2, "little"), "unsupported version"),
    (8, (12).to_bytes(4, "little"), "bad length"),
    (8, (2000).to_bytes(4, "little"), "bad length"),  # over KEXTLOG_FRAME_MAX
    (56, bytes([9]), "invalid field"),  # level
    (52, (1025).to_bytes(2, "little"), "invalid field"),  # message length
    (16, (0).to_bytes(8, "little"), "out of range"),  # seq 0
    (16, (2**63).to_bytes(8, "little"), "out of range"),  # seq: no store holds it
    (16, (SEQ_MAX + 1).to_bytes(8, "little"), "out of range"),  # another instance's key
    (54, (0x8000).to_bytes(2, "little"), "out of range"),  # flags: bit 15 is reserved
    (24, (2**64 - 1).to_bytes(8, "little"), "out of range"),  # time_ns
    (48, (2**31).to_bytes(4, "little"), "out of range"),  # pid above pid_t
    (6, (300).to_bytes(2, "little"), "unknown type"),
    (6, (64).to_bytes(2, "little"), "bad length"),  # an ACK's type, a LOG's length
]


# -- field bounds (kextlog_wire.h): each frame type at its bounds, and past them --

AT_BOUNDS = [
    log_bytes(
        SEQ_MAX, time_ns=TIME_MAX, mono_ns=TIME_MAX, pid=PID_MAX, tid=TID_MAX, flags=FLAGS_MAX
    ),
    loss_bytes(1, SEQ_MAX, last_time_ns=TIME_MAX),
    hello_bytes(oldest_seq=SEQ_MAX + 1, next_seq=SEQ_MAX + 1),  # all given out, none held
    hello_bytes(instance=bytes(15) + b"\x01", oldest_seq=1, next_seq=1),
    status_bytes(SEQ_MAX + 1, SEQ_MAX, ring_records=64, ring_bytes_used=16384, time_ns=TIME_MAX),
]
PAST_BOUNDS = [
    log_bytes(SEQ_MAX + 1),  # its key would be another instance's record
    log_bytes(1, flags=FLAGS_MAX + 1),
    log_bytes(1, time_ns=TIME_MAX + 1),  # readers add zone offsets and windows to times
    log_bytes(1, mono_ns=TIME_MAX + 1),
    log_bytes(1, tid=TID_MAX + 1),
    log_bytes(1, pid=PID_MAX + 1),
    loss_bytes(1, 2, last_time_ns=TIME_MAX + 1),
    loss_bytes(SEQ_MAX, SEQ_MAX + 1),  # a count past what one instance can lose
    loss_bytes(2, 2**63 - 1),
    hello_bytes(instance=bytes(16)),  # an id of zeros is no one's
    hello_bytes(oldest_seq=0, next_seq=1),
    hello_bytes(oldest_seq=9, next_seq=8),
    hello_bytes(oldest_seq=1, next_seq=SEQ_MAX + 2),
    status_bytes(SEQ_MAX + 2),
    status_bytes(lost=SEQ_MAX + 1),
    status_bytes(ring_records=65),  # more held than the ring's capacity
    status_bytes(ring_bytes_used=16385),
    status_bytes(time_ns=TIME_MAX + 1),
]


@pytest.mark.parametrize("frame", AT_BOUNDS)
def test_a_frame_at_the_field_bounds_is_read(frame: bytes) -> None:
    good, skipped = split(FrameReader().feed(frame + log_bytes(1)))
    assert skipped == [] and len(good) == 2


@pytest.mark.parametrize("frame", PAST_BOUNDS)
@pytest.mark.parametrize("transport", ["stream", "datagram"])
def test_a_frame_past_the_field_bounds_is_skipped_as_out_of_range(
    frame: bytes, transport: str
) -> None:
    data = log_bytes(1) + frame + log_bytes(2)
    reader = FrameReader()
    frames = reader.feed(data) if transport == "stream" else reader.feed_datagrams([data])
    good, skipped = split(frames)
    assert [frame.seq for frame in good] == [1, 2]
    assert skipped == [Skipped("out of range", len(frame))]


@pytest.mark.parametrize(("offset", "value", "problem"), BROKEN)
@pytest.mark.parametrize("transport", ["stream", "datagram"])
def test_a_malformed_frame_is_skipped_and_the_next_one_read(
    offset: int, value: bytes, problem: str, transport: str
) -> None:
    broken = bytearray(log_bytes(2))
    broken[offset : offset + len(value)] = value
    parts = [log_bytes(1), bytes(broken), log_bytes(3)]
    reader = FrameReader()
    if transport == "stream":
        frames = reader.feed(b"".join(parts)) + reader.finish()
    else:
        frames = reader.feed_datagrams([b"".join(parts)])
    good, skipped = split(frames)
    assert [frame.seq for frame in good] == [1, 3]
    assert skipped == [Skipped(problem, len(broken))]


def test_garbage_is_skipped_in_one_run_wherever_the_next_frame_begins() -> None:
    garbage = b"\x00garbage, not a frame: K KX KXL KXLG\xff"  # 37 bytes, not a multiple of 8
    frames = FrameReader().feed(log_bytes(1) + garbage + log_bytes(2) + status_bytes())
    assert frames[1] == Skipped("bad magic", len(garbage))
    good, _ = split(frames)
    assert [type(frame) for frame in good] == [LogFrame, LogFrame, Status]


def test_endless_garbage_keeps_only_what_may_begin_a_frame() -> None:
    reader = FrameReader()
    total = 0
    for _ in range(100):
        chunk = bytes(range(256)) * 16 + b"KX"  # ends in what could be a frame's start
        total += sum(skipped.size for skipped in reader.feed(chunk))
        assert reader.pending <= 2
    assert total + reader.pending == 100 * (4096 + 2)
    good, _ = split(reader.feed(log_bytes(7)))
    assert [frame.seq for frame in good] == [7]


def test_a_frame_cut_short_on_a_stream_is_truncated() -> None:
    cut = log_bytes(1, b"a message that is cut in the middle")[:110]
    for extra in (b"", log_bytes(2)):  # followed by a frame, or the end of the stream
        reader = FrameReader()
        frames = reader.feed(cut + extra) + reader.finish()
        good, skipped = split(frames)
        assert skipped == [Skipped("truncated", len(cut))]
        assert [frame.seq for frame in good] == ([2] if extra else [])
        assert reader.pending == 0


def test_a_long_frame_cut_short_holds_back_the_next_until_the_end() -> None:
    # Claims 1120 bytes: whether it was cut shows when they are there, or the stream ends.
    cut = log_bytes(1, b"x" * 1024)[:200]
    reader = FrameReader()
    assert reader.feed(cut + log_bytes(2)) == []
    good, skipped = split(reader.finish())
    assert [frame.seq for frame in good] == [2]
    assert skipped == [Skipped("truncated", 200)]


def test_a_frame_cut_by_its_datagram_is_truncated_and_the_next_datagram_read() -> None:
    cut = log_bytes(2, b"cut by the end of its datagram")[:-9]
    frames = FrameReader().feed_datagrams([log_bytes(1) + cut, log_bytes(3)])
    good, skipped = split(frames)
    assert [frame.seq for frame in good] == [1, 3]
    assert skipped == [Skipped("truncated", len(cut))]


def test_a_length_past_the_end_of_the_data() -> None:
    claims_more = bytearray(log_bytes(2))
    claims_more[8:12] = (1120).to_bytes(4, "little")  # a valid frame length, not this frame's
    sent = [log_bytes(1), bytes(claims_more), log_bytes(3)]
    # In a datagram it runs past the end: cut short.
    good, skipped = split(FrameReader().feed_datagrams([b"".join(sent)]))
    assert [frame.seq for frame in good] == [1, 3]
    assert skipped == [Skipped("truncated", 104)]
    # On a stream the frames after it wait until the bytes it claims are there
    # (or the stream ends), then it fails its check.
    reader = FrameReader()
    assert [f.seq for f in split(reader.feed(b"".join(sent)))[0]] == [1]
    good, skipped = split(reader.feed(b"".join(log_bytes(seq) for seq in range(4, 14))))
    assert [frame.seq for frame in good] == list(range(3, 14))
    assert skipped == [Skipped("invalid field", 104)]


def test_a_message_ending_in_the_start_of_a_magic_is_not_held_back() -> None:
    # Found by hypothesis: no padding after the K, the end of the read right there.
    for end in (b"K", b"KX", b"KXL", b"KXLG"):
        message = end.rjust(24, b".")  # a multiple of 8 bytes long: no padding
        reader = FrameReader()
        (frame,) = flat(reader.feed(log_bytes(1, message)))
        assert frame.message == message.decode()
        assert reader.pending == 0


def test_bytes_that_are_not_text_are_kept_as_bytes() -> None:
    """NUL and bytes that are not UTF-8 text are escaped, and so is every
    backslash of that message, under a flag: a literal "\\xff" is text."""
    (frame,) = feed(log_bytes(message=b"before\x00after \xff \\x41"))
    assert frame.message == "before\\x00after \\xff \\\\x41"
    assert (
        frame.flags == STORED_BYTES
        and message_bytes(frame.message) == b"before\x00after \xff \\x41"
    )
    (frame,) = feed(log_bytes(message=b"text \\xff"))
    assert (frame.message, frame.flags) == ("text \\xff", 0)


def stored(text: bytes) -> tuple[str, int]:
    """What ingest keeps of a message: UTF-8 text without NUL as it is;
    else, under the flag, each byte outside UTF-8 text and NUL as \\xHH and
    each backslash doubled."""
    try:
        decoded = text.decode()
        if "\0" not in decoded:
            return decoded, 0
    except UnicodeDecodeError:
        pass
    shown = []
    for char in text.decode("utf-8", "surrogateescape"):
        if char == "\\":
            shown.append("\\\\")
        elif char == "\0" or "\udc80" <= char <= "\udcff":
            shown.append("\\x%02x" % (ord(char) & 0xFF))
        else:
            shown.append(char)
    return "".join(shown), STORED_BYTES


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
    seq=st.integers(1, SEQ_MAX),
    time_ns=st.integers(0, TIME_MAX),
    pid=st.integers(0, PID_MAX),
    tid=st.integers(0, TID_MAX),
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
    assert (frame.message, frame.flags) == stored(message)


def test_status_round_trip() -> None:
    (status,) = feed(status_bytes())
    assert status == Status(100, 3, 555, 10, 64, 2048, 16384)


def test_log_frames_come_in_runs_that_know_if_they_are_contiguous() -> None:
    frames = FrameReader().feed(
        log_bytes(1) + log_bytes(2) + loss_bytes(3, 4) + log_bytes(5) + log_bytes(7)
    )
    assert [type(frame) for frame in frames] == [LogRun, LossFrame, LogRun]
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


# -- properties: valid frames among garbage, however the transport cuts them --


def valid_log(seq: int, time_ns: int, pid: int, tid: int, level: int, text: bytes) -> tuple:
    message, flags = stored(text)
    return (
        log_bytes(seq, text, level, time_ns=time_ns, pid=pid, tid=tid),
        LogFrame(seq, time_ns, 42, level, flags, pid, tid, "mds_stores", message),
    )


def valid_loss(first: int, count: int) -> tuple:
    last = first + count - 1
    return loss_bytes(first, last), LossFrame(first, last, 1000, 2000, "ring-full")


def valid_status(next_seq: int, lost: int) -> tuple:
    return status_bytes(next_seq, lost), Status(next_seq, lost, 555, 10, 64, 2048, 16384)


# Each a frame's bytes from the C encoder, and the frame the reader must make of them.
valid_logs = st.builds(
    valid_log,
    st.integers(1, SEQ_MAX),
    st.integers(0, TIME_MAX),
    st.integers(0, PID_MAX),
    st.integers(0, TID_MAX),
    st.integers(1, 5),
    st.binary(max_size=300),
)
valid_losses = st.builds(valid_loss, st.integers(1, SEQ_MAX - 1000), st.integers(1, 1000))
valid_statuses = st.builds(valid_status, st.integers(0, SEQ_MAX + 1), st.integers(0, SEQ_MAX))
valid = st.one_of(valid_logs, valid_losses, valid_statuses)

# One field of a LOG frame set to a value that no valid frame has there.
_BREAKS = st.one_of(
    st.tuples(st.just(0), st.integers(0, 255).filter(lambda b: b != 0x4B), st.just(1)),
    st.tuples(st.just(4), st.integers(0, 2**16 - 1).filter(lambda v: v != 1), st.just(2)),
    st.tuples(st.just(8), st.integers(0, 2**32 - 1), st.just(4)),  # any other length
    st.tuples(st.just(56), st.sampled_from([0, *range(6, 256)]), st.just(1)),
    st.tuples(st.just(52), st.integers(1025, 2**16 - 1), st.just(2)),
    st.tuples(st.just(16), st.integers(SEQ_MAX + 1, 2**64 - 1) | st.just(0), st.just(8)),
    st.tuples(st.just(24), st.integers(TIME_MAX + 1, 2**64 - 1), st.just(8)),
    st.tuples(st.just(48), st.integers(PID_MAX + 1, 2**32 - 1), st.just(4)),
    st.tuples(st.just(54), st.integers(FLAGS_MAX + 1, 2**16 - 1), st.just(2)),
)


@st.composite
def broken(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(valid_logs)[0])
    offset, value, size = draw(_BREAKS)
    if offset == 8 and value == len(data):
        value += 8
    data[offset : offset + size] = value.to_bytes(size, "little")
    return bytes(data)


garbage = st.binary(min_size=1, max_size=200) | broken()


@st.composite
def cut_then_valid(draw: st.DrawFn) -> tuple[bytes, tuple[bytes, object]]:
    """A frame cut short, and the valid frame sent after it.  On a stream,
    nothing can tell such a frame from a whole one with the bytes after it in
    its message when those are garbage, or when a read ends within the next
    header's first 6 bytes (magic and version) and it was cut by fewer: both
    left out here (docs/protocol.md, "Malformed input")."""
    whole = draw(valid)[0]
    return whole[: draw(st.integers(1, len(whole) - 6))], draw(valid)


# A stream: valid frames, garbage, and frames cut short, in any order.
pieces = st.lists(
    st.one_of(
        valid.map(lambda frame: [frame]),
        garbage.map(lambda junk: [junk]),
        cut_then_valid().map(lambda pair: [pair[0], pair[1]]),
    ),
    max_size=12,
).map(lambda groups: [piece for group in groups for piece in group])


def expected(parts: list) -> tuple[bytes, list, int]:
    """The bytes, the valid frames among them, and the bytes of those."""
    data = b"".join(part if isinstance(part, bytes) else part[0] for part in parts)
    frames = [part for part in parts if not isinstance(part, bytes)]
    return data, [frame for _, frame in frames], sum(len(raw) for raw, _ in frames)


def check(frames: list, wanted: list, data: bytes, valid_bytes: int) -> None:
    good, skipped = split(frames)
    assert good == wanted  # each valid frame once, in order, nothing else
    assert sum(s.size for s in skipped) == len(data) - valid_bytes  # every byte accounted for


@given(pieces, st.binary(max_size=60) | cut_then_valid().map(lambda pair: pair[0]), st.data())
def test_a_stream_of_frames_and_garbage_cut_anywhere(
    parts: list, tail: bytes, data: st.DataObject
) -> None:
    stream, wanted, valid_bytes = expected([*parts, tail] if tail else parts)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    reader = FrameReader()
    frames = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        frames += reader.feed(stream[start:end])
    frames += reader.finish()
    check(frames, wanted, stream, valid_bytes)
    assert reader.pending == 0


@given(st.lists(st.tuples(pieces, st.binary(max_size=1) | cut_then_valid()), max_size=6))
def test_datagrams_of_frames_and_garbage(datagrams: list) -> None:
    """Each datagram may also end in a frame cut short by its end."""
    contents = []
    for parts, ending in datagrams:
        contents.append([*parts, ending[0]] if isinstance(ending, tuple) else [*parts, ending])
    reader = FrameReader()
    frames = reader.feed_datagrams([expected(parts)[0] for parts in contents])
    everything = [part for parts in contents for part in parts]
    data, wanted, valid_bytes = expected(everything)
    check(frames, wanted, data, valid_bytes)
