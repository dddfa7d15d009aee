"""--since / --until values and durations: systemd's grammar, checked against
systemd-analyze and journalctl under several zones (summer-time gaps and
folds included), kextlog's extensions, every error, and properties."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kextlog_store.errors import UsageError
from kextlog_store.timespec import UNITS, parse_duration, parse_time, parse_until, to_ns
from tests.conftest import unavailable

UTC = timezone.utc
NS = 1_000_000_000
MINUTE, HOUR, DAY, WEEK = 60 * NS, 3600 * NS, 86400 * NS, 7 * 86400 * NS
MONTH, YEAR = 2_629_800 * NS, 31_557_600 * NS
INT64 = 2**63 - 1
NOW = datetime(2026, 11, 27, 10, 22, 36, 123456, tzinfo=UTC)  # a Friday
N = to_ns(NOW)
BERLIN = ZoneInfo("Europe/Berlin")


def utc_ns(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return to_ns(datetime(year, month, day, hour, minute, second, tzinfo=UTC))


def test_to_ns_is_exact() -> None:
    assert to_ns(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert to_ns(datetime(2026, 11, 27, 10, 22, 36, 123456, tzinfo=UTC)) == 1795774956123456000
    assert to_ns(datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)) == -1000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # systemd's relative forms
        ("-30s", N - 30 * NS),
        ("-30", N - 30 * NS),
        ("30 ago", N - 30 * NS),
        ("-1h30min", N - HOUR - 30 * MINUTE),
        ("- 1h", N - HOUR),
        ("-1 h", N - HOUR),
        ("1h ago", N - HOUR),
        ("1h30m ago", N - HOUR - 30 * MINUTE),
        ("2 days ago", N - 2 * DAY),
        ("+1h", N + HOUR),
        ("+5", N + 5 * NS),
        ("5min left", N + 5 * MINUTE),
        ("-1M", N - MONTH),
        ("-1m", N - MINUTE),
        ("1 month ago", N - MONTH),
        ("2 months ago", N - 2 * MONTH),
        ("-1y", N - YEAR),
        ("1 year ago", N - YEAR),
        ("-.5h", N - HOUR // 2),
        ("-1h30", N - HOUR - 30 * NS),
        ("-5s+3s", N - 8 * NS),
        ("5µs ago", N - 5_000),
        ("-0", N),
        # kextlog's: a bare duration is that long ago
        ("30s", N - 30 * NS),
        ("15m", N - 15 * MINUTE),
        ("1h", N - HOUR),
        ("2d", N - 2 * DAY),
        ("1w", N - WEEK),
        ("1M", N - MONTH),
        ("1h30m", N - HOUR - 30 * MINUTE),
        ("1h 30m", N - HOUR - 30 * MINUTE),
        ("1 hour 30 minutes", N - HOUR - 30 * MINUTE),
        ("2hours", N - 2 * HOUR),
        ("90 min", N - 90 * MINUTE),
        ("90mins", N - 90 * MINUTE),
        ("45 secs", N - 45 * NS),
        ("3 weeks", N - 3 * WEEK),
        ("1.5h", N - HOUR - 30 * MINUTE),
        ("0.25d", N - 6 * HOUR),
        ("500ms", N - 500_000_000),
        ("250us", N - 250_000),
        ("7ns", N - 7),
        ("  1h  ", N - HOUR),
        ("0s", N),
        ("1m1s1ms1us1ns", N - MINUTE - NS - 1_000_000 - 1_000 - 1),
    ],
)
def test_relative(text: str, expected: int) -> None:
    assert parse_time(text, now=NOW) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", N),
        ("today", utc_ns(2026, 11, 27)),
        ("yesterday", utc_ns(2026, 11, 26)),
        ("tomorrow", utc_ns(2026, 11, 28)),
        ("today UTC", utc_ns(2026, 11, 27)),
        ("2026-11-27", utc_ns(2026, 11, 27)),
        ("2026-11-27 10:00", utc_ns(2026, 11, 27, 10)),
        ("2026-11-27  10:00:30", utc_ns(2026, 11, 27, 10, 0, 30)),
        ("2026-11-2710:00", utc_ns(2026, 11, 27, 10)),
        ("2026-1-5 1:2:3", utc_ns(2026, 1, 5, 1, 2, 3)),
        ("26-11-27", utc_ns(2026, 11, 27)),
        ("99-11-27 10:00", utc_ns(1999, 11, 27, 10)),
        ("2026-02-30", utc_ns(2026, 3, 2)),  # glibc rolls it over, as systemd
        ("2026-11-27 10:00:60", utc_ns(2026, 11, 27, 10, 1)),
        ("Nov 27 10:00:00", utc_ns(2026, 11, 27, 10)),
        ("november 27 10:00:00.5", utc_ns(2026, 11, 27, 10) + NS // 2),
        ("Fri 2026-11-27 10:00", utc_ns(2026, 11, 27, 10)),
        ("friday 2026-11-27", utc_ns(2026, 11, 27)),
        ("FRI 10:00", utc_ns(2026, 11, 27, 10)),
        ("2026-11-27 10:00 UTC", utc_ns(2026, 11, 27, 10)),
        ("2026-11-27 10:00 utc", utc_ns(2026, 11, 27, 10)),
        ("2026-11-27 10:00:00.123456789", utc_ns(2026, 11, 27, 10) + 123456789),
        ("10:00", utc_ns(2026, 11, 27, 10)),
        ("23:59:59.5", utc_ns(2026, 11, 27, 23, 59, 59) + NS // 2),
        ("@0", 0),
        ("@1795774956", 1795774956 * NS),
        ("@1795774956.5", 1795774956 * NS + NS // 2),
        ("@1795774956.123456789", 1795774956123456789),
        ("@1h", 3600 * NS),
        ("@ 10", 10 * NS),
        ("@+10", 10 * NS),
        # kextlog's ISO 8601 forms
        ("2026-11-27T10:00", utc_ns(2026, 11, 27, 10)),
        ("2026-11-27T10:00:00Z", utc_ns(2026, 11, 27, 10)),
        ("2026-11-27t10:00z", utc_ns(2026, 11, 27, 10)),
        ("2026-11-27T10:00 UTC", utc_ns(2026, 11, 27, 10)),
        ("2026-11-27T10:00:00.123456+01:00", utc_ns(2026, 11, 27, 9) + 123456000),
        ("2026-11-27T10:00:00.5+0100", utc_ns(2026, 11, 27, 9) + NS // 2),
        ("2026-11-27T10:00:00+01", utc_ns(2026, 11, 27, 9)),
        ("2026-11-27T10:00:00-05:30", utc_ns(2026, 11, 27, 15, 30)),
        ("2026-11-27 10:00 +01:00", utc_ns(2026, 11, 27, 9)),
        ("2026-11-27T10:00:00.123456789Z", utc_ns(2026, 11, 27, 10) + 123456789),
        ("2026-11-27T10:00:00.1234567891Z", utc_ns(2026, 11, 27, 10) + 123456789),
        ("2026-11-27 10:00:00,25", utc_ns(2026, 11, 27, 10) + NS // 4),
        ("10:00Z", utc_ns(2026, 11, 27, 10)),
        (" 2026-11-27 10:00 ", utc_ns(2026, 11, 27, 10)),
        # Past the store's 64-bit nanoseconds: the end of its time.
        ("2300-01-01", INT64),
        ("9999-12-30 23:59:59 UTC", INT64),
        ("+300y", INT64),
        ("@infinity", INT64),
    ],
)
def test_absolute_and_keywords_in_utc(text: str, expected: int) -> None:
    assert parse_time(text, now=NOW, tz=UTC) == expected


def test_local_time_uses_the_given_zone() -> None:
    assert parse_time("2026-11-27 10:00", now=NOW, tz=BERLIN) == utc_ns(2026, 11, 27, 9)
    assert parse_time("2026-11-27", now=NOW, tz=BERLIN) == utc_ns(2026, 11, 26, 23)
    assert parse_time("today", now=NOW, tz=BERLIN) == utc_ns(2026, 11, 26, 23)
    assert parse_time("2026-07-01 12:00", now=NOW, tz=BERLIN) == utc_ns(2026, 7, 1, 10)  # summer
    assert parse_time("10:00", now=NOW, tz=BERLIN) == utc_ns(2026, 11, 27, 9)
    # A value with a zone ignores the local one.
    assert parse_time("2026-11-27T10:00Z", now=NOW, tz=BERLIN) == utc_ns(2026, 11, 27, 10)
    assert parse_time("10:00Z", now=NOW, tz=BERLIN) == utc_ns(2026, 11, 27, 10)
    assert parse_time("2026-11-27 10:00 UTC", now=NOW, tz=BERLIN) == utc_ns(2026, 11, 27, 10)
    assert parse_time("2026-11-27 10:00 Asia/Kolkata", now=NOW, tz=BERLIN) == utc_ns(
        2026, 11, 27, 4, 30
    )
    # An abbreviation of the local zone says standard or summer time.
    assert parse_time("2026-07-01 12:00 CEST", now=NOW, tz=BERLIN) == utc_ns(2026, 7, 1, 10)
    assert parse_time("2026-07-01 12:00 cet", now=NOW, tz=BERLIN) == utc_ns(2026, 7, 1, 11)
    assert parse_time("2026-01-01 12:00 CEST", now=NOW, tz=BERLIN) == utc_ns(2026, 1, 1, 10)
    # Relative values do not depend on the zone.
    assert parse_time("1h", now=NOW, tz=BERLIN) == N - HOUR


def test_days_across_a_daylight_saving_change() -> None:
    # Summer time began on 2026-03-29 at 02:00 local: that day had 23 hours.
    noon = datetime(2026, 3, 29, 12, tzinfo=BERLIN)
    assert parse_time("today", now=noon, tz=BERLIN) == utc_ns(2026, 3, 28, 23)
    assert parse_time("yesterday", now=noon, tz=BERLIN) == utc_ns(2026, 3, 27, 23)
    assert parse_time("tomorrow", now=noon, tz=BERLIN) == utc_ns(2026, 3, 29, 22)


def test_gaps_and_folds_resolve_as_in_systemd() -> None:
    # The skipped hour moves forward by an hour, so times keep their order.
    assert parse_time("2026-03-29 01:59", tz=BERLIN) == utc_ns(2026, 3, 29, 0, 59)
    assert parse_time("2026-03-29 02:00", tz=BERLIN) == utc_ns(2026, 3, 29, 1)
    assert parse_time("2026-03-29 02:30", tz=BERLIN) == utc_ns(2026, 3, 29, 1, 30)
    assert parse_time("2026-03-29 03:00", tz=BERLIN) == utc_ns(2026, 3, 29, 1)
    # The repeated hour: the second (standard time) in Berlin, the first in New York.
    assert parse_time("2026-10-25 02:30", tz=BERLIN) == utc_ns(2026, 10, 25, 1, 30)
    assert parse_time("2026-10-25 02:30 CEST", tz=BERLIN) == utc_ns(2026, 10, 25, 0, 30)
    new_york = ZoneInfo("America/New_York")
    assert parse_time("2026-11-01 01:30", tz=new_york) == utc_ns(2026, 11, 1, 5, 30)
    assert parse_time("2026-11-01 01:30 est", tz=new_york) == utc_ns(2026, 11, 1, 6, 30)


def test_today_is_the_local_date_not_the_utc_date() -> None:
    late = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)  # already the 28th in Berlin
    assert parse_time("today", now=late, tz=BERLIN) == utc_ns(2026, 11, 27, 23)


def test_system_zone_by_default(system_zone: str) -> None:
    assert parse_time("2026-11-27 10:00", now=NOW) == utc_ns(2026, 11, 27, 4, 30)
    assert parse_time("today", now=NOW) == utc_ns(2026, 11, 26, 18, 30)
    assert parse_time("2026-11-27 10:00 IST", now=NOW) == utc_ns(2026, 11, 27, 4, 30)
    # A naive `now` is local time too.
    assert parse_time("now", now=datetime(2026, 11, 27, 10)) == utc_ns(2026, 11, 27, 4, 30)


def test_now_defaults_to_the_clock() -> None:
    before = time.time_ns()
    value = parse_time("10s")
    after = time.time_ns()
    assert before - 10 * NS <= value <= after - 10 * NS


BAD_TIMES = [
    "",
    "   ",
    "1",
    "30",
    "1x",
    "h",
    "1.h",
    "-5.h",
    "1H",  # units are case-sensitive, as in systemd
    "NOW",
    "Today",
    "now UTC",
    "1h ago ago",
    "-1h ago",
    "+1h ago",
    "ago",
    "1h-30m",
    "1e3s",
    "now now",
    "yesterday-ish",
    "Fri today",
    "Thu 2026-11-27 10:00",  # 2026-11-27 is a Friday
    "Tue 10:00",
    "2026-13-01",
    "2026-11-32",
    "2026-11-27 24:00",
    "2026-11-27 10:61",
    "2026-11-27 10:00:62",
    "2026-11-27T10:00+25:00",
    "2026-11-27T10:00+01:61",
    "2026-11-27 10",
    "2026-11-27T",
    "2026/11/27",
    "27.11.2026",
    "2026-11-27Z",
    "Nov 27 10:00",
    "1969-12-31 23:59:59",
    "1969-12-31T23:59:59Z",
    "9999-12-31 UTC",
    "-100y",
    "@",
    "@abc",
    "@1e9",
    "@-1",
    "-infinity",
    "+infinity",
    "10:61",
    "99999999999999w",
    "@99999999999999999999",
    "0000-01-01",
    "now Europe/Berlin",
    # Digits and spaces are ASCII, as in C: no fullwidth or Arabic-Indic digits.
    "\uff12\uff10\uff12\uff16-11-27T10:00Z",
    "10:0\u0660Z",
    "10:00\u00a0Z",
    "\u0663\u0660s",
]


@pytest.mark.parametrize("text", BAD_TIMES)
def test_bad_values_are_one_line_usage_errors_with_an_example(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_time(text, now=NOW, tz=UTC)
    message = str(caught.value)
    assert message.startswith(f"invalid time {text!r}")
    assert "e.g. 30s" in message
    assert "\n" not in message


def test_errors_say_why() -> None:
    for text, why in [
        ("30", "seconds need a sign: -30"),
        ("Thu 2026-11-27", "the weekday is not the date's"),
        ("1969-12-31", "before 1970"),
        ("-100y", "before 1970"),
        ("9999-12-31 UTC", "after 9999-12-30"),
        ("@99999999999999999999", "out of range"),
    ]:
        with pytest.raises(UsageError, match=re.escape(f"({why})")):
            parse_time(text, now=NOW, tz=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", 30 * DAY),
        ("1h30m", HOUR + 30 * MINUTE),
        ("2 weeks", 2 * WEEK),
        ("1.5s", NS * 3 // 2),
        ("1M", MONTH),
        ("1m", MINUTE),
        ("1y", YEAR),
        ("5µs", 5_000),
        ("7ns", 7),
    ],
)
def test_parse_duration(text: str, expected: int) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "-1h", "1h ago", "today", "30", "1h 30", "1H", "300y"])
def test_bad_duration(text: str) -> None:
    with pytest.raises(UsageError, match=r"^invalid duration"):
        parse_duration(text)


# --- the oracles: systemd-analyze and journalctl ----------------------------

ZONES = (
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",  # summer time is 30 minutes
    "America/Havana",  # summer time starts at midnight: 2026-03-08 has no 00:00
)


@pytest.fixture(scope="module")
def systemd() -> None:
    """systemd-analyze, journalctl and systemd-journal-remote (Debian 12: systemd 252)."""
    if not shutil.which("systemd-analyze") or not journal_remote():
        unavailable(
            "needs systemd-analyze, journalctl and systemd-journal-remote "
            "(tests/install-packages.sh journal installs them)"
        )


def journal_remote() -> str | None:
    found = [
        p
        for p in ("/usr/lib/systemd", "/lib/systemd")
        if Path(p, "systemd-journal-remote").exists()
    ]
    return str(Path(found[0], "systemd-journal-remote")) if found else None


def systemd_analyze(value: str, zone: str) -> tuple[int, int | None, int]:
    """(the clock before, what `systemd-analyze timestamp` makes of value in
    nanoseconds or None where it refuses it, the clock after).  One process a
    value: glibc's mktime remembers the offset it found last."""
    before = time.time_ns()
    done = subprocess.run(
        ["systemd-analyze", "timestamp", "--", value],
        env={**os.environ, "TZ": zone, "LC_ALL": "C.UTF-8"},
        capture_output=True,
        text=True,
    )
    after = time.time_ns()
    found = re.search(r"UNIX seconds: @(\d+)(?:\.(\d{6}))?", done.stdout)
    if done.returncode != 0 or found is None:
        assert "Failed to parse" in done.stderr, done.stderr
        return before, None, after
    return before, int(found[1]) * NS + int(found[2] or 0) * 1000, after


