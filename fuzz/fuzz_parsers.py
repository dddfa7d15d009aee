"""Fuzzes the parsers of what people and kernels write: kmsg records (one,
and a stream of them), time specs (--since, --until, durations), level specs
(--level, ranges).  Each returns a value in its range or raises its typed
error (ProtocolError, UsageError), nothing else.  See harness.py.
"""

from __future__ import annotations

import contextlib
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import instrumented, main

with instrumented():
    from kextlog_store.errors import ProtocolError, UsageError
    from kextlog_store.kmsg import KmsgReader, parse_record, split_records
    from kextlog_store.levels import Level, parse_level, parse_level_range
    from kextlog_store.timespec import parse_duration, parse_time
    from kextlog_store.wire import LogRun, LossFrame, Skipped

INT64 = 2**63 - 1
NOW = datetime(2026, 11, 27, 10, 22, 36, tzinfo=timezone.utc)


def kmsg(data: bytes) -> None:
    try:
        record = parse_record(data)
    except ProtocolError:
        pass
    else:
        assert 0 <= record.priority <= 7 and 0 <= record.seq <= INT64 and "\0" not in record.text
    reader = KmsgReader(boot_time_ns=1_700_000_000 * 10**9)
    records, rest = split_records(data)
    for frame in reader.feed([*records, rest]):
        assert isinstance(frame, LogRun | LossFrame | Skipped), frame
        if isinstance(frame, LogRun):
            assert all(0 <= row[1] <= INT64 and "\0" not in row[8] for row in frame.rows)


def times(text: str) -> None:
    try:
        assert -INT64 <= parse_time(text, now=NOW, tz=timezone.utc) <= INT64
    except UsageError as error:
        assert "\n" not in str(error)
    try:
        assert 0 <= parse_duration(text) <= INT64
    except UsageError as error:
        assert "\n" not in str(error)


def levels(text: str) -> None:
    with contextlib.suppress(UsageError):
        assert isinstance(parse_level(text), Level)
    with contextlib.suppress(UsageError):
        first, last = parse_level_range(text)
        assert first <= last


def target(data: bytes) -> None:
    if not data:
        return
    parser, rest = data[0] % 3, data[1:]
    if parser == 0:
        kmsg(rest)
    else:
        text = rest.decode("utf-8", "replace")
        (times if parser == 1 else levels)(text)


if __name__ == "__main__":
    main(target)
