"""Time values of --since / --until, and the durations of prune, --bucket and retention.

A time becomes an integer: nanoseconds since the epoch, UTC, the unit of the
store's time_ns column, so comparisons are exact.  Times mean what they mean
to journalctl: the grammar is systemd 252's parse_timestamp (systemd.time(7)),
checked against ``systemd-analyze timestamp`` and journalctl in the tests:

- ``now``, ``today``, ``yesterday``, ``tomorrow`` (midnight);
- a date and time: ``2026-11-27 10:00:30.5``, ``2026-11-27 10:00``,
  ``2026-11-27`` (midnight), ``26-11-27`` (years 69..99 are 19xx), a time of
  today ``10:00``, ``10:00:30``, and ``Nov 27 10:00:30`` (this year), as
  glibc's strptime reads them: one-digit fields, any spaces between date and
  time, seconds up to 61, and days past the month's end roll over
  (``2026-02-30`` is March 2);
- a weekday first, in English, any case: ``Fri 2026-11-27 10:00``; it must
  be the date's weekday (of today without a date);
- a zone last: ``UTC`` (any case), the local zone's abbreviations
  (``CET``/``CEST`` in Europe/Berlin, any case), or an IANA zone name such as
  ``Europe/Berlin``; dates, times and today/yesterday/tomorrow take one, as
  in ``today UTC``; an abbreviation also says whether summer time is meant;
- relative: ``-1h30min``, ``+5min``, ``"5min ago"``, ``"5min left"``; a
  number without a unit is seconds (``-30``, ``"30 ago"``).  Units: us
  (usec, µs), ms (msec), s (sec, second(s)), m (min, minute(s)), h (hr,
  hour(s)), d (day(s)), w (week(s)), M (month(s): 30.44 days) and y
  (year(s): 365.25 days); they are case-sensitive, so ``M`` is a month and
  ``m`` a minute; fractions such as ``1.5h``;
- ``@EPOCH``: seconds since 1970, with fractions or units (``@1795774956.5``).

Local times resolve as glibc's mktime resolves them for systemd in a process
of its own: a time in the hour that a change to summer time skips moves
forward by that hour (``2026-03-29 02:30`` in Europe/Berlin is 03:30 CEST),
and a time that a change back to standard time repeats is the occurrence
that the search of mktime meets first (in Europe/Berlin the later, in
America/New_York the earlier).  Times before 1970 or after 9999-12-30 are
refused, as in systemd; times past 2262-04-11, where the store's 64-bit
nanoseconds end, select as that time.

kextlog also takes what systemd refuses but people write:

- a bare duration, that long ago: ``30s``, ``1h30m``, ``"2 days"`` (as
  ``-30s``; every number needs a unit here, so ``30`` is refused);
- ISO 8601: ``2026-11-27T10:00``, ``2026-11-27T10:00:00Z``,
  ``2026-11-27T10:00:00.123456789+01:00`` (offsets ``Z``, ``UTC``,
  ``+01:00``, ``+0100``, ``+01``; a comma before fractions), and a time of
  today with a zone, ``10:00Z``;
- nanoseconds: fractions keep nine digits (systemd rounds to microseconds)
  and the units ns (nsec), and the plurals mins, secs, hrs, msecs, usecs;
- whitespace around the value.

--until reads a time with parse_until: written to the second, or to a
fraction of one, it ends where that unit ends, so a time as kextlog shows it
(microseconds) selects its record though the store keeps nanoseconds.

Durations (parse_duration) take the same units and need one after every
number: ``--older-than 30`` could mean days, and as seconds it would remove
nearly everything.
"""

from __future__ import annotations

import calendar
import re
import string
import time
import zoneinfo
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import NamedTuple

from .errors import UsageError
from .records import NS_PER_SECOND

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_INT64 = 2**63 - 1
_SYSTEMD_LAST_NS = 253_402_214_399_999_999_999  # Thu 9999-12-30 23:59:59.999999999 UTC
_SYSTEMD_INFINITY_NS = (2**64 - 1) * 1000  # parse_sec's limit, in microseconds there

