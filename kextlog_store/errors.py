"""Typed errors of the library.  The CLI turns each into a one-line message
and a non-zero exit; nothing below the CLI prints or exits.  Cheap to
import: no SQLAlchemy, no cffi."""

from __future__ import annotations


class KextlogError(Exception):
    """Base of every error kextlog reports to its user."""

    exit_code = 1


class UsageError(KextlogError):
    """A value given on the command line cannot be understood."""

    exit_code = 2


class DatabaseError(KextlogError):
    """The store is missing, unreadable, or refused an operation."""


class ReadOnlyError(DatabaseError):
    """A read-only session tried to change something."""


class SourceError(KextlogError):
    """A log source could not be opened or spoke the protocol wrongly."""


class ProtocolError(SourceError):
    """Bytes from a producer that are not valid frames."""


class SourceClosed(SourceError):
    """The producer closed the connection (unloaded, restarted, or refused us)."""


class SourceDone(SourceError):
    """--once: the source has handed over everything it held."""


class UnsafePath(KextlogError):
    """A path another user could change, or that cannot be walked (paths)."""


class Missing(UnsafePath):
    """A directory of the path does not exist (what exists of it is checked)."""


class Held(KextlogError):
    """Another process holds a lock kextlog takes: another ingest (status)."""


def one_line(error: BaseException | str) -> str:
    """A message on one line: a text, or an error in its own words (a
    driver's, inside SQLAlchemy's wrapper, whose .orig it is)."""
    if not isinstance(error, str):
        error = str(getattr(error, "orig", None) or error)
    return " ".join(error.split())