@contextmanager
def local_zone(zone: str) -> Iterator[None]:
    """The process's zone ($TZ) is zone inside."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


def kextlog(value: str, now_ns: int, tz: tzinfo | None = None) -> int | None:
    """parse_time(value) at now_ns, or None where it refuses value."""
    now = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=now_ns // 1000)
    try:
        return parse_time(value, now=now, tz=tz)
    except UsageError:
        return None


def disagreement(value: str, zone: str, before: int, want: int | None, after: int) -> str | None:
    """What kextlog makes of value differently from systemd (which read it
    between before and after), in zone; None when they agree.  kextlog
    keeps nanoseconds where systemd rounds each number it reads down to
    microseconds, and ends at the store's last nanosecond."""
    with local_zone(zone):
        low, high = kextlog(value, before), kextlog(value, after)
    named = kextlog(value, before, tz=ZoneInfo(zone))
    if named != low:
        return f"{value!r} in {zone}: ZoneInfo gives {named}, $TZ {low}"
    if want is None:
        return (
            None
            if low is None and high is None
            else f"{value!r} in {zone}: systemd refuses it, kextlog gives {low}"
        )
    if low is None or high is None:
        return f"{value!r} in {zone}: systemd gives {want}, kextlog refuses it"
    if want > INT64:
        return (
            None
            if low == high == INT64
            else f"{value!r} in {zone}: past the store, kextlog gives {low}"
        )
    # systemd drops what is below a microsecond of each number it reads.
    slack = 1000 * max(1, len(re.findall(r"[0-9.]+", value)))
    if not low - slack < want < high + 1000:
        return f"{value!r} in {zone}: systemd gives {want}, kextlog {low}..{high}"
    return None


