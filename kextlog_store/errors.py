"""Typed errors of the library.  The CLI turns each into a one-line message
and a non-zero exit; nothing below the CLI prints or exits."""


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
