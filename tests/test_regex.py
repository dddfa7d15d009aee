"""The regular expressions of --grep and REGEXP: RE2's, linear in the text
whatever the pattern and the text; what RE2 does not take is a one-line
usage error that says what."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from contextlib import closing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kextlog_store import regex
from kextlog_store.callbacks import Callbacks
from kextlog_store.conditions import SQLITE, Sql, prefilter
from kextlog_store.errors import UsageError
from kextlog_store.regex import grep_pattern, postgresql_regex

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


# --- the prefilter ahead of --grep's regex ----------------------------------

# Characters whose matching has a catch: case folding beyond ASCII (k, s and
# the Kelvin sign, the long s), LIKE's own wildcards and escape, non-ASCII.
_CHARS = "aAbkKsS\u212a\u017f\u00e9\u00c9%_\\.- "
_ATOMS = st.one_of(
    st.sampled_from(list("aAbkKsS\u212a\u017f\u00e9 -%_")),
    st.sampled_from(
        [
            r"\.",
            r"\\",
            r"\%",
            r"\x41",
            r"\x{4b}",
            r"\x6b",
            r"\101",
            r"\153",
            r"\pL",
            r"\p{Greek}",
            r"\d",
            r"\w",
            r"\s",
            r"\b",
            ".",
            "^",
            "$",
            "[a-c]",
            "[^k]",
            "[]a]",
            "[[:alpha:]]",
            r"[\]k]",
            r"\Qa.b\E",
            "(?i)",
            "(?-i)",
            "(?U)",
        ]
    ),
)


# What RE2 finds for k and s ignoring case, and LIKE does not.
_FOLDED = str.maketrans("kKsS", "\u212a\u212a\u017f\u017f")


@st.composite
def _patterns(draw: st.DrawFn, depth: int = 0) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 6))):
        if depth < 2 and draw(st.integers(0, 5)) == 0:
            inner = draw(_patterns(depth + 1))
            atom = draw(st.sampled_from(["({})", "(?:{})", "(?i:{})", "(?P<n{}>{})"]))
            atom = atom.format(*([depth, inner] if "P<" in atom else [inner]))
        else:
            atom = draw(_ATOMS)
        parts.append(
            atom + draw(st.sampled_from(["", "", "", "*", "+", "?", "??", "{2}", "{0,2}"]))
        )
        if draw(st.integers(0, 7)) == 0:
            parts.append("|")
    return "".join(parts)


def _compiles(pattern: str) -> bool:
    try:
        regex.compile(pattern)
    except UsageError:
        return False
    return True


@settings(max_examples=1500)
@given(
    pattern=_patterns().filter(_compiles),
    texts=st.lists(st.text(alphabet=_CHARS + "\u0131\u0130xyz41\n", max_size=12), max_size=8),
)
def test_the_prefilter_passes_every_text_the_pattern_matches(
    pattern: str, texts: list[str]
) -> None:
    """Superset: evaluated by SQLite itself (instr, LIKE as it folds case),
    on texts from the pattern's own characters and the pattern's literals
    in every case, with --grep's smart case."""
    searched = grep_pattern(pattern)
    literals, _ = regex.required_literals(searched)
    cases = (str.upper, str.swapcase, lambda text: text.translate(_FOLDED))
    texts = [*texts, *literals, *(case(text) for case in cases for text in literals)]
    sql = Sql(SQLITE)
    terms = prefilter("message", searched, sql)
    with closing(sqlite3.connect(":memory:")) as connection:
        Callbacks().attach(connection)
        connection.execute("CREATE TABLE t (message TEXT)")
        connection.executemany("INSERT INTO t VALUES (?)", [(text,) for text in texts])
        matched = [text for (text,) in connection.execute(
            "SELECT message FROM t WHERE message REGEXP ?", (searched,)
        )]  # fmt: skip
        passed = [text for (text,) in connection.execute(
            f"SELECT message FROM t WHERE {' AND '.join(['1', *terms])} AND message REGEXP ?",
            [*sql.params, searched],
        )]  # fmt: skip
    assert passed == matched, (searched, terms, sql.params)


@pytest.mark.parametrize(
    ("pattern", "literals"),
    [
        ("denied", (["denied"], True)),  # smart case: no upper-case letter
        ("Denied", (["Denied"], False)),
        ("access denied", (["acce", " denied"], True)),  # s folds to the long s
        (r"mds_stores\[\d+\]", (["md", "_", "tore", "[", "]"], True)),
        ("a+bC*d", (["b", "d"], False)),
        ("foo|bar", ([], True)),
        (r"x(ab)?yz\.conf", (["x", "yz.conf"], True)),
        (r"\x41BC", (["BC"], False)),
        (r"\QA.B\E", ([], False)),
    ],
)
def test_required_literals(pattern: str, literals: tuple[list[str], bool]) -> None:
    assert regex.required_literals(grep_pattern(pattern)) == literals
