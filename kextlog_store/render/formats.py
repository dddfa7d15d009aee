"""The output formats each command takes (--output): their names only, so
that declaring the CLI's options loads none of the renderers."""

from __future__ import annotations

from enum import Enum


class RecordFormat(str, Enum):
    """--output of `kextlog query`."""

    SHORT = "short"
    SHORT_ISO = "short-iso"
    JSON = "json"
    JSON_PRETTY = "json-pretty"
    CSV = "csv"
    TABLE = "table"
    CAT = "cat"


class SqlFormat(str, Enum):
    """--output of `kextlog sql`."""

    TABLE = "table"
    JSON = "json"
    JSON_PRETTY = "json-pretty"
    CSV = "csv"


class StatsFormat(str, Enum):
    """--output of `kextlog stats`."""

    TEXT = "text"
    JSON = "json"


class StatusFormat(str, Enum):
    """--output of `kextlog status`."""

    TEXT = "text"
    JSON = "json"
