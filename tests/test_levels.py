"""The level syntax shared by every command."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
        # syslog priorities, as journalctl -p takes them, as kmsg stores them
        ("0", Level.ERROR),
        ("emerg", Level.ERROR),
        ("2", Level.ERROR),
        ("CRIT", Level.ERROR),
        ("3", Level.ERROR),
        ("4", Level.WARNING),
        ("5", Level.INFO),
        ("notice", Level.INFO),
        ("6", Level.INFO),
        ("7", Level.DEBUG),
        ("07", Level.DEBUG),
    ],
)
def test_parse_level(text: str, level: Level) -> None:
    assert parse_level(text) is level


@pytest.mark.parametrize(
    "text", ["", "fatal", "errors", "8", "10", "-1", "+3", "٣", "warn ing", "label", "panic"]
)
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
        ("0..3", (Level.ERROR, Level.ERROR)),  # two priorities: the more severe first
        ("3..6", (Level.INFO, Level.ERROR)),
        ("0..7", (Level.DEBUG, Level.ERROR)),
        ("4..4", (Level.WARNING, Level.WARNING)),
        ("7..", (Level.DEBUG, Level.ERROR)),
        ("..4", (Level.TRACE, Level.WARNING)),
    ],
)
def test_parse_level_range(text: str, expected: tuple[Level, Level]) -> None:
    assert parse_level_range(text) == expected


@pytest.mark.parametrize(
    "text", ["error..trace", "info..debug", "bogus..error", "info..bogus", "7..0", "8..9"]
)
def test_bad_level_range(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_level_range(text)
    assert "\n" not in str(caught.value)


# -- properties --

ALIASES = {
    Level.DEBUG: ["7", "debug"],
    Level.INFO: ["5", "6", "notice"],
    Level.WARNING: ["warn", "4"],
    Level.ERROR: ["err", "0", "1", "2", "3", "emerg", "alert", "crit"],
}
SPELLINGS = {level: [level.name, level.label, *ALIASES.get(level, [])] for level in Level}


@st.composite
def spelled(draw: st.DrawFn, level: Level) -> str:
    """Any accepted spelling of level: a name, an alias or a syslog priority,
    in any case, with blanks around."""
    word = draw(st.sampled_from(SPELLINGS[level]))
    word = "".join(c.upper() if draw(st.booleans()) else c.lower() for c in word)
    return draw(st.sampled_from(["", " ", "\t"])) + word + draw(st.sampled_from(["", " ", "\n"]))


@given(
    st.sampled_from(list(Level)).flatmap(lambda level: st.tuples(st.just(level), spelled(level)))
)
def test_every_spelling_of_a_level(case: tuple[Level, str]) -> None:
    level, text = case
    assert parse_level(text) is level
    assert parse_level_range(text) == (level, Level.ERROR)


@given(st.data(), st.sampled_from(list(Level)), st.sampled_from(list(Level)), st.booleans())
def test_ranges_in_any_spelling(data: st.DataObject, a: Level, b: Level, open_: bool) -> None:
    low, high = data.draw(spelled(a)), data.draw(spelled(b))
    if open_:  # A.. and ..B
        assert parse_level_range(f"{low}..") == (a, Level.ERROR)
        assert parse_level_range(f"..{high}") == (Level.TRACE, b)
    if low.strip().isdigit() and high.strip().isdigit():  # journalctl's order
        a, b = b, a
    if a <= b:
        assert parse_level_range(f"{low}..{high}") == (a, b)
    else:
        with pytest.raises(UsageError, match="empty level range"):
            parse_level_range(f"{low}..{high}")


@given(st.text(max_size=30) | st.text(alphabet="tracedbugINFOwrnl.0123456789 ", max_size=20))
def test_anything_else_is_a_level_or_a_one_line_usage_error(text: str) -> None:
    try:
        assert isinstance(parse_level(text), Level)
    except UsageError as error:
        assert "\n" not in str(error)
    try:
        first, last = parse_level_range(text)
    except UsageError as error:
        assert "\n" not in str(error)
    else:
        assert isinstance(first, Level) and first <= last