@cache
def transitions(zone: str, year: int) -> list[tuple[datetime, int]]:
    """The wall clock just before each change of zone's UTC offset in year
    (naive), and the change in seconds."""
    tz = ZoneInfo(zone)
    found = []
    start = datetime(year, 1, 1, tzinfo=UTC)
    previous = start.astimezone(tz).utcoffset()
    for minutes in range(30, 366 * 24 * 60, 30):
        moment = (start + timedelta(minutes=minutes)).astimezone(tz)
        if moment.utcoffset() != previous:
            assert previous is not None and moment.utcoffset() is not None
            change = int((moment.utcoffset() - previous).total_seconds())  # type: ignore[operator]
            found.append((moment.replace(tzinfo=None) - timedelta(seconds=change), change))
            previous = moment.utcoffset()
    return found


@cache
def abbreviations(zone: str) -> set[str]:
    """zone's names in January and July, but those that also name a zone (CET,
    EST): systemd-analyze 252 refuses every zone name (see NAMED)."""
    tz = ZoneInfo(zone)
    names = {datetime(2026, month, 15, 12, tzinfo=tz).tzname() or "" for month in (1, 7)}
    return {name for name in names if not Path("/usr/share/zoneinfo", name).is_file()}


FORMS = [
    "now", "today", "yesterday", "tomorrow", "today UTC", "yesterday UTC", "tomorrow utc",
    "-30", "+30", "30 ago", "30 left", "-1h30min", "+5min", "5min ago", "2 days left",
    "-1M", "1 month ago", "-2 months", "-1y", "1 year ago", "-1.5h", "-.5h", "-5s+3s",
    "-+5s", "5 3s ago", "5µs ago", "-1 week", "-2weeks 3days", "-10msec", "-1hr",
    "@0", "@1795774956", "@1795774956.5", "@1795774956.1234565", "@1h", "@ 5", "@5 s",
    "@infinity", "2026-11-27", "2026-11-27 10:00", "2026-11-27 10:00:30", "2026-11-27 10:00:30.5",
    "2026-11-27 10:00:30.123456789", "2026-11-27 10:00:00.9999995", "26-11-27", "26-11-27 10:00",
    "99-11-27 10:00:30", "70-01-02", "2026-1-5", "2026-11-27 1:2:3", "2026-11-2710:00",
    "2026-11-27   10:00", "2026-11- 27", "2026-02-30", "2026-04-31 10:00", "2026-11-27 10:00:60",
    "2026-11-27 10:00:61", "Nov 27 10:00:00", "november 27 10:00:00.25", "Dec 31 23:59:59",
    "Fri 2026-11-27", "Friday 2026-11-27 10:00", "FRI 2026-11-27 10:00", "fri  2026-11-27",
    "10:00", "10:00:30", "00:00", "23:59:59.999", "9:5", "2026-11-27 10:00 UTC",
    "2026-11-27 10:00 utc", "Fri 2026-11-27 10:00:30.5 UTC", "10:00 UTC", "26-11-27 UTC",
    "1970-01-01 00:00 UTC", "2262-04-11 23:47:16 UTC", "2262-04-12 UTC",
    "9999-12-30 23:59:59 UTC",
    # refused by both
    "30", "1H", "NOW", "Today", "now UTC", "-1h ago", "+1h ago", "Thu 2026-11-27 10:00",
    "1969-12-31 23:59:59 UTC", "9999-12-31 UTC", "@-1", "-5.h", "10:00:62", "Nov 27 10:00",
    "2026-13-01", "2026-11-27 24:00", "yesterday-ish", "ago", "5 mnths ago", "2026/11/27",
    "-infinity", "+infinity", "Fri today", "-1000y", "2026-11-27 10:00:00.",
    "2026-11-27 10:00:00.x",
]  # fmt: skip