EXAMPLES = (
    "30s, -1h30min, '2h ago', 2026-11-27, '2026-11-27 10:00', 2026-11-27T10:00:00Z,"
    " 'today UTC', @1795774956"
)

_S = NS_PER_SECOND
_UNIT_NAMES: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, ("ns", "nsec", "nsecs", "nanosecond", "nanoseconds")),
    (1_000, ("us", "µs", "usec", "usecs", "microsecond", "microseconds")),
    (1_000_000, ("ms", "msec", "msecs", "millisecond", "milliseconds")),
    (_S, ("s", "sec", "secs", "second", "seconds")),
    (60 * _S, ("m", "min", "mins", "minute", "minutes")),
    (3600 * _S, ("h", "hr", "hrs", "hour", "hours")),
    (86400 * _S, ("d", "day", "days")),
    (7 * 86400 * _S, ("w", "week", "weeks")),
    (2_629_800 * _S, ("M", "month", "months")),
    (31_557_600 * _S, ("y", "year", "years")),
)
UNITS: dict[str, int] = {name: ns for ns, names in _UNIT_NAMES for name in names}

# A component of a duration, as systemd's parse_sec reads it: strtoll's
# digits (a + sign allowed), an optional fraction, then spaces and a unit
# (the longest that matches: systemd's own order of suffixes amounts to it).
_UNIT = "|".join(sorted(UNITS, key=len, reverse=True))
_COMPONENT = re.compile(
    rf"[ \t\n\v\f\r]*(?P<sign>\+?)(?P<int>[0-9]*)(?:\.(?P<frac>[0-9]+))?"
    rf"(?P<gap>[ \t\n\r]*)(?P<unit>{_UNIT})?"
)
_SYSTEMD_SPACE = " \t\n\r"
_C_SPACE = " \t\n\v\f\r"
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)

_WEEKDAYS = (
    ("sunday", 0), ("sun", 0), ("monday", 1), ("mon", 1), ("tuesday", 2), ("tue", 2),
    ("wednesday", 3), ("wed", 3), ("thursday", 4), ("thu", 4), ("friday", 5), ("fri", 5),
    ("saturday", 6), ("sat", 6),
)  # fmt: skip
_MONTHS = tuple(
    (name, number)
    for number in range(1, 13)
    for name in (calendar.month_name[number].lower(), calendar.month_abbr[number].lower())
)
# systemd's strptime formats, in its order; "." after seconds starts a fraction.
_FORMATS = (
    "y-m-d H:M:S", "Y-m-d H:M:S", "b d H:M:S", "y-m-d H:M", "Y-m-d H:M",
    "y-m-d", "Y-m-d", "H:M:S", "H:M",
)  # fmt: skip
_FIELDS = {  # directive: (field, lowest, highest, digits)
    "y": ("year", 0, 99, 2),
    "Y": ("year", 0, 9999, 4),
    "m": ("month", 1, 12, 2),
    "d": ("day", 1, 31, 2),
    "H": ("hour", 0, 23, 2),
    "M": ("minute", 0, 59, 2),
    "S": ("second", 0, 61, 2),
}

_ZONE = r"(?P<zone>z|utc|[-+]\d{2}(?::?\d{2})?)"
_TIME = r"(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d+))?)?"
_ISO = re.compile(
    rf"(?P<year>\d{{4}})-(?P<month>\d{{2}})-(?P<day>\d{{2}})(?:(?:t|\s+){_TIME}\s*{_ZONE}?)?",
    re.IGNORECASE | re.ASCII,
)
_ISO_TIME_OF_DAY = re.compile(rf"{_TIME}\s*{_ZONE}", re.IGNORECASE | re.ASCII)


class _Wall(NamedTuple):
    """A broken-down local time, as struct tm holds it (month 1..12, weekday 0 = Sunday)."""

    year: int
    month: int
    day: int
    hour: int
    minute: int
    second: int
    weekday: int


class _Parsed(NamedTuple):
    """An instant in nanoseconds, and what the last digit written stands for (1: exact)."""

    ns: int
    span: int


class _Instant(NamedTuple):
    """What localtime says of an instant: its wall clock (seconds, as if UTC), DST flag, name."""

    wall: int
    dst: bool
    name: str


