"""The five log levels and the level syntax shared by every command."""

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


_ALIASES = {"warn": Level.WARNING, "err": Level.ERROR}


def parse_level(text: str) -> Level:
    """One level by name (case-insensitive, aliases warn and err) or number."""
    word = text.strip().lower()
    if word in _ALIASES:
        return _ALIASES[word]
    try:
        return Level[word.upper()] if not word.isdigit() else Level(int(word))
    except (KeyError, ValueError):
        names = ", ".join(level.label for level in Level)
        raise UsageError(f"unknown level {text!r} (expected one of {names})") from None


def parse_level_range(text: str) -> tuple[Level, Level]:
    """`X` means X and everything more severe; `A..B` the levels from A to B."""
    low, dots, high = text.partition("..")
    if not dots:
        return parse_level(text), Level.ERROR
    first = parse_level(low) if low.strip() else Level.TRACE
    last = parse_level(high) if high.strip() else Level.ERROR
    if first > last:
        raise UsageError(f"empty level range {text!r}: {first.label} is above {last.label}")
    return first, last