def forms_of(zone: str) -> list[str]:
    """FORMS, then wall times around each offset change of 2026 in zone, with
    and without an abbreviation, and the local zone's abbreviations."""
    values = list(FORMS)
    for before, change in transitions(zone, 2026):
        size = abs(change)
        for shift in (
            -size - 60,
            -size,
            -size // 2,
            -1,
            0,
            1,
            size // 2,
            size - 1,
            size,
            size + 60,
        ):
            values.append(f"{before + timedelta(seconds=shift):%Y-%m-%d %H:%M:%S}")
        middle = (
            f"{before + timedelta(seconds=size // 2 if change > 0 else -size // 2):%Y-%m-%d %H:%M}"
        )
        values += [f"{middle} {name}" for name in abbreviations(zone)]
        values.append(f"{before:%Y-%m-%d}")  # midnight of the day of the change
    for name in abbreviations(zone):
        for day in ("2026-01-15 10:00", "2026-07-15 10:00:30.5"):
            values += [f"{day} {name}", f"{day} {name.lower()}"]
    return values


@pytest.mark.parametrize("zone", ZONES)
def test_times_read_as_systemd_analyze_reads_them(systemd: None, zone: str) -> None:
    values = forms_of(zone)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(systemd_analyze, values, [zone] * len(values)))
    assert sum(want is not None for _, want, _ in answers) > len(values) // 2
    problems = [
        disagreement(value, zone, *answer) for value, answer in zip(values, answers, strict=True)
    ]
    assert [problem for problem in problems if problem] == []


