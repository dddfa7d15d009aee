"""`kextlog ingest`'s configuration file (TOML), as a service reads it.

load() reads and checks a file and returns what it says as an IngestConfig,
None where it says nothing; the command line's own IngestConfig goes over it
(IngestConfig.over), and the built-in defaults fill what neither says.  Every
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
from .retention import RetentionPolicy, parse_size
from .sources import parse_source

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
    return value


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"expected true or false, not {value!r}")
    return value


def _positive_integer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"expected an integer of 1 or more, not {value!r}")
    return value


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0.001:
        raise UsageError(f"expected a number of seconds of 0.001 or more, not {value!r}")
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
    "database": ("database", _text),
    "min_level": ("min_level", _level),
    "syslog": ("syslog", _boolean),
    "syslog_socket": ("syslog_socket", _text),
    "batch.records": ("batch_records", _positive_integer),
    "batch.seconds": ("batch_seconds", _seconds),
    "retention.retain": ("retain", _retain),
    "retention.max_size": ("max_size", _size),
    "kmsg.path": ("kmsg_path", _text),
}
_TABLES = frozenset(key.partition(".")[0] for key in KEYS if "." in key)


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
    current = ""
    for number, line in enumerate(text.splitlines(), 1):
        header = re.match(r"\s*\[\s*([\w.-]+)\s*\]", line)
        if header:
            current = header[1]
        elif current == table and re.match(rf"\s*{re.escape(name)}\s*=", line):
            return f"{path}, line {number}: {key}"
    return f"{path}: {key}"
