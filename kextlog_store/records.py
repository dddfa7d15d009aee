"""The record as the read path, the renderers and the simulator's --record
file see it.  Cheap to import: no SQLAlchemy, no cffi."""

from __future__ import annotations

from dataclasses import dataclass

from .levels import Level


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