# kextlog's extensions: systemd refuses the first, and reads the second as kextlog reads the first.
EXTENSIONS = [
    ("30s", "-30s"),
    ("1h30m", "-1h30m"),
    ("2 days", "-2 days"),
    ("90mins", "-90min"),
    ("1.5h", "-1.5h"),
    ("1M", "-1M"),
    (" -1h ", "-1h"),
    ("2026-11-27 10:00 ", "2026-11-27 10:00"),
    ("2026-11-27T10:00", "2026-11-27 10:00"),
    ("2026-03-29T02:30", "2026-03-29 02:30"),
    ("2026-11-27T10:00:00Z", "2026-11-27 10:00:00 UTC"),
    ("2026-11-27t10:00z", "2026-11-27 10:00 UTC"),
    ("2026-11-27T10:00:00+01:00", "2026-11-27 09:00:00 UTC"),
    ("2026-11-27T10:00:00-05:30", "2026-11-27 15:30:00 UTC"),
    ("2026-11-27T10:00:00.25+0530", "2026-11-27 04:30:00.25 UTC"),
    ("2026-11-27 10:00:00,25", "2026-11-27 10:00:00.25"),
    ("10:00Z", "10:00 UTC"),
]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
@pytest.mark.parametrize(("extension", "spelled"), EXTENSIONS)
def test_extensions_are_what_systemd_refuses(
    systemd: None, zone: str, extension: str, spelled: str
) -> None:
    assert systemd_analyze(extension, zone)[1] is None
    assert disagreement(spelled, zone, *systemd_analyze(spelled, zone)) is None
    with local_zone(zone):
        assert parse_time(extension, now=NOW) == parse_time(spelled, now=NOW)


