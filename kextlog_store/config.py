"""`kextlog ingest`'s configuration file (TOML), as a service reads it.

load() reads and checks a file and returns what it says as an IngestConfig,
None where it says nothing; the command line's own IngestConfig goes over it
(IngestConfig.over), and the built-in defaults fill what neither says;
dump() writes settings as a file that loads back the same.  Every
key is in docs/configuration.md.  A file with an unknown key, a value of the
wrong type or a bad value is refused whole, with a one-line UsageError that
names the file and the key (and the line, where it can be found).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from .errors import UsageError
from .levels import Level, parse_level
from .render.text import escape
from .sources import parse_source
from .store.location import check_database
from .store.retention import RetentionPolicy, parse_size

# The same on Linux and macOS (/etc is /private/etc there): one path for the
# docs, the systemd unit and the launchd plist.
DEFAULT_PATH = Path("/etc/kextlog/kextlog.toml")
DEFAULT_SYSLOG_SOCKET = "/var/run/syslog" if sys.platform == "darwin" else "/dev/log"


@dataclass(frozen=True)
class IngestConfig:
    """What ingest runs with; None: not said here (the next layer decides)."""

    sources: tuple[str, ...] | None = None
    database: str | None = None  # a SQLite path or an SQLAlchemy URL, as --db
    min_level: Level | None = None
    batch_records: int | None = None
    batch_seconds: float | None = None
    retain: str | None = None  # as --retain: "trace..debug=1d,info=30d"
    max_size: str | None = None  # as --max-size: "2GB"
    kmsg_path: str | None = None
    syslog: bool | None = None
    syslog_socket: str | None = None  # /dev/log (Linux), /var/run/syslog (macOS)

    def over(self, base: IngestConfig) -> IngestConfig:
        """This configuration where it says something, else base's."""
        said = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(base, **{name: value for name, value in said.items() if value is not None})


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"expected a non-empty string, not {value!r}")
    if "\x00" in value:
        raise UsageError(f"a NUL character is not allowed: {value!r}")
    return value


def _database(value: object) -> str:
    check_database(_text(value))
    return str(value)


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"expected true or false, not {value!r}")
    return value


# The most a batch may hold: the records wait in the daemon's memory, and
# are acknowledged (so the kext's ring frees them) only once committed.
BATCH_RECORDS_MAX = 1_000_000
BATCH_SECONDS_MAX = 60.0


