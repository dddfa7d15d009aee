"""Time values of --since / --until (and later prune's --older-than).

Every value becomes an integer: nanoseconds since the epoch, UTC, the unit of
the store's time_ns column, so comparisons are exact.  Accepted forms:

- relative, that long before now: ``30s``, ``15m``, ``1h30m``, ``2 days``,
  ``-1h``, ``"1h ago"``, fractions such as ``1.5h``; ``+1h`` is that long after
  now.  Units: ns, us, ms, s, m (minutes), h, d, w and their long forms
  (sec, min, hours, days, weeks, ...).
- absolute ISO 8601: ``2026-11-27``, ``2026-11-27 10:00``,
  ``2026-11-27T10:00:00Z``, ``2026-11-27T10:00:00.123456789+01:00``, and a
  time of today such as ``10:00``.  Local time unless the value has a zone
  (``Z``, ``UTC``, ``+01:00``, ``+0100``, ``+01``).
- ``now``, ``today``, ``yesterday``, ``tomorrow`` (local midnight).
- ``@EPOCH``: seconds since the epoch, fractions allowed (``@1795774956.5``).

The parser is written out with regular expressions rather than
datetime.fromisoformat so that it accepts the same values on every supported
Python (3.10's fromisoformat rejects ``Z`` and most fractions).
"""

from __future__ import annotations

import re
import time
from datetime import date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal

from .errors import UsageError

NS_PER_SECOND = 1_000_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_INT64 = 2**63 - 1

EXAMPLES = (
    "30s, 1h30m, '2h ago', 2026-11-27, '2026-11-27 10:00', 2026-11-27T10:00:00Z, today, @1795774956"
)

_UNIT_NAMES: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, ("ns", "nsec", "nsecs", "nanosecond", "nanoseconds")),
    (1_000, ("us", "usec", "usecs", "microsecond", "microseconds")),
    (1_000_000, ("ms", "msec", "msecs", "millisecond", "milliseconds")),
    (NS_PER_SECOND, ("s", "sec", "secs", "second", "seconds")),
    (60 * NS_PER_SECOND, ("m", "min", "mins", "minute", "minutes")),
    (3600 * NS_PER_SECOND, ("h", "hr", "hrs", "hour", "hours")),
    (86400 * NS_PER_SECOND, ("d", "day", "days")),
    (7 * 86400 * NS_PER_SECOND, ("w", "week", "weeks")),
)
UNITS: dict[str, int] = {name: ns for ns, names in _UNIT_NAMES for name in names}

# Longest names first so that "min" is not read as "m" followed by "in".
_UNIT = "|".join(sorted(UNITS, key=len, reverse=True))
_COMPONENT = rf"(\d+(?:\.\d+)?)\s*({_UNIT})(?![a-z])"
_DURATION = re.compile(rf"(?:\s*{_COMPONENT})+\s*")
_COMPONENTS = re.compile(_COMPONENT)
_RELATIVE = re.compile(r"(?P<sign>[-+]?)\s*(?P<body>.*?)\s*(?P<ago>\bago)?")

_ZONE = r"(?P<zone>z|utc|[-+]\d{2}(?::?\d{2})?)"
_TIME = r"(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d+))?)?"
_ABSOLUTE = re.compile(
    rf"(?P<year>\d{{4}})-(?P<month>\d{{2}})-(?P<day>\d{{2}})(?:(?:t|\s+){_TIME}\s*{_ZONE}?)?"
)
_TIME_OF_DAY = re.compile(rf"{_TIME}\s*{_ZONE}?")
_EPOCH = re.compile(r"@(?P<seconds>[-+]?\d+(?:\.\d+)?)")