class _Zone(NamedTuple):
    """A zone as localtime sees it: UTC seconds to the wall clock there."""

    convert: Callable[[int], _Instant]

    def abbreviations(self, now_s: int) -> tuple[str, str]:
        """Standard and summer-time names, as tzname[] holds them: those of January and
        July of this year (as CPython computes time.tzname on glibc)."""
        year = 31_557_600
        january = now_s // year * year
        samples = [self.convert(january), self.convert(january + year // 2)]
        standard = next((s.name for s in samples if not s.dst), samples[0].name)
        return standard, next((s.name for s in samples if s.dst), standard)

    def wall(self, seconds: int) -> _Wall:
        moment = datetime(1970, 1, 1) + timedelta(seconds=self.convert(seconds).wall)
        return _Wall(*moment.timetuple()[:6], moment.isoweekday() % 7)


def _system_instant(seconds: int) -> _Instant:
    local = time.localtime(seconds)
    return _Instant(calendar.timegm(local), local.tm_isdst > 0, local.tm_zone)


def _zone_of(tz: tzinfo) -> _Zone:
    def convert(seconds: int) -> _Instant:
        moment = (EPOCH + timedelta(seconds=seconds)).astimezone(tz)
        wall = (moment.replace(tzinfo=None) - datetime(1970, 1, 1)) // timedelta(seconds=1)
        return _Instant(wall, bool(moment.dst()), moment.tzname() or "")

    return _Zone(convert)


_SYSTEM = _Zone(_system_instant)
_UTC = _zone_of(timezone.utc)


def parse_time(text: str, *, now: datetime | None = None, tz: tzinfo | None = None) -> int:
    """The instant text names, as UTC nanoseconds since the epoch.

    now: the present (default: the clock); a naive value is in the local zone.
    tz: the local zone for values without one (default: the process's, $TZ).
    Raises UsageError with a one-line message for anything else.
    """
    return _parse(text, now, tz)[0]


def parse_until(text: str, *, now: datetime | None = None, tz: tzinfo | None = None) -> int:
    """The last instant text names, as parse_time's: a time written to the
    second or to a fraction of one covers that whole unit, so a displayed
    time given back selects its record though the store keeps nanoseconds
    (``10:00:30.123456`` ends at .123456999, ``10:00:30`` at .999999999)."""
    start, span = _parse(text, now, tz)
    return min(start + span - 1, _INT64)


def _parse(text: str, now: datetime | None, tz: tzinfo | None) -> tuple[int, int]:
    """parse_time's instant, and the span of the last digit written (1 ns: exact)."""
    value = text.strip(_C_SPACE)
    zone = _SYSTEM if tz is None else _zone_of(tz)
    now_ns = time.time_ns() if now is None else to_ns(_localize(now, tz))
    try:
        result = _systemd(value, now_ns, zone)
        if result is None:
            result = _extension(value, now_ns, zone)
    except (ValueError, OverflowError, OSError) as exc:  # e.g. month 13, a weekday that is not
        raise UsageError(f"invalid time {text!r} ({exc}): expected e.g. {EXAMPLES}") from None
    if result is None:
        hint = " (seconds need a sign: -30)" if value.isdigit() else ""
        raise UsageError(f"invalid time {text!r}{hint}: expected e.g. {EXAMPLES}")
    instant, span = result
    return min(instant, _INT64), span


def parse_duration(text: str) -> int:
    """A length of time such as 30d or 1h30m, in nanoseconds."""
    try:
        duration = _duration(text, default_unit=None)
    except ValueError:
        duration = _INT64 + 1
    if duration is None or duration > _INT64:
        problem = "" if duration is None else " (out of range)"
        raise UsageError(
            f"invalid duration {text!r}{problem}: expected e.g. 30s, 15m, 1h30m, 2d, 1w"
        )
    return duration


def to_ns(moment: datetime) -> int:
    """An aware datetime as nanoseconds since the epoch, exactly."""
    return (moment - EPOCH) // timedelta(microseconds=1) * 1000


# --- systemd's grammar -------------------------------------------------------


def _systemd(text: str, now_ns: int, zone: _Zone) -> _Parsed | None:
    """parse_timestamp: None where systemd refuses the text."""
    space = text.rfind(" ")
    if space >= 0 and not _ends_with_utc(text):
        named = _named_zone(text[space + 1 :])
        if named is not None:
            # A zone named by one of its own abbreviations (CET, EST) also says
            # standard or summer time: systemd parses it as that local zone's.
            if text[space + 1 :] in named.abbreviations(now_ns // _S):
                return _timestamp(text, now_ns, named, with_zone=False)
            return _timestamp(text[:space], now_ns, named, with_zone=True)
    return _timestamp(text, now_ns, zone, with_zone=False)


def _timestamp(text: str, now_ns: int, zone: _Zone, *, with_zone: bool) -> _Parsed | None:
    """parse_timestamp_impl; with_zone: a zone name followed the text (now cut off)."""
    dst = -1
    if not with_zone:
        if text.startswith("@"):
            rest = text[1:].strip(_SYSTEMD_SPACE)
            return _exact(_INT64 if rest == "infinity" else _duration(text[1:], default_unit=_S))
        if text == "now":
            return _exact(now_ns)
        relative = _relative(text)
        if relative is not None:
            body, sign = relative
            duration = _duration(body, default_unit=_S)
            return None if duration is None else _exact(_checked(now_ns + sign * duration))
        if _ends_with_utc(text):
            text, zone, dst = text[:-4], _UTC, 0
        else:
            text, dst = _cut_abbreviation(text, zone.abbreviations(now_ns // _S))
    today = zone.wall(now_ns // _S)
    if text in ("today", "yesterday", "tomorrow"):
        shift = {"today": 0, "yesterday": -1, "tomorrow": 1}[text]
        midnight = today._replace(day=today.day + shift, hour=0, minute=0, second=0)
        return _exact(_at(midnight, 0, dst, zone))
    weekday = -1
    folded = text.translate(_ASCII_LOWER)
    for name, number in _WEEKDAYS:
        if folded.startswith(name) and text[len(name) : len(name) + 1] == " ":
            weekday, text = number, text[len(name) + 1 :]
            break
    for spec in _FORMATS:
        parsed = _strptime(text, spec, today)
        if parsed is None:
            continue
        wall, rest = parsed
        if rest.startswith(".") and spec.endswith("S"):
            if not rest[1:].isdigit() or not rest[1:].isascii():
                return None
            fraction = rest[1:]
        elif rest:
            continue
        else:
            fraction = ""
        if weekday >= 0 and wall.weekday != weekday:
            raise ValueError("the weekday is not the date's")
        span = _span(fraction) if spec.endswith("S") else 1
        return _Parsed(_at(wall, _fraction_ns(fraction), dst, zone), span)
    return None


def _span(fraction: str) -> int:
    """What the last digit of a time written to the second, then fraction, stands for."""
    return max(_S // 10 ** len(fraction), 1)


def _fraction_ns(fraction: str) -> int:
    return int(fraction[:9].ljust(9, "0"))


def _exact(ns: int | None) -> _Parsed | None:
    return None if ns is None else _Parsed(ns, 1)


def _relative(text: str) -> tuple[str, int] | None:
    """The duration and its direction of +D, -D, "D ago" and "D left"."""
    if text.startswith(("+", "-")):
        return text[1:], 1 if text[0] == "+" else -1
    if text.endswith(" ago"):
        return text[:-4], -1
    if text.endswith(" left"):
        return text[:-5], 1
    return None


def _checked(ns: int) -> int:
    """A time systemd can hold, else ValueError."""
    if ns < 0:
        raise ValueError("before 1970")
    if ns > _SYSTEMD_LAST_NS:
        raise ValueError("after 9999-12-30")
    return ns


def _ends_with_utc(text: str) -> bool:
    return text[-4:].translate(_ASCII_LOWER) == " utc"


def _cut_abbreviation(text: str, names: tuple[str, str]) -> tuple[str, int]:
    """text without a last word naming the local zone, and whether that name is summer time."""
    folded = text.translate(_ASCII_LOWER)
    for dst, name in enumerate(names):
        suffix = " " + name.translate(_ASCII_LOWER)
        if name and folded.endswith(suffix):
            return text[: -len(suffix)], dst
    return text, -1


_ZONE_NAME = re.compile(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*")


def _named_zone(word: str) -> _Zone | None:
    """The zone an IANA name such as Europe/Berlin names, if it is one (timezone_is_valid)."""
    if not _ZONE_NAME.fullmatch(word):
        return None
    try:
        return _zone_of(zoneinfo.ZoneInfo(word))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _strptime(text: str, spec: str, base: _Wall) -> tuple[_Wall, str] | None:
    """glibc's strptime with one of systemd's formats: the time (fields it does not
    read come from base) and the rest of text, or None."""
    fields = base._asdict() | {"second": 0}  # a format without seconds means :00
    if "H" not in spec:
        fields |= {"hour": 0, "minute": 0}  # and a date alone, midnight
    position = 0
    for directive in spec:
        if directive == " ":  # any run of spaces, also none
            while position < len(text) and text[position] in _C_SPACE:
                position += 1
        elif directive in "-:":
            if not text.startswith(directive, position):
                return None
            position += 1
        elif directive == "b":
            folded = text[position : position + 9].translate(_ASCII_LOWER)
            names = [(name, number) for name, number in _MONTHS if folded.startswith(name)]
            if not names:
                return None
            name, fields["month"] = max(names, key=lambda item: len(item[0]))
            position += len(name)
        else:
            field, lowest, highest, digits = _FIELDS[directive]
            while position < len(text) and text[position] in _C_SPACE:
                position += 1
            start, value = position, 0
            while (
                position < len(text)
                and text[position] in string.digits
                and (position == start or (position - start < digits and value * 10 <= highest))
            ):
                value = value * 10 + int(text[position])
                position += 1
            if position == start or not lowest <= value <= highest:
                return None
            if directive == "y":
                value += 1900 if value >= 69 else 2000
            fields[field] = value
    if not set(spec) & set("yYmdb"):  # a time of day keeps today's weekday
        return _Wall(**fields), text[position:]
    if fields["year"] == 0:
        raise ValueError("before 1970")
    first = date(fields["year"], fields["month"], 1)
    fields["weekday"] = (first + timedelta(days=fields["day"] - 1)).isoweekday() % 7
    return _Wall(**fields), text[position:]


def _at(wall: _Wall, fraction_ns: int, dst: int, zone: _Zone) -> int:
    """The instant of a wall-clock time in zone, in nanoseconds (mktime, then systemd's range)."""
    seconds = _mktime(wall, dst, zone)
    if seconds is None:
        raise ValueError("out of range")
    return _checked(seconds * _S + fraction_ns)


def _mktime(wall: _Wall, dst: int, zone: _Zone) -> int | None:
    """glibc 2.36's mktime, run as in a new process (it remembers the last offset).

    It guesses, converts the guess back, and moves by the error; in a gap
    it stops at one side, preferring summer time; then, where dst asks for
    standard or summer time and the match is the other one, it takes the
    offset of the nearest instant that has the one asked for.  Out-of-range
    days and seconds (up to 61) roll over."""
    try:
        day_one = date(wall.year, wall.month, 1).toordinal() - date(1970, 1, 1).toordinal()
    except ValueError:
        return None
    second = min(wall.second, 59)  # glibc's leap-second handling: added back at the end
    wanted = ((day_one + wall.day - 1) * 24 + wall.hour) * 3600 + wall.minute * 60 + second
    guess = previous = before = wanted
    was_dst = False
    try:
        for _ in range(6):
            found = zone.convert(guess)
            error = wanted - found.wall
            if error == 0:
                break
            if guess == previous and guess != before and (was_dst <= found.dst if dst < 0 else
                                                           bool(dst) != found.dst):  # fmt: skip
                return guess + wall.second - second  # oscillating across a gap
            previous, before, guess, was_dst = before, guess, guess + error, found.dst
        else:
            return None
        if dst >= 0 and bool(dst) != found.dst:
            guess = _offset_of_other_flavour(wanted, guess, found.dst, zone)
    except (OverflowError, ValueError, OSError):
        return None
    return guess + wall.second - second


def _offset_of_other_flavour(wanted: int, guess: int, found_dst: bool, zone: _Zone) -> int:
    """wanted with the UTC offset of the nearest instant whose DST flag is not
    found_dst (probes a week apart, either way, up to 7.2 years), else an hour off."""
    stride = 601_200
    for delta in range(stride, 457_243_209 // 2 + stride, stride):
        for probe in (guess - delta, guess + delta):
            other = zone.convert(probe)
            if other.dst != found_dst:
                return probe + wanted - other.wall
    return guess + 3600 * (1 if found_dst else -1)


def _duration(text: str, *, default_unit: int | None) -> int | None:
    """parse_sec in nanoseconds: None where it refuses text, ValueError when out of range.

    default_unit: of a number without a unit (systemd: seconds); None refuses one."""
    total, position, something = 0, 0, False
    while True:
        while position < len(text) and text[position] in _SYSTEMD_SPACE:
            position += 1
        if position == len(text):
            return total if something else None
        if text[position] == "-":
            return None
        match = _COMPONENT.match(text, position)
        assert match is not None  # every group may be empty
        digits, fraction, unit = match["int"], match["frac"], match["unit"]
        if not digits and (fraction is None or match["sign"]):
            return None
        if unit is None:
            at_end = match.end() == len(text)
            if default_unit is None or not (match["gap"] or at_end):
                return None
            multiplier = default_unit
        else:
            multiplier = UNITS[unit]
        amount = Decimal(f"{digits or 0}.{fraction or 0}")
        total += int(amount * multiplier)
        if int(digits or 0) >= 2**63 or total >= _SYSTEMD_INFINITY_NS:
            raise ValueError("out of range")
        something, position = True, match.end()


# --- kextlog's extensions ----------------------------------------------------


def _extension(value: str, now_ns: int, zone: _Zone) -> _Parsed | None:
    """ISO 8601 forms and bare durations, which systemd refuses."""
    if match := _ISO.fullmatch(value):
        fields = {field: int(match[field]) for field in ("year", "month", "day")}
        if not 1 <= fields["month"] <= 12 or not 1 <= fields["day"] <= 31:
            raise ValueError("no such date")
        return _iso_at(fields, match, zone)
    if match := _ISO_TIME_OF_DAY.fullmatch(value):
        today = (_fixed(match["zone"]) or zone).wall(now_ns // _S)
        return _iso_at({"year": today.year, "month": today.month, "day": today.day}, match, zone)
    duration = _duration(value, default_unit=None)
    return None if duration is None else _exact(_checked(now_ns - duration))


def _iso_at(fields: dict[str, int], match: re.Match[str], zone: _Zone) -> _Parsed:
    hour, minute, second = (int(match[name] or 0) for name in ("hour", "minute", "second"))
    if hour > 23 or minute > 59 or second > 61:
        raise ValueError("no such time")
    wall = _Wall(fields["year"], fields["month"], fields["day"], hour, minute, second, 0)
    fraction = match["fraction"] or ""
    fixed = _fixed(match["zone"])
    instant = _at(wall, _fraction_ns(fraction), -1 if fixed is None else 0, fixed or zone)
    return _Parsed(instant, 1 if match["second"] is None else _span(fraction))


def _fixed(text: str | None) -> _Zone | None:
    """The zone of an ISO offset (Z, UTC, +01:00, +0100, +01)."""
    if text is None:
        return None
    if text.lower() in ("z", "utc"):
        return _UTC
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(f"offset {text} is out of range")
    offset = timedelta(hours=hours, minutes=minutes)
    return _zone_of(timezone(-offset if text[0] == "-" else offset))


def _localize(moment: datetime, tz: tzinfo | None) -> datetime:
    """An aware datetime: a naive one is wall-clock time in tz (None: the system's zone)."""
    if moment.tzinfo is not None:
        return moment
    return moment.astimezone() if tz is None else moment.replace(tzinfo=tz)
