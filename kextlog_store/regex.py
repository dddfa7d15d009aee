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
from typing import TYPE_CHECKING

from .errors import UsageError

if TYPE_CHECKING:
    from re2 import _re2

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


_NOWHERE = (-1, -1)


@functools.cache
def _engine() -> tuple[type[_re2.RE2], object, object]:
    """RE2's engine class, the options every pattern is compiled with, and
    the anchor of a search: loaded at the first pattern, as a query without
    one (the most common) need not pay for loading RE2."""
    import re2
    from re2 import _re2

    options = re2.Options()
    options.max_mem = MAX_MEM
    options.log_errors = False  # RE2 would print its own message on stderr
    options.never_capture = True  # a search needs no groups: faster
    return _re2.RE2, options, _re2.RE2.Anchor.UNANCHORED


class Pattern:
    """A compiled pattern, searched in UTF-8 bytes.  RE2's engine itself
    (re2._re2): the re2 module's re-like wrapper costs several times the
    search (a generator and a match object a call: 7 us against 0.6 us on
    a log message), and keeps 128 patterns of its own."""

    __slots__ = ("_anchor", "_engine")

    def __init__(self, engine: _re2.RE2, anchor: object) -> None:
        self._engine = engine
        self._anchor = anchor

    def search(self, text: bytes) -> bool:
        return self._engine.Match(self._anchor, text, 0, len(text))[0] != _NOWHERE


@functools.lru_cache(maxsize=64)
def compile(pattern: str) -> Pattern:
    """pattern compiled by RE2.  Raises UsageError, saying what RE2 does not
    support, for a pattern it refuses."""
    _check_repetitions(pattern)
    engine_class, options, anchor = _engine()
    try:
        engine = engine_class(pattern.encode(), options)
    except UnicodeEncodeError:
        raise UsageError(f"invalid regular expression {pattern!r}: not valid UTF-8") from None
    if not engine.ok():
        detail = engine.error().decode(errors="replace")
        hint = next((hint for prefix, hint in _UNSUPPORTED if detail.startswith(prefix)), None)
        if _BACKREFERENCE.fullmatch(detail):
            hint = "backreferences such as \\1 are not supported"
        reason = detail if hint is None else f"{detail}: {hint} (RE2's syntax)"
        raise UsageError(f"invalid regular expression {pattern!r} ({reason})")
    return Pattern(engine, anchor)


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


# --- what a match must contain ----------------------------------------------

# Letters whose case-insensitive match in RE2 takes a character outside ASCII
# (the Kelvin sign K, the long s), which SQL's LIKE would not: they end a
# literal where case is ignored.
_FOLDS_BEYOND_ASCII = frozenset("kKsS")
_REPEAT_COUNT = re.compile(r"\{\d+(?:,\d*)?\}")
_CASE_INSENSITIVE = re.compile(r"\(\?[a-zA-Z-]*i")
_ESCAPE_ARGUMENT = re.compile(r"\{[^}]*\}|[0-9a-fA-F]{0,2}")
_OCTAL_TAIL = re.compile(r"[0-7]{0,2}")
LITERAL_MAX = 64  # a required literal's first characters are required too


def required_literals(pattern: str) -> tuple[list[str], bool]:
    """Texts that every text pattern (RE2's syntax, as compile takes it)
    matches must contain, and whether they are to be found ignoring case
    (ASCII letters only; then none has a letter whose case folds beyond
    ASCII).  A prefilter of SQL's instr or LIKE on them ahead of the regex
    passes a superset of what it matches: what this does not understand
    ends a literal, it never adds one.  Only the top level's plain
    characters count: groups, classes, escapes of classes are skipped, an
    alternation there leaves none, a quantifier takes back the character
    before it."""
    insensitive = bool(_CASE_INSENSITIVE.search(pattern))
    if "\\Q" in pattern:  # quoted text reads otherwise: not worth the risk
        return [], insensitive
    literals: list[str] = []
    run: list[str] = []

    def end_run() -> None:
        if run:
            literals.append("".join(run)[:LITERAL_MAX])
            run.clear()

    index, size = 0, len(pattern)
    while index < size:
        char = pattern[index]
        index += 1
        if char == "|":
            return [], insensitive
        if char == "\\" and index < size:
            escaped = pattern[index]
            index += 1
            if escaped.isascii() and not escaped.isalnum():
                literal = escaped
            else:  # a class, an assertion, a code (\x41, \x{263a}, \101, \pL): not read
                if escaped in "xpP":
                    argument = _ESCAPE_ARGUMENT if escaped == "x" else re.compile(r"\{[^}]*\}|.")
                    match = argument.match(pattern, index)
                    index = match.end() if match else index
                elif escaped in "01234567":
                    match = _OCTAL_TAIL.match(pattern, index)
                    index = match.end() if match else index
                end_run()
                continue
        elif char in "*?+":
            if run:
                run.pop()
            end_run()
            index += pattern.startswith("?", index)  # lazy
            continue
        elif char == "{" and (count := _REPEAT_COUNT.match(pattern, index - 1)):
            if run:
                run.pop()
            end_run()
            index = count.end() + pattern.startswith("?", count.end())
            continue
        elif char == "(":
            end_run()
            index = _group_end(pattern, index)
            continue
        elif char == "[":
            end_run()
            index = _class_end(pattern, index)
            continue
        elif char in ".^$" or char == "\x00":
            end_run()
            continue
        else:
            literal = char
        if insensitive and (not literal.isascii() or literal in _FOLDS_BEYOND_ASCII):
            end_run()
            continue
        run.append(literal)
    end_run()
    return literals, insensitive


def _class_end(pattern: str, index: int) -> int:
    """The index just past the class [... that starts before index."""
    index += pattern.startswith("^", index)
    index += pattern.startswith("]", index)  # a ] first is a member
    while index < len(pattern):
        if pattern[index] == "\\":
            index += 2
        elif pattern.startswith("[:", index) and (close := pattern.find(":]", index + 2)) != -1:
            index = close + 2
        elif pattern[index] == "]":
            return index + 1
        else:
            index += 1
    return index


def _group_end(pattern: str, index: int) -> int:
    """The index just past the group ( ... that starts before index."""
    depth = 1
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        index += 1
        if char == "[":
            index = _class_end(pattern, index)
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index
    return index
