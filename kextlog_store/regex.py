"""The regular expressions of `kextlog query --grep` and of SQL's REGEXP.

RE2 (google-re2) matches in time linear in the text, whatever the pattern
and the text: a record's message, which a producer writes, can never make a
search backtrack for ever, as Python's re can ((a+)+$ on "aaaa...b").  The
price is the syntax RE2 leaves out: backreferences, lookaround, atomic
groups, possessive quantifiers, conditionals; \\Z is \\z; \\d, \\w, \\s and
\\b are ASCII; repetition counts go up to 1000 (README lists it all).  A
pattern that uses one is refused with a UsageError that names it.  The
same patterns as PostgreSQL's (postgresql_regex), and process globs as
regular expressions (glob_regex), for the query's SQL on both back ends.
"""

from __future__ import annotations

import functools
import re

import re2
from re2 import _re2

from .errors import UsageError

# What RE2 says about a pattern Python's re takes, and what it means.
_UNSUPPORTED = (
    ("invalid perl operator: (?P=", "backreferences such as (?P=name) are not supported"),
    ("invalid perl operator: (?=", "lookahead (?=...) is not supported"),
    ("invalid perl operator: (?!", "lookahead (?!...) is not supported"),
    ("invalid perl operator: (?<=", "lookbehind (?<=...) is not supported"),
    ("invalid perl operator: (?<!", "lookbehind (?<!...) is not supported"),
    ("invalid perl operator: (?>", "atomic groups (?>...) are not supported"),
    ("invalid perl operator: (?(", "conditionals (?(1)...) are not supported"),
    ("invalid perl operator: (?#", "comments (?#...) are not supported"),
    ("invalid perl operator: (?", "of the flags only i, m, s and U are supported"),
    ("invalid escape sequence: \\Z", "write \\z for the end of the text"),
    ("bad repetition operator: ", "possessive quantifiers such as a++ are not supported"),
    ("invalid repetition size", "repetition counts go up to 1000"),
    ("pattern too large", "the pattern is too large for RE2's 2 MiB"),
)
_BACKREFERENCE = re.compile(r"invalid escape sequence: \\[0-9]")
# RE2 reads a repetition it cannot take as text: a{99999} would look for
# "a{99999}" (and a{,3}, which Python's re reads as a{0,3}).  Refused instead.
_REPETITION = re.compile(r"\{(\d*),?(\d*)\}")
REPETITION_MAX = 1000
# Memory for one compiled pattern (RE2's program and its DFA's cache of
# states; past that it searches without the cache, slower but still linear).
MAX_MEM = 2 << 20


def _options() -> re2.Options:
    options = re2.Options()
    options.max_mem = MAX_MEM
    options.log_errors = False  # RE2 would print its own message on stderr
    options.never_capture = True  # a search needs no groups: faster
    return options


_OPTIONS = _options()
_UNANCHORED = _re2.RE2.Anchor.UNANCHORED
_NOWHERE = (-1, -1)


class Pattern:
    """A compiled pattern, searched in UTF-8 bytes.  RE2's engine itself
    (re2._re2): the re2 module's re-like wrapper costs several times the
    search (a generator and a match object a call: 7 us against 0.6 us on
    a log message), and keeps 128 patterns of its own."""

    __slots__ = ("_engine",)

    def __init__(self, engine: _re2.RE2) -> None:
        self._engine = engine

    def search(self, text: bytes) -> bool:
        return self._engine.Match(_UNANCHORED, text, 0, len(text))[0] != _NOWHERE


@functools.lru_cache(maxsize=64)
def compile(pattern: str) -> Pattern:
    """pattern compiled by RE2.  Raises UsageError, saying what RE2 does not
    support, for a pattern it refuses."""
    _check_repetitions(pattern)
    try:
        engine = _re2.RE2(pattern.encode(), _OPTIONS)
    except UnicodeEncodeError:
        raise UsageError(f"invalid regular expression {pattern!r}: not valid UTF-8") from None
    if not engine.ok():
        detail = engine.error().decode(errors="replace")
        hint = next((hint for prefix, hint in _UNSUPPORTED if detail.startswith(prefix)), None)
        if _BACKREFERENCE.fullmatch(detail):
            hint = "backreferences such as \\1 are not supported"
        reason = detail if hint is None else f"{detail}: {hint} (RE2's syntax)"
        raise UsageError(f"invalid regular expression {pattern!r} ({reason})")
    return Pattern(engine)


def _check_repetitions(pattern: str) -> None:
    """Refuses a repetition count RE2 would take as text, outside [...]."""
    index, in_class = 0, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]" or pattern[index - 1] == "["
        elif char == "[":
            in_class = True
        elif char == "{" and index > 0 and (match := _REPETITION.match(pattern, index)):
            low, high = match[1], match[2]
            if not low and "," in match[0]:
                raise UsageError(
                    f"invalid regular expression {pattern!r} ({match[0]}: write "
                    f"{{0,{high}}}; RE2 reads {match[0]} as text)"
                )
            counts = [int(count) for count in (low, high) if count]
            if any(count > REPETITION_MAX for count in counts):
                raise UsageError(
                    f"invalid regular expression {pattern!r} (repetition {match[0]}: "
                    f"repetition counts go up to {REPETITION_MAX}, RE2's syntax)"
                )
        index += 1


def search(pattern: str, text: str | bytes) -> bool:
    """Whether pattern matches anywhere in text."""
    return compile(pattern).search(text.encode() if isinstance(text, str) else text)


# --- the same patterns in SQL -----------------------------------------------


def grep_pattern(pattern: str) -> str:
    """The regular expression --grep searches with: the pattern itself when it
    has an upper-case letter, else the pattern made case-insensitive.
    Raises UsageError for a pattern RE2 does not take (compile)."""
    try:
        compile(pattern)
    except UsageError as exc:
        raise UsageError(f"--grep: {exc}") from None
    escaped = False
    for char in pattern:
        if char.isupper() and not escaped:
            return pattern
        escaped = char == "\\" and not escaped
    return "(?i)" + pattern


# RE2's escapes that PostgreSQL's regular expressions write otherwise
# (there \b is a backspace): word boundaries, the end of the text.
_PG_ESCAPES = {"b": "y", "B": "Y", "z": "Z"}
_NAMED_GROUP = re.compile(r"\(\?P?<[^>]*>")


def postgresql_regex(pattern: str) -> str:
    r"""An RE2 regular expression (as --grep takes it) as PostgreSQL's
    (ARE): the same syntax but for word boundaries (\b \B there: \y \Y),
    the end of the text (\z there: \Z) and named groups ((?P<name>...) and
    (?<name>...) are plain groups there)."""
    parts, index, in_class = [], 0, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            escaped = pattern[index + 1]
            parts.append("\\" + (escaped if in_class else _PG_ESCAPES.get(escaped, escaped)))
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif named := _NAMED_GROUP.match(pattern, index):
            index = named.end()
            parts.append("(")
            continue
        parts.append(char)
        index += 1
    return "".join(parts)


def glob_regex(glob: str) -> str:
    """A glob as an anchored regular expression (POSIX and Python alike)."""
    parts, index = ["^"], 0
    while index < len(glob):
        char = glob[index]
        end = glob.find("]", index + 2) if char == "[" else -1
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        elif char == "[" and end != -1:
            body = glob[index + 1 : end]
            negated = body.startswith("^")
            body = body[1:] if negated else body
            parts.append("[" + "^" * negated + body.replace("\\", "\\\\") + "]")
            index = end
        else:
            parts.append(re.escape(char))
        index += 1
    return "".join(parts) + "$"