def _batch_records(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= BATCH_RECORDS_MAX:
        raise UsageError(f"expected an integer from 1 to {BATCH_RECORDS_MAX:,}, not {value!r}")
    return value


def _batch_seconds(value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0.001 <= value <= BATCH_SECONDS_MAX  # also nan and inf
    ):
        raise UsageError(
            f"expected a number of seconds from 0.001 to {BATCH_SECONDS_MAX:g}, not {value!r}"
        )
    return float(value)


def _level(value: object) -> Level:
    return parse_level(_text(value))


def _sources(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise UsageError(f'expected a list of sources, e.g. ["kmsg"], not {value!r}')
    specs = tuple(_text(item) for item in value)
    for spec in specs:
        parse_source(spec)  # its syntax only: nothing is opened
    return specs


def _retain(value: object) -> str:
    RetentionPolicy.parse(_text(value))
    return str(value)


def _size(value: object) -> str:
    parse_size(_text(value))
    return str(value)


# Every key (dotted: table.key), the IngestConfig field it sets, how it is checked.
KEYS: dict[str, tuple[str, Callable[[object], object]]] = {
    "sources": ("sources", _sources),
    "database": ("database", _database),
    "min_level": ("min_level", _level),
    "syslog": ("syslog", _boolean),
    "syslog_socket": ("syslog_socket", _text),
    "batch.records": ("batch_records", _batch_records),
    "batch.seconds": ("batch_seconds", _batch_seconds),
    "retention.retain": ("retain", _retain),
    "retention.max_size": ("max_size", _size),
    "kmsg.path": ("kmsg_path", _text),
}
_TABLES = frozenset(key.partition(".")[0] for key in KEYS if "." in key)


def check(key: str) -> Callable[[object], object]:
    """How the value of key is checked (and read): for the command line's
    options too, which take the same values."""
    return KEYS[key][1]


# What a TOML basic string must escape (", \\, C0, DEL), and what a terminal
# should not get raw (C1, bidirectional overrides; see render.text.escape).
_TOML_SHORT = {'"': '\\"', "\\": "\\\\", "\t": "\\t", "\n": "\\n"}
_TOML_ESCAPE = re.compile('["\\\\\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]')


def toml_value(value: object) -> str:
    """A value of a configuration (string, integer, float, boolean, list) as
    TOML; tomllib reads it back the same."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # finite: load() refuses the others
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    text = _TOML_ESCAPE.sub(_toml_escaped, str(value))
    return f'"{text}"'


def _toml_escaped(match: re.Match[str]) -> str:
    char = match[0]
    if char in _TOML_SHORT:
        return _TOML_SHORT[char]
    return f"\\u{ord(char):04x}"


def dump(settings: IngestConfig, read: Path | None) -> str:
    """settings, every one said (ingest --check-config fills in the
    defaults), as a configuration file that load() reads back the same; its
    first line a comment on where they came from (read: the file read)."""
    value = toml_value
    where = escape(str(read or "no configuration file"), newlines=True)
    lines = [
        f"# kextlog ingest: the settings in effect ({where}, then the options, then the defaults)",
        f"sources = {value(list(settings.sources or ()))}",
        f"database = {value(settings.database)}",
        f"min_level = {value(settings.min_level.label if settings.min_level else None)}",
        f"syslog = {value(bool(settings.syslog))}",
        f"syslog_socket = {value(settings.syslog_socket)}",
        "",
        "[batch]",
        f"records = {value(settings.batch_records)}",
        f"seconds = {value(settings.batch_seconds)}",
        "",
        "[kmsg]",
        f"path = {value(settings.kmsg_path)}",
    ]
    retention = {"retain": settings.retain, "max_size": settings.max_size}
    if any(retention.values()):
        lines += ["", "[retention]"]
        lines += [f"{key} = {value(item)}" for key, item in retention.items() if item]
    return "\n".join(lines) + "\n"


def file_read(path: Path | None) -> Path | None:
    """The file load(path) reads: path, else DEFAULT_PATH when it exists."""
    if path is None and DEFAULT_PATH.exists():
        return DEFAULT_PATH
    return path


def load(path: Path | None) -> IngestConfig:
    """The file at path; with None, DEFAULT_PATH when it exists (else an
    empty configuration)."""
    path = file_read(path)
    if path is None:
        return IngestConfig()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise UsageError(f"cannot read the configuration {path}: {reason}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:  # its message has the line and column
        raise UsageError(f"{path}: not valid TOML: {error}") from None
    values: dict[str, object] = {}
    for key, value in _flatten(document, path, text):
        name, check = KEYS[key]
        try:
            values[name] = check(value)
        except UsageError as error:
            raise UsageError(f"{_where(path, text, key)}: {error}") from None
    return IngestConfig(**values)  # type: ignore[arg-type]


def _flatten(document: dict, path: Path, text: str, prefix: str = "") -> list[tuple[str, object]]:
    """(dotted key, value) of every value; an unknown key is an error."""
    items = []
    for name, value in document.items():
        key = prefix + name
        if not prefix and key in _TABLES:
            if not isinstance(value, dict):
                raise UsageError(f"{_where(path, text, key)}: expected a table, [{key}]")
            items.extend(_flatten(value, path, text, prefix=f"{key}."))
        elif key in KEYS:
            items.append((key, value))
        else:
            known = ", ".join(KEYS)
            raise UsageError(f"{_where(path, text, key)}: unknown key (known: {known})")
    return items


def _where(path: Path, text: str, key: str) -> str:
    """path, key and, when the file has it plainly, the key's line; tomllib
    gives lines only for syntax errors."""
    table, _, name = key.rpartition(".")
    dotted = r"\s*\.\s*".join(map(re.escape, key.split(".")))  # batch.seconds = ..., at the top
    current = ""
    for number, line in enumerate(text.splitlines(), 1):
        header = re.match(r"\s*\[\s*([\w.-]+)\s*\]", line)
        if header:
            current = header[1]
        elif (current == table and re.match(rf"\s*{re.escape(name)}\s*=", line)) or (
            current == "" and re.match(rf"\s*{dotted}\s*=", line)
        ):
            return f"{path}, line {number}: {key}"
    return f"{path}: {key}"
