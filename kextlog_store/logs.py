"""Where the daemons' own diagnostics go (`kextlog ingest`, `kextlog
simulate`): stderr, never into the store, and for ingest syslog too.  Each
is one line, without a password, with nothing in it that drives a terminal
(it may quote a producer's text)."""

from __future__ import annotations

import logging
import os
import socket
import sys
from contextlib import suppress
from logging.handlers import SysLogHandler
from pathlib import Path

from . import paths
from .errors import KextlogError
from .redact import redact
from .render.text import escape

ROOT = "kextlog"  # the loggers' root: kextlog.ingest, kextlog.simulate


def _logged(record: logging.LogRecord) -> str:
    return escape(redact(record.getMessage()), newlines=True)


class _DaemonFormatter(logging.Formatter):
    """`kextlog ingest: message`, like the command that says it."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def format(self, record: logging.LogRecord) -> str:
        return f"{self.prefix}{record.name.replace('.', ' ')}: {_logged(record)}"


class _SyslogFormatter(logging.Formatter):
    """`kextlog[PID]: ingest: message`, the usual syslog tag."""

    def format(self, record: logging.LogRecord) -> str:
        return f"kextlog[{record.process}]: {record.name.removeprefix('kextlog.')}: " + (
            _logged(record)
        )


class _Syslog(SysLogHandler):
    def handleError(self, record: logging.LogRecord) -> None:
        """A syslog that went away (it reconnects at the next message)
        costs that message, never a traceback on stderr."""


def to_stderr(clear_line: bool = False) -> logging.Handler:
    """The diagnostics to stderr; over the live line when there is one
    (clear_line: it is redrawn within a second)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_DaemonFormatter("\r\033[K" if clear_line else ""))
    root = logging.getLogger(ROOT)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


def to_syslog(address: str, stderr: logging.Handler) -> None:
    """The diagnostics to syslog too, facility daemon.  Where stderr is the
    journal already (systemd sets JOURNAL_STREAM to its device and inode),
    to syslog instead, or journald would have each twice.  With no syslog
    at address, one warning, and stderr alone."""
    log = logging.getLogger(f"{ROOT}.ingest")
    try:
        paths.check_owned(Path(address), what="the syslog socket")
    except KextlogError as error:
        log.warning("%s: messages go to stderr only", error)
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.connect(address)
    except OSError as error:
        log.warning("no syslog at %s (%s): messages go to stderr only", address, error.strerror)
        return
    finally:
        probe.close()
    handler = _Syslog(address, facility=SysLogHandler.LOG_DAEMON)
    handler.setFormatter(_SyslogFormatter())
    root = logging.getLogger(ROOT)
    root.addHandler(handler)
    with suppress(OSError, ValueError):
        info = os.fstat(sys.stderr.fileno())
        if os.environ.get("JOURNAL_STREAM") == f"{info.st_dev}:{info.st_ino}":
            root.removeHandler(stderr)
