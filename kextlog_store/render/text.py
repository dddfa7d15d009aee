"""What every output format uses: text safe for a terminal (escape), JSON
text, colour by level, and times."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from ..levels import Level
from ..records import NS_PER_SECOND

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# What would drive a terminal, or make it show other text than there is: C0
# controls but tab and newline, DEL, C1 controls (U+009B is an 8-bit CSI,
# U+0085 a newline to some), and the bidirectional embeddings, overrides and
# isolates that reorder what is shown ("Trojan Source").
# And the bytes of a message that are not UTF-8 text, which a decode with
# surrogateescape leaves as U+DC80..U+DCFF.  Each is shown as an escape, and
# so is a backslash where it would read as one: before an escape, a
# backslash, or an x, u (or n) that an escape starts with.
_UNSAFE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\udc80-\udcff"
_CONTROL = re.compile(f"[{_UNSAFE}]|\\\\(?=[\\\\xu{_UNSAFE}])")
_CONTROL_OR_NEWLINE = re.compile(f"[{_UNSAFE}\n]|\\\\(?=[\\\\xun{_UNSAFE}\n])")
# What escape() may change: text with none of these is shown as it is.
_NOT_PLAIN = re.compile(f"[{_UNSAFE}\\\\]")
_NOT_PLAIN_ASCII = bytes(code for code in range(0x80) if _NOT_PLAIN.match(chr(code)))
# The same in JSON text, where json.dumps has escaped C0 already and these
# can only stand inside strings, so a \uXXXX escape keeps the value.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def escape(text: str, *, newlines: bool = False) -> str:
    """text safe to write to a terminal: every character that could drive it
    (C0 but tab and newline, DEL, C1, bidirectional overrides) as an escape
    such as \\x1b, \\u009b or \\u202e, a byte that is not text (Record.shown)
    as \\xff; with newlines, a newline too, as \\n (for what must stay on one
    line).  A literal backslash is doubled where it would read as an escape,
    so every escape shown means one character.  Every text output of
    kextlog goes through it."""
    pattern = _CONTROL_OR_NEWLINE if newlines else _CONTROL
    return pattern.sub(_escaped, text)


def plain(text: str) -> bool:
    """Whether escape() leaves text as it is (with newlines or without: a
    newline is not looked at).  ASCII text, the common case, is checked by
    deleting what would be escaped, three times faster than a search."""
    if text.isascii():
        data = text.encode("ascii")
        return len(data.translate(None, _NOT_PLAIN_ASCII)) == len(data)
    return _NOT_PLAIN.search(text) is None


def _escaped(match: re.Match[str]) -> str:
    code = ord(match[0])
    if code == 0x5C:
        return "\\\\"
    if code == 0x0A:
        return "\\n"
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not text
        return f"\\x{code - 0xDC00:02x}"
    # \x for a byte, \u for a character: a C1 control (U+009B) is not the byte 0x9b.
    return f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}"


def json_text(value: Any, indent: int | None = None) -> str:
    """value as JSON (UTF-8 as it is, not \\u escapes) with nothing in it that
    drives a terminal: json.dumps escapes C0 controls, this the rest (DEL,
    C1, bidirectional overrides), which json.loads reads back the same."""
    return json_safe(json.dumps(value, ensure_ascii=False, indent=indent))


def json_safe(text: str) -> str:
    """JSON text with what json.dumps leaves as it is and would drive a
    terminal (DEL, C1, bidirectional overrides) as \\uXXXX escapes."""
    if (text.isascii() and "\x7f" not in text) or _JSON_UNSAFE.search(text) is None:
        return text  # the common case: no copy
    return _JSON_UNSAFE.sub(lambda match: f"\\u{ord(match[0]):04x}", text)


# --- colour -----------------------------------------------------------------

# As journalctl: errors bold red, warnings bold yellow, debug and trace dim.
LEVEL_STYLES = {
    Level.ERROR: "\x1b[1;31m",
    Level.WARNING: "\x1b[1;33m",
    Level.DEBUG: "\x1b[2m",
    Level.TRACE: "\x1b[2m",
}
MARKER_STYLE = "\x1b[1m"  # loss markers stand out without a colour
RESET = "\x1b[0m"


def paint(text: str, style: str | None) -> str:
    """text in style, line by line (a pager that cuts long lines keeps each
    line's style); None: as it is."""
    if not style or not text:
        return text
    return "\n".join(f"{style}{line}{RESET}" if line else line for line in text.split("\n"))


# --- times ------------------------------------------------------------------


def zone(utc: bool) -> tzinfo | None:
    """The zone times are shown in: UTC, or None for the system's local zone."""
    return timezone.utc if utc else None


def record_time(time_ns: int, tz: tzinfo | None = None) -> datetime:
    """An aware datetime in tz (None: local) with the microseconds of time_ns."""
    return (EPOCH + timedelta(microseconds=time_ns // 1000)).astimezone(tz)


def iso_time(time_ns: int, tz: tzinfo | None = None) -> str:
    """2026-11-27T10:22:36.123456+00:00"""
    return record_time(time_ns, tz).isoformat(timespec="microseconds")


class Clock:
    """Formats record times, computing the calendar once per second: records
    come in time order, many to a second, and strftime is most of the cost
    of a short line.  One per output (the local zone may change between).
    shorts, isos and offsets: each second's text, by seconds since the epoch,
    for the renderers of a batch of records."""

    def __init__(self, tz: tzinfo | None) -> None:
        self.tz = tz
        self.shorts = _Seconds(self._short)
        self.isos = _Seconds(lambda seconds: self._moment(seconds).isoformat()[:19])
        self.offsets = _Seconds(lambda seconds: self._moment(seconds).isoformat()[19:])

    def _moment(self, seconds: int) -> datetime:
        return (EPOCH + timedelta(seconds=seconds)).astimezone(self.tz)

    def _short(self, seconds: int) -> str:
        moment = self._moment(seconds)
        return f"{_MONTHS[moment.month - 1]} {moment:%d %H:%M:%S}"

    def short(self, time_ns: int) -> str:
        """Nov 27 10:22:36.123456"""
        seconds, nanos = divmod(time_ns, NS_PER_SECOND)
        return f"{self.shorts[seconds]}.{nanos // 1000:06d}"

    def iso(self, time_ns: int) -> str:
        """2026-11-27T10:22:36.123456+00:00"""
        seconds, nanos = divmod(time_ns, NS_PER_SECOND)
        return f"{self.isos[seconds]}.{nanos // 1000:06d}{self.offsets[seconds]}"


class _Seconds(dict[int, str]):
    """Each second's text, made once; the oldest forgotten now and then, so
    that a long output keeps no more than a few thousand."""

    def __init__(self, text: Callable[[int], str]) -> None:
        super().__init__()
        self._text = text

    def __missing__(self, seconds: int) -> str:
        if len(self) >= 4096:
            self.clear()
        value = self[seconds] = self._text(seconds)
        return value


def local_time(time_ns: int) -> str:
    """2026-11-27 10:22:36, in the local zone (the daemon's own times)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time_ns / 1e9))