# systemd-analyze 252 refuses every zone name (its own bug, fixed in 257);
# journalctl's --since, the same parse_timestamp, takes them.
NAMED = [
    "2026-07-01 10:00 Europe/Berlin",
    "2026-07-01 10:00:30.5 Asia/Kolkata",
    "2026-03-29 02:30 Europe/Berlin",
    "2026-10-25 02:30 Europe/Berlin",
    "2026-11-01 01:30 America/New_York",
    "Fri 2026-11-27 10:00 Australia/Lord_Howe",
    "26-11-27 America/Havana",
    "2026-03-08 America/Havana",
    "today Asia/Kolkata",
    "2026-07-01 10:00 CET",  # a zone named by its own abbreviation: standard time
    "2026-01-01 10:00 EST",
    "2026-07-01 10:00 EST5EDT",
    "now Europe/Berlin",
    "-1h Europe/Berlin",
    "@5 Europe/Berlin",
    "Thu 2026-11-27 Europe/Berlin",
]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
def test_zone_names_select_as_in_journalctl(systemd: None, tmp_path: Path, zone: str) -> None:
    with local_zone(zone):
        wanted = {value: kextlog(value, time.time_ns()) for value in NAMED}
    assert sum(value is None for value in wanted.values()) == 4
    # A journal with a record at each expected time and a microsecond before
    # it: --since selects from exactly there only if it reads the same time.
    stamps = sorted(
        {us for ns in wanted.values() if ns is not None for us in (ns // 1000 - 1, ns // 1000)}
    )
    export = "".join(
        f"__REALTIME_TIMESTAMP={us}\n__MONOTONIC_TIMESTAMP={i + 1}\n"
        f"_BOOT_ID=0123456789abcdef0123456789abcdef\nMESSAGE={us}\n\n"
        for i, us in enumerate(stamps)
    )
    journal = tmp_path / "named.journal"
    remote = journal_remote()
    assert remote is not None
    subprocess.run(
        [remote, f"--output={journal}", "-"],
        input=export,
        text=True,
        check=True,
        capture_output=True,
    )
    for value, ns in wanted.items():
        shown = subprocess.run(
            ["journalctl", "--file", str(journal), "--since", value, "-o", "cat", "--no-pager"],
            env={**os.environ, "TZ": zone},
            capture_output=True,
            text=True,
        )
        if ns is None:
            assert "Failed to parse timestamp" in shown.stderr, (value, shown.stdout)
        else:
            assert shown.stdout.split("\n", 1)[0] == str(ns // 1000), (value, zone, shown.stderr)


# Generated spellings, each read by a new systemd-analyze.
@st.composite
def spellings(draw: st.DrawFn) -> tuple[str, str]:
    zone = draw(st.sampled_from(ZONES))
    near = [before for before, _ in transitions(zone, 2026)] or [datetime(2026, 6, 1)]
    moment = draw(
        st.sampled_from(near).flatmap(
            lambda at: st.integers(-7200, 7200).map(lambda s: at + timedelta(seconds=s))
        )
        | st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2262, 1, 1))
    )
    pad = draw(st.sampled_from(["{:02d}", "{:d}"]))
    year = (
        f"{moment.year % 100:02d}"
        if draw(st.booleans()) and 1969 < moment.year < 2069
        else str(moment.year)
    )
    day = f"{year}-{pad.format(moment.month)}-{pad.format(moment.day)}"
    if draw(st.booleans()):
        day = f"{moment:%b} {moment.day}" if draw(st.booleans()) else ""
    second = draw(st.sampled_from([moment.second, moment.second, 60, 61, None]))
    clock = f"{pad.format(moment.hour)}:{moment.minute:02d}"
    if second is not None:
        digits = draw(st.integers(0, 9))
        clock += f":{second:02d}" + (
            f".{moment.microsecond:06d}987"[: digits + 1] if digits else ""
        )
    text = day + draw(st.sampled_from([" ", "  ", "\t", ""])) + clock if day else clock
    if draw(st.booleans()) and text[0].isdigit():
        text = text.split(" ")[0] if " " in text and draw(st.booleans()) else text
    if draw(st.booleans()):
        weekday = draw(
            st.sampled_from(["Sun", "mon", "TUE", "Wednesday", "thu", "Fri", "saturday"])
        )
        text = f"{weekday} {text}"
    suffix = draw(
        st.sampled_from(["", "", " UTC", " utc", *(f" {name}" for name in abbreviations(zone))])
    )
    return text + suffix, zone


@st.composite
def relative_spellings(draw: st.DrawFn) -> tuple[str, str]:
    units = ["", "s", "sec", "seconds", "min", "m", "h", "hr", "hours", "d", "days", "w", "weeks",
             "M", "months", "y", "year", "ms", "msec", "us", "µs", "usec"]  # fmt: skip
    parts = draw(
        st.lists(
            st.tuples(
                st.integers(0, 99),
                st.sampled_from(["", ".5", ".25", ".125"]),
                st.sampled_from(["", " "]),
                st.sampled_from(units),
            ),
            min_size=1,
            max_size=3,
        )
    )
    body = " ".join(f"{amount}{fraction}{gap}{unit}" for amount, fraction, gap, unit in parts)
    form = draw(st.sampled_from(["-{}", "+{}", "{} ago", "{} left", "@{}", "{}"]))
    return form.format(body), draw(st.sampled_from(ZONES))


@given(spellings() | relative_spellings())
def test_generated_times_read_as_systemd_analyze_reads_them(
    systemd: None, spelled: tuple[str, str]
) -> None:
    value, zone = spelled
    answer = systemd_analyze(value, zone)
    extension = (
        answer[1] is None and kextlog(value, answer[0]) is not None and value[0] not in "-+@"
    )
    if extension:  # a bare duration: kextlog's, as the same with a minus
        assert disagreement(f"-{value}", zone, *systemd_analyze(f"-{value}", zone)) is None
    else:
        assert disagreement(value, zone, *answer) is None


# --- properties -------------------------------------------------------------

unit_names = st.sampled_from(sorted(UNITS))
components = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=1_000),
        st.sampled_from(["", " "]),
        unit_names,
        st.sampled_from(["", " ", "  "]),
    ),
    min_size=1,
    max_size=6,
)


