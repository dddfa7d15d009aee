"""The level syntax shared by every command."""

from __future__ import annotations

import pytest

from kextlog_store.errors import UsageError
from kextlog_store.levels import Level, parse_level, parse_level_range


def test_levels_are_ordered_by_severity() -> None:
    assert [level.label for level in sorted(Level)] == [
        "trace",
        "debug",
        "info",
        "warning",
        "error",
    ]
    assert Level.TRACE < Level.DEBUG < Level.INFO < Level.WARNING < Level.ERROR


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("trace", Level.TRACE),
        ("DEBUG", Level.DEBUG),
        ("Info", Level.INFO),
        ("warning", Level.WARNING),
        ("warn", Level.WARNING),
        ("WARN", Level.WARNING),
        ("error", Level.ERROR),
        ("err", Level.ERROR),
        (" error ", Level.ERROR),
        ("1", Level.TRACE),
        ("5", Level.ERROR),
    ],
)
def test_parse_level(text: str, level: Level) -> None:
    assert parse_level(text) is level


@pytest.mark.parametrize("text", ["", "fatal", "errors", "6", "0", "-1", "warn ing", "label"])
def test_unknown_level_is_a_one_line_usage_error(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_level(text)
    message = str(caught.value)
    assert repr(text) in message
    assert "trace, debug, info, warning, error" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("warning", (Level.WARNING, Level.ERROR)),
        ("trace", (Level.TRACE, Level.ERROR)),
        ("error", (Level.ERROR, Level.ERROR)),
        ("debug..info", (Level.DEBUG, Level.INFO)),
        ("TRACE..debug", (Level.TRACE, Level.DEBUG)),
        ("warn..err", (Level.WARNING, Level.ERROR)),
        ("info..info", (Level.INFO, Level.INFO)),
        ("..info", (Level.TRACE, Level.INFO)),
        ("info..", (Level.INFO, Level.ERROR)),
    ],
)
def test_parse_level_range(text: str, expected: tuple[Level, Level]) -> None:
    assert parse_level_range(text) == expected


@pytest.mark.parametrize("text", ["error..trace", "info..debug", "bogus..error", "info..bogus"])
def test_bad_level_range(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_level_range(text)
    assert "\n" not in str(caught.value)
