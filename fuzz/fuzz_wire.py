"""Fuzzes the frame reader (kextlog_store.wire.FrameReader) with streams and
datagrams built from the input: valid frames from the C encoders, garbage,
frames with a byte changed, frames cut short, cut into reads anywhere.

Whatever arrives, the reader returns frames and Skipped and raises nothing;
when the input held only valid frames and garbage without the magic's first
byte, exactly the valid frames come out, in order.  See harness.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Choices, instrumented, main

with instrumented():
    from kextlog_store._native import ffi, lib
    from kextlog_store.records import message_text
    from kextlog_store.wire import FrameReader, LogFrame, LogRun, LossFrame, Skipped

MAGIC_FIRST = b"K"
SEQ_MAX, TIME_MAX, TID_MAX = lib.KEXTLOG_SEQ_MAX, lib.KEXTLOG_TIME_MAX, lib.KEXTLOG_TID_MAX


def log_frame(choices: Choices) -> tuple[bytes, LogFrame]:
    seq, time_ns = 1 + choices.int(SEQ_MAX), choices.int(TIME_MAX + 1)
    pid, tid, level = choices.int(2**31), choices.int(TID_MAX + 1), 1 + choices.int(5)
    message = choices.bytes(choices.int(lib.KEXTLOG_MESSAGE_MAX + 1) // 4)  # short: more frames
    frame = ffi.new("char[]", lib.KEXTLOG_FRAME_MAX)
    length = lib.kextlog_encode_log(
        ffi.cast("struct kextlog_log_frame *", frame), seq, time_ns, 7, pid, tid, b"fuzz",
        level, 0, message, len(message),
    )  # fmt: skip
    text, flags = message_text(message)  # its own tests check the text (tests/test_wire.py)
    return bytes(ffi.buffer(frame, length)), LogFrame(
        seq, time_ns, 7, level, flags, pid, tid, "fuzz", text
    )


def loss_frame(choices: Choices) -> tuple[bytes, LossFrame]:
    first = 1 + choices.int(2**40)
    last = first + choices.int(2**20)
    frame = ffi.new("struct kextlog_loss_frame *")
    length = lib.kextlog_encode_loss(frame, first, last, 0, 5, lib.KEXTLOG_LOSS_RING_FULL)
    return bytes(ffi.buffer(frame, length)), LossFrame(first, last, None, 5, "ring-full")


def build(choices: Choices) -> tuple[list[bytes], list, bool]:
    """The pieces sent, the valid frames among them, and whether every piece
    is a valid frame or clean garbage (then those frames must all come out)."""
    pieces: list[bytes] = []
    frames: list = []
    clean = True
    while choices.left and len(pieces) < 32:
        kind = choices.int(5)
        if kind < 2:
            raw, frame = log_frame(choices) if kind == 0 else loss_frame(choices)
            pieces.append(raw)
            frames.append(frame)
        elif kind == 2:  # garbage that cannot begin a frame
            pieces.append(choices.bytes(1 + choices.int(256)).replace(MAGIC_FIRST, b"k"))
        else:  # a frame with a byte changed, or cut short
            raw = bytearray(log_frame(choices)[0])
            if kind == 3:
                raw[choices.int(len(raw))] = choices.int(256)
            else:
                del raw[1 + choices.int(len(raw) - 1) :]
            pieces.append(bytes(raw))
            clean = False
    return pieces, frames, clean


def target(data: bytes) -> None:
    choices = Choices(data)
    datagrams, step = choices.bool(), 1 + choices.int(2048)  # step: a stream's reads
    pieces, sent, clean = build(choices)
    reader = FrameReader()
    if datagrams:
        frames = reader.feed_datagrams(pieces)  # one piece a datagram
    else:
        stream = b"".join(pieces)
        frames = []
        for at in range(0, len(stream), step):
            frames += reader.feed(stream[at : at + step])
        frames += reader.finish()
        assert reader.pending == 0
    received = []
    for frame in frames:
        if isinstance(frame, Skipped):
            assert frame.size > 0, frame
        elif isinstance(frame, LogRun):
            received += frame.frames()
        else:
            received.append(frame)
    if clean:
        assert received == sent, (received, sent)


if __name__ == "__main__":
    main(target)
