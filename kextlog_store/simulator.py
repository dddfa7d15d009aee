"""`kextlog simulate`: the C simulator (kext/sim) standing in for the kext.

The C side generates and serves on its own threads; this side waits for it
(releasing the GIL), turns the frames it taps into the --record file, and
stops it on request, as the kext stops: what no client acknowledged goes to
the last-resort print (stderr), after one summary line.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from . import paths
from ._native import ffi, lib
from .errors import KextlogError, UnsafePath, UsageError
from .levels import Level
from .records import Record
from .render.entries import record_json
from .wire import FrameReader, LogRun

log = logging.getLogger("kextlog.simulate")

DEFAULT_RATE = 10_000
DEFAULT_RING = 10 * DEFAULT_RATE  # ten seconds at the default rate


@dataclass
class SimulateOptions:
    socket_path: str
    stream: bool = False
    rate: int = DEFAULT_RATE
    count: int = 0
    duration: float = 0.0
    ring: int = DEFAULT_RING
    record: Path | None = None
    seed: int = 1
    min_level: Level = Level.TRACE
    # Lost messages, and the unacknowledged at stop, are printed to stderr, as
    # kernel printf would.
    quiet_losses: bool = False
    resume_timeout: float = 1.0


class _Recorder:
    """Follows the binary tap file the C side appends to and writes each
    record as a JSON line, in query's json format."""

    def __init__(self, record: Path, instance: str) -> None:
        self.tap_path = record.with_name(f".{record.name}.{os.getpid()}.frames")
        self.tap_path.unlink(missing_ok=True)
        self._output: IO[str] = record.open("w", encoding="utf-8")
        self._tap: IO[bytes] | None = None
        self._reader = FrameReader()
        self.instance = instance

    def drain(self) -> None:
        if self._tap is None:
            if not self.tap_path.exists():
                return
            self._tap = self.tap_path.open("rb")
        while chunk := self._tap.read(1 << 20):
            for frame in self._reader.feed(chunk):
                if isinstance(frame, LogRun):
                    for row in frame.rows:
                        self._output.write(record_json(Record.of_row(row, self.instance)) + "\n")
        self._output.flush()

    def close(self) -> None:
        self.drain()
        self._output.close()
        if self._tap is not None:
            self._tap.close()
        self.tap_path.unlink(missing_ok=True)


def _check_paths(options: SimulateOptions) -> None:
    """Where the simulator creates files, no other user may steer it
    (paths): the socket's directory may be shared, as /tmp (the C side
    refuses anything already at the name; no one else can replace our
    socket there); the --record file's may not (its frames file is made
    by name beside it)."""
    checks = [(Path(options.socket_path), True)]
    if options.record is not None:
        checks.append((options.record, False))
    for path, shared in checks:
        try:
            paths.open_directory(Path(os.path.abspath(path)).parent, shared=shared).close()
        except UnsafePath as error:
            raise UnsafePath(f"refusing {path}: {error}") from None


def simulate(options: SimulateOptions, stop: threading.Event) -> dict[str, object]:
    """Runs until everything generated is acknowledged, or until stop is set;
    returns the final counters."""
    if options.ring < 1 or options.rate < 0 or options.count < 0 or options.duration < 0:
        raise UsageError("--ring must be at least 1; --rate, --count, --duration not negative")
    _check_paths(options)
    recorder_path = options.record
    keep = []  # cdata the C side points to must outlive it
    path = ffi.new("char[]", os.fsencode(options.socket_path))
    keep.append(path)
    config = ffi.new("struct kextlog_sim_config *")
    config.socket_path = path
    config.stream = int(options.stream)
    config.rate = options.rate
    config.count = options.count
    config.duration_ns = int(options.duration * 1e9)
    config.ring_records = options.ring
    config.min_level = int(options.min_level)
    config.seed = options.seed
    config.last_resort_fd = -1 if options.quiet_losses else 2
    config.resume_timeout_ns = int(options.resume_timeout * 1e9)
    recorder: _Recorder | None = None
    if recorder_path is not None:
        recorder = _Recorder(recorder_path, instance="")
        tap = ffi.new("char[]", os.fsencode(str(recorder.tap_path)))
        keep.append(tap)
        config.tap_path = tap

    handle = ffi.new("struct kextlog_sim **")
    error = ffi.new("char[256]")
    if lib.kextlog_sim_start(config, handle, error, len(error)) != 0:
        if recorder is not None:
            recorder.close()
        raise KextlogError(f"simulate: {ffi.string(error).decode(errors='replace')}")
    sim = handle[0]
    status = ffi.new("struct kextlog_sim_status *")
    try:
        lib.kextlog_sim_status(sim, status)
        instance = bytes(ffi.buffer(status.instance_id)).hex()
        if recorder is not None:
            recorder.instance = instance
        log.info("serving %s, instance %s", options.socket_path, instance)
        started, generating = time.monotonic(), True
        while not stop.is_set() and not lib.kextlog_sim_wait(sim, 100):
            if recorder is not None:
                recorder.drain()
            if generating:
                lib.kextlog_sim_status(sim, status)
                if not status.generating:
                    generating = False
                    log.info(
                        "generated %d records in %.1f s; serving until all are acknowledged",
                        status.generated,
                        time.monotonic() - started,
                    )
    finally:
        lib.kextlog_sim_stop(sim)
        lib.kextlog_sim_status(sim, status)
        lib.kextlog_sim_destroy(sim)
        if recorder is not None:
            recorder.close()
    counters = status.counters
    logged = counters.next_seq - 1
    return {
        "instance": instance,
        "first_seq": 1 if logged else None,
        "last_seq": logged if logged else None,
        "generated": status.generated,
        "logged": logged,
        "sent": counters.frames_sent,
        "lost": counters.lost,
        "acked": counters.acked_seq,
        "truncated": counters.truncated,
        "refused": counters.bad_input,  # client writes the core refused
        "ring_high_water": counters.ring_high_water,
        "connects": counters.connects,
        "printed_at_stop": counters.printed_at_stop,
        "finished": bool(status.finished),
    }