def parse_time(text: str, *, now: datetime | None = None, tz: tzinfo | None = None) -> int:
    """The instant text names, as UTC nanoseconds since the epoch.

    now: the present (default: the clock); a naive value is in the local zone.
    tz: the local zone for values without one (default: the system's).
    Raises UsageError with a one-line message for anything else.
    """
    value = text.strip().lower()
    now_ns = time.time_ns() if now is None else to_ns(_localize(now, tz))
    try:
        result = _parse(value, now_ns, tz)
    except (ValueError, OverflowError) as exc:  # e.g. month 13, year 0
        raise UsageError(f"invalid time {text!r} ({exc}): expected e.g. {EXAMPLES}") from None
    if result is None:
        raise UsageError(f"invalid time {text!r}: expected e.g. {EXAMPLES}")
    if not -_INT64 <= result <= _INT64:
        raise UsageError(f"invalid time {text!r} (out of range): expected e.g. {EXAMPLES}")
    return result


def parse_duration(text: str) -> int:
    """A length of time such as 30d or 1h30m, in nanoseconds."""
    duration = _duration(text.strip().lower())
    if duration is None or duration > _INT64:
        problem = "" if duration is None else " (out of range)"
        raise UsageError(
            f"invalid duration {text!r}{problem}: expected e.g. 30s, 15m, 1h30m, 2d, 1w"
        )
    return duration


def to_ns(moment: datetime) -> int:
    """An aware datetime as nanoseconds since the epoch, exactly."""
    return (moment - EPOCH) // timedelta(microseconds=1) * 1000


def _parse(value: str, now_ns: int, tz: tzinfo | None) -> int | None:
    if value == "now":
        return now_ns
    if value in ("today", "yesterday", "tomorrow"):
        today = _local_date(now_ns, tz)
        shift = {"today": 0, "yesterday": -1, "tomorrow": 1}[value]
        return to_ns(_localize(_midnight(today + timedelta(days=shift)), tz))
    if match := _EPOCH.fullmatch(value):
        return int(Decimal(match["seconds"]) * NS_PER_SECOND)
    if match := _ABSOLUTE.fullmatch(value):
        day = date(int(match["year"]), int(match["month"]), int(match["day"]))
        return _at(day, match, tz)
    if match := _TIME_OF_DAY.fullmatch(value):
        zone = _zone(match["zone"]) or tz
        return _at(_local_date(now_ns, zone), match, tz)
    return _relative(value, now_ns)


def _relative(value: str, now_ns: int) -> int | None:
    match = _RELATIVE.fullmatch(value)
    if match is None:
        return None
    if match["ago"] and match["sign"]:
        return None  # "-1h ago" and "+1h ago" say it twice or contradict
    duration = _duration(match["body"])
    if duration is None:
        return None
    return now_ns + duration if match["sign"] == "+" else now_ns - duration


def _duration(body: str) -> int | None:
    if not _DURATION.fullmatch(body):
        return None
    return sum(int(Decimal(amount) * UNITS[unit]) for amount, unit in _COMPONENTS.findall(body))


def _at(day: date, match: re.Match[str], tz: tzinfo | None) -> int:
    """Day at the time of match (midnight when it has none), in its zone or tz."""
    if match["hour"] is None:
        return to_ns(_localize(_midnight(day), tz))
    fraction = match["fraction"] or ""
    moment = datetime(
        day.year,
        day.month,
        day.day,
        int(match["hour"]),
        int(match["minute"]),
        int(match["second"] or 0),
    )
    zone = _zone(match["zone"])
    aware = moment.replace(tzinfo=zone) if zone else _localize(moment, tz)
    return to_ns(aware) + int(fraction[:9].ljust(9, "0"))


def _zone(text: str | None) -> tzinfo | None:
    if text is None:
        return None
    if text in ("z", "utc"):
        return timezone.utc
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(f"offset {text} is out of range")
    offset = timedelta(hours=hours, minutes=minutes)
    return timezone(-offset if text[0] == "-" else offset)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)


def _localize(moment: datetime, tz: tzinfo | None) -> datetime:
    """An aware datetime: a naive one is wall-clock time in tz (None: the system's zone)."""
    if moment.tzinfo is not None:
        return moment
    return moment.astimezone() if tz is None else moment.replace(tzinfo=tz)


def _local_date(now_ns: int, tz: tzinfo | None) -> date:
    utc = EPOCH + timedelta(microseconds=now_ns // 1000)
    return utc.astimezone(tz).date()
