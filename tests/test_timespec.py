"""--since / --until values: every accepted form, every error, and properties
of the relative grammar."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kextlog_store.errors import UsageError
from kextlog_store.timespec import UNITS, parse_duration, parse_time, to_ns

UTC = timezone.utc
NS = 1_000_000_000
MINUTE, HOUR, DAY, WEEK = 60 * NS, 3600 * NS, 86400 * NS, 7 * 86400 * NS
NOW = datetime(2026, 11, 27, 10, 22, 36, 123456, tzinfo=UTC)
N = to_ns(NOW)


def utc_ns(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return to_ns(datetime(year, month, day, hour, minute, second, tzinfo=UTC))


def berlin() -> tzinfo:
    zoneinfo = pytest.importorskip("zoneinfo")
    try:
        return zoneinfo.ZoneInfo("Europe/Berlin")  # type: ignore[no-any-return]
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no time zone database")


def test_to_ns_is_exact() -> None:
    assert to_ns(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert to_ns(datetime(2026, 11, 27, 10, 22, 36, 123456, tzinfo=UTC)) == 1795774956123456000
    assert to_ns(datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)) == -1000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", N - 30 * NS),
        ("15m", N - 15 * MINUTE),
        ("1h", N - HOUR),
        ("2d", N - 2 * DAY),
        ("1w", N - WEEK),
        ("1h30m", N - HOUR - 30 * MINUTE),
        ("1h 30m", N - HOUR - 30 * MINUTE),
        ("1 hour 30 minutes", N - HOUR - 30 * MINUTE),
        ("2hours", N - 2 * HOUR),
        ("90 min", N - 90 * MINUTE),
        ("90mins", N - 90 * MINUTE),
        ("45 sec", N - 45 * NS),
        ("1 day", N - DAY),
        ("3 weeks", N - 3 * WEEK),
        ("-1h", N - HOUR),
        ("- 1h", N - HOUR),
        ("1h ago", N - HOUR),
        ("1h30m ago", N - HOUR - 30 * MINUTE),
        ("2 days ago", N - 2 * DAY),
        ("+1h", N + HOUR),
        ("1.5h", N - HOUR - 30 * MINUTE),
        ("0.25d", N - 6 * HOUR),
        ("500ms", N - 500_000_000),
        ("250us", N - 250_000),
        ("7ns", N - 7),
        ("1H", N - HOUR),
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
        ("NOW", N),
        ("today", utc_ns(2026, 11, 27)),
        ("Today", utc_ns(2026, 11, 27)),
        ("yesterday", utc_ns(2026, 11, 26)),
        ("tomorrow", utc_ns(2026, 11, 28)),
        ("2026-11-27", utc_ns(2026, 11, 27)),
        ("2026-11-27 10:00", utc_ns(2026, 11, 27, 10)),
        ("2026-11-27  10:00:30", utc_ns(2026, 11, 27, 10, 0, 30)),
        ("2026-11-27T10:00:00Z", utc_ns(2026, 11, 27, 10)),
        ("2026-11-27t10:00z", utc_ns(2026, 11, 27, 10)),
        ("2026-11-27 10:00 UTC", utc_ns(2026, 11, 27, 10)),
        ("2026-11-27T10:00:00.123456+01:00", utc_ns(2026, 11, 27, 9) + 123456000),
        ("2026-11-27T10:00:00.5+0100", utc_ns(2026, 11, 27, 9) + NS // 2),
        ("2026-11-27T10:00:00+01", utc_ns(2026, 11, 27, 9)),
        ("2026-11-27T10:00:00-05:30", utc_ns(2026, 11, 27, 15, 30)),
        ("2026-11-27T10:00:00.123456789Z", utc_ns(2026, 11, 27, 10) + 123456789),
        ("2026-11-27T10:00:00.1234567891Z", utc_ns(2026, 11, 27, 10) + 123456789),
        ("2026-11-27 10:00:00,25", utc_ns(2026, 11, 27, 10) + NS // 4),
        ("10:00", utc_ns(2026, 11, 27, 10)),
        ("23:59:59.5", utc_ns(2026, 11, 27, 23, 59, 59) + NS // 2),
        ("@0", 0),
        ("@1795774956", 1795774956 * NS),
        ("@1795774956.5", 1795774956 * NS + NS // 2),
        ("@1795774956.123456789", 1795774956123456789),
        ("@-1.25", -NS - NS // 4),
        ("@+10", 10 * NS),
    ],
)
def test_absolute_and_keywords_in_utc(text: str, expected: int) -> None:
    assert parse_time(text, now=NOW, tz=UTC) == expected


def test_local_time_uses_the_given_zone() -> None:
    zone = berlin()
    assert parse_time("2026-11-27 10:00", now=NOW, tz=zone) == utc_ns(2026, 11, 27, 9)
    assert parse_time("2026-11-27", now=NOW, tz=zone) == utc_ns(2026, 11, 26, 23)
    assert parse_time("today", now=NOW, tz=zone) == utc_ns(2026, 11, 26, 23)
    assert parse_time("2026-07-01 12:00", now=NOW, tz=zone) == utc_ns(2026, 7, 1, 10)  # summer
    assert parse_time("10:00", now=NOW, tz=zone) == utc_ns(2026, 11, 27, 9)
    # A value with a zone ignores the local one.
    assert parse_time("2026-11-27T10:00Z", now=NOW, tz=zone) == utc_ns(2026, 11, 27, 10)
    assert parse_time("10:00Z", now=NOW, tz=zone) == utc_ns(2026, 11, 27, 10)
    # Relative values do not depend on the zone.
    assert parse_time("1h", now=NOW, tz=zone) == N - HOUR


def test_days_across_a_daylight_saving_change() -> None:
    zone = berlin()
    # Summer time began on 2026-03-29 at 02:00 local: that day had 23 hours.
    noon = datetime(2026, 3, 29, 12, tzinfo=zone)
    assert parse_time("today", now=noon, tz=zone) == utc_ns(2026, 3, 28, 23)
    assert parse_time("yesterday", now=noon, tz=zone) == utc_ns(2026, 3, 27, 23)
    assert parse_time("tomorrow", now=noon, tz=zone) == utc_ns(2026, 3, 29, 22)


def test_today_is_the_local_date_not_the_utc_date() -> None:
    zone = berlin()
    late = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)  # already the 28th in Berlin
    assert parse_time("today", now=late, tz=zone) == utc_ns(2026, 11, 27, 23)


def test_system_zone_by_default(system_zone: str) -> None:
    assert parse_time("2026-11-27 10:00", now=NOW) == utc_ns(2026, 11, 27, 4, 30)
    assert parse_time("today", now=NOW) == utc_ns(2026, 11, 26, 18, 30)
    # A naive `now` is local time too.
    assert parse_time("now", now=datetime(2026, 11, 27, 10)) == utc_ns(2026, 11, 27, 4, 30)


def test_now_defaults_to_the_clock() -> None:
    before = time.time_ns()
    value = parse_time("10s")
    after = time.time_ns()
    assert before - 10 * NS <= value <= after - 10 * NS


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "1",
        "30",
        "1x",
        "h",
        "1.h",
        "1h ago ago",
        "-1h ago",
        "+1h ago",
        "ago",
        "1h-30m",
        "1e3s",
        "now now",
        "yesterday-ish",
        "1 month",
        "2026-13-01",
        "2026-02-30",
        "2026-11-27 25:00",
        "2026-11-27 10:61",
        "2026-11-27T10:00+25:00",
        "2026-11-27T10:00+01:61",
        "2026-11-27 10",
        "2026-11-27T",
        "2026/11/27",
        "27.11.2026",
        "2026-11-27Z",
        "@",
        "@abc",
        "@1e9",
        "10:61",
        "99999999999999w",
        "@99999999999999999999",
        "0000-01-01",
    ],
)
def test_bad_values_are_one_line_usage_errors_with_an_example(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_time(text, now=NOW, tz=UTC)
    message = str(caught.value)
    assert message.startswith(f"invalid time {text!r}")
    assert "e.g. 30s" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", 30 * DAY),
        ("1h30m", HOUR + 30 * MINUTE),
        ("2 weeks", 2 * WEEK),
        ("1.5s", NS * 3 // 2),
    ],
)
def test_parse_duration(text: str, expected: int) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "-1h", "1h ago", "today", "30"])
def test_bad_duration(text: str) -> None:
    with pytest.raises(UsageError, match=r"^invalid duration"):
        parse_duration(text)


# --- properties -------------------------------------------------------------

unit_names = st.sampled_from(sorted(UNITS))
components = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=1_000),  # six of them stay within 64 bits
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


@given(components, st.sampled_from(["bare", "minus", "plus", "ago"]), st.booleans())
def test_relative_grammar(parts: list[tuple[int, str, str, str]], form: str, upper: bool) -> None:
    body, duration = spell(parts)
    text = {"bare": body, "minus": f"-{body}", "plus": f"+{body}", "ago": f"{body} ago"}[form]
    if upper:
        text = text.upper()
    expected = N + duration if form == "plus" else N - duration
    assert parse_time(text, now=NOW) == expected
    assert parse_duration(body) == duration


@given(components, st.integers(min_value=0, max_value=999))
def test_fractions_are_exact(parts: list[tuple[int, str, str, str]], thousandths: int) -> None:
    body, duration = spell(parts)
    amount = Decimal(thousandths) / 1000
    assert parse_duration(f"{body} {amount}h") == duration + int(amount * 3600 * NS)


offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1),
        max_value=datetime(2200, 1, 1),
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


@given(st.integers(min_value=-(9 * 10**9), max_value=9 * 10**9), st.integers(0, 999_999_999))
def test_epoch(seconds: int, nanos: int) -> None:
    assert parse_time(f"@{seconds}") == seconds * NS
    expected = seconds * NS + (nanos if seconds >= 0 else -nanos)
    assert parse_time(f"@{seconds}.{nanos:09d}") == expected


@given(st.text(max_size=40) | st.text(alphabet="0123456789 .:-+@TZhmsdwago", max_size=30))
def test_anything_else_is_a_usage_error_or_a_time(text: str) -> None:
    try:
        value = parse_time(text, now=NOW, tz=UTC)
    except UsageError as error:
        assert "\n" not in str(error)
    else:
        assert isinstance(value, int)


@given(st.text(max_size=40) | st.text(alphabet="0123456789 .dhmswago", max_size=40))
def test_any_duration_is_one_the_store_holds_or_a_usage_error(text: str) -> None:
    try:
        duration = parse_duration(text)
    except UsageError as error:
        assert "\n" not in str(error)
    else:
        assert 0 <= duration <= 2**63 - 1


@given(st.integers(min_value=2**63 // WEEK + 1, max_value=10**30))
def test_durations_beyond_the_store_are_refused(weeks: int) -> None:
    # A fuzzer's finding: the value went on unchecked to a 64-bit column.
    with pytest.raises(UsageError, match="out of range"):
        parse_duration(f"{weeks}w")
