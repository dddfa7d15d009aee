"""The five log levels and the level syntax shared by every command.

A level is named (trace, debug, info, warning, error, any case; warn, err)
or given as journalctl takes it: a syslog priority, 0 (emerg) to 7 (debug),
by number or name, meaning the level the kmsg source stores that priority
as (SYSLOG_LEVELS: 0..3 error, 4 warning, 5 and 6 info, 7 debug)."""

from __future__ import annotations

from enum import IntEnum

from .errors import UsageError


class Level(IntEnum):
    """Values are the wire's enum kextlog_level (checked by tests/test_wire.py)."""

    TRACE = 1
    DEBUG = 2
    INFO = 3
    WARNING = 4
    ERROR = 5

    @property
    def label(self) -> str:
        return self.name.lower()


# The level of each syslog priority, 0 (emerg) .. 7 (debug), as the kernel's
# log is stored: its emergencies to errors are errors, notices information.
SYSLOG_LEVELS = (Level.ERROR,) * 4 + (Level.WARNING, Level.INFO, Level.INFO, Level.DEBUG)
SYSLOG_NAMES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")

_ALIASES = {
    "warn": Level.WARNING,
    **{name: SYSLOG_LEVELS[priority] for priority, name in enumerate(SYSLOG_NAMES)},
}


def parse_level(text: str) -> Level:
    """One level by name (case-insensitive, aliases warn and err), or a
    syslog priority by number (0..7) or name (emerg..debug)."""
    word = text.strip().lower()
    if word in _ALIASES:
        return _ALIASES[word]
    if _is_priority(word):
        return SYSLOG_LEVELS[int(word)]
    try:
        return Level[word.upper()]
    except KeyError:
        names = ", ".join(level.label for level in Level)
        raise UsageError(
            f"unknown level {text!r} (expected one of {names}, or a syslog priority 0..7)"
        ) from None


def _is_priority(word: str) -> bool:
    return word.isascii() and word.isdigit() and int(word) < len(SYSLOG_LEVELS)


def parse_level_range(text: str) -> tuple[Level, Level]:
    """`X` means X and everything more severe; `A..B` the levels from A to B,
    the less severe first; of two priorities, as in journalctl, the more
    severe first (`0..4`: emerg to warning)."""
    low, dots, high = text.partition("..")
    if not dots:
        return parse_level(text), Level.ERROR
    if _is_priority(low.strip()) and _is_priority(high.strip()):
        low, high = high, low
    first = parse_level(low) if low.strip() else Level.TRACE
    last = parse_level(high) if high.strip() else Level.ERROR
    if first > last:
        raise UsageError(f"empty level range {text!r}: {first.label} is above {last.label}")
    return first, last