def spell(parts: list[tuple[int, str, str, str]]) -> tuple[str, int]:
    text = "".join(f"{amount}{gap}{unit}{after}" for amount, gap, unit, after in parts)
    return text.strip(), sum(amount * UNITS[unit] for amount, _, unit, _ in parts)


@given(components, st.sampled_from(["bare", "minus", "plus", "ago", "left"]))
def test_relative_grammar(parts: list[tuple[int, str, str, str]], form: str) -> None:
    body, duration = spell(parts)
    text = {"bare": body, "minus": f"-{body}", "plus": f"+{body}", "ago": f"{body} ago"}.get(
        form, f"{body} left"
    )
    expected = N + duration if form in ("plus", "left") else N - duration
    if 0 <= expected <= INT64:
        assert parse_time(text, now=NOW) == expected
    elif expected < 0:
        with pytest.raises(UsageError, match="before 1970"):
            parse_time(text, now=NOW)
    if duration <= INT64:
        assert parse_duration(body) == duration
    else:
        with pytest.raises(UsageError, match="out of range"):
            parse_duration(body)


@given(components, st.integers(min_value=0, max_value=999))
def test_fractions_are_exact(parts: list[tuple[int, str, str, str]], thousandths: int) -> None:
    body, duration = spell(parts)
    amount = Decimal(thousandths) / 1000
    expected = duration + int(amount * 3600 * NS)
    if expected <= INT64:
        assert parse_duration(f"{body} {amount}h") == expected


offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(2262, 1, 1),
        timezones=st.just(UTC) | offsets,
    ),
    st.sampled_from(["T", " "]),
    st.integers(min_value=0, max_value=999),
)
def test_iso_round_trip(moment: datetime, separator: str, extra_ns: int) -> None:
    text = moment.isoformat(sep=separator, timespec="microseconds")
    assert parse_time(text, now=NOW) == to_ns(moment)
    # Nine fraction digits: nanoseconds are kept exactly.
    head, zone = text[:-6], text[-6:]  # the offset is always +HH:MM here
    assert parse_time(f"{head}{extra_ns:03d}{zone}", now=NOW) == to_ns(moment) + extra_ns
    if moment.utcoffset() == timedelta(0):
        assert parse_time(head + "Z", now=NOW) == to_ns(moment)


@given(st.integers(min_value=0, max_value=9 * 10**9), st.integers(0, 999_999_999))
def test_epoch(seconds: int, nanos: int) -> None:
    assert parse_time(f"@{seconds}") == seconds * NS
    assert parse_time(f"@{seconds}.{nanos:09d}") == seconds * NS + nanos


@given(st.text(max_size=40) | st.text(alphabet="0123456789 .:-+@TZhmsdwagoMUC", max_size=30))
def test_anything_else_is_a_usage_error_or_a_time(text: str) -> None:
    try:
        value = parse_time(text, now=NOW, tz=UTC)
    except UsageError as error:
        assert "\n" not in str(error)
    else:
        assert 0 <= value <= INT64


@given(st.text(max_size=40) | st.text(alphabet="0123456789 .dhmswagoMy", max_size=40))
def test_any_duration_is_one_the_store_holds_or_a_usage_error(text: str) -> None:
    try:
        duration = parse_duration(text)
    except UsageError as error:
        assert "\n" not in str(error)
    else:
        assert 0 <= duration <= INT64


@given(st.integers(min_value=2**63 // WEEK + 1, max_value=10**30))
def test_durations_beyond_the_store_are_refused(weeks: int) -> None:
    # A fuzzer's finding: the value went on unchecked to a 64-bit column.
    with pytest.raises(UsageError, match="out of range"):
        parse_duration(f"{weeks}w")


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("2026-11-27 10:00:30.123456", 1_000),  # as short and short-iso show times
        ("Nov 27 10:00:30.123456", 1_000),
        ("2026-11-27T10:00:30.123456+00:00", 1_000),
        ("2026-11-27 10:00:30.5", 100_000_000),
        ("2026-11-27 10:00:30.123456789", 1),
        ("2026-11-27 10:00:30.1234567891", 1),  # digits past nanoseconds are cut
        ("2026-11-27 10:00:30", NS),
        ("10:00:30 UTC", NS),
        ("Fri 2026-11-27 10:00:30", NS),
        ("2026-11-27T10:00:30Z", NS),
        ("2026-11-27 10:00", 1),  # no seconds written: the instant itself
        ("2026-11-27", 1),
        ("today", 1),
        ("@1795774956.5", 1),
        ("-1h", 1),
        ("30s", 1),
    ],
)
def test_until_covers_the_unit_of_the_last_digit(text: str, span: int) -> None:
    """--until of a displayed time includes its record: the store keeps
    nanoseconds, the display microseconds or seconds (as journalctl)."""
    start = parse_time(text, now=NOW, tz=UTC)
    assert parse_until(text, now=NOW, tz=UTC) == start + span - 1
