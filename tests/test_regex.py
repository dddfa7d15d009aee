"""The regular expressions of --grep and REGEXP: RE2's, linear in the text
whatever the pattern and the text; what RE2 does not take is a one-line
usage error that says what."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kextlog_store import regex
from kextlog_store.errors import UsageError
from kextlog_store.regex import postgresql_regex

# Patterns that make a backtracking engine (Python's re, PCRE) take time
# exponential in the text, on the text that does it: (pattern, text, tail).
CATASTROPHIC = [
    ("(a+)+$", "a" * 50_000, "b"),
    ("(a|aa)*c", "a" * 50_000, ""),
    ("(.*a){20}c", "a" * 50_000, ""),
    ("(x+x+)+y", "x" * 50_000, ""),
    (r"^(\w+\s?)*$", "word " * 10_000, "!"),
    ("(a|b)*a(a|b){1000}c", "ab" * 500_000, ""),  # a megabyte, with no DFA: the slow case
]


def test_catastrophic_patterns_end() -> None:
    """Searched in a child process: with a backtracking engine it never ends."""
    program = (
        "import json, sys\n"
        "from kextlog_store import regex\n"
        "cases = json.load(sys.stdin)\n"
        "print([regex.search(pattern, text + tail) for pattern, text, tail in cases])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        input=json.dumps(CATASTROPHIC),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[False, False, False, False, False, False]\n"
    assert done.stderr == ""  # RE2 logs nothing of its own


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        (r"(a)\1", "backreferences such as \\1 are not supported"),
        (r"(?P<n>a)(?P=n)", "invalid perl operator: (?P"),
        ("a(?=b)", "lookahead (?=...) is not supported"),
        ("a(?!b)", "lookahead (?!...) is not supported"),
        ("(?<=a)b", "lookbehind (?<=...) is not supported"),
        ("(?<!a)b", "lookbehind (?<!...) is not supported"),
        ("(?>a)", "atomic groups"),
        ("(?(1)a|b)", "conditionals"),
        ("(?x) a b", "of the flags only i, m, s and U are supported"),
        ("a++", "possessive quantifiers"),
        (r"end\Z", "write \\z for the end of the text"),
        ("a{1001}", "repetition counts go up to 1000"),
        ("a{2,1001}", "repetition counts go up to 1000"),
        ("a{99999999999999999999}", "repetition counts go up to 1000"),
        ("a{,3}", "write {0,3}"),
        ("a(", "missing )"),
        ("[a", "missing ]"),
        ("\udcff", "not valid UTF-8"),
    ],
)
def test_what_re2_does_not_take_is_a_usage_error(pattern: str, fragment: str) -> None:
    with pytest.raises(UsageError) as caught:
        regex.compile(pattern)
    message = str(caught.value)
    assert fragment in message and "\n" not in message
    assert message.startswith(f"invalid regular expression {pattern!r}")


@pytest.mark.parametrize(
    ("pattern", "text", "found"),
    [
        ("den?ied", "access denied", True),
        ("(?i)DENIED", "access denied", True),
        ("DENIED", "access denied", False),
        (r"\d+ ms$", "took 12 ms", True),
        (r"^\s*$", "   ", True),
        (r"caf\x{e9}|\pL+", "café", True),
        (r"[[:digit:]]{3}", "pid 312", True),
        (r"a{2}\{3\}", "aa{3}", True),
        ("[{,3}]", ",", True),
        (r"\bseq\b", "a seq here", True),
        (r"end\z", "the end", True),
        ("(?P<word>w.rd)", "a word", True),
        ("x{1000}", "x" * 999, False),
    ],
)
def test_search(pattern: str, text: str, found: bool) -> None:
    assert regex.search(pattern, text) is found
    assert regex.search(pattern, text.encode()) is found


def test_postgresql_regex_writes_re2_escapes_postgresql_s_way() -> None:
    assert postgresql_regex(r"\bword\B x\z") == r"\yword\Y x\Z"
    assert postgresql_regex(r"(?P<a>x)(?<b>y)[\b]") == r"(x)(y)[\b]"
